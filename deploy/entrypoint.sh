#!/bin/sh
# Entrypoint of the sandfleet image: runs "$@" (default: sandfleet-worker).
#
# The local sandbox puts every agent in its own memory+pids cgroup below the
# worker's cgroup. Container runtimes mount the container's own cgroup
# read-only at /sys/fs/cgroup and (cgroup v1, or "cgroupns=host") show the
# host-side path in /proc/self/cgroup. When we are root with CAP_SYS_ADMIN
# (cap_add: [SYS_ADMIN]) and the cgroup mounts are read-only, this script
#   1. remounts the container's OWN cgroup directories read-write (the mounts
#      are bind mounts of that one subtree: nothing above it becomes visible),
#   2. enters a new cgroup namespace (unshare --cgroup), so /proc/self/cgroup
#      says "/" = the directory mounted at /sys/fs/cgroup/<controller>.
# Nothing happens without SYS_ADMIN, as non-root, or with --sandbox process|e2b.
# SANDFLEET_CGROUP_SETUP=0 skips it (e.g. a runtime that already delegates a
# writable cgroup subtree).
set -eu

want_cgroups() {
  [ "${SANDFLEET_CGROUP_SETUP:-1}" != 0 ] || return 1
  [ "$(id -u)" = 0 ] || return 1
  case "${SANDFLEET_SANDBOX:-local}" in local) ;; *) return 1 ;; esac
  case " $* " in *" --sandbox process "*|*" --sandbox e2b "*|*--sandbox=process*|*--sandbox=e2b*) return 1 ;; esac
  # CAP_SYS_ADMIN is bit 21 of the effective set.
  capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
  [ $(( (0x$capeff >> 21) & 1 )) = 1 ]
}

remount_rw() {   # remount_rw DIR: make a read-only cgroup mount writable
  dir=$1
  [ -d "$dir" ] || return 0
  awk -v d="$dir" '$5 == d { split($6, o, ","); ro = (o[1] == "ro") } END { exit !ro }' \
      /proc/self/mountinfo || return 0
  mount -o remount,rw,bind "$dir" 2>/dev/null || mount -o remount,rw "$dir"
}

if want_cgroups "$@"; then
  # The sandbox mounts a fresh /proc for its pid namespace. From inside a user
  # namespace the kernel allows that only while some procfs in this mount
  # namespace is fully visible (nothing mounted over parts of it), and the
  # runtime masks parts of /proc (/proc/kcore, /proc/sys read-only, ...). So
  # mount one unmasked procfs at a root-only path; /proc itself stays masked
  # for everything else. (CAP_SYS_ADMIN could remove the masks anyway; this
  # replaces docker's systempaths=unconfined / podman's unmask=ALL.)
  if [ "${SANDFLEET_PROC_SETUP:-1}" != 0 ] && ! grep -q ' /run/sandfleet/proc ' /proc/self/mountinfo; then
    mkdir -p /run/sandfleet/proc && chmod 700 /run/sandfleet
    mount -t proc -o nosuid,nodev,noexec proc /run/sandfleet/proc
  fi
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    remount_rw /sys/fs/cgroup                    # cgroup v2
  else
    remount_rw /sys/fs/cgroup/memory             # cgroup v1: the two the sandbox uses
    remount_rw /sys/fs/cgroup/pids
  fi
  # A private cgroup namespace rooted at our own cgroup, unless we are in one.
  if grep -q ':/.' /proc/self/cgroup; then
    exec unshare --cgroup -- "$@"
  fi
fi
exec "$@"
