"""Servers for a test host (tests/lib/nethost.sh), run inside its network
namespace: HTTP (answers with what it saw: the path, the Host and every
header, so tests can tell what reached it; an Authorization only as its
SHA-256, the value itself goes to stdout as "auth VALUE" for the test), a
TCP echo and a UDP echo.

    nethost_servers.py BIND_IP HTTP_PORT ECHO_PORT UDP_PORT NAME [--tls CERT KEY TLS_PORT]

Prints "ready" on stdout once every socket listens."""
import hashlib
import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading


def main():
    ip, http_port, echo_port, udp_port, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), sys.argv[5]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            print("hit http %s" % self.path, flush=True)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "authorization" in headers:
                # The test reads the value here; the client gets a digest only.
                print("auth %s" % headers["authorization"], flush=True)
                headers["authorization"] = "sha256:" + hashlib.sha256(headers["authorization"].encode()).hexdigest()
            body = json.dumps({"host": name, "path": self.path, "headers": headers}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            # A body in, a digest of it and ?n= bytes of padding out: large
            # transfers both ways (test_egress_inject.sh).
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            n = int(self.path.partition("?n=")[2] or 0)
            auth = self.headers.get("Authorization", "")
            print("post %d auth %s" % (len(body), auth), flush=True)
            out = json.dumps({"len": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                              "auth": hashlib.sha256(auth.encode()).hexdigest(), "pad": "x" * n}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def server_bind(self):
            # HTTPServer looks up its own name (getfqdn): no resolver here.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = self.server_address[:2]

    servers = [Server((ip, http_port), Handler)]
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        cert, key, tls_port = sys.argv[i + 1], sys.argv[i + 2], int(sys.argv[i + 3])
        tls = Server((ip, tls_port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        servers.append(tls)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()

    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            print("hit tcp", flush=True)
            for line in self.rfile:
                self.wfile.write(b"echo:" + line)

    class TcpServer(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    echo = TcpServer((ip, echo_port), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((ip, udp_port))

    def udp_echo():
        while True:
            data, addr = udp.recvfrom(65536)
            print("hit udp", flush=True)
            udp.sendto(b"echo:" + data, addr)

    threading.Thread(target=udp_echo, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
