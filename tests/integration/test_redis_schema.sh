#!/bin/bash
# docs/protocol.md holds: real task and result messages (ok, failed, claim-
# checked) validate against docs/schema/*.schema.json (python3 jsonschema when
# installed, else a small checker of required fields and types), and the
# redis-cli example in the doc, run as written, gets its result.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init schema

cat >"$T/wf.json" <<'JSON'
{ "name": "schema", "steps": [
  { "id": "list", "run": "python3 -c 'print([1, 2])'", "timeout_s": 10, "limits": {"memory_mb": 256},
    "secrets": ["S_KEY"], "concurrency": {"key": "schema", "limit": 2}, "rate": {"key": "schema", "per_s": 100} },
  { "id": "each", "needs": ["list"], "map": true, "run": "cat", "env": {"A": "b"} },
  { "id": "big", "needs": ["each"], "run": "python3 -c 'import json; print(json.dumps(\"z\" * 4000))'" },
  { "id": "bad", "needs": ["big"], "run": "exit 4", "retries": 1 } ] }
JSON
# Publish with no worker up, so the task messages can be read before they run.
coord_bg "$T/doc.json" "$T/coord.log" "$T/wf.json" --run-id sch
wait_for 10 '[ "$(rcli XLEN sf:default:tasks)" -ge 1 ]' || fail "nothing published"
rcli --no-raw XRANGE sf:default:tasks - + >/dev/null
python3 - "$REDIS_PORT" "$T/tasks.jsonl" <<'PY' || fail "cannot read tasks"
import subprocess, sys
out = subprocess.run(["redis-cli", "-p", sys.argv[1], "XRANGE", "sf:default:tasks", "-", "+"],
                     capture_output=True, text=True, check=True).stdout.splitlines()
with open(sys.argv[2], "w") as f:
    for i, line in enumerate(out):
        if line == "task":
            f.write(out[i + 1] + "\n")
PY
SANDFLEET_SECRET_S_KEY=x-schema worker_start w1 --concurrency 2 --retry-base-ms 50 --claim-check-bytes 1024
wait "$CPID"; CPID=
python3 - "$REDIS_PORT" "$T/results.jsonl" <<'PY' || fail "cannot read results"
import subprocess, sys
out = subprocess.run(["redis-cli", "-p", sys.argv[1], "XRANGE", "sf:run:sch:results", "-", "+"],
                     capture_output=True, text=True, check=True).stdout.splitlines()
with open(sys.argv[2], "w") as f:
    for i, line in enumerate(out):
        if line == "result":
            f.write(out[i + 1] + "\n")
PY
[ "$(wc -l <"$T/results.jsonl")" = 5 ] || fail "expected 5 results, got $(wc -l <"$T/results.jsonl")"
grep -q '"output_ref"' "$T/results.jsonl" || fail "no claim-checked result to validate"
grep -q '"status":"error"' "$T/results.jsonl" || fail "no failed result to validate"

python3 - "$SF_SRC/docs/schema" "$T/tasks.jsonl" "$T/results.jsonl" <<'PY' || fail "messages do not match the schemas"
import json, sys
sdir, tasks, results = sys.argv[1:4]
schemas = {k: json.load(open(f"{sdir}/{k}.schema.json")) for k in ("task", "result")}
msgs = [("task", json.loads(l)) for l in open(tasks)] + [("result", json.loads(l)) for l in open(results)]
assert msgs, "no messages"
try:
    import jsonschema
    for kind, m in msgs:
        jsonschema.validate(m, schemas[kind])
    how = "jsonschema " + __import__("importlib.metadata").metadata.version("jsonschema")
except ImportError:
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict}
    for kind, m in msgs:
        s = schemas[kind]
        for f in s["required"]:
            assert f in m, f"{kind} lacks {f}: {m}"
        for f, v in m.items():
            p = s["properties"].get(f, {})
            if "const" in p: assert v == p["const"], (f, v)
            if "enum" in p: assert v in p["enum"], (f, v)
            if p.get("type") in types: assert isinstance(v, types[p["type"]]), (f, v)
    how = "built-in checker"
