#!/usr/bin/env bash
# The sandbox network through the official E2B SDK against `sandfleet-worker
# --e2b-listen` (tests/integration/e2b_net.py): egress of a default
# Sandbox.create() (the internet yes, the worker's own API no), network
# options and update_network, and get_host(port) — HTTP, streaming, POST
# bodies, WebSocket, two sandboxes on one port, a closed port,
# allow_public_traffic; network.rules (headers injected into HTTPS by the
# egress path, from the worker's secrets). Test hosts of our own
# (tests/lib/nethost.sh); the server listens on this host's address on the
# "pub" test link, a public-looking address the sandboxes must still not
# reach. The "pub" host serves HTTPS with a test CA the worker trusts.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/nethost.sh"
. "$(dirname "$0")/../lib/e2b_venv.sh"
t_cleanup_hooks+=("nethost_cleanup")
unset E2B_API_KEY E2B_API_URL E2B_SANDBOX_URL E2B_DOMAIN

VENV=$(sf_e2b_venv)
check "the official e2b SDK is installed" [ -n "$VENV" ]

NAME=pub-$$.sandfleet.test
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=test CA $$" \
    -keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$NAME" \
    -keyout "$T_TMP/srv.key" -out "$T_TMP/srv.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:%s\n' "$NAME" >"$T_TMP/ext"
openssl x509 -req -in "$T_TMP/srv.csr" -CA "$T_TMP/ca.pem" -CAkey "$T_TMP/ca.key" -CAcreateserial \
    -days 2 -extfile "$T_TMP/ext" -out "$T_TMP/srv.pem" >/dev/null 2>&1
nethost_add_tls pub 198.51.100 "$T_TMP/srv.pem" "$T_TMP/srv.key" || exit 1
nethost_add priv "10.213.$((RANDOM % 250))" || exit 1
nethost_dns "$NAME=${NH_IP[pub]}" || exit 1
# The secret network.rules may name as ${e2b.secrets.sf-test-key}.
SECRET=sk-e2b-$$-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
HOST=${NH_GW[pub]}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DOMAIN=sbx-$$.sandfleet.test
SANDFLEET_SECRET_SF_TEST_KEY=$SECRET SSL_CERT_FILE=$T_TMP/ca.pem "$SF_BIN/sandfleet-worker" --e2b-listen "$HOST:$PORT" --e2b-api-key "$KEY" --e2b-domain "$DOMAIN" \
  --egress-dns "$NH_DNS" >"$T_TMP/worker.log" 2>&1 &
WPID=$!
t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
for _ in $(seq 100); do curl -sf "http://$HOST:$PORT/health" >/dev/null && break; sleep 0.1; done
check "the E2B server answers on $HOST:$PORT" curl -sf "http://$HOST:$PORT/health" -o /dev/null

export E2B_API_KEY=$KEY E2B_API_URL=http://$HOST:$PORT E2B_SANDBOX_URL=http://$HOST:$PORT
SF_API_HOST=$HOST SF_API_PORT=$PORT SF_DOMAIN=$DOMAIN SF_PUB=${NH_IP[pub]} SF_PRIV=${NH_IP[priv]} \
  SF_NAME=$NAME SF_HTTPS=$NH_HTTPS SF_SECRET_SHA=$(printf 'Bearer %s' "$SECRET" | sha256sum | cut -d' ' -f1) \
  SF_SERVER="$SF_SRC/tests/integration/e2b_net_server.py" \
  timeout 300 "$VENV/bin/python" "$SF_SRC/tests/integration/e2b_net.py" >"$T_TMP/net.out" 2>&1
rc=$?
sed 's/^/    /' "$T_TMP/net.out"
check "the SDK's network checks all passed" [ $rc -eq 0 ]
check "and ran" [ "$(grep -c '^ok - ' "$T_TMP/net.out")" -ge 30 ]
check "the private host saw no request" [ "$(grep -c hit "$NH_DIR/priv.out")" = 0 ]
check "network.rules: the test server got the worker's secret" grep -qx "auth Bearer $SECRET" "$NH_DIR/pub.out"
check "... which is nowhere in the SDK's output or the worker's log" \
    bash -c "! grep -q '$SECRET' '$T_TMP/net.out' '$T_TMP/worker.log'"
[ "$T_FAIL" -eq 0 ] || tail -30 "$T_TMP/worker.log"
t_done
