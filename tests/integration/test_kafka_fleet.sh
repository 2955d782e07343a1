#!/usr/bin/env bash
# The Kafka fleet against a real KRaft broker (deploy/local/kafka.sh, one per
# file): the examples give the same documents as the central run; malformed
# and unknown-version messages are dead-lettered with a reason and the worker
# keeps going; retries with backoff through the retry topic, then a dead
# letter; a 10 MiB output; a task longer than max.poll.interval.ms; SIGTERM
# drain; a coordinator killed and resumed with --run-id; concurrency, rate and
# priority refused (exit 3 / rejected result + dead letter), never ignored.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/kafka.sh"
command -v kcat >/dev/null || { echo "kcat missing (scripts/deps.sh test)"; exit 1; }
kfleet_init kafka-fleet
W=$T/wf; mkdir -p "$W"
C="$SF_BIN/sandfleet-coordinator"

kworker_start w1 --concurrency 2 --log-level debug
kworker_start w2 --concurrency 2 --log-level debug
# Both workers must own partitions before the first run, or one of them may
# take every task while the other is still joining the group.
for _ in $(seq 600); do
    grep -qE 'kafka: [1-9][0-9]* partition\(s\) of sandfleet.tasks assigned' "$T/w1.log" 2>/dev/null &&
    grep -qE 'kafka: [1-9][0-9]* partition\(s\) of sandfleet.tasks assigned' "$T/w2.log" 2>/dev/null && break
    sleep 0.1
done

# --- the examples: same documents as the central run -------------------------------
for ex in analyze-report fanout; do
    "$C" run "$SF_SRC/examples/$ex/workflow.json" --sandbox process --output "$T/$ex.central.json" 2>"$T/$ex.central.err"
    kcoord "$SF_SRC/examples/$ex/workflow.json" --output "$T/$ex.kafka.json" 2>"$T/$ex.coord.log"
    check "$ex through Kafka exits 0" [ $? -eq 0 ]
    norm_doc "$T/$ex.central.json" >"$T/$ex.central.norm"
    norm_doc "$T/$ex.kafka.json" >"$T/$ex.kafka.norm"
    check "$ex through Kafka gives the central document" cmp -s "$T/$ex.central.norm" "$T/$ex.kafka.norm"
done
ktopic_dump sandfleet.results >"$T/results.dump"
check "both workers took tasks" bash -c "grep -q '\"worker\":\"w1\"' $T/results.dump && grep -q '\"worker\":\"w2\"' $T/results.dump"
check "topics were created on first use" bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -L | grep -q 'topic \"sandfleet.tasks\" with 12 partitions'"

# --- malformed and unknown-version messages -> dead-letter topic, worker goes on ----
{
    echo 'garbage-1:this is not json'
    echo "garbage-2:$(task_json g2 rg 'echo {}' '{"v": 99}')"
    echo 'garbage-3:{"v":1,"id":"g3"}'
} | kcat_ -P -t sandfleet.tasks -K: 2>/dev/null
dlq_has() { [ "$(ktopic_dump sandfleet.tasks.dlq | grep -c 'reason=')" -ge "$1" ]; }
wait_for 30 dlq_has 3
check "3 bad messages dead-lettered" dlq_has 3
ktopic_dump sandfleet.tasks.dlq >"$T/dlq.txt"
check "the raw message is kept" grep -q 'this is not json' "$T/dlq.txt"
check "unknown version named in the reason" grep -qi 'reason=[^	]*version' "$T/dlq.txt"
check "source partition/offset headers" grep -q 'sf-source-topic=sandfleet.tasks,sf-source-partition=[0-9]*,sf-source-offset=[0-9]*' "$T/dlq.txt"
check "workers still running" bash -c "kill -0 ${WPID[w1]} && kill -0 ${WPID[w2]}"
kcoord "$SF_SRC/examples/analyze-report/workflow.json" --output "$T/after-bad.json" 2>"$T/after-bad.log"
check "a run after the bad messages succeeds" [ $? -eq 0 ]

# --- retries with backoff through the retry topic, then a dead letter -------------
cat >"$W/flaky.json" <<'J'
{"name": "always-fails", "steps": [
  {"id": "bad", "run": "echo boom >&2; exit 3", "input": {"n": 1}, "retries": 2}
]}
J
t0=$(date +%s%N)
kcoord "$W/flaky.json" --output "$T/flaky.json" 2>"$T/flaky.coord.log"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "failing step: run exits 1" [ $rc -eq 1 ]
check "failing step: 3 attempts" jtrue "$T/flaky.json" 'd["steps"]["bad"]["attempts"] == 3 and d["steps"]["bad"]["status"] == "failed"'
check "two retries went through the retry topic with a due time" \
    bash -c "[ \$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.tasks.retry -o beginning -e -q -f '%h\n' | grep -c 'sf-due-ms=') -eq 2 ]"
