#!/usr/bin/env bash
# HTTP callbacks through Kafka, end to end: one real KRaft broker for the file,
# real workers (process sandbox), the receiver of the Redis test
# (cb_receiver.py on 127.0.0.1, allowed with --callback-allow 127.0.0.1):
#  1. success and failure results are POSTed; the body is the result on
#     sandfleet.results; the signature is accepted by Python's hmac;
#  2. retries after two 500s go through sandfleet.callbacks.retry: same
#     delivery id, attempts 1, 2, 3, and nothing left pending afterwards;
#  3. a 400 is not retried: one request, the delivery in the compacted dead
#     topic and in `callbacks list --dead` with the status;
#  4. kill -9 of the delivering worker while its delivery waits in the retry
#     topic: a new worker delivers it, once;
#  5. without the allowlist, loopback is refused (reason in the dead list,
#     no request);
#  6. a run's callback (coordinator --callback-url) is delivered by a worker,
#     and a resumed run (--run-id) does not queue it twice (once-marker);
#  7. `callbacks retry --id` replays a dead delivery (attempt 1 again),
#     `callbacks purge --dead --all` empties the list for good (a tombstone);
#     purging pending deliveries is refused with a reason;
#  8. the secret appears in no log and on no topic.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/kafka.sh"
command -v kcat >/dev/null || { echo "kcat missing (scripts/deps.sh test)"; exit 1; }
kfleet_init kafka-cb
export SANDFLEET_SECRET_HOOK="hook-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
python3 "$SF_SRC/tests/integration/cb_receiver.py" "$T/port" "$T/received.jsonl" "$T/flag" \
    >"$T/receiver.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; kfleet_cleanup' EXIT
wait_for 10 test -s "$T/port" || fail "receiver did not start"
BASE="http://127.0.0.1:$(cat "$T/port")"
touch "$T/received.jsonl"
C="$SF_BIN/sandfleet-coordinator"

rq() { python3 -c 'import json,sys; R=[json.loads(l) for l in open(sys.argv[1])]; print(eval(sys.argv[2]))' "$T/received.jsonl" "$1"; }
count() { rq "len([r for r in R if r['path'] == '$1'])"; }
cbjson() { echo "{\"callback\":{\"url\":\"$BASE$1\",\"secret_ref\":\"HOOK\"}}"; }
add() { # add TOPIC ID CMD EXTRA_JSON: a task produced as an integration would (key = task id)
    printf '%s\t%s\n' "$2" "$(task_json "$2" cbrun "$3" "$4")" | kcat_ -P -t "$1" -K$'\t' \
        || fail "producing $2"
}
CB() { "$C" callbacks "$@" --broker "$KAFKA_URL"; }
dead_has() { CB list --dead --json "${@:2}" 2>/dev/null | grep -q "$1"; }
WARGS=(--callback-allow 127.0.0.1 --callback-timeout-ms 3000 --lease-ms 3000)

kworker_start w1 --concurrency 2 --callback-retry-base-ms 300 "${WARGS[@]}"
wait_for 30 grep -q 'callbacks: taking' "$T/w1.log" || fail "w1 did not join the callbacks group"

# --- 1. success and failure ---------------------------------------------------------------
add sandfleet.tasks t-ok cat "$(cbjson /ok/t-ok)"
add sandfleet.tasks t-fail 'echo broken >&2; exit 3' "$(cbjson /ok/t-fail)"
wait_for 30 bash -c "[ \"\$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if \"/ok/t-\" in l))' $T/received.jsonl)\" -ge 2 ]" \
    || fail "success/failure callbacks not delivered: $(rq '[r["path"] for r in R]')"
check "success: signature verified by Python's hmac" [ "$(rq "[r['sig_ok'] for r in R if r['path']=='/ok/t-ok']")" = "[True]" ]
kcat_ -C -t sandfleet.results -o beginning -e -q -f '%s\n' 2>/dev/null | grep '"task_id":"t-ok"' >"$T/stored.json"
check "success: the body is the result stored on sandfleet.results" python3 - "$T/received.jsonl" "$T/stored.json" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"/ok/t-ok"' in l][0]
h = {k.lower(): v for k, v in r["headers"].items()}
assert json.loads(r["body"]) == json.loads(open(sys.argv[2]).readline()), "body differs"
assert h["sandfleet-delivery"] == "task:t-ok:1" and h["sandfleet-attempt"] == "1", h
PY
check "failure: the error result is POSTed" \
    [ "$(rq "json.loads([r for r in R if r['path']=='/ok/t-fail'][0]['body'])['status']")" = error ]

