#!/bin/bash
# The sandbox network (docs/security.md, "Network") with real namespaces and
# test hosts of our own (tests/lib/nethost.sh): "pub" on a documentation
# address stands for the internet, "priv" on 10.213.x.x for a private host,
# a DNS server on 127.0.0.1 knows their names, redis-server and a listener
# on every address of this host stand for the house. Central runs, then a
# worker through Redis.
set -u
source "$SF_SRC/tests/lib/testlib.sh"
source "$SF_SRC/tests/lib/redis.sh"
source "$SF_SRC/tests/lib/nethost.sh"
t_cleanup_hooks+=("nethost_cleanup" "redis_cleanup" '[ -n "${HL_PID:-}" ] && kill $HL_PID'
                  '[ -n "${WK_PID:-}" ] && kill -9 $WK_PID')

nethost_add pub 198.51.100 || exit 1
nethost_add priv "10.213.$((RANDOM % 250))" || exit 1
PUB=${NH_IP[pub]} PRIV=${NH_IP[priv]} GW=${NH_GW[pub]}
NAME=pub-$$.sandfleet.test OTHER=other-$$.sandfleet.test
nethost_dns "$NAME=$PUB" "$OTHER=$PUB" "priv-$$.sandfleet.test=$PRIV" || exit 1
redis_start "$T_TMP/redis" || exit 1

# A listener on every address of this host: whatever reaches it reached the house.
HPORT=$(redis_free_port)
python3 - "$HPORT" "$T_TMP/house.log" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen()
log = open(sys.argv[2], "a", buffering=1)
while True:
    c, a = s.accept(); log.write("%s\n" % a[0]); c.sendall(b"house\n"); c.close()
PY
HL_PID=$!
HOSTIP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[ -n "$HOSTIP" ] || HOSTIP=$GW
cp "$SF_SRC/tests/integration/net_probe.py" "$T_TMP/"
NRULE="{\"deny_out\": [\"0.0.0.0/0\"], \"allow_out\": [\"$NAME\"]}"

# run_probes OUT NETWORK PROBES [coordinator flags...]: one step, the probes' results in OUT
run_probes() {
    local out=$1 net=$2 probes=$3; shift 3
    cat >"$T_TMP/wf.json" <<EOF
{"name": "net", "steps": [{"id": "p", "run": "python3 net_probe.py", "files": {"net_probe.py": "net_probe.py"},
  "input": $probes, "network": $net, "timeout_s": 60}]}
EOF
    "$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --egress-dns "$NH_DNS" "$@" >"$out" 2>>"$T_TMP/coord.log"
    lines "$out"
}
# One python per run, not per check: the results one per line in OUT.lines.
lines() { jget "$1" "'\\n'.join(d['steps']['p']['output'])" >"$1.lines" 2>/dev/null; }
res() { sed -n "$(($2 + 1))p" "$1.lines"; }
# expect OUT INDEX PATTERN DESCRIPTION
expect() {
    local got
    got=$(res "$1" "$2" 2>/dev/null)
    if [[ "$got" == $3 ]]; then ok "$4"; else not_ok "$4 (got '$got', expected '$3')"; fi
}

