#!/bin/bash
# Worker faults against a real redis-server (short leases):
#  1. kill -9 a worker mid-run: its tasks are reclaimed by the other worker;
#     0 lost, 0 duplicated: the map output is exact and in order and the run
#     has exactly one result per task;
#  2. a task longer than the lease is never stolen from a live worker (its
#     owner renews): it runs once although a second worker is idle;
#  3. SIGTERM drains: the in-flight task finishes and is acked, no new task is
#     taken, the worker exits 0; a second worker then gets the queued task.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init faults

# --- 1. kill -9 mid-run ---------------------------------------------------------------------
cat >"$T/map.json" <<JSON
{ "name": "map20", "steps": [
  { "id": "list", "run": "python3 -c 'print(list(range(20)))'" },
  { "id": "each", "needs": ["list"], "map": true,
    "run": "read -r n; sleep 0.6; echo \$((n * 2))" } ] }
JSON
worker_start victim --concurrency 2 --lease-ms 1500 --log-level debug
worker_start survivor --concurrency 2 --lease-ms 1500 --log-level debug
coord_bg "$T/kill9.json" "$T/coord.log" "$T/map.json" --run-id kill9
wait_for 20 '[ "$(runs_of "kill9:each:[0-9]+")" -ge 1 ]' || fail "the map never started"
victim_busy() { [ -n "$(rcli XPENDING sf:default:tasks workers - + 10 victim)" ]; }
wait_for 20 victim_busy || fail "the victim never held a task"
kill -9 "${WPID[victim]}"; unset "WPID[victim]"
wait "$CPID" || fail "run with a killed worker failed"
CPID=
python3 - "$T/kill9.json" <<'PY' || fail "map output not exact after kill -9"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "succeeded", d["status"]
assert d["steps"]["each"]["output"] == [2 * i for i in range(20)], d["steps"]["each"]["output"]
PY
[ "$(rcli XLEN sf:run:kill9:results)" = 21 ] || fail "expected 21 results (one per task), got $(rcli XLEN sf:run:kill9:results)"
grep -q 'reclaimed' "$T/survivor.log" || fail "the survivor never reclaimed the victim's tasks (kill came too late?)"
runs=$(runs_of "kill9:each:[0-9]+")
[ "$runs" -ge 20 ] || fail "only $runs element runs"
worker_stop survivor || fail "survivor did not drain cleanly"

# --- 2. a task longer than the lease is not stolen --------------------------------------------
worker_start owner --concurrency 1 --lease-ms 800 --log-level debug
wait_for 10 'grep -q "worker owner" "$T/owner.log"' || fail "owner did not start"
rcli XADD sf:default:tasks '*' task "$(task_json long-1 long "sleep 3; cat")" >/dev/null
wait_for 10 '[ "$(runs_of long-1)" -ge 1 ]' || fail "the long task never started"
worker_start idle --concurrency 1 --lease-ms 800 --log-level debug
wait_for 10 '[ "$(rcli HLEN sf:run:long:done)" = 1 ]' || fail "the long task never finished"
[ "$(runs_of long-1)" = 1 ] || fail "the long task ran $(runs_of long-1) times: it was stolen"
grep -q 'reclaimed' "$T/idle.log" && fail "the idle worker reclaimed a live worker's task"
rcli XRANGE sf:run:long:results - + | grep -q '"worker":"owner"' || fail "the result is not from the owner"

# --- 3. SIGTERM drain -----------------------------------------------------------------------
worker_stop idle || fail "idle worker did not exit 0"
rcli XADD sf:default:tasks '*' task "$(task_json drain-1 drain "sleep 1.5; cat")" >/dev/null
wait_for 10 '[ "$(runs_of drain-1)" = 1 ]' || fail "the drain task never started"
t0=$(date +%s%N)
kill -TERM "${WPID[owner]}"
wait_for 10 'grep -q "draining" "$T/owner.log"' || fail "the owner did not start draining"
rcli XADD sf:default:tasks '*' task "$(task_json drain-2 drain 'cat')" >/dev/null
wait "${WPID[owner]}"; rc=$?; unset "WPID[owner]"
[ "$rc" = 0 ] || fail "draining worker exited $rc"
el=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$el" -ge 1000 ] || fail "worker exited after $el ms, before its task finished"
[ "$(rcli HEXISTS sf:run:drain:done drain-1)" = 1 ] || fail "the in-flight task's result was not stored"
[ "$(rcli HEXISTS sf:run:drain:done drain-2)" = 0 ] || fail "a draining worker took a new task"
[ "$(rcli XPENDING sf:default:tasks workers | head -1)" = 0 ] || fail "the drained task was not acked"
grep -q 'drained' "$T/owner.log" || fail "no drain message"
worker_start late --concurrency 1
wait_for 10 '[ "$(rcli HEXISTS sf:run:drain:done drain-2)" = 1 ]' || fail "the queued task was not picked up later"
echo PASS
