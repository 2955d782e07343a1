#!/usr/bin/env bash
# scripts/apt-unpack.sh DIR PKG...: fetch Debian packages with apt-get download
# and unpack them into DIR without installing them (no maintainer script runs,
# nothing changes on the host): the test VM's kernel and busybox
# (tests/vm/run.sh), Docker's engine (deploy/test/compose-test-docker.sh).
# Done once: DIR/.complete marks a finished unpack; a failed one leaves no DIR.
set -euo pipefail
dir=$1
shift
[ -f "$dir/.complete" ] && exit 0
apt-cache show "$1" >/dev/null 2>&1 || apt-get update -qq
rm -rf "$dir" && mkdir -p "$dir/.dl"
if ! (cd "$dir/.dl" && apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null); then
  rm -rf "$dir"
  echo "apt-unpack: apt-get download $* failed" >&2
  exit 1
fi
for d in "$dir"/.dl/*.deb; do dpkg-deb -x "$d" "$dir"; done
rm -rf "$dir/.dl" && touch "$dir/.complete"
