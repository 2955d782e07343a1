#!/usr/bin/env python3
"""A callback receiver for tests/integration/test_callbacks.sh.

Usage: cb_receiver.py PORTFILE LOGFILE [FLAGFILE]
Listens on 127.0.0.1 (port 0: the kernel picks; written to PORTFILE), logs
one JSON line per request to LOGFILE, and answers by the first path segment:
  /ok/...        200
  /fail500x2/... 500 twice, then 200          /drop1/... close without answering once, then 200
  /ra/...        429 with Retry-After: 2 once, then 200
  /bad400/...    always 400                    /once400/... 400 once, then 200
  /tamper/...    verifies a body with one byte changed: must fail -> 401
  /flag/...      500 until FLAGFILE exists, then 200
A request carrying Sandfleet-Signature is verified with SANDFLEET_SECRET_HOOK
(the same way docs/protocol.md shows); a bad signature is answered 401.
"""
import hashlib, hmac, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("SANDFLEET_SECRET_HOOK", "").encode()
PORTFILE, LOGFILE = sys.argv[1], sys.argv[2]
FLAG = sys.argv[3] if len(sys.argv) > 3 else "/nonexistent"
counts, lock = {}, threading.Lock()


def verify(secret, headers, body, tolerance=300):
    """The receiver side of the signature: docs/protocol.md §8."""
    ts = headers.get("Sandfleet-Timestamp", "")
    sig = headers.get("Sandfleet-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        return False
    expected = "v1=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        kind = self.path.strip("/").split("/")[0]
        with lock:
            n = counts[self.path] = counts.get(self.path, 0) + 1
        signed = "Sandfleet-Signature" in self.headers
        sig_ok = None
        if signed:
            checked = body
            if kind == "tamper":
                checked = body.replace(b'"ok"', b'"OK"', 1) if b'"ok"' in body else body + b" "
            sig_ok = verify(SECRET, self.headers, checked)
        code, extra = 200, {}
        if kind == "drop1" and n == 1:
            code = "drop"
        elif signed and not sig_ok:
            code = 401
        elif kind == "fail500x2" and n <= 2:
            code = 500
        elif kind == "ra" and n == 1:
            code, extra = 429, {"Retry-After": "2"}
        elif kind == "bad400" or (kind == "once400" and n == 1):
            code = 400
        elif kind == "flag" and not os.path.exists(FLAG):
            code = 500
        entry = {"path": self.path, "n": n, "t": time.time(), "code": code, "sig_ok": sig_ok,
                 "headers": dict(self.headers.items()), "body": body.decode("utf-8", "replace")}
        with lock, open(LOGFILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if code == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        reply = json.dumps({"code": code}).encode()
        self.send_response(code)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
