#!/bin/bash
# sandfleet-coordinator serve: submissions over HTTP and the sf:submissions
# stream, the JSON API, and the status page in headless Chromium.
#  1. POST /api/runs {"workflow", "files", "input"} -> 202 + run id; GET
#     /api/runs/{id} ends "succeeded" with the result document (map outputs);
#  2. an invalid submission -> 400 listing the problems;
#  3. a stream submission with reply_to: the document is stored at
#     sf:run:{id}:doc and XADDed to the reply stream; the entry is acked; a
#     broken one gets a "rejected" document instead of vanishing;
#  4. the page (embedded in the binary), driven in headless Chromium through
#     the DevTools protocol (tests/lib/cdp.py): it asks for the API token
#     (refusing a wrong one), then shows the run as succeeded with per-step
#     progress, the worker and the queue; a reload keeps the token (this
#     tab's sessionStorage, nowhere else), a new browser context asks again;
#     a client token given once in the link's fragment sees only its own run
#     and no fleet; a screenshot is kept in the build dir (serve-ui.png);
#  5. SIGTERM: exit 0 after the drain.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
if ! command -v chromium >/dev/null; then
    apt-get install -y chromium >/dev/null 2>&1 || { echo "FAIL: chromium is missing and cannot be installed" >&2; exit 1; }
fi
fleet_init serve
PORT=$(redis_free_port)
H="http://127.0.0.1:$PORT"
OUT=${SF_BUILD:-$T}
worker_start w1 --concurrency 2
ADMIN="admin-$$-$RANDOM-0123456789abcdef"
ALICE="alice-$$-$RANDOM-0123456789abcdef"
printf 'alice client %s\n' "$ALICE" >"$T/tokens"
chmod 600 "$T/tokens"
SANDFLEET_API_TOKEN="$ADMIN" "$SF_BIN/sandfleet-coordinator" serve --broker "$REDIS_URL" --http "127.0.0.1:$PORT" \
    --id serve-test --api-token-file "$T/tokens" >>"$T/serve.log" 2>&1 &
SPID=$!
trap 'kill -9 $SPID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 'curl -sf "$H/readyz" >/dev/null' || fail "serve did not become ready"
AUTH=(-H "Authorization: Bearer $ADMIN")

# --- 1. HTTP submission ---------------------------------------------------------------------
python3 - "$T/sub.json" <<'PY'
import json, sys
wf = {"name": "ui-demo", "steps": [
    {"id": "plan", "run": "python3 plan.py", "files": {"plan.py": "agents/plan.py"}},
    {"id": "each", "run": "python3 square.py", "files": {"square.py": "agents/square.py"}, "needs": ["plan"], "map": True},
    {"id": "sum", "run": "python3 -c 'import json,sys; print(sum(json.load(sys.stdin)))'", "needs": ["each"]}]}
files = {"agents/plan.py": "import json,sys; d=json.load(sys.stdin); print(json.dumps(list(range(d['n']))))",
         "agents/square.py": "import json,sys; x=json.load(sys.stdin); print(x*x)"}
json.dump({"workflow": wf, "files": files, "input": {"n": 4}}, open(sys.argv[1], "w"))
PY
code=$(curl -s -o "$T/post.json" -w '%{http_code}' -XPOST --data-binary @"$T/sub.json" "${AUTH[@]}" "$H/api/runs")
[ "$code" = 202 ] || fail "POST /api/runs: $code $(cat "$T/post.json")"
RUN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/post.json")
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$1" 2>/dev/null; }
wait_for 30 'curl -sf "${AUTH[@]}" "$H/api/runs/$RUN" >"$T/run.json" && [ "$(state "$T/run.json")" = succeeded ]' \
    || fail "run $RUN did not succeed: $(cat "$T/run.json")"
python3 - "$T/run.json" <<'PY' || fail "result document of the HTTP run is wrong: $(cat "$T/run.json")"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["result"]
assert r["status"] == "succeeded", r
assert r["steps"]["each"]["output"] == [0, 1, 4, 9], r["steps"]["each"]
assert r["steps"]["sum"]["output"] == 14, r["steps"]["sum"]
assert [(s["id"], s["done"], s["total"]) for s in d["steps"]] == [("plan", 1, 1), ("each", 4, 4), ("sum", 1, 1)], d["steps"]
PY
[ "$(rcli HGET "sf:run:$RUN" status)" = succeeded ] || fail "run state hash not final"

# --- 2. invalid submission --------------------------------------------------------------------
code=$(curl -s -o "$T/bad.json" -w '%{http_code}' -XPOST "${AUTH[@]}" -d '{"workflow": {"name": "x", "steps": [{"id": "a", "run": "cat", "files": {"a.py": "nope.py"}}, {"id": "b"}]}, "files": {}}' "$H/api/runs")
[ "$code" = 400 ] || fail "invalid submission: HTTP $code"
grep -q "file 'nope.py' is not in the submission" "$T/bad.json" || fail "400 lacks the missing file: $(cat "$T/bad.json")"
grep -q "step 'b': missing 'run'" "$T/bad.json" || fail "400 lacks the missing run: $(cat "$T/bad.json")"

