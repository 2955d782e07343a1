#!/bin/bash
# The Redis fleet with the product's default sandbox (local namespaces), not
# the process backend the other fleet tests use for host-side counters:
#  1. the examples through 2 workers give the same document as the central run
#     (the "shared"-sandbox one travels as one bundle task run by one worker);
#  2. kill -9 of a worker mid-map: the map output is still exact and in order,
#     one result per task, and the killed worker's sandboxes die with it (no
#     sandbox-init process is left behind);
#  3. a step's "template" runs on the worker's template of that name (a tiny
#     root made from the host's dash, tests/lib/template.sh), a step without
#     one on the default image, and an unknown name is rejected, never run.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init localsb
export SF_TEST_SANDBOX=local

worker_start a --concurrency 2 --lease-ms 1500
worker_start b --concurrency 2 --lease-ms 1500
for ex in analyze-report fanout shared; do
    "$SF_BIN/sandfleet-coordinator" run "$SF_SRC/examples/$ex/workflow.json" --sandbox local \
        --output "$T/$ex.central.json" 2>>"$T/central.log" || fail "$ex: central run failed"
    coord "$SF_SRC/examples/$ex/workflow.json" --output "$T/$ex.redis.json" 2>>"$T/coord.log" \
        || fail "$ex: run through Redis failed"
    [ "$(norm_doc "$T/$ex.central.json")" = "$(norm_doc "$T/$ex.redis.json")" ] \
        || fail "$ex: the document through Redis differs from the central one"
    echo "ok - $ex through Redis with local sandboxes matches the central run"
done

cat >"$T/map.json" <<'JSON'
{ "name": "map16", "steps": [
  { "id": "list", "run": "python3 -c 'print(list(range(16)))'" },
  { "id": "each", "needs": ["list"], "map": true, "run": "read -r n; sleep 0.5; echo $((n * 3))" } ] }
JSON
coord_bg "$T/kill9.json" "$T/coord.log" "$T/map.json" --run-id lkill9
victim_busy() { [ -n "$(rcli XPENDING sf:default:tasks workers - + 10 a)" ]; }
wait_for 30 victim_busy || fail "worker a never held a task"
kill -9 "${WPID[a]}"; unset "WPID[a]"
wait "$CPID" || fail "the run with a killed worker failed"
CPID=
python3 - "$T/kill9.json" <<'PY' || fail "map output not exact after kill -9"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "succeeded", d["status"]
assert d["steps"]["each"]["output"] == [3 * i for i in range(16)], d["steps"]["each"]["output"]
PY
[ "$(rcli XLEN sf:run:lkill9:results)" = 17 ] || fail "expected 17 results, got $(rcli XLEN sf:run:lkill9:results)"
echo "ok - kill -9 mid-map with local sandboxes: exact output, one result per task"
# Sandboxes of the killed worker: pid 1 of each exits when its control socket
# closes, taking its pid namespace with it.
left() { for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = sandbox-init ] && \
         [ "$(awk '{print $4}' $p/stat 2>/dev/null)" = 1 ] && echo "${p#/proc/}"; done; }
wait_for 10 '[ -z "$(left)" ]' || fail "orphaned sandbox-init processes: $(left)"
echo "ok - no sandbox of the killed worker outlives it"
worker_stop b || fail "worker b did not drain cleanly"

source "$SF_SRC/tests/lib/template.sh"
chmod 755 "$T"                           # the sandboxes' ids must reach the template
sf_tiny_template "$T/tpl" || fail "cannot make the test template"
worker_start c --concurrency 2 --template "tmin=$T/tpl"
cat >"$T/tpl.json" <<'JSON'
{ "name": "templates", "steps": [
  { "id": "on", "template": "tmin", "run": "printf '\"%s\"' \"$(cat /etc/sandfleet-test-template)\"" },
  { "id": "off", "run": "if [ -e /etc/sandfleet-test-template ]; then echo '\"yes\"'; else echo '\"no\"'; fi" } ] }
JSON
coord "$T/tpl.json" --output "$T/tpl.out" 2>>"$T/coord.log" || fail "the template workflow failed"
python3 - "$T/tpl.out" <<'PY' || fail "template steps: $(cat "$T/tpl.out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["steps"]["on"]["output"] == "minbase", d["steps"]["on"]
assert d["steps"]["off"]["output"] == "no", d["steps"]["off"]
PY
echo "ok - a step with \"template\" runs on it; a step without does not see it"
cat >"$T/notpl.json" <<'JSON'
{ "name": "notpl", "steps": [ { "id": "x", "template": "no-such-template", "run": "echo 1" } ] }
JSON
coord "$T/notpl.json" --output "$T/notpl.out" 2>>"$T/coord.log" && fail "an unknown template ran"
grep -q "template 'no-such-template' is not known to this worker" "$T/notpl.out" \
    || fail "unknown template: $(cat "$T/notpl.out")"
echo "ok - an unknown template is rejected with its name"
worker_stop c || fail "worker c did not drain cleanly"
echo "7 passed, 0 failed"
