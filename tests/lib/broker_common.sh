# tests/lib/broker_common.sh: helpers both broker test libraries (fleet.sh for
# Redis, kafka.sh for Kafka) share. Needs $T (the test's temp dir).
#   fail MSG            print MSG and the tail of every log in $T, exit 1
#   norm_doc FILE       a result document without run_id, durations, worker
#   task_json ID RUN CMD [EXTRA_JSON]   a wire-format task for producers
#   runs_of REGEX       attempts workers began on tasks whose id matches REGEX,
#                       from their logs (start them with --log-level debug): the
#                       agents of a local sandbox cannot write the host's files

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
    exit 1
}

norm_doc() {
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d.pop("run_id", None); d.pop("duration_ms", None)
for s in d["steps"].values():
    s.pop("duration_ms", None); s.pop("worker", None)
print(json.dumps(d, sort_keys=True, indent=1))
PY
}

task_json() {
    python3 - "$@" <<'PY'
import json, sys
t = {"v": 1, "id": sys.argv[1], "run_id": sys.argv[2], "step": "s", "index": 0,
     "attempt": 1, "max_attempts": 1, "run": sys.argv[3], "input": {"x": 1}}
if len(sys.argv) > 4:
    t.update(json.loads(sys.argv[4]))
print(json.dumps(t))
PY
}

runs_of() { cat "$T"/*.log 2>/dev/null | grep -cE " task=($1) start attempt"; }
