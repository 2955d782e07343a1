#!/usr/bin/env bash
# bench/peers.sh: install the peers the benchmarks compare against, at pinned
# versions, into bench/ (never system-wide):
#   bench/.venv          Celery, redis-py, confluent-kafka, matplotlib (requirements.txt)
#   bench/node_modules   BullMQ and ioredis (package.json + package-lock.json, npm ci)
# Idempotent and quick when nothing changed: each part keeps the hash of its
# lock file and is rebuilt only when that differs. Called by bench/run.sh and
# by every section that needs a peer. The Debian side (python3-venv, nodejs,
# npm, bubblewrap, redis-server, java for Kafka) is scripts/deps.sh bench.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sum() { sha256sum "$1" | cut -d' ' -f1; }

want=$(sum "$here/requirements.txt")
stamp=$here/.venv/.requirements.sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench/peers.sh: installing bench/.venv from requirements.txt" >&2
  rm -rf "$here/.venv"
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

want=$(sum "$here/package-lock.json")
stamp=$here/node_modules/.package-lock.sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  command -v npm >/dev/null || { echo "bench/peers.sh: npm is missing (scripts/deps.sh bench)" >&2; exit 1; }
  echo "bench/peers.sh: installing bench/node_modules from package-lock.json" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
fi