# A message the schema must reject, so the check itself can fail.
bad = dict(msgs[0][1]); bad["v"] = 2
try:
    import jsonschema
    try:
        jsonschema.validate(bad, schemas["task"]); raise SystemExit("schema accepted v=2")
    except jsonschema.ValidationError:
        pass
except ImportError:
    pass
print(f"{len(msgs)} messages valid ({how})")
PY

# The redis-cli example from docs/protocol.md, as written (redis-cli pointed at our server).
redis-cli() { command redis-cli -p "$REDIS_PORT" "$@"; }
sed -n '/<!-- example:redis-cli -->/,/<!-- \/example -->/p' "$SF_SRC/docs/protocol.md" | sed '/^```\|^<!--/d' >"$T/example.sh"
[ "$(wc -l <"$T/example.sh")" = 2 ] || fail "the example block in docs/protocol.md moved"
out=$(source "$T/example.sh")
echo "$out" | grep -q '"task_id":"demo-1"' || fail "the documented example got no reply: $out"
echo "$out" | grep -q '"output":{"hello":"world"}' || fail "the documented example's reply lacks the output: $out"

# The minimal worker ACL from docs/operations.md is enough for a worker's
# whole cycle (fetch, retry, final result + dead letter, reply_to), and a
# wrong password is a clear start-up error.
acl=$(sed -n '/^ACL SETUSER/,/^```/p' "$SF_SRC/docs/operations.md" | grep -v '^```' | tr -d '\\\n' | sed 's/WORKER_PASSWORD/wpw/')
[ -n "$acl" ] || fail "no ACL in docs/operations.md"
rcli $acl >/dev/null || fail "the documented ACL does not parse"
worker_stop w1
"$SF_BIN/sandfleet-worker" --broker "redis://sandfleet-worker:wrong@127.0.0.1:$REDIS_PORT" --sandbox process \
    >"$T/badpw.log" 2>&1
[ $? = 3 ] || fail "a wrong password should exit 3"
grep -q 'authentication failed' "$T/badpw.log" || fail "no clear message for a wrong password"
grep -q 'wrong' "$T/badpw.log" && fail "the password was logged"
REDIS_URL_SAVED=$REDIS_URL; REDIS_URL="redis://sandfleet-worker:wpw@127.0.0.1:$REDIS_PORT"
worker_start aclw --concurrency 2 --retry-base-ms 50
REDIS_URL=$REDIS_URL_SAVED
rcli XADD sf:default:tasks '*' task "$(task_json acl-1 acl 'exit 1' '{"max_attempts":2,"reply_to":"sf:reply:acl"}')" >/dev/null
reply=$(rcli XREAD BLOCK 10000 STREAMS sf:reply:acl 0-0)
echo "$reply" | grep -q '"attempt":2' || fail "worker with the minimal ACL did not retry and reply: $reply"
rcli XRANGE sf:default:dead - + | grep -q 'error after 2 attempts' || fail "no dead letter under the minimal ACL"
# ... and for issue 15's scripts: a task with a priority (moved to its band,
# fetched by band) behind a concurrency key with a waiter and a rate key.
# Scripts run with the caller's permissions: a command missing from the ACL
# fails the script (the task then waits forever), not the ACL check.
for i in 1 2; do
    rcli XADD sf:default:tasks '*' task "$(task_json acl-g$i acl 'sleep 0.3; cat' \
        '{"priority":3,"concurrency":{"key":"acl","limit":1},"rate":{"key":"acl","per_s":50},"reply_to":"sf:reply:acl-g"}')" >/dev/null
done
wait_for 20 '[ "$(rcli XLEN sf:reply:acl-g)" = 2 ]' || fail "gated priority tasks did not run under the minimal ACL"
! grep -E "NOPERM|can't run this command" "$T/aclw.log" || fail "the minimal ACL lacks a command the worker uses"
echo PASS
