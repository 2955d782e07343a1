#!/bin/sh
# bench/e2b_roundtrip.sh [iterations] — create → command ("echo hi") → kill
# round trips through the E2B-compatible API of `sandfleet-worker
# --e2b-listen` (local sandboxes), once with the official e2b Python SDK and
# once with sandfleet's C client (bench/e2b_roundtrip.c). Median, min and max
# of each; E2B publishes ~150 ms for a cloud sandbox start alone.
# BUILD=build by default (cmake --build "$BUILD" first); the SDK venv is the
# one tests/integration/test_e2b_sdk.sh caches in "$BUILD/e2b-venv".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build=${BUILD:-$top/build}
n=${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 10 || echo 25)}
venv=$build/e2b-venv
[ -x "$build/bench/e2b_roundtrip" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import e2b' 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q e2b
fi
key=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
"$build/bin/sandfleet-worker" --e2b-listen "127.0.0.1:$port" --e2b-api-key "$key" --log-level warn 2>"$log" &
wpid=$!
trap 'kill $wpid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
export E2B_API_KEY="$key" E2B_API_URL="http://127.0.0.1:$port" E2B_SANDBOX_URL="http://127.0.0.1:$port"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  kernel: $(uname -r)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "e2b SDK: $("$venv/bin/pip" show e2b | sed -n 's/^Version: //p')  load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$venv/bin/python" - "$n" <<'PY'
import statistics, sys, time
from e2b import Sandbox
n = int(sys.argv[1])
Sandbox.create().kill()                     # warm the SDK's connection pool and imports
ms = []
for _ in range(n):
    t0 = time.perf_counter()
    sb = Sandbox.create()
    r = sb.commands.run("echo hi")
    sb.kill()
    assert r.stdout == "hi\n", r.stdout
    ms.append((time.perf_counter() - t0) * 1000)
print(f"python-sdk n={n} median={statistics.median(ms):.1f} min={min(ms):.1f} max={max(ms):.1f} ms")
PY
"$build/bench/e2b_roundtrip" "$n" | tail -1
