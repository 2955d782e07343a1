#!/usr/bin/env bash
# sandfleet-coordinator status and dead list|retry|purge against a real
# KRaft broker (the Kafka twin of test_status_dead.sh, where it makes sense):
#  1. a run whose 3 map tasks wait with no worker: depth 3, no workers, the
#     run listed in progress (JSON and text);
#  2. a worker starts: it is listed (id, host) from the consumer group, the
#     run finishes and leaves the list, the queue is empty;
#  3. a task that fails for good (over the worker's memory cap): dead count 1 with its reason and task id
#     (status and `dead list`); the id is its offset in sandfleet.tasks.dlq;
#  4. its cause fixed (a worker with a higher cap), `dead retry --id` replays it: attempt 1, an ok result
#     on sandfleet.results, the dead count back to 0 (a "requeued" mark on
#     sandfleet.tasks.dlq.handled; the DLQ itself is append-only);
#  5. purge by id and --all; unknown ids exit 1; retry without ids exits 2;
#     purged letters stay out of the list and the count.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/kafka.sh"
command -v kcat >/dev/null || { echo "kcat missing (scripts/deps.sh test)"; exit 1; }
kfleet_init kafka-status
C="$SF_BIN/sandfleet-coordinator"
st() { "$C" status --broker "$KAFKA_URL" --lease-ms 3000 --json >"$T/status.json" 2>>"$T/cli.log" || fail "status failed"; }
sj() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/status.json" "$1"; }
expect() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: expected '$3', got '$2'"; fi; }
DEAD() { "$C" dead "$@" --broker "$KAFKA_URL"; }
add() { printf '%s\t%s\n' "$1" "$2" | kcat_ -P -t sandfleet.tasks -K$'\t' || fail "producing $1"; }

# --- 1. three tasks, no worker ---------------------------------------------------------
cat >"$T/map.json" <<'JSON'
{ "name": "three", "steps": [ { "id": "each", "run": "cat", "map": true, "input": [1, 2, 3] } ] }
JSON
kcoord "$T/map.json" --run-id st-run --output "$T/run.json" 2>"$T/coord.log" &
CPID=$!
wait_for 30 bash -c "[ \$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.tasks -o beginning -e -q 2>/dev/null | wc -l) = 3 ]" \
    || fail "the run did not publish 3 tasks"
st
expect "no worker: depth 3" "$(sj 'd["depth"]')" 3
expect "no worker: no workers listed" "$(sj 'len(d["workers"])')" 0
expect "the run is in progress" "$(sj '[r["run_id"] + "/" + r["workflow"] for r in d["runs"]]')" "['st-run/three']"
"$C" status --broker "$KAFKA_URL" >"$T/status.txt" 2>>"$T/cli.log" || fail "text status failed"
check "text status: depth and the run" bash -c "grep -q 'depth 3' $T/status.txt && grep -q 'st-run .*three' $T/status.txt"

# --- 2. a worker ----------------------------------------------------------------------------
kworker_start w1 --concurrency 2 --lease-ms 3000 --max-memory-mb 256
wait "$CPID"; crc=$?; CPID=
expect "the run succeeds once a worker is there" "$crc" 0
# The group settles and commits its offsets within seconds (lag 0).
listed() { st; [ "$(sj '[w["id"] for w in d["workers"]]')" = "['w1']" ] && [ "$(sj 'd["depth"]')" = 0 ]; }
wait_for 10 listed
expect "worker listed from the group" "$(sj '[w["id"] for w in d["workers"]]')" "['w1']"
expect "worker host" "$(sj 'd["workers"][0]["host"]')" 127.0.0.1
expect "worker live" "$(sj 'd["workers"][0]["live"]')" True
expect "depth after the run" "$(sj 'd["depth"]')" 0
expect "no run in progress after it" "$(sj 'len(d["runs"])')" 0
"$C" status --broker "$KAFKA_URL" | grep -q '^  w1 ' && ok "text status lists w1" || not_ok "text status lists w1"

