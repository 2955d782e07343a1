#!/bin/sh
# bench/sandbox_cost.sh [iterations] — per-task cost of the local sandbox
# vs bwrap vs bare fork+exec (see sandbox_cost.c). Builds the driver with cc
# against an existing build's libsandfleet.a (BUILD=build by default).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build=${BUILD:-$top/build}
lib=$build/common/libsandfleet.a
[ -f "$lib" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
out=$(mktemp /tmp/sandbox_cost.XXXXXX)
trap 'rm -f "$out"' EXIT
cc -O2 -D_GNU_SOURCE -I"$top/common" "$here/sandbox_cost.c" "$lib" \
   $(pkg-config --libs libseccomp jansson hiredis rdkafka libcurl) -lpthread -lm -o "$out"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  kernel: $(uname -r)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$out" "${1:-200}"
