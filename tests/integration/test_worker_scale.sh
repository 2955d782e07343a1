#!/usr/bin/env bash
# Many agents on one worker (docs/operations.md, "A thousand agents on one
# worker"): the worker raises its soft open-files limit to what its slots
# need, says so when the hard limit is too low, and really holds one
# sandbox per slot at once (64 sleeping agents alive together, then all
# their results). Needs root and user namespaces.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/fleet.sh"
fleet_init scale
N=64

# --- open files ------------------------------------------------------------------
(ulimit -Sn 256; ulimit -Hn 4096; exec "$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" \
    --sandbox local --concurrency 200 --worker-id nf1 >>"$T/nf1.log" 2>&1) &
P=$!
wait_for 20 'grep -q "Max open files" /proc/$P/limits 2>/dev/null && [ "$(awk "/Max open files/ {print \$4}" /proc/$P/limits)" -ge 1856 ]'
check "the soft open-files limit is raised for 200 slots" \
    bash -c "[ \$(awk '/Max open files/ {print \$4}' /proc/$P/limits) -ge 1856 ]"
kill -TERM "$P"; wait "$P" 2>/dev/null
(ulimit -Sn 256; ulimit -Hn 512; exec "$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" \
    --sandbox local --concurrency 200 --worker-id nf2 >>"$T/nf2.log" 2>&1) &
P=$!
wait_for 20 'grep -q "open files" "$T/nf2.log"'
check "a hard limit too low for the slots is named" grep -q 'wants about 1856 open files, the hard limit allows 512' "$T/nf2.log"
kill -TERM "$P"; wait "$P" 2>/dev/null

# --- one sandbox per slot, all at once ----------------------------------------------------
# SF_SBX_READY=0: no sandbox made ahead, so every init counted is a task's.
SF_SBX_READY=0 SF_TEST_SANDBOX=local worker_start many --concurrency $N
W=${WPID[many]}
# All at once (one redis-cli --pipe), so that the first does not end before
# the last is queued.
python3 - "$N" <<'PY' | rcli --pipe >/dev/null
import json, sys
for i in range(int(sys.argv[1])):
    t = json.dumps({"v": 1, "id": f"m:s:{i}", "run_id": "m", "step": "s", "index": i,
                    "run": "sleep 15; echo {}", "input": {}})
    args = ["XADD", "sf:default:tasks", "*", "task", t]
    sys.stdout.write("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args))
PY
# The zygote is the worker's child named sf-zygote; every sandbox's init is its child.
zygote() {
    for c in $(cat /proc/$W/task/*/children 2>/dev/null); do
        [ "$(cat /proc/$c/comm 2>/dev/null)" = sf-zygote ] && echo "$c"
    done
}
wait_for 20 '[ -n "$(zygote)" ]'
Z=$(zygote)
[ -n "$Z" ] || fail "the worker has no zygote"
inits() { cat /proc/$Z/task/$Z/children 2>/dev/null | wc -w; }
wait_for 120 '[ "$(inits)" = "$N" ]'
check "$N sandboxes are alive at once" [ "$(inits)" = "$N" ]
wait_for 120 '[ "$(rcli XLEN sf:run:m:results)" = "$N" ]'
check "all $N results, all ok" bash -c "[ \$(redis-cli -p $REDIS_PORT XRANGE sf:run:m:results - + | grep -c '\"status\":\"ok\"') = $N ]"
wait_for 30 '[ "$(inits)" = 0 ]'
check "no sandbox is left" [ "$(inits)" = 0 ]
t_done
