#!/bin/bash
# Secrets the agent never sees (issue 15, docs/security.md "Network"): a
# step's "inject" makes the egress path end TLS to the named host with the
# worker's own CA and add the header there. A test HTTPS server in its own
# network namespace, with a certificate from a test CA the worker (not the
# sandbox) is told to trust, logs the Authorization it receives. The key
# must reach it, and must be found nowhere the agent or the run can see.
set -u
source "$SF_SRC/tests/lib/testlib.sh"
source "$SF_SRC/tests/lib/nethost.sh"
t_cleanup_hooks+=("nethost_cleanup")

NAME=api-$$.sandfleet.test OTHER=plain-$$.sandfleet.test
# A test CA and a server certificate for both names.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=test CA $$" \
    -keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$NAME" \
    -keyout "$T_TMP/srv.key" -out "$T_TMP/srv.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:%s,DNS:%s\n' "$NAME" "$OTHER" >"$T_TMP/ext"
openssl x509 -req -in "$T_TMP/srv.csr" -CA "$T_TMP/ca.pem" -CAkey "$T_TMP/ca.key" -CAcreateserial \
    -days 2 -extfile "$T_TMP/ext" -out "$T_TMP/srv.pem" >/dev/null 2>&1
check "a test CA and a server certificate" [ -s "$T_TMP/srv.pem" ]
nethost_add_tls api 198.51.100 "$T_TMP/srv.pem" "$T_TMP/srv.key" || exit 1
nethost_dns "$NAME=${NH_IP[api]}" "$OTHER=${NH_IP[api]}" || exit 1

KEY=sk-test-$$-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SANDFLEET_SECRET_TEST_API_KEY=$KEY
cp "$SF_SRC/tests/integration/inject_agent.py" "$T_TMP/"
cat >"$T_TMP/wf.json" <<EOF
{"name": "inject", "steps": [{"id": "call", "run": "python3 inject_agent.py",
  "files": {"inject_agent.py": "inject_agent.py"}, "timeout_s": 60,
  "input": {"url": "https://$NAME:$NH_HTTPS/v1/chat", "other": "https://$OTHER:$NH_HTTPS/"},
  "network": {"deny_out": ["0.0.0.0/0"], "allow_out": ["$NAME", "$OTHER"]},
  "inject": {"$NAME": {"headers": {"Authorization": "Bearer \${secret:TEST_API_KEY}", "X-Org": "sandfleet"}}}}]}
EOF
# The worker trusts the test CA for servers (SSL_CERT_FILE: OpenSSL's own
# variable for the trust store); the sandbox does not.
SSL_CERT_FILE=$T_TMP/ca.pem "$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" \
    --egress-dns "$NH_DNS" --log-level debug >"$T_TMP/out.json" 2>"$T_TMP/coord.log"
check "the run succeeded" jtrue "$T_TMP/out.json" "d['status'] == 'succeeded'"
sha=$(printf 'Bearer %s' "$KEY" | sha256sum | cut -d' ' -f1)
check "the injected Authorization reached the server" grep -qx "auth Bearer $KEY" "$NH_DIR/api.out"
check "... in place of the one the agent sent" \
    jtrue "$T_TMP/out.json" "d['steps']['call']['output']['injected']['headers']['authorization'] == 'sha256:$sha'"
check "... with the rule's other header, the agent's own headers kept" \
    jtrue "$T_TMP/out.json" "(lambda h: h['x-org'] == 'sandfleet' and h['x-agent'] == 'yes' and h['connection'] == 'close')(d['steps']['call']['output']['injected']['headers'])"
check "3 MiB up and 4 MiB down through the intercepted path, intact, with the key" \
    jtrue "$T_TMP/out.json" "(lambda b: b['sent_ok'] and b['got'] == 4 << 20 and b['auth'] == '$sha')(d['steps']['call']['output']['big'])"
check "the agent verified the certificate it got (the worker's CA is in its trust store)" \
    jtrue "$T_TMP/out.json" "isinstance(d['steps']['call']['output']['injected'], dict)"
check "a host without rules is not intercepted: its request keeps the agent's header" \
    jtrue "$T_TMP/out.json" "d['steps']['call']['output']['plain']['headers']['authorization'] == 'sha256:' + __import__('hashlib').sha256(b'Bearer agent-made-up').hexdigest()"
check "the agent's environment points at the worker's CA" \
    jtrue "$T_TMP/out.json" "(lambda e: e['SSL_CERT_FILE'] == '/run/sandfleet/ca-bundle.crt' and e['REQUESTS_CA_BUNDLE'] == e['SSL_CERT_FILE'] and e['NODE_EXTRA_CA_CERTS'] == '/run/sandfleet/ca.crt')(d['steps']['call']['output']['env'])"
check "the key is in no environment variable of the agent" \
    jtrue "$T_TMP/out.json" "not any('$KEY' in k or '$KEY' in v for k, v in d['steps']['call']['output']['env'].items())"
check "the key is nowhere in the result document or the logs" \
    bash -c "! grep -q '$KEY' '$T_TMP/out.json' '$T_TMP/coord.log'"

# The server must prove it is that host: with the worker not trusting the
# test CA, the request never leaves, and the key goes nowhere.
before=$(grep -c '^auth ' "$NH_DIR/api.out")
"$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --egress-dns "$NH_DNS" >"$T_TMP/out2.json" 2>>"$T_TMP/coord.log"
check "an unverifiable server gets no request (the agent's call fails)" \
    jtrue "$T_TMP/out2.json" "str(d['steps']['call']['output']['injected']).startswith('err:')"
check "... and no key" [ "$(grep -c '^auth Bearer sk-test' "$NH_DIR/api.out")" = 1 ]
check "... the plain host still works" \
    jtrue "$T_TMP/out2.json" "isinstance(d['steps']['call']['output']['plain'], dict)"
[ "$(grep -c '^auth ' "$NH_DIR/api.out")" -ge "$before" ]

# A worker without the secret says which one, and runs nothing.
unset SANDFLEET_SECRET_TEST_API_KEY
"$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --egress-dns "$NH_DNS" >"$T_TMP/out3.json" 2>>"$T_TMP/coord.log"
check "a missing secret fails the step naming it" \
    jtrue "$T_TMP/out3.json" "'TEST_API_KEY' in d['steps']['call']['error'] and d['steps']['call']['status'] == 'failed'"
SANDFLEET_SECRET_TEST_API_KEY=$KEY "$SF_BIN/sandfleet-coordinator" run "$T_TMP/wf.json" --sandbox process \
    >"$T_TMP/out4.json" 2>>"$T_TMP/coord.log"
check "the process backend refuses inject (nothing could add the header)" \
    jtrue "$T_TMP/out4.json" "'inject' in d['steps']['call']['error']"
[ "$T_FAIL" -eq 0 ] || { tail -20 "$T_TMP/coord.log"; cat "$T_TMP/out.json"; }
t_done
