#!/usr/bin/env python3
"""What a hostile sandbox (or the client holding its token) can do to the
E2B server that serves every other sandbox of the worker: each check is an
attack that held a thread, descriptors, memory, CPU or a sandbox past its
end before it was fixed. Run by test_e2b_hostile.sh against a worker
started with --e2b-max-sandboxes 2 and a soft limit of 1024 descriptors.

argv: the worker's pid. Environment: E2B_API_KEY, E2B_API_URL,
E2B_SANDBOX_URL. Prints "ok - ..." / "not ok - ..." lines."""
import os
import socket
import sys
import threading
import time
import urllib.parse
import zlib

from e2b import Sandbox

PID = int(sys.argv[1])
FAILED = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        FAILED.append(what)


def error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any SDK error type
        return f"{type(e).__name__}: {e}"
    return None


def wait_for(pred, seconds=5.0):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def fds():
    return len(os.listdir(f"/proc/{PID}/fd"))


def rss_mb():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def cpu_s():
    fields = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sandbox_inits():
    """Processes of this worker's sandboxes: children of its zygote."""
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pstat = open(f"/proc/{ppid}/stat").read()
            gpid = int(pstat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        n += comm == "sandbox-init" and gpid == PID
    return n


# --- a FIFO planted where the client writes next ------------------------------------
base = sandbox_inits()
sb = Sandbox.create(timeout=120)
sb.commands.run("mkfifo /home/user/trap")
t0 = time.time()
err = error_of(lambda: sb.files.write("/home/user/trap", "hello", request_timeout=20))
check(err is not None and time.time() - t0 < 10,
      f"an upload onto a planted FIFO fails at once ({time.time() - t0:.1f} s: {err})")
sb.kill()
check(wait_for(lambda: sandbox_inits() == base),
      "... and the sandbox is gone once killed (no request thread holds it)")

# --- a killed sandbox ends at once, whoever still holds a request on it ------------------
# A download being read holds the sandbox until it completes; its processes
# (a daemon started in the background among them) must not outlive the kill
# meanwhile, or a slow reader keeps a sandbox no cap counts running forever.
sb = Sandbox.create(timeout=120)
sb.commands.run("(setsid sleep 7777 >/dev/null 2>&1 &); head -c 64M /dev/zero > /home/user/big")
url = urllib.parse.urlparse(os.environ["E2B_SANDBOX_URL"])
dl = socket.create_connection((url.hostname, url.port), timeout=30)
dl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
dl.sendall((f"GET /files?path=/home/user/big HTTP/1.1\r\nHost: x\r\nE2b-Sandbox-Id: {sb.sandbox_id}\r\n"
            f"X-Access-Token: {sb._envd_access_token}\r\n\r\n").encode())
head = dl.recv(64)
reading = []


def trickle():
    while not reading:
        try:
            if not dl.recv(4096):
                return
        except OSError:
            return
        time.sleep(0.05)


rt = threading.Thread(target=trickle)
rt.start()
check(head.startswith(b"HTTP/1.1 200") and sandbox_inits() == base + 1, "a download of 64 MB is being read slowly")
sb.kill()
check(wait_for(lambda: sandbox_inits() == base, 10),
      "a killed sandbox (with a daemon in it) ends at once, while its download is still being read")
reading.append(1)
dl.close()
rt.join()

# --- a chain of directories deeper than the worker has descriptors ------------------
sb = Sandbox.create(timeout=120)
r = sb.commands.run("python3 -c 'import os\nos.chdir(\"/home/user\")\nfor i in range(3000):\n"
                    "    os.mkdir(\"d\"); os.chdir(\"d\")'", timeout=120)
err = error_of(lambda: sb.files.remove("/home/user/d"))
check(err is None and not sb.files.exists("/home/user/d"),
      f"files.remove of a chain of 3000 directories (worker: 1024 descriptors): {err or 'removed'}")

# --- a recursive watch of 1000 directories ---------------------------------------------
sb.commands.run("mkdir -p /home/user/w && cd /home/user/w && for i in $(seq 1000); do mkdir d$i; done")
before = fds()
h = sb.files.watch_dir("/home/user/w", recursive=True)
during = fds()
check(during - before < 16, f"a recursive watch of 1000 directories holds {during - before} descriptors")
err = error_of(lambda: Sandbox.create(timeout=30).kill())
check(err is None, f"... and another sandbox can still be made: {err or 'yes'}")
h.stop()

# --- a listing whose paths are 16 KB each ---------------------------------------------
sb.commands.run("python3 -c 'import os\nos.chdir(\"/home/user\")\nn = \"a\" * 250\n"
                "for i in range(62):\n    os.mkdir(n); os.chdir(n)\nfor i in range(8000):\n"
                "    open(n[:240] + str(i), \"w\").close()'", timeout=120)
peak, stop = [rss_mb()], []
base_rss = peak[0]


def sample():
    while not stop:
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.02)


