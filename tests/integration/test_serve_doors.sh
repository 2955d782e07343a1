#!/bin/bash
# serve's front door (docs/security.md, "Front doors"), tried as an attacker
# on loopback would:
#  1. no token, a wrong token: 401 on every API route, before any body is
#     read (a 15 MiB upload is answered unread); the probes and the static
#     page stay open;
#  2. scopes: a client token sees and reads only its own runs (another's is
#     404), not the fleet status (403); an admin sees everything;
#  3. a non-loopback --http without any token is refused at start;
#  4. the tokens are in neither /proc/PID/cmdline nor /proc/PID/environ, nor
#     in the log;
#  5. reply_to outside sf:reply:* is refused (HTTP 400; a stream submission
#     gets a rejected document and nothing is written to the foreign key);
#  6. a 15 MiB submission is parsed off the HTTP thread: /healthz answers
#     meanwhile.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init doors
PORT=$(redis_free_port)
H="http://127.0.0.1:$PORT"
worker_start w1 --concurrency 2
ADMIN="admin-$$-$RANDOM-0123456789abcdef"
ALICE="alice-$$-$RANDOM-0123456789abcdef"
BOB="bob-$$-$RANDOM-0123456789abcdef"
printf '# test tokens\nalice client %s\nbob   client %s\n' "$ALICE" "$BOB" >"$T/tokens"
chmod 600 "$T/tokens"
SANDFLEET_API_TOKEN="$ADMIN" "$SF_BIN/sandfleet-coordinator" serve --broker "$REDIS_URL" --http "127.0.0.1:$PORT" \
    --id doors --api-token-file "$T/tokens" >>"$T/serve.log" 2>&1 &
SPID=$!
trap 'kill -9 $SPID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 'curl -sf "$H/readyz" >/dev/null' || fail "serve did not become ready"

# http_code METHOD PATH [TOKEN] [curl args...]: the status code
http_code() {
    local m=$1 p=$2 tok=${3:-}; shift 3
    curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' -X "$m" ${tok:+-H "Authorization: Bearer $tok"} "$@" "$H$p"
}
post_run() {   # post_run TOKEN NAME: the new run's id
    http_code POST /api/runs "$1" -d "{\"workflow\": {\"name\": \"$2\", \"steps\": [{\"id\": \"s\", \"run\": \"cat\", \"input\": 1}]}}" \
        >"$T/code"
    [ "$(cat "$T/code")" = 202 ] || fail "POST as $2: $(cat "$T/code") $(cat "$T/body")"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/body"
}

# --- 1. no token / a wrong token: 401 everywhere under /api, before the body -------------
SUB='{"workflow": {"name": "x", "steps": [{"id": "s", "run": "cat"}]}}'
for tok in "" "wrong-token-0123456789abcdef"; do
    for route in "GET /api/runs" "GET /api/runs/some-run" "GET /api/status" "GET /api/nope" "POST /api/runs"; do
        set -- $route
        code=$(http_code "$1" "$2" "$tok" -d "$SUB")
        [ "$code" = 401 ] || fail "$route with token '${tok:-none}': $code (want 401)"
        grep -qi '^WWW-Authenticate: Bearer' "$T/head" || fail "$route: 401 without WWW-Authenticate"
    done
done
# A 15 MiB body announced without a token is answered before it is sent.
python3 - "$PORT" <<'PY' || fail "an unauthenticated upload was not refused on its head"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /api/runs HTTP/1.1\r\nHost: t\r\nContent-Length: 15728640\r\n\r\n")
s.settimeout(5)
head = s.recv(4096)
assert head.startswith(b"HTTP/1.1 401"), head[:80]
PY
for p in /healthz /readyz /metrics / /app.js; do
    [ "$(http_code GET $p "")" = 200 ] || fail "open route $p: not 200 without a token"
done
grep -qi "^Content-Security-Policy: default-src 'self'" <(curl -sI "$H/") || fail "the page has no CSP"

# --- 2. scopes -------------------------------------------------------------------------------
ARUN=$(post_run "$ALICE" alices)
BRUN=$(post_run "$BOB" bobs)
XRUN=$(post_run "$ADMIN" admins)
wait_for 30 '[ "$(http_code GET /api/runs/$ARUN "$ALICE")" = 200 ] && grep -q "\"state\":\"succeeded\"" "$T/body"' \
    || fail "alice cannot read her own run: $(cat "$T/body")"
