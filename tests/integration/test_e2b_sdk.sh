#!/usr/bin/env bash
# E2B both ways, with no mock: the OFFICIAL `e2b` Python SDK (from PyPI,
# unpatched) runs the note's orchestrator against `sandfleet-worker
# --e2b-listen`, then sandfleet's own C e2b backend runs the example
# workflows against the same server and must give the same outputs as the
# local backend. Also: wrong keys, unknown sandboxes (502), the step timeout
# enforced by the client, no sandbox left behind, many clients at once.
# The real E2B cloud is used only when E2B_API_KEY is set without
# E2B_API_URL; otherwise that part says "skipped".
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/template.sh"
. "$(dirname "$0")/../lib/e2b_venv.sh"
W="$SF_BIN/sandfleet-worker"
C="$SF_BIN/sandfleet-coordinator"
CLOUD_KEY=${E2B_API_KEY:-}
CLOUD=0; [ -n "$CLOUD_KEY" ] && [ -z "${E2B_API_URL:-}" ] && CLOUD=1
unset E2B_API_KEY E2B_API_URL E2B_SANDBOX_URL E2B_DOMAIN

# --- the SDK, in a venv cached in the build tree -----------------------------
VENV=$(sf_e2b_venv)
check "the official e2b SDK is installed from PyPI ($("$VENV/bin/pip" show e2b 2>/dev/null | sed -n 's/^Version: //p'))" [ -n "$VENV" ]
PY="$VENV/bin/python"

# --- a template (debootstrap minbase, cached across runs) -------------------------
t0=$(date +%s)
TPL=$(sf_minbase_template)
check "a template root file system (debootstrap minbase, cached; $(( $(date +%s) - t0 )) s this run)" [ -n "$TPL" ]

# --- the server -----------------------------------------------------------------
KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$W" --e2b-listen "127.0.0.1:$PORT" --e2b-api-key "$KEY" ${TPL:+--template "tmin=$TPL"} \
  --template-store "$T_TMP/store" >"$T_TMP/worker.log" 2>&1 &
WPID=$!
t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
check "worker serves /health on --e2b-listen" curl -sf "http://127.0.0.1:$PORT/health" -o /dev/null
URL=http://127.0.0.1:$PORT
export E2B_API_KEY=$KEY E2B_API_URL=$URL E2B_SANDBOX_URL=$URL

api() { curl -s -o "$T_TMP/body" -w '%{http_code}' -H "X-API-Key: $KEY" "$@"; }

# --- 1. the note's orchestrator through the official SDK -----------------------
"$PY" "$SF_SRC/tests/integration/e2b_orchestrator.py" >"$T_TMP/orch.out" 2>&1; rc=$?
sed 's/^/    /' "$T_TMP/orch.out"
check "SDK orchestrator: every check passed" [ $rc -eq 0 ]
check "SDK orchestrator: ran its checks" [ "$(grep -c '^ok - ' "$T_TMP/orch.out")" -ge 30 ]

# --- 1b. the SDK's whole public surface, sync and async ------------------------
echo "host file the sandbox must not reach" > "$T_TMP/host-marker"
SF_TEMPLATE=${TPL:+tmin} SF_HOST_MARKER="$T_TMP/host-marker" \
  "$PY" "$SF_SRC/tests/integration/e2b_surface.py" >"$T_TMP/surface.out" 2>&1; rc=$?
sed 's/^/    /' "$T_TMP/surface.out"
check "SDK surface: every check passed" [ $rc -eq 0 ]
check "SDK surface: ran its checks" [ "$(grep -c '^ok - ' "$T_TMP/surface.out")" -ge 104 ]
check "the host file is untouched" [ "$(cat "$T_TMP/host-marker")" = "host file the sandbox must not reach" ]
sed -n 's/^not served: //p' "$T_TMP/surface.out" | sort > "$T_TMP/not-served.test"
sed -n '/<!-- not-served:begin -->/,/<!-- not-served:end -->/s/^- `\([^`]*\)`.*/\1/p' \
  "$SF_SRC/docs/e2b.md" | sort > "$T_TMP/not-served.docs"
echo "    not served (test):  $(tr '\n' ' ' < "$T_TMP/not-served.test")"
check "what is not served is exactly what docs/e2b.md lists" \
  bash -c "[ -s '$T_TMP/not-served.test' ] && diff '$T_TMP/not-served.test' '$T_TMP/not-served.docs'"

# envd routing by Host ("49983-<id>.<domain>", E2B's direct URL form) and 502s
code=$(api -X POST "$URL/v2/sandboxes" -H 'Content-Type: application/json' -d '{"templateID":"base"}')
SID=$(jget "$T_TMP/body" 'd["sandboxID"]'); TOK=$(jget "$T_TMP/body" 'd["envdAccessToken"]')
check "POST /v2/sandboxes creates (201) with an envd token" bash -c "[ $code = 201 ] && [ -n '$TOK' ]"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: 49983-$SID.sandfleet.local" -H "X-Access-Token: $TOK" \
  -X POST "$URL/files?path=/tmp/h.txt" -H 'Content-Type: application/octet-stream' --data-binary 'by-host')
