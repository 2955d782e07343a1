#!/usr/bin/env python3
"""tests/lib/http_abuse.py: hostile HTTP clients for the front-door tests.

  hold PORT N [--src ADDR] [--probe PATH]
      open N connections from ADDR (default 127.0.0.2) that send half a
      request head and then nothing; while they are held, GET PATH from
      127.0.0.1 and print {"status", "ms", "held", "refused"}.
  trickle PORT PATH [--every S] [--limit S]
      send a request head one byte every S seconds (never finishing it);
      print {"cut_after_s"} (null when still open after --limit seconds).
  bodies PORT PATH N SIZE [--header 'Name: value']...
      N connections each declare a SIZE-byte body and send half of it; once
      each was answered, closed or has sent its half, print {"statuses":
      [...]} (0 = closed without an answer, null = held open, waiting for
      the rest) and keep the held ones open for --hold S seconds (default
      30) or until killed, so the caller can measure the server meanwhile.
Every connection is to 127.0.0.1:PORT; exit status 0 (the caller judges).
"""
import json
import socket
import sys
import time


def connect(port, src="127.0.0.1"):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def status_of(s, timeout):
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    if data.startswith(b"HTTP/1."):
        return int(data.split()[1])
    return 0


def get(port, path, headers=()):
    s = connect(port)
    t0 = time.monotonic()
    req = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    req += "".join(h + "\r\n" for h in headers) + "\r\n"
    s.sendall(req.encode())
    st = status_of(s, 10)
    ms = (time.monotonic() - t0) * 1000
    s.close()
    return st, ms


def hold(args):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, n = int(args[0]), int(args[1])
    src = opt(args, "--src", "127.0.0.2")
    probe = opt(args, "--probe", "/healthz")
    socks = []
    for _ in range(n):
        s = connect(port, src)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        except OSError:
            pass
        socks.append(s)
    st, ms = get(port, probe)
    # Which of them did the server keep? Closed ones read EOF (or reset) at once.
    time.sleep(0.5)
    refused = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                refused += 1
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
    print(json.dumps({"status": st, "ms": round(ms, 1), "held": n - refused, "refused": refused}))
    for s in socks:
        s.close()


def trickle(args):
    port, path = int(args[0]), args[1]
    every = float(opt(args, "--every", "0.5"))
    limit = float(opt(args, "--limit", "30"))
    s = connect(port)
    head = f"GET {path} HTTP/1.1\r\nHost: a-slow-client\r\nX-Pad: ".encode()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < limit:
        b = head[i:i + 1] if i < len(head) else b"x"
        i += 1
        try:
            s.sendall(b)
            s.settimeout(every)
            if s.recv(1) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    else:
        print(json.dumps({"cut_after_s": None}))
        return
    print(json.dumps({"cut_after_s": round(time.monotonic() - t0, 2)}))


def bodies(args):
    port, path, n, size = int(args[0]), args[1], int(args[2]), int(args[3])
    headers = [args[i + 1] for i, a in enumerate(args) if a == "--header"]
    socks = []
    for _ in range(n):
        s = connect(port)
        head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n"
        head += "".join(h + "\r\n" for h in headers) + "\r\n"
        s.sendall(head.encode())
        socks.append(s)
    half = b"x" * (1 << 20)
    for s in socks:
        s.setblocking(False)
    sent = [0] * n
    deadline = time.monotonic() + 20
    statuses = [None] * n
    def busy(i):
        return statuses[i] is None and sent[i] < size // 2
    while time.monotonic() < deadline and any(busy(i) for i in range(n)):
        for i, s in enumerate(socks):
            if statuses[i] is not None:
                continue
            try:
                data = s.recv(4096)
                statuses[i] = int(data.split()[1]) if data.startswith(b"HTTP/1.") else 0
                continue
            except BlockingIOError:
                pass
            except OSError:
                statuses[i] = 0
                continue
            if sent[i] < size // 2:
                try:
                    sent[i] += s.send(half[:min(len(half), size // 2 - sent[i])])
                except BlockingIOError:
                    pass
                except OSError:
                    statuses[i] = 0
        time.sleep(0.01)
    print(json.dumps({"statuses": statuses, "sent": sent}), flush=True)
    time.sleep(float(opt(args, "--hold", "30")))
    for s in socks:
        s.close()


def opt(args, name, default):
    return args[args.index(name) + 1] if name in args else default


if __name__ == "__main__":
    {"hold": hold, "trickle": trickle, "bodies": bodies}[sys.argv[1]](sys.argv[2:])
