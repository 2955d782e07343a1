#!/usr/bin/env bash
# make demo: run the example workflows centrally (the coordinator drives the
# sandboxes itself) and then through Redis (a local redis-server, two
# workers pulling tasks), and print both side by side. Exits 1 when a run
# fails or the two ways disagree.
set -uo pipefail
BIN=${1:-build/bin}
cd "$(dirname "$0")/.."
C=$BIN/sandfleet-coordinator
W=$BIN/sandfleet-worker
SANDBOX=${SANDFLEET_SANDBOX:-local}
tmp=$(mktemp -d /tmp/sandfleet-demo-XXXXXX)
pids=()
failed=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

summary() {  # result-document -> one line
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
steps = d["steps"]
last = list(steps)[-1]
out = json.dumps(steps[last]["output"])
print("%-9s %6d ms  %s -> %s" % (d["status"], d["duration_ms"], last, out[:60] + ("..." if len(out) > 60 else "")))
PY
}

examples=(analyze-report fanout shared)
echo "== central run (sandbox: $SANDBOX) =="
for ex in "${examples[@]}"; do
  "$C" run "examples/$ex/workflow.json" --sandbox "$SANDBOX" --output "$tmp/$ex.central.json" \
      --log-level warn || failed+=("$ex (central, exit $?)")
  printf '  %-16s %s\n' "$ex" "$(summary "$tmp/$ex.central.json")"
done

echo
if ! "$W" --help 2>/dev/null | grep -- '--broker' >/dev/null; then
  echo "== through Redis: the broker run is not built yet =="
  exit 0
fi
command -v redis-server >/dev/null || { echo "redis-server is missing: scripts/deps.sh demo installs it"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" --daemonize no & pids+=($!)
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
url=redis://127.0.0.1:$port
for i in 1 2; do
  "$W" --broker "$url" --concurrency 2 --sandbox "$SANDBOX" --worker-id "demo-worker-$i" \
      --log-level warn 2>"$tmp/worker$i.log" & pids+=($!)
done
echo "== through Redis ($url, 2 workers x 2 slots) =="
for ex in "${examples[@]}"; do
  "$C" run "examples/$ex/workflow.json" --broker "$url" --output "$tmp/$ex.redis.json" \
      --log-level warn || failed+=("$ex (through Redis, exit $?)")
  printf '  %-16s %s\n' "$ex" "$(summary "$tmp/$ex.redis.json")"
done

echo
echo "== side by side: same outputs? =="
for ex in "${examples[@]}"; do
  same=$(python3 - "$tmp/$ex.central.json" "$tmp/$ex.redis.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
outs = lambda d: {k: (v["status"], v["output"]) for k, v in d["steps"].items()}
print("yes" if outs(a) == outs(b) else "NO")
PY
)
  [ "$same" = yes ] || failed+=("$ex (outputs differ)")
  printf '  %-16s central %6s ms   redis %6s ms   same outputs: %s\n' "$ex" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"])' "$tmp/$ex.central.json")" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"])' "$tmp/$ex.redis.json")" "$same"
done

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'make demo: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "make demo: every example succeeded, centrally and through Redis, with the same outputs"
