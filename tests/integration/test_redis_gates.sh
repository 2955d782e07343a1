#!/bin/bash
# Issue 15 through a real redis-server, two workers (w1 holds the secret,
# w2 does not) and a third on its own queue for priorities:
#  1. concurrency: a 12-element map with limit 2 never runs more than 2 at
#     once and does reach 2 (from the agents' own start/end times);
#  2. rate 5/s, burst 5: never more than 5 + 5 starts in any one-second
#     window, and the starts are really spread out;
#  3. secrets: the value reaches the agent (it reports a hash) and is found
#     nowhere: not in any Redis key of any type, the AOF, the result
#     document or any log; what the agent echoed is masked; status shows
#     which worker holds which name; a worker without it hands the task on
#     to one that has it; a secret nobody holds fails the task naming the
#     secret and the worker, with a dead letter;
#  4. priorities: with the worker busy, tasks of priorities 9, 5, 2, 0 and
#     an older 0 start in priority order, the older one where linear aging
#     (--priority-aging-s 1) puts it; a priority task XADDed to band 0 by
#     hand is moved to its band and runs;
#  5. a worker killed -9 while it holds the only slot of a key: the slot is
#     free again within the lease and the waiting task runs on the other.
set -u
# Its blocker agents wait on files the test touches on the host: the process
# backend (local sandboxes cannot see the host's files).
export SF_TEST_SANDBOX=process
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init gates
SECRET="sf-t-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
LEASE=3000
SANDFLEET_SECRET_T_KEY=$SECRET worker_start w1 --concurrency 2 --lease-ms $LEASE --log-level debug
worker_start w2 --concurrency 2 --lease-ms $LEASE --log-level debug
wait_for 10 '[ "$(rcli ZCARD sf:default:workers)" = 2 ]' || fail "workers did not register"

# max_overlap FILE STEP: the most agents of STEP running at once, from their {"s","e"} outputs
max_overlap() {
    python3 - "$1" "$2" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))["steps"][sys.argv[2]]["output"]
ev = sorted([(o["s"], 1) for o in out] + [(o["e"], -1) for o in out])
n = best = 0
for _, d in ev:
    n += d
    best = max(best, n)
print(best)
PY
}

# --- 1. concurrency ------------------------------------------------------------------
cat >"$T/conc.json" <<'JSON'
{ "name": "conc", "steps": [
  { "id": "m", "map": true, "input": [1,2,3,4,5,6,7,8,9,10,11,12],
    "concurrency": { "key": "itest-conc", "limit": 2 },
    "run": "python3 -c 'import json,time; s=time.time(); time.sleep(0.3); print(json.dumps({\"s\": s, \"e\": time.time()}))'" } ] }
JSON
coord "$T/conc.json" --run-id conc >"$T/conc.out" 2>>"$T/coord.log" || fail "concurrency run failed"
peak=$(max_overlap "$T/conc.out" m)
[ "$peak" = 2 ] || fail "concurrency limit 2: at most $peak ran at once (expected exactly 2)"
# four slots in the fleet, yet two at a time: the others waited in Redis, not in a slot
grep -q 'waits for its' "$T/w1.log" "$T/w2.log" || fail "no task waited for its slot"
[ "$(rcli ZCARD sf:gate:conc:itest-conc)" = 0 ] || fail "slots left taken after the run"

# --- 2. rate -----------------------------------------------------------------------------
cat >"$T/rate.json" <<'JSON'
{ "name": "rate", "steps": [
  { "id": "m", "map": true, "input": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20],
    "rate": { "key": "itest-rate", "per_s": 5, "burst": 5 },
    "run": "python3 -c 'import json,time; print(json.dumps({\"s\": time.time()}))'" } ] }
JSON
coord "$T/rate.json" --run-id rate >"$T/rate.out" 2>>"$T/coord.log" || fail "rate run failed"
python3 - "$T/rate.out" <<'PY' || fail "rate limit broken"
import json, sys
s = sorted(o["s"] for o in json.load(open(sys.argv[1]))["steps"]["m"]["output"])
worst = max(sum(1 for t in s if a <= t < a + 1.0) for a in s)
print("rate: most starts in one second:", worst, "span", round(s[-1] - s[0], 2))
assert worst <= 10, f"{worst} starts in one second (limit 5/s + burst 5)"
# 20 starts with 5 at once and 5/s after: at least 3 s
assert s[-1] - s[0] >= 2.5, f"20 starts within {s[-1] - s[0]:.2f} s: not limited"
PY

