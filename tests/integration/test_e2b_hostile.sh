#!/usr/bin/env bash
# The E2B server against a hostile sandbox and its client (e2b_hostile.py,
# the official SDK): whatever a sandbox plants in its file system (a FIFO
# where the client writes, a chain of 3000 directories, 1000 directories to
# watch, paths of 16 KB to list) and whatever its client sends (a gzip bomb,
# pause after pause), the worker keeps its threads, descriptors, memory and
# CPU for its other sandboxes, and a killed sandbox is gone. The worker runs
# with 1024 descriptors (a systemd service's soft limit) and room for two
# running sandboxes; a second one, with a soft limit of 256, must raise it
# to what its sandboxes' processes may hold.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/e2b_venv.sh"
W="$SF_BIN/sandfleet-worker"
unset E2B_API_KEY E2B_API_URL E2B_SANDBOX_URL E2B_DOMAIN

VENV=$(sf_e2b_venv)
check "the official e2b SDK is installed" [ -n "$VENV" ]

KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(ulimit -n 1024; exec "$W" --e2b-listen "127.0.0.1:$PORT" --e2b-api-key "$KEY" --e2b-max-sandboxes 2 \
  --template-store "$T_TMP/store") >"$T_TMP/worker.log" 2>&1 &
WPID=$!
t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
check "worker serves the E2B port" curl -sf "http://127.0.0.1:$PORT/health" -o /dev/null

E2B_API_KEY=$KEY E2B_API_URL=http://127.0.0.1:$PORT E2B_SANDBOX_URL=http://127.0.0.1:$PORT \
  timeout 600 "$VENV/bin/python" "$SF_SRC/tests/integration/e2b_hostile.py" "$WPID" >"$T_TMP/hostile.out" 2>&1
rc=$?
sed 's/^/    /' "$T_TMP/hostile.out"
check "every attack was held off" [ $rc -eq 0 ]
check "the checks ran" [ "$(grep -c '^ok - \|^not ok - ' "$T_TMP/hostile.out")" -ge 10 ]
check "the worker is still there" kill -0 "$WPID"
kill -TERM "$WPID"; wait "$WPID"; rc=$?
check "the worker stops cleanly on SIGTERM (exit $rc, no sanitizer report)" \
  bash -c "[ $rc -eq 0 ] && ! grep -q Sanitizer '$T_TMP/worker.log'"

# Processes clients start hold three of the worker's descriptors each (stdin,
# stdout, stderr): the worker raises its soft limit at start to what its
# sandboxes' pids allow, running and paused, and its E2B port still accepts
# once it holds more than 1024 (select() could not), so two sandboxes full
# of background commands leave room for a third sandbox. (A soft limit of
# 256; 3 + 3 sandboxes of 256 pids want about 6100.)
WANT=$(( 6 * (3 * 256 + 32) + 1024 ))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((WANT + 400)) ]; then
  echo "ok - descriptors for the E2B server's processes # SKIP hard limit $(ulimit -Hn) < $WANT"
else
  (ulimit -Sn 256; exec "$W" --e2b-listen "127.0.0.1:$PORT" --e2b-api-key "$KEY" --e2b-max-sandboxes 3 \
    --template-store "$T_TMP/store") >"$T_TMP/worker2.log" 2>&1 &
  WPID=$!
  t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  soft=$(awk '/^Max open files/ {print $4}' /proc/$WPID/limits)
  check "the worker raised its soft limit to what its E2B sandboxes may hold ($soft >= $WANT)" [ "$soft" -ge "$WANT" ]
  E2B_API_KEY=$KEY E2B_API_URL=http://127.0.0.1:$PORT E2B_SANDBOX_URL=http://127.0.0.1:$PORT \
    timeout 600 "$VENV/bin/python" - "$WPID" >"$T_TMP/procs.out" 2>&1 <<'PY'
import os, sys
from e2b import Sandbox
boxes, started = [Sandbox.create(timeout=300), Sandbox.create(timeout=300)], 0
try:
    for sb in boxes:
        for _ in range(200):
            sb.commands.run("sleep 300", background=True).disconnect()
            started += 1
    fds = len(os.listdir(f"/proc/{sys.argv[1]}/fd"))
    third = Sandbox.create(timeout=60)
    print("ok" if third.commands.run("echo up").stdout == "up\n" else "not ok", started, fds)
    third.kill()
except Exception as e:  # noqa: BLE001
    print("not ok", started, f"{type(e).__name__}: {str(e)[:200]}")
for sb in boxes:
    sb.kill()
PY
  check "400 background commands in two sandboxes, then a third sandbox runs: $(tail -1 "$T_TMP/procs.out")" \
    bash -c "tail -1 '$T_TMP/procs.out' | awk '\$1 == \"ok\" && \$2 == 400 && \$3 > 1024 { f = 1 } END { exit !f }'"
  kill -TERM "$WPID"; wait "$WPID"
fi
t_done
