# tests/lib/testlib.sh: small helpers for shell integration tests.
# Each check prints "ok - ..." or "not ok - ..." and the suite ends with the
# plain "N passed, N failed" line; the script exits non-zero on any failure.
SF_BIN=${SF_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}
SF_SRC=${SF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
T_PASS=0
T_FAIL=0
T_TMP=$(mktemp -d /tmp/sf-test-XXXXXX)
trap 't_cleanup' EXIT
t_cleanup_hooks=()
t_cleanup() {
  local h
  for h in "${t_cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$T_TMP"
}

ok()     { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
not_ok() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $*"; }

# check "description" command...: passes when the command succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# jget FILE EXPR: evaluate a Python expression over the JSON document 'd'.
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# jtrue FILE EXPR: succeed when the Python expression over 'd' is true.
jtrue() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

t_done() {
  echo "$T_PASS passed, $T_FAIL failed"
  [ "$T_FAIL" -eq 0 ]
}
