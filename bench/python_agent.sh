#!/usr/bin/env bash
# bench/python_agent.sh [N]: a Python agent (import json, read the input, print
# the output) over an N-element map through one Redis, same run (not a test):
#   sandfleet cold   each element in a fresh local sandbox and a fresh python3
#   sandfleet warm   the same step with "serve": "lines" (docs/workflows.md):
#                    one python3 per slot, fed one line per element
#   Celery           the same function in the prefork worker itself, no child
#                    process and no sandbox (its home ground)
# 2 sandfleet workers x 2 slots; Celery 2 workers x concurrency 2.
set -u
. "$(dirname "$0")/lib.sh"
N=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 300 || echo 2000)}
bench_init python-agent
redis_up
header
echo "# N=$N, $(python3 --version), celery $("$BENCH_DIR/.venv/bin/celery" --version | cut -d' ' -f1)"
cat >"$T/agent.py" <<'PY'
import json, sys
for line in sys.stdin:
    x = json.loads(line)
    print(json.dumps({"y": x * 2}), flush=True)
PY
for mode in cold warm; do
    serve=""; [ $mode = warm ] && serve=', "serve": "lines"'
    cat >"$T/$mode.json" <<J
{"name": "py-$mode", "steps": [{"id": "each", "run": "python3 agent.py", "files": {"agent.py": "$T/agent.py"},
  "map": true$serve, "input": $(python3 -c "print(list(range($N)))")}]}
J
done
row() { python3 -c "import sys; n=$N; s=float(sys.argv[2]); print('%-44s %7.0f tasks/s  %6.2f s  machine CPU %5.2f ms/task' % (sys.argv[1], n/s, s, float(sys.argv[3])/n))" "$@" | tee -a "$T/rows"; }

workers_up 2 2 --sandbox local
for mode in cold warm; do
    c0=$(mcpu); s0=$(date +%s.%N)
    "$BIN/sandfleet-coordinator" run "$T/$mode.json" --broker "$URL" --log-level warn --output "$T/$mode.out"
    s1=$(date +%s.%N); c1=$(mcpu)
    python3 -c "import json,sys; d=json.load(open('$T/$mode.out')); o=d['steps']['each']['output']; sys.exit(d['status'] != 'succeeded' or o != [{'y': 2*i} for i in range($N)])" ||
        echo "sandfleet $mode: wrong result"
    row "sandfleet, $mode (local sandbox)" "$(python3 -c "print($s1 - $s0)")" $((c1 - c0))
done
workers_down
celery_up 2 2
c0=$(mcpu)
out=$(cd "$BENCH_DIR/fleet" && BENCH_REDIS=$URL/0 "$PY" celery_driver.py "$N" double)
c1=$(mcpu)
row "Celery, the function in the worker process" "$(echo "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["seconds"])')" $((c1 - c0))
peers_down
python3 - "$T/rows" <<'PY'
import re, sys
rate = {m.group(1).strip(): float(m.group(2)) for m in
        (re.match(r"(.*?)\s+(\d+) tasks/s", l) for l in open(sys.argv[1])) if m}
c, w = rate.get("sandfleet, cold (local sandbox)"), rate.get("sandfleet, warm (local sandbox)")
ce = rate.get("Celery, the function in the worker process")
if c and w: print("warm / cold: %.1fx" % (w / c))
if w and ce: print("warm / Celery in-process: %.2fx" % (w / ce))
PY
