#!/usr/bin/env bash
# One E2B endpoint for the fleet (issue 14, docs/e2b.md "Gateway"): a real
# redis-server, workers joined with --e2b-ingress on loopback, gateways
# (`sandfleet-coordinator serve --e2b-listen`), and the official e2b SDK.
#   - 12 sandboxes created at once on two workers capped at 6 all work, 6
#     on each; the 13th gets E2B's 429
#   - commands, files, Host routing through the gateway; list from the broker
#   - a gateway killed -9 and restarted: all 12 still answer
#   - two gateways at once give the same answers
#   - the ingress port without the gateway's secret is refused
#   - a worker killed -9: its sandboxes leave the list within its lease,
#     calls on them answer E2B's 502, new creates go to the other worker
#   - a draining worker (SIGTERM) takes no new sandboxes
#   - on Kafka, a clear error at start
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/redis.sh"
W="$SF_BIN/sandfleet-worker"
C="$SF_BIN/sandfleet-coordinator"
LEASE=3000
unset E2B_API_KEY E2B_API_URL E2B_SANDBOX_URL E2B_DOMAIN SANDFLEET_E2B_GATEWAY_SECRET

. "$SF_SRC/tests/lib/e2b_venv.sh"
VENV=$(sf_e2b_venv)
[ -n "$VENV" ] || { not_ok "the official e2b SDK could not be installed"; t_done; exit 1; }
PY="$VENV/bin/python"

redis_start "$T_TMP/redis" || exit 1
t_cleanup_hooks+=("redis_cleanup")
declare -A PIDS GWPORT HTTPPORT
t_cleanup_hooks+=('for p in "${PIDS[@]}"; do kill -9 $p 2>/dev/null; done')

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$SECRET" >"$T_TMP/secret"
KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '# fleet keys\n%s\n' "$KEY" >"$T_TMP/keys"
chmod 600 "$T_TMP/secret" "$T_TMP/keys"
export SANDFLEET_E2B_GATEWAY_SECRET_FILE=$T_TMP/secret
free_port() { redis_free_port; }

