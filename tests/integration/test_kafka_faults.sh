#!/usr/bin/env bash
# Kafka fleet faults against a real broker: kill -9 of a worker mid-run (its
# uncommitted tasks run elsewhere after the rebalance; outputs exact, in
# order, once each) and a broker stopped and started again mid-run (same
# data dir: the run completes, nothing lost).
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/kafka.sh"
command -v kcat >/dev/null || { echo "kcat missing (scripts/deps.sh test)"; exit 1; }
kfleet_init kafka-faults
W=$T/wf; mkdir -p "$W"

# A map over 1..N: each task sleeps and returns x*10 (the workers' debug
# logs count the task starts: runs_of).
map_wf() {   # name n sleep
    python3 - "$1" "$2" "$3" >"$W/$1.json" <<'PY'
import json, sys
name, n, sleep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = ("python3 -c 'import json,sys,time; x=json.load(sys.stdin); "
       "time.sleep(%s); print(x * 10)'" % sleep)
print(json.dumps({"name": name, "steps": [
    {"id": "m", "run": run, "map": True, "input": list(range(1, n + 1)), "timeout_s": 60},
    {"id": "sum", "run": "python3 -c 'import json,sys; print(sum(json.load(sys.stdin)))'", "needs": ["m"]}]}))
PY
}

# --- kill -9 of a worker mid-run --------------------------------------------------
# Lease 6 s = session.timeout.ms: the group notices the dead worker after it.
kworker_start k1 --concurrency 2 --lease-ms 6000 --log-level debug
kworker_start k2 --concurrency 2 --lease-ms 6000 --log-level debug
wait_for 30 grep -q 'assigned' "$T/k1.log"
wait_for 30 grep -q 'assigned' "$T/k2.log"
map_wf kill 20 1
kcoord "$W/kill.json" --run-id kill-1 --output "$T/kill.json" 2>"$T/kill.coord.log" &
CPID=$!
# Kill k1 while it is busy: it has started tasks and not all are done.
k1_busy() { [ "$(runs_of 'kill-1:m:[0-9]+')" -ge 6 ]; }
wait_for 60 k1_busy
kill -9 "${WPID[k1]}"; wait "${WPID[k1]}" 2>/dev/null; unset "WPID[k1]"
wait $CPID; crc=$?; CPID=
check "kill -9 of a worker: the run completes" [ $crc -eq 0 ]
check "…map output exact and in order, no duplicates" \
    jtrue "$T/kill.json" 'd["steps"]["m"]["output"] == [x * 10 for x in range(1, 21)] and d["steps"]["sum"]["output"] == 2100'
check "…every element ran (some twice: at-least-once)" \
    bash -c "[ \$(cat $T/k1.log $T/k2.log | grep -oE ' task=kill-1:m:[0-9]+ start' | sort -u | wc -l) -eq 20 ]"
check "…the survivor took over the dead worker's partitions" bash -c "[ \$(grep -c 'assigned' $T/k2.log) -ge 2 ]"
echo "# kill -9: $(runs_of 'kill-1:m:[0-9]+') task starts for 20 elements"

# --- broker stopped and started again mid-run --------------------------------------
map_wf restart 16 1
kcoord "$W/restart.json" --run-id restart-1 --output "$T/restart.json" 2>"$T/restart.coord.log" &
CPID=$!
started() { [ "$(runs_of 'restart-1:m:[0-9]+')" -ge 3 ]; }
wait_for 60 started
kafka_stop
check "broker stopped mid-run" bash -c "! kcat -b 127.0.0.1:$KAFKA_PORT -L -m 1 >/dev/null 2>&1"
sleep 3
kafka_start
check "broker started again (same data dir)" bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -L -m 5 >/dev/null 2>&1"
wait $CPID; crc=$?; CPID=
check "broker restart: the run completes" [ $crc -eq 0 ]
check "…outputs exact and in order" \
    jtrue "$T/restart.json" 'd["steps"]["m"]["output"] == [x * 10 for x in range(1, 17)] and d["steps"]["sum"]["output"] == 1360'
check "…the worker is still running" kill -0 "${WPID[k2]}"
kworker_stop k2; wrc=$?
check "…and drains cleanly afterwards" [ $wrc -eq 0 ]

t_done