# --- 3. secrets ------------------------------------------------------------------------------
cat >"$T/secret.json" <<'JSON'
{ "name": "secret", "steps": [
  { "id": "use", "map": true, "input": [1,2,3,4], "secrets": ["T_KEY"],
    "run": "python3 -c 'import hashlib,json,os,sys; v=os.environ[\"T_KEY\"]; sys.stderr.write(\"got \" + v + \"\\n\"); print(json.dumps({\"sha\": hashlib.sha256(v.encode()).hexdigest(), \"echo\": v, v: 1}))'" } ] }
JSON
coord "$T/secret.json" --run-id secret >"$T/secret.out" 2>>"$T/coord.log" || fail "secret run failed"
want=$(printf %s "$SECRET" | sha256sum | cut -d' ' -f1)
python3 - "$T/secret.out" "$want" <<'PY' || fail "the secret did not reach the agents (or was not masked)"
import json, sys
st = json.load(open(sys.argv[1]))["steps"]["use"]
for o in st["output"]:
    assert o["sha"] == sys.argv[2], o
    assert o["echo"] == "***", o
    assert "***" in o, o
assert st["worker"] == "w1", st["worker"]
assert "got ***" in st["stderr_tail"], st["stderr_tail"]
PY
"$SF_BIN/sandfleet-coordinator" status --broker "$REDIS_URL" --lease-ms $LEASE --json >"$T/status.json" \
    || fail "status failed"
python3 - "$T/status.json" <<'PY' || fail "status does not show which worker holds which secret"
import json, sys
w = {x["id"]: x for x in json.load(open(sys.argv[1]))["workers"]}
assert "T_KEY" in w["w1"]["secrets"], w["w1"]
assert "T_KEY" not in w["w2"].get("secrets", []), w["w2"]
PY
"$SF_BIN/sandfleet-coordinator" status --broker "$REDIS_URL" --lease-ms $LEASE >"$T/status.txt" || fail "status failed"
grep -q 'T_KEY' "$T/status.txt" || fail "status text does not list secret names"
# a secret nobody holds: one final result naming it and the worker, and a dead letter
rcli XADD sf:default:tasks '*' task "$(task_json nosecret-1 nosecret cat '{"secrets":["NOBODY_HAS"],"reply_to":"sf:reply:itest-nosecret"}')" >/dev/null
reply=$(rcli XREAD BLOCK 15000 STREAMS sf:reply:itest-nosecret 0-0)
echo "$reply" | grep -q "secret 'NOBODY_HAS' is not available on worker w[12]" || fail "no clear error for a missing secret: $reply"
echo "$reply" | grep -q "no live worker of queue 'default' holds it" || fail "the error does not say nobody holds it: $reply"
rcli XRANGE sf:default:dead - + | grep -q "NOBODY_HAS" || fail "no dead letter for the missing secret"
# replaying such a dead letter (on a queue nobody serves, to look at it) starts afresh
rcli XADD sf:replay:dead '*' task "$(task_json replay-1 replay cat '{"secrets":["T_KEY"],"secret_misses":20,"attempt":3,"max_attempts":3}')" reason 'error after 3 attempts: secret ...' >/dev/null
"$SF_BIN/sandfleet-coordinator" dead retry --broker "$REDIS_URL" --queue replay --all >/dev/null || fail "dead retry failed"
replayed=$(rcli XRANGE sf:replay:tasks - +)
echo "$replayed" | grep -q '"attempt":1' || fail "the replayed task does not start at attempt 1: $replayed"
! echo "$replayed" | grep -q 'secret_misses' || fail "the replayed task keeps its secret_misses: $replayed"
# a worker lacking the secret hands the task on (the registry shows a live
# holder) until the holder, busy meanwhile, is free to take it
SANDFLEET_SECRET_T_KEY=$SECRET worker_start wh --queue sec --concurrency 1 --lease-ms $LEASE
wait_for 10 '[ "$(rcli ZCARD sf:sec:workers)" = 1 ]' || fail "worker wh did not register"
rcli XADD sf:sec:tasks '*' task "$(task_json sec-block sec-block "touch $T/sec-blocking; while [ ! -e $T/sec-go ]; do sleep 0.05; done; echo {}" '{"reply_to":"sf:reply:itest-sec-block"}')" >/dev/null
wait_for 10 '[ -e $T/sec-blocking ]' || fail "the blocker on wh did not start"
worker_start wl --queue sec --concurrency 1 --lease-ms $LEASE
wait_for 10 '[ "$(rcli ZCARD sf:sec:workers)" = 2 ]' || fail "worker wl did not register"
rcli XADD sf:sec:tasks '*' task "$(task_json sec-1 sec-run 'python3 -c "import os; print(len(os.environ[\"T_KEY\"]))"' '{"secrets":["T_KEY"],"reply_to":"sf:reply:itest-sec"}')" >/dev/null
wait_for 15 'grep -q "needs secret .T_KEY., which this worker does not have; handed on" $T/wl.log' \
    || fail "wl did not hand the task on"
touch "$T/sec-go"
reply=$(rcli XREAD BLOCK 30000 STREAMS sf:reply:itest-sec 0-0)
echo "$reply" | grep -q '"status":"ok"' || fail "the handed-on task did not succeed: $reply"
echo "$reply" | grep -q '"worker":"wh"' || fail "the handed-on task did not run on the holder: $reply"
echo "$reply" | grep -q "\"output\":${#SECRET}" || fail "the holder's agent did not get the secret: $reply"


for k in $(rcli --scan); do
    case $(rcli TYPE "$k") in
        string) rcli GET "$k" ;;
        hash) rcli HGETALL "$k" ;;
        set) rcli SMEMBERS "$k" ;;
        zset) rcli ZRANGE "$k" 0 -1 WITHSCORES ;;
        list) rcli LRANGE "$k" 0 -1 ;;
        stream) rcli XRANGE "$k" - + ;;
    esac
