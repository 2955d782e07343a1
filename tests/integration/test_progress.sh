#!/bin/bash
# `run` progress: on a terminal (a pty from script(1)) the bar is redrawn in
# place with steps done/total, map progress (tasks done/known), rate and ETA;
# with stderr not a terminal there is no bar, only plain log lines.
set -u
source "$SF_SRC/tests/lib/testlib.sh"
cat >"$T_TMP/wf.json" <<'JSON'
{ "name": "progress", "steps": [
  { "id": "list", "run": "python3 -c 'import json; print(json.dumps(list(range(16))))'" },
  { "id": "each", "run": "sleep 0.15; cat", "needs": ["list"], "map": true } ] }
JSON
RUN="$SF_BIN/sandfleet-coordinator run $T_TMP/wf.json --sandbox process --concurrency 2"
script -qec "$RUN >$T_TMP/doc.json" "$T_TMP/tty.out" >/dev/null 2>&1
check "run under a pty succeeds" jtrue "$T_TMP/doc.json" 'd["status"] == "succeeded" and len(d["steps"]["each"]["output"]) == 16'
tr '\r' '\n' <"$T_TMP/tty.out" >"$T_TMP/frames"
check "the bar is redrawn in place (carriage returns)" grep -q $'\r\\[' "$T_TMP/tty.out"
check "steps done/total" grep -q 'steps 1/2' "$T_TMP/frames"
check "map progress as tasks done/known" grep -Eq 'tasks ([2-9]|1[0-6])/17' "$T_TMP/frames"
check "a rate" grep -Eq '[0-9]+\.[0-9]/s' "$T_TMP/frames"
check "an ETA while running" grep -Eq 'ETA [0-9]+s' "$T_TMP/frames"
check "the final frame: everything done" grep -q 'steps 2/2  tasks 17/17' "$T_TMP/frames"
$RUN >"$T_TMP/doc2.json" 2>"$T_TMP/plain.err"
check "no bar without a terminal" bash -c "! grep -q \$'\\r' '$T_TMP/plain.err' && ! grep -q ETA '$T_TMP/plain.err'"
check "plain per-step lines instead" grep -q '2/2 steps done, 17/17 tasks' "$T_TMP/plain.err"
t_done
