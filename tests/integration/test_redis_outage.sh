#!/bin/bash
# Redis away for longer than the lease while a task runs (docs/operations.md,
# "Redis down"). Redis keeps each entry's delivery time and each slot's
# expiry, so when it returns every lease looks run out: nobody could renew.
#  1. a task whose worker holds its result through the outage is settled by
#     that worker, and no other worker runs it again;
#  2. a task still running when Redis returns keeps its concurrency slot: a
#     task waiting for the same key (limit 1) starts only after it ended.
# Workers take no lease as run out while they cannot reach Redis and for a
# lease after they reconnect (they used to reclaim and reap at once).
set -u
export SF_TEST_SANDBOX=process      # the agents append to a file of the test
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init outage
LEASE=2000
OUTAGE=$((2 * LEASE / 1000 + 1))      # seconds: longer than the lease
EV="$T/events"
: >"$EV"
# agent SECONDS: "start <task>-<pid> <time>", sleep, "end ...", then echo its input
agent() {
    printf '%s' "echo start \$SF_TASK_ID-\$\$ \$(date +%s.%N) >>$EV; sleep $1; echo end \$SF_TASK_ID-\$\$ \$(date +%s.%N) >>$EV; cat"
}
worker_start w1 --concurrency 1 --lease-ms $LEASE --log-level debug
worker_start w2 --concurrency 1 --lease-ms $LEASE --log-level debug
wait_for 10 '[ "$(rcli ZCARD sf:default:workers)" = 2 ]' || fail "workers did not register"

# --- 1. a finished result held through the outage ------------------------------------------
rcli XADD sf:default:tasks '*' task "$(task_json T outage "$(agent 1)" '{"reply_to": "sf:reply:outage"}')" >/dev/null
wait_for 20 'grep -q "^start T-" "$EV"' || fail "T did not start"
redis_stop
sleep $OUTAGE
redis_start "$T/redis" || fail "redis did not come back"
wait_for 30 '[ "$(rcli XLEN sf:reply:outage)" = 1 ]' || fail "T's result was lost"
# A reclaim would have come at once on reconnection, before the owner's result.
! grep -h "reclaimed" "$T/w1.log" "$T/w2.log" || fail "a worker reclaimed a live worker's task after the outage"
[ "$(grep -c "^start T-" "$EV")" = 1 ] || fail "T ran $(grep -c "^start T-" "$EV") times"

# --- 2. a running task keeps its concurrency slot -------------------------------------------
gated='{"concurrency": {"key": "outage", "limit": 1}, "reply_to": "sf:reply:outage-gated"}'
rcli XADD sf:default:tasks '*' task "$(task_json A outage "$(agent $((OUTAGE + 4)))" "$gated")" >/dev/null
wait_for 20 'grep -q "^start A-" "$EV"' || fail "A did not start"
rcli XADD sf:default:tasks '*' task "$(task_json B outage "$(agent 0)" "$gated")" >/dev/null
wait_for 20 '[ "$(rcli ZCARD sf:gate:conc:outage:wait)" = 1 ]' || fail "B did not wait for A's slot"
redis_stop
sleep $OUTAGE
redis_start "$T/redis" || fail "redis did not come back"
wait_for 40 '[ "$(rcli XLEN sf:reply:outage-gated)" = 2 ]' || fail "A and B did not both finish"
python3 - "$EV" <<'PY' || fail "B ran beside A after the outage: A's slot was reaped while A ran"
import sys
ev = {}
for line in open(sys.argv[1]):
    kind, tag, t = line.split()
    ev.setdefault(tag.split("-")[0], {})[kind] = float(t)
a, b = ev["A"], ev["B"]
print(f"A {a['start']:.2f}-{a['end']:.2f}, B {b['start']:.2f}-{b['end']:.2f}")
assert b["start"] >= a["end"]
PY
echo PASS