check "backoff waited (>= 250+500 ms jittered down to half: $ms ms)" [ "$ms" -ge 700 ]
dead_reason() { ktopic_dump sandfleet.tasks.dlq | grep -q 'reason=error after 3 attempts'; }
check "final failure dead-lettered with its reason" dead_reason

# --- concurrency, rate and priority need Redis: refused, never ignored ----------------
cat >"$W/gated.json" <<'J'
{"name": "gated", "steps": [
  {"id": "a", "run": "cat", "input": 1, "concurrency": {"key": "k", "limit": 1}}
]}
J
kcoord "$W/gated.json" --run-id gated-kafka >"$T/gated.out" 2>"$T/gated.log"; rc=$?
check "a workflow with 'concurrency' on Kafka exits 3" [ $rc -eq 3 ]
check "…naming the step and the field" grep -q "step 'a': 'concurrency' is not supported by the kafka backend" "$T/gated.log"
check "…before writing any run state" bash -c "! kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.runs -o beginning -e -q -f '%k\n' | grep -q '^gated-kafka/'"
kcoord "$SF_SRC/examples/analyze-report/workflow.json" --priority 3 >/dev/null 2>"$T/prio-run.log"; rc=$?
check "run --priority on Kafka exits 3 naming it" bash -c "[ $rc -eq 3 ] && grep -q 'run priority 3 is not supported by the kafka backend' '$T/prio-run.log'"
echo "prio-1:$(task_json prio-1 rprio 'echo {}' '{"priority": 5}')" | kcat_ -P -t sandfleet.tasks -K: 2>/dev/null
prio_refused() { ktopic_dump sandfleet.tasks.dlq | grep -q "reason=rejected after 1 attempt: 'priority' is not supported by the kafka backend"; }
wait_for 30 prio_refused
check "a task produced with 'priority' is dead-lettered with the reason" prio_refused
prio_result() { ktopic_dump sandfleet.results | grep -q '"task_id":"prio-1".*"status":"rejected"'; }
check "…and answered with a rejected result" prio_result

# --- a 10 MiB output (claim-check through the blobs topic) --------------------------
cat >"$W/big.json" <<'J'
{"name": "big", "steps": [
  {"id": "big", "run": "python3 -c 'import json; print(json.dumps(\"x\" * 10485760))'", "input": {}},
  {"id": "len", "run": "python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'", "needs": ["big"]}
]}
J
kcoord "$W/big.json" --output "$T/big.json" 2>"$T/big.coord.log"
check "10 MiB output: run succeeds" [ $? -eq 0 ]
check "10 MiB output arrives whole" jtrue "$T/big.json" 'len(d["steps"]["big"]["output"]) == 10485760 and d["steps"]["len"]["output"] == 10485760'
check "10 MiB output travelled as a blob" bash -c "[ \$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.blobs -o beginning -e -q -f '%k\n' | wc -l) -ge 1 ]"

# --- a task longer than max.poll.interval.ms: completes once, no rebalance storm ----
kworker_start long --queue long --concurrency 1 --lease-ms 6000 --kafka-config max.poll.interval.ms=10000
cat >"$W/long.json" <<'J'
{"name": "long", "steps": [
  {"id": "slow", "run": "sleep 20; echo '{\"slept\": 20}'", "input": {}, "timeout_s": 60}
]}
J
kcoord "$W/long.json" --queue long --output "$T/long.json" 2>"$T/long.coord.log"
check "20 s task with max.poll.interval.ms=10000 succeeds" [ $? -eq 0 ]
check "…in one attempt" jtrue "$T/long.json" 'd["steps"]["slow"]["attempts"] == 1 and d["steps"]["slow"]["output"] == {"slept": 20}'
check "…with one assignment and no revocation" bash -c "[ \$(grep -c 'assigned' $T/long.log) -eq 1 ] && ! grep -q 'revoked' $T/long.log"
check "…and no max.poll.interval warning" bash -c "! grep -qi 'max.poll\|MAXPOLL' $T/long.log"
rid=$(jget "$T/long.json" 'd["run_id"]')
check "…one result in the results topic" bash -c "[ \$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.results -o beginning -e -q -f '%k\n' | grep -c '^$rid\$') -eq 1 ]"
check "queue 'long' maps to sandfleet.tasks-long" bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -L | grep -q 'topic \"sandfleet.tasks-long\"'"
kworker_stop long

