#!/usr/bin/env bash
# Install what sandfleet needs to build and test, from Debian's packages.
# As root it runs apt-get; otherwise it prints the exact apt-get line and stops.
# Usage: scripts/deps.sh [build|demo|test|bench|vm]
#   build  compile;  demo  + what make demo runs (python3 agents, redis-server);
#   test   + everything make test runs;  bench, vm  + test, + their own tools
set -euo pipefail
what=${1:-test}

build_pkgs=(cmake make gcc pkg-config libjansson-dev libcmocka-dev libseccomp-dev
            libhiredis-dev librdkafka-dev libcurl4-openssl-dev libmicrohttpd-dev
            libssl-dev zlib1g-dev)   # libssl-dev: libcrypto's HMAC for callback signatures; zlib: gzip on the E2B server
demo_pkgs=(python3 redis-server)   # the example agents; the broker half of the demo
# ca-certificates: TLS to PyPI, the Go proxy and Maven Central (the E2B SDK, kubeconform,
# the Kafka jars); python3-venv: the official E2B SDK's venv; golang-go, python3-yaml,
# python3-pip: the k8s manifest check; chromium: the status page test; debootstrap: the
# E2B test's template (tests/lib/template.sh).
test_pkgs=(redis-server clang libclang-rt-14-dev python3 procps iproute2 util-linux curl
           default-jre-headless maven kcat ca-certificates python3-venv python3-jsonschema
           golang-go python3-yaml python3-pip chromium debootstrap)
bench_pkgs=(bubblewrap hyperfine nodejs npm)
vm_pkgs=(qemu-system-x86 kmod cpio)   # make test-cgroup2: tests/vm/run.sh

pkgs=("${build_pkgs[@]}")
case "$what" in
  build) ;;
  demo) pkgs+=("${demo_pkgs[@]}") ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  vm) pkgs+=("${test_pkgs[@]}" "${vm_pkgs[@]}") ;;
  *) echo "usage: $0 [build|demo|test|bench|vm]" >&2; exit 2 ;;
esac

# Python modules the tests use, for whichever python3 is first on PATH.
py_mods() {
  case "$what" in build|demo) return 0 ;; esac
  python3 -c 'import jsonschema' 2>/dev/null && return 0
  echo "deps: pip install jsonschema (validates messages against docs/schema)" >&2
  python3 -m pip install -q jsonschema >/dev/null 2>&1 || \
    echo "deps: could not install jsonschema; the schema test falls back to its own checker" >&2
}

missing=()
for p in "${pkgs[@]}"; do
  # nodejs/npm may come from elsewhere than Debian: a working binary is enough.
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then py_mods; exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
  echo "sandfleet needs these Debian packages; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
py_mods
