#!/usr/bin/env python3
"""The sandbox network through the official E2B SDK (test_e2b_net.sh): what
Sandbox.create() can reach and what it cannot (the worker's own API among
them), network options at create, update_network on a live sandbox, and
get_host(port) — HTTP, a streamed response, a POST body both ways, a
WebSocket, two sandboxes on one port, a closed port, allow_public_traffic.

Environment: E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL (the server, on
SF_API_HOST:SF_API_PORT), SF_DOMAIN (its --e2b-domain), SF_PUB / SF_PRIV
(test hosts' addresses, HTTP on 8080), SF_NAME (a name for SF_PUB the
server's resolver knows), SF_SERVER (e2b_net_server.py)."""
import base64
import hashlib
import http.client
import json
import os
import socket
import sys
import time

from e2b import Sandbox

FAILED = []
API_HOST, API_PORT = os.environ["SF_API_HOST"], int(os.environ["SF_API_PORT"])
PUB, PRIV, NAME, DOMAIN = (os.environ[k] for k in ("SF_PUB", "SF_PRIV", "SF_NAME", "SF_DOMAIN"))
SERVER = open(os.environ["SF_SERVER"]).read()


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        FAILED.append(what)


def reach(sb, url, token=""):
    """What a GET of url from inside the sandbox gives: "ok:<body start>" or "err:<exception>"."""
    code = ("import urllib.request, sys\n"
            "h = {'e2b-traffic-access-token': sys.argv[2]} if len(sys.argv) > 2 else {}\n"
            "r = urllib.request.Request(sys.argv[1], headers=h)\n"
            "try: print('ok:' + urllib.request.urlopen(r, timeout=5).read()[:40].decode())\n"
            "except Exception as e: print('err:' + type(e).__name__)\n")
    sb.files.write("/tmp/reach.py", code)
    return sb.commands.run(f"python3 /tmp/reach.py {url} {token}", timeout=30).stdout.strip()


def fetch_json(sb, url):
    """The JSON a GET of url from inside the sandbox answers, or "err:<exception>"."""
    code = ("import urllib.request, sys\n"
            "r = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer agent'})\n"
            "try: print(urllib.request.urlopen(r, timeout=5).read().decode())\n"
            "except Exception as e: print('\"err:' + type(e).__name__ + ':' + str(e)[:80] + '\"')\n")
    sb.files.write("/tmp/fetch.py", code)
    out = sb.commands.run(f"python3 /tmp/fetch.py {url}", timeout=30).stdout.strip()
    try:
        return json.loads(out)
    except ValueError:
        return "err:" + out[:80]


def rules_checks(sb):
    """network.rules: headers injected into HTTPS to a host by the egress path."""
    https = f"https://{NAME}:{os.environ['SF_HTTPS']}/"
    want = os.environ["SF_SECRET_SHA"]
    rule = {NAME: [{"transform": {"headers": {"Authorization": "Bearer ${e2b.secrets.sf-test-key}"}}},
                   {"transform": {"headers": {"X-Lit": "a$b"}}}]}
    inj = Sandbox.create(network={"deny_out": ["0.0.0.0/0"], "allow_out": [NAME], "rules": rule})
    got = fetch_json(inj, https)
    h = got.get("headers", {}) if isinstance(got, dict) else {}
    check(h.get("authorization") == "sha256:" + want,
          f"create(network.rules): the worker's secret reaches the host in place of the agent's ({str(got)[:90]})")
    check(h.get("x-lit") == "a$b", "... with a literal header of a later rule")
    env = inj.commands.run("env", timeout=30).stdout
    check("sk-e2b-" not in env and "SSL_CERT_FILE=/run/sandfleet/ca-bundle.crt" in env,
          "... the sandbox has the worker's CA, not the secret, in its environment")
    inj.kill()
    # update_network adds rules to a live sandbox made without them
    plain = fetch_json(sb, https)
    check(isinstance(plain, str) and plain.startswith("err:"),
          "without rules the host's own certificate (a CA the sandbox does not trust) fails")
    sb.update_network({"rules": {NAME: [{"transform": {"headers": {"Authorization": "Bearer lit"}}}]}})
    got = fetch_json(sb, https)
    h = got.get("headers", {}) if isinstance(got, dict) else {}
    check(h.get("authorization") == "sha256:" + hashlib.sha256(b"Bearer lit").hexdigest(),
          f"update_network(rules) on a live sandbox: the header is added ({str(got)[:90]})")
    sb.update_network({})
    check(isinstance(fetch_json(sb, https), str), "update_network({}) drops the rules again")
    for bad, why in (({"x.test": [{"transform": {"headers": {"A": "${e2b.identity.tokens.aws}"}}}]}, "identity"),
                     ({"x.test": [{"transform": {"headers": {"A": "${e2b.secrets.not-there}"}}}]}, "secret"),
                     ({"10.0.0.1": [{"transform": {"headers": {"A": "b"}}}]}, "host name"),
                     ({"x.test": [{"transform": {"headers": {"Content-Length": "1"}}}]}, "Content-Length")):
        try:
            sb.update_network({"rules": bad})
            check(False, f"update_network refuses rules with {why}")
        except Exception as e:  # noqa: BLE001
            check(why in str(e), f"update_network refuses rules with {why} ({str(e)[:100]})")


