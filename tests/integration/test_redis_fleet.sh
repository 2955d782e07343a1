#!/bin/bash
# The Redis fleet against a real redis-server, 2 workers x 2 slots:
#  1. the examples give the same result document as the central run
#     (minus run_id, durations, worker), one result per task, empty queue;
#  2. a failing step is retried by the workers (3 attempts), then a final
#     result + a dead letter with the reason; same document as central;
#  3. garbage, an unknown "v", missing fields and an entry without 'task'
#     are dead-lettered with their reasons, raw bytes untouched, and the
#     workers carry on;
#  4. a task XADDed by redis-cli with reply_to gets its result on that stream
#     when it lies in the reply namespace (sf:reply:*) or a prefix the
#     operator allowed (--reply-prefixes myapp:); one naming any other key
#     (another app's stream, the task queue itself) is dead-lettered with the
#     reason and nothing is written there;
#  5. a 10 MiB output travels by claim-check and arrives whole.
# Workers and central runs use SF_TEST_SANDBOX (default local: the sandbox
# users get); test_redis_fleet_process runs the same on the process one.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
SB=${SF_TEST_SANDBOX:-local}
fleet_init fleet
worker_start w1 --concurrency 2 --retry-base-ms 50 --reply-prefixes myapp:
SANDFLEET_REPLY_PREFIXES=myapp: worker_start w2 --concurrency 2 --retry-base-ms 50

# --- 1. same documents as the central run ---------------------------------------
for ex in analyze-report fanout; do
    wf=$SF_SRC/examples/$ex/workflow.json
    "$SF_BIN/sandfleet-coordinator" run "$wf" --sandbox "$SB" >"$T/central-$ex.json" 2>>"$T/central.log" \
        || fail "central run of $ex failed"
    coord "$wf" --run-id "ex-$ex" >"$T/broker-$ex.json" 2>>"$T/coord.log" || fail "broker run of $ex failed"
    diff <(norm_doc "$T/central-$ex.json") <(norm_doc "$T/broker-$ex.json") \
        || fail "$ex: broker document differs from the central one"
done
[ "$(rcli XLEN sf:run:ex-fanout:results)" = 16 ] || fail "fanout: expected 16 results (1+14+1), got $(rcli XLEN sf:run:ex-fanout:results)"
[ "$(rcli XLEN sf:default:tasks)" = 0 ] || fail "tasks left in the stream"
[ "$(rcli XPENDING sf:default:tasks workers | head -1)" = 0 ] || fail "unacked tasks left"
workers=$(rcli XRANGE sf:run:ex-fanout:results - + | grep -o '"worker":"w[12]"' | sort -u | wc -l)
[ "$workers" = 2 ] || fail "expected both workers to take part, saw $workers"
[ "$(rcli HGET sf:run:ex-fanout status)" = succeeded ] || fail "run state not recorded"

# --- 2. retries, then result + dead letter ----------------------------------------
cat >"$T/flaky.json" <<JSON
{ "name": "flaky", "steps": [
  { "id": "bad", "run": "echo nope; echo \"attempt \$SF_ATTEMPT\" >&2; exit 3", "retries": 2 },
  { "id": "after", "run": "cat", "needs": ["bad"] } ] }
JSON
"$SF_BIN/sandfleet-coordinator" run "$T/flaky.json" --sandbox "$SB" --retry-base-ms 50 \
    >"$T/central-flaky.json" 2>>"$T/central.log"
[ $? = 1 ] || fail "central flaky run should exit 1"
coord "$T/flaky.json" --run-id flaky >"$T/broker-flaky.json" 2>>"$T/coord.log"
[ $? = 1 ] || fail "broker flaky run should exit 1"
diff <(norm_doc "$T/central-flaky.json") <(norm_doc "$T/broker-flaky.json") \
    || fail "flaky: broker document differs from the central one"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["steps"]["bad"]; sys.exit(0 if s["attempts"] == 3 and "attempt 3" in s["stderr_tail"] else 1)' \
    "$T/broker-flaky.json" || fail "expected 3 attempts: $(cat "$T/broker-flaky.json")"
rcli XRANGE sf:default:dead - + | grep -q 'error after 3 attempts' || fail "no dead letter after the last attempt"
[ "$(rcli XLEN sf:run:flaky:results)" = 1 ] || fail "expected exactly one (final) result for the flaky task"

