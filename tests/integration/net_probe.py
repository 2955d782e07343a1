"""An agent that tries to reach things and says what happened (tests of the
sandbox network, test_sandbox_net.sh). Input: a list of probes; output: one
result per probe, "ok:<what came back>" or "err:<exception name>".

  {"http": URL, "host": HOST?}        GET (with that Host header)
  {"tcp": [HOST, PORT]}               plain socket: send "ping\\n", read a line
  {"udp": [HOST, PORT]}               one datagram, wait 2 s for the answer
  {"dns": NAME}                       getaddrinfo, IPv4
  {"dnsat": [ADDR, NAME]}             an A question over UDP to ADDR:53, the first answer
  {"dnstcp": NAME}                    the same over TCP to the resolver of resolv.conf
  {"listen": PORT, "wait": S}         accept one connection within S seconds"""
import json
import socket
import struct
import sys
import urllib.request


def question(name):
    return struct.pack("!HHHHHH", 7, 0x100, 1, 0, 0, 0) + \
        b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)


def answer(m):
    if not m[7]:
        return "rcode%d" % (m[3] & 15)
    return socket.inet_ntoa(m[-4:])


def probe(p):
    try:
        if "http" in p:
            req = urllib.request.Request(p["http"], headers={"Host": p["host"]} if "host" in p else {})
            with urllib.request.urlopen(req, timeout=5) as r:
                body = json.loads(r.read())
            return "ok:" + body["host"]
        if "tcp" in p:
            with socket.create_connection(tuple(p["tcp"]), timeout=5) as s:
                s.sendall(b"ping\n")
                line = s.makefile("rb").readline()
            if not line:
                return "err:closed"
            return "ok:" + line.decode().strip()
        if "udp" in p:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.connect(tuple(p["udp"]))
                s.send(b"ping")
                return "ok:" + s.recv(100).decode()
        if "dns" in p:
            return "ok:" + socket.getaddrinfo(p["dns"], 80, socket.AF_INET)[0][4][0]
        if "dnsat" in p:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(question(p["dnsat"][1]), (p["dnsat"][0], 53))
                return "ok:" + answer(s.recv(512))
        if "dnstcp" in p:
            server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
            with socket.create_connection((server, 53), timeout=3) as s:
                q = question(p["dnstcp"])
                s.sendall(struct.pack("!H", len(q)) + q)
                f = s.makefile("rb")
                n = struct.unpack("!H", f.read(2))[0]
                return "ok:" + answer(f.read(n))
        if "listen" in p:
            with socket.socket() as s:
                s.bind(("0.0.0.0", p["listen"]))
                s.listen()
                s.settimeout(p.get("wait", 3))
                c, addr = s.accept()
                c.close()
                return "ok:" + addr[0]
    except Exception as e:  # the exception's name is the answer
        return "err:" + type(e).__name__
    return "err:unknown probe"


print(json.dumps([probe(p) for p in json.load(sys.stdin)]))