# --- 3. a final failure ------------------------------------------------------------------------
# Its cause: the worker's memory cap is below what it asks (the fix, below:
# a worker with a higher one).
add fix-1 "$(task_json fix-1 fx cat '{"max_attempts": 1, "limits": {"memory_mb": 512}}')"
wait_for 30 bash -c "$C dead list --broker $KAFKA_URL --json 2>/dev/null | grep -q fix-1" \
    || fail "the failing task was not dead-lettered"
st
expect "dead count 1" "$(sj 'd["dead"]["count"]')" 1
expect "dead reason" "$(sj 'd["dead"]["recent"][0]["reason"]')" "rejected after 1 attempt: limits.memory_mb 512 is over this worker's cap of 256 (--max-memory-mb)"
expect "dead task id" "$(sj 'd["dead"]["recent"][0]["task_id"]')" fix-1
DEAD list --json >"$T/dead.json" || fail "dead list failed"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$T/dead.json")
dlq_off=$(kcat_ -C -t sandfleet.tasks.dlq -o beginning -e -q -f '%o %s\n' 2>/dev/null | grep fix-1 | cut -d' ' -f1)
expect "the dead letter's id is its DLQ offset" "$id" "$dlq_off"
DEAD list | grep -q "fix-1 .*rejected after 1 attempt" && ok "text dead list" || not_ok "text dead list"

# --- 4. fixed, replayed by id ----------------------------------------------------------------------
kworker_stop w1 || fail "w1 did not drain"
kworker_start w2 --concurrency 2 --lease-ms 3000 --max-memory-mb 1024
DEAD retry --id "$id" >"$T/retry.txt" 2>>"$T/cli.log"
check "dead retry --id" grep -q 'replayed 1 dead letter' "$T/retry.txt"
wait_for 30 bash -c "[ \$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.results -o beginning -e -q 2>/dev/null | grep -c '\"run_id\":\"fx\"') = 2 ]" \
    || fail "the replayed task's result did not arrive"
kcat_ -C -t sandfleet.results -o beginning -e -q -f '%s\n' 2>/dev/null | grep '"run_id":"fx"' | tail -1 >"$T/fx_last.json"
check "the replayed task ran as attempt 1 and succeeded" grep -q '"attempt":1,"status":"ok"' "$T/fx_last.json"
st
expect "dead count after the replay" "$(sj 'd["dead"]["count"]')" 0
check "the replay is recorded on sandfleet.tasks.dlq.handled" \
    bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.tasks.dlq.handled -o beginning -e -q -f '%k=%s\n' 2>/dev/null | grep -qx '$id=requeued'"
DEAD retry --id "$id" >/dev/null 2>&1
expect "a replayed letter cannot be replayed again (exit 1)" $? 1

# --- 5. purge ---------------------------------------------------------------------------------------
add junk-1 'junk one'
add junk-2 'junk two'
wait_for 30 bash -c "[ \$($C dead list --broker $KAFKA_URL --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') = 2 ]" \
    || fail "junk was not dead-lettered"
first=$(DEAD list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
DEAD purge --id "$first" | grep -q 'purged 1' && ok "purge by id" || not_ok "purge by id"
st
expect "dead after purge --id" "$(sj 'd["dead"]["count"]')" 1
DEAD purge --id 999999 >/dev/null 2>&1
expect "purge of an unknown id exits 1" $? 1
DEAD retry >/dev/null 2>&1
expect "retry without ids exits 2" $? 2
DEAD purge --all | grep -q 'purged 1' && ok "purge --all" || not_ok "purge --all"
st
expect "dead after purge --all" "$(sj 'd["dead"]["count"]')" 0
DEAD list --json >"$T/dead_after.json"
check "purged letters are not listed again" jtrue "$T/dead_after.json" 'd == []'
t_done
