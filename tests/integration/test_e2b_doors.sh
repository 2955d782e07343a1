#!/usr/bin/env bash
# The E2B port's front door (issue 17): what can be refused is refused on
# the request head, before a byte of the body is read (unknown sandbox 502,
# missing token 401, oversize 413); an accepted upload goes into the
# sandbox as it arrives, never into the server's memory; slow clients on one
# address do not keep /health from another address waiting.
#   three 300 MiB uploads at once (bogus sandbox, no token, and a real one
#   that fills the sandbox's disk) grow the server by less than 64 MB;
#   a 64 MiB upload and download round-trip byte for byte, gzip both ways;
#   200 slow connections from 127.0.0.2 and /health from 127.0.0.1 < 1 s;
#   no API key: refused on anything but a loopback address.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
W="$SF_BIN/sandfleet-worker"

KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$W" --e2b-listen "127.0.0.1:$PORT" --e2b-api-key "$KEY" --e2b-header-timeout-s 2 \
  --e2b-max-conns-per-ip 32 --template-store "$T_TMP/store" >"$T_TMP/worker.log" 2>&1 &
WPID=$!
t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
check "worker serves the E2B port" curl -sf "http://127.0.0.1:$PORT/health" -o /dev/null

python3 - "$PORT" "$KEY" "$WPID" >"$T_TMP/doors.out" 2>&1 <<'PY'
import gzip, hashlib, http.client, json, os, socket, sys, threading, time
port, key, wpid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
fails = 0
def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    fails += 0 if cond else 1

