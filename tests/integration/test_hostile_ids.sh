#!/bin/bash
# Ids from the wire and agent output cannot forge log lines (issue 17):
#  1. a task whose run_id carries a newline and a fake log line, pushed
#     straight into Redis: dead-lettered untouched with a reason naming the
#     field; the worker's log has no line starting with the forged text;
#  2. a task id with a terminal escape, a step with a space: the same;
#  3. an agent printing a fake log line instead of JSON: at info level the
#     coordinator's log does not carry it at all, at debug level only
#     escaped, on its own line.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init hostile
FORGED="2030-01-01T00:00:00.000Z error worker forged-$$"
worker_start w1 --log-level debug

hostile=$(python3 - "$FORGED" <<'PY'
import json, sys
base = {"v": 1, "run": "cat", "input": {}}
print(json.dumps(dict(base, id="h:s:0", run_id="h\n" + sys.argv[1], step="s")))
print(json.dumps(dict(base, id="h:s:1\u001b[2J", run_id="h", step="s")))
print(json.dumps(dict(base, id="h:s:2", run_id="h", step="my step")))
PY
)
while IFS= read -r t; do rcli XADD sf:default:tasks '*' task "$t" >/dev/null; done <<<"$hostile"
wait_for 20 '[ "$(rcli XLEN sf:default:dead)" = 3 ]' || fail "the hostile tasks were not dead-lettered"
rcli --raw XRANGE sf:default:dead - + >"$T/dead.txt"
check "a newline in run_id: dead-lettered, naming the field" grep -q "field 'run_id' must be 1 to 100 letters" "$T/dead.txt"
check "the raw task is kept byte for byte" grep -qF "forged-$$" "$T/dead.txt"
check "an escape in the task id: dead-lettered" grep -q "field 'id' must be" "$T/dead.txt"
check "a space in the step: dead-lettered" grep -q "field 'step' must be" "$T/dead.txt"
check "nothing of them ran" [ "$(rcli EXISTS sf:run:h:results)" = 0 ]
check "no log line starts with the forged text" bash -c "! grep -q '^$FORGED' '$T/w1.log'"
check "the worker logged the dead letter on one escaped line" grep -qF 'h\n2030-01-01T00:00:00.000Z' "$T/w1.log"
check "no raw escape byte in the log" bash -c "! grep -qP '\\x1b' '$T/w1.log'"

# --- 3. agent output -------------------------------------------------------------------------
cat >"$T/wf.json" <<JSON
{ "name": "liar", "steps": [ { "id": "a", "run": "printf 'x\\\\n$FORGED\\\\n'" } ] }
JSON
"$SF_BIN/sandfleet-coordinator" run "$T/wf.json" --sandbox process >"$T/doc1.json" 2>"$T/info.log"
check "the step fails: output is not JSON" jtrue "$T/doc1.json" '"output is not JSON" in d["steps"]["a"]["error"]'
check "at info level the agent's output is not logged" bash -c "! grep -q 'forged-$$' '$T/info.log'"
"$SF_BIN/sandfleet-coordinator" run "$T/wf.json" --sandbox process --log-level debug >/dev/null 2>"$T/debug.log"
check "at debug level it is, escaped" grep -qF "x\\n$FORGED" "$T/debug.log"
check "and never as a line of its own" bash -c "! grep -q '^$FORGED' '$T/debug.log'"
t_done
