#!/usr/bin/env bash
# bench/e2b_fleet.sh [N] — time to first output through the fleet's E2B
# gateway (serve --e2b-listen, two workers joined with --e2b-ingress, one
# redis-server) and straight against one worker (--e2b-listen), in the same
# run, the way public sandbox leaderboards measure: from the start of the
# create to the first byte of `echo hi`'s output, p50/p95/p99 and the success
# rate; one at a time (N, default 100) and a burst of N at once. The client is
# bench/e2b_ttfo.c (C, one kept-alive connection per client). Results go to
# docs/benchmarks.md §13 with the machine and date printed here.
# BUILD=build by default (cmake --build "$BUILD" first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build=${BUILD:-$top/build}
n=${1:-100}
[ "${BENCH_MODE:-full}" = quick ] && [ -z "${1:-}" ] && n=20
rounds=${ROUNDS:-1}
bin=$build/bin
ttfo=$build/bench/e2b_ttfo
[ -x "$ttfo" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
tmp=$(mktemp -d /tmp/sf-bench-e2b-fleet.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis.log" --daemonize no >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
key=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/secret"
export SANDFLEET_E2B_GATEWAY_SECRET_FILE=$tmp/secret
cap=$((n + 10))
fleet=()
for w in w1 w2; do
  "$bin/sandfleet-worker" --broker "redis://127.0.0.1:$rport" --worker-id "$w" --e2b-ingress 127.0.0.1:0 \
    --e2b-max-sandboxes "$cap" --concurrency 1 --log-level warn 2>"$tmp/$w.log" &
  pids+=($!)
  fleet+=($!)
done
gport=$(port)
"$bin/sandfleet-coordinator" serve --broker "redis://127.0.0.1:$rport" --http 127.0.0.1:0 \
  --e2b-listen "127.0.0.1:$gport" --e2b-api-key "$key" --log-level warn 2>"$tmp/gw.log" &
pids+=($!)
gpid=$!
rpid=${pids[0]}
dport=$(port)
"$bin/sandfleet-worker" --e2b-listen "127.0.0.1:$dport" --e2b-api-key "$key" \
  --e2b-max-sandboxes "$cap" --e2b-max-conns-per-ip 1024 --e2b-max-conns 1024 --log-level warn \
  2>"$tmp/direct.log" &
pids+=($!)
dpid=$!
for _ in $(seq 200); do
  [ "$(redis-cli -p "$rport" ZCARD sf:e2b:workers)" = 2 ] &&
    curl -sf "http://127.0.0.1:$gport/health" >/dev/null && curl -sf "http://127.0.0.1:$dport/health" >/dev/null && break
  sleep 0.05
done
sleep 1                                   # the gateway's first worker table

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  kernel: $(uname -r)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$ttfo" "127.0.0.1:$gport" "$key" seq 5 >/dev/null    # warm both paths (page cache, pools)
"$ttfo" "127.0.0.1:$dport" "$key" seq 5 >/dev/null
# CPU seconds (user+system) a process and its children have used so far:
# where the time of a phase went (sandboxes run as the workers' children).
cpu() { awk '{ printf "%.2f", ($14 + $15 + $16 + $17) / 100 }' "/proc/$1/stat"; }
phase() {   # LABEL PORT MODE PIDS...: run, then the CPU each process spent
  local label=$1 port=$2 mode=$3; shift 3
  local before=() p i=0
  for p in "$@"; do before+=("$(cpu "$p")"); done
  printf '%s %-5s ' "$label" "$mode"; "$ttfo" "127.0.0.1:$port" "$key" "$mode" "$n" || true
  printf '    cpu ms per sandbox:'
  for p in "$@"; do printf ' %s' "$(echo "scale=2; ($(cpu "$p") - ${before[$i]}) * 1000 / $n" | bc)"; i=$((i + 1)); done
  echo
}
for r in $(seq "$rounds"); do
  for mode in seq burst; do
    phase "gateway (2 workers)" "$gport" "$mode" "$gpid" "${fleet[@]}" "$rpid"
    phase "direct  (1 worker) " "$dport" "$mode" "$dpid"
  done
done
echo "(cpu ms per sandbox: gateway, worker 1, worker 2, redis-server / the direct worker;"
echo " a worker's includes its sandboxes and their processes; 10 ms clock ticks)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
