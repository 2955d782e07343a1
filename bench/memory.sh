#!/bin/bash
# bench/memory.sh [RUNS]: idle worker memory, sandfleet against its peers
# (not a test). Per run, one after the other against the same redis-server:
#   sandfleet  one worker, defaults (--concurrency 2 --sandbox local)
#   Celery     one worker, prefork --concurrency 2 (main + 2 children)
#   BullMQ     one node process, Worker with concurrency 2
# Each is left idle for SETTLE seconds (default 2) once it is up, then VmRSS,
# RssAnon, RssFile (/proc/PID/status) and Pss (/proc/PID/smaps_rollup) are
# summed over its process tree. Prints every run and the median (min-max).
# The peers are installed by bench/peers.sh (pinned versions). SF_BIN= picks
# the build; PEERS= (default "sandfleet celery bullmq") picks who is measured.
set -u
RUNS=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 2 || echo 5)}
SETTLE=${SETTLE:-2}
PEERS=${PEERS:-sandfleet celery bullmq}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BIN=${SF_BIN:-${BUILD:-$SRC/build}/bin}
T=$(mktemp -d /tmp/sf-mem.XXXXXX)
PIDS=()
PORT=
cleanup() {
    for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    [ -n "$PORT" ] && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
bash "$HERE/peers.sh" || exit 1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --daemonize yes \
    --logfile "$T/redis.log" >/dev/null
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
URL=redis://127.0.0.1:$PORT

tree_pids() {   # pid and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p"); do tree_pids "$c"; done
}

# "rss anon file pss" in kB, summed over the tree of $1.
measure() {
    local rss=0 anon=0 file=0 pss=0 p v
    for p in $(tree_pids "$1"); do
        [ -r "/proc/$p/status" ] || continue
        v=$(awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print r+0, a+0, f+0}' "/proc/$p/status")
        set -- $v
        rss=$((rss + $1)); anon=$((anon + $2)); file=$((file + $3))
        pss=$((pss + $(awk '/^Pss:/ {print $2; exit}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$rss $anon $file $pss"
}

stop() {        # TERM the tree of $1, KILL what is left after 5 s
    local pids
    pids=$(tree_pids "$1")
    kill -TERM $pids 2>/dev/null
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL $pids 2>/dev/null
    wait "$1" 2>/dev/null
    PIDS=()
}

run_sandfleet() {
    "$BIN/sandfleet-worker" --broker "$URL" --concurrency 2 --sandbox local --worker-id mem \
        --log-level warn 2>>"$T/sf.log" &
    local w=$!; PIDS=($w)
    sleep "$SETTLE"
    kill -0 "$w" 2>/dev/null || { echo "sandfleet-worker exited: $(tail -3 "$T/sf.log")" >&2; return 1; }
    echo "sandfleet $(measure "$w") $(tree_pids "$w" | wc -l)" >>"$T/results"
    stop "$w"
}

run_celery() {
    : >"$T/celery.log"
    (cd "$HERE/fleet" && BENCH_REDIS=$URL/0 exec "$HERE/.venv/bin/celery" -A celery_app worker \
        --pool prefork --concurrency 2 -n "mem@%h" --loglevel INFO >>"$T/celery.log" 2>&1) &
    local w=$!; PIDS=($w)
    for _ in $(seq 300); do grep -q ' ready\.' "$T/celery.log" && break; sleep 0.1; done
    sleep "$SETTLE"
    echo "celery $(measure "$w") $(tree_pids "$w" | wc -l)" >>"$T/results"
    stop "$w"
}

run_bullmq() {
    (cd "$HERE" && BENCH_PORT=$PORT exec node fleet/bullmq_bench.js worker >>"$T/bullmq.log" 2>&1) &
    local w=$!; PIDS=($w)
    # Up once its blocking fetch is parked in Redis.
    for _ in $(seq 100); do redis-cli -p "$PORT" client list | grep -q 'cmd=bzpopmin\|cmd=brpoplpush\|cmd=blmove' && break; sleep 0.1; done
    sleep "$SETTLE"
    echo "bullmq $(measure "$w") $(tree_pids "$w" | wc -l)" >>"$T/results"
    stop "$w"
}

HAVE_CELERY=0; HAVE_BULLMQ=0
if [[ " $PEERS " == *" celery "* ]]; then
    [ -x "$HERE/.venv/bin/celery" ] && HAVE_CELERY=1 || echo "celery: not installed (bench/.venv), skipped"
fi
if [[ " $PEERS " == *" bullmq "* ]]; then
    [ -d "$HERE/node_modules/bullmq" ] && command -v node >/dev/null && HAVE_BULLMQ=1 ||
        echo "bullmq: not installed (bench/node_modules), skipped"
fi

echo "# $(date -u +%F) $(nproc) CPUs, $(uname -r), redis $(redis-server --version | grep -o 'v=[0-9.]*')," \
     "sandfleet $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)," \
     "celery $([ $HAVE_CELERY = 1 ] && "$HERE/.venv/bin/celery" --version | cut -d' ' -f1)," \
     "bullmq $([ $HAVE_BULLMQ = 1 ] && node -p "require('$HERE/node_modules/bullmq/package.json').version")" \
     "(node $(node --version 2>/dev/null)), runs=$RUNS, settle=${SETTLE}s"
for i in $(seq "$RUNS"); do
    redis-cli -p "$PORT" flushall >/dev/null
    run_sandfleet || exit 1
    [ $HAVE_CELERY = 1 ] && run_celery
    [ $HAVE_BULLMQ = 1 ] && run_bullmq
done

python3 - "$T/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *v = line.split()
    rows.setdefault(name, []).append([int(x) for x in v])
print("%-10s %5s %-22s %-22s %-22s %-22s" % ("peer", "procs", "VmRSS MiB", "RssAnon MiB", "RssFile MiB", "PSS MiB"))
for name, rs in rows.items():
    for r in rs:
        print("%-10s %5d %-22.1f %-22.1f %-22.1f %-22.1f" % (name, r[4], r[0]/1024, r[1]/1024, r[2]/1024, r[3]/1024))
print("\nmedian (min-max) over %d runs" % len(rows["sandfleet"]))
med = {}
for name, rs in rows.items():
    cols = []
    for k in range(4):
        xs = [r[k] / 1024 for r in rs]
        cols.append("%.1f (%.1f-%.1f)" % (statistics.median(xs), min(xs), max(xs)))
    med[name] = (statistics.median(r[0] for r in rs), statistics.median(r[3] for r in rs))
    print("%-10s %5d %-22s %-22s %-22s %-22s" % (name, rs[0][4], *cols))
sf = med["sandfleet"]
for name in rows:
    if name != "sandfleet":
        print("%s / sandfleet: RSS %.1fx, PSS %.1fx" % (name, med[name][0] / sf[0], med[name][1] / sf[1]))
EOF
