#!/bin/bash
# PID 1 of the test VM (after tests/vm/init): sets up a machine the way a
# systemd host with the unified cgroup v2 hierarchy looks to sandfleet, runs
# the suites of $SF_VM_SUITES as root and as an unprivileged user, and powers
# off. Console lines starting with "SF-VM" are read by tests/vm/run.sh.
#   root suites: each in /system.slice/sf-<name>.service (Delegate=yes)
#   user suites: uid 4242 "sfvm"; /user.slice/user-4242.slice/user@4242.service
#                is owned by the user with memory, pids and cpu enabled for its
#                children (systemd's user@.service: Delegate=pids memory cpu);
#                each suite runs in its own app.slice/sf-<name>.scope there,
#                as `systemd-run --user --scope -p Delegate=yes` would.
set -u
run=$1
# shellcheck source=/dev/null
. "$run/env"
export PATH SF_SRC SF_BUILD SF_BIN SF_VM_IMAGE
exec </dev/null >/dev/console 2>&1
say() { echo "SF-VM $*"; }
halt() { sync; echo o >/proc/sysrq-trigger; sleep 60; }

# ---- the machine ------------------------------------------------------------------
# /tmp stays the host's, seen through the overlay (the repository may be
# there); what the guest writes goes to the overlay's tmpfs.
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /dev/pts /dev/shm "$run/logs"
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
ln -sf /proc/self/fd /dev/fd
for i in 0 1 2; do ln -sf "/proc/self/fd/$i" "/dev/$(echo stdin stdout stderr | cut -d' ' -f$((i + 1)))"; done
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# The kernel's own modules (veth, nf_tables, ...) for its automatic loading.
kver=$(uname -r)
if [ -n "${SF_VM_MODULES:-}" ] && [ -d "$SF_VM_MODULES" ]; then
  mkdir -p "/lib/modules/$kver" && mount --bind "$SF_VM_MODULES" "/lib/modules/$kver"
fi
ip link set lo up
hostname sf-vm
echo 'sfvm:x:4242:4242:sandfleet VM test user:/home/sfvm:/bin/bash' >>/etc/passwd
echo 'sfvm:x:4242:' >>/etc/group
mkdir -p /home/sfvm && chown 4242:4242 /home/sfvm

# ---- cgroups as systemd lays them out ---------------------------------------------
cg=/sys/fs/cgroup
ctl="+cpu +memory +pids +io"
mkdir -p "$cg/init.scope" "$cg/system.slice" "$cg/user.slice"
echo $$ >"$cg/init.scope/cgroup.procs"        # no process stays in the root
echo "$ctl" >"$cg/cgroup.subtree_control"
echo "$ctl" >"$cg/system.slice/cgroup.subtree_control"
usvc=$cg/user.slice/user-4242.slice/user@4242.service
mkdir -p "$usvc/app.slice"
echo "+cpu +memory +pids" >"$cg/user.slice/cgroup.subtree_control"
echo "+cpu +memory +pids" >"$cg/user.slice/user-4242.slice/cgroup.subtree_control"
# Delegate=yes: the directory and its cgroup.procs, cgroup.subtree_control and
# cgroup.threads belong to the user; the user manager enables the delegated
# controllers below (systemd --user puts the user's processes in app.slice).
chown 4242:4242 "$usvc" "$usvc"/cgroup.procs "$usvc"/cgroup.subtree_control "$usvc"/cgroup.threads
chown -R 4242:4242 "$usvc/app.slice"
setpriv --reuid=4242 --regid=4242 --clear-groups sh -c \
  "echo '+cpu +memory +pids' >'$usvc/cgroup.subtree_control' &&
   echo '+cpu +memory +pids' >'$usvc/app.slice/cgroup.subtree_control'"

say "kernel: $(uname -r) ($(uname -v | cut -c1-40)), $(nproc) cpus, $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo)"
say "cgroup mounts: $(awk '$3 ~ /^cgroup/ {print $3 " on " $2}' /proc/mounts | paste -sd, -)"
say "controllers at the root: $(cat $cg/cgroup.controllers)"
say "controllers delegated to system.slice services: $(cat $cg/system.slice/cgroup.subtree_control)"
say "controllers delegated to user@4242.service (owner $(stat -c %U "$usvc")): $(cat "$usvc/app.slice/cgroup.subtree_control")"
say "unprivileged user namespaces: kernel.unprivileged_userns_clone=$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo n/a), user.max_user_namespaces=$(cat /proc/sys/user/max_user_namespaces)"

