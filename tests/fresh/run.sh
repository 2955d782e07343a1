#!/usr/bin/env bash
# make test-fresh: the README's commands on a fresh Debian 12 (docs/deploy.md,
# "make test-fresh"). A debootstrap minbase image (debian:bookworm-slim, the
# one make compose-test uses; made once, kept), a clean copy of the committed
# tree (git archive HEAD), a new container, tests/fresh/inside.sh in it.
#
# What may come from the host, and why:
#   - the host's extra CA certificates (/usr/local/share/ca-certificates) and
#     its proxy variables: a machine behind a TLS-inspecting proxy needs them
#     to reach PyPI, the Go proxy and Maven Central, as any user there would;
#   - download caches only (apt's .deb archives, pip's wheels, the Go module
#     and Maven download caches, the tests' debootstrap template) under
#     ~/.cache/sandfleet/fresh: what is installed and built is installed and
#     built again every time.
# The container runs as root with --privileged (a root user's machine: the
# local sandbox needs namespaces, cgroups and a full /proc; docs/deploy.md
# "Privileges" lists the narrower grants for production).
#
# Environment: SF_FRESH_TESTS (ctest -R regex, default all of unit+integration),
# SF_FRESH_SKIP_TESTS=1 (make demo only), SF_BUILD_FROM=worktree (copy the work
# tree instead of HEAD), SF_FRESH_CACHE, SF_KEEP=1 (keep the container).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../deploy/test/host-setup.sh
source "$src/deploy/test/host-setup.sh"
cache=${SF_FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandfleet/fresh}
name=sf-fresh-$$
work=$(mktemp -d /tmp/sf-fresh.XXXXXX)
t0=$SECONDS
log() { printf '[test-fresh %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; echo "test-fresh: 0 passed, 1 failed"; exit 1; }
cleanup() {
  [ "${SF_KEEP:-0}" = 1 ] || podman rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run it as root (podman with --privileged)"
sf_host_packages
sf_containers_conf >/dev/null
sf_base_image || die "no debian:bookworm-slim image"
log "base image ready ($((SECONDS - t0))s)"

# ---- a clean copy --------------------------------------------------------------
mkdir -p "$work/src"
if [ "${SF_BUILD_FROM:-head}" = worktree ]; then
  tar -C "$src" --exclude='./build*' --exclude=./.git -c . | tar -C "$work/src" -x
  what="the work tree"
else
  git -C "$src" archive --format=tar HEAD | tar -C "$work/src" -x
  what="$(git -C "$src" rev-parse --short HEAD) (git archive)"
fi

# ---- what passes from the host -------------------------------------------------
mkdir -p "$cache"/{apt,pip,gomod,m2,template} "$work/ca"
cp /usr/local/share/ca-certificates/*.crt "$work/ca/" 2>/dev/null || true
envs=()
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && envs+=(-e "$v=${!v}")
done
# Tools that keep their own CA list are pointed at the system's, which then
# holds the extra certificates (update-ca-certificates runs when
# ca-certificates is installed).
for v in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS; do
  envs+=(-e "$v=/etc/ssl/certs/ca-certificates.crt")
done
[ -n "${SF_FRESH_TESTS:-}" ] && envs+=(-e "SF_FRESH_TESTS=$SF_FRESH_TESTS")
[ -n "${SF_FRESH_SKIP_TESTS:-}" ] && envs+=(-e "SF_FRESH_SKIP_TESTS=$SF_FRESH_SKIP_TESTS")

# ---- the run -------------------------------------------------------------------
log "running $what in a new debian:bookworm-slim container ($(ls "$work/ca" | wc -l) extra CA certificate(s))"
set +e
# Open files as on a fresh Debian host: soft 1024, a hard limit above it (here
# the host's own; containers.conf caps both at 1024 for make compose-test).
podman run --name "$name" --privileged --hostname sf-fresh \
  --ulimit "nofile=1024:$(ulimit -Hn)" --ulimit nproc=4096:4096 \
  -v "$work/src:/src" -v "$work/ca:/usr/local/share/ca-certificates:ro" \
  -v "$cache/apt:/var/cache/apt/archives" -v "$cache/pip:/root/.cache/pip" \
  -v "$cache/gomod:/root/.cache/sandfleet/k8s-validate/go/pkg/mod" -v "$cache/m2:/root/.m2" \
  -v "$cache/template:/var/cache/sandfleet" \
  -e DEBIAN_FRONTEND=noninteractive "${envs[@]}" -w /src \
  debian:bookworm-slim bash tests/fresh/inside.sh 2>&1 | tee "$work/log" |
  grep --line-buffered -E '^SF-FRESH|make demo:|^ +[a-z-]+ +(succeeded|failed)|tests passed|tests failed|Failed|\*\*\*|Error' 
rc=${PIPESTATUS[0]}
set -e

# ---- result --------------------------------------------------------------------
np=$(grep -c '^ *[0-9]*/[0-9]* Test *#.*Passed' "$work/log" || true)
nf=$(grep -cE '^ *[0-9]*/[0-9]* Test *#.*(Failed|Timeout|Exception|Not Run)' "$work/log" || true)
demo=$(grep -c '^make demo: every example succeeded' "$work/log" || true)
if [ "$rc" != 0 ] || [ "$demo" != 1 ] || [ "$nf" != 0 ]; then
  tail -60 "$work/log" >&2
  log "FAILED: exit $rc after $((SECONDS - t0))s (the log's tail above; SF_KEEP=1 keeps the container)"
  echo "test-fresh: $((np + demo)) passed, $((nf + 1)) failed"
  exit 1
fi
log "done in $((SECONDS - t0))s: $(grep '^SF-FRESH [a-z-]* [0-9]*s' "$work/log" | cut -d' ' -f2,3 | paste -sd, -)"
echo "test-fresh: $((np + demo)) passed, 0 failed"
