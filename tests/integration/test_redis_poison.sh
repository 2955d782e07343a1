#!/bin/bash
# A poison task — one that takes down every worker that runs it — is not
# handed out forever: after 3 workers died on it, the next reclaim
# dead-letters it, untouched, with the reason; other tasks keep flowing.
# (The process backend lets the agent kill its parent, the worker.)
set -u
export SF_TEST_SANDBOX=process      # an agent that kills its worker needs the process backend
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init poison

rcli XADD sf:default:tasks '*' task "$(task_json poison-1 poison 'kill -9 $PPID; sleep 5')" >/dev/null
deaths=0
for round in 1 2 3 4 5 6; do
    worker_start "w$round" --concurrency 1 --lease-ms 300
    pid=${WPID[w$round]}
    # Either the worker dies (it ran the task) or the task reaches the dead letters.
    wait_for 20 '! kill -0 '"$pid"' 2>/dev/null || [ "$(rcli XLEN sf:default:dead)" = 1 ]' \
        || fail "round $round: neither died nor dead-lettered"
    if ! kill -0 "$pid" 2>/dev/null; then
        deaths=$((deaths + 1)); unset "WPID[w$round]"
        sleep 0.4                                    # let the lease run out
        continue
    fi
    break
done
[ "$(rcli XLEN sf:default:dead)" = 1 ] || fail "the poison task was never dead-lettered ($deaths deaths)"
[ "$deaths" = 3 ] || fail "expected 3 workers to die before the dead letter, saw $deaths"
reason=$(rcli XRANGE sf:default:dead - + | grep -A1 '^reason$' | tail -1)
echo "$reason" | grep -q "3 workers took this task and died" || fail "unexpected reason: $reason"
rcli XRANGE sf:default:dead - + | grep -q 'kill -9 \$PPID' || fail "the raw task was not kept"
[ "$(rcli XLEN sf:default:tasks)" = 0 ] || fail "the poison task is still queued"
# The surviving worker still serves other tasks.
rcli XADD sf:default:tasks '*' task "$(task_json fine-1 fine cat)" >/dev/null
wait_for 20 '[ "$(rcli HLEN sf:run:fine:done)" = 1 ]' || fail "a normal task after the poison one did not run"
echo "ok - poison task dead-lettered after 3 worker deaths, raw task and reason kept; the fleet goes on"
echo "1 passed, 0 failed"
