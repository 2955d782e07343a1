#!/usr/bin/env bash
# E2B pause/resume and get_metrics against the sandbox's real cgroup
# (tests/integration/e2b_cgroup.py, standard library only): on the host's
# cgroup v1 in `make test`, and in `make test-cgroup2` on a cgroup v2 kernel
# as root and as an unprivileged user (tests/vm/suites).
set -u
. "$(dirname "$0")/../lib/testlib.sh"

KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SF_BIN/sandfleet-worker" --e2b-listen "127.0.0.1:$PORT" --e2b-api-key "$KEY" \
    >"$T_TMP/worker.log" 2>&1 &
WPID=$!
t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
check "the E2B server answers" curl -sf "http://127.0.0.1:$PORT/health" -o /dev/null

SF_API=http://127.0.0.1:$PORT SF_KEY=$KEY timeout 300 python3 "$SF_SRC/tests/integration/e2b_cgroup.py" \
    >"$T_TMP/cg.out" 2>&1
rc=$?
sed 's/^/    /' "$T_TMP/cg.out"
check "pause/resume and metrics match the sandbox's cgroup" [ $rc -eq 0 ]
check "... all checks ran" [ "$(grep -c '^ok - ' "$T_TMP/cg.out")" -ge 14 ]
[ "$T_FAIL" -eq 0 ] || tail -20 "$T_TMP/worker.log"
t_done
