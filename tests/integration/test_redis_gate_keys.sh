#!/bin/bash
# Gate keys that hold live state do not expire under it (docs/protocol.md §3):
#  1. a waiting set holds tasks: it has no TTL (it had a week, refreshed only
#     when a task joined it: a key whose waiters took longer than that to
#     drain lost them all, silently);
#  2. the slots of a key are renewed with their leases, and so is the key's
#     TTL (a day from the last task that entered: a task running longer let
#     the key vanish, and the next task of the key started beside it). The
#     test shortens the TTL by hand and waits for a renewal to restore it;
#  3. what a worker holds (sf:Q:held:<worker>) expires with the worker: a
#     worker killed -9 with slots left its entries forever in a shared hash.
set -u
export SF_TEST_SANDBOX=process      # A waits for a file of the test
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init gatekeys
gated='{"concurrency": {"key": "keys", "limit": 1}, "reply_to": "sf:reply:keys"}'
worker_start w1 --concurrency 2 --lease-ms 1500 --log-level debug
rcli XADD sf:default:tasks '*' task "$(task_json A keys "while [ ! -e $T/go ]; do sleep 0.05; done; cat" "$gated")" >/dev/null
wait_for 20 '[ "$(rcli ZCARD sf:gate:conc:keys)" = 1 ]' || fail "A did not take the slot"
rcli XADD sf:default:tasks '*' task "$(task_json B keys cat "$gated")" >/dev/null
wait_for 20 '[ "$(rcli ZCARD sf:gate:conc:keys:wait)" = 1 ]' || fail "B did not wait"
[ "$(rcli TTL sf:gate:conc:keys:wait)" = -1 ] || fail "the waiting set expires: TTL $(rcli TTL sf:gate:conc:keys:wait)"
ttl=$(rcli TTL sf:default:held:w1)
[ "$ttl" -gt 0 ] || fail "the worker's held hash does not expire (TTL $ttl)"
rcli EXPIRE sf:gate:conc:keys 2 >/dev/null
wait_for 10 '[ "$(rcli TTL sf:gate:conc:keys)" -gt 100 ]' || fail "the slots' key was not kept alive by A's renewals"
[ "$(rcli XLEN sf:reply:keys)" = 0 ] || fail "B ran while A held the only slot"
touch "$T/go"
wait_for 20 '[ "$(rcli XLEN sf:reply:keys)" = 2 ]' || fail "A and B did not finish"
echo PASS
