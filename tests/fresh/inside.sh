#!/usr/bin/env bash
# Runs inside the fresh Debian 12 container of tests/fresh/run.sh, as root, in
# a clean copy of the repository: what a new user types, and nothing else
# installed beforehand. One "SF-FRESH <phase> <seconds>" line per phase.
#   1. apt-get install make            the README's only prerequisite
#   2. make demo                       must install, build and pass by itself
#   3. make test-fast                  unit + integration: every test that
#                                      needs a package, a registry (PyPI, the
#                                      Go proxy, Maven Central) or a server
#   4. the fuzz build, one target run  clang + libFuzzer + ASan from deps.sh
# SF_FRESH_TESTS (a ctest -R regex) narrows step 3; SF_FRESH_SKIP_TESTS=1 skips 3-4.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
t=$SECONDS
phase() { echo "SF-FRESH $1 $((SECONDS - t))s"; t=$SECONDS; }

echo "SF-FRESH start: $(. /etc/os-release; echo "$PRETTY_NAME"), $(dpkg-query -W -f='.' | wc -c) packages installed"
apt-get update -qq
apt-get install -y -qq --no-install-recommends make >/dev/null
phase apt-make

make demo
phase make-demo

if [ "${SF_FRESH_SKIP_TESTS:-0}" != 1 ]; then
  make test-fast CTEST_ARGS="--output-on-failure ${SF_FRESH_TESTS:+-R '$SF_FRESH_TESTS'}"
  phase make-test-fast
  # make test's sanitizer and fuzz halves use the same packages; one fuzz
  # target built and run proves them without doubling the compile time.
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DENABLE_FUZZ=ON \
    -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target fuzz_task >/dev/null
  (cd build-fuzz && ctest --output-on-failure -R 'fuzz/fuzz_task$')
  phase fuzz-smoke
fi
echo "SF-FRESH done"
