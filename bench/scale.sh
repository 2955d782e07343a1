#!/usr/bin/env bash
# bench/scale.sh — section 5: one map step over N elements through Redis with
# 2 workers (2 slots each, local sandbox): completion time, tasks/s, and the
# coordinator's peak RSS (target <= 200 MB at N = 100,000).
# BENCH_MODE=quick uses N = 5,000; full uses 100,000. SCALE_N overrides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
BIN=${BUILD:-$top/build}/bin
mode=${BENCH_MODE:-quick}
n=${SCALE_N:-$([ "$mode" = full ] && echo 100000 || echo 5000)}
sandbox=${SANDFLEET_SANDBOX:-local}
tmp=$(mktemp -d /tmp/sf-scale-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec \
    --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no & pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
url=redis://127.0.0.1:$port
for i in 1 2; do
  "$BIN/sandfleet-worker" --broker "$url" --concurrency 2 --sandbox "$sandbox" --worker-id "scale-$i" \
      --log-level warn 2>"$tmp/w$i.log" & pids+=($!)
done
# The generator's output (N numbers) is itself a large payload: above the
# claim-check threshold it travels as a blob reference.
cat > "$tmp/wf.json" <<J
{"name": "scale-$n", "steps": [
  {"id": "items", "run": "python3 -c 'import json; print(json.dumps(list(range($n))))'"},
  {"id": "each", "run": "cat", "needs": ["items"], "map": true},
  {"id": "check", "run": "python3 -c 'import json,sys; a=json.load(sys.stdin); print(json.dumps({\"n\": len(a), \"ok\": a == list(range(len(a)))}))'", "needs": ["each"]}
]}
J
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  kernel: $(uname -r)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "map of $n elements, 2 workers x 2 slots, sandbox $sandbox, redis $(redis-server --version | awk '{print $3}')"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$tmp/rss" "$BIN/sandfleet-coordinator" run "$tmp/wf.json" --broker "$url" \
    --log-level warn --output "$tmp/out.json"
end=$(date +%s.%N)
python3 - "$tmp/out.json" "$tmp/rss" "$start" "$end" "$n" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rss_kb = int(open(sys.argv[2]).read().split()[-1])
secs = float(sys.argv[4]) - float(sys.argv[3])
n = int(sys.argv[5])
check = d["steps"]["check"]["output"]
print("status %s, check %s" % (d["status"], check))
print("elements %d  wall %.1f s  %.0f tasks/s  coordinator peak RSS %.1f MB" % (n, secs, n / secs, rss_kb / 1024))
sys.exit(0 if d["status"] == "succeeded" and check == {"n": n, "ok": True} else 1)
PY
