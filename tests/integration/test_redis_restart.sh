#!/bin/bash
# Restarts against a real redis-server:
#  1. Redis restarted mid-run (AOF on): workers and the coordinator reconnect
#     with backoff and the run completes with an exact map output;
#  2. Redis unreachable at start: the worker says so clearly and keeps trying,
#     then serves once Redis is up;
#  3. the coordinator killed -9 mid-run and started again with the same
#     --run-id completes from the state in Redis without redoing finished
#     steps: every task ran exactly once.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init restart

# --- 1. Redis restart mid-run ---------------------------------------------------------------
cat >"$T/map.json" <<JSON
{ "name": "map12", "steps": [
  { "id": "list", "run": "python3 -c 'print(list(range(12)))'" },
  { "id": "each", "needs": ["list"], "map": true,
    "run": "read -r n; sleep 0.5; echo \$((n + 100))" } ] }
JSON
worker_start w1 --concurrency 2 --lease-ms 3000 --log-level debug
worker_start w2 --concurrency 2 --lease-ms 3000 --log-level debug
coord_bg "$T/rr.json" "$T/coord.log" "$T/map.json" --run-id rr
wait_for 20 '[ "$(runs_of "rr:each:[0-9]+")" -ge 3 ]' || fail "the map never started"
redis_stop
sleep 1
redis_start "$T/redis" || fail "redis did not come back"
wait "$CPID" || fail "the run did not survive a Redis restart"
CPID=
python3 - "$T/rr.json" <<'PY' || fail "map output not exact after a Redis restart"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "succeeded", d
assert d["steps"]["each"]["output"] == [i + 100 for i in range(12)], d["steps"]["each"]["output"]
PY
grep -q 'reconnected' "$T/w1.log" "$T/w2.log" "$T/coord.log" || fail "nobody logged a reconnect"
kill -0 "${WPID[w1]}" && kill -0 "${WPID[w2]}" || fail "a worker died with Redis"
worker_stop w1; worker_stop w2

# --- 2. Redis unreachable at start ------------------------------------------------------------
redis_stop
worker_start early --concurrency 1
wait_for 10 'grep -q "unreachable\|not reachable" "$T/early.log"' || fail "no clear message while Redis is down"
kill -0 "${WPID[early]}" || fail "the worker gave up while Redis was down"
redis_start "$T/redis" || fail "redis did not come back"
rcli XADD sf:default:tasks '*' task "$(task_json early-1 early cat)" >/dev/null
wait_for 15 '[ "$(rcli HEXISTS sf:run:early:done early-1)" = 1 ]' || fail "the worker did not serve after Redis came up"
worker_stop early || fail "early worker did not drain"

# --- 3. coordinator kill -9 and resume ----------------------------------------------------------
cat >"$T/resume.json" <<JSON
{ "name": "resume", "steps": [
  { "id": "a", "run": "python3 -c 'print(list(range(6)))'" },
  { "id": "b", "needs": ["a"], "map": true, "run": "read -r n; sleep 0.7; echo \$((n * 10))" },
  { "id": "c", "needs": ["b"], "run": "python3 -c 'import json,sys; print(sum(json.load(sys.stdin)))'" } ] }
JSON
worker_start r1 --concurrency 1 --lease-ms 3000 --log-level debug
worker_start r2 --concurrency 1 --lease-ms 3000 --log-level debug
coord_bg "$T/res-first.json" "$T/coord.log" "$T/resume.json" --run-id res1 --max-inflight 2
wait_for 20 '[ "$(runs_of "res1:b:[0-9]+")" -ge 3 ]' || fail "step b never got going"
kill -9 "$CPID"; wait "$CPID" 2>/dev/null; CPID=
coord "$T/resume.json" --run-id res1 --max-inflight 2 >"$T/res.json" 2>>"$T/coord2.log" || fail "the resumed run failed"
python3 - "$T/res.json" <<'PY' || fail "resumed run has a wrong document"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "succeeded", d
assert d["run_id"] == "res1"
assert d["steps"]["b"]["output"] == [0, 10, 20, 30, 40, 50], d["steps"]["b"]["output"]
assert d["steps"]["c"]["output"] == 150, d["steps"]["c"]["output"]
PY
grep -q 'resuming run' "$T/coord2.log" || fail "the second coordinator did not resume"
grep -q 'replaying' "$T/coord2.log" || fail "the second coordinator replayed nothing"
cat "$T/r1.log" "$T/r2.log" | grep -oE ' task=res1:[a-z]:[0-9]+ start attempt' >"$T/runs.txt"
sort "$T/runs.txt" | uniq -d >"$T/dups"
[ -s "$T/dups" ] && fail "tasks ran twice after the resume: $(tr '\n' ' ' <"$T/dups")"
[ "$(wc -l <"$T/runs.txt")" = 8 ] || fail "expected 8 task runs (a, b0..b5, c), got $(wc -l <"$T/runs.txt")"
[ "$(rcli HGET sf:run:res1 status)" = succeeded ] || fail "final status not recorded"
echo PASS
