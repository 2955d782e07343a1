#!/bin/bash
# HTTP callbacks end to end: a real redis-server, real workers (process
# sandbox), a real receiver (cb_receiver.py on 127.0.0.1, allowed
# explicitly with --callback-allow 127.0.0.1):
#  1. success, failure and timeout results are POSTed; the body is the
#     stored result; headers carry delivery id, attempt, timestamp and a
#     signature that Python's hmac accepts; custom headers arrive;
#  2. retries after 500s and after a dropped connection (same delivery id,
#     attempt 1, 2, 3); Retry-After: 2 is honoured (base delay 300 ms);
#  3. a 400 is not retried: one request, then the dead list with the status;
#     a tampered body is rejected by the receiver (401) and dead-lettered;
#  4. kill -9 of the delivering worker while a delivery waits for its retry:
#     the delivery is still in Redis, a new worker delivers it;
#  5. without the allowlist, loopback is refused with a reason in the dead
#     list and no request reaches the receiver;
#  6. a run's callback (coordinator --callback-url) is delivered by a worker;
#  7. `callbacks list --dead`, `callbacks retry --id`, `callbacks purge`;
#  8. the secret appears in no log, no Redis key and not in the AOF.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init callbacks
export SANDFLEET_SECRET_HOOK="hook-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
python3 "$SF_SRC/tests/integration/cb_receiver.py" "$T/port" "$T/received.jsonl" "$T/flag" \
    >"$T/receiver.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 '[ -s "$T/port" ]' || fail "receiver did not start"
PORT=$(cat "$T/port")
BASE="http://127.0.0.1:$PORT"
touch "$T/received.jsonl"

