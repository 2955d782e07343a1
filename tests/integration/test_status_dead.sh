#!/bin/bash
# sandfleet-coordinator status and dead list|retry|purge against a real redis-server:
#  1. a run whose 3 map tasks wait with no worker: depth 3, waiting 3, no
#     workers, the run listed in progress (JSON and text);
#  2. a worker starts: it is listed (host, slots, heartbeat, 3 done), the
#     run finishes and leaves the list, the queue is empty;
#  3. a task whose input blob is missing: dead count 1 with its reason and
#     task id (status and `dead list`);
#  4. the blob stored, `dead retry --id` replays it: it runs and succeeds,
#     the dead stream is empty;
#  5. a task that failed for good (final result + dead letter) is replayed
#     with --all after its cause is fixed (a worker whose memory cap was too
#     low for it replaced by one with a higher cap): attempt 1, a second (ok)
#     result;
#  6. purge by id and --all; unknown ids exit 1; retry without ids exits 2.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init status
C="$SF_BIN/sandfleet-coordinator"
st() { "$C" status --broker "$REDIS_URL" --lease-ms 600 --json >"$T/status.json" 2>>"$T/cli.log" || fail "status failed"; }
sj() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/status.json" "$1"; }
expect() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; }

# --- 1. three tasks, no worker ---------------------------------------------------------
cat >"$T/map.json" <<'JSON'
{ "name": "three", "steps": [ { "id": "each", "run": "cat", "map": true, "input": [1, 2, 3] } ] }
JSON
coord_bg "$T/run.json" "$T/coord.log" "$T/map.json" --run-id st-run
wait_for 10 '[ "$(rcli XLEN sf:default:tasks)" = 3 ]' || fail "the run did not publish 3 tasks"
st
expect depth "$(sj 'd["depth"]')" 3
expect waiting "$(sj 'd["waiting"]')" 3
expect in_flight "$(sj 'd["in_flight"]')" 0
expect workers "$(sj 'len(d["workers"])')" 0
expect "run in progress" "$(sj '[r["run_id"] + "/" + r["workflow"] for r in d["runs"]]')" "['st-run/three']"
"$C" status --broker "$REDIS_URL" >"$T/status.txt" 2>>"$T/cli.log" || fail "text status failed"
grep -q 'depth 3  (waiting 3, in flight 0)' "$T/status.txt" || fail "text status: $(cat "$T/status.txt")"
grep -q 'st-run .*three' "$T/status.txt" || fail "text status lacks the run: $(cat "$T/status.txt")"

# --- 2. a worker ----------------------------------------------------------------------------
worker_start w1 --concurrency 2 --lease-ms 600
wait "$CPID" || fail "the run did not succeed"
CPID=
wait_for 10 'st; [ "$(sj "[w[\"done\"] for w in d[\"workers\"]]")" = "[3]" ]' || fail "worker not listed with 3 done: $(cat "$T/status.json")"
expect "worker id" "$(sj 'd["workers"][0]["id"]')" w1
expect "worker host" "$(sj 'd["workers"][0]["host"]')" "$(hostname)"
expect "worker slots" "$(sj 'd["workers"][0]["concurrency"]')" 2
expect "worker live" "$(sj 'd["workers"][0]["live"] and d["workers"][0]["heartbeat_age_ms"] < 3000')" True
expect "depth after" "$(sj 'd["depth"]')" 0
expect "runs after" "$(sj 'len(d["runs"])')" 0
"$C" status --broker "$REDIS_URL" | grep -q '^  w1 ' || fail "text status lacks the worker"

# --- 3. a bad message -----------------------------------------------------------------------
rcli XADD sf:default:tasks '*' task "$(task_json ref-1 dr cat '{"input": null, "input_ref": "sf:blob:missing-1"}')" >/dev/null
wait_for 10 '[ "$(rcli XLEN sf:default:dead)" = 1 ]' || fail "the task with a missing blob was not dead-lettered"
st
expect "dead count" "$(sj 'd["dead"]["count"]')" 1
expect "dead reason" "$(sj 'd["dead"]["recent"][0]["reason"]')" "input_ref 'sf:blob:missing-1' not found (expired or never stored)"
expect "dead task id" "$(sj 'd["dead"]["recent"][0]["task_id"]')" ref-1
"$C" dead list --broker "$REDIS_URL" --json >"$T/dead.json" || fail "dead list failed"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$T/dead.json")
expect "dead list id" "$id" "$(rcli XRANGE sf:default:dead - + | head -1)"
"$C" dead list --broker "$REDIS_URL" | grep -q "ref-1 .*input_ref 'sf:blob:missing-1' not found" || fail "text dead list"

