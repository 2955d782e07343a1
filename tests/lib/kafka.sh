# tests/lib/kafka.sh: a private Kafka broker and a worker fleet for a test
# (the Kafka twin of redis.sh + fleet.sh). Source it, then:
#   kfleet_init NAME       temp dir $T, a KRaft broker on free ports (data in
#                          $T/kafka/data) through deploy/local/kafka.sh,
#                          cleanup trap; sets KAFKA_PORT, KAFKA_URL
#   kafka_stop / kafka_start   stop (controlled shutdown, waits) / start again
#                          on the same port and data dir
#   kworker_start ID ARGS  a sandfleet-worker (local sandbox; SF_TEST_SANDBOX=process
#                          for the process one) in the background;
#                          log in $T/ID.log, pid in WPID[ID]
#   kworker_stop ID        SIGTERM, wait; returns the worker's exit code
#   kcoord ARGS            sandfleet-coordinator run ... --broker $KAFKA_URL
#   kcat_ ARGS             kcat against the broker
#   fail MSG               print MSG and the logs' tails, exit 1
#   norm_doc FILE          the result document without run_id, durations, worker
#   task_json ID RUN CMD [EXTRA_JSON]   a wire-format task
#   wait_for SECONDS CMD   poll until CMD succeeds
# Jars are cached under deploy/local/.kafka (first use downloads them).
: "${SF_BIN:?SF_BIN must point at build/bin}"
: "${SF_SRC:?SF_SRC must point at the repository}"
source "$SF_SRC/tests/lib/broker_common.sh"
declare -A WPID

kafka_free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

kafka_sh() {
    KAFKA_PORT=$KAFKA_PORT KAFKA_CPORT=$KAFKA_CPORT KAFKA_DATA=$T/kafka/data \
        "$SF_SRC/deploy/local/kafka.sh" "$@"
}

kafka_start() { kafka_sh start >>"$T/kafka.sh.log" 2>&1 || { cat "$T/kafka.sh.log" >&2; return 1; }; }
kafka_stop() { kafka_sh stop >>"$T/kafka.sh.log" 2>&1; }

kfleet_cleanup() {
    for id in "${!WPID[@]}"; do kill -9 "${WPID[$id]}" 2>/dev/null; done
    [ -n "${CPID:-}" ] && kill -9 "$CPID" 2>/dev/null
    [ -n "${KAFKA_PORT:-}" ] && kafka_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}

kfleet_init() {
    T=$(mktemp -d "/tmp/sf-$1.XXXXXX")
    # testlib.sh's own cleanup (if sourced) still runs after ours.
    trap 'kfleet_cleanup; if declare -F t_cleanup >/dev/null; then t_cleanup; fi' EXIT
    KAFKA_PORT=$(kafka_free_port)
    KAFKA_CPORT=$(kafka_free_port)
    KAFKA_URL="kafka://127.0.0.1:$KAFKA_PORT"
    mkdir -p "$T/kafka"
    kafka_start || { echo "could not start Kafka" >&2; exit 1; }
}

kworker_start() {
    local id=$1; shift
    "$SF_BIN/sandfleet-worker" --broker "$KAFKA_URL" --sandbox "${SF_TEST_SANDBOX:-local}" \
        --worker-id "$id" "$@" >>"$T/$id.log" 2>&1 &
    WPID[$id]=$!
}

kworker_stop() {
    local id=$1
    kill -TERM "${WPID[$id]}" 2>/dev/null
    wait "${WPID[$id]}"
    local rc=$?
    unset "WPID[$id]"
    return $rc
}

kcoord() {
    "$SF_BIN/sandfleet-coordinator" run "$@" --broker "$KAFKA_URL"
}

# With KAFKA_SASL_PASSWORD exported, the broker speaks SASL (deploy/local/kafka.sh)
# and kcat_ logs in as KAFKA_SASL_USER (default sandfleet).
kcat_() {
    local sasl=()
    [ -n "${KAFKA_SASL_PASSWORD:-}" ] && sasl=(-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN
        -X "sasl.username=${KAFKA_SASL_USER:-sandfleet}" -X "sasl.password=$KAFKA_SASL_PASSWORD")
    kcat -b "127.0.0.1:$KAFKA_PORT" "${sasl[@]}" "$@"
}

# Messages of a topic from the beginning, one per line: "<headers>\t<value>".
ktopic_dump() { kcat_ -C -t "$1" -o beginning -e -q -f '%h\t%s\n' 2>/dev/null; }

wait_for() {
    local s=$1; shift
    for _ in $(seq 1 $((s * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
