#!/usr/bin/env bash
# The Redis broker runs its Lua scripts by EVALSHA (the text crosses the wire
# and is hashed by Redis once, not on every call), and falls back to EVAL
# when Redis does not know a script (SCRIPT FLUSH, a restart without it).
set -u
. "$(dirname "$0")/../lib/testlib.sh"
. "$SF_SRC/tests/lib/fleet.sh"
fleet_init evalsha
worker_start w1 --concurrency 2
calls() { rcli INFO commandstats | awk -F'[=,:]' -v c="cmdstat_$1" '$1 == c {print $3}'; }
cat >"$T/wf.json" <<'J'
{"name": "sha", "steps": [{"id": "each", "run": "cat", "map": true, "input": [1, 2, 3, 4, 5, 6, 7, 8]}]}
J
coord "$T/wf.json" --output "$T/a.json" 2>"$T/a.log"
check "a run succeeds" jtrue "$T/a.json" 'd["status"] == "succeeded"'
check "scripts ran by EVALSHA" [ "${calls_sha:=$(calls evalsha)}" -gt 8 ]
e0=$(calls eval); e0=${e0:-0}
rcli SCRIPT FLUSH >/dev/null
coord "$T/wf.json" --output "$T/b.json" 2>"$T/b.log"
check "after SCRIPT FLUSH a run still succeeds" jtrue "$T/b.json" 'd["status"] == "succeeded"'
check "... the unknown scripts went by EVAL once" [ "$(calls eval)" -gt "$e0" ]
check "... and by EVALSHA again after" [ "$(calls evalsha)" -gt "$calls_sha" ]
t_done
