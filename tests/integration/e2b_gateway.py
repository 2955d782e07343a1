"""The official e2b SDK against the fleet's E2B gateway (test_e2b_gateway.sh).

python3 e2b_gateway.py PHASE [ARGS...]; E2B_API_KEY, E2B_API_URL and
E2B_SANDBOX_URL point at a gateway. Each phase prints one JSON document.
  burst N TAG      N creates at once (metadata tag=TAG), each writes a file and
                   runs a command; then one more create, which must be refused
  answer IDS...    connect to each sandbox, run a command, read its file back
  list TAG         the ids Sandbox.list returns for metadata tag=TAG
  create N TAG     N creates one after the other (each runs a command)
  kill IDS...      Sandbox.kill each
  gethost ID SERVER  run SERVER (e2b_net_server.py) in sandbox ID on port 8000 and
                   reach it through the gateway by get_host: HTTP, a streamed
                   answer, a 1 MB POST both ways, a chunked body, a WebSocket
"""
import base64
import concurrent.futures as cf
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

from e2b import Sandbox, SandboxQuery
from e2b.exceptions import RateLimitException


def one(tag, i):
    # No network: what is measured is the gateway, not the egress path.
    sb = Sandbox.create(metadata={"tag": tag, "i": str(i)}, allow_internet_access=False)
    sb.files.write("/tmp/i", str(i))
    r = sb.commands.run("cat /tmp/i")
    return sb.sandbox_id, r.stdout == str(i)


def burst(n, tag):
    with cf.ThreadPoolExecutor(n) as ex:
        got = list(ex.map(lambda i: one(tag, i), range(n)))
    extra = "created"
    try:
        Sandbox.create(metadata={"tag": tag + "-extra"}, allow_internet_access=False).kill()
    except RateLimitException as e:
        extra = "429: " + str(e)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        extra = "%s: %s" % (type(e).__name__, e)
    return {"ids": [g[0] for g in got], "ok": sum(g[1] for g in got), "extra": extra}


def answer(ids):
    res = {}
    for sid in ids:
        try:
            sb = Sandbox.connect(sid)
            r = sb.commands.run("echo alive; cat /tmp/i")
            res[sid] = r.stdout.startswith("alive\n")
        except Exception as e:  # noqa: BLE001
            res[sid] = "%s: %s" % (type(e).__name__, e)
    return {"ok": sum(v is True for v in res.values()), "res": res}


def listing(tag):
    # Pages of 5 and the metadata filter: both answered from the broker.
    p = Sandbox.list(query=SandboxQuery(metadata={"tag": tag}), limit=5)
    ids = []
    while True:
        ids += [s.sandbox_id for s in p.next_items()]
        if not p.has_next:
            break
    return {"ids": sorted(ids)}


def create(n, tag):
    ids = []
    for i in range(n):
        sid, ok = one(tag, i)
        if ok:
            ids.append(sid)
    return {"ids": ids}


def kill(ids):
    return {"killed": sum(bool(Sandbox.kill(s)) for s in ids)}


def open_request(host, method="GET", path="/", body=None, headers=None):
    """A request to the gateway (E2B_API_URL) with that Host: (connection,
    response), the body not read yet."""
    u = urllib.parse.urlsplit(os.environ["E2B_API_URL"])
    h = {"Host": host}
    h.update(headers or {})
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(method, path, body=body, headers=h, encode_chunked="Transfer-Encoding" in h)
    return c, c.getresponse()


def gateway_request(host, method="GET", path="/", body=None, headers=None):
    """The same, read whole: status, body, response."""
    _, r = open_request(host, method, path, body, headers)
    return r.status, r.read(), r


def gethost(sid, server):
    sb = Sandbox.connect(sid)
    host = sb.get_host(8000)
    sb.files.write("/tmp/srv.py", open(server).read())
    sb.commands.run("python3 /tmp/srv.py 8000 gw", background=True)
    out = {}
    for _ in range(200):                       # until it listens
        st, body, _ = gateway_request(host, path="/ping")
        if st == 200:
            break
        time.sleep(0.05)
    out["http"] = body.decode(errors="replace")
    big = os.urandom(1 << 20)
    st, body, _ = gateway_request(host, "POST", "/echo", body=big)
    out["post_1mb"] = st == 200 and body == b"gw:" + big
    st, body, _ = gateway_request(host, "POST", "/echo", body=iter([b"ab", b"cd"]),
                                  headers={"Transfer-Encoding": "chunked"})
    out["chunked"] = body.decode(errors="replace")
    u = urllib.parse.urlsplit(os.environ["E2B_API_URL"])
    _, r = open_request(host, path="/stream")
    out["stream_first"] = r.readline().decode()    # before the rest exists
    sb.files.write("/tmp/go", "go")
    out["stream_rest"] = r.read().decode()
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    out["ws_status"] = head.split(b"\r\n")[0].decode()
    mask, msg = os.urandom(4), b"hello"
    s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(msg)))
    _, b2 = s.recv(2)
    echo = b""
    while len(echo) < (b2 & 0x7f):
        echo += s.recv((b2 & 0x7f) - len(echo))
    out["ws_echo"] = echo.decode()
    s.close()
    return out


def main():
    phase, args = sys.argv[1], sys.argv[2:]
    if phase == "burst":
        out = burst(int(args[0]), args[1])
    elif phase == "answer":
        out = answer(args)
    elif phase == "list":
        out = listing(args[0])
    elif phase == "create":
        out = create(int(args[0]), args[1])
    elif phase == "kill":
        out = kill(args)
    elif phase == "gethost":
        out = gethost(args[0], args[1])
    else:
        raise SystemExit("unknown phase " + phase)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
