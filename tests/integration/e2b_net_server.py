"""A server that runs inside an E2B sandbox for test_e2b_net.sh (through
get_host): a streamed response that waits for the test's go-ahead, a POST
echo (Content-Length or chunked), and a WebSocket echo.

    python3 e2b_net_server.py PORT NAME"""
import base64
import hashlib
import os
import socket
import sys
import threading
import time


def read_head(f):
    line = f.readline().decode()
    headers = {}
    while True:
        h = f.readline().decode()
        if h in ("\r\n", "\n", ""):
            break
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return line.split(), headers


def read_body(f, headers):
    if "content-length" in headers:
        return f.read(int(headers["content-length"]))
    body = b""
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            n = int(f.readline().split(b";")[0], 16)
            if not n:
                f.readline()
                return body
            body += f.read(n)
            f.readline()
    return body


def ws_frame(data):
    return bytes([0x81, len(data)]) + data


def ws_read(f):
    b1, b2 = f.read(2)
    n = b2 & 0x7f
    mask = f.read(4) if b2 & 0x80 else b"\0\0\0\0"
    data = f.read(n)
    return bytes(c ^ mask[i % 4] for i, c in enumerate(data)), b1 & 0x0f


def serve(c, name):
    f = c.makefile("rb")
    (method, path, _), headers = read_head(f)
    if path == "/ws" and headers.get("upgrade", "").lower() == "websocket":
        key = headers["sec-websocket-key"].encode()
        acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        while True:
            data, op = ws_read(f)
            if op == 8:
                return
            c.sendall(ws_frame(name.encode() + b":" + data))
    if path == "/stream":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                  b"6\r\nfirst\n\r\n")
        while not os.path.exists("/tmp/go"):
            time.sleep(0.05)
        c.sendall(b"7\r\nsecond\n\r\n0\r\n\r\n")
        return
    if method == "POST" and path == "/echo":
        body = read_body(f, headers)
        out = name.encode() + b":" + body
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Echo-Host: %s\r\n\r\n" %
                  (len(out), headers.get("host", "").encode()) + out)
        return
    out = ("%s %s" % (name, path)).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(out) + out)


def handle(c, name):
    try:
        serve(c, name)
    finally:
        c.close()


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        # Each thread gets its own socket as an argument: a closure over the
        # loop's c would close whichever connection was accepted last (the
        # next request, once the client had its answer), answering nothing.
        threading.Thread(target=handle, args=(c, name), daemon=True).start()


main()