# ---- the suites -------------------------------------------------------------------
total_pass=0 total_fail=0 nsuites=0
# counts LOG RC: "<passed> <failed>" from cmocka's or the plain closing lines
counts() {
  local log=$1 rc=$2 p=0 f=0 line
  if grep -q '^\[  PASSED  \]\|^\[  FAILED  \]' "$log"; then
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    # cmocka prints no PASSED line when every test failed
    [ -z "$p" ] && p=$(( $(grep -c '^\[       OK \]' "$log") ))
  elif line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1) && [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
  fi
  p=${p:-0} f=${f:-0}
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1      # died, or a setup failure
  echo "$p $f"
}

# run_suite WHO NAME TIMEOUT CMD...
run_suite() {
  local who=$1 name=$2 tmo=$3 dir log rc t0 p f
  shift 3
  log=$run/logs/$who-$name.log
  if [ "$who" = root ]; then
    dir=$cg/system.slice/sf-$name.service
    mkdir -p "$dir"
  else
    dir=$usvc/app.slice/sf-$name.scope
    mkdir -p "$dir" && chown 4242:4242 "$dir" "$dir"/cgroup.procs "$dir"/cgroup.subtree_control "$dir"/cgroup.threads
  fi
  t0=$SECONDS
  (
    echo "$BASHPID" >"$dir/cgroup.procs"
    cd "$SF_SRC" || exit 1
    if [ "$who" = root ]; then
      exec timeout -k 10 "$tmo" env HOME=/root "$@"
    else
      exec setpriv --reuid=4242 --regid=4242 --clear-groups \
        env -i HOME=/home/sfvm USER=sfvm LOGNAME=sfvm PATH=/usr/local/bin:/usr/bin:/bin \
        SF_SRC="$SF_SRC" SF_BUILD="$SF_BUILD" SF_BIN="$SF_BIN" \
        timeout -k 10 "$tmo" "$@"
    fi
  ) >"$log" 2>&1
  rc=$?
  read -r p f < <(counts "$log" "$rc")
  total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) nsuites=$((nsuites + 1))
  say "$(printf '%-4s %-22s %3d passed, %d failed  rc=%d  %4ds' "$who" "$name" "$p" "$f" "$rc" $((SECONDS - t0)))"
  if [ "$f" -ne 0 ]; then
    grep -E '^\[  (FAILED|ERROR) |^\[  ERROR   \]|^not ok|FAIL|[Ee]rror' "$log" | head -20 | sed 's/^/    | /'
  fi
  rmdir "$dir"/*/ "$dir"/*/*/ "$dir" 2>/dev/null   # what the suite left (reported below)
}

[ -r "$SF_VM_SUITES" ] || { say "cannot read $SF_VM_SUITES"; total_fail=1; }
while read -r who name tmo cmd; do
  case "$who" in ''|'#'*) continue ;; esac
  eval "set -- $cmd"
  if [ -n "${SF_VM_ONLY:-}" ] && ! echo " $SF_VM_ONLY " | grep -q " $name "; then continue; fi
  case "$who" in
    root|user) run_suite "$who" "$name" "$tmo" "$@" ;;
    both) run_suite root "$name" "$tmo" "$@"; run_suite user "$name" "$tmo" "$@" ;;
    *) say "bad line in suites: $who $name"; total_fail=$((total_fail + 1)) ;;
  esac
done < <(cat "$SF_VM_SUITES" 2>/dev/null)
[ "$nsuites" -gt 0 ] || { say "no suite ran"; total_fail=$((total_fail + 1)); }

left=$(find "$cg" -mindepth 1 -type d -name 'sf-*' -path '*sandfleet*' | head -5)
if [ -n "$left" ]; then
  say "cgroups left behind: $left"
  total_fail=$((total_fail + 1))
fi
say "suites: $nsuites"
echo "$total_pass passed, $total_fail failed" >"$run/summary"
rc=0; [ "$total_fail" -eq 0 ] || rc=1
echo "SF-VM-RESULT rc=$rc passed=$total_pass failed=$total_fail"
halt
