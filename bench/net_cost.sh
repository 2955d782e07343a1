#!/bin/sh
# bench/net_cost.sh [iterations] [MB] — what network costs a local sandbox:
# per-task latency and CPU with network off / internet / allow-list, and a
# TCP stream through the egress path against the host network (see
# net_cost.c; docs/benchmarks.md §9). Needs root. Runs the driver CMake
# builds (BUILD=build by default).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build=${BUILD:-$top/build}
bin=$build/bench/net_cost
[ -x "$bin" ] || { echo "build first: cmake --build $build --target net_cost" >&2; exit 1; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  kernel: $(uname -r)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
quick=$([ "${BENCH_MODE:-full}" = quick ] && echo 1 || echo 0)
"$bin" "${1:-$([ "$quick" = 1 ] && echo 100 || echo 300)}" "${2:-$([ "$quick" = 1 ] && echo 256 || echo 1024)}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
