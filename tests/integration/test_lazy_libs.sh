#!/bin/bash
# libcurl and libmicrohttpd are loaded on first use (common/base/lazy_curl.c,
# common/base/lazy_mhd.c), against a real redis-server:
#  1. an idle worker maps neither, nor the GnuTLS stack they pull in;
#  2. with --http it maps libmicrohttpd (and serves /healthz), still no libcurl;
#  3. a task with a callback loads libcurl, and the callback is delivered.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init lazylibs
mapped() { grep -q "/$2" "/proc/$1/maps"; }

# --- 1. idle ------------------------------------------------------------------------------
worker_start idle --concurrency 2
# Idle: its loop and callback dispatcher are running.
wait_for 10 'grep -q "caps per sandbox" "$T/idle.log" && grep -q "callbacks:" "$T/idle.log"' \
    || fail "the idle worker did not start"
W=${WPID[idle]}
kill -0 "$W" 2>/dev/null || fail "idle worker exited"
for lib in libcurl.so libmicrohttpd.so libgnutls.so; do
    mapped "$W" "$lib" && fail "an idle worker maps $lib"
done
worker_stop idle || fail "idle worker did not exit cleanly"

# --- 2. --http ------------------------------------------------------------------------------
HPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
worker_start web --concurrency 1 --http "127.0.0.1:$HPORT"
wait_for 10 'python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$HPORT/healthz" 2>/dev/null' \
    || fail "--http: /healthz does not answer"
mapped "${WPID[web]}" libmicrohttpd.so || fail "--http serves without libmicrohttpd mapped?"
mapped "${WPID[web]}" libcurl.so && fail "--http alone maps libcurl"
worker_stop web || fail "web worker did not exit cleanly"

# --- 3. a callback --------------------------------------------------------------------------
python3 "$SF_SRC/tests/integration/cb_receiver.py" "$T/port" "$T/received.jsonl" "$T/flag" \
    >"$T/receiver.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; fleet_cleanup' EXIT
wait_for 10 '[ -s "$T/port" ]' || fail "receiver did not start"
touch "$T/received.jsonl"
worker_start cb --concurrency 1 --callback-allow 127.0.0.1
wait_for 10 'grep -q "callbacks: delivering" "$T/cb.log"' || fail "the callback worker did not start"
mapped "${WPID[cb]}" libcurl.so && fail "libcurl mapped before any callback"
rcli XADD sf:default:tasks '*' task "$(task_json t-cb lazyrun cat \
    "{\"callback\":{\"url\":\"http://127.0.0.1:$(cat "$T/port")/ok/t-cb\"}}")" >/dev/null
wait_for 20 'grep -q "/ok/t-cb" "$T/received.jsonl"' || fail "the callback was not delivered"
mapped "${WPID[cb]}" libcurl.so || fail "a callback was delivered without libcurl mapped?"
worker_stop cb || fail "callback worker did not exit cleanly"
echo "ok: libcurl and libmicrohttpd load on first use"