def ingress(sb, port, method="GET", path="/", body=None, headers=None, host=None):
    """A request to get_host(port), sent to this server with that Host."""
    h = {"Host": host or sb.get_host(port)}
    h.update(headers or {})
    c = http.client.HTTPConnection(API_HOST, API_PORT, timeout=20)
    c.request(method, path, body=body, headers=h, encode_chunked="Transfer-Encoding" in h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data, r


def start_server(sb, port, name, headers=None):
    sb.files.write("/tmp/srv.py", SERVER)
    sb.commands.run(f"python3 /tmp/srv.py {port} {name}", background=True)
    for _ in range(100):
        st, _, _ = ingress(sb, port, path="/ping", headers=headers)
        if st == 200:
            return True
        time.sleep(0.1)
    return False


def main():
    api = f"http://{API_HOST}:{API_PORT}"
    sb = Sandbox.create()
    check(sb.get_host(8000) == f"8000-{sb.sandbox_id}.{DOMAIN}",
          f"get_host(8000) names this server's domain ({sb.get_host(8000)})")
    check(reach(sb, f"http://{PUB}:8080/") .startswith("ok:"), "Sandbox.create(): the internet is reachable")
    check(reach(sb, f"http://{NAME}:8080/").startswith("ok:"), "Sandbox.create(): by name, through its resolver")
    check(reach(sb, f"http://{PRIV}:8080/").startswith("err:"), "Sandbox.create(): a private host is not")
    check(reach(sb, f"{api}/health").startswith("err:"), "Sandbox.create(): the worker's own E2B API is not")
    check(reach(sb, f"http://127.0.0.1:{API_PORT}/health").startswith("err:"),
          "Sandbox.create(): nor is it on 127.0.0.1 (the sandbox's own)")
    check(reach(sb, "http://169.254.169.254/").startswith("err:"), "Sandbox.create(): nor cloud metadata")

    # update_network on the live sandbox
    sb.update_network({"deny_out": ["0.0.0.0/0"]})
    check(reach(sb, f"http://{PUB}:8080/").startswith("err:"), "update_network deny_out 0.0.0.0/0 closes it")
    sb.update_network({"deny_out": ["0.0.0.0/0"], "allow_out": [NAME]})
    check(reach(sb, f"http://{NAME}:8080/").startswith("ok:"), "update_network allow_out NAME re-opens that name")
    check(reach(sb, f"http://{PUB}:8080/").startswith("err:"), "... and not the bare address")
    sb.update_network({})
    check(reach(sb, f"http://{PUB}:8080/").startswith("ok:"), "update_network {} restores the default")
    rules_checks(sb)
    try:
        sb.update_network({"egress_proxy": {"address": "socks5://x:1"}})
        check(False, "update_network refuses what it does not implement")
    except Exception as e:  # noqa: BLE001
        check("not supported" in str(e), f"update_network refuses egress_proxy ({type(e).__name__})")

    # network options at create
    rules = Sandbox.create(network={"deny_out": ["0.0.0.0/0"], "allow_out": [NAME]})
    check(reach(rules, f"http://{NAME}:8080/").startswith("ok:"), "create(network=allow_out NAME): that name")
    check(reach(rules, f"http://{PUB}:8080/").startswith("err:"), "create(network=...): not the bare address")
    rules.kill()
    off = Sandbox.create(allow_internet_access=False)
    check(reach(off, f"http://{PUB}:8080/").startswith("err:"), "allow_internet_access=False: nothing")
    off.update_network({"allow_internet_access": True})
    check(reach(off, f"http://{PUB}:8080/").startswith("ok:"), "... until update_network opens it")

    # get_host: a server on the same port in two sandboxes
    check(start_server(sb, 8000, "one"), "get_host: a server in the sandbox answers through it")
    check(start_server(off, 8000, "two"), "get_host: a second sandbox serves the same port")
    st1, b1, _ = ingress(sb, 8000, path="/x?q=a%20b&k")
    st2, b2, _ = ingress(off, 8000, path="/x")
    check((st1, b1) == (200, b"one /x?q=a%20b&k"), f"get_host: sandbox one answers its own port ({b1!r})")
    check((st2, b2) == (200, b"two /x"), f"get_host: sandbox two answers its own port ({b2!r})")
    got = reach(off, f"http://{sb.get_host(8000)}/in")
    check(got == "ok:one /in", f"get_host from inside: sandbox two fetches sandbox one's URL ({got})")
    got = reach(sb, f"http://{off.get_host(8000)}:8000/in")
    check(got == "ok:two /in", f"... and one fetches two's, on any port of the URL ({got})")
    closed = Sandbox.create(network={"deny_out": ["0.0.0.0/0"]})
    check(reach(closed, f"http://{sb.get_host(8000)}/in").startswith("err:"),
          "... not from a sandbox whose rules close the internet")
    closed.kill()
    st, body, r = ingress(sb, 8000, "POST", "/echo", body=b"x" * 100000)
    check(st == 200 and body == b"one:" + b"x" * 100000, "get_host: a POST body goes in, the answer out")
    check(r.getheader("X-Echo-Host") == sb.get_host(8000), "get_host: the server sees the Host asked for")
    st, body, _ = ingress(sb, 8000, "POST", "/echo", body=iter([b"ab", b"cd"]),
                          headers={"Transfer-Encoding": "chunked"})
    check(st == 200 and body == b"one:abcd", "get_host: a chunked request body")
    st, body, _ = ingress(sb, 8999)
    check(st == 502 and b"port is not open" in body, f"get_host: a closed port is 502 ({body[:80]!r})")
    c = http.client.HTTPConnection(API_HOST, API_PORT, timeout=20)
    c.request("GET", "/x", headers={"E2b-Sandbox-Id": off.sandbox_id, "E2b-Sandbox-Port": "8000"})
    r = c.getresponse()
    check(r.read() == b"two /x", "get_host by the E2b-Sandbox-Id / E2b-Sandbox-Port headers")
    c.close()

    # a streamed response arrives as it is written
    c = http.client.HTTPConnection(API_HOST, API_PORT, timeout=20)
    c.request("GET", "/stream", headers={"Host": sb.get_host(8000)})
    r = c.getresponse()
    first = r.readline()
    check(first == b"first\n", "get_host: a streamed response's first part arrives before the rest exists")
    sb.files.write("/tmp/go", "go")
    check(r.read() == b"second\n", "get_host: ... and the rest after it")
    c.close()

    # a WebSocket
    s = socket.create_connection((API_HOST, API_PORT), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: {sb.get_host(8000)}\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    check(head.startswith(b"HTTP/1.1 101"), f"get_host: a WebSocket upgrade is 101 ({head[:40]!r})")
    mask = os.urandom(4)
    msg = b"hello"
    s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(msg)))
    b1, b2 = s.recv(2)
    echo = b""
    while len(echo) < (b2 & 0x7f):
        echo += s.recv((b2 & 0x7f) - len(echo))
    check(echo == b"one:hello", f"get_host: WebSocket frames both ways ({echo!r})")
    s.close()

    # allow_public_traffic false: the traffic token is needed
    priv = Sandbox.create(network={"allow_public_traffic": False})
    check(bool(priv.traffic_access_token), "allow_public_traffic=False: the sandbox has a traffic access token")
    tok = {"e2b-traffic-access-token": priv.traffic_access_token or ""}
    check(start_server(priv, 8000, "three", tok), "... its ports answer with it in e2b-traffic-access-token")
    st, body, _ = ingress(priv, 8000, path="/t")
    check(st == 403, f"... and not without it (403: {body[:70]!r})")
    st, body, _ = ingress(priv, 8000, path="/t", headers={"e2b-traffic-access-token": "wrong"})
    check(st == 403, "... and a wrong token is refused")
    check(reach(sb, f"http://{priv.get_host(8000)}/t").startswith("err:"),
          "... from inside another sandbox too")
    got = reach(sb, f"http://{priv.get_host(8000)}/t", priv.traffic_access_token or "")
    check(got == "ok:three /t", f"... which gets through with the token ({got})")
    for x in (sb, off, priv):
        x.kill()
    print(f"{len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


main()
