#!/usr/bin/env bash
# `sandfleet-coordinator run` end to end: the examples, the result document,
# failures, timeouts, bad input and exit codes — through the real local
# sandbox (and once through the process backend).
set -u
. "$(dirname "$0")/../lib/testlib.sh"
C="$SF_BIN/sandfleet-coordinator"
SB=${SF_TEST_SANDBOX:-local}
W=$T_TMP/wf; mkdir -p "$W"

# --- usage and bad input: exit 2, nothing runs ------------------------------
"$C" --help >/dev/null; check "--help exits 0" [ $? -eq 0 ]
"$C" --version | grep -q '^sandfleet-coordinator '; check "--version names the program" [ $? -eq 0 ]
"$C" >/dev/null 2>&1; check "no command exits 2" [ $? -eq 2 ]
"$C" run >/dev/null 2>&1; check "run without a workflow exits 2" [ $? -eq 2 ]
"$C" run "$SF_SRC/examples/fanout/workflow.json" --bogus 2>"$T_TMP/err"; rc=$?
check "unknown option exits 2" [ $rc -eq 2 ]
check "unknown option is named" grep -q "unknown option '--bogus'" "$T_TMP/err"

cat > "$W/bad.json" <<'J'
{"steps": [
  {"id": "a", "run": "touch /tmp/should-not-exist", "needs": ["ghost"]},
  {"id": "a", "run": "x", "limits": {"memory_mb": -1}}
]}
J
"$C" run "$W/bad.json" --sandbox "$SB" >"$T_TMP/out" 2>"$T_TMP/err"; rc=$?
check "invalid workflow exits 2" [ $rc -eq 2 ]
check "invalid workflow: unknown need named with file and step" grep -q "bad.json: step 'a': unknown need 'ghost'" "$T_TMP/err"
check "invalid workflow: duplicate id reported too" grep -q "duplicate step id" "$T_TMP/err"
check "invalid workflow: bad limit reported too" grep -q "limit 'memory_mb' must be a positive integer" "$T_TMP/err"
check "invalid workflow: nothing on stdout" [ ! -s "$T_TMP/out" ]
printf '{"steps": [}' > "$W/json.json"
"$C" run "$W/json.json" 2>"$T_TMP/err"; rc=$?
check "bad JSON exits 2 with line:column" bash -c "[ $rc -eq 2 ] && grep -q 'json.json:1:' '$T_TMP/err'"

# --- the examples ---------------------------------------------------------------
run_example() {  # name sandbox -> $T_TMP/<name>.<sandbox>.json
  "$C" run "$SF_SRC/examples/$1/workflow.json" --sandbox "$2" --output "$T_TMP/$1.$2.json" 2>"$T_TMP/$1.$2.err"
}
for sb in "$SB" process; do
  run_example analyze-report "$sb"; rc=$?
  check "[$sb] analyze-report exits 0" [ $rc -eq 0 ]
  check "[$sb] report built from agent A's output" jtrue "$T_TMP/analyze-report.$sb.json" \
    'd["status"]=="succeeded" and d["steps"]["report"]["output"]["summary"]=="9 words; longest is '"'"'coordinator'"'"'" and d["steps"]["analyze"]["output"]["words"]==9'
  run_example fanout "$sb"; rc=$?
  check "[$sb] fanout exits 0" [ $rc -eq 0 ]
  check "[$sb] map output has one element per word, in order" jtrue "$T_TMP/fanout.$sb.json" \
    '[s["word"] for s in d["steps"]["score"]["output"]] == d["steps"]["split"]["output"] and len(d["steps"]["split"]["output"])==14'
  check "[$sb] reduce sums the map" jtrue "$T_TMP/fanout.$sb.json" \
    'd["steps"]["total"]["output"]=={"words":14,"total":sum(s["score"] for s in d["steps"]["score"]["output"]),"best":"running"}'
  run_example shared "$sb"; rc=$?
  check "[$sb] shared-sandbox example exits 0" [ $rc -eq 0 ]
  check "[$sb] agent B read agent A's file in /tmp/shared" jtrue "$T_TMP/shared.$sb.json" \
    'd["steps"]["reader"]["output"]["summary"]=="coordinator as bus; shared files; middleware"'
done
check "result document has exactly the documented fields" jtrue "$T_TMP/analyze-report.$SB.json" \
  'set(d)=={"workflow","run_id","status","duration_ms","steps"} and all(set(s)=={"status","output","exit_code","attempts","duration_ms","stderr_tail","error","worker"} for s in d["steps"].values())'