# --- 2. retries after 500s through the retry topic -------------------------------------------
add sandfleet.tasks t-500 cat "$(cbjson /fail500x2/t-500)"
wait_for 30 bash -c "grep -c '/fail500x2/t-500' $T/received.jsonl | grep -qx 3" \
    || fail "500s: not retried up to the success: $(rq '[(r["path"], r["code"]) for r in R]')"
check "500s: attempts 1, 2, 3" [ "$(rq "[r['headers']['Sandfleet-Attempt'] for r in R if r['path']=='/fail500x2/t-500']")" = "['1', '2', '3']" ]
check "500s: one delivery id" [ "$(rq "len({r['headers']['Sandfleet-Delivery'] for r in R if r['path']=='/fail500x2/t-500'})")" = 1 ]
check "500s: the next attempts went through sandfleet.callbacks.retry (sf-due-ms)" \
    bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.callbacks.retry -o beginning -e -q -f '%k %h\n' 2>/dev/null | grep -c '^task:t-500:1 sf-due-ms=' | grep -qx 2"
# Settled offsets are committed within the auto-commit interval.
none_pending() { CB list --json >"$T/pending.json" 2>>"$T/cli.log" && jtrue "$T/pending.json" 'd == []'; }
check "nothing left pending once delivered" wait_for 10 none_pending

# --- 3. a 400 is not retried -------------------------------------------------------------------
add sandfleet.tasks t-400 cat "$(cbjson /bad400/t-400)"
wait_for 20 dead_has 'task:t-400:1' || fail "400: not in the dead list"
# A dead delivery is never due again: its record counts one attempt.
CB list --dead --json >"$T/dead400.json" 2>>"$T/cli.log"
check "400: one attempt recorded" jtrue "$T/dead400.json" '[x.get("attempts") for x in d if x["id"] == "task:t-400:1"] == [1]'
check "400: one request only" [ "$(count /bad400/t-400)" = 1 ]
CB list --dead >"$T/list.txt" 2>>"$T/cli.log"
check "400: listed with its status" grep -q 'task:t-400:1.*HTTP 400' "$T/list.txt"
check "400: the record is on the compacted dead topic (key = delivery id)" \
    bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.callbacks.dead -o beginning -e -q -f '%k\n' 2>/dev/null | grep -qx 'task:t-400:1'"

# --- 4. kill -9 while the delivery waits in the retry topic ------------------------------------
kworker_start k1 --queue q2 --callback-retry-base-ms 4000 "${WARGS[@]}"
add sandfleet.tasks-q2 t-kill cat "$(cbjson /flag/t-kill)"
wait_for 30 bash -c "grep -q '/flag/t-kill' $T/received.jsonl" || fail "kill: first attempt not made"
sleep 1.5    # the settled first attempt is committed; its retry is due in 3.2-4 s
kill -9 "${WPID[k1]}"; wait "${WPID[k1]}" 2>/dev/null; unset "WPID[k1]"
check "kill: the pending attempt is in the retry topic" \
    bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.callbacks.retry-q2 -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -q '^task:t-kill:1 .*\"attempts\":1'"
touch "$T/flag"
kworker_start k2 --queue q2 --callback-retry-base-ms 4000 "${WARGS[@]}"
wait_for 40 bash -c "grep -q 'callback task:t-kill:1 delivered' $T/k2.log" || fail "kill: the new worker did not deliver it"
kworker_stop k2                  # drained: no delivery can come after this
check "kill: delivered once (one 200)" [ "$(rq "len([r for r in R if r['path']=='/flag/t-kill' and r['code']==200])")" = 1 ]

# --- 5. loopback denied without the allowlist ----------------------------------------------------
kworker_start d1 --queue q3 --lease-ms 3000
add sandfleet.tasks-q3 t-deny cat "$(cbjson /ok/t-deny)"
wait_for 30 dead_has 'task:t-deny:1' --queue q3 || fail "deny: not dead-lettered"
CB list --dead --json --queue q3 >"$T/deny.json"
check "deny: a clear reason, no attempt counted" python3 - "$T/deny.json" <<'PY'
import json, sys
e = [x for x in json.load(open(sys.argv[1])) if x["id"] == "task:t-deny:1"][0]
s = json.dumps(e)
assert "is loopback: denied" in s and e.get("attempts", 0) == 0, s
PY
check "deny: no request reached the receiver" [ "$(count /ok/t-deny)" = 0 ]