# --- 3. bad messages -> dead letters; workers carry on ------------------------------
dead0=$(rcli XLEN sf:default:dead)
rcli XADD sf:default:tasks '*' task 'not json{' >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json g1 garbage cat '{"v":7}')" >/dev/null
rcli XADD sf:default:tasks '*' task '{"v":1,"id":"m1","run_id":"garbage","step":"s"}' >/dev/null
rcli XADD sf:default:tasks '*' payload hello >/dev/null
printf 'he\0llo' | rcli -x XADD sf:default:tasks '*' binary >/dev/null
wait_for 10 '[ "$(rcli XLEN sf:default:dead)" -ge $((dead0 + 5)) ]' || fail "bad messages were not dead-lettered"
dead=$(rcli XRANGE sf:default:dead - +)
echo "$dead" | grep -q '^malformed JSON' || fail "no 'malformed JSON' reason"
echo "$dead" | grep -qx 'not json{' || fail "raw garbage not kept untouched"
echo "$dead" | grep -q '^unsupported version 7' || fail "no 'unsupported version' reason"
echo "$dead" | grep -q "^missing field 'run'" || fail "no 'missing field' reason"
echo "$dead" | grep -q "no 'task' field" || fail "no reason for an entry without 'task'"
rcli --no-raw XRANGE sf:default:dead - + | grep -qF '"binary=he\x00llo\n"' || fail "an entry without 'task' was not kept byte for byte"
grep -q 'dead-lettered' "$T/w1.log" "$T/w2.log" || fail "dead letters not logged"
kill -0 "${WPID[w1]}" && kill -0 "${WPID[w2]}" || fail "a worker died on a bad message"

# --- 4. reply_to from redis-cli ------------------------------------------------------------
rcli XADD sf:default:tasks '*' task "$(task_json cli-1 cli-run cat '{"reply_to":"sf:reply:itest"}')" >/dev/null
reply=$(rcli XREAD BLOCK 10000 STREAMS sf:reply:itest 0-0)
echo "$reply" | grep -q '"task_id":"cli-1"' || fail "no result on the reply_to stream: $reply"
echo "$reply" | grep -q '"status":"ok"' || fail "reply_to result not ok: $reply"
echo "$reply" | grep -q '"output":{"x":1}' || fail "reply_to result lacks the output: $reply"
rcli XADD sf:default:tasks '*' task "$(task_json cli-2 cli-run cat '{"reply_to":"myapp:replies"}')" >/dev/null
rcli XREAD BLOCK 10000 STREAMS myapp:replies 0-0 | grep -q '"task_id":"cli-2"' || fail "no result on an allowed prefix"
for foreign in otherapp:orders sf:default:tasks; do
    rcli XADD sf:default:tasks '*' task "$(task_json "cli-$foreign" cli-run cat "{\"reply_to\":\"$foreign\"}")" >/dev/null
    wait_for 10 "rcli XRANGE sf:default:dead - + | grep -q \"reply_to '$foreign' is outside the reply namespace 'sf:reply:\*'\"" \
        || fail "reply_to $foreign was not dead-lettered with its reason: $(rcli XRANGE sf:default:dead - +)"
done
[ "$(rcli EXISTS otherapp:orders)" = 0 ] || fail "a result was written into otherapp:orders"
! rcli XRANGE sf:default:tasks - + | grep -q '"result"' || fail "a result was written into the task queue"

# --- 5. a 10 MiB output --------------------------------------------------------------------
cat >"$T/big.json" <<'JSON'
{ "name": "big", "steps": [
  { "id": "make", "run": "python3 -c 'import json,sys; sys.stdout.write(json.dumps(\"a\" * 10485760))'" },
  { "id": "measure", "run": "python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'", "needs": ["make"] } ] }
JSON
coord "$T/big.json" --run-id big >"$T/broker-big.json" 2>>"$T/coord.log" || fail "10 MiB run failed"
python3 - "$T/broker-big.json" <<'PY' || fail "10 MiB output did not arrive whole"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["steps"]["make"]["output"]) == 10485760, len(d["steps"]["make"]["output"])
assert d["steps"]["measure"]["output"] == 10485760, d["steps"]["measure"]["output"]
PY
rcli XRANGE sf:run:big:results - + | grep -q '"output_ref":"sf:blob:' || fail "big output was not claim-checked"
maxlen=$(rcli XRANGE sf:run:big:results - + | awk '{ if (length($0) > m) m = length($0) } END { print m }')
[ "$maxlen" -lt 100000 ] || fail "a result message is $maxlen bytes: the payload travelled inline"
blob=$(rcli --scan --pattern 'sf:blob:*' | head -1)
[ "$(rcli TTL "$blob")" -gt 0 ] || fail "blob $blob has no TTL"
echo "PASS"
