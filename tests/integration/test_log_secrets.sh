#!/bin/bash
# Secrets never reach a log line, and JSON logs are one parseable object per
# line with run_id/task_id where they apply. A fleet against a Redis with a
# password (requirepass) and an ACL user, E2B and callback-like secrets in
# the environment, a secret in a step's env, everything at --log-level debug:
#  - worker (ACL user), coordinator run (requirepass), status, dead list,
#    serve with a submission, a worker given a wrong password, and a Redis
#    restart in the middle (reconnect lines);
#  - the worker's password is masked in its /proc/PID/cmdline;
#  - no secret appears in any log; every line of the JSON logs parses and
#    has ts/level/component/msg; task lines carry run_id and task_id.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init secrets
PW_DEFAULT='Def4ult-Pa55-8811'
PW_ACL='Acl-Pa55-7c2e9'
PW_WRONG='Wr0ng-Pa55-5531'
export E2B_API_KEY='e2b_1f0c9d8e7b6a5f4e3d2c1b0a'
export SANDFLEET_CALLBACK_SECRET='cbsec-77aa88bb99cc'
export GITHUB_TOKEN='ghp_secrettoken0123456789'
STEP_SECRET='step-env-secret-4242'
rcli ACL SETUSER sfworker on ">$PW_ACL" '~sf:*' '&*' +@all >/dev/null
rcli CONFIG SET requirepass "$PW_DEFAULT" >/dev/null
# redis.sh's helpers talk to the server as the default user from now on.
rcli() { REDISCLI_AUTH="$PW_DEFAULT" redis-cli -p "$REDIS_PORT" "$@"; }
W_URL="redis://sfworker:$PW_ACL@127.0.0.1:$REDIS_PORT"
C_URL="redis://:$PW_DEFAULT@127.0.0.1:$REDIS_PORT"
J="--log-format json --log-level debug"
C="$SF_BIN/sandfleet-coordinator"

"$SF_BIN/sandfleet-worker" --broker "$W_URL" --sandbox process --worker-id w1 --concurrency 2 \
    --retry-base-ms 50 --http 127.0.0.1:0 $J >>"$T/w1.json.log" 2>&1 &
WPID[w1]=$!
# A secret given on the command line is masked in argv once parsed: ps and
# /proc/PID/cmdline do not show it (the flags' -file and env forms avoid even
# the moment before).
wait_for 10 'grep -q "caps per sandbox" "$T/w1.json.log"' || fail "the worker did not start"
tr '\0' ' ' </proc/${WPID[w1]}/cmdline >"$T/w1.cmdline"
grep -qF -- "$PW_ACL" "$T/w1.cmdline" && fail "the worker's password is in /proc/PID/cmdline: $(cat "$T/w1.cmdline")"
grep -qE -- "sfworker:\*+@127.0.0.1" "$T/w1.cmdline" || fail "argv not masked as expected: $(cat "$T/w1.cmdline")"
"$SF_BIN/sandfleet-worker" --broker "redis://sfworker:$PW_WRONG@127.0.0.1:$REDIS_PORT" --sandbox process \
    --worker-id wbad $J >>"$T/wbad.json.log" 2>&1
[ $? = 3 ] || fail "a wrong password should exit 3"
grep -q 'authentication failed' "$T/wbad.json.log" || fail "no clear message for a wrong password"

cat >"$T/wf.json" <<JSON
{ "name": "secretive", "steps": [
  { "id": "a", "run": "cat", "input": {"x": 1}, "env": {"API_TOKEN": "$STEP_SECRET"} },
  { "id": "b", "run": "python3 -c 'import json,sys; print(json.dumps([1,2,3]))'", "needs": ["a"] },
  { "id": "m", "run": "cat", "needs": ["b"], "map": true },
  { "id": "bad", "run": "echo oops >&2; exit 2", "needs": ["m"], "retries": 1 } ] }