def rss_kb():
    for line in open(f"/proc/{wpid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def api(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"X-API-Key": key, "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")

st, sb = api("POST", "/v2/sandboxes", {"templateID": "base", "timeout": 300})
sid, tok = sb["sandboxID"], sb["envdAccessToken"]

def upload(headers, total, chunk=1 << 20):
    """POST /files with Content-Length total, streaming zeros until done or
    the server answers/closes. Returns (status, bytes sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST /files?path=/tmp/big&username=user HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode())
    sent, buf, status = 0, b"\0" * chunk, None
    s.setblocking(True)
    try:
        while sent < total:
            n = min(chunk, total - sent)
            s.sendall(buf[:n])
            sent += n
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    try:
        s.settimeout(30)
        resp = s.recv(4096).decode(errors="replace")
        status = int(resp.split()[1]) if resp.startswith("HTTP/") else None
    except Exception:
        pass
    s.close()
    return status, sent

base = rss_kb()
peak = [base]
stop = False
def sample():
    while not stop:
        peak[0] = max(peak[0], rss_kb())
        time.sleep(0.02)
t = threading.Thread(target=sample); t.start()
MiB = 1 << 20
cases = {
    "bogus sandbox, no key": {"E2b-Sandbox-Id": "ibogusbogusbogusbogus0"},
    "real sandbox, no token": {"E2b-Sandbox-Id": sid},
    "real sandbox, token (fills its disk)": {"E2b-Sandbox-Id": sid, "X-Access-Token": tok},
}
res = {}
ths = [threading.Thread(target=lambda k=k, h=h: res.__setitem__(k, upload(h, 300 * MiB))) for k, h in cases.items()]
t0 = time.time()
for th in ths: th.start()
for th in ths: th.join()
stop = True; t.join()
grow = (peak[0] - base) / 1024
print(f"    uploads: {res} in {time.time() - t0:.1f} s; RSS {base // 1024} MiB -> peak {peak[0] // 1024} MiB")
check(res["bogus sandbox, no key"][0] == 502, "unknown sandbox: 502 on the head")
check(res["real sandbox, no token"][0] == 401, "no envd token: 401 on the head")
check(res["real sandbox, token (fills its disk)"][0] == 507, "an upload larger than the sandbox's disk: 507")
check(grow < 64, f"three 300 MiB uploads grow the server by {grow:.1f} MB (< 64)")

# a real round trip, streamed both ways, plain and gzip (a fresh sandbox:
# the first one's disk is full)
api("DELETE", f"/sandboxes/{sid}")
st, sb = api("POST", "/v2/sandboxes", {"templateID": "base", "timeout": 300})
sid, tok = sb["sandboxID"], sb["envdAccessToken"]
data = os.urandom(64 * MiB)
for gz in (False, True):
    body = gzip.compress(data, 1) if gz else data
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hd = {"E2b-Sandbox-Id": sid, "X-Access-Token": tok, "Content-Type": "application/octet-stream"}
    if gz: hd["Content-Encoding"] = "gzip"
    c.request("POST", "/files?path=/tmp/rt.bin", body=body, headers=hd)
    r = c.getresponse(); r.read()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hd = {"E2b-Sandbox-Id": sid, "X-Access-Token": tok}
    if gz: hd["Accept-Encoding"] = "gzip"
    c.request("GET", "/files?path=/tmp/rt.bin", headers=hd)
    g = c.getresponse(); got = g.read()
    if gz and g.getheader("Content-Encoding") == "gzip": got = gzip.decompress(got)
    print(f"    round trip gz={gz}: upload {r.status}, download {g.status}, {len(got)} bytes")
    check(r.status == 200 and g.status == 200 and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
          f"64 MiB up and down, byte for byte{' (gzip both ways)' if gz else ''}")
check((rss_kb() - base) / 1024 < 64, f"after the round trips the server is {(rss_kb() - base) / 1024:.1f} MB above its start")

# 413 on the head for a kept body over the limit
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"POST /v2/sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n".encode())
s.settimeout(5)
check(s.recv(100).startswith(b"HTTP/1.1 413"), "a 1 GiB API body: 413 before it is read")
s.close()

# slow clients from 127.0.0.2 hold connections; /health from 127.0.0.1 answers
slow = []
for _ in range(200):
    try:
        c = socket.socket(); c.bind(("127.0.0.2", 0)); c.settimeout(2)
        c.connect(("127.0.0.1", port)); c.sendall(b"GET /health HTTP/1.1\r\nHo")
        slow.append(c)
    except OSError:
        pass
times = []
for _ in range(5):
    t1 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/health"); ok = c.getresponse().status == 200
    times.append(time.time() - t1 if ok else 99)
check(max(times) < 1.0, f"/health from 127.0.0.1 while 127.0.0.2 holds its connections: {max(times) * 1000:.0f} ms at worst")
t1 = time.time()
cut = 0
for c in slow[:32]:
    try:
        c.settimeout(5)
        if c.recv(1) == b"": cut += 1
    except OSError:
        cut += 1
check(cut >= 30 and time.time() - t1 < 6, f"trickled heads are cut at the header timeout ({cut} of {min(32, len(slow))})")
for c in slow: c.close()
st, _ = api("DELETE", f"/sandboxes/{sid}")
check(st == 204, "the sandbox is killed")
sys.exit(1 if fails else 0)
PY
rc=$?
cat "$T_TMP/doors.out"
T_PASS=$((T_PASS + $(grep -c '^ok - ' "$T_TMP/doors.out")))
T_FAIL=$((T_FAIL + $(grep -c '^not ok - ' "$T_TMP/doors.out")))
check "the door checks ran to the end" [ $rc -eq 0 ] 
kill -TERM $WPID; wait $WPID; rc=$?
check "worker exits 0 on SIGTERM" [ $rc -eq 0 ]

# Without an API key the E2B API (sandboxes that run code with internet
# access) is open to whoever connects: only on a loopback address, as serve.
# 192.0.2.1 (TEST-NET) is never bound: the refusal must come first.
"$W" --e2b-listen "192.0.2.1:$PORT" --template-store "$T_TMP/store" >"$T_TMP/open.log" 2>&1; rc=$?
check "--e2b-listen on a non-loopback address without --e2b-api-key exits 2 (got $rc)" [ $rc -eq 2 ]
check "... naming the API key" grep -q -- "--e2b-api-key" "$T_TMP/open.log"
t_done
