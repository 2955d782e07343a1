# tests/lib/e2b_venv.sh: the official E2B Python SDK (e2b and
# e2b-code-interpreter, unpatched, from PyPI) in a venv kept in the build
# tree, made by the first test that needs it; tests running at once wait
# for one install instead of racing on the same directory.

# sf_e2b_venv: print the venv's directory; fail when the SDK cannot be
# installed (the pip log is $T_TMP/pip.log).
sf_e2b_venv() {
  local venv=${SF_BUILD:-$SF_SRC/build}/e2b-venv
  (
    flock 9
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import e2b, e2b_code_interpreter' 2>/dev/null; then
      python3 -m venv "$venv" && "$venv/bin/pip" install -q e2b e2b-code-interpreter >"$T_TMP/pip.log" 2>&1
    fi
  ) 9>"$venv.lock"
  "$venv/bin/python" -c 'import e2b' 2>/dev/null && echo "$venv"
}
