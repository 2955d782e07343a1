#!/bin/bash
# sandfleet-coordinator serve: submissions over HTTP and the sf:submissions
# stream, the JSON API, and the status page in headless Chromium.
#  1. POST /api/runs {"workflow", "files", "input"} -> 202 + run id; GET
#     /api/runs/{id} ends "succeeded" with the result document (map outputs);
#  2. an invalid submission -> 400 listing the problems;
#  3. a stream submission with reply_to: the document is stored at
#     sf:run:{id}:doc and XADDed to the reply stream; the entry is acked; a
#     broken one gets a "rejected" document instead of vanishing;
#  4. the page (embedded in the binary) loaded in Chromium shows the run as
#     succeeded with per-step progress, the worker and the queue; a
#     screenshot is kept in the build dir (serve-ui.png) as an artifact;
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
"$SF_BIN/sandfleet-coordinator" serve --broker "$REDIS_URL" --http "127.0.0.1:$PORT" --id serve-test \
    >>"$T/serve.log" 2>&1 &
SPID=$!
trap 'kill -9 $SPID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 'curl -sf "$H/readyz" >/dev/null' || fail "serve did not become ready"

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
code=$(curl -s -o "$T/post.json" -w '%{http_code}' -XPOST --data-binary @"$T/sub.json" "$H/api/runs")
[ "$code" = 202 ] || fail "POST /api/runs: $code $(cat "$T/post.json")"
RUN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/post.json")
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$1" 2>/dev/null; }
wait_for 30 'curl -sf "$H/api/runs/$RUN" >"$T/run.json" && [ "$(state "$T/run.json")" = succeeded ]' \
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
code=$(curl -s -o "$T/bad.json" -w '%{http_code}' -XPOST -d '{"workflow": {"name": "x", "steps": [{"id": "a", "run": "cat", "files": {"a.py": "nope.py"}}, {"id": "b"}]}, "files": {}}' "$H/api/runs")
[ "$code" = 400 ] || fail "invalid submission: HTTP $code"
grep -q "file 'nope.py' is not in the submission" "$T/bad.json" || fail "400 lacks the missing file: $(cat "$T/bad.json")"
grep -q "step 'b': missing 'run'" "$T/bad.json" || fail "400 lacks the missing run: $(cat "$T/bad.json")"

# --- 3. stream submissions --------------------------------------------------------------------
sid=$(rcli XADD sf:submissions '*' workflow '{"name": "streamed", "steps": [{"id": "echo", "run": "cat", "input": {"via": "stream"}}]}' reply_to itest:runs)
reply=$(rcli XREAD BLOCK 20000 STREAMS itest:runs 0-0)
echo "$reply" | grep -q "sub-$sid" || fail "no reply for the stream submission: $reply"
echo "$reply" | grep -q '"status":"succeeded"' || fail "stream run did not succeed: $reply"
rcli GET "sf:run:sub-$sid:doc" | grep -q '"output":{"via":"stream"}' || fail "document not stored at sf:run:sub-$sid:doc"
wait_for 5 '[ "$(rcli XPENDING sf:submissions coordinators | head -1)" = 0 ]' || fail "stream submission not acked"
bid=$(rcli XADD sf:submissions '*' workflow '{"steps": "no"}' reply_to itest:runs)
wait_for 10 'rcli GET "sf:run:sub-$bid:doc" | grep -q rejected' || fail "a broken stream submission was not rejected with a document"

# --- 4. the page in Chromium -------------------------------------------------------------------
chrome() {
    chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
        --disable-sync --no-first-run --user-data-dir="$T/chrome" --virtual-time-budget=4000 "$@" 2>>"$T/chromium.log"
}
ok=
for _ in $(seq 1 10); do
    chrome --dump-dom "$H/" >"$T/dom.html"
    if grep -q "data-run-id=\"$RUN\" data-state=\"succeeded\"" "$T/dom.html" && grep -q 'data-worker-id="w1"' "$T/dom.html"; then
        ok=1
        break
    fi
    sleep 1
done
[ -n "$ok" ] || fail "the page never showed run $RUN as succeeded with worker w1: $(head -c 2000 "$T/dom.html")"
grep -q 'data-step="each" data-state="succeeded"' "$T/dom.html" || fail "no per-step state for 'each' in the page"
grep -q '4/4 succeeded' "$T/dom.html" || fail "no per-step progress (4/4) in the page"
grep -q 'class="pill ok"' "$T/dom.html" || fail "the page did not reach the API"
rm -f "$OUT/serve-ui.png"
chrome --screenshot="$OUT/serve-ui.png" --window-size=1280,900 "$H/" >/dev/null
[ "$(stat -c %s "$OUT/serve-ui.png" 2>/dev/null || echo 0)" -gt 10000 ] || fail "no screenshot at $OUT/serve-ui.png"
echo "screenshot: $OUT/serve-ui.png"

# --- 5. drain -------------------------------------------------------------------------------------
kill -TERM $SPID
wait $SPID
rc=$?
[ $rc = 0 ] || fail "serve exited $rc after SIGTERM"
echo "PASS"
