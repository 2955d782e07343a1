#!/bin/bash
# Redis away for longer than the lease while a task runs (docs/operations.md,
# "Redis down"): the task's worker keeps its result and settles it when Redis
# is back, and no other worker runs the task again. Redis keeps each
# entry's delivery time, so when it returns every entry looks idle for the
# whole outage; workers reclaim only after a lease of renewals since they
# reconnected (they used to reclaim at once and the task ran twice).
set -u
export SF_TEST_SANDBOX=process      # the agent appends to a file of the test
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init outage
LEASE=2000
EV="$T/events"
: >"$EV"
worker_start w1 --concurrency 1 --lease-ms $LEASE --log-level debug
worker_start w2 --concurrency 1 --lease-ms $LEASE --log-level debug
wait_for 10 '[ "$(rcli ZCARD sf:default:workers)" = 2 ]' || fail "workers did not register"
rcli XADD sf:default:tasks '*' task \
    "$(task_json T outage "echo start \$\$ >>$EV; sleep 3; cat" '{"reply_to": "sf:reply:outage"}')" >/dev/null
wait_for 20 'grep -q start "$EV"' || fail "the task did not start"
redis_stop
sleep $((2 * LEASE / 1000 + 1))       # the outage: longer than the lease
redis_start "$T/redis" || fail "redis did not come back"
wait_for 30 '[ "$(rcli XLEN sf:reply:outage)" = 1 ]' || fail "the result was lost"
# A reclaim would have come at once on reconnection, before the owner's result.
! grep -h "reclaimed" "$T/w1.log" "$T/w2.log" || fail "a worker reclaimed a live worker's task after the outage"
[ "$(grep -c start "$EV")" = 1 ] || fail "the task ran $(grep -c start "$EV") times"
rcli XRANGE sf:run:outage:results - + | grep -q '"status":"ok"' || fail "the stored result is not ok"
echo PASS
