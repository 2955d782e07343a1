#!/usr/bin/env bash
# Host preparation for deploy/compose-test.sh on a machine without a Docker
# engine: podman (runc) + Debian's docker-compose 1.29 + a debian:bookworm-slim
# base image made with debootstrap when no registry can be pulled from.
# Sourced by compose-test.sh; every step is idempotent.

sf_log() { printf '[compose-test %s] %s\n' "$(date +%T)" "$*" >&2; }

sf_host_packages() {
  local need=() p
  # dnsname: service names on compose networks (podman 4.3 with CNI). It
  # comes with podman's recommends; a podman installed without them resolves
  # no service name ("redis: Name or service not known").
  for p in podman docker-compose debootstrap runc golang-github-containernetworking-plugin-dnsname; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "compose-test needs: sudo apt-get install -y ${need[*]}" >&2
    return 1
  fi
  sf_log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# /etc/containers/containers.conf needs runtime = "runc" in [engine] (crun
# fails on cgroups v1 hybrid: "cgroups in hybrid mode not supported") and
# default_ulimits in [containers] (the VM's hard limits cannot be raised inside
# containers). Adds or corrects exactly those two keys; everything else in the
# file is kept; the previous file is saved as containers.conf.sandfleet-bak.
sf_containers_conf() {
  local f=${1:-/etc/containers/containers.conf}
  python3 - "$f" <<'PY'
import os, re, shutil, sys
path = sys.argv[1]
want = {"engine": ("runtime", 'runtime = "runc"'),
        "containers": ("default_ulimits", 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]')}
lines = open(path).read().splitlines() if os.path.exists(path) else []
section, seen, out, changed = None, set(), [], False
def flush(sec):
    global changed
    if sec in want and sec not in seen:
        out.append(want[sec][1]); seen.add(sec); changed = True
for ln in lines:
    m = re.match(r'\s*\[([^\]]+)\]\s*$', ln)
    if m:
        flush(section); section = m.group(1).strip(); out.append(ln); continue
    if section in want:
        key, good = want[section]
        if re.match(r'\s*%s\s*=' % key, ln):
            seen.add(section)
            if ln.strip() != good:
                ln = good; changed = True
    out.append(ln)
flush(section)
for sec in want:
    if sec not in seen:
        if not any(re.match(r'\s*\[%s\]\s*$' % sec, l) for l in out):
            out += ["", "[%s]" % sec, want[sec][1]]; changed = True
if changed:
    if os.path.exists(path): shutil.copy(path, path + ".sandfleet-bak")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write("\n".join(out).lstrip("\n") + "\n")
    print("updated " + path)
PY
}

# debian:bookworm-slim: pulled where a registry answers; otherwise built with
# debootstrap (minbase) and imported.
sf_base_image() {
  podman image exists debian:bookworm-slim && return 0
  if [ "${SF_TRY_PULL:-0}" = 1 ] && podman pull -q docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
    return 0
  fi
  local dir mirror=${SF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  dir=$(mktemp -d /var/tmp/sf-bookworm.XXXXXX)
  sf_log "making debian:bookworm-slim with debootstrap from $mirror"
  if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
    tail -20 "$dir.log" >&2; rm -rf "$dir" "$dir.log"; return 1
  fi
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  local rc=$?
  rm -rf "$dir" "$dir.log"
  return $rc
}
