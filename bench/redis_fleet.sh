#!/bin/bash
# bench/redis_fleet.sh [N]: fleet throughput and latency through one Redis
# (not a test). Same redis-server, same machine, in one run:
#   sandfleet  2 workers x 2 slots, no-op task (`cat`) in a local sandbox
#              (and in the process backend, no sandbox, for a like-for-like row)
#   Celery     2 prefork workers x 2, task = subprocess `sh -c cat`
#   BullMQ     2 worker processes x concurrency 2, job = child `sh -c cat`
# plus sandfleet submit->result latency (1-step no-op, sequential) and idle
# worker RSS. The peers (bench/.venv with Celery, bench/node_modules with BullMQ)
# are installed by bench/peers.sh at pinned versions.
set -u
N=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 500 || echo 2000)}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BIN=${SF_BIN:-${BUILD:-$SRC/build}/bin}
T=$(mktemp -d /tmp/sf-bench.XXXXXX)
PY=$HERE/.venv/bin/python
PIDS=()
PORT=
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; [ -n "$PORT" ] && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
bash "$HERE/peers.sh" || exit 1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --daemonize yes \
    --logfile "$T/redis.log" >/dev/null
sleep 0.3
URL=redis://127.0.0.1:$PORT

sf_round() {   # sandbox kind
    local kind=$1
    redis-cli -p "$PORT" flushall >/dev/null
    for i in 1 2; do
        "$BIN/sandfleet-worker" --broker "$URL" --sandbox "$kind" --concurrency 2 --worker-id "b$i" \
            --log-level warn 2>>"$T/w.log" &
        PIDS+=($!)
    done
    sleep 0.5
    "$PY" "$HERE/fleet/sf_driver.py" "$PORT" throughput 200 >/dev/null     # warm-up
    echo "sandfleet ($kind) throughput: $("$PY" "$HERE/fleet/sf_driver.py" "$PORT" throughput "$N")"
    echo "sandfleet ($kind) latency:    $("$PY" "$HERE/fleet/sf_driver.py" "$PORT" latency 500)"
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    PIDS=()
}

echo "# $(date -u +%F) $(nproc) CPUs, $(uname -r), redis $(redis-server --version | grep -o 'v=[0-9.]*'), N=$N"
sf_round local
sf_round process

# idle RSS: one worker, 2 slots, nothing to do
"$BIN/sandfleet-worker" --broker "$URL" --sandbox local --concurrency 2 --worker-id idle --log-level warn 2>>"$T/w.log" &
IDLE=$!; PIDS+=($IDLE)
sleep 3
echo "sandfleet idle worker RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$IDLE/status)"
kill -TERM "$IDLE"; wait "$IDLE" 2>/dev/null; PIDS=()

if "$PY" -c 'import celery' 2>/dev/null; then
    redis-cli -p "$PORT" flushall >/dev/null
    for i in 1 2; do
        (cd "$HERE/fleet" && BENCH_REDIS=$URL/0 exec "$HERE/.venv/bin/celery" -A celery_app worker \
            --pool prefork --concurrency 2 -n "c$i@%h" --loglevel WARNING >>"$T/celery.log" 2>&1) &
        PIDS+=($!)
    done
    sleep 4
    echo "celery throughput: $(cd "$HERE/fleet" && BENCH_REDIS=$URL/0 "$PY" celery_driver.py "$N")"
    for p in "${PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    sleep 2; PIDS=()
else
    echo "celery: not installed (bench/.venv), skipped"
fi

if [ -d "$HERE/node_modules/bullmq" ]; then
    redis-cli -p "$PORT" flushall >/dev/null
    for i in 1 2; do
        (cd "$HERE" && BENCH_PORT=$PORT exec node fleet/bullmq_bench.js worker >>"$T/bullmq.log" 2>&1) &
        PIDS+=($!)
    done
    sleep 1.5
    echo "bullmq throughput: $(cd "$HERE" && BENCH_PORT=$PORT node fleet/bullmq_bench.js driver "$N")"
else
    echo "bullmq: not installed (bench/node_modules), skipped"
fi
