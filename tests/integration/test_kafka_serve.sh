#!/usr/bin/env bash
# sandfleet-coordinator serve on Kafka against a real KRaft broker (the Kafka
# twin of test_serve_ui.sh's submission parts), serve + one worker:
#  1. a submission produced with kcat to sandfleet.submissions runs under
#     run id sub-<partition>-<offset>: GET /api/runs/{id} ends "succeeded"
#     with its output, the document is on sandfleet.runs (key <id>/doc) and
#     arrives on its reply_to topic (key = run id); a bare workflow with
#     reply_to and run_id as message headers likewise;
#  2. invalid submissions get a "rejected" document instead of vanishing:
#     one with its own run_id and reply_to (answered there), and one that is
#     not JSON at all (under sub-<partition>-<offset>);
#  3. POST /api/runs works on Kafka: the map workflow's outputs;
#  4. acked only after the document: serve killed -9 while a submission's
#     run is in progress; the restarted serve (a new group member) reads
#     it again and finishes it under the same run id with one reply, while
#     the submissions acked before are not run again (one reply each) and
#     their documents are answered from the broker; with --max-runs 1,
#     three more submissions all run, one at a time (partitions paused
#     while at the limit, resumed after);
#  5. SIGTERM: exit 0 after the drain.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/kafka.sh"
command -v kcat >/dev/null || { echo "kcat missing (scripts/deps.sh test)"; exit 1; }
command -v java >/dev/null || { echo "java missing (scripts/deps.sh test)"; exit 1; }
kfleet_init kafka-serve
C="$SF_BIN/sandfleet-coordinator"
HPORT=$(kafka_free_port)
H="http://127.0.0.1:$HPORT"
REPLY=sandfleet.reply.itest
# CPID: kfleet_cleanup kills the serve process with -9 if the test stops early.
serve_start() {
    "$C" serve --broker "$KAFKA_URL" --http "127.0.0.1:$HPORT" --id ks --lease-ms 3000 "$@" >>"$T/serve.log" 2>&1 &
    CPID=$!
    wait_for 30 curl -sf "$H/readyz" -o /dev/null || fail "serve did not become ready"
}
get() { curl -sf "$H/api/runs/$1" >"$T/get.json" 2>/dev/null; }
state_is() { get "$1" && [ "$(jget "$T/get.json" 'd["state"]' 2>/dev/null)" = "$2" ]; }
# "<partition>-<offset>" of the submission whose value contains $1.
sub_po() { kcat_ -C -t sandfleet.submissions -o beginning -e -q -f '%p-%o %s\n' 2>/dev/null | grep -F -- "$1" | cut -d' ' -f1; }
# The values on the reply topic whose key is $1.
replies() { kcat_ -C -t "$REPLY" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null | awk -F'\t' -v k="$1" '$1 == k { print $2 }'; }
produce() { printf '%s\n' "$1" | kcat_ -P -t sandfleet.submissions || fail "producing a submission"; }

# The broker does not auto-create topics and kcat cannot create one: the
# reply topic is made with the Admin API of the jars deploy/local/kafka.sh uses.
jars="${KAFKA_CACHE:-$SF_SRC/deploy/local/.kafka}/jars-${KAFKA_VERSION:-4.1.1}"
cat >"$T/MkTopic.java" <<'JAVA'
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
public class MkTopic {
    public static void main(String[] a) throws Exception {
        try (Admin ad = Admin.create(Map.of("bootstrap.servers", a[0]))) {
            ad.createTopics(List.of(new NewTopic(a[1], 1, (short) 1))).all().get();
        }
    }
}
JAVA
java -cp "$jars/*" "$T/MkTopic.java" "127.0.0.1:$KAFKA_PORT" "$REPLY" >>"$T/java.log" 2>&1 \
    || fail "could not create $REPLY: $(tail -3 "$T/java.log")"

kworker_start w1 --concurrency 4 --lease-ms 3000
serve_start
check "serve on Kafka is not refused" bash -c "! grep -q 'not supported' '$T/serve.log'"

# --- 1. a kcat submission -----------------------------------------------------------------
produce "{\"workflow\": {\"name\": \"kstream\", \"steps\": [{\"id\": \"echo\", \"run\": \"cat\", \"input\": {\"via\": \"kafka\"}}]}, \"reply_to\": \"$REPLY\"}"
po=$(sub_po kstream)
[ -n "$po" ] || fail "the submission is not on sandfleet.submissions"
RUN1="sub-$po"
wait_for 40 state_is "$RUN1" succeeded || fail "run $RUN1 did not succeed: $(cat "$T/get.json" 2>/dev/null)"
check "GET /api/runs/$RUN1: the output in the document" jtrue "$T/get.json" \
    'd["result"]["status"] == "succeeded" and d["result"]["steps"]["echo"]["output"] == {"via": "kafka"} and d["result"]["run_id"] == "'"$RUN1"'"'
