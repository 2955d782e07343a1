#!/usr/bin/env bash
# bench/many_agents.sh [C] [S]: C agents that each wait S seconds (an LLM
# call's wait), all at once on one worker, same run (not a test):
#   sandfleet   one worker, --concurrency C, each agent `sleep S` in its own
#               local sandbox
#   BullMQ      one worker process, concurrency C, each job `sh -c 'sleep S; cat'`
#               as a child process (no sandbox)
# Wall time from the first task queued to the last result; the peak memory of
# the worker's whole process tree (sandboxes or children included, sampled
# every 0.25 s; the sample with the most processes) as PSS (shared pages divided among their users: what the tree
# really adds) and as summed RSS (what `top` adds up); the drop of the
# machine's MemAvailable (kernel objects too: namespaces, cgroups, page
# tables; noisy on a shared host); each per concurrent task; the worker's
# threads and open files at the peak.
set -u
. "$(dirname "$0")/lib.sh"
C=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 200 || echo 1000)}
S=${2:-$([ "${BENCH_MODE:-full}" = quick ] && echo 5 || echo 10)}
bench_init many-agents
redis_up
header
echo "# $C agents x sleep $S s"

watch_tree() {   # PID: "peak_rss peak_pss min_avail threads fds procs" once $T/stop appears
    python3 "$BENCH_DIR/fleet/tree_watch.py" "$1" "$T/stop"
}
report() {   # name seconds "idle_rss idle_pss" avail_before "peak_rss peak_pss min_avail thr fd"
    python3 - "$C" "$S" "$1" "$2" $3 "$4" $5 <<'PY'
import sys
c, s, name, secs = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
irss, ipss, av0, prss, ppss, minav, thr, fd, procs = map(int, sys.argv[5:14])
mib = lambda k: k / 1024
print("%-26s wall %6.2f s (sleep %s s)  PSS %6.1f MiB (idle %4.1f, %5.0f KiB/task)  RSS %6.1f MiB (%5.0f KiB/task)"
      "  MemAvailable -%5.0f MiB (%4.0f KiB/task)  threads %s  fds %s  processes %s"
      % (name, secs, s, mib(ppss), mib(ipss), (ppss - ipss) / c, mib(prss), (prss - irss) / c,
         mib(av0 - minav), (av0 - minav) / c, thr, fd, procs))
PY
}

# sandfleet
"$BIN/sandfleet-worker" --broker "$URL" --sandbox local --concurrency "$C" --worker-id many --log-level warn \
    --callback-concurrency 0 2>>"$T/worker.log" &
W=$!; WPIDS+=($W)
sleep 2
idle=$(tree_rss "$W"); av0=$(mem_avail)   # (tree_rss: bench/lib.sh)
rm -f "$T/stop"; watch_tree "$W" >"$T/sf.peak" &
M=$!
s0=$(date +%s.%N)
"$PY" - "$PORT" "$C" "$S" <<'PY'
import json, sys, time, redis
port, n, s = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = redis.Redis(port=port)
p = r.pipeline(transaction=False)
for i in range(n):
    p.xadd("sf:default:tasks", {"task": json.dumps({"v": 1, "id": f"many:s:{i}", "run_id": "many", "step": "s",
                                                   "index": i, "run": f"sleep {s}; echo {{}}", "input": i})})
p.execute()
while r.xlen("sf:run:many:results") < n: time.sleep(0.05)
bad = sum(1 for _, f in r.xrange("sf:run:many:results") if b'"status":"ok"' not in f[b"result"])
if bad: print("sandfleet: %d tasks failed" % bad)
PY
s1=$(date +%s.%N)
touch "$T/stop"; wait "$M"
report "sandfleet (local sandbox)" "$(python3 -c "print($s1 - $s0)")" "$idle" "$av0" "$(cat "$T/sf.peak")"
workers_down
redis-cli -p "$PORT" flushall >/dev/null

# BullMQ
BENCH_CMD="[\"sh\",\"-c\",\"sleep $S; cat\"]" bullmq_up "$C" 1
B=${PPIDS[0]}
sleep 1
idle=$(tree_rss "$B"); av0=$(mem_avail)
rm -f "$T/stop"; watch_tree "$B" >"$T/bq.peak" &
M=$!
s0=$(date +%s.%N)
(cd "$BENCH_DIR" && BENCH_PORT=$PORT node fleet/bullmq_bench.js driver "$C" >"$T/bq.out")
s1=$(date +%s.%N)
touch "$T/stop"; wait "$M"
report "BullMQ (child process)" "$(python3 -c "print($s1 - $s0)")" "$idle" "$av0" "$(cat "$T/bq.peak")"
peers_down
