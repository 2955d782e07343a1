#!/bin/bash
# bench/kafka_fleet.sh [N]: sandfleet through Kafka beside the same fleet
# through Redis, in one run on one machine (not a test):
#   2 workers x 2 slots, no-op task (`cat`) in a local sandbox, and again in the
#   process backend (no sandbox: the broker path shows more);
#   throughput: N tasks produced at once, clock stops at the N-th result;
#   latency: 300 sequential 1-step tasks, submit -> result, p50/p99.
# Kafka: a KRaft broker from deploy/local/kafka.sh (temporary data dir, free
# ports); Redis: redis-server without persistence. Drivers: bench/fleet/
# sf_driver.py (redis-py) and sf_kafka_driver.py (confluent-kafka), both from
# bench/.venv (bench/peers.sh installs it).
set -u
N=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 300 || echo 1000)}
LAT=${LAT:-$([ "${BENCH_MODE:-full}" = quick ] && echo 100 || echo 300)}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BIN=${SF_BIN:-${BUILD:-$SRC/build}/bin}
T=$(mktemp -d /tmp/sf-kbench.XXXXXX)
PY=$HERE/.venv/bin/python
PIDS=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); KPORT=$(free_port); KCPORT=$(free_port)
kafka() { KAFKA_PORT=$KPORT KAFKA_CPORT=$KCPORT KAFKA_DATA=$T/kafka "$SRC/deploy/local/kafka.sh" "$@"; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
    kafka stop >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
bash "$HERE/peers.sh" || exit 1
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --daemonize yes \
    --logfile "$T/redis.log" >/dev/null
kafka start >"$T/kafka.sh.log" 2>&1 || { cat "$T/kafka.sh.log"; exit 1; }

round() {   # broker-name url sandbox
    local name=$1 url=$2 kind=$3
    for i in 1 2; do
        "$BIN/sandfleet-worker" --broker "$url" --sandbox "$kind" --concurrency 2 --worker-id "b$i" \
            --log-level warn 2>>"$T/w.log" &
        PIDS+=($!)
    done
    sleep 2
    if [ "$name" = redis ]; then
        redis-cli -p "$RPORT" flushall >/dev/null
        "$PY" "$HERE/fleet/sf_driver.py" "$RPORT" throughput 200 >/dev/null            # warm-up
        echo "$name ($kind) throughput: $("$PY" "$HERE/fleet/sf_driver.py" "$RPORT" throughput "$N")"
        echo "$name ($kind) latency:    $("$PY" "$HERE/fleet/sf_driver.py" "$RPORT" latency "$LAT")"
    else
        "$PY" "$HERE/fleet/sf_kafka_driver.py" "127.0.0.1:$KPORT" throughput 200 >/dev/null
        echo "$name ($kind) throughput: $("$PY" "$HERE/fleet/sf_kafka_driver.py" "127.0.0.1:$KPORT" throughput "$N")"
        echo "$name ($kind) latency:    $("$PY" "$HERE/fleet/sf_kafka_driver.py" "127.0.0.1:$KPORT" latency "$LAT")"
    fi
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    PIDS=()
}

echo "# $(date -u +%F) $(nproc) CPUs, $(uname -r), redis $(redis-server --version | grep -o 'v=[0-9.]*'), kafka ${KAFKA_VERSION:-4.1.1}, N=$N"
for kind in local process; do
    round redis "redis://127.0.0.1:$RPORT" "$kind"
    round kafka "kafka://127.0.0.1:$KPORT" "$kind"
done
