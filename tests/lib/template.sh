# tests/lib/template.sh: a template for tests — a Debian minbase root file
# system made once with debootstrap and kept in a stable cache directory
# ($SANDFLEET_CACHE, default /var/cache/sandfleet), so that only the first
# run on a machine pays for it (~2.5 min and ~200 MB; then nothing).
# Its /etc/sandfleet-test-template says "minbase", which the host image lacks.

# sf_minbase_template: print the root's path; fail (with the reason on
# stderr) when it cannot be made. Parallel callers wait for one build.
sf_minbase_template() {
  local cache=${SANDFLEET_CACHE:-/var/cache/sandfleet} suite=${SF_TEMPLATE_SUITE:-bookworm}
  local dir=$cache/debootstrap-$suite-minbase
  local mirror=${SF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  if [ ! -f "$dir/etc/sandfleet-test-template" ]; then
    command -v debootstrap >/dev/null || { echo "template: debootstrap is not installed (scripts/deps.sh test)" >&2; return 1; }
    mkdir -p "$cache" || return 1
    (
      flock 9
      [ -f "$dir/etc/sandfleet-test-template" ] && exit 0
      tmp=$(mktemp -d "$cache/.minbase.XXXXXX") || exit 1
      chmod 755 "$tmp"   # a root file system: mktemp's 0700 keeps the sandboxes' ids out
      echo "template: debootstrap --variant=minbase $suite (once per machine, cached in $dir)" >&2
      if debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        echo minbase > "$tmp/etc/sandfleet-test-template"
        rm -rf "$dir" && mv "$tmp" "$dir"
      else
        echo "template: debootstrap failed, see $cache/debootstrap.log" >&2
        rm -rf "$tmp"
        exit 1
      fi
    ) 9>"$cache/.minbase.lock" || return 1
  fi
  # Caches made before the chmod above were 0700 (the worker refuses them).
  [ -O "$dir" ] && chmod go+rx "$dir"
  echo "$dir"
}

# sf_tiny_template DIR: a root file system of a few MB made from the host's
# own dash and cat (with the libraries they load) in DIR, instantly and
# without root or network: for tests that need *a* template, not a distro.
# Its /etc/sandfleet-test-template says "minbase" too. DIR and its parents
# must be searchable by the sandboxes' ids (chmod o+x).
sf_tiny_template() {
  local dir=$1 f lib
  mkdir -p "$dir/bin" "$dir/etc" || return 1
  cp /usr/bin/dash "$dir/bin/sh" && cp /usr/bin/cat "$dir/bin/cat" || return 1
  for lib in $(ldd /usr/bin/dash /usr/bin/cat | grep -o '/[^ ]*'); do
    [ -f "$lib" ] || continue
    mkdir -p "$dir$(dirname "$lib")" && cp -L "$lib" "$dir$lib" || return 1
  done
  echo minbase > "$dir/etc/sandfleet-test-template"
  chmod -R go+rX "$dir"
}
