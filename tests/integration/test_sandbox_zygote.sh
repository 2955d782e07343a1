#!/usr/bin/env bash
# The sandbox zygote (common/sandbox/local/sbx_zygote.h): a worker's local
# sandboxes are cloned by one small helper process, not by the worker; the
# helper carries no argv or environment of the worker's; it dies with the
# worker (kill -9), and so do the sandboxes; SF_SBX_NO_ZYGOTE=1 clones from
# the worker as before. Needs root and user namespaces.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/fleet.sh"
fleet_init zygote

children() { [ -n "$1" ] && ps -o pid= --ppid "$1" | tr -d ' '; }
zygote_of() { for c in $(children "$1"); do grep -qx sf-zygote "/proc/$c/comm" 2>/dev/null && echo "$c"; done; }
inits_of() { for c in $(children "$1"); do grep -q sandbox-init "/proc/$c/comm" 2>/dev/null && echo "$c"; done; }
rcli XADD sf:default:tasks '*' task "$(task_json z1 rz 'sleep 30; echo {}')" >/dev/null

# SF_SBX_READY=0: no sandbox made ahead, so the one found is the task's.
SF_SBX_READY=0 SANDFLEET_TEST_SECRET=hunter2 SF_TEST_SANDBOX=local worker_start wz --concurrency 2
W=${WPID[wz]}
wait_for 20 '[ -n "$(zygote_of $W)" ] && [ -n "$(inits_of $(zygote_of $W))" ]'
Z=$(zygote_of "$W")
check "the worker has a zygote child" [ -n "$Z" ]
check "the sandbox's init is the zygote's child, not the worker's" \
    bash -c "[ -n '$(inits_of "$Z")' ] && [ -z '$(inits_of "$W")' ]"
[ -n "$Z" ] || fail "no zygote"
check "the zygote shows none of the worker's argv" bash -c "[ -r /proc/$Z/cmdline ] && ! tr '\0' ' ' </proc/$Z/cmdline | grep -q -- '--broker'"
check "... nor its environment" bash -c "[ -r /proc/$Z/environ ] && ! tr '\0' '\n' </proc/$Z/environ | grep -q hunter2"
I=$(inits_of "$Z")
kill -9 "$W"; wait "$W" 2>/dev/null; unset "WPID[wz]"
wait_for 20 '! kill -0 $Z 2>/dev/null && ! kill -0 $I 2>/dev/null'
check "kill -9 of the worker takes the zygote with it" bash -c "! kill -0 $Z 2>/dev/null"
check "... and the sandbox" bash -c "! kill -0 $I 2>/dev/null"

# By default two sandboxes with the default options wait ready (sbx_ready.h),
# and two with the default egress policy (network on): a task takes one of its
# kind, and that pool is made up again. Only a network-on sandbox's namespace
# holds sockets (the worker's transparent ones, sbx_egress.h).
socks() { tail -n +2 "/proc/$1/net/tcp" 2>/dev/null | wc -l; }
off_inits() { for p in $(inits_of "$1"); do [ "$(socks "$p")" = 0 ] && echo "$p"; done; }
on_inits() { for p in $(inits_of "$1"); do [ "$(socks "$p")" -gt 0 ] && echo "$p"; done; }
rcli DEL sf:default:tasks >/dev/null
SF_TEST_SANDBOX=local worker_start wr --concurrency 1
W=${WPID[wr]}
wait_for 20 '[ -n "$(zygote_of $W)" ] && [ "$(off_inits $(zygote_of $W) | wc -l)" = 2 ] && [ "$(on_inits $(zygote_of $W) | wc -l)" = 2 ]'
Z=$(zygote_of "$W")
check "an idle worker keeps 2 sandboxes ready with the network off" [ "$(off_inits "$Z" | wc -l)" = 2 ]
check "... and 2 with the network on" [ "$(on_inits "$Z" | wc -l)" = 2 ]
before=$(off_inits "$Z" | sort | tr '\n' ' ')
net_before=$(on_inits "$Z" | sort | tr '\n' ' ')
rcli XADD sf:default:tasks '*' task "$(task_json z3 rr 'echo {\"ok\": 1}')" >/dev/null
wait_for 30 '[ "$(rcli XLEN sf:run:rr:results)" = 1 ]'
check "a task runs on one of them" bash -c "redis-cli -p $REDIS_PORT XRANGE sf:run:rr:results - + | grep -q '\"status\":\"ok\"'"
wait_for 20 '[ "$(off_inits $Z | wc -l)" = 2 ] && [ "$(off_inits $Z | sort | tr "\n" " ")" != "$before" ]'
check "... and the pool is made up again" bash -c "[ \"\$(ps -o pid= --ppid $Z | wc -l)\" = 4 ] && [ '$(off_inits "$Z" | sort | tr '\n' ' ')' != '$before' ]"
check "... the network-on pool untouched" [ "$(on_inits "$Z" | sort | tr '\n' ' ')" = "$net_before" ]
worker_stop wr

# Without the zygote: the same task runs, cloned by the worker itself.
rcli DEL sf:default:tasks >/dev/null
SF_SBX_NO_ZYGOTE=1 SF_TEST_SANDBOX=local worker_start wn --concurrency 1
W=${WPID[wn]}
rcli XADD sf:default:tasks '*' task "$(task_json z2 rn 'echo {\"ok\": 1}')" >/dev/null
wait_for 30 '[ "$(rcli XLEN sf:run:rn:results)" = 1 ]'
check "SF_SBX_NO_ZYGOTE=1: the task ran" bash -c "redis-cli -p $REDIS_PORT XRANGE sf:run:rn:results - + | grep -q '\"status\":\"ok\"'"
check "... without a zygote" [ -z "$(zygote_of "$W")" ]
t_done