# --- SIGTERM drain: the running task finishes and is committed --------------------
kworker_start drain --queue drain --concurrency 1 --log-level debug
cat >"$W/drain.json" <<EOF
{"name": "drain", "steps": [
  {"id": "t", "run": "sleep 3; echo '{\"done\": true}'", "input": {}}
]}
EOF
kcoord "$W/drain.json" --queue drain --run-id drain-1 --output "$T/drain.json" 2>"$T/drain.coord.log" &
CPID=$!
started() { [ "$(runs_of "$1")" -ge 1 ]; }
wait_for 30 started drain-1:t:0
kworker_stop drain; wrc=$?
check "SIGTERM mid-task: worker exits 0 after draining" [ $wrc -eq 0 ]
check "…and logs the drain" grep -q 'drained: 1 done' "$T/drain.log"
wait $CPID; crc=$?; CPID=
check "…the run completes" bash -c "[ $crc -eq 0 ] && grep -q '\"done\": true' $T/drain.json"
check "…the task ran once" [ "$(runs_of drain-1:t:0)" -eq 1 ]
# The group's lag on the queue (status "depth") reaches 0 only once the
# task's offset is committed: no later worker can run it again.
lag0() { "$SF_BIN/sandfleet-coordinator" status --broker "$KAFKA_URL" --queue drain --json 2>/dev/null |
         python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["depth"] == 0 else 1)'; }
check "…its offset was committed (lag 0): a new worker does not run it again" wait_for 20 lag0

# --- coordinator killed and resumed with --run-id ---------------------------------
cat >"$W/resume.json" <<EOF
{"name": "resume", "steps": [
  {"id": "a", "run": "echo '{\"a\": 1}'", "input": {}},
  {"id": "b", "run": "sleep 4; echo '{\"b\": 2}'", "needs": ["a"]},
  {"id": "c", "run": "cat", "needs": ["b"]}
]}
EOF
kcoord "$W/resume.json" --run-id resume-1 --output "$T/resume1.json" 2>"$T/resume1.coord.log" &
CPID=$!
wait_for 30 started resume-1:b:0
kill -9 $CPID; wait $CPID 2>/dev/null; CPID=
# b finishes while no coordinator runs: its result is on the topic.
wait_for 30 bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.results -o beginning -e -q 2>/dev/null | grep -q 'resume-1:b:0'" \
    || fail "b did not finish while the coordinator was down"
kcoord "$W/resume.json" --run-id resume-1 --output "$T/resume2.json" 2>"$T/resume2.coord.log"
check "resumed run exits 0" [ $? -eq 0 ]
check "resumed run has every output" jtrue "$T/resume2.json" 'd["steps"]["c"]["output"] == {"b": 2} and d["steps"]["a"]["output"] == {"a": 1}'
check "finished steps were not redone (a, b, c once each)" \
    [ "$(runs_of 'resume-1:a:0')$(runs_of 'resume-1:b:0')$(runs_of 'resume-1:c:0')" = 111 ]
check "the resume said so" grep -q 'resuming run' "$T/resume2.coord.log"
"$C" run "$SF_SRC/examples/fanout/workflow.json" --broker "$KAFKA_URL" --run-id resume-1 2>"$T/wrong.log" >/dev/null
check "a run id of another workflow is refused" grep -q "belongs to workflow 'resume'" "$T/wrong.log"

# --- bad settings fail at start, naming the key, never a secret value -------------
"$SF_BIN/sandfleet-worker" --broker "$KAFKA_URL" --sandbox process --kafka-config no.such.key=1 2>"$T/badconf.log"
check "unknown librdkafka key: worker exits 2 and names it" bash -c "[ $? -eq 2 ] && grep -q no.such.key $T/badconf.log"
"$SF_BIN/sandfleet-worker" --broker "$KAFKA_URL" --sandbox process --kafka-config enable.auto.offset.store=true 2>"$T/badconf2.log"
check "enable.auto.offset.store cannot be switched on" grep -q 'cannot be changed' "$T/badconf2.log"
SANDFLEET_KAFKA_SASL_PASSWORD=hunter2-secret SANDFLEET_KAFKA_SECURITY_PROTOCOL=bogus \
    "$SF_BIN/sandfleet-worker" --broker "$KAFKA_URL" --sandbox process 2>"$T/badconf3.log"
check "env settings are read (bad security.protocol rejected)" grep -q 'security.protocol' "$T/badconf3.log"
check "a password never appears in any log" bash -c "! grep -rq hunter2-secret $T/*.log"

t_done
