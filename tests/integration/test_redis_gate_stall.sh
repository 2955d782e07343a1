#!/bin/bash
# A concurrency slot belongs to one delivery of one worker (docs/protocol.md
# §9). Worker w1 runs task A (key "stall", limit 1) and stalls (SIGSTOP) past
# its lease; w2 reclaims A and runs it again (at-least-once: two copies of A
# overlap, that is expected). When w1 wakes up and finishes its copy, it must
# give back only its own expired slot, not the one w2's copy holds: task B of
# the same key must not start before w2's copy of A has ended. (Slots used to
# be named by the delivery alone, so w1's give-back freed w2's slot and B ran
# beside it.) Events come from the agents themselves (process backend: they
# append to a host file).
set -u
export SF_TEST_SANDBOX=process
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init stall
LEASE=1500
EV="$T/events"
: >"$EV"
# agent: "start <tag> <time>", sleep, "end <tag> <time>"; <tag> tells the copies apart
agent() {
    printf '%s' "echo start \$SF_TASK_ID-\$\$ \$(date +%s.%N) >>$EV; sleep $1; echo end \$SF_TASK_ID-\$\$ \$(date +%s.%N) >>$EV; cat"
}
gated='{"concurrency": {"key": "stall", "limit": 1}, "reply_to": "sf:reply:stall"}'

worker_start w1 --concurrency 1 --lease-ms $LEASE --log-level debug
wait_for 10 '[ "$(rcli ZCARD sf:default:workers)" = 1 ]' || fail "w1 did not register"
rcli XADD sf:default:tasks '*' task "$(task_json A stall "$(agent 8)" "$gated")" >/dev/null
wait_for 20 'grep -q "^start A-" "$EV"' || fail "A did not start on w1"
kill -STOP "${WPID[w1]}"

worker_start w2 --concurrency 1 --lease-ms $LEASE --log-level debug
wait_for 30 '[ "$(grep -c "^start A-" "$EV")" = 2 ]' || fail "w2 did not reclaim and run A"
rcli XADD sf:default:tasks '*' task "$(task_json B stall "$(agent 0.1)" "$gated")" >/dev/null
kill -CONT "${WPID[w1]}"

wait_for 60 '[ "$(grep -c "^end " "$EV")" = 3 ]' || fail "A (twice) and B did not all end"
cat "$EV"
python3 - "$EV" <<'PY' || fail "B ran beside a copy of A: the stalled worker gave back the reclaimer's slot"
import sys
ev = {}
for line in open(sys.argv[1]):
    kind, tag, t = line.split()
    ev.setdefault(tag, {})[kind] = float(t)
a = sorted((v for k, v in ev.items() if k.startswith("A-")), key=lambda v: v["start"])
b = [v for k, v in ev.items() if k.startswith("B-")][0]
print(f"A on w1 {a[0]['start']:.2f}-{a[0]['end']:.2f}, A on w2 {a[1]['start']:.2f}-{a[1]['end']:.2f}, "
      f"B {b['start']:.2f}-{b['end']:.2f}")
assert b["start"] >= a[1]["end"], "B started while w2's copy of A ran"
PY
wait_for 10 '[ "$(rcli ZCARD sf:gate:conc:stall)" = 0 ]' || fail "a slot was left taken: $(rcli ZRANGE sf:gate:conc:stall 0 -1)"
for w in w1 w2; do
    [ "$(rcli HLEN sf:default:held:$w)" = 0 ] || fail "held entries left: $(rcli HGETALL sf:default:held:$w)"
done
echo PASS