done >"$T/redis-dump.txt"
[ -s "$T/redis-dump.txt" ] || fail "empty Redis dump"
rcli BGREWRITEAOF >/dev/null
for f in "$T/redis-dump.txt" "$T"/*.out "$T"/*.log "$T/status.json" "$T/status.txt"; do
    ! grep -qF "$SECRET" "$f" || fail "the secret value is in $f"
done
! grep -rqF "$SECRET" "$T/redis" || fail "the secret value is in Redis' files"

# --- 4. priorities -----------------------------------------------------------------------------
worker_start wp --queue prio --concurrency 1 --lease-ms $LEASE --priority-aging-s 1
wait_for 10 '[ "$(rcli ZCARD sf:prio:workers)" = 1 ]' || fail "worker wp did not register"
# occupy wp's only slot until we say so
rcli XADD sf:prio:tasks '*' task "$(task_json block prio-block "touch $T/blocking; while [ ! -e $T/go ]; do sleep 0.05; done; echo {}" '{"reply_to":"sf:reply:itest-prio"}')" >/dev/null
wait_for 10 '[ -e $T/blocking ]' || fail "the blocker did not start"
# an old priority-0 task: 3 s of age is worth 3 levels with --priority-aging-s 1
rcli XADD sf:prio:tasks '*' task "$(task_json old0 prio-old "echo old0 >>$T/order; echo {}" '{"reply_to":"sf:reply:itest-prio"}')" >/dev/null
sleep 3
cat >"$T/prio.json" <<JSON
{ "name": "prio", "steps": [
  { "id": "p0", "run": "echo p0 >>$T/order; echo {}" },
  { "id": "p2", "run": "echo p2 >>$T/order; echo {}", "priority": 2 },
  { "id": "p9", "run": "echo p9 >>$T/order; echo {}", "priority": 9 },
  { "id": "p5", "run": "echo p5 >>$T/order; echo {}", "priority": 5 } ] }
JSON
"$SF_BIN/sandfleet-coordinator" run "$T/prio.json" --broker "$REDIS_URL" --queue prio --run-id prio \
    >"$T/prio.out" 2>>"$T/coord.log" &
CPID=$!
wait_for 10 '[ "$(rcli SCARD sf:run:prio:published)" = 4 ]' || fail "the priority run was not published"
touch "$T/go"
wait "$CPID" || fail "priority run failed"
CPID=
wait_for 10 '[ "$(wc -l <"$T/order")" = 5 ]' || fail "not every priority task ran"
order=$(tr '\n' ' ' <"$T/order")
[ "$order" = "p9 p5 old0 p2 p0 " ] || fail "priority order: got '$order', expected 'p9 p5 old0 p2 p0 '"
# a task XADDed by hand to band 0 with a priority: moved to band 4, then run
rcli XADD sf:prio:tasks '*' task "$(task_json hand4 prio-hand cat '{"priority":4,"reply_to":"sf:reply:itest-hand"}')" >/dev/null
reply=$(rcli XREAD BLOCK 10000 STREAMS sf:reply:itest-hand 0-0)
echo "$reply" | grep -q '"status":"ok"' || fail "the hand-queued priority task did not run: $reply"
[ "$(rcli EXISTS sf:prio:tasks:p4)" = 1 ] || fail "the hand-queued priority task did not go through band 4"

# --- 5. kill -9 while holding the only slot ------------------------------------------------------
rcli XADD sf:default:tasks '*' task "$(task_json k1 kill "touch $T/k1.started; sleep 60; echo {}" '{"concurrency":{"key":"itest-solo","limit":1},"reply_to":"sf:reply:itest-kill"}')" >/dev/null
wait_for 10 '[ -e $T/k1.started ]' || fail "k1 did not start"
holder=$(rcli XPENDING sf:default:tasks workers - + 10 | sed -n 2p)
case $holder in w1|w2) ;; *) fail "cannot tell who holds k1 ('$holder')" ;; esac
rcli XADD sf:default:tasks '*' task "$(task_json k2 kill 'echo "{\"k2\": 1}"' '{"concurrency":{"key":"itest-solo","limit":1},"reply_to":"sf:reply:itest-kill"}')" >/dev/null
wait_for 10 '[ "$(rcli ZCARD sf:gate:conc:itest-solo:wait)" = 1 ]' || fail "k2 did not wait for the slot"
"$SF_BIN/sandfleet-coordinator" status --broker "$REDIS_URL" --lease-ms $LEASE --json >"$T/status-gates.json" \
    || fail "status failed"
python3 - "$T/status-gates.json" <<'PY' || fail "status does not show the gates"
import json, sys
g = {x["gate"]: x for x in json.load(open(sys.argv[1]))["gates"]}
assert g["conc:itest-solo"] == {"gate": "conc:itest-solo", "limit": 1, "running": 1, "waiting": 1}, g
assert g["rate:itest-rate"]["per_s"] == 5 and g["rate:itest-rate"]["burst"] == 5, g
assert g["conc:itest-conc"]["running"] == 0 and g["conc:itest-conc"]["waiting"] == 0, g
PY
"$SF_BIN/sandfleet-coordinator" status --broker "$REDIS_URL" --lease-ms $LEASE | grep -q 'conc:itest-solo .*running 1 of 1, 1 waiting' \
    || fail "status text does not show the gates"
t0=$(date +%s%N)
kill -9 "${WPID[$holder]}"
unset "WPID[$holder]"
reply=$(rcli XREAD BLOCK 20000 STREAMS sf:reply:itest-kill 0-0)
t1=$(date +%s%N)
echo "$reply" | grep -q '"task_id":"k2"' || fail "k2 never ran after the holder was killed: $reply"
waited=$(( (t1 - t0) / 1000000 ))
echo "k2 ran ${waited} ms after the holder was killed (lease ${LEASE} ms)"
[ "$waited" -lt $((2 * LEASE + 1000)) ] || fail "the slot took ${waited} ms to come free (lease ${LEASE} ms)"
echo "PASS"
