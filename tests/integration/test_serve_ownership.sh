#!/bin/bash
# Run ownership and serve's intake, against a real redis-server, two serve
# instances (A: --max-runs 1 --max-queued 2; B) and, at first, no worker, so
# every run stays live:
#  1. takeover: alice's live run "victim"; bob submits the same run_id to A
#     (409, the id is known here) and to B (409, its claim in Redis is
#     alice's); a stream submission with that run_id is rejected under its
#     own entry id, whose id ("sub-<entry id>") no HTTP client may take
#     first; `run --run-id victim` is refused; once a worker comes,
#     alice's run finishes with alice's output;
#  2. the intake is bounded: with A's one slot taken, two more submissions
#     wait (202) and the next gets 429 with Retry-After;
#  3. the broker stalls (redis-server stopped): submissions, lookups and the
#     status wait for it, while /healthz answers at once and the loop keeps
#     turning; once it is back every parked request is answered;
#  4. `run --run-id` resume is the owner's: a run of --owner carol killed
#     while it waits is refused to --owner dave and finished by carol.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init ownership
PA=$(redis_free_port)
PB=$(redis_free_port)
ALICE="alice-$$-$RANDOM-0123456789abcdef"
BOB="bob-$$-$RANDOM-0123456789abcdef"
ADMIN="admin-$$-$RANDOM-0123456789abcdef"
printf 'alice client %s\nbob client %s\nops admin %s\n' "$ALICE" "$BOB" "$ADMIN" >"$T/tokens"
chmod 600 "$T/tokens"
serve() {   # serve NAME PORT ARGS...
    local name=$1 port=$2; shift 2
    "$SF_BIN/sandfleet-coordinator" serve --broker "$REDIS_URL" --http "127.0.0.1:$port" --id "$name" \
        --api-token-file "$T/tokens" "$@" >>"$T/$name.log" 2>&1 &
}
serve A "$PA" --max-runs 1 --max-queued 2
APID=$!
serve B "$PB"
BPID=$!
trap 'kill -9 $APID $BPID 2>/dev/null; kill -CONT $REDIS_PID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 "curl -sf http://127.0.0.1:$PA/readyz >/dev/null && curl -sf http://127.0.0.1:$PB/readyz >/dev/null" \
    || fail "serve A or B did not become ready"

# post PORT TOKEN BODY: prints the status code; the answer is in $T/body, headers in $T/head
post() {
    curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' -XPOST -H "Authorization: Bearer $2" -d "$3" "http://127.0.0.1:$1/api/runs"
}
wf() {      # wf NAME INPUT [RUN_ID]
    printf '{"workflow": {"name": "%s", "steps": [{"id": "s", "run": "cat", "input": %s}]}%s}' "$1" "$2" \
        "${3:+, \"run_id\": \"$3\"}"
}

# --- 1. takeover -----------------------------------------------------------------------
[ "$(post "$PA" "$ALICE" "$(wf alices '{"who": "alice"}' victim)")" = 202 ] || fail "alice's submission: $(cat "$T/body")"
wait_for 10 '[ "$(rcli HGET sf:run:victim status)" = running ]' || fail "alice's run did not start"
[ "$(rcli HGET sf:run:victim owner)" = api:alice ] || fail "the claim does not name alice: $(rcli HGETALL sf:run:victim)"
[ "$(post "$PA" "$BOB" "$(wf bobs '{"who": "bob"}' victim)")" = 409 ] || fail "bob on A: not 409: $(cat "$T/body")"
[ "$(post "$PB" "$BOB" "$(wf bobs '{"who": "bob"}' victim)")" = 409 ] || fail "bob on B: not 409: $(cat "$T/body")"
[ "$(post "$PB" "$ALICE" "$(wf alices '{"who": "alice again"}' victim)")" = 409 ] || fail "alice again on B: not 409"
grep -q "run 'victim' exists already (owner api:alice)" "$T/B.log" || fail "B did not log the refused claim"
# A stream submission without a run_id runs as "sub-<entry id>", an id anyone
# can predict (Kafka: sub-<partition>-<offset>): no HTTP client may take it
# first, or that submission would be refused and its rejection stored under
# the squatter's run.
[ "$(post "$PB" "$BOB" "$(wf squat 1 "sub-$(date +%s%3N)-0")")" = 400 ] \
    || fail "bob took a stream submission's id before it came: $(cat "$T/body")"
grep -q "reserved for stream submissions" "$T/body" || fail "the 400 does not say why: $(cat "$T/body")"
sid=$(rcli XADD sf:submissions '*' workflow "$(wf streamed '{"who": "stream"}')" run_id victim reply_to sf:reply:takeover)
wait_for 15 'rcli GET "sf:run:sub-$sid:doc" | grep -q "run_id is taken"' \
    || fail "the stream takeover was not rejected under its own id: $(rcli GET "sf:run:sub-$sid:doc")"
rcli XREAD BLOCK 10000 STREAMS sf:reply:takeover 0-0 | grep -q "sub-$sid" || fail "no rejection on the stream's reply_to"
cat >"$T/cli.json" <<'JSON'
{ "name": "clis", "steps": [{ "id": "s", "run": "cat", "input": {"who": "cli"} }] }
JSON
"$SF_BIN/sandfleet-coordinator" run "$T/cli.json" --broker "$REDIS_URL" --run-id victim >"$T/cli.out" 2>"$T/cli.err"
rc=$?
[ $rc != 0 ] || fail "run --run-id victim took alice's run over"
grep -q "exists already (owner api:alice)" "$T/cli.err" || fail "run --run-id victim: no reason: $(cat "$T/cli.err")"
[ "$(rcli HGET sf:run:victim owner)" = api:alice ] || fail "the claim changed hands"

