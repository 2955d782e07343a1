#!/bin/bash
# Operator caps on a worker (docs/security.md, "Operator caps"): tasks pushed
# straight into Redis, whatever they ask for, meet the worker's
# --max-* flags.
#  1. limits.memory_mb 100000 against --max-memory-mb 1024: dead letter and
#     a `rejected` result, both naming the cap and its flag; nothing ran;
#  2. timeout_s over --max-timeout-s, pids over --max-pids: the same;
#  3. a task asking nothing gets the timeout cap (it is killed at it, not
#     left running);
#  4. a bundle ("shared" workflow as one task) with one step over a cap is
#     rejected as a whole before its sandbox is made;
#  5. a task within the caps runs; the caps come from the environment too
#     (SANDFLEET_MAX_TIMEOUT_S), and a config file (--config).
set -u
. "$(dirname "$0")/../lib/testlib.sh"
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init caps

cat >"$T/worker.conf" <<'EOF'
# worker caps from a config file (flag names without --)
max-pids = 64
EOF
SANDFLEET_MAX_TIMEOUT_S=2 worker_start w1 --concurrency 2 --max-memory-mb 1024 --config "$T/worker.conf"

marker="$T/ran-$$"
rcli XADD sf:default:tasks '*' task "$(task_json big-1 caps "touch $marker; cat" '{"limits": {"memory_mb": 100000}}')" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json long-1 caps "touch $marker; cat" '{"timeout_s": 30}')" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json pids-1 caps "touch $marker; cat" '{"limits": {"pids": 100}}')" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json forever-1 caps 'sleep 60')" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json fine-1 caps cat '{"limits": {"memory_mb": 256}, "timeout_s": 1.5}')" >/dev/null
bundle=$(python3 - <<'PY'
import json
wf = {"name": "b", "sandbox": "shared", "steps": [
    {"id": "one", "run": "cat"},
    {"id": "two", "run": "cat", "needs": ["one"], "limits": {"memory_mb": 2048}}]}
print(json.dumps({"v": 1, "id": "bun:__workflow__:0", "run_id": "bun", "step": "__workflow__",
                  "workflow": wf, "input": {}}))
PY
)
rcli XADD sf:default:tasks '*' task "$bundle" >/dev/null

wait_for 30 '[ "$(rcli XLEN sf:run:caps:results)" = 5 ] && [ "$(rcli XLEN sf:run:bun:results)" = 1 ]' \
    || fail "the tasks were not all settled"
rcli XRANGE sf:run:caps:results - + >"$T/results.txt"
rcli XRANGE sf:run:bun:results - + >>"$T/results.txt"
rcli XRANGE sf:default:dead - + >"$T/dead.txt"

# result TASK_ID FIELD: one field of the stored result of TASK_ID
result() {
    python3 - "$T/results.txt" "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        if r["task_id"] == sys.argv[2]:
            print(r.get(sys.argv[3])); break
PY
}
dead_reason() { grep -A1 '^reason$' "$T/dead.txt" | grep -qF "$1"; }
# error_has TASK_ID TEXT: the stored result's error contains TEXT
error_has() { result "$1" error | grep -qF "$2"; }

check "memory over the cap: result rejected" [ "$(result big-1 status)" = rejected ]
check "memory over the cap: reason names the cap and its flag" \
    error_has big-1 "limits.memory_mb 100000 is over this worker's cap of 1024 (--max-memory-mb)"
check "memory over the cap: dead letter with the reason" dead_reason "limits.memory_mb 100000 is over"
check "timeout over the cap: rejected, naming --max-timeout-s" \
    error_has long-1 "timeout_s 30 is over this worker's cap of 2 (--max-timeout-s)"
check "timeout over the cap: dead letter" dead_reason "timeout_s 30 is over"
check "pids over the cap (from the config file): rejected, naming --max-pids" \
    error_has pids-1 "limits.pids 100 is over this worker's cap of 64 (--max-pids)"
check "no refused task ran" [ ! -e "$marker" ]
check "a task without a timeout gets the cap" [ "$(result forever-1 status)" = timeout ]
check "a task within the caps runs" [ "$(result fine-1 status)" = ok ]
check "a bundle with a step over a cap is rejected whole" [ "$(result bun:__workflow__:0 status)" = rejected ]
check "the bundle's reason names the step and the cap" \
    error_has bun:__workflow__:0 "step 'two': limits.memory_mb 2048 is over"

# The E2B server (--e2b-listen) holds its creates and timeout changes to the same caps.
EPORT=$(redis_free_port)
"$SF_BIN/sandfleet-worker" --e2b-listen "127.0.0.1:$EPORT" --e2b-api-key-file <(echo k-$$) \
    --max-timeout-s 60 >>"$T/e2b.log" 2>&1 &
WPID[e2b]=$!
wait_for 10 'curl -sf "http://127.0.0.1:$EPORT/health" >/dev/null' || fail "the E2B server did not start"
e2b() { curl -s -o "$T/e2b.body" -w '%{http_code}' -H "X-API-Key: k-$$" -H 'Content-Type: application/json' "$@"; }
code=$(e2b -XPOST "http://127.0.0.1:$EPORT/sandboxes" -d '{"templateID": "base", "timeout": 120}')
check "E2B create over the timeout cap: 400" [ "$code" = 400 ]
check "E2B create over the timeout cap: the reason names the cap" \
    grep -qF "sandbox: timeout_s 120 is over this worker's cap of 60 (--max-timeout-s)" "$T/e2b.body"
code=$(e2b -XPOST "http://127.0.0.1:$EPORT/sandboxes" -d '{"templateID": "base", "timeout": 30}')
check "E2B create within the cap: 201" [ "$code" = 201 ]
sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sandboxID"])' "$T/e2b.body")
code=$(e2b -XPOST "http://127.0.0.1:$EPORT/sandboxes/$sid/timeout" -d '{"timeout": 3600}')
check "E2B timeout change over the cap: 400" [ "$code" = 400 ]
check "the key came from a file (--e2b-api-key-file)" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-API-Key: wrong' "http://127.0.0.1:$EPORT/sandboxes")" = 401 ]
check "the worker logged its caps" grep -q 'caps per sandbox (0: none): memory 1024 MB, pids 64, disk 4096 MB, cpu 0 s, timeout 2 s' "$T/w1.log"
t_done
