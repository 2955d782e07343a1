"""A tiny authoritative DNS server for tests: A records from the command line,
an empty answer for AAAA, NXDOMAIN for the rest. UDP only, on 127.0.0.1.

    dns_server.py PORTFILE name=ipv4 [name=ipv4 ...]

Writes the port it bound to PORTFILE, then serves until killed. Counts the
questions it saw per name in PORTFILE.log (one name per line)."""
import socket
import struct
import sys


def parse_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels).lower(), off + 1
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def main():
    portfile = sys.argv[1]
    records = {}
    for a in sys.argv[2:]:
        name, ip = a.split("=", 1)
        records.setdefault(name.lower(), []).append(ip)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    log = open(portfile + ".log", "a", buffering=1)
    while True:
        msg, addr = s.recvfrom(4096)
        if len(msg) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", msg[:6])
        try:
            name, off = parse_name(msg, 12)
        except (IndexError, UnicodeError):
            continue
        qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
        question = msg[12:off + 4]
        log.write(name + "\n")
        answers = b""
        rcode = 0
        if name in records and qtype == 1:
            for ip in records[name]:
                answers += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(ip)
        elif name not in records:
            rcode = 3
        count = len(records.get(name, [])) if qtype == 1 else 0
        hdr = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1, count, 0, 0)
        s.sendto(hdr + question + answers, addr)


if __name__ == "__main__":
    main()