[ "$(http_code GET /api/runs/$ARUN "$BOB")" = 404 ] || fail "bob reads alice's run"
[ "$(http_code GET /api/runs/$XRUN "$BOB")" = 404 ] || fail "bob reads the admin's run"
[ "$(http_code GET /api/runs/no-such-run "$BOB")" = 404 ] || fail "bob: unknown run not 404"
[ "$(http_code GET /api/runs "$BOB")" = 200 ] || fail "bob's list"
python3 - "$T/body" "$BRUN" <<'PY' || fail "bob's list shows other runs: $(cat "$T/body")"
import json, sys
assert [r["run_id"] for r in json.load(open(sys.argv[1]))] == [sys.argv[2]]
PY
[ "$(http_code GET /api/status "$BOB")" = 403 ] || fail "a client token reads the fleet status"
[ "$(http_code GET /api/status "$ADMIN")" = 200 ] || fail "the admin cannot read the status"
[ "$(http_code GET /api/runs "$ADMIN")" = 200 ] || fail "the admin's list"
python3 - "$T/body" "$ARUN" "$BRUN" "$XRUN" <<'PY' || fail "the admin does not see every run: $(cat "$T/body")"
import json, sys
assert set(r["run_id"] for r in json.load(open(sys.argv[1]))) == set(sys.argv[2:])
PY
[ "$(http_code GET /api/runs/$BRUN "$ADMIN")" = 200 ] || fail "the admin cannot read bob's run"

# --- reply_to stays in its namespace --------------------------------------------------------
code=$(http_code POST /api/runs "$ALICE" -d '{"workflow": {"name": "r", "steps": [{"id": "s", "run": "cat"}]}, "reply_to": "myapp:orders"}')
[ "$code" = 400 ] || fail "reply_to myapp:orders over HTTP: $code (want 400)"
grep -q "outside the reply namespace 'sf:reply:\*'" "$T/body" || fail "400 without the reason: $(cat "$T/body")"
sid=$(rcli XADD sf:submissions '*' workflow '{"name": "r", "steps": [{"id": "s", "run": "cat"}]}' reply_to myapp:orders)
wait_for 10 'rcli GET "sf:run:sub-$sid:doc" | grep -q "outside the reply namespace"' \
    || fail "a stream submission with a foreign reply_to was not rejected: $(rcli GET "sf:run:sub-$sid:doc")"
[ "$(rcli EXISTS myapp:orders)" = 0 ] || fail "serve wrote into myapp:orders"
code=$(http_code POST /api/runs "$ALICE" -d '{"workflow": {"name": "r", "steps": [{"id": "s", "run": "cat", "input": 7}]}, "reply_to": "sf:reply:alice"}')
[ "$code" = 202 ] || fail "reply_to sf:reply:alice refused: $code $(cat "$T/body")"
rcli XREAD BLOCK 20000 STREAMS sf:reply:alice 0-0 | grep -q '"status":"succeeded"' || fail "no document on sf:reply:alice"

# --- a large submission is parsed off the HTTP thread -----------------------------------------
python3 - "$PORT" "$ADMIN" <<'PY' || fail "/healthz waited for a large submission to be parsed"
import http.client, json, sys, threading, time
port, token = int(sys.argv[1]), sys.argv[2]
files = {f"f{i}.py": "x" * 1000 for i in range(14000)}
steps = [{"id": f"s{i}", "run": "cat", "files": {f"f{k}.py": f"f{k}.py" for k in range(i * 100, i * 100 + 100)}}
         for i in range(140)]
body = json.dumps({"workflow": {"name": "big", "steps": steps}, "files": files}).encode()
done = {}
def post():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.monotonic()
    c.request("POST", "/api/runs", body, {"Authorization": "Bearer " + token})
    done["status"] = c.getresponse().status
    done["s"] = time.monotonic() - t0
t = threading.Thread(target=post)
t.start()
worst = 0.0
while t.is_alive():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.monotonic()
    c.request("GET", "/healthz")
    assert c.getresponse().status == 200
    worst = max(worst, time.monotonic() - t0)
    time.sleep(0.02)
t.join()
print(f"{len(body) >> 20} MiB submission: {done['status']} in {done['s']:.2f} s; /healthz meanwhile at worst {worst * 1000:.0f} ms")
assert done["status"] == 202, done
assert worst < max(0.25, done["s"] / 3), (worst, done)
PY

# --- 3. no token on a non-loopback address: refused at start ------------------------------
env -u SANDFLEET_API_TOKEN "$SF_BIN/sandfleet-coordinator" serve --broker "$REDIS_URL" \
    --http "0.0.0.0:$(redis_free_port)" --id doors-open >"$T/open.log" 2>&1
rc=$?
[ $rc = 2 ] || fail "serve on 0.0.0.0 without a token exited $rc (want 2): $(cat "$T/open.log")"
grep -q "not a loopback address" "$T/open.log" || fail "no reason given: $(cat "$T/open.log")"

# --- 4. the tokens stay out of argv, the environment and the log -----------------------------
for f in cmdline environ; do
    tr '\0' '\n' <"/proc/$SPID/$f" >"$T/$f"
    grep -qF -e "$ADMIN" -e "$ALICE" -e "$BOB" "$T/$f" && fail "a token is in /proc/PID/$f"
done
grep -qF -e "$ADMIN" -e "$ALICE" -e "$BOB" "$T/serve.log" "$T/w1.log" && fail "a token is in a log"
echo "PASS"
