#!/usr/bin/env bash
# Round trips of the task path through Redis (docs/benchmarks.md §10):
# - a worker slot that stores a result takes its next task in the same
#   script while the queue has work (one round trip per task, not two).
# Watched with MONITOR, which shows the commands scripts run as "[0 lua]".
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/fleet.sh"
fleet_init roundtrips
python3 -c 'import json; print(json.dumps({"name": "rt", "steps": [{"id": "each", "run": "cat", "map": True, "input": list(range(30))}]}))' >"$T/wf.json"
rcli MONITOR >"$T/monitor.log" 2>/dev/null &
MPID=$!
wait_for 5 '[ "$(rcli CLIENT LIST | grep -c "cmd=monitor")" -ge 1 ]' || fail "MONITOR did not start"
coord_bg "$T/out.json" "$T/coord.log" "$T/wf.json" --log-level warn
wait_for 20 '[ "$(rcli XLEN sf:default:tasks)" -ge 30 ]' || fail "the 30 tasks were not published"
SF_TEST_SANDBOX=process worker_start w1 --concurrency 1 --log-level warn
wait "$CPID"
CPID=
check "the run succeeds" jtrue "$T/out.json" 'd["status"] == "succeeded" and len(d["steps"]["each"]["output"]) == 30'
worker_stop w1
sleep 0.2
kill "$MPID" 2>/dev/null
wait "$MPID" 2>/dev/null
top() { grep -v '\[0 lua\]' "$T/monitor.log" | grep -c "$1"; }
lua() { grep '\[0 lua\]' "$T/monitor.log" | grep -c "$1"; }
check "30 tasks were published" [ "$(lua '"XADD" "sf:default:tasks"')" -eq 30 ]
# One slot, 30 queued tasks: the first comes from the worker's fetch, the
# others with the result before them (the worker's reclaim scan may take
# one fetch of its own).
check "the slot took its next task with its result" [ "$(lua '"XREADGROUP"')" -ge 27 ]
check "... so the worker's own reads were few" [ "$(top '"XREADGROUP"')" -lt 10 ]
t_done
