#!/usr/bin/env bash
# Supplementary groups (docs/security.md, "User namespace and the uid
# mapping"): a worker started by root through sudo or a service manager may
# carry host groups such as disk (6) and adm (4). None of them reaches a
# sandbox: a root worker drops them at start, before its zygote and its
# sandboxes exist, so neither the worker, the zygote, a waiting sandbox's
# init nor a task holds one, and a file only those groups may read stays
# unreadable to the task; nor does an agent of --sandbox process (before,
# one held 4 and 6). An unprivileged worker cannot drop them: its local
# provider says so at start, naming them. Needs root and user namespaces.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/fleet.sh"
fleet_init groups

groups_of() { sed -n 's/^Groups:[[:space:]]*//p' "/proc/$1/status" | tr -d ' \t'; }
children() { [ -n "$1" ] && ps -o pid= --ppid "$1" | tr -d ' '; }
zygote_of() { for c in $(children "$1"); do grep -qx sf-zygote "/proc/$c/comm" 2>/dev/null && echo "$c"; done; }
inits_of() { for c in $(children "$1"); do grep -q sandbox-init "/proc/$c/comm" 2>/dev/null && echo "$c"; done; }

# A template (the host's dash and cat) whose only secret is a file of group
# disk, mode 0640.
. "$SF_SRC/tests/lib/template.sh"
R=$T/root
sf_tiny_template "$R" || fail "cannot make a template"
echo "disk-only" >"$R/disk-only"
chown 0:6 "$R/disk-only" && chmod 0640 "$R/disk-only"
chmod 755 "$T" "$R"
check "the file is readable to a host process of group 6 (the test means something)" \
    bash -c "[ \"\$(setpriv --reuid 65534 --regid 65534 --groups 6 cat $R/disk-only)\" = disk-only ]"

# The worker as a service manager would start it: root with groups 6 and 4.
rcli XADD sf:default:tasks '*' task "$(task_json g1 rg \
    'g=; while read -r k v; do [ "$k" = Groups: ] && g=$v; done </proc/self/status; if cat /disk-only >/dev/null 2>&1; then r=read; else r=denied; fi; echo "{\"groups\": \"$g\", \"disk_only\": \"$r\"}"' \
    '{"template": "tg"}')" >/dev/null
# setpriv execs the worker: $! is its pid.
setpriv --groups 6,4 "$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" --sandbox local \
    --worker-id wg --concurrency 1 --template "tg=$R" >>"$T/wg.log" 2>&1 &
W=$!; WPID[wg]=$W
wait_for 30 '[ "$(rcli XLEN sf:run:rg:results)" = 1 ] && [ -n "$(zygote_of $W)" ] && [ -n "$(inits_of $(zygote_of $W))" ]'
Z=$(zygote_of "$W")
[ -n "$Z" ] || fail "no zygote"
check "the worker holds no supplementary group (had 6,4; now '$(groups_of "$W")')" [ -z "$(groups_of "$W")" ]
check "... nor its sandbox zygote ('$(groups_of "$Z")')" [ -z "$(groups_of "$Z")" ]
for I in $(inits_of "$Z"); do
    check "... nor the init of waiting sandbox $I ('$(groups_of "$I")')" [ -z "$(groups_of "$I")" ]
done
redis-cli -p "$REDIS_PORT" --raw XRANGE sf:run:rg:results - + | grep '^{' | head -1 >"$T/g1.json"
check "the task ran" jtrue "$T/g1.json" 'd["status"] == "ok"'
check "the task holds no group ($(jget "$T/g1.json" 'd.get("output")'))" \
    jtrue "$T/g1.json" 'd["output"]["groups"] == ""'
check "... and cannot read a file only group 6 may read" \
    jtrue "$T/g1.json" 'd["output"]["disk_only"] == "denied"'
worker_stop wg

# --sandbox process (no isolation): its agents are the worker's children.
rcli XADD sf:default:tasks '*' task "$(task_json g2 rp \
    'g=; while read -r k v; do [ "$k" = Groups: ] && g=$v; done </proc/self/status; echo "{\"groups\": \"$g\"}"')" >/dev/null
setpriv --groups 6,4 "$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" --sandbox process \
    --worker-id wp --concurrency 1 >>"$T/wp.log" 2>&1 &
WPID[wp]=$!
wait_for 30 '[ "$(rcli XLEN sf:run:rp:results)" = 1 ]'
redis-cli -p "$REDIS_PORT" --raw XRANGE sf:run:rp:results - + | grep '^{' | head -1 >"$T/g2.json"
check "--sandbox process: the agent holds no group ($(jget "$T/g2.json" 'd.get("output")' 2>/dev/null))" \
    jtrue "$T/g2.json" 'd["status"] == "ok" and d["output"]["groups"] == ""'
worker_stop wp

# Unprivileged with groups: nothing can drop them; the provider says so.
setpriv --reuid 65534 --regid 65534 --groups 6,4 env HOME="$T" \
    "$SF_BIN/sandfleet-coordinator" run "$SF_SRC/examples/analyze-report/workflow.json" \
    --sandbox local --output "$T/u.out" 2>"$T/u.err"
check "unprivileged: the local sandbox warns that groups 4,6 stay" \
    grep -q "keep this worker's supplementary groups (4,6)" "$T/u.err"
t_done