JSON
"$C" run "$T/wf.json" --broker "$C_URL" --run-id sec-1 $J >"$T/doc.json" 2>>"$T/coord.json.log"
[ $? = 1 ] || fail "the run should fail (step 'bad')"
jtrue() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }
jtrue "$T/doc.json" 'd["steps"]["m"]["output"] == [1,2,3] and d["steps"]["bad"]["attempts"] == 2' \
    || fail "unexpected result document: $(cat "$T/doc.json")"

# Redis restarts under the worker: reconnect notices must not show the password either.
redis-cli -p "$REDIS_PORT" -a "$PW_DEFAULT" --no-auth-warning CONFIG REWRITE >/dev/null 2>&1
rcli ACL SAVE >/dev/null 2>&1
kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --dir "$REDIS_DIR" \
    --requirepass "$PW_DEFAULT" --logfile "$REDIS_DIR/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
wait_for 10 'rcli ping 2>/dev/null | grep -q PONG' || fail "redis did not come back"
rcli ACL SETUSER sfworker on ">$PW_ACL" '~sf:*' '&*' +@all >/dev/null
wait_for 15 'grep -q reconnected "$T/w1.json.log"' || fail "the worker did not log a reconnect"

"$C" status --broker "$C_URL" --log-level debug >"$T/status.out" 2>>"$T/cli.log" || fail "status failed"
"$C" dead list --broker "$C_URL" --log-level debug >"$T/dead.out" 2>>"$T/cli.log" || fail "dead list failed"
PORT=$(redis_free_port)
"$C" serve --broker "$C_URL" --http "127.0.0.1:$PORT" $J >>"$T/serve.json.log" 2>&1 &
SPID=$!
wait_for 10 'curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null' || fail "serve not ready"
curl -sf -XPOST --data-binary @"$T/wf.json" "http://127.0.0.1:$PORT/api/runs" >"$T/post.json" || fail "POST failed"
wait_for 20 'grep -q "workflow .secretive. failed" "$T/serve.json.log"' || fail "the served run did not finish"
kill -TERM $SPID; wait $SPID
worker_stop w1 || fail "worker did not drain"

# --- the checks ----------------------------------------------------------------------------
for f in "$T"/*.log "$T"/status.out "$T"/dead.out; do
    for s in "$PW_DEFAULT" "$PW_ACL" "$PW_WRONG" "$E2B_API_KEY" "$SANDFLEET_CALLBACK_SECRET" "$GITHUB_TOKEN" "$STEP_SECRET"; do
        if grep -qF -- "$s" "$f"; then fail "secret '$s' appears in $(basename "$f"): $(grep -F -- "$s" "$f" | head -2)"; fi
    done
done
grep -q 'sfworker:\*\*\*@' "$T/w1.json.log" || fail "the worker does not show its redacted URL"
python3 - "$T"/*.json.log <<'PY' || fail "JSON logs are not one object per line with ids"
import json, sys
n = 0
for path in sys.argv[1:]:
    for i, line in enumerate(open(path), 1):
        d = json.loads(line)            # every line, the sandbox backends' warnings too
        for k in ("ts", "level", "component", "msg"):
            assert k in d, f"{path}:{i}: no {k}: {line}"
        msg = d["msg"]
        if msg.startswith(("dispatch attempt", "start attempt", "done (attempt", "attempt ", "ok in ")) or "failed for good" in msg:
            assert d.get("run_id") and d.get("task_id"), f"{path}:{i}: task line without ids: {line}"
        if "steps done" in msg or msg.startswith("workflow '"):
            assert d.get("run_id"), f"{path}:{i}: run line without run_id: {line}"
        n += 1
assert n > 30, f"only {n} lines: debug logging did not happen"
PY
grep -q '"task_id":"sec-1:bad:0"' "$T/w1.json.log" || fail "no task lines for sec-1:bad:0 in the worker log"
echo "PASS"
