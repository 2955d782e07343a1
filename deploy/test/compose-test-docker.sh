#!/usr/bin/env bash
# make compose-test-docker: deploy/compose-test.sh against Debian's Docker
# engine (docker.io 20.10 + containerd 1.6 + runc), the engine users run the
# compose file with (docs/deploy.md, "Docker engine").
#
#   1. docker.io and containerd from Debian, fetched with apt-get download and
#      unpacked into the cache - not installed: the package's postinst would
#      start a daemon for the whole host that rewrites its iptables
#   2. dockerd on a private socket, data and exec root, overlay2 storage;
#      --iptables=false --ip-masq=false --bridge=none: this shared host's
#      firewall is left alone (compose's own bridge networks and their DNS
#      work without it; nothing on them needs a way out)
#   3. the images make compose-test built with podman (sandfleet-test/
#      sandfleet, redis, kafka), moved over with podman save | docker load
#      (building here would need outbound NAT, i.e. the host's iptables)
#   4. compose-test.sh with SF_USE_DOCKER=1 SF_SKIP_BUILD=1
#   5. dockerd stopped, its directories removed
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=host-setup.sh
source "$here/host-setup.sh"
cache=${SF_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandfleet/docker}
run=$(mktemp -d /tmp/sf-dockerd.XXXXXX)
dpid=
fail() { sf_log "FAILED: $*"; echo "compose-test-docker: FAILED: $*"; exit 1; }
cleanup() {
  set +e
  if [ -n "$dpid" ]; then
    kill "$dpid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dpid" 2>/dev/null
  fi
  # overlay2 and the containers' mounts live under the data root
  grep -o " $run/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$run"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run it as root"
sf_host_packages

# ---- 1. Debian's engine ------------------------------------------------------------
apt-cache show docker.io >/dev/null 2>&1 || apt-get update -qq
ver=$(apt-cache policy docker.io | awk '/Candidate:/ { print $2 }')
eng=$cache/docker.io-$ver
if [ ! -f "$eng/.complete" ]; then
  sf_log "fetching docker.io $ver and containerd (apt-get download, once)"
  rm -rf "$cache"
  bash "$here/../../scripts/apt-unpack.sh" "$eng" docker.io containerd || fail "apt-get download docker.io containerd"
fi
export PATH=$eng/usr/bin:$eng/usr/sbin:$PATH

# ---- 2. the daemon -----------------------------------------------------------------
mkdir -p "$run/data" "$run/exec"
sock=$run/docker.sock
dockerd --data-root "$run/data" --exec-root "$run/exec" --pidfile "$run/docker.pid" \
  -H "unix://$sock" --storage-driver overlay2 --iptables=false --ip6tables=false \
  --ip-masq=false --bridge=none >"$run/dockerd.log" 2>&1 &
dpid=$!
export DOCKER_HOST=unix://$sock
for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
docker info >/dev/null 2>&1 || { tail -20 "$run/dockerd.log" >&2; fail "dockerd did not start"; }
sf_log "dockerd $(docker version -f '{{.Server.Version}}') up: $(docker info -f 'storage {{.Driver}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}}), runtime {{.DefaultRuntime}}')"

# ---- 3. images -----------------------------------------------------------------------
imgs=(sandfleet-test/sandfleet sandfleet-test/redis sandfleet-test/kafka)
for i in "${imgs[@]}"; do
  podman image exists "$i:latest" || fail "no podman image $i: make compose-test builds it"
done
podman save --format docker-archive -m "${imgs[@]/%/:latest}" | docker load >/dev/null ||
  fail "docker load of the podman images"
for i in "${imgs[@]}"; do
  docker image inspect "$i:latest" >/dev/null 2>&1 || docker tag "localhost/$i:latest" "$i:latest"
done
sf_log "images loaded: ${imgs[*]}"

# ---- 4. the compose test ---------------------------------------------------------
SF_USE_DOCKER=1 SF_SKIP_BUILD=1 SF_COMPOSE_PROJECT=${SF_COMPOSE_PROJECT:-sfdockertest} \
  bash "$here/../compose-test.sh" 2>&1 | sed -u 's/^compose-test:/compose-test-docker:/'
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { tail -20 "$run/dockerd.log" >&2; exit "$rc"; }