# rq EXPR: a Python expression over R (the requests received so far)
rq() { python3 -c 'import json,sys; R=[json.loads(l) for l in open(sys.argv[1])]; print(eval(sys.argv[2]))' "$T/received.jsonl" "$1"; }
count() { rq "len([r for r in R if r['path'] == '$1'])"; }
cbjson() { # cbjson PATH [SECRET_REF]: a callback spec
    if [ -n "${2:-}" ]; then echo "{\"callback\":{\"url\":\"$BASE$1\",\"secret_ref\":\"$2\",\"headers\":{\"X-Custom\":\"abc\"}}}"
    else echo "{\"callback\":{\"url\":\"$BASE$1\"}}"; fi
}
add() { # add QUEUE ID CMD EXTRA_JSON
    rcli XADD "sf:$1:tasks" '*' task "$(task_json "$2" cbrun "$3" "$4")" >/dev/null
}
merge() { python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$1" "$2"; }

worker_start w1 --concurrency 2 --callback-allow 127.0.0.1 --callback-retry-base-ms 300 --callback-timeout-ms 3000

# --- 1. success, failure, timeout --------------------------------------------------
add default t-ok cat "$(cbjson /ok/t-ok HOOK)"
add default t-fail 'echo broken >&2; exit 3' "$(cbjson /ok/t-fail HOOK)"
add default t-slow 'sleep 5' "$(merge "$(cbjson /ok/t-slow HOOK)" '{"timeout_s":0.5}')"
wait_for 20 '[ "$(count /ok/t-ok)" = 1 ] && [ "$(count /ok/t-fail)" = 1 ] && [ "$(count /ok/t-slow)" = 1 ]' \
    || fail "success/failure/timeout callbacks not all delivered: $(rq '[r["path"] for r in R]')"
[ "$(rq "[r for r in R if r['path']=='/ok/t-ok'][0]['sig_ok']")" = True ] || fail "signature not verified by python hmac"
stored=$(rcli XRANGE sf:run:cbrun:results - + | grep '"task_id":"t-ok"')
python3 - "$T/received.jsonl" "$stored" <<'PY' || fail "t-ok: body/headers wrong"
import json, sys
R = [json.loads(l) for l in open(sys.argv[1])]
r = [x for x in R if x["path"] == "/ok/t-ok"][0]
h = {k.lower(): v for k, v in r["headers"].items()}
assert json.loads(r["body"]) == json.loads(sys.argv[2]), "body is not the stored result"
assert json.loads(r["body"])["status"] == "ok"
assert h["sandfleet-delivery"] == "task:t-ok:1", h
assert h["sandfleet-attempt"] == "1" and h["sandfleet-kind"] == "task", h
assert h["content-type"] == "application/json" and h["x-custom"] == "abc", h
assert h["sandfleet-signature"].startswith("v1=") and h["sandfleet-timestamp"].isdigit()
PY
# The verifier shown in docs/protocol.md §8, as written: accepts the real
# delivery, rejects a tampered body, a wrong secret and a stale timestamp.
sed -n '/<!-- example:callback-verify -->/,/<!-- \/example -->/p' "$SF_SRC/docs/protocol.md" | sed '/^```\|^<!--/d' >"$T/verify.py"
grep -q 'compare_digest' "$T/verify.py" || fail "the verify example in docs/protocol.md moved"
python3 - "$T/verify.py" "$T/received.jsonl" <<'PY' || fail "the documented verifier does not work"
import json, os, sys
exec(open(sys.argv[1]).read())
r = [json.loads(l) for l in open(sys.argv[2]) if '"/ok/t-ok"' in l][0]
secret, body = os.environ["SANDFLEET_SECRET_HOOK"].encode(), r["body"].encode()
assert verify(secret, r["headers"], body)
assert not verify(secret, r["headers"], body.replace(b'"ok"', b'"OK"'))
assert not verify(b"wrong", r["headers"], body)
old = dict(r["headers"], **{"Sandfleet-Timestamp": str(int(r["headers"]["Sandfleet-Timestamp"]) - 301)})
assert not verify(secret, old, body)
PY
[ "$(rq "json.loads([r for r in R if r['path']=='/ok/t-fail'][0]['body'])['status']")" = error ] || fail "failure result not posted"
[ "$(rq "json.loads([r for r in R if r['path']=='/ok/t-slow'][0]['body'])['status']")" = timeout ] || fail "timeout result not posted"
rcli XRANGE sf:default:dead - + | grep -q 'error after 1 attempt: exit code 3' || fail "failed task not dead-lettered"

# --- 2. retries: 500s, a dropped connection, Retry-After ---------------------------------
add default t-500 cat "$(cbjson /fail500x2/t-500 HOOK)"
add default t-drop cat "$(cbjson /drop1/t-drop HOOK)"
add default t-ra cat "$(cbjson /ra/t-ra HOOK)"
wait_for 30 '[ "$(count /fail500x2/t-500)" = 3 ] && [ "$(count /drop1/t-drop)" = 2 ] && [ "$(count /ra/t-ra)" = 2 ]' \
    || fail "retries incomplete: $(rq '[(r["path"], r["code"]) for r in R]')"
[ "$(rq "[r['headers']['Sandfleet-Attempt'] for r in R if r['path']=='/fail500x2/t-500']")" = "['1', '2', '3']" ] \
    || fail "attempt header not 1,2,3"
[ "$(rq "len({r['headers']['Sandfleet-Delivery'] for r in R if r['path']=='/fail500x2/t-500'})")" = 1 ] \
    || fail "delivery id changed between attempts"
gap=$(rq "(lambda t: t[1]-t[0])([r['t'] for r in R if r['path']=='/ra/t-ra'])")
python3 -c "import sys; sys.exit(0 if $gap >= 1.9 else 1)" || fail "Retry-After: 2 not honoured (gap $gap s)"
[ "$(rcli HLEN sf:default:callbacks)" = 0 ] && [ "$(rcli ZCARD sf:default:callbacks:due)" = 0 ] \
    || fail "delivered callbacks left pending"

# --- 3. 400 -> dead, no retry; tampered body -> 401 -> dead ------------------------------
add default t-400 cat "$(cbjson /bad400/t-400 HOOK)"
add default t-tamper cat "$(cbjson /tamper/t-tamper HOOK)"
wait_for 15 '[ -n "$(rcli HGET sf:default:callbacks:dead task:t-400:1)" ] && [ -n "$(rcli HGET sf:default:callbacks:dead task:t-tamper:1)" ]' \
    || fail "400/401 not dead-lettered"
# A dead delivery is never due again: one attempt recorded, one request seen.
rcli HGET sf:default:callbacks:dead task:t-400:1 | grep -q '"attempts":1' || fail "a 400 was retried"
[ "$(count /bad400/t-400)" = 1 ] || fail "a 400 was retried ($(count /bad400/t-400) requests)"
rcli HGET sf:default:callbacks:dead task:t-400:1 | grep -q '"last_error":"HTTP 400' || fail "dead record lacks the status"
[ "$(rq "[r['sig_ok'] for r in R if r['path']=='/tamper/t-tamper']")" = "[False]" ] || fail "tampered body not rejected"
rcli HGET sf:default:callbacks:dead task:t-tamper:1 | grep -q 'HTTP 401' || fail "tamper: no 401 in the dead record"

# --- 4. kill -9 while a delivery waits for its retry ----------------------------------------
worker_start k1 --queue q2 --callback-allow 127.0.0.1 --callback-retry-base-ms 3000
add q2 t-kill cat "$(cbjson /flag/t-kill HOOK)"
wait_for 15 '[ "$(count /flag/t-kill)" -ge 1 ]' || fail "kill: first attempt not made"
kill -9 "${WPID[k1]}"; wait "${WPID[k1]}" 2>/dev/null; unset "WPID[k1]"
rcli HGET sf:q2:callbacks task:t-kill:1 | grep -q '"attempts":1' || fail "kill: pending delivery not in Redis"
[ -n "$(rcli ZSCORE sf:q2:callbacks:due task:t-kill:1)" ] || fail "kill: delivery not scheduled"
touch "$T/flag"
worker_start k2 --queue q2 --callback-allow 127.0.0.1 --callback-retry-base-ms 3000
wait_for 20 '[ "$(rq "len([r for r in R if r[\"path\"]==\"/flag/t-kill\" and r[\"code\"]==200])")" = 1 ]' \
    || fail "kill: delivery lost after kill -9 + restart"
grep -q 'callback task:t-kill:1 delivered' "$T/k2.log" || fail "kill: the new worker did not deliver it"

# --- 5. loopback denied without the allowlist -------------------------------------------------
worker_start d1 --queue q3 --callback-retry-base-ms 300
add q3 t-deny cat "$(cbjson /ok/t-deny HOOK)"
wait_for 15 '[ -n "$(rcli HGET sf:q3:callbacks:dead task:t-deny:1)" ]' || fail "deny: not dead-lettered"
deny=$(rcli HGET sf:q3:callbacks:dead task:t-deny:1)
echo "$deny" | grep -q 'is loopback: denied' || fail "deny: no clear reason: $deny"
echo "$deny" | grep -q '"attempts":0' || fail "deny: an attempt was counted"
[ "$(count /ok/t-deny)" = 0 ] || fail "deny: a request reached the receiver"

# --- 6. a run's callback ----------------------------------------------------------------------
cat >"$T/wf.json" <<'JSON'
{ "name": "cb-run", "steps": [ { "id": "a", "run": "cat", "input": {"x": 1} },
                               { "id": "b", "run": "cat", "needs": ["a"] } ] }
JSON
coord "$T/wf.json" --run-id cbrun1 --callback-url "$BASE/ok/run" --callback-secret-ref HOOK \
    --callback-header 'X-Run: yes' >"$T/run.json" 2>>"$T/coord.log" || fail "run with a callback failed"
wait_for 15 '[ "$(count /ok/run)" = 1 ]' || fail "run callback not delivered"
python3 - "$T/received.jsonl" "$T/run.json" <<'PY' || fail "run callback wrong"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"/ok/run"' in l][0]
h = {k.lower(): v for k, v in r["headers"].items()}
assert r["sig_ok"] is True and h["sandfleet-kind"] == "run" and h["x-run"] == "yes", h
assert h["sandfleet-delivery"] == "run:cbrun1", h
doc, mine = json.loads(r["body"]), json.load(open(sys.argv[2]))
assert doc == mine, "run callback body differs from the printed document"
assert doc["status"] == "succeeded"
PY
"$SF_BIN/sandfleet-coordinator" run "$T/wf.json" --callback-url "$BASE/ok/x" 2>"$T/nobroker.err"
[ $? = 2 ] && grep -q 'needs --broker' "$T/nobroker.err" || fail "--callback-url without --broker not refused"

# --- 7. the callbacks command ------------------------------------------------------------------
CB() { "$SF_BIN/sandfleet-coordinator" callbacks "$@" --broker "$REDIS_URL"; }
add default t-once cat "$(cbjson /once400/t-once HOOK)"
wait_for 15 '[ -n "$(rcli HGET sf:default:callbacks:dead task:t-once:1)" ]' || fail "once400 not dead"
CB list --dead >"$T/list.txt" || fail "callbacks list --dead failed"
grep -q 'task:t-400:1' "$T/list.txt" && grep -q 'HTTP 400' "$T/list.txt" || fail "list lacks t-400: $(cat "$T/list.txt")"
CB list --dead --json >"$T/list.json" || fail "callbacks list --json failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if any(e["id"]=="task:t-once:1" and e["header_names"]==["X-Custom"] and "headers" not in e and "body" not in e for e in d) else 1)' "$T/list.json" \
    || fail "list --json lacks t-once or shows more than header names"
CB retry --id task:t-once:1 | grep -q '1 callback(s) queued again' || fail "retry did not requeue"
wait_for 15 '[ "$(count /once400/t-once)" = 2 ]' || fail "replayed callback not delivered"
[ "$(rq "[r['headers']['Sandfleet-Attempt'] for r in R if r['path']=='/once400/t-once']")" = "['1', '1']" ] \
    || fail "replay did not start the attempts again"
CB retry --id nope >/dev/null 2>&1; [ $? = 1 ] || fail "retry of an unknown id should exit 1"
CB retry >/dev/null 2>&1; [ $? = 2 ] || fail "retry without --id/--all should exit 2"
CB purge --dead --all | grep -q 'removed from the dead list' || fail "purge failed"
[ "$(rcli HLEN sf:default:callbacks:dead)" = 0 ] || fail "purge left dead callbacks"

# --- 8. the secret is nowhere -----------------------------------------------------------------
worker_stop w1 || fail "w1 did not drain cleanly"
rcli BGREWRITEAOF >/dev/null
wait_for 20 'rcli INFO persistence | grep -q "^aof_rewrite_in_progress:0" &&
             rcli INFO persistence | grep -q "^aof_rewrite_scheduled:0"' || fail "the AOF rewrite did not finish"
if grep -rqa -- "$SANDFLEET_SECRET_HOOK" "$T"/*.log "$T/redis" "$T/list.txt" "$T/list.json"; then
    fail "the secret leaked into a log, the list output or Redis' files"
fi
for k in $(rcli --scan --pattern '*'); do
    rcli DUMP "$k" | grep -qa -- "$SANDFLEET_SECRET_HOOK" && fail "the secret is in Redis key $k"
done
echo "ok - callbacks: delivery, retries, Retry-After, 400/401 dead, kill -9, deny-by-default, run callback, CLI, no secret leaks"
