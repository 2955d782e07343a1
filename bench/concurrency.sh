#!/usr/bin/env bash
# bench/concurrency.sh [N] — throughput against concurrency, one worker process
# with C slots (C = 1, 2, 4), for sandfleet (local sandbox, and the process
# backend), Celery (prefork, subprocess `sh -c cat`) and BullMQ (child
# `sh -c cat`), all against one redis-server in the same run. Writes
# concurrency.csv and throughput.png (matplotlib) into $BENCH_OUT (bench/run.sh's
# results folder; bench/results without it); PLOT=docs/throughput.png updates
# the picture docs/benchmarks.md shows.
# The peers (bench/.venv, bench/node_modules) are installed by bench/peers.sh.
set -u
N=${1:-$([ "${BENCH_MODE:-quick}" = full ] && echo 2000 || echo 400)}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BIN=${SF_BIN:-${BUILD:-$SRC/build}/bin}
PY=$HERE/.venv/bin/python
T=$(mktemp -d /tmp/sf-conc.XXXXXX)
PIDS=()
PORT=
stop_all() { for p in "${PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
             for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done; PIDS=(); }
cleanup() { stop_all; [ -n "$PORT" ] && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
bash "$HERE/peers.sh" || exit 1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --daemonize yes \
    --logfile "$T/redis.log" >/dev/null
sleep 0.3
URL=redis://127.0.0.1:$PORT
OUT=${BENCH_OUT:-$HERE/results}
CSV=$OUT/concurrency.csv
PLOT=${PLOT:-$OUT/throughput.png}
mkdir -p "$OUT"
echo "system,concurrency,tasks_per_s" > "$CSV"
per_s() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["per_s"])'; }

for c in 1 2 4; do
  for kind in local process; do
    redis-cli -p "$PORT" flushall >/dev/null
    "$BIN/sandfleet-worker" --broker "$URL" --sandbox "$kind" --concurrency "$c" --worker-id "c$c" \
        --log-level warn --callback-concurrency 0 2>>"$T/w.log" & PIDS+=($!)
    sleep 0.5
    "$PY" "$HERE/fleet/sf_driver.py" "$PORT" throughput 100 >/dev/null
    v=$("$PY" "$HERE/fleet/sf_driver.py" "$PORT" throughput "$N" | per_s)
    echo "sandfleet-$kind,$c,$v" | tee -a "$CSV"
    stop_all
  done
  if "$PY" -c 'import celery' 2>/dev/null; then
    redis-cli -p "$PORT" flushall >/dev/null
    (cd "$HERE/fleet" && BENCH_REDIS=$URL/0 exec "$HERE/.venv/bin/celery" -A celery_app worker \
        --pool prefork --concurrency "$c" -n "c$c@%h" --loglevel WARNING >>"$T/celery.log" 2>&1) & PIDS+=($!)
    sleep 4
    v=$(cd "$HERE/fleet" && BENCH_REDIS=$URL/0 "$PY" celery_driver.py "$N" | per_s)
    echo "celery,$c,$v" | tee -a "$CSV"
    stop_all
  fi
  if [ -d "$HERE/node_modules/bullmq" ]; then
    redis-cli -p "$PORT" flushall >/dev/null
    (cd "$HERE" && BENCH_PORT=$PORT BENCH_CONCURRENCY=$c exec node fleet/bullmq_bench.js worker \
        >>"$T/bullmq.log" 2>&1) & PIDS+=($!)
    sleep 1.5
    v=$(cd "$HERE" && BENCH_PORT=$PORT node fleet/bullmq_bench.js driver "$N" | per_s)
    echo "bullmq,$c,$v" | tee -a "$CSV"
    stop_all
  fi
done

"$PY" - "$CSV" "$PLOT" "$(date -u +%F)" "$(nproc)" "$N" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
for name in dict.fromkeys(r["system"] for r in rows):
    pts = [(int(r["concurrency"]), float(r["tasks_per_s"])) for r in rows if r["system"] == name]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
ax.set_xlabel("slots in one worker process")
ax.set_ylabel("no-op tasks per second")
ax.set_xticks([1, 2, 4])
ax.set_title(f"Throughput through one Redis ({sys.argv[3]}, {sys.argv[4]} CPUs, {sys.argv[5]} tasks)")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2])
print("plot:", sys.argv[2])
PY
