#!/bin/bash
# sandfleet-worker --http: /metrics, /healthz, /readyz against a real redis-server.
#  1. right after start every task series is there and 0; /healthz and
#     /readyz are 200;
#  2. an ok task, a failing one, a timeout, one failing twice (1 retry) and
#     a malformed message move the counters by exactly what happened:
#     started 5, succeeded 1, failed 3, timed_out 1, retried 1,
#     dead_lettered 4; both histograms count 5; nothing in flight;
#  3. leases of a running task are renewed; a task held by a dead consumer
#     is reclaimed (reclaimed 1) and run;
#  4. a Redis restart is counted as a reconnect and /readyz is 200 again;
#  5. SIGTERM with a task in flight: /readyz 503 (draining) while /healthz
#     stays 200, then a clean exit 0.
set -u
source "$SF_SRC/tests/lib/fleet.sh"
fleet_init metrics
PORT=$(redis_free_port)
H="http://127.0.0.1:$PORT"
worker_start w1 --concurrency 2 --lease-ms 600 --retry-base-ms 50 --http "127.0.0.1:$PORT"
wait_for 10 'curl -sf "$H/readyz" >/dev/null' || fail "/readyz never became 200"

scrape() { curl -sf "$H/metrics" >"$T/metrics.txt" || fail "scrape failed"; }
# m 'name{labels}': the value of one series in the last scrape
m() { awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.txt"; }
tasks() { m "sandfleet_tasks_total{queue=\"default\",status=\"$1\"}"; }
expect() {   # expect WHAT GOT WANT
    [ "$2" = "$3" ] || fail "$1: expected $3, got '${2}'"
}

# --- 1. zeros ---------------------------------------------------------------------
scrape
for s in started succeeded failed timed_out dead_lettered retried; do expect "tasks $s at start" "$(tasks $s)" 0; done
expect "in flight at start" "$(m 'sandfleet_tasks_in_flight{queue="default"}')" 0
expect "slots" "$(m 'sandfleet_worker_slots{queue="default"}')" 2
expect "reconnects at start" "$(m sandfleet_broker_reconnects_total)" 0
[ "$(m process_resident_memory_bytes)" -gt 1000000 ] || fail "no sensible process RSS"
grep -q '^# TYPE sandfleet_task_duration_seconds histogram' "$T/metrics.txt" || fail "no task duration histogram"
expect "/healthz" "$(curl -s -o /dev/null -w '%{http_code}' "$H/healthz")" 200

# --- 2. outcomes ----------------------------------------------------------------------
rcli XADD sf:default:tasks '*' task "$(task_json ok-1 m1 cat)" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json fail-1 m1 'exit 3')" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json slow-1 m1 'sleep 5' '{"timeout_s": 1}')" >/dev/null
rcli XADD sf:default:tasks '*' task "$(task_json twice-1 m1 'exit 4' '{"max_attempts": 2}')" >/dev/null
rcli XADD sf:default:tasks '*' task 'not json{' >/dev/null
wait_for 20 '[ "$(rcli XLEN sf:run:m1:results)" = 4 ] && [ "$(rcli XLEN sf:default:dead)" = 4 ]' \
    || fail "the five messages were not settled"
wait_for 5 'scrape; [ "$(tasks dead_lettered)" = 4 ] && [ "$(m "sandfleet_tasks_in_flight{queue=\"default\"}")" = 0 ]' \
    || fail "counters did not settle: $(grep sandfleet_tasks "$T/metrics.txt")"
expect started "$(tasks started)" 5
expect succeeded "$(tasks succeeded)" 1
expect failed "$(tasks failed)" 3
expect timed_out "$(tasks timed_out)" 1
expect retried "$(tasks retried)" 1
expect dead_lettered "$(tasks dead_lettered)" 4
expect "duration count" "$(m 'sandfleet_task_duration_seconds_count{queue="default"}')" 5
expect "create count" "$(m 'sandfleet_sandbox_create_duration_seconds_count{queue="default",sandbox="local"}')" 5
expect "duration +Inf bucket" "$(m 'sandfleet_task_duration_seconds_bucket{queue="default",le="+Inf"}')" 5
# The timeout ran about a second: it lands above the 0.5 s bucket.
[ "$(m 'sandfleet_task_duration_seconds_bucket{queue="default",le="0.5"}')" = 4 ] \
    || fail "the 1 s timeout is not above the 0.5 s bucket: $(grep duration_seconds_bucket "$T/metrics.txt")"
[ "$(m 'sandfleet_lease_renewals_total{queue="default"}')" -ge 1 ] || fail "no lease renewal while the timeout task ran"

# --- 3. reclaim: a consumer that took a task and died --------------------------------------
# One script, so the live worker's blocked read cannot take the entry first.
rcli EVAL "redis.call('XADD', KEYS[1], '*', 'task', ARGV[1])
           return redis.call('XREADGROUP', 'GROUP', 'workers', 'ghost', 'COUNT', 1, 'STREAMS', KEYS[1], '>')" \
    1 sf:default:tasks "$(task_json orphan-1 m2 cat)" >/dev/null
wait_for 15 '[ "$(rcli XLEN sf:run:m2:results)" = 1 ]' || fail "the orphaned task was not reclaimed and run"
scrape
expect reclaimed "$(m 'sandfleet_tasks_reclaimed_total{queue="default"}')" 1
expect "started after reclaim" "$(tasks started)" 6
expect "succeeded after reclaim" "$(tasks succeeded)" 2

# --- 4. Redis restart -----------------------------------------------------------------
redis_restart || fail "redis did not come back"
wait_for 15 'scrape; [ "$(m sandfleet_broker_reconnects_total)" -ge 1 ]' || fail "reconnect not counted"
wait_for 10 '[ "$(curl -s -o /dev/null -w "%{http_code}" "$H/readyz")" = 200 ]' || fail "not ready after the restart"

# --- 5. drain --------------------------------------------------------------------------
rcli XADD sf:default:tasks '*' task "$(task_json drain-1 m3 'sleep 2; cat')" >/dev/null
wait_for 10 'scrape; [ "$(m "sandfleet_tasks_in_flight{queue=\"default\"}")" = 1 ]' || fail "drain task not in flight"
kill -TERM "${WPID[w1]}"
wait_for 5 '[ "$(curl -s -o /dev/null -w "%{http_code}" "$H/readyz")" = 503 ]' || fail "/readyz not 503 while draining"
curl -s "$H/readyz" | grep -q draining || fail "/readyz does not say draining"
expect "/healthz while draining" "$(curl -s -o /dev/null -w '%{http_code}' "$H/healthz")" 200
wait "${WPID[w1]}"
rc=$?
unset "WPID[w1]"
expect "exit code after the drain" "$rc" 0
expect "drained task result" "$(rcli XLEN sf:run:m3:results)" 1
echo "PASS"