# --- failures ------------------------------------------------------------------
cat > "$W/fail.json" <<'J'
{"name": "failing", "steps": [
  {"id": "notjson", "run": "echo hello world"},
  {"id": "after", "run": "cat", "needs": ["notjson"]},
  {"id": "exit3", "run": "echo '{\"partial\": true}'; echo oops >&2; exit 3"},
  {"id": "slow", "run": "sleep 30; echo 1", "timeout_s": 1},
  {"id": "fine", "run": "cat", "input": {"still": "runs"}},
  {"id": "flaky", "run": "if [ \"$SF_ATTEMPT\" = 1 ]; then exit 1; fi; echo '\"second time\"'", "retries": 2},
  {"id": "missing", "run": "no-such-interpreter agent.py"}
]}
J
start=$(date +%s)
"$C" run "$W/fail.json" --sandbox "$SB" --retry-base-ms 50 --output "$T_TMP/fail.json" 2>"$T_TMP/fail.err"; rc=$?
elapsed=$(( $(date +%s) - start ))
check "a failed workflow exits 1" [ $rc -eq 1 ]
check "non-JSON stdout fails with the documented message" jtrue "$T_TMP/fail.json" \
  'd["steps"]["notjson"]["status"]=="failed" and d["steps"]["notjson"]["error"]=="output is not JSON: hello world\\n"'
check "dependants of a failed step are skipped" jtrue "$T_TMP/fail.json" 'd["steps"]["after"]["status"]=="skipped"'
check "exit code, partial output and stderr tail are kept" jtrue "$T_TMP/fail.json" \
  'd["steps"]["exit3"]["exit_code"]==3 and d["steps"]["exit3"]["output"]=={"partial":True} and "oops" in d["steps"]["exit3"]["stderr_tail"] and d["steps"]["exit3"]["error"]=="exit code 3"'
check "a hung step times out" jtrue "$T_TMP/fail.json" 'd["steps"]["slow"]["status"]=="timeout"'
check "the timeout did not wait for the 30 s sleep" [ "$elapsed" -lt 20 ]
check "independent branches still run" jtrue "$T_TMP/fail.json" 'd["steps"]["fine"]["output"]=={"still":"runs"}'
check "retries: second attempt succeeds" jtrue "$T_TMP/fail.json" \
  'd["steps"]["flaky"]["status"]=="succeeded" and d["steps"]["flaky"]["attempts"]==2 and d["steps"]["flaky"]["output"]=="second time"'
check "a missing interpreter is a clear error" jtrue "$T_TMP/fail.json" \
  'd["steps"]["missing"]["exit_code"]==127 and "not found" in d["steps"]["missing"]["stderr_tail"]'

# --- output cap, --input, --output ------------------------------------------------
cat > "$W/big.json" <<'J'
{"steps": [{"id": "big", "run": "python3 -c 'print(\"[\" + \",\".join([\"1\"]*5000) + \"]\")'"}]}
J
"$C" run "$W/big.json" --sandbox "$SB" --output-cap 1000 --output "$T_TMP/big.json" 2>/dev/null
check "output over the cap fails with the cap in the message" jtrue "$T_TMP/big.json" \
  'd["steps"]["big"]["error"]=="output is larger than the cap of 1000 bytes"'
"$C" run "$W/big.json" --sandbox "$SB" --output "$T_TMP/big2.json" 2>/dev/null
check "the same output under the default cap succeeds" jtrue "$T_TMP/big2.json" 'len(d["steps"]["big"]["output"])==5000'

cat > "$W/echo.json" <<'J'
{"steps": [{"id": "echo", "run": "cat /tmp/input.json", "input": {"from": "file"}},
           {"id": "stdin", "run": "cat", "needs": ["echo"]}]}
J
echo '{"from": "--input"}' | "$C" run "$W/echo.json" --sandbox "$SB" --input - > "$T_TMP/echo.json" 2>/dev/null
check "--input - replaces the root step's input; /tmp/input.json and stdin agree" jtrue "$T_TMP/echo.json" \
  'd["steps"]["echo"]["output"]=={"from":"--input"} and d["steps"]["stdin"]["output"]=={"from":"--input"}'
"$C" run "$W/echo.json" --sandbox "$SB" --input "$W/nope.json" 2>"$T_TMP/err"; rc=$?
check "unreadable --input exits 2" [ $rc -eq 2 ]

"$C" run "$W/echo.json" --sandbox warp 2>"$T_TMP/err"; rc=$?
check "unknown sandbox backend exits 3 with a message" bash -c "[ $rc -eq 3 ] && grep -q \"unknown sandbox backend 'warp'\" '$T_TMP/err'"

t_done
