#!/usr/bin/env bash
# A worker run by an ordinary user (docs/security.md, "Where it runs"):
#  - where it can have cgroups of its own (cgroup v2, a delegated cgroup:
#    make test-cgroup2 runs this as uid 4242 in its user@.service scope) it
#    runs the examples in local sandboxes whose root is its own uid;
#  - where it cannot (cgroup v1, or a v2 cgroup not delegated to it: run as
#    root, this test drops to nobody in root's cgroup) it refuses to start
#    with exit code 3, naming the cgroup it could not write and the fix -
#    never runs agents without limits.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
C="$SF_BIN/sandfleet-coordinator"
v2=0; [ -f /sys/fs/cgroup/cgroup.controllers ] && v2=1
as_user() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  chmod 755 "$T_TMP"
  as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$T_TMP" "$@"; }
fi
me=$(as_user id -u)
# Expected to work only unprivileged on v2 in a cgroup delegated to us.
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
delegated=0
[ "$(id -u)" != 0 ] && [ $v2 = 1 ] && [ -O "/sys/fs/cgroup$own" ] && delegated=1

cat >"$T_TMP/ids.json" <<'JSON'
{ "name": "ids", "steps": [ { "id": "ids",
  "run": "python3 -c 'import json; print(json.dumps({\"uid_map\": open(\"/proc/self/uid_map\").read().split(), \"uid\": __import__(\"os\").getuid()}))'" } ] }
JSON
as_user "$C" run "$T_TMP/ids.json" --sandbox local --output "$T_TMP/ids.out" 2>"$T_TMP/ids.err"
rc=$?

if [ $delegated = 1 ]; then
  # An unprivileged worker with a delegated cgroup v2 subtree.
  check "uid $me on cgroup v2: a workflow runs in a local sandbox (exit $rc)" jtrue "$T_TMP/ids.out" 'd["status"] == "succeeded"'
  check "sandbox root is uid 0 inside and the worker's own uid $me outside, nothing else mapped" \
    jtrue "$T_TMP/ids.out" "d['steps']['ids']['output'] == {'uid_map': ['0', '$me', '1'], 'uid': 0}"
  for ex in analyze-report fanout shared; do
    as_user "$C" run "$SF_SRC/examples/$ex/workflow.json" --sandbox local --output "$T_TMP/$ex.out" \
      2>>"$T_TMP/ex.err"
    check "uid $me on cgroup v2: examples/$ex succeeds" jtrue "$T_TMP/$ex.out" 'd["status"] == "succeeded"'
  done
  check "its sandboxes' cgroups are gone afterwards" \
    bash -c "! find /sys/fs/cgroup$own/sandfleet -mindepth 1 -name 'sf-*' -type d 2>/dev/null | grep -q ."
else
  # Refused: no cgroups this uid may write.
  what="uid $me on cgroup v$([ $v2 = 1 ] && echo 2 || echo 1)$([ $v2 = 1 ] && echo ', not delegated')"
  sed 's/^/    /' "$T_TMP/ids.err" | tail -3
  check "$what: the run is refused with exit code 3 (got $rc)" [ "$rc" = 3 ]
  check "$what: the message names the cgroup problem" grep -q "no usable cgroups for memory and pids limits" "$T_TMP/ids.err"
  check "$what: ... and the fix (root, or a delegated cgroup)" grep -q "Delegate=yes" "$T_TMP/ids.err"
  check "$what: no agent ran" bash -c "! grep -q '\"succeeded\"' '$T_TMP/ids.out' 2>/dev/null"
fi
t_done