t = threading.Thread(target=sample)
t.start()
err = error_of(lambda: sb.files.list("/home/user", depth=64, request_timeout=120))
stop.append(1)
t.join()
check(err is not None and "smaller depth" in err,
      f"files.list of 8000 entries of 16 KB paths is refused: {err}")
check(peak[0] - base_rss < 128, f"... and the worker grew by {peak[0] - base_rss} MB (< 128)")
sb.kill()

# --- a gzip upload that fills the disk keeps being inflated? ------------------------------
sb = Sandbox.create(timeout=120)
chunk = zlib.compressobj(9, zlib.DEFLATED, 31)
first = chunk.compress(b"\0" * (1 << 20)) + chunk.flush(zlib.Z_FULL_FLUSH)
again = chunk.compress(b"\0" * (1 << 20)) + chunk.flush(zlib.Z_FULL_FLUSH)
n = 16384                                    # 16 GiB inflated from 17 MB, 64 times the disk
url = urllib.parse.urlparse(os.environ["E2B_SANDBOX_URL"])
s = socket.create_connection((url.hostname, url.port), timeout=60)
s.sendall((f"POST /files?path=/home/user/bomb&username=user HTTP/1.1\r\nHost: x\r\n"
           f"E2b-Sandbox-Id: {sb.sandbox_id}\r\nX-Access-Token: {sb._envd_access_token}\r\n"
           f"Content-Type: application/octet-stream\r\nContent-Encoding: gzip\r\n"
           f"Content-Length: {len(first) + (n - 1) * len(again)}\r\n\r\n").encode() + first)
c0 = cpu_s()
for _ in range(n - 1):
    s.sendall(again)
reply = s.recv(4096).decode(errors="replace")
s.close()
used = cpu_s() - c0
check(reply.startswith("HTTP/1.1 507") or reply.startswith("HTTP/1.1 400"),
      f"a 16 GiB gzip upload into a 256 MiB disk is refused: {reply.splitlines()[0] if reply else '(nothing)'}")
check(used < 3, f"... and costs the worker {used:.2f} s of CPU (not 16 GiB of inflating)")
sb.kill()

# --- a background command printing faster than its client reads ----------------------------
# The SDK reads a background command's stream only when the handle is waited
# on: until then its output must wait in the sandbox (the process blocks on
# its pipe), not in the worker's memory. The event awaited: the writer stops
# making progress (its wchar stands still for a second) while its reader
# reads nothing; without a bound it never does, the worker takes it all.
sb = Sandbox.create(timeout=120)
base_rss = rss_mb()
h = sb.commands.run("exec seq 1 6000000", background=True)   # 47 MB of text


def written():
    r = sb.commands.run(f"sed -n 's/^wchar: //p' /proc/{h.pid}/io 2>/dev/null || true")
    return int(r.stdout.strip() or -1)


last, stalled, end = -2, False, time.time() + 60
while not stalled and time.time() < end:
    w = written()
    stalled, last = w >= 0 and w == last, w
    if not stalled:
        time.sleep(1)
grown = rss_mb() - base_rss
check(stalled and last < 8 << 20, f"a background command's unread output holds it back: it waits at "
      f"{last} bytes written (of 47 MB)")
check(grown < 32, f"... while the worker grew by {grown} MB (< 32)")
out = h.wait().stdout
check(out.endswith("\n5999999\n6000000\n") and out.count("\n") == 6000000,
      f"... and the reader then gets all of it, in order ({len(out)} bytes)")
sb.kill()

# --- paused sandboxes hold memory with no timeout: they have a cap of their own ------------
a, b = Sandbox.create(timeout=60), Sandbox.create(timeout=60)
a.pause()
b.pause()
c, d = Sandbox.create(timeout=60), Sandbox.create(timeout=60)
err = error_of(lambda: c.pause())
check(err is not None and "paused" in err, f"a third paused sandbox (--e2b-max-sandboxes 2) is refused: {err}")
for x in (a, b, c, d):
    x.kill()

sys.exit(1 if FAILED else 0)
