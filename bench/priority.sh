#!/bin/bash
# bench/priority.sh [N]: what priorities cost the task path (not a test).
# One redis-server, the same machine, one run, 2 workers x 2 slots, no-op
# tasks (`cat`) in the process backend (no sandbox: the broker's share is what
# is measured), three rounds:
#   baseline   the workers of BASE_BIN (default: commit BASE_REV, the tree
#              before priorities and gates, built in /tmp once)
#   unused     this build, no band stream exists (the plain fetch)
#   bands      this build, a band stream exists (fetch by band: one script,
#              then XREAD when idle), all tasks still priority 0
# For each: throughput of N tasks queued at once, p50/p99 submit->result
# latency of 300 sequential tasks, and the Redis commands per task from
# INFO commandstats (round trips: what "costs nothing when unused" means).
set -u
N=${1:-3000}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BIN=${SF_BIN:-$SRC/build/bin}
BASE_BIN=${BASE_BIN:-}
T=$(mktemp -d /tmp/sf-bench-prio.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --daemonize yes \
    --logfile "$T/redis.log" >/dev/null
sleep 0.3

# The baseline: the tree just before priorities and gates, built once in /tmp.
BASE_REV=${BASE_REV:-07e3b54}
if [ -z "$BASE_BIN" ]; then
    BASE_SRC=/tmp/sf-bench-base-$BASE_REV
    if [ ! -d "$BASE_SRC" ]; then
        mkdir -p "$BASE_SRC.tmp" && git -C "$SRC" archive "$BASE_REV" | tar -x -C "$BASE_SRC.tmp" &&
            mv "$BASE_SRC.tmp" "$BASE_SRC" || { echo "cannot check out $BASE_REV"; exit 1; }
    fi
    cmake -S "$BASE_SRC" -B "$BASE_SRC/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
        cmake --build "$BASE_SRC/build" -j2 --target sandfleet-worker >/dev/null || exit 1
    BASE_BIN=$BASE_SRC/build/bin
    echo "baseline: $BASE_REV"
fi

driver() {   # throughput N | latency N  -> one JSON line
    python3 - "$PORT" "$@" <<'PY'
import json, socket, sys, time
port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def cmd(*a):
    out = b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in (y.encode() if isinstance(y, str) else y for y in a))
    s.sendall(out)
def rd():
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-"): return rest
    if t == b":": return int(rest)
    if t == b"$": return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2]
    if t == b"*": return None if int(rest) < 0 else [rd() for _ in range(int(rest))]
def call(*a): cmd(*a); return rd()
def task(i, run, reply=None):
    t = {"v": 1, "id": f"{run}:s:{i}", "run_id": run, "step": "s", "index": i, "run": "cat", "input": {"i": i}}
    if reply: t["reply_to"] = reply
    return json.dumps(t)
if mode == "throughput":
    run = f"tp{time.time_ns()}"
    t0 = time.perf_counter()
    for i in range(n): cmd("XADD", "sf:default:tasks", "*", "task", task(i, run))
    for i in range(n): rd()
    while call("XLEN", f"sf:run:{run}:results") < n: time.sleep(0.005)
    el = time.perf_counter() - t0
    print(json.dumps({"tasks": n, "seconds": round(el, 3), "per_s": round(n / el, 1)}))
else:
    run = f"lat{time.time_ns()}"; reply = f"sf:reply:bench-{run}"; last = "0-0"; lat = []
    for i in range(n):
        t0 = time.perf_counter()
        call("XADD", "sf:default:tasks", "*", "task", task(i, run, reply))
        got = call("XREAD", "COUNT", "1", "BLOCK", "10000", "STREAMS", reply, last)
        lat.append((time.perf_counter() - t0) * 1000)
        last = got[0][1][0][0].decode()
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)
    print(json.dumps({"n": n, "p50_ms": q(0.5), "p99_ms": q(0.99)}))
PY
}

calls() {   # total calls of the commands a worker makes per task
    redis-cli -p "$PORT" info commandstats | tr -d '\r' | python3 -c '
import sys
tot = {}
for l in sys.stdin:
    if l.startswith("cmdstat_"):
        name, rest = l[8:].split(":", 1)
        tot[name] = int(rest.split(",")[0].split("=")[1])
print(" ".join(f"{k}={v}" for k, v in sorted(tot.items()) if k not in ("info", "config", "flushall", "xlen")))
print(sum(v for k, v in tot.items() if k not in ("info", "config", "flushall", "xlen", "xadd", "xread")), file=sys.stderr)'
}

round() {   # name bin-dir make-band
    local name=$1 bin=$2 band=$3
    redis-cli -p "$PORT" flushall >/dev/null
    [ "$band" = 1 ] && redis-cli -p "$PORT" XGROUP CREATE sf:default:tasks:p5 workers 0 MKSTREAM >/dev/null
    for i in 1 2; do
        "$bin/sandfleet-worker" --broker "redis://127.0.0.1:$PORT" --sandbox process --concurrency 2 \
            --worker-id "b$i" --log-level warn 2>>"$T/w.log" &
        PIDS+=($!)
    done
    sleep 0.5
    driver throughput 300 >/dev/null                 # warm-up
    redis-cli -p "$PORT" config resetstat >/dev/null
    local tp; tp=$(driver throughput "$N")
    local per; per=$(calls 2>&1 >/dev/null)
    echo "$name: throughput $tp; worker-side Redis commands per task $(python3 -c "print(round($per / $N, 2))")"
    echo "$name:   $(calls 2>/dev/null)"
    echo "$name: latency $(driver latency 300)"
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    PIDS=()
}

echo "# $(date -u '+%F %H:%M') UTC, $(nproc) CPUs, $(uname -r), redis $(redis-server --version | grep -o 'v=[0-9.]*'), N=$N"
round baseline "$BASE_BIN" 0
round unused "$BIN" 0
round bands "$BIN" 1