worker_up() {   # ID [ARGS...]
  local id=$1; shift
  "$W" --broker "$REDIS_URL" --worker-id "$id" --e2b-ingress 127.0.0.1:0 --e2b-max-sandboxes 6 \
    --lease-ms $LEASE --concurrency 1 --grace-s 20 "$@" >>"$T_TMP/$id.log" 2>&1 &
  PIDS[$id]=$!
}
gateway_up() {  # NAME [PORT [FLAGS...]]
  local name=$1 port=${2:-}
  [ -n "$port" ] || port=$(free_port)
  shift; shift 2>/dev/null
  [ -n "${HTTPPORT[$name]:-}" ] || HTTPPORT[$name]=$(free_port)
  "$C" serve --broker "$REDIS_URL" --http "127.0.0.1:${HTTPPORT[$name]}" --id "$name" --lease-ms $LEASE \
    --e2b-listen "127.0.0.1:$port" --e2b-api-key-file "$T_TMP/keys" "$@" >>"$T_TMP/$name.log" 2>&1 &
  PIDS[$name]=$!
  GWPORT[$name]=$port
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0; sleep 0.05; done
  return 1
}
registered() { [ "$(rcli ZCARD sf:e2b:workers)" = "$1" ]; }
# What gateway G's worker table says (its /metrics): sees G STATE N
sees() { curl -s "http://127.0.0.1:${HTTPPORT[$1]}/metrics" | grep -q "^sandfleet_e2b_gateway_workers{state=\"$2\"} $3\$"; }
wait_for() {    # SECONDS COMMAND...: poll until it succeeds
  local t=$1; shift
  local end=$((SECONDS + t))
  while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.05; done
  "$@"
}
sdk() {         # GATEWAY PHASE ARGS...
  local g=$1; shift
  E2B_API_KEY=$KEY E2B_API_URL="http://127.0.0.1:${GWPORT[$g]}" E2B_SANDBOX_URL="http://127.0.0.1:${GWPORT[$g]}" \
    "$PY" "$SF_SRC/tests/integration/e2b_gateway.py" "$@"
}
ingress_of() { rcli HGET sf:e2b:workers:info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ingress"])'; }

# --- the fleet ------------------------------------------------------------------
worker_up w1
worker_up w2
check "two workers join the E2B fleet (heartbeats in sf:e2b:workers)" wait_for 10 registered 2
check "gateway A serves /health" gateway_up A
check "gateway A's worker table has both workers live" wait_for 10 sees A live 2

# --- 12 at once on 2 x 6, the 13th refused ----------------------------------------
sdk A burst 12 burst >"$T_TMP/burst.json" 2>"$T_TMP/burst.err"
cat "$T_TMP/burst.err" | tail -3
check "12 sandboxes created at once through the gateway all work" jtrue "$T_TMP/burst.json" 'len(d["ids"]) == 12 and d["ok"] == 12'
check "they are spread 6 and 6 over the two workers" \
  bash -c "[ \$(redis-cli -p $REDIS_PORT SCARD sf:e2b:w:w1) = 6 ] && [ \$(redis-cli -p $REDIS_PORT SCARD sf:e2b:w:w2) = 6 ]"
check "the 13th gets E2B's 429 with the fleet's capacity (12)" \
  jtrue "$T_TMP/burst.json" 'd["extra"].startswith("429") and "concurrent E2B sandboxes (12)" in d["extra"]'
IDS=$(jget "$T_TMP/burst.json" '" ".join(d["ids"])')
W1IDS=$(rcli SMEMBERS sf:e2b:w:w1 | tr '\n' ' ')
W2IDS=$(rcli SMEMBERS sf:e2b:w:w2 | tr '\n' ' ')

sdk A list burst >"$T_TMP/listA.json"
check "Sandbox.list (metadata filter, pages of 5) answers the 12 from the broker" \
  jtrue "$T_TMP/listA.json" "sorted(d['ids']) == sorted('$IDS'.split())"

# a worker serving E2B sandboxes pulls tasks at the same time
rcli XADD sf:default:tasks '*' task '{"v":1,"id":"gw-task","run_id":"gw-run","step":"echo","run":"cat","input":{"both":"at once"},"reply_to":"sf:reply:gw"}' >/dev/null
rcli XREAD BLOCK 20000 STREAMS sf:reply:gw 0-0 >"$T_TMP/task.out"
check "the workers also pull tasks while they serve the 12 sandboxes" grep -q '"both":"at once"' "$T_TMP/task.out"

# --- routing by Host and by header, the API key, a bogus sandbox -----------------------
S1=$(echo $W1IDS | cut -d' ' -f1)
TOK=$(rcli HGET sf:e2b:sbx:$S1 r | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
GA=http://127.0.0.1:${GWPORT[A]}
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: 49983-$S1.sandfleet.local" -H "X-Access-Token: $TOK" \
  -X POST "$GA/files?path=/tmp/host.txt" -H 'Content-Type: application/octet-stream' --data-binary by-host)
got=$(curl -s -H "E2b-Sandbox-Id: $S1" -H "X-Access-Token: $TOK" "$GA/files?path=/tmp/host.txt")
check "envd through the gateway by Host 49983-<id>.<domain> and by E2b-Sandbox-Id" bash -c "[ $code = 200 ] && [ '$got' = by-host ]"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "E2b-Sandbox-Id: $S1" -H "X-Access-Token: wrong" "$GA/files?path=/tmp/host.txt")
check "a wrong envd token is refused by the owning worker (401)" [ "$code" = 401 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$GA/v2/sandboxes")
check "the REST API without X-API-Key is 401 at the gateway" [ "$code" = 401 ]
code=$(curl -s -o "$T_TMP/nf" -w '%{http_code}' -H "E2b-Sandbox-Id: iaaaaaaaaaaaaaaaaaaaa" "$GA/health")
check "envd of an unknown sandbox: E2B's 502 'sandbox not found'" bash -c "[ $code = 502 ] && grep -q 'The sandbox was not found' '$T_TMP/nf'"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "$GA/sandboxes/iaaaaaaaaaaaaaaaaaaaa")
check "REST on an unknown sandbox: 404" [ "$code" = 404 ]
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" -X POST "$GA/v2/sandboxes" \
  -H 'Content-Type: application/json' -H 'Content-Length: 5000000' --data-binary @/dev/null --max-time 5)
check "a create body over 1 MiB is refused before it is read (413)" [ "$code" = 413 ]

# get_host: a server on port 8000 inside the sandbox (tests/integration/e2b_net_server.py)
# reached through the gateway by its Host <port>-<id>.<domain>: HTTP, a 1 MB body both
# ways, a chunked body, a streamed answer, and a WebSocket (the gateway's tunnel)
sdk A gethost "$S1" "$SF_SRC/tests/integration/e2b_net_server.py" >"$T_TMP/gethost.json" 2>"$T_TMP/gethost.err" ||
  tail -5 "$T_TMP/gethost.err"
cat "$T_TMP/gethost.json"; echo
check "get_host through the gateway: HTTP to a port of the sandbox" jtrue "$T_TMP/gethost.json" 'd["http"] == "gw /ping"'
check "get_host through the gateway: a 1 MB POST in and out" jtrue "$T_TMP/gethost.json" 'd["post_1mb"]'
check "get_host through the gateway: a chunked request body" jtrue "$T_TMP/gethost.json" 'd["chunked"] == "gw:abcd"'
check "get_host through the gateway: a streamed answer's first part before the rest exists" \
  jtrue "$T_TMP/gethost.json" 'd["stream_first"] == "first\n" and d["stream_rest"] == "second\n"'
check "get_host through the gateway: a WebSocket upgrade (101) and frames both ways" \
  jtrue "$T_TMP/gethost.json" 'd["ws_status"].startswith("HTTP/1.1 101") and d["ws_echo"] == "gw:hello"'

# --- the ingress without the secret -------------------------------------------------------
IN2=$(ingress_of w2)
S2=$(echo $W2IDS | cut -d' ' -f1)
code=$(curl -s -o "$T_TMP/ing" -w '%{http_code}' -X POST "http://$IN2/v2/sandboxes" -d '{"templateID":"base"}')
check "a worker's ingress without the gateway's signature: 401, nothing created" \
  bash -c "[ $code = 401 ] && grep -q 'gateway only' '$T_TMP/ing' && [ \$(redis-cli -p $REDIS_PORT SCARD sf:e2b:w:w2) = 6 ]"
sign() {  # METHOD PATH HOST [SKEW_MS]: a Sandfleet-Gateway-Auth value
  python3 - "$SECRET" "$@" <<'PY'
import hashlib, hmac, sys, time
secret, method, path, host = sys.argv[1:5]
ts = str(int(time.time() * 1000) + int(sys.argv[5] if len(sys.argv) > 5 else 0))
msg = "\n".join(["v1", ts, method, path, host, ""]).encode()
print("v1 %s %s" % (ts, hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()))
PY
}
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Sandfleet-Gateway-Auth: $(sign GET /sandboxes/$S2 $IN2)" "http://$IN2/sandboxes/$S2")
check "a correctly signed request is served by the ingress (the check can pass)" [ "$code" = 200 ]
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Sandfleet-Gateway-Auth: $(sign GET /sandboxes/$S2 $IN2)" "http://$IN2/v2/sandboxes")
check "a signature for one path does not open another (401)" [ "$code" = 401 ]
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Sandfleet-Gateway-Auth: $(sign GET /sandboxes/$S2 $IN2 -120000)" "http://$IN2/sandboxes/$S2")
check "a signature two minutes old is refused (401)" [ "$code" = 401 ]
printf 'wrong-secret-wrong-secret\n' >"$T_TMP/badsecret"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Sandfleet-Gateway-Auth: v1 $(date +%s)000 $(printf '0%.0s' $(seq 64))" "http://$IN2/sandboxes/$S2")
check "a forged signature is refused (401)" [ "$code" = 401 ]

# --- kill -9 the gateway, start it again: nothing lost ---------------------------------------
kill -9 "${PIDS[A]}"; wait "${PIDS[A]}" 2>/dev/null
check "gateway A restarted on its port after kill -9" gateway_up A "${GWPORT[A]}"
sdk A answer $IDS >"$T_TMP/answerA.json" 2>&1
check "after the restart all 12 sandboxes still answer (connect, command, their file)" \
  jtrue "$T_TMP/answerA.json" 'd["ok"] == 12'

# --- two gateways at once -----------------------------------------------------------------------
check "gateway B starts beside A" gateway_up B
sdk B list burst >"$T_TMP/listB.json"
sdk A list burst >"$T_TMP/listA2.json"
check "A and B list the same sandboxes" bash -c "cmp -s '$T_TMP/listA2.json' '$T_TMP/listB.json' && grep -q '$S1' '$T_TMP/listB.json'"
sdk B answer $IDS >"$T_TMP/answerB.json" 2>&1
check "B reaches every sandbox created through A" jtrue "$T_TMP/answerB.json" 'd["ok"] == 12'

# --- a worker killed -9 ------------------------------------------------------------------------
K3=$(echo $W2IDS | cut -d' ' -f1-3)
sdk B kill $K3 >"$T_TMP/kill3.json"
check "three of w2's sandboxes killed through B" jtrue "$T_TMP/kill3.json" 'd["killed"] == 3'
sdk A list burst >"$T_TMP/list9.json"
check "a kill through one gateway leaves the list of the other at once (9)" jtrue "$T_TMP/list9.json" 'len(d["ids"]) == 9'
TOK1=$(rcli HGET sf:e2b:sbx:$S1 r | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
kill -9 "${PIDS[w1]}"; wait "${PIDS[w1]}" 2>/dev/null; unset "PIDS[w1]"
t0=$(date +%s%N)
code=$(curl -s -o "$T_TMP/dead" -w '%{http_code}' -H "E2b-Sandbox-Id: $S1" -H "X-Access-Token: $TOK1" \
  -X POST "$GA/process.Process/List" -H 'Content-Type: application/json' -d '{}')
check "a call on a dead worker's sandbox answers E2B's 502 'sandbox not found'" \
  bash -c "[ $code = 502 ] && grep -q 'The sandbox was not found' '$T_TMP/dead'"
listed() { curl -s -H "X-API-Key: $KEY" "$GA/v2/sandboxes?metadata=tag%3Dburst" | grep -o '"sandboxID"' | wc -l; }
three_left() { [ "$(listed)" = 3 ]; }
wait_for 10 three_left
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# Gone once its last heartbeat (<= the kill) is a lease old; the slack is
# the polling on a loaded machine.
check "its 6 sandboxes leave the list within its lease ($ms ms after the kill; lease ${LEASE} ms)" \
  bash -c "[ '$(listed)' = 3 ] && [ $ms -le $((LEASE + 1500)) ]"
sdk A create 3 after >"$T_TMP/after.json" 2>"$T_TMP/after.err"
check "new creates succeed, on the live worker" \
  bash -c "$(declare -f jtrue); jtrue '$T_TMP/after.json' 'len(d[\"ids\"]) == 3' && [ \$(redis-cli -p $REDIS_PORT SCARD sf:e2b:w:w2) = 6 ]"

# --- a draining worker takes no new sandboxes -----------------------------------------------
worker_up w3
check "w3 joins" wait_for 10 registered 2
kill -TERM "${PIDS[w2]}"
draining() { rcli HGET sf:e2b:workers:info w2 | grep -q '"draining":true'; }
check "w2 says it is draining in its next heartbeat" wait_for 5 draining
check "gateway A's table: w2 draining" wait_for 5 sees A draining 1
sdk A create 2 drain >"$T_TMP/drain.json" 2>"$T_TMP/drain.err"
check "creates during w2's drain go to w3" \
  bash -c "[ \$(redis-cli -p $REDIS_PORT SCARD sf:e2b:w:w3) = 2 ] && [ \$(redis-cli -p $REDIS_PORT SCARD sf:e2b:w:w2) = 6 ]"
sdk A answer $(echo $W2IDS | cut -d' ' -f4-) >"$T_TMP/drainans.json" 2>&1
jtrue "$T_TMP/drainans.json" 'd["ok"] == 3' || { cat "$T_TMP/drainans.json"; tail -5 "$T_TMP/w2.log"; }
check "w2's sandboxes are still served while it drains" jtrue "$T_TMP/drainans.json" 'd["ok"] == 3'

# --- Kafka: a clear error naming what is missing --------------------------------------------
"$C" serve --broker kafka://127.0.0.1:1 --http 127.0.0.1:0 --e2b-listen 127.0.0.1:0 >"$T_TMP/kafka.log" 2>&1; rc=$?
check "serve --e2b-listen on kafka:// exits 2 naming the missing broker ops" \
  bash -c "[ $rc = 2 ] && grep -qF 'missing: the e2b_* broker ops' '$T_TMP/kafka.log'"

# --- bounds (a third gateway, small limits): connections per address, the head's deadline ------
check "gateway C starts with 8 connections per address and a 1 s head deadline" \
  gateway_up C "" --e2b-max-conns-per-ip 8 --e2b-header-timeout-s 1
python3 - "${GWPORT[C]}" >"$T_TMP/bounds.out" 2>&1 <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def conn(src):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s
# 8 connections from 127.0.0.2 hold a half-sent head each; the 9th is refused
held = [conn("127.0.0.2") for _ in range(8)]
for s in held:
    s.sendall(b"GET /health HTTP/1.1\r\nHo")
ninth = conn("127.0.0.2")
ninth.settimeout(5)
refused = b" 503 " in ninth.recv(4096)
# meanwhile another address is served at once
t0 = time.time()
other = conn("127.0.0.1")
other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
other.settimeout(5)
healthy = other.recv(4096).startswith(b"HTTP/1.1 200") and time.time() - t0 < 1
# the half-sent heads are answered 408 and closed at their 1 s deadline
held[0].settimeout(5)
t0 = time.time()
got = held[0].recv(4096)
cut = b" 408 " in got and time.time() - t0 < 4
print("refused" if refused else "not refused", "healthy" if healthy else "not healthy",
      "cut" if cut else "not cut: %r" % got[:40])
PY
check "gateway bounds: the 9th connection from one address is refused (503)" grep -q '^refused' "$T_TMP/bounds.out"
check "gateway bounds: another address is served at once meanwhile" grep -q ' healthy' "$T_TMP/bounds.out"
check "gateway bounds: a head not complete within 1 s is cut (408)" grep -q ' cut$' "$T_TMP/bounds.out"

# A clean stop of a gateway (under ASan this is where leaks would show).
kill -TERM "${PIDS[B]}"; wait "${PIDS[B]}"; rc=$?; unset "PIDS[B]"
check "gateway B stops cleanly on SIGTERM (exit 0)" [ $rc = 0 ]
for p in "${PIDS[@]}"; do kill -9 $p 2>/dev/null; wait $p 2>/dev/null; done
PIDS=()
echo "    (the whole test: $SECONDS s)"
t_done
