#!/usr/bin/env bash
# Every command reaches a SASL-protected Kafka given by flags, the same way
# (sf_broker_open; issue 16: status, dead and callbacks used to drop
# --kafka-config, so a run's callback could not be queued):
#  1. a worker configured by --kafka-config-file (the secret form) and a run
#     configured by --kafka-config flags, with --callback-url: the run
#     succeeds and its callback is queued;
#  2. status, dead list and callbacks list with the same flags: exit 0, the
#     worker is listed, the run's callback is there;
#  3. without the SASL settings the same status fails (exit 3, not a hang);
#  4. the password given by flag is masked in a worker's argv, and is in no log.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/kafka.sh"
command -v kcat >/dev/null || { echo "kcat missing (scripts/deps.sh test)"; exit 1; }
export KAFKA_SASL_PASSWORD="sasl-pw-$$-$RANDOM"
kfleet_init kafka-sasl
C="$SF_BIN/sandfleet-coordinator"
SASL=(--kafka-config security.protocol=SASL_PLAINTEXT --kafka-config sasl.mechanisms=PLAIN
      --kafka-config sasl.username=sandfleet --kafka-config "sasl.password=$KAFKA_SASL_PASSWORD")
printf '%s\n' "# the worker's Kafka login" security.protocol=SASL_PLAINTEXT sasl.mechanisms=PLAIN \
    sasl.username=sandfleet "sasl.password=$KAFKA_SASL_PASSWORD" >"$T/kafka.conf"

# --- 1. a run with a callback through SASL ----------------------------------------------
kworker_start w1 --concurrency 2 --lease-ms 3000 --kafka-config-file "$T/kafka.conf"
cat >"$T/wf.json" <<'JSON'
{ "name": "sasl", "steps": [ { "id": "a", "run": "cat", "input": {"x": 1} } ] }
JSON
"$C" run "$T/wf.json" --broker "$KAFKA_URL" "${SASL[@]}" --run-id sasl-1 \
    --callback-url "http://127.0.0.1:9/hook" --output "$T/doc.json" 2>"$T/coord.log"
check "the run through SASL succeeds" [ $? -eq 0 ]
check "the run's callback was queued" grep -q "run callback queued" "$T/coord.log"

# --- 2. the operations commands with the same flags -------------------------------------
"$C" status --broker "$KAFKA_URL" "${SASL[@]}" --lease-ms 3000 --json >"$T/status.json" 2>>"$T/cli.log"
check "status through SASL: exit 0" [ $? -eq 0 ]
check "status lists the worker" jtrue "$T/status.json" '[w["id"] for w in d["workers"]] == ["w1"]'
"$C" dead list --broker "$KAFKA_URL" "${SASL[@]}" --json >"$T/dead.json" 2>>"$T/cli.log"
check "dead list through SASL: exit 0" [ $? -eq 0 ]
# The callback is pending, or already dead-listed (127.0.0.1 is not an allowed
# destination): either way it was queued through SASL.
cb_listed() {
    { "$C" callbacks list --broker "$KAFKA_URL" "${SASL[@]}" --json &&
      "$C" callbacks list --dead --broker "$KAFKA_URL" "${SASL[@]}" --json; } >"$T/cb.json" 2>>"$T/cli.log" &&
        grep -q '"run:sasl-1"' "$T/cb.json"
}
check "callbacks list through SASL shows the run's callback" wait_for 30 cb_listed

# --- 3. the same without the login fails clearly -------------------------------------------
"$C" status --broker "$KAFKA_URL" --json >/dev/null 2>"$T/nosasl.log"
check "status without the SASL settings: exit 3" [ $? -eq 3 ]

# --- 4. the password is not left in argv ----------------------------------------------------
kworker_start w2 --lease-ms 3000 "${SASL[@]}"
wait_for 30 grep -q 'worker w2:' "$T/w2.log" || fail "the second worker did not start"
tr '\0' ' ' <"/proc/${WPID[w2]}/cmdline" >"$T/w2.cmdline"
check "the worker's argv no longer shows the SASL password" bash -c "! grep -qF -- '$KAFKA_SASL_PASSWORD' '$T/w2.cmdline'"
check "the other settings are still readable in argv" grep -qF 'sasl.username=' "$T/w2.cmdline"
for f in "$T"/*.log; do
    if grep -qF -- "$KAFKA_SASL_PASSWORD" "$f"; then not_ok "the password appears in $(basename "$f")"; fi
done
t_done