check "the document is stored on sandfleet.runs (key $RUN1/doc)" bash -c \
    "kcat -b 127.0.0.1:$KAFKA_PORT -C -t sandfleet.runs -o beginning -e -q -f '%k\t%s\n' 2>/dev/null | grep -q '^$RUN1/doc	.*\"via\":\"kafka\"'"
wait_for 10 bash -c "[ -n \"\$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t $REPLY -o beginning -e -q -f '%k\n' 2>/dev/null | grep -x '$RUN1')\" ]"
replies "$RUN1" >"$T/reply1.json"
check "the document arrives on $REPLY with key $RUN1" jtrue "$T/reply1.json" \
    'd["status"] == "succeeded" and d["steps"]["echo"]["output"] == {"via": "kafka"}'

# A bare workflow (files inline) with reply_to and run_id as headers.
printf '%s\n' '{"name": "khdr", "steps": [{"id": "echo", "run": "cat", "input": {"via": "headers"}}]}' |
    kcat_ -P -t sandfleet.submissions -H "reply_to=$REPLY" -H run_id=khdr-1 || fail "producing with headers"
wait_for 40 state_is khdr-1 succeeded || fail "the header submission did not succeed as khdr-1: $(cat "$T/get.json" 2>/dev/null)"
wait_for 10 bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t $REPLY -o beginning -e -q -f '%k\n' 2>/dev/null | grep -qx khdr-1"
replies khdr-1 >"$T/reply_hdr.json"
check "headers reply_to/run_id: the document on $REPLY as khdr-1" jtrue "$T/reply_hdr.json" \
    'd["steps"]["echo"]["output"] == {"via": "headers"}'

# --- 2. invalid submissions -----------------------------------------------------------------
produce "{\"workflow\": {\"name\": \"broken\", \"steps\": \"no\"}, \"run_id\": \"kbad-1\", \"reply_to\": \"$REPLY\"}"
produce 'this is not a submission'
wait_for 20 state_is kbad-1 rejected || fail "the invalid submission got no rejected document: $(cat "$T/get.json" 2>/dev/null)"
check "rejected: the reason is in the document" jtrue "$T/get.json" '"steps" in d["result"]["error"]'
wait_for 10 bash -c "kcat -b 127.0.0.1:$KAFKA_PORT -C -t $REPLY -o beginning -e -q -f '%k\n' 2>/dev/null | grep -qx kbad-1"
replies kbad-1 >"$T/reply_bad.json"
check "rejected: answered on its reply_to topic too" jtrue "$T/reply_bad.json" 'd["status"] == "rejected"'
RUNJ="sub-$(sub_po 'this is not a submission')"
wait_for 20 state_is "$RUNJ" rejected || fail "the non-JSON message got no rejected document under $RUNJ"
check "not JSON: rejected with the parser's reason" jtrue "$T/get.json" '"not a JSON object" in d["result"]["error"]'

# --- 3. HTTP submission -----------------------------------------------------------------------
python3 - "$T/sub.json" <<'PY'
import json, sys
wf = {"name": "khttp", "steps": [
    {"id": "plan", "run": "python3 plan.py", "files": {"plan.py": "agents/plan.py"}},
    {"id": "each", "run": "python3 square.py", "files": {"square.py": "agents/square.py"}, "needs": ["plan"], "map": True}]}
files = {"agents/plan.py": "import json,sys; d=json.load(sys.stdin); print(json.dumps(list(range(d['n']))))",
         "agents/square.py": "import json,sys; x=json.load(sys.stdin); print(x*x)"}
json.dump({"workflow": wf, "files": files, "input": {"n": 4}}, open(sys.argv[1], "w"))
PY
code=$(curl -s -o "$T/post.json" -w '%{http_code}' -XPOST --data-binary @"$T/sub.json" "$H/api/runs")
[ "$code" = 202 ] || fail "POST /api/runs: $code $(cat "$T/post.json")"
RUNH=$(jget "$T/post.json" 'd["run_id"]')
wait_for 40 state_is "$RUNH" succeeded || fail "HTTP run $RUNH did not succeed: $(cat "$T/get.json" 2>/dev/null)"
check "POST /api/runs on Kafka: the map outputs" jtrue "$T/get.json" 'd["result"]["steps"]["each"]["output"] == [0, 1, 4, 9]'
# concurrency, rate and priority need Redis: refused at submission, not ignored
code=$(curl -s -o "$T/post-prio.json" -w '%{http_code}' -XPOST \
    --data-binary '{"workflow": {"name": "kprio", "steps": [{"id": "a", "run": "cat", "input": 1}]}, "priority": 5}' "$H/api/runs")
