#!/usr/bin/env bash
# In the test VM (cgroup v2 only): the sandfleet image in a container, as the
# compose file runs its worker (root with SYS_ADMIN, SETUID, SETGID,
# NET_ADMIN; the entrypoint remounts the container's cgroup and enters a
# cgroup namespace), and as the image's own unprivileged user. podman + runc
# with the cgroupfs manager, storage on a tmpfs, no network. The image is the
# one make compose-test built, saved by tests/vm/run.sh into $SF_VM_IMAGE.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
img=${SF_VM_IMAGE:-}
if [ -z "$img" ] || [ ! -f "$img" ]; then
  echo "no sandfleet-test/sandfleet image (make compose-test builds it): container checks skipped"
  t_done
  exit
fi
[ "$(id -u)" = 0 ] || { not_ok "runs as root (it starts containers)"; t_done; exit; }
st=$T_TMP/podman
mkdir -p "$st" && mount -t tmpfs tmpfs "$st"
t_cleanup_hooks+=("umount -l '$st'")
P=(podman --root "$st/storage" --runroot "$st/run" --tmpdir "$st/tmp" --cgroup-manager cgroupfs
   --events-backend file --runtime runc --storage-driver overlay)
"${P[@]}" load -q -i "$img" >"$T_TMP/load.log" 2>&1
check "the image loads ($(tail -1 "$T_TMP/load.log"))" "${P[@]}" image exists sandfleet-test/sandfleet:latest

run() {   # run NAME PODMAN-RUN-ARGS... -- COMMAND...: output in $T_TMP/NAME.{json,err,rc}
  local name=$1; shift
  "${P[@]}" run --rm --network none -v "$SF_SRC/examples:/workflows:ro" "$@" \
    >"$T_TMP/$name.json" 2>"$T_TMP/$name.err"
  echo $? >"$T_TMP/$name.rc"
}
worker=(--user root --cap-drop ALL --cap-add SYS_ADMIN,SETUID,SETGID,NET_ADMIN
        --security-opt no-new-privileges --memory 1g --pids-limit 4096)
for ex in analyze-report fanout shared; do
  run "$ex" "${worker[@]}" sandfleet-test/sandfleet:latest \
    sandfleet-coordinator run "/workflows/$ex/workflow.json" --sandbox local
  check "root + SYS_ADMIN,SETUID,SETGID,NET_ADMIN in a container on cgroup v2: examples/$ex succeeds (exit $(cat "$T_TMP/$ex.rc"))" \
    jtrue "$T_TMP/$ex.json" 'd["status"] == "succeeded"'
done
[ "$(cat "$T_TMP/analyze-report.rc")" = 0 ] || tail -5 "$T_TMP/analyze-report.err"

# The limits hold inside the container: a memory bomb is OOM-killed in its
# own cgroup (below the container's), the worker reports it.
cat >"$T_TMP/oom.json" <<'JSON'
{ "name": "oom", "steps": [ { "id": "bomb", "limits": { "memory_mb": 64, "disk_mb": 16 },
  "run": "python3 -c 'b = []\nwhile True: b.append(bytearray(1 << 20))'" } ] }
JSON
mv "$T_TMP/oom.json" "$T_TMP/oom-wf.json"
run oom "${worker[@]}" -v "$T_TMP/oom-wf.json:/oom.json:ro" sandfleet-test/sandfleet:latest \
  sandfleet-coordinator run /oom.json --sandbox local
check "a 64 MiB memory limit inside the container: the bomb is OOM-killed (exit $(cat "$T_TMP/oom.rc"))" \
  jtrue "$T_TMP/oom.json" '"oom" in (d["steps"]["bomb"]["error"] or "").lower() or "memory" in (d["steps"]["bomb"]["error"] or "").lower()'

# The image's own user, the engine's default capabilities: refused, exit 3.
run unpriv --entrypoint sh sandfleet-test/sandfleet:latest -c \
  'exec sandfleet-coordinator run /workflows/analyze-report/workflow.json --sandbox local'
check "uid 10001 in a container on cgroup v2: refused with exit code 3 (got $(cat "$T_TMP/unpriv.rc"))" \
  [ "$(cat "$T_TMP/unpriv.rc")" = 3 ]
check "... naming the reason" grep -q 'local sandbox: ' "$T_TMP/unpriv.err"
sed -n 's/.*\(local sandbox: [^(]*([^)]*)\).*/    \1/p' "$T_TMP/unpriv.err" | head -1
t_done
