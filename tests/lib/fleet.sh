# tests/lib/fleet.sh: helpers for the Redis fleet tests (sources redis.sh).
#   fleet_init NAME        temp dir $T, redis on a free port, cleanup trap
#   worker_start ID ARGS   a sandfleet-worker (local sandbox; SF_TEST_SANDBOX=process
#                          for the process one) in the background;
#                          log in $T/ID.log, pid in WPID[ID]
#   coord ARGS             sandfleet-coordinator run ... --broker $REDIS_URL
#   fail MSG               print MSG and the logs, exit 1
#   norm_doc FILE          the result document without run_id, durations, worker
#   task_json ID RUN CMD [EXTRA_JSON]   a wire-format task for redis-cli XADD
: "${SF_BIN:?SF_BIN must point at build/bin}"
: "${SF_SRC:?SF_SRC must point at the repository}"
source "$SF_SRC/tests/lib/redis.sh"
source "$SF_SRC/tests/lib/broker_common.sh"
declare -A WPID

fleet_cleanup() {
    for id in "${!WPID[@]}"; do kill -9 "${WPID[$id]}" 2>/dev/null; done
    [ -n "${CPID:-}" ] && kill -9 "$CPID" 2>/dev/null
    redis_cleanup
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}

fleet_init() {
    T=$(mktemp -d "/tmp/sf-$1.XXXXXX")
    trap fleet_cleanup EXIT
    redis_start "$T/redis" || exit 1
}

worker_start() {
    local id=$1; shift
    "$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" --sandbox "${SF_TEST_SANDBOX:-local}" \
        --worker-id "$id" "$@" >>"$T/$id.log" 2>&1 &
    WPID[$id]=$!
}

worker_stop() {   # SIGTERM, wait; returns the exit code
    local id=$1
    kill -TERM "${WPID[$id]}" 2>/dev/null
    wait "${WPID[$id]}"
    local rc=$?
    unset "WPID[$id]"
    return $rc
}

coord() {
    "$SF_BIN/sandfleet-coordinator" run "$@" --broker "$REDIS_URL"
}

# coord_bg OUT LOG ARGS...: a coordinator in the background (CPID is its own
# pid, so kill -9 hits the coordinator, not a subshell)
coord_bg() {
    local out=$1 log=$2; shift 2
    "$SF_BIN/sandfleet-coordinator" run "$@" --broker "$REDIS_URL" >"$out" 2>>"$log" &
    CPID=$!
}

# wait_for SECONDS 'SHELL CODE': poll until the code (evaluated afresh each
# time, so quote $(...) in single quotes) succeeds
wait_for() {
    local s=$1; shift
    for _ in $(seq 1 $((s * 20))); do eval "$*" && return 0; sleep 0.05; done
    return 1
}
