#!/bin/sh
# bench/sandbox_cost.sh [iterations] — per-task cost of the local sandbox
# vs bwrap vs bare fork+exec (see sandbox_cost.c). Runs the driver CMake
# builds (BUILD=build by default; `cmake --build build` first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build=${BUILD:-$top/build}
bin=$build/bench/sandbox_cost
[ -x "$bin" ] || { echo "build first: cmake --build $build --target sandbox_cost" >&2; exit 1; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  kernel: $(uname -r)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" "${1:-$([ "${BENCH_MODE:-full}" = quick ] && echo 100 || echo 300)}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