# ---- network: true, the default policy ------------------------------------------
run_probes "$T_TMP/true.json" true "[
  {\"http\": \"http://$PUB:$NH_HTTP/x\"}, {\"tcp\": [\"$PUB\", $NH_ECHO]}, {\"udp\": [\"$PUB\", $NH_UDP]},
  {\"http\": \"http://$PRIV:$NH_HTTP/\"}, {\"tcp\": [\"127.0.0.1\", $REDIS_PORT]},
  {\"tcp\": [\"$HOSTIP\", $HPORT]}, {\"tcp\": [\"$GW\", $HPORT]},
  {\"http\": \"http://169.254.169.254/latest/meta-data/\"},
  {\"dns\": \"$NAME\"}, {\"http\": \"http://$NAME:$NH_HTTP/\"}, {\"dns\": \"nothere-$$.sandfleet.test\"},
  {\"tcp\": [\"$PRIV\", $NH_ECHO]}, {\"udp\": [\"$PRIV\", $NH_UDP]}]"
expect "$T_TMP/true.json" 0 "ok:pub" "network true: HTTP to a public address"
expect "$T_TMP/true.json" 1 "ok:echo:ping" "network true: a plain socket to a public address"
expect "$T_TMP/true.json" 2 "ok:echo:ping" "network true: UDP to a public address and back"
expect "$T_TMP/true.json" 3 "err:*" "network true: a private host (10.x) is out of reach"
expect "$T_TMP/true.json" 4 "err:ConnectionRefusedError" "network true: 127.0.0.1 is the sandbox's own (the host's redis is not there)"
expect "$T_TMP/true.json" 5 "err:*" "network true: the host's own address is out of reach"
expect "$T_TMP/true.json" 6 "err:*" "network true: the host's address on a public-looking link is out of reach"
expect "$T_TMP/true.json" 7 "err:*" "network true: 169.254.169.254 (cloud metadata) is out of reach"
expect "$T_TMP/true.json" 8 "ok:$PUB" "network true: DNS inside (resolv.conf -> the worker's resolver)"
expect "$T_TMP/true.json" 9 "ok:pub" "network true: HTTP by name"
expect "$T_TMP/true.json" 10 "err:gaierror" "network true: an unknown name does not resolve"
expect "$T_TMP/true.json" 11 "err:*" "network true: a plain socket to the private host is refused too"
expect "$T_TMP/true.json" 12 "err:TimeoutError" "network true: UDP to the private host is dropped"
check "nothing reached the listener on the host's addresses" [ ! -s "$T_TMP/house.log" ]
check "the private host saw no request" [ "$(grep -c hit "$NH_DIR/priv.out")" = 0 ]

run_probes "$T_TMP/off.json" false "[{\"http\": \"http://$PUB:$NH_HTTP/\"}, {\"dns\": \"$NAME\"}]"
expect "$T_TMP/off.json" 0 "err:*" "network false: nothing outside"
expect "$T_TMP/off.json" 1 "err:gaierror" "network false: no resolver"

# ---- DNS to any server is the sandbox's resolver; DNS over TCP ----------------------
run_probes "$T_TMP/dns.json" true "[{\"dnsat\": [\"192.0.2.53\", \"$NAME\"]}, {\"dnstcp\": \"$NAME\"},
  {\"dnsat\": [\"192.0.2.53\", \"$OTHER\"]}]"
expect "$T_TMP/dns.json" 0 "ok:$PUB" "DNS sent to any address is answered by the sandbox's resolver"
expect "$T_TMP/dns.json" 1 "ok:$PUB" "DNS over TCP works"
run_probes "$T_TMP/dnsc.json" "$NRULE" "[{\"dnsat\": [\"192.0.2.53\", \"$OTHER\"]}, {\"dnstcp\": \"$OTHER\"}]"
expect "$T_TMP/dnsc.json" 0 "ok:rcode5" "closed rules: a name not allowed is REFUSED, whatever server is asked"
expect "$T_TMP/dnsc.json" 1 "ok:rcode5" "closed rules: over TCP too"

# ---- rules by address ---------------------------------------------------------------
run_probes "$T_TMP/cidr.json" "{\"deny_out\": [\"0.0.0.0/0\"], \"allow_out\": [\"$PUB/32\"]}" "[
  {\"http\": \"http://$PUB:$NH_HTTP/\"}, {\"udp\": [\"$PUB\", $NH_UDP]}, {\"http\": \"http://$PRIV:$NH_HTTP/\"}]"
expect "$T_TMP/cidr.json" 0 "ok:pub" "allow_out CIDR re-opens what deny_out 0.0.0.0/0 closes"
expect "$T_TMP/cidr.json" 1 "ok:echo:ping" "allow_out CIDR: UDP too"
expect "$T_TMP/cidr.json" 2 "err:*" "allow_out cannot open the house (private host)"
run_probes "$T_TMP/deny.json" "{\"deny_out\": [\"$PUB/32\"]}" "[{\"http\": \"http://$PUB:$NH_HTTP/\"}]"
expect "$T_TMP/deny.json" 0 "err:*" "deny_out CIDR closes a public address"
run_probes "$T_TMP/only.json" "{\"allow_out\": [\"192.0.2.0/24\"]}" "[{\"tcp\": [\"$PUB\", $NH_ECHO]}]"
expect "$T_TMP/only.json" 0 "err:*" "allow_out alone means only those"

# ---- rules by name ------------------------------------------------------------------
run_probes "$T_TMP/name.json" "$NRULE" "[
  {\"dns\": \"$NAME\"}, {\"dns\": \"$OTHER\"}, {\"http\": \"http://$NAME:$NH_HTTP/\"},
  {\"http\": \"http://$PUB:$NH_HTTP/\", \"host\": \"$OTHER\"}, {\"tcp\": [\"$NAME\", $NH_ECHO]},
  {\"http\": \"http://$PUB:$NH_HTTP/\"}]"
expect "$T_TMP/name.json" 0 "ok:$PUB" "allow_out name: the name resolves"
expect "$T_TMP/name.json" 1 "err:gaierror" "allow_out name: other names do not resolve (no DNS way out)"
expect "$T_TMP/name.json" 2 "ok:pub" "allow_out name: HTTP naming it (Host) goes through"
expect "$T_TMP/name.json" 3 "err:*" "allow_out name: the same address naming another host is refused"
expect "$T_TMP/name.json" 4 "ok:echo:ping" "allow_out name: a plain socket to the address its resolver gave"
expect "$T_TMP/name.json" 5 "err:*" "allow_out name: HTTP to the bare address (Host is the IP) is refused"
run_probes "$T_TMP/noname.json" "$NRULE" "[{\"tcp\": [\"$PUB\", $NH_ECHO]}]"
expect "$T_TMP/noname.json" 0 "err:*" "allow_out name: a plain socket that never resolved the name is refused"
run_probes "$T_TMP/wild.json" "{\"deny_out\": [\"0.0.0.0/0\"], \"allow_out\": [\"*.sandfleet.test\"]}" "[
  {\"http\": \"http://$NAME:$NH_HTTP/\"}, {\"http\": \"http://priv-$$.sandfleet.test:$NH_HTTP/\"}]"
expect "$T_TMP/wild.json" 0 "ok:pub" "allow_out *.domain: a name below it"
expect "$T_TMP/wild.json" 1 "err:*" "allow_out *.domain: a name that resolves into the house stays out"

# ---- the operator's flags -----------------------------------------------------------
run_probes "$T_TMP/opallow.json" true "[{\"http\": \"http://$PRIV:$NH_HTTP/\"}, {\"http\": \"http://$PUB:$NH_HTTP/\"}]" \
    --egress-allow "${PRIV%.*}.0/24" --egress-deny "$PUB"
expect "$T_TMP/opallow.json" 0 "ok:priv" "--egress-allow CIDR opens a private block"
expect "$T_TMP/opallow.json" 1 "err:*" "--egress-deny closes a public address"
run_probes "$T_TMP/opname.json" true "[{\"http\": \"http://priv-$$.sandfleet.test:$NH_HTTP/\"}, {\"http\": \"http://$PRIV:$NH_HTTP/\"}]" \
    --egress-allow "priv-$$.sandfleet.test"
expect "$T_TMP/opname.json" 0 "ok:priv" "--egress-allow NAME opens that host by name"
expect "$T_TMP/opname.json" 1 "err:*" "--egress-allow NAME does not open its address to other names"
run_probes "$T_TMP/nonet.json" true "[]" --no-network
check "--no-network refuses a workflow with a network step (exit 2, reason)" \
    bash -c "[ ! -s '$T_TMP/nonet.json' ] && grep -q 'asks for network, which --no-network refuses' '$T_TMP/coord.log'"
"$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --egress-allow 10.0.0.1/8 >/dev/null 2>"$T_TMP/bad.log"
check "a bad --egress-allow is refused with its reason" grep -q "egress-allow .10.0.0.1/8.: not an IP" "$T_TMP/bad.log"

# ---- two sandboxes, no path between them ----------------------------------------------
cat >"$T_TMP/two.json" <<EOF
{"name": "two", "steps": [
 {"id": "a", "run": "python3 net_probe.py", "files": {"net_probe.py": "net_probe.py"}, "network": true,
  "input": [{"listen": 7777, "wait": 2}]},
 {"id": "b", "run": "sleep 0.2; python3 net_probe.py", "files": {"net_probe.py": "net_probe.py"}, "network": true,
  "input": [{"tcp": ["127.0.0.1", 7777]}, {"tcp": ["$HOSTIP", 7777]}, {"tcp": ["$GW", 7777]}]}]}
EOF
"$SF_BIN/sandfleet-coordinator" run "$T_TMP/two.json" --concurrency 2 --egress-dns "$NH_DNS" >"$T_TMP/two.out" 2>>"$T_TMP/coord.log"
check "another sandbox's port is out of reach (loopback, host addresses)" \
    jtrue "$T_TMP/two.out" "all(r.startswith('err:') for r in d['steps']['b']['output']) and d['steps']['a']['output'] == ['err:TimeoutError']"

# ---- a serving agent (warm, "serve": "lines") keeps its step's rules -------------------
SERVE='python3 -c \"import sys, subprocess\nfor l in sys.stdin: print(subprocess.run([sys.executable, sys.argv[1]], input=l, capture_output=True, text=True).stdout.strip(), flush=True)\" net_probe.py'
cat >"$T_TMP/warm.json" <<EOF
{"name": "warm", "steps": [
 {"id": "closed", "map": true, "serve": "lines", "files": {"net_probe.py": "net_probe.py"}, "run": "$SERVE",
  "network": {"deny_out": ["$PUB/32"]}, "input": [[{"http": "http://$PUB:$NH_HTTP/"}]]},
 {"id": "open", "map": true, "serve": "lines", "files": {"net_probe.py": "net_probe.py"}, "run": "$SERVE",
  "network": true, "input": [[{"http": "http://$PUB:$NH_HTTP/"}]]}]}
EOF
"$SF_BIN/sandfleet-coordinator" run "$T_TMP/warm.json" --egress-dns "$NH_DNS" >"$T_TMP/warm.out" 2>>"$T_TMP/coord.log"
check "a serving agent keeps its step's rules (denied) and network (allowed)" \
    jtrue "$T_TMP/warm.out" "d['steps']['closed']['output'][0][0].startswith('err:') and d['steps']['open']['output'][0][0] == 'ok:pub'"

# ---- a worker through Redis ------------------------------------------------------------
"$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" --queue "net$$" --concurrency 2 --egress-dns "$NH_DNS" \
    >"$T_TMP/worker.log" 2>&1 &
WK_PID=$!
cat >"$T_TMP/wf.json" <<EOF
{"name": "net", "steps": [{"id": "p", "run": "python3 net_probe.py", "files": {"net_probe.py": "net_probe.py"},
  "input": [{"http": "http://$NAME:$NH_HTTP/"}, {"http": "http://$PRIV:$NH_HTTP/"}], "network": true, "timeout_s": 60}]}
EOF
timeout 120 "$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --broker "$REDIS_URL" --queue "net$$" \
    >"$T_TMP/redis.json" 2>>"$T_TMP/coord.log"
lines "$T_TMP/redis.json"
expect "$T_TMP/redis.json" 0 "ok:pub" "through Redis: a worker's network step reaches the internet by name"
expect "$T_TMP/redis.json" 1 "err:*" "through Redis: and not the private host"
kill "$WK_PID"; wait "$WK_PID" 2>/dev/null
"$SF_BIN/sandfleet-worker" --broker "$REDIS_URL" --queue "net$$" --no-network >>"$T_TMP/worker.log" 2>&1 &
WK_PID=$!
timeout 120 "$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --broker "$REDIS_URL" --queue "net$$" \
    >"$T_TMP/redis2.json" 2>>"$T_TMP/coord.log"
check "through Redis: a --no-network worker refuses the step with the reason, no retry" \
    jtrue "$T_TMP/redis2.json" "d['steps']['p']['status'] == 'failed' and 'no-network' in d['steps']['p']['error'] and d['steps']['p']['attempts'] == 1"
kill "$WK_PID"; wait "$WK_PID" 2>/dev/null; WK_PID=

[ "$T_FAIL" -eq 0 ] || { echo "--- coordinator log"; tail -30 "$T_TMP/coord.log"; echo "--- worker log"; tail -20 "$T_TMP/worker.log"; }
t_done
