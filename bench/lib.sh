# bench/lib.sh: what the newer bench sections share (sourced; sets -u safe).
#   bench_init NAME     temp dir $T, cleanup trap, the peers installed, $BIN, $PY
#   redis_up            a redis-server without persistence: $PORT, $URL
#   workers_up N C ARGS...   N sandfleet workers x C slots (pids in WPIDS)
#   workers_down        SIGTERM them and wait
#   bullmq_up C [N]     N (default 1) BullMQ worker processes x concurrency C; BENCH_CMD passes through
#   celery_up C [N]     N (default 1) Celery prefork workers x C; BENCH_CMD passes through
#   peers_down          stop BullMQ/Celery workers
#   mcpu                machine CPU time so far (ms, all CPUs, from /proc/stat)
#   tree_rss PID        "RSS PSS" in kB of PID and all its descendants
#   mem_avail           MemAvailable in kB
#   header              machine, date, load line
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(dirname "$BENCH_DIR")
BIN=${SF_BIN:-${BUILD:-$SRC/build}/bin}
PY=$BENCH_DIR/.venv/bin/python
PORT=
WPIDS=()
PPIDS=()
BWRAP_ARGV='["/usr/bin/bwrap","--unshare-all","--die-with-parent","--ro-bind","/usr","/usr","--symlink","usr/bin","/bin","--symlink","usr/lib","/lib","--symlink","usr/lib64","/lib64","--proc","/proc","--dev","/dev","--tmpfs","/tmp"'

bench_cleanup() {
    for p in "${WPIDS[@]}" "${PPIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    [ -n "$PORT" ] && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1
    rm -rf "$T"
}

bench_init() {
    T=$(mktemp -d "/tmp/sf-$1.XXXXXX")
    trap bench_cleanup EXIT
    bash "$BENCH_DIR/peers.sh" || exit 1
}

redis_up() {
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --daemonize yes \
        --logfile "$T/redis.log" >/dev/null
    for _ in $(seq 100); do redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
    URL=redis://127.0.0.1:$PORT
}

workers_up() {
    local n=$1 c=$2; shift 2
    for i in $(seq "$n"); do
        "$BIN/sandfleet-worker" --broker "$URL" --concurrency "$c" --worker-id "bw$i" --log-level warn \
            --callback-concurrency 0 "$@" 2>>"$T/worker.log" &
        WPIDS+=($!)
    done
    # up once each has joined the consumer group
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$PORT" XINFO CONSUMERS sf:default:tasks workers 2>/dev/null | grep -c '^name$')" -ge "$n" ] && break
        sleep 0.1
    done
}

workers_down() {
    for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${WPIDS[@]}"; do wait "$p" 2>/dev/null; done
    WPIDS=()
}

bullmq_up() {
    local c=$1 n=${2:-1}
    for _ in $(seq "$n"); do
        (cd "$BENCH_DIR" && BENCH_PORT=$PORT BENCH_CONCURRENCY=$c exec node fleet/bullmq_bench.js worker \
            >>"$T/bullmq.log" 2>&1) &
        PPIDS+=($!)
    done
    for _ in $(seq 100); do redis-cli -p "$PORT" client list | grep -q 'cmd=bzpopmin' && break; sleep 0.1; done
}

celery_up() {
    local c=$1 n=${2:-1}
    : >"$T/celery.log"
    for i in $(seq "$n"); do
        (cd "$BENCH_DIR/fleet" && BENCH_REDIS=$URL/0 exec "$BENCH_DIR/.venv/bin/celery" -A celery_app worker \
            --pool prefork --concurrency "$c" -n "c$i@%h" --loglevel INFO >>"$T/celery.log" 2>&1) &
        PPIDS+=($!)
    done
    for _ in $(seq 300); do [ "$(grep -c ' ready\.' "$T/celery.log")" -ge "$n" ] && break; sleep 0.1; done
}

peers_down() {
    for p in "${PPIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    for p in "${PPIDS[@]}"; do wait "$p" 2>/dev/null; done
    PPIDS=()
    redis-cli -p "$PORT" flushall >/dev/null
}

mcpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {print int(($2+$3+$4+$7+$8) * 1000 / hz)}' /proc/stat; }

tree_pids() {
    local c
    echo "$1"
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
tree_rss() {   # PID: "rss_kB pss_kB" summed over its tree (PSS shares shared pages out)
    local p r=0 s=0 v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^Rss:/ {r=$2} /^Pss:/ {s=$2} END {print r+0, s+0}' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        set -- $v
        r=$((r + ${1:-0})); s=$((s + ${2:-0}))
    done
    echo "$r $s"
}
mem_avail() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }

header() {
    echo "# $(date -u +%FT%H:%MZ) $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
}
