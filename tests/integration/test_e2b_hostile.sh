#!/usr/bin/env bash
# The E2B server against a hostile sandbox and its client (e2b_hostile.py,
# the official SDK): whatever a sandbox plants in its file system (a FIFO
# where the client writes, a chain of 3000 directories, 1000 directories to
# watch, paths of 16 KB to list) and whatever its client sends (a gzip bomb,
# pause after pause), the worker keeps its threads, descriptors, memory and
# CPU for its other sandboxes, and a killed sandbox is gone. The worker runs
# with 1024 descriptors (a systemd service's soft limit) and room for two
# running sandboxes.
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
t_done