check "POST /api/runs with a priority on Kafka: 400" [ "$code" = 400 ]
check "…naming what Kafka does not support" grep -q "run priority 5 is not supported by the kafka backend" "$T/post-prio.json"
code=$(curl -s -o "$T/post-conc.json" -w '%{http_code}' -XPOST \
    --data-binary '{"name": "kconc", "steps": [{"id": "a", "run": "cat", "concurrency": {"key": "k", "limit": 1}}]}' "$H/api/runs")
check "POST /api/runs with a concurrency key on Kafka: 400 naming the step" \
    bash -c "[ $code = 400 ] && grep -q \"step 'a': 'concurrency' is not supported\" '$T/post-conc.json'"

# --- 4. killed mid-run, restarted -------------------------------------------------------------
# The agent is held (SIGSTOP) while serve is killed, so the run cannot end
# before the kill however loaded the machine is; it is let go after the restart.
SLOW="sleep 12.$$"                      # a command line no other test runs
produce "{\"workflow\": {\"name\": \"kslow\", \"steps\": [{\"id\": \"wait\", \"run\": \"$SLOW; cat\", \"input\": {\"slow\": true}}]}, \"reply_to\": \"$REPLY\"}"
RUNS="sub-$(sub_po kslow)"
wait_for 20 state_is "$RUNS" running || fail "the slow run did not start"
wait_for 20 pgrep -f "^$SLOW\$" >/dev/null || fail "the slow run's agent did not start"
AGENT=$(pgrep -f "^$SLOW\$")
kill -STOP $AGENT
sleep 1.5                               # acked offsets are committed every second
kill -9 "$CPID"
wait "$CPID" 2>/dev/null
check "killed before the slow run's document was stored" bash -c "[ -z \"\$(kcat -b 127.0.0.1:$KAFKA_PORT -C -t $REPLY -o beginning -e -q -f '%k\n' 2>/dev/null | grep -x '$RUNS')\" ]"
serve_start --max-runs 1
kill -CONT $AGENT
wait_for 40 state_is "$RUNS" succeeded || fail "the restarted serve did not finish $RUNS: $(cat "$T/get.json" 2>/dev/null)"
check "the slow run resumed under its run id" jtrue "$T/get.json" 'd["result"]["steps"]["wait"]["output"] == {"slow": True}'
# This instance does not hold khdr-1: its claim on sandfleet.runs refuses the id.
code=$(curl -s -o "$T/taken.json" -w '%{http_code}' -XPOST -d '{"workflow": {"name": "khdr", "steps": [{"id": "echo", "run": "cat"}]}, "run_id": "khdr-1"}' "$H/api/runs")
check "a known run id is refused by its claim on Kafka (409)" test "$code" = 409
check "the first run's document is answered from the broker after the restart" \
    bash -c "curl -sf '$H/api/runs/$RUN1' | grep -q '\"state\":\"succeeded\"'"

for q in kq1 kq2 kq3; do
    produce "{\"workflow\": {\"name\": \"$q\", \"steps\": [{\"id\": \"s\", \"run\": \"sleep 1; cat\", \"input\": \"$q\"}]}}"
done
for q in kq1 kq2 kq3; do
    id="sub-$(sub_po "\"$q\"")"
    wait_for 30 state_is "$id" succeeded || fail "$q ($id) did not run with --max-runs 1: $(cat "$T/get.json" 2>/dev/null)"
done
ok "--max-runs 1: three queued submissions all ran"
check "--max-runs 1: never two runs at once" python3 - "$H" <<'PY'
import json, sys, urllib.request
runs = [r for r in json.load(urllib.request.urlopen(sys.argv[1] + "/api/runs")) if r["workflow"] in ("kq1", "kq2", "kq3")]
spans = sorted((r["started_ms"], r["finished_ms"]) for r in runs)
sys.exit(0 if len(spans) == 3 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:])) else 1)
PY

# --- 5. drain -----------------------------------------------------------------------------------
kill -TERM "$CPID"
wait "$CPID"
rc=$?
CPID=
check "serve exits 0 after SIGTERM" [ "$rc" = 0 ]
# serve has exited: every reply it was going to give is on the topic.
expect_n() { local n; n=$(replies "$1" | wc -l); if [ "$n" = "$2" ]; then ok "$3"; else not_ok "$3: $n replies"; fi; }
expect_n "$RUNS" 1 "after the restart the slow run replied once"
expect_n "$RUN1" 1 "the acked kcat submission was not run again"
expect_n kbad-1 1 "the acked rejected submission was not answered again"
t_done