# --- 2. the intake is bounded ------------------------------------------------------------
[ "$(post "$PA" "$ALICE" "$(wf q1 1)")" = 202 ] || fail "q1: $(cat "$T/body")"
[ "$(post "$PA" "$ALICE" "$(wf q2 2)")" = 202 ] || fail "q2: $(cat "$T/body")"
[ "$(post "$PA" "$ALICE" "$(wf q3 3)")" = 429 ] || fail "q3: not 429 with a full intake: $(cat "$T/body")"
grep -qi '^Retry-After: 1' "$T/head" || fail "429 without Retry-After"

# --- 3. the broker stalls: nothing waits on the loop -------------------------------------------
kill -STOP "$REDIS_PID"
H="http://127.0.0.1:$PB"
curl -s -o "$T/st.json" -w '%{http_code}' -H "Authorization: Bearer $ADMIN" "$H/api/status" >"$T/st.code" &
C1=$!
curl -s -o "$T/lk.json" -w '%{http_code}' -H "Authorization: Bearer $ADMIN" "$H/api/runs/elsewhere" >"$T/lk.code" &
C2=$!
curl -s -o "$T/po.json" -w '%{http_code}' -XPOST -H "Authorization: Bearer $ALICE" -d "$(wf stalled 4)" "$H/api/runs" >"$T/po.code" &
C3=$!
sleep 3                                      # the broker has been away for 3 s ...
t0=$(date +%s%N)
curl -sf "$H/healthz" >"$T/healthz" || fail "/healthz failed while the broker stalled"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 1000 ] || fail "/healthz took $ms ms while the broker stalled"
age=$(sed -n 's/^ok: loop ran \([0-9]*\) ms ago$/\1/p' "$T/healthz")
[ -n "$age" ] && [ "$age" -lt 2000 ] || fail "the loop stalled with the broker: $(cat "$T/healthz")"
[ ! -s "$T/st.code" ] && [ ! -s "$T/po.code" ] || fail "answered while the broker was away?"
kill -CONT "$REDIS_PID"
wait $C1 $C2 $C3
[ "$(cat "$T/st.code")" = 200 ] || fail "status after the stall: $(cat "$T/st.code") $(cat "$T/st.json")"
[ "$(cat "$T/lk.code")" = 404 ] || fail "lookup after the stall: $(cat "$T/lk.code") $(cat "$T/lk.json")"
[ "$(cat "$T/po.code")" = 202 ] || fail "submission after the stall: $(cat "$T/po.code") $(cat "$T/po.json")"
echo "healthz in $ms ms, loop $age ms ago, while the broker was stopped"

# --- 4. `run --run-id` resume is the owner's (still no worker: the run waits) ------------------
cat >"$T/cli2.json" <<'JSON'
{ "name": "carols", "steps": [{ "id": "one", "run": "cat", "input": {"who": "carol"} }] }
JSON
"$SF_BIN/sandfleet-coordinator" run "$T/cli2.json" --broker "$REDIS_URL" --run-id "cli-$$" --owner carol \
    >"$T/carol1.out" 2>"$T/carol1.err" &
CPID=$!
wait_for 20 '[ "$(rcli SCARD "sf:run:cli-$$:published")" = 1 ]' || fail "carol's run did not publish its task"
kill -9 "$CPID"
wait "$CPID" 2>/dev/null
CPID=
"$SF_BIN/sandfleet-coordinator" run "$T/cli2.json" --broker "$REDIS_URL" --run-id "cli-$$" --owner dave \
    >"$T/dave.out" 2>"$T/dave.err" && fail "dave resumed carol's run"
grep -q "owner cli:carol" "$T/dave.err" || fail "dave's refusal does not say why: $(cat "$T/dave.err")"

# --- the victim's run is unaffected ------------------------------------------------------------
worker_start w1 --concurrency 2
wait_for 30 'rcli GET sf:run:victim:doc | grep -q "\"status\":\"succeeded\""' || fail "alice's run did not finish"
python3 - "$(rcli GET sf:run:victim:doc)" <<'PY' || fail "alice's run was altered"
import json, sys
d = json.loads(sys.argv[1])
assert d["run_id"] == "victim" and d["steps"]["s"]["output"] == {"who": "alice"}, d
PY
code=$(curl -s -o "$T/v.json" -w '%{http_code}' -H "Authorization: Bearer $BOB" "http://127.0.0.1:$PB/api/runs/victim")
[ "$code" = 404 ] || fail "bob reads alice's run through B: $code"

"$SF_BIN/sandfleet-coordinator" run "$T/cli2.json" --broker "$REDIS_URL" --run-id "cli-$$" --owner carol \
    >"$T/carol2.out" 2>"$T/carol2.err" || fail "carol could not resume her run: $(cat "$T/carol2.err")"
grep -q "resuming run" "$T/carol2.err" || fail "carol's second run did not resume"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]=="succeeded" and d["steps"]["one"]["output"]=={"who":"carol"}' \
    "$T/carol2.out" || fail "carol's resumed run: $(cat "$T/carol2.out")"
echo "PASS"
