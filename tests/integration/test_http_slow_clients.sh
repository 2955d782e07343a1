#!/bin/bash
# The HTTP listeners of both daemons under hostile clients (docs/security.md,
# "Front doors"): `serve` and the worker's --http.
#  1. 1100 connections from 127.0.0.2 that never finish their request head:
#     /healthz asked from 127.0.0.1 answers within a second, the address is
#     held to its share (--http-max-conns-per-ip, 32) and the rest refused;
#  2. a client trickling its head one byte every half second is cut at the
#     header timeout (here 2 s);
#  3. thirty clients half-sending bodies larger than the limit get 413 before
#     a byte is read, and thirty within the limit are held to the total
#     (--http-max-body-total-kb): the server's RSS grows by less than the
#     total plus 16 MiB, not by 30 x the body.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init slowhttp
ABUSE="python3 $SF_SRC/tests/lib/http_abuse.py"
WPORT=$(redis_free_port)
SPORT=$(redis_free_port)
# The worker's /healthz answers before it reaches a broker: this one is unreachable.
"$SF_BIN/sandfleet-worker" --broker "redis://127.0.0.1:1" --sandbox process --worker-id slow-w \
    --http "127.0.0.1:$WPORT" --http-header-timeout-s 2 >>"$T/worker.log" 2>&1 &
WPID[w]=$!
"$SF_BIN/sandfleet-coordinator" serve --broker "$REDIS_URL" --http "127.0.0.1:$SPORT" --id slow-serve \
    --http-header-timeout-s 2 --http-max-body-kb 16384 --http-max-body-total-kb 32768 \
    >>"$T/serve.log" 2>&1 &
SPID=$!
trap 'kill -9 $SPID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 "curl -s -o /dev/null http://127.0.0.1:$WPORT/healthz" || fail "worker --http did not come up"
wait_for 10 "curl -sf -o /dev/null http://127.0.0.1:$SPORT/readyz" || fail "serve did not come up"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

for who in worker serve; do
    if [ $who = worker ]; then port=$WPORT; pid=${WPID[w]}; else port=$SPORT; pid=$SPID; fi
    # --- 1. 1100 slow clients from one address ------------------------------------------
    $ABUSE hold "$port" 1100 --src 127.0.0.2 >"$T/hold-$who.json" || fail "$who: hold client failed"
    python3 - "$T/hold-$who.json" "$who" <<'PY' || fail "$who: /healthz behind 1100 slow clients: $(cat "$T/hold-$who.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == 200, d
assert d["ms"] < 1000, d
assert d["held"] <= 32 and d["refused"] >= 1100 - 32, d
print(sys.argv[2], "healthz in", d["ms"], "ms behind", d["held"], "held,", d["refused"], "refused")
PY
    # --- 2. a trickled head is cut at the header timeout ---------------------------------
    $ABUSE trickle "$port" /healthz --every 0.5 --limit 15 >"$T/trickle-$who.json"
    python3 - "$T/trickle-$who.json" <<'PY' || fail "$who: trickling client not cut at 2 s: $(cat "$T/trickle-$who.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["cut_after_s"] is not None and 1.5 <= d["cut_after_s"] <= 4, d
PY
    kill -0 "$pid" || fail "$who died"
done

# --- 3. bodies: over the limit refused unread, within it bounded in total (serve) ----------
before=$(rss_kb $SPID)
$ABUSE bodies "$SPORT" /api/runs 30 $((20 << 20)) --hold 0 >"$T/big.json"
python3 - "$T/big.json" <<'PY' || fail "oversized bodies were not all refused with 413: $(cat "$T/big.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["statuses"] == [413] * 30, d["statuses"]
PY
$ABUSE bodies "$SPORT" /api/runs 30 $((15 << 20)) --hold 30 >"$T/held.json" &
HOLDER=$!
wait_for 30 "[ -s $T/held.json ]" || fail "the body client did not finish sending"
after=$(rss_kb $SPID)
kill $HOLDER 2>/dev/null
python3 - "$T/held.json" "$before" "$after" <<'PY' || fail "bodies within the limit were not bounded in total: $(cat "$T/held.json")"
import json, sys
d = json.load(open(sys.argv[1]))
before, after = int(sys.argv[2]), int(sys.argv[3])
held = sum(1 for s in d["statuses"] if s is None)
busy = sum(1 for s in d["statuses"] if s == 503)
assert held == 2 and busy == 28, d["statuses"]      # 32 MiB total / 15 MiB
grown = (after - before) / 1024
print(f"serve RSS {before} -> {after} kB (+{grown:.1f} MiB) with 2 bodies held, 28 refused")
assert grown < 32 + 16, grown
PY
kill -0 $SPID || fail "serve died"
echo "PASS"