# --- 6. a run's callback, once per run id ----------------------------------------------------------
cat >"$T/wf.json" <<'JSON'
{ "name": "cb-run", "steps": [ { "id": "a", "run": "cat", "input": {"x": 1} },
                               { "id": "b", "run": "cat", "needs": ["a"] } ] }
JSON
kcoord "$T/wf.json" --run-id cbrun1 --callback-url "$BASE/ok/run" --callback-secret-ref HOOK \
    >"$T/run.json" 2>>"$T/coord.log" || fail "run with a callback failed"
wait_for 30 bash -c "grep -q '/ok/run' $T/received.jsonl" || fail "run callback not delivered"
check "run callback: signed, kind run, the printed document" python3 - "$T/received.jsonl" "$T/run.json" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"/ok/run"' in l][0]
h = {k.lower(): v for k, v in r["headers"].items()}
assert r["sig_ok"] is True and h["sandfleet-kind"] == "run" and h["sandfleet-delivery"] == "run:cbrun1", h
assert json.loads(r["body"]) == json.load(open(sys.argv[2]))
PY
kcoord "$T/wf.json" --run-id cbrun1 --callback-url "$BASE/ok/run" --callback-secret-ref HOOK \
    >"$T/run2.json" 2>>"$T/coord.log" || fail "resumed run failed"
# The resumed run has exited: whatever it queued is on the topic now.
check "run callback: a resumed run does not queue it again" \
    bash -c "[ \$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.callbacks -o beginning -e -q -f '%k\n' 2>/dev/null | grep -cx 'run:cbrun1') = 1 ]"
check "…and it was delivered once" [ "$(count /ok/run)" = 1 ]

# --- 7. the callbacks command: replay, purge ------------------------------------------------------
add sandfleet.tasks t-once cat "$(cbjson /once400/t-once)"
wait_for 20 dead_has 'task:t-once:1' || fail "once400: not dead"
CB retry --id task:t-once:1 >"$T/retry.txt" 2>>"$T/cli.log"
check "retry: requeued" grep -q '1 callback(s) queued again' "$T/retry.txt"
wait_for 20 bash -c "grep -c '/once400/t-once' $T/received.jsonl | grep -qx 2" || fail "replayed callback not delivered"
check "retry: attempts start again at 1" [ "$(rq "[r['headers']['Sandfleet-Attempt'] for r in R if r['path']=='/once400/t-once']")" = "['1', '1']" ]
CB list --dead --json >"$T/after_retry.json" 2>>"$T/cli.log"
check "retry: no longer listed dead" jtrue "$T/after_retry.json" '"task:t-once:1" not in [e["id"] for e in d]' 
CB retry --id nope >/dev/null 2>&1
check "retry of an unknown id exits 1" [ $? = 1 ]
CB purge --dead --all >"$T/purge.txt" 2>>"$T/cli.log"
check "purge --dead --all" grep -q '1 callback(s) removed from the dead list' "$T/purge.txt"
CB list --dead --json >"$T/after.json" 2>>"$T/cli.log"
check "purged deliveries are not listed again" jtrue "$T/after.json" 'd == []'
CB purge --all >/dev/null 2>"$T/purge_pending.err"; prc=$?
check "purging pending deliveries is refused with a reason" \
    bash -c "[ $prc != 0 ] && grep -q 'not supported by the kafka backend' $T/purge_pending.err"

# --- 8. the secret is nowhere -----------------------------------------------------------------------
kworker_stop w1
check "w1 drains cleanly" [ $? = 0 ]
leak=0
for t in sandfleet.callbacks sandfleet.callbacks.retry sandfleet.callbacks.dead sandfleet.results sandfleet.tasks; do
    ktopic_dump "$t" | grep -qa -- "$SANDFLEET_SECRET_HOOK" && leak=1
done
grep -qa -- "$SANDFLEET_SECRET_HOOK" "$T"/*.log && leak=1
check "the secret is in no log and on no topic" [ $leak = 0 ]
t_done