check "envd routed by Host 49983-<id>.<domain>: octet-stream upload" [ "$code" = 200 ]
got=$(curl -s -H "E2b-Sandbox-Id: $SID" -H "X-Access-Token: $TOK" "$URL/files?path=/tmp/h.txt")
check "envd routed by E2b-Sandbox-Id header: download" [ "$got" = by-host ]
code=$(curl -s -o /dev/null -w '%{http_code}' -H "E2b-Sandbox-Id: $SID" -H "X-Access-Token: wrong" "$URL/files?path=/tmp/h.txt")
check "envd: wrong X-Access-Token is 401" [ "$code" = 401 ]
code=$(api -X DELETE "$URL/sandboxes/$SID")
check "DELETE /sandboxes/{id} is 204" [ "$code" = 204 ]
code=$(curl -s -o "$T_TMP/body" -w '%{http_code}' -H "E2b-Sandbox-Id: $SID" -H "X-Access-Token: $TOK" "$URL/health")
check "envd of a killed sandbox: 502 as from E2B's proxy" bash -c "[ $code = 502 ] && grep -q 'The sandbox was not found' '$T_TMP/body'"
code=$(api -X DELETE "$URL/sandboxes/$SID")
check "DELETE of a killed sandbox is 404" [ "$code" = 404 ]
code=$(api "$URL/sandboxes/NOT_VALID")
check "an invalid sandbox id is 400" [ "$code" = 400 ]

# many clients and sandboxes at once through the SDK
cat > "$T_TMP/many.py" <<'PY'
import concurrent.futures as cf
from e2b import Sandbox
def one(i):
    sb = Sandbox.create()
    try:
        sb.files.write("/tmp/i", str(i))
        r = sb.commands.run("sleep 0.3; cat /tmp/i")
        return r.stdout == str(i)
    finally:
        sb.kill()
with cf.ThreadPoolExecutor(12) as ex:
    ok = list(ex.map(one, range(24)))
print(sum(ok))
PY
n=$("$PY" "$T_TMP/many.py" 2>"$T_TMP/many.err")
check "24 sandboxes from 12 SDK threads at once, each sees its own file" [ "$n" = 24 ]

# --- 2. sandfleet's C e2b backend against the same server ---------------------
for ex in analyze-report fanout shared; do
  "$C" run "$SF_SRC/examples/$ex/workflow.json" --sandbox e2b --e2b-template base \
    --output "$T_TMP/$ex.e2b.json" 2>"$T_TMP/$ex.e2b.err"; rc=$?
  check "C backend: $ex succeeds with --sandbox e2b" [ $rc -eq 0 ]
  "$C" run "$SF_SRC/examples/$ex/workflow.json" --sandbox local --output "$T_TMP/$ex.local.json" 2>/dev/null
  check "C backend: $ex gives the same outputs as --sandbox local" python3 - "$T_TMP/$ex.e2b.json" "$T_TMP/$ex.local.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
strip = lambda d: {k: (v["status"], v["output"], v["exit_code"]) for k, v in d["steps"].items()}
sys.exit(0 if a["status"] == b["status"] == "succeeded" and strip(a) == strip(b) else 1)
PY
done

cat > "$T_TMP/slow.json" <<'J'
{"name": "slow", "steps": [
  {"id": "nap", "run": "echo started >&2; sleep 30", "timeout_s": 1},
  {"id": "bad", "run": "echo not-json; exit 0"},
  {"id": "fail", "run": "echo boom >&2; exit 4"}
]}
J
t0=$(date +%s%N)
"$C" run "$T_TMP/slow.json" --sandbox e2b --output "$T_TMP/slow.out" 2>"$T_TMP/slow.err"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "C backend: a failed workflow exits 1" [ $rc -eq 1 ]
st=$(jget "$T_TMP/slow.out" 'd["steps"]["nap"]["status"]')
check "C backend: step timeout enforced (status $st, in ${ms} ms)" bash -c "[ '$st' = timeout ] && [ $ms -lt 15000 ]"
check "C backend: non-zero exit reported with its code" jtrue "$T_TMP/slow.out" 'd["steps"]["fail"]["exit_code"] == 4'
check "C backend: non-JSON stdout is a clear error" grep -q "not JSON" "$T_TMP/slow.out"
code=$(api "$URL/v2/sandboxes")
check "no sandbox left behind by any run (list is empty)" bash -c "[ $code = 200 ] && [ \"\$(cat '$T_TMP/body')\" = '[]' ]"

E2B_API_KEY=e2b_0000000000000000000000000000000000000000 "$C" run "$SF_SRC/examples/fanout/workflow.json" \
  --sandbox e2b --output "$T_TMP/badkey.json" 2>"$T_TMP/badkey.err"; rc=$?
check "C backend: wrong key fails the run" [ $rc -ne 0 ]
check "C backend: wrong key is a clear 401 message" grep -q "401 unauthorized.*check E2B_API_KEY" \
  "$T_TMP/badkey.json" "$T_TMP/badkey.err"
E2B_API_URL=http://127.0.0.1:1 "$C" run "$SF_SRC/examples/fanout/workflow.json" --sandbox e2b \
  --output "$T_TMP/down.json" 2>"$T_TMP/down.err"; rc=$?
check "C backend: an unreachable API fails the run clearly" bash -c \
  "[ $rc -ne 0 ] && grep -qi 'connect' '$T_TMP/down.json' '$T_TMP/down.err'"

kill -TERM $WPID; wait $WPID; rc=$?
check "worker exits 0 on SIGTERM" [ $rc -eq 0 ]

# --- 3. the real E2B cloud, only with a real key ---------------------------------
if [ $CLOUD -eq 1 ]; then
  unset E2B_API_URL E2B_SANDBOX_URL
  export E2B_API_KEY=$CLOUD_KEY
  "$PY" "$SF_SRC/tests/integration/e2b_orchestrator.py" >"$T_TMP/cloud.out" 2>&1
  check "E2B cloud: SDK orchestrator" [ $? -eq 0 ]
  "$C" run "$SF_SRC/examples/analyze-report/workflow.json" --sandbox e2b --output "$T_TMP/cloud.json"
  check "E2B cloud: C backend runs analyze-report" [ $? -eq 0 ]
else
  echo "ok - E2B cloud run skipped (set E2B_API_KEY, without E2B_API_URL, to run it) # SKIP"
fi
t_done
