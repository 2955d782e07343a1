#!/usr/bin/env bash
# make test-cgroup2: boot Debian's generic kernel under qemu (TCG) with only
# the unified cgroup v2 hierarchy and run the suites of tests/vm/suites in it,
# as root and as an unprivileged user with a delegated cgroup subtree
# (docs/security.md, "Where it was tested").
#
#   1. host: qemu-system-x86, kmod, cpio (scripts/deps.sh vm)
#   2. Debian's linux-image-amd64 (the current ABI package) and busybox-static,
#      fetched with apt-get download and unpacked into the cache; depmod
#   3. an initramfs: busybox, the virtio/9p/overlay modules, tests/vm/init
#   4. qemu: the host's / shared read-only over 9p (the guest writes to a
#      tmpfs overlay on top), the run directory shared read-write (env in,
#      logs out); tests/vm/guest.sh runs the suites and powers off
#   5. the guest's findings, one line per suite, and "N passed, N failed"
#
# KVM hangs at "Booting from ROM" on this kind of machine, so the guest is
# emulated (TCG): boot takes ~5 s, the suites run ~10x slower than on the host.
#
# Environment: SF_BUILD (default ./build: make build), SF_VM_SUITES (a suites
# file), SF_VM_ONLY="name ..." (run only these suites), SF_VM_MEM (MiB, 3072),
# SF_VM_CPUS (2), SF_VM_TIMEOUT (s, whole VM, 2400), SF_VM_CACHE (default
# ~/.cache/sandfleet/vm), SF_KEEP=1 keeps the run directory (logs).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${SF_BUILD:-$src/build}" && pwd)
suites=$(realpath "${SF_VM_SUITES:-$src/tests/vm/suites}")
cache=${SF_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandfleet/vm}
t0=$SECONDS

log() { printf '[test-cgroup2 %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; echo "test-cgroup2: 0 passed, 1 failed"; exit 1; }

# ---- 1. host tools ------------------------------------------------------------------
bash "$src/scripts/deps.sh" vm
[ -x "$build/bin/sandfleet-worker" ] || die "no build in $build (make build)"
mkdir -p "$cache"

# ---- 2. kernel and busybox from Debian's packages ---------------------------------------
apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -qq
kpkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
[ -n "$kpkg" ] || die "apt-cache knows no linux-image-amd64"
kver=${kpkg#linux-image-}
bbver=$(apt-cache policy busybox-static | awk '/Candidate:/ { print $2 }')

# apt-get download + unpack into the cache, once per version (nothing installed)
unpack() {
  [ -f "$2/.complete" ] || log "fetching $1 (apt-get download, once)"
  bash "$src/scripts/apt-unpack.sh" "$2" "$1"
}
kdir=$cache/$kpkg
unpack "$kpkg" "$kdir" || die "apt-get download $kpkg failed"
[ -f "$kdir/lib/modules/$kver/modules.dep" ] || depmod -b "$kdir" "$kver"
bbdir=$cache/busybox-static-$bbver
unpack busybox-static "$bbdir" || die "apt-get download busybox-static failed"
# Older versions are of no further use.
for d in "$cache"/linux-image-* "$cache"/busybox-static-*; do
  [ "$d" = "$kdir" ] || [ "$d" = "$bbdir" ] || rm -rf "$d"
done

# ---- 3. initramfs -------------------------------------------------------------------
run=$(mktemp -d /tmp/sf-vm.XXXXXX)
qpid=
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
  if [ "${SF_KEEP:-0}" = 1 ]; then log "kept $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
ird=$run/initrd
mkdir -p "$ird/bin" "$ird/modules" "$ird/proc" "$ird/sys" "$ird/dev"
cp "$bbdir/bin/busybox" "$ird/bin/busybox"
cp "$src/tests/vm/init" "$ird/init" && chmod 755 "$ird/init"
modprobe -d "$kdir" -S "$kver" -a --show-depends virtio_pci 9p 9pnet_virtio overlay |
  awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
    cp "$ko" "$ird/modules/" && basename "$ko" >>"$ird/modules/order"
  done
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$run/initrd.gz"
rm -rf "$ird"

# The image make compose-test built, for the container suite (tests/vm/container.sh).
img=
if grep -q 'tests/vm/container.sh' "$suites" && { [ -z "${SF_VM_ONLY:-}" ] || [[ " $SF_VM_ONLY " == *" container "* ]]; } &&
   command -v podman >/dev/null && podman image exists sandfleet-test/sandfleet:latest 2>/dev/null; then
  podman save -q --format docker-archive -o "$run/sandfleet.tar" sandfleet-test/sandfleet:latest &&
    img=/sf-run/sandfleet.tar
fi
{
  printf '%s=%q\n' SF_VM_IMAGE "$img"
  printf '%s=%q\n' SF_SRC "$src" SF_BUILD "$build" SF_BIN "$build/bin" SF_VM_SUITES "$suites" \
    SF_VM_MODULES "$kdir/lib/modules/$kver" SF_VM_ONLY "${SF_VM_ONLY:-}" \
    PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
} >"$run/env"
mkdir -p "$run/logs"

# ---- 4. boot --------------------------------------------------------------------------
log "booting $kpkg under qemu (TCG, ${SF_VM_CPUS:-2} cpus, ${SF_VM_MEM:-3072} MiB); suites: $suites"
share="security_model=passthrough,multidevs=remap"
timeout -k 10 "${SF_VM_TIMEOUT:-2400}" qemu-system-x86_64 \
  -accel tcg -cpu max -m "${SF_VM_MEM:-3072}" -smp "${SF_VM_CPUS:-2}" \
  -display none -monitor none -serial stdio -nic none -no-reboot \
  -kernel "$kdir/boot/vmlinuz-$kver" -initrd "$run/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 cgroup_no_v1=all" \
  -virtfs "local,path=/,mount_tag=sfroot,readonly=on,$share" \
  -virtfs "local,path=$run,mount_tag=sfrun,$share" \
  </dev/null >"$run/console.log" 2>&1 &
qpid=$!
# Live progress: the guest's own lines.
tail -n +1 -F --pid="$qpid" "$run/console.log" 2>/dev/null |
  grep --line-buffered -E '^(SF-VM|vm-init|    \| )|Kernel panic' &
wait "$qpid" && qrc=0 || qrc=$?
qpid=
sleep 0.5

# ---- 5. result ------------------------------------------------------------------------
res=$(tr -d '\r' <"$run/console.log" | sed -n 's/^SF-VM-RESULT //p' | tail -1)
if [ -z "$res" ]; then
  log "the VM ended without a result (qemu exit $qrc); its console:"
  tr -d '\r' <"$run/console.log" | tail -40 >&2
  die "no result from the VM"
fi
eval "$res"   # rc= passed= failed=
if [ "${rc:-1}" -ne 0 ]; then
  for f in "$run"/logs/*.log; do
    [ -f "$f" ] || continue
    grep -qE '^\[  (FAILED|ERROR) |^not ok|^[0-9]+ passed, [1-9]' "$f" || continue
    log "--- $(basename "$f") (last 30 lines)"
    tail -30 "$f" >&2
  done
fi
log "done in $((SECONDS - t0))s"
echo "test-cgroup2: ${passed:-0} passed, ${failed:-1} failed"
[ "${rc:-1}" -eq 0 ]