# --- 3. stream submissions --------------------------------------------------------------------
sid=$(rcli XADD sf:submissions '*' workflow '{"name": "streamed", "steps": [{"id": "echo", "run": "cat", "input": {"via": "stream"}}]}' reply_to sf:reply:itest-runs)
reply=$(rcli XREAD BLOCK 20000 STREAMS sf:reply:itest-runs 0-0)
echo "$reply" | grep -q "sub-$sid" || fail "no reply for the stream submission: $reply"
echo "$reply" | grep -q '"status":"succeeded"' || fail "stream run did not succeed: $reply"
rcli GET "sf:run:sub-$sid:doc" | grep -q '"output":{"via":"stream"}' || fail "document not stored at sf:run:sub-$sid:doc"
wait_for 5 '[ "$(rcli XPENDING sf:submissions coordinators | head -1)" = 0 ]' || fail "stream submission not acked"
bid=$(rcli XADD sf:submissions '*' workflow '{"steps": "no"}' reply_to sf:reply:itest-runs)
wait_for 10 'rcli GET "sf:run:sub-$bid:doc" | grep -q rejected' || fail "a broken stream submission was not rejected with a document"

# --- 4. the page in Chromium -------------------------------------------------------------------
code=$(curl -s -o "$T/alice.json" -w '%{http_code}' -XPOST -H "Authorization: Bearer $ALICE" \
    -d '{"workflow": {"name": "alices", "steps": [{"id": "hers", "run": "cat", "input": 1}]}}' "$H/api/runs")
[ "$code" = 202 ] || fail "alice's POST: $code $(cat "$T/alice.json")"
ARUN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/alice.json")
wait_for 30 'curl -sf -H "Authorization: Bearer $ALICE" "$H/api/runs/$ARUN" >"$T/arun.json" && [ "$(state "$T/arun.json")" = succeeded ]' \
    || fail "alice's run did not succeed: $(cat "$T/arun.json")"
rm -f "$OUT/serve-ui.png"
python3 - "$H" "$RUN" "$ARUN" "$ADMIN" "$ALICE" "$OUT/serve-ui.png" "$T/chrome" "$T/chromium.log" <<'PY' \
    || fail "the page in Chromium (see above)"
import os, sys
sys.path.insert(0, os.path.join(os.environ["SF_SRC"], "tests/lib"))
from cdp import Chrome
H, RUN, ARUN, ADMIN, ALICE, PNG, PROFILE, LOG = sys.argv[1:]
row = lambda run, state="succeeded": f"document.querySelector('tr.run[data-run-id=\"{run}\"][data-state=\"{state}\"]')"
def state(pg):
    return pg.eval("JSON.stringify({conn: document.getElementById('conn').textContent, "
                   "login: document.getElementById('login').hidden, why: document.getElementById('login-why').textContent, "
                   "runs: [...document.querySelectorAll('tr.run')].map(r => r.dataset.runId + ':' + r.dataset.state), "
                   "workers: [...document.querySelectorAll('tr.worker')].map(r => r.dataset.workerId)})")
with Chrome(PROFILE, open(LOG, "ab")) as c:
  p = q = None
  try:
    p = c.new_page()
    p.goto(H + "/")
    p.wait("!document.getElementById('login').hidden")            # asks for the token
    assert p.eval("document.querySelector('main').hidden"), "data shown before sign-in"
    p.type_into("#token", "not-the-token-0123456789")
    p.click("#login button[type=submit]")
    p.wait("document.getElementById('login-why').textContent.includes('refused')")
    p.type_into("#token", ADMIN)
    p.click("#login button[type=submit]")
    p.wait(row(RUN) + " && document.querySelector('[data-worker-id=\"w1\"]') && " + row(ARUN))
    assert p.eval("!!document.querySelector('[data-step=\"each\"][data-state=\"succeeded\"]')"), "no per-step state"
    assert "4/4 succeeded" in p.eval("document.body.innerText"), "no per-step progress (4/4)"
    assert p.eval("document.getElementById('conn').className") == "pill ok", "the page did not reach the API"
    assert p.eval("sessionStorage.getItem('sandfleet-api-token')") == ADMIN
    assert p.eval("localStorage.length") == 0 and ADMIN not in p.eval("location.href + document.cookie")
    p.reload()                                                     # asked once: the tab keeps it
    p.wait(row(RUN))
    assert p.eval("document.getElementById('login').hidden"), "asked again after a reload"
    p.screenshot(PNG)
    q = c.new_page()                                               # another browser context
    q.goto(H + "/")
    q.wait("!document.getElementById('login').hidden")
    q.goto("about:blank")
    q.goto(H + "/#token=" + ALICE)                                 # a client, via the link's fragment
    q.wait(row(ARUN))
    assert not q.eval(row(RUN)), "a client token sees another's run"
    assert q.eval("document.getElementById('queue-section').hidden"), "a client token sees the fleet"
    assert "#token" not in q.eval("location.href"), "the token stayed in the address bar"
  except Exception:
    for pg in (p, q):
        if pg: print("page state:", state(pg), file=sys.stderr)
    raise
print("page: sign-in, refusal, reload, new context and client scope ok")
PY
[ "$(stat -c %s "$OUT/serve-ui.png" 2>/dev/null || echo 0)" -gt 10000 ] || fail "no screenshot at $OUT/serve-ui.png"
echo "screenshot: $OUT/serve-ui.png"
! grep -q -e "$ADMIN" -e "$ALICE" "$T/serve.log" || fail "a token is in serve's log"

# --- 5. drain -------------------------------------------------------------------------------------
kill -TERM $SPID
wait $SPID
rc=$?
[ $rc = 0 ] || fail "serve exited $rc after SIGTERM"
echo "PASS"
