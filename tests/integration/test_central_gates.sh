#!/usr/bin/env bash
# Issue 15 fields in a central run (`coordinator run`, no broker), through the
# real local sandbox: a concurrency key with limit 2 over a 8-element map
# never runs more than 2 at once and does reach 2 while --concurrency allows
# 6 (a held-back step does not hold the others: a free step runs meanwhile);
# rate 4/s burst 2 keeps every one-second window at 6 starts or fewer; the
# secret from --secrets-dir reaches the agent, is masked in the document and
# is in no log; a secret that is not set stops the run before anything runs
# (exit 2, naming step and secret); priorities order the ready steps.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
C="$SF_BIN/sandfleet-coordinator"
SB=${SF_TEST_SANDBOX:-local}
W=$T_TMP/wf; mkdir -p "$W" "$T_TMP/secrets"
SECRET="sf-central-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$SECRET" >"$T_TMP/secrets/C_KEY"

cat >"$W/gates.json" <<'J'
{"name": "central-gates", "steps": [
  {"id": "conc", "map": true, "input": [1,2,3,4,5,6,7,8], "concurrency": {"key": "c", "limit": 2},
   "run": "python3 -c 'import json,time; s=time.time(); time.sleep(0.3); print(json.dumps({\"s\": s, \"e\": time.time()}))'"},
  {"id": "rate", "map": true, "input": [1,2,3,4,5,6,7,8,9,10], "rate": {"key": "r", "per_s": 4, "burst": 2},
   "run": "python3 -c 'import json,time; print(json.dumps({\"s\": time.time()}))'"},
  {"id": "free", "run": "python3 -c 'import json,time; print(json.dumps({\"s\": time.time()}))'"},
  {"id": "secret", "secrets": ["C_KEY"],
   "run": "python3 -c 'import hashlib,json,os,sys; v=os.environ[\"C_KEY\"]; sys.stderr.write(v + \"\\n\"); print(json.dumps({\"sha\": hashlib.sha256(v.encode()).hexdigest(), \"echo\": v}))'"}
]}
J
"$C" run "$W/gates.json" --sandbox "$SB" --concurrency 6 --secrets-dir "$T_TMP/secrets" \
    --log-level debug --output "$T_TMP/doc.json" 2>"$T_TMP/run.log"
check "the gated run succeeds" [ $? -eq 0 ]
want=$(printf %s "$SECRET" | sha256sum | cut -d' ' -f1)
python3 - "$T_TMP/doc.json" "$want" <<'PY' >"$T_TMP/verdict" 2>&1
import json, sys
d = json.load(open(sys.argv[1]))["steps"]
ev = sorted([(o["s"], 1) for o in d["conc"]["output"]] + [(o["e"], -1) for o in d["conc"]["output"]])
n = peak = 0
for _, x in ev:
    n += x
    peak = max(peak, n)
print("peak", peak)
s = sorted(o["s"] for o in d["rate"]["output"])
print("window", max(sum(1 for t in s if a <= t < a + 1.0) for a in s), "span", round(s[-1] - s[0], 2))
free = d["free"]["output"]["s"]
print("free_early", free < max(o["s"] for o in d["conc"]["output"]))
print("secret", d["secret"]["output"]["sha"] == sys.argv[2] and d["secret"]["output"]["echo"] == "***"
      and "***" in d["secret"]["stderr_tail"])
PY
check "concurrency 2: reached and never exceeded" grep -qx 'peak 2' "$T_TMP/verdict"
check "rate 4/s burst 2: at most 6 starts in any second" \
    python3 -c "import sys; w=int(open('$T_TMP/verdict').read().split('window ')[1].split()[0]); sys.exit(w > 6)"
check "rate: 10 starts spread over at least 1.5 s" \
    python3 -c "import sys; sp=float(open('$T_TMP/verdict').read().split('span ')[1].split()[0]); sys.exit(sp < 1.5)"
check "a held-back step does not hold the others" grep -qx 'free_early True' "$T_TMP/verdict"
check "the secret reached the agent and is masked in the document" grep -qx 'secret True' "$T_TMP/verdict"
check "the secret is in no output or log" bash -c "! grep -qF '$SECRET' '$T_TMP/doc.json' '$T_TMP/run.log'"

# a secret that is set nowhere: nothing runs
cat >"$W/missing.json" <<J
{"name": "missing", "steps": [
  {"id": "first", "run": "touch $T_TMP/ran; echo {}"},
  {"id": "needs-it", "run": "echo {}", "secrets": ["NOT_SET_ANYWHERE"]}
]}
J
"$C" run "$W/missing.json" --sandbox "$SB" --secrets-dir "$T_TMP/secrets" >/dev/null 2>"$T_TMP/missing.err"
check "a missing secret exits 2" [ $? -eq 2 ]
check "…naming the step and the secret" grep -q "step 'needs-it': secret 'NOT_SET_ANYWHERE' is not configured" "$T_TMP/missing.err"
check "…before anything ran" [ ! -e "$T_TMP/ran" ]

# priorities: one slot, three ready steps, highest first
STAMP="python3 -c 'import json,time; print(json.dumps(time.time()))'"
cat >"$W/prio.json" <<J
{"name": "prio", "steps": [
  {"id": "low", "run": "$STAMP"},
  {"id": "high", "run": "$STAMP", "priority": 8},
  {"id": "mid", "run": "$STAMP"}
]}
J
"$C" run "$W/prio.json" --sandbox "$SB" --concurrency 1 --priority 4 --output "$T_TMP/prio.json" 2>"$T_TMP/prio.err"
check "priority run succeeds" [ $? -eq 0 ]
check "steps start by priority (high 8, then the run's 4 for low and mid in file order)" \
    jtrue "$T_TMP/prio.json" 'd["steps"]["high"]["output"] < d["steps"]["low"]["output"] < d["steps"]["mid"]["output"]'
t_done
