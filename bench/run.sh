#!/usr/bin/env bash
# bench/run.sh quick|full — every benchmark section, each side by side with its
# baseline in the same run. Results print to stdout and are kept under
# bench/results/<date>/; docs/benchmarks.md holds the recorded tables.
# quick: fewer iterations, under ~3 minutes. full: the numbers for the doc.
set -uo pipefail
mode=${1:-quick}
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
export BUILD=${BUILD:-$top/build}
cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null || exit 1
out=$here/results/$(date -u +%Y%m%dT%H%M%SZ)-$mode
mkdir -p "$out"
export BENCH_MODE=$mode BENCH_OUT=$out
# The peers every comparison needs, pinned (bench/.venv, bench/node_modules).
bash "$here/peers.sh" || exit 1

sections=(
  "sandbox_cost.sh:1. sandbox per-task cost"
  "redis_fleet.sh:2. fleet throughput and latency through Redis"
  "kafka_fleet.sh:3. Kafka vs Redis"
  "memory.sh:4. idle worker memory"
  "scale.sh:5. 100,000-element map"
  "e2b_roundtrip.sh:6. E2B-compatible API round trip"
  "concurrency.sh:7. throughput against concurrency"
  "priority.sh:8. what priorities cost the task path"
  "net_cost.sh:9. what network costs a sandbox"
  "map_e2e.sh:10. end to end: a coordinator's map vs BullMQ and Celery, plain and in bwrap"
  "python_agent.sh:11. a Python agent: cold, warm, Celery in-process"
  "many_agents.sh:12. a thousand waiting agents on one worker vs BullMQ"
  "e2b_fleet.sh:13. E2B gateway: time to first output"
)
status=0
for s in "${sections[@]}"; do
  script=${s%%:*} title=${s#*:}
  echo "=== $title ($script, $mode)"
  if [ ! -x "$here/$script" ] && [ ! -f "$here/$script" ]; then
    echo "    (not built yet)"
    continue
  fi
  if ! bash "$here/$script" 2>&1 | tee "$out/${script%.sh}.txt"; then
    echo "    FAILED: $script" >&2
    status=1
  fi
done
echo "results kept in $out"
exit $status
