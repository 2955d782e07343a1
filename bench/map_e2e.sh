#!/usr/bin/env bash
# bench/map_e2e.sh [N]: end to end through one Redis, same run (not a test).
# sandfleet: `sandfleet-coordinator run` of an N-element map of `cat`, clock from
# the coordinator's start to its result document, 2 workers x 2 slots, in the
# local sandbox and in the process backend (no sandbox). The peers, 2 worker
# processes x concurrency 2 each, N jobs that pipe their payload through
# `sh -c cat` as a child process: BullMQ and Celery (prefork + subprocess), and
# each again with the child wrapped in bubblewrap (--unshare-all, the same
# isolation class as the local sandbox). Also the machine's CPU per task
# (/proc/stat: everything on the host, so only meaningful on a quiet one).
set -u
. "$(dirname "$0")/lib.sh"
N=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 500 || echo 2000)}
bench_init map-e2e
redis_up
header
echo "# N=$N, redis $(redis-server --version | grep -o 'v=[0-9.]*'), sandfleet $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)"
python3 -c "import json; print(json.dumps({'name': 'e2e', 'steps': [{'id': 'each', 'run': 'cat', 'map': True, 'input': list(range($N))}]}))" >"$T/wf.json"

row() {   # name seconds cpu_ms
    python3 -c "import sys; n=$N; s=float(sys.argv[2]); print('%-34s %7.0f tasks/s  %6.2f s  machine CPU %5.2f ms/task' % (sys.argv[1], n/s, s, float(sys.argv[3])/n))" "$@" | tee -a "$T/rows"
}

for kind in local process; do
    workers_up 2 2 --sandbox "$kind"
    "$BIN/sandfleet-coordinator" run "$T/wf.json" --broker "$URL" --log-level warn --output /dev/null   # warm-up
    c0=$(mcpu); s0=$(date +%s.%N)
    "$BIN/sandfleet-coordinator" run "$T/wf.json" --broker "$URL" --log-level warn --output "$T/out.json"
    s1=$(date +%s.%N); c1=$(mcpu)
    python3 -c "import json,sys; d=json.load(open('$T/out.json')); sys.exit(d['status'] != 'succeeded')" || echo "sandfleet $kind: run failed"
    row "sandfleet, $kind" "$(python3 -c "print($s1 - $s0)")" $((c1 - c0))
    workers_down
    redis-cli -p "$PORT" flushall >/dev/null
done

for wrap in plain bwrap; do
    cmd='["sh","-c","cat"]'
    [ $wrap = bwrap ] && cmd="$BWRAP_ARGV,\"sh\",\"-c\",\"cat\"]"
    BENCH_CMD=$cmd bullmq_up 2 2
    c0=$(mcpu)
    out=$(cd "$BENCH_DIR" && BENCH_PORT=$PORT node fleet/bullmq_bench.js driver "$N")
    c1=$(mcpu)
    row "BullMQ, child process ($wrap)" "$(echo "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["seconds"])')" $((c1 - c0))
    peers_down
    BENCH_CMD=$cmd celery_up 2 2
    c0=$(mcpu)
    out=$(cd "$BENCH_DIR/fleet" && BENCH_REDIS=$URL/0 "$PY" celery_driver.py "$N" run)
    c1=$(mcpu)
    row "Celery, prefork + subprocess ($wrap)" "$(echo "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["seconds"])')" $((c1 - c0))
    peers_down
done
python3 - "$T/rows" <<'PY'
import re, sys
rate = {}
for line in open(sys.argv[1]):
    m = re.match(r"(.*?)\s+(\d+) tasks/s", line)
    if m: rate[m.group(1).strip()] = float(m.group(2))
sf = rate.get("sandfleet, local")
for peer in ("BullMQ, child process (plain)", "BullMQ, child process (bwrap)",
             "Celery, prefork + subprocess (plain)", "Celery, prefork + subprocess (bwrap)"):
    if sf and rate.get(peer): print("sandfleet sandboxed / %s: %.2fx" % (peer, sf / rate[peer]))
if rate.get("sandfleet, process") and rate.get("BullMQ, child process (plain)"):
    print("sandfleet process / BullMQ plain: %.2fx" % (rate["sandfleet, process"] / rate["BullMQ, child process (plain)"]))
PY
