#!/bin/sh
# Container healthcheck for sandfleet-worker (and the E2B gateway's serve).
# With SANDFLEET_HTTP=HOST:PORT the worker serves /healthz (the contract the
# k8s probes use): ask it. Without it (or with a worker built before --http),
# the check is that PID 1 is still a live sandfleet-worker.
# SANDFLEET_HEALTH_URL names the URL for anything else (the E2B gateway's
# serve: its /healthz). A compose "CMD" healthcheck is split at spaces by
# podman's API, so checks live here, not inline.
if [ -n "${SANDFLEET_HEALTH_URL:-}" ] ||
   { [ -n "${SANDFLEET_HTTP:-}" ] && sandfleet-worker --help 2>/dev/null | grep -q -- "--http "; }; then
  url=${SANDFLEET_HEALTH_URL:-http://127.0.0.1:${SANDFLEET_HTTP##*:}/healthz}
  exec python3 - "$url" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception as e:
    print(e); sys.exit(1)
PY
fi
grep -q '^sandfleet-work' /proc/1/comm 2>/dev/null && ! grep -q '^State:.*Z' /proc/1/status