# --- 4. replay by id ------------------------------------------------------------------------
rcli SET sf:blob:missing-1 '{"x": 2}' >/dev/null
"$C" dead retry --broker "$REDIS_URL" --id "$id" >"$T/retry.txt" || fail "dead retry failed"
grep -q 'replayed 1 dead letter' "$T/retry.txt" || fail "retry output: $(cat "$T/retry.txt")"
wait_for 10 '[ "$(rcli XLEN sf:run:dr:results)" = 1 ]' || fail "the replayed task did not run"
rcli XRANGE sf:run:dr:results - + | grep -q '"status":"ok".*"output":{"x":2}' || fail "replayed task did not succeed"
st
expect "dead after retry" "$(sj 'd["dead"]["count"]')" 0

# --- 5. a final failure, fixed, replayed with --all -----------------------------------------
# The cause: the worker's memory cap is below what the task asks; the fix:
# a worker with a higher one.
worker_stop w1 || fail "w1 did not drain"
worker_start w2 --concurrency 2 --lease-ms 600 --max-memory-mb 256
rcli XADD sf:default:tasks '*' task "$(task_json fix-1 fx cat '{"max_attempts": 1, "limits": {"memory_mb": 512}}')" >/dev/null
wait_for 10 '[ "$(rcli XLEN sf:default:dead)" = 1 ]' || fail "the failing task was not dead-lettered"
rcli XRANGE sf:run:fx:results - + | grep -q '"status":"rejected"' || fail "no final rejected result"
worker_stop w2 || fail "w2 did not drain"
worker_start w3 --concurrency 2 --lease-ms 600 --max-memory-mb 1024
"$C" dead retry --broker "$REDIS_URL" --all --json >"$T/retry.json" || fail "dead retry --all failed"
expect "retry --all json" "$(cat "$T/retry.json")" '{"replayed": 1}'
wait_for 10 '[ "$(rcli XLEN sf:run:fx:results)" = 2 ]' || fail "the replayed task's result was not stored"
rcli XREVRANGE sf:run:fx:results + - COUNT 1 | grep -q '"attempt":1,"status":"ok"' \
    || fail "replayed result is not an ok attempt 1: $(rcli XREVRANGE sf:run:fx:results + - COUNT 1)"

# --- 6. purge --------------------------------------------------------------------------------
rcli XADD sf:default:tasks '*' task 'junk one' >/dev/null
rcli XADD sf:default:tasks '*' task 'junk two' >/dev/null
wait_for 10 '[ "$(rcli XLEN sf:default:dead)" = 2 ]' || fail "junk was not dead-lettered"
first=$(rcli XRANGE sf:default:dead - + | head -1)
"$C" dead purge --broker "$REDIS_URL" --id "$first" | grep -q 'purged 1' || fail "purge by id"
expect "dead after purge --id" "$(rcli XLEN sf:default:dead)" 1
"$C" dead purge --broker "$REDIS_URL" --id 1-1 >/dev/null 2>&1
expect "purge of an unknown id exits" $? 1
"$C" dead retry --broker "$REDIS_URL" >/dev/null 2>&1
expect "retry without ids exits" $? 2
# The checks `dead` and `callbacks` share (cmd_admin.c): usage errors exit 2
# with the reason, before any broker is asked.
for cmd in dead callbacks; do
  "$C" $cmd frob --broker "$REDIS_URL" >/dev/null 2>"$T/adm.err"
  expect "$cmd frob exits" $? 2
  grep -q "say list, retry or purge" "$T/adm.err" || fail "$cmd frob: $(cat "$T/adm.err")"
  "$C" $cmd list >/dev/null 2>&1
  expect "$cmd list without --broker exits" $? 2
  "$C" $cmd list --broker "$REDIS_URL" --log-level loud >/dev/null 2>&1
  expect "$cmd list --log-level loud exits" $? 2
  "$C" $cmd purge --broker "$REDIS_URL" --id x --all >/dev/null 2>"$T/adm.err"
  expect "$cmd purge with both --id and --all exits" $? 2
  grep -q "name what to act on" "$T/adm.err" || fail "$cmd purge --id --all: $(cat "$T/adm.err")"
done
"$C" dead purge --broker "$REDIS_URL" --all | grep -q 'purged 1' || fail "purge --all"
st
expect "dead after purge --all" "$(sj 'd["dead"]["count"]')" 0
echo "PASS"
