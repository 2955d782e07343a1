/* worker/obs.c: the worker's metric families (see obs.h and the table in
 * docs/operations.md). Every series is created at start-up, so a scrape
 * shows zeros before the first task instead of missing series, and rate()
 * works from the first sample. */
#include "obs.h"
#include "util.h"

#include <stdio.h>

/* Sandbox creation is milliseconds; task runs are seconds to minutes. */
static const double create_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25, 0.5, 1, 2.5, 5, 10, 30 };

void worker_obs_init(struct worker_obs *o, const char *queue, const char *sandbox, long slots,
                     int64_t stale_ms)
{
    char l[256];
    struct sf_metrics *m = sf_metrics_new();
    static const char tasks_help[] =
        "Task attempts started and how they ended (succeeded, failed, timed_out), "
        "messages dead-lettered, attempts scheduled for a retry and deliveries handed on "
        "unrun (waiting at a gate, moved to their priority band, or left for a worker with "
        "their secrets), per queue.";
    o->m = m;
    o->http = NULL;
    sf_health_init(&o->health, stale_ms);
#define TASKS(field, status)                                                              \
    snprintf(l, sizeof(l), "queue=\"%s\",status=\"" status "\"", queue);                 \
    o->field = sf_metrics_counter(m, "sandfleet_tasks_total", tasks_help, l)
    TASKS(started, "started");
    TASKS(succeeded, "succeeded");
    TASKS(failed, "failed");
    TASKS(timed_out, "timed_out");
    TASKS(dead_lettered, "dead_lettered");
    TASKS(retried, "retried");
    TASKS(handed_on, "handed_on");
#undef TASKS
    snprintf(l, sizeof(l), "queue=\"%s\"", queue);
    o->task_s = sf_metrics_hist(m, "sandfleet_task_duration_seconds",
                                "Wall time of a task attempt, sandbox creation included.", l, NULL, 0);
    o->inflight = sf_metrics_gauge(m, "sandfleet_tasks_in_flight",
                                   "Deliveries this worker holds (running or being settled).", l);
    o->slots = sf_metrics_gauge(m, "sandfleet_worker_slots", "Sandboxes this worker runs at once.", l);
    o->renewals = sf_metrics_counter(m, "sandfleet_lease_renewals_total",
                                     "Leases renewed on running tasks.", l);
    o->leases_lost = sf_metrics_counter(m, "sandfleet_leases_lost_total",
                                        "Leases found taken over by another worker at renewal.", l);
    o->reclaimed = sf_metrics_counter(m, "sandfleet_tasks_reclaimed_total",
                                      "Deliveries taken over from workers whose lease ran out.", l);
    snprintf(l, sizeof(l), "queue=\"%s\",sandbox=\"%s\"", queue, sandbox);
    o->create_s = sf_metrics_hist(m, "sandfleet_sandbox_create_duration_seconds",
                                  "Time to create a sandbox for a task.", l, create_buckets,
                                  (int)(sizeof(create_buckets) / sizeof(create_buckets[0])));
    o->reconnects = sf_metrics_counter(m, "sandfleet_broker_reconnects_total",
                                       "Broker connections re-established after a failure.", NULL);
    sf_gauge_set(o->slots, slots);
}

int worker_obs_listen(struct worker_obs *o, const char *hostport, const struct sf_http_limits *lim,
                      const struct sf_log *lg, char *err, size_t errlen)
{
    o->http = sf_http_new(lim);
    sf_http_set_log(o->http, lg);
    sf_health_routes(o->http, &o->health, o->m);
    return sf_http_listen(o->http, hostport, err, errlen);
}

void worker_obs_attempt(struct worker_obs *o, const struct sf_result *r, int64_t create_ms)
{
    if (r->status == SF_RESULT_OK) sf_counter_inc(o->succeeded);
    else if (r->status == SF_RESULT_TIMEOUT) sf_counter_inc(o->timed_out);
    else sf_counter_inc(o->failed);
    sf_hist_observe(o->task_s, (double)r->duration_ms / 1000.0);
    if (create_ms >= 0) sf_hist_observe(o->create_s, (double)create_ms / 1000.0);
}

void worker_obs_reconnected(void *arg)
{
    struct worker_obs *o = arg;
    sf_counter_inc(o->reconnects);
}

void worker_obs_free(struct worker_obs *o)
{
    sf_http_free(o->http);
    o->http = NULL;
    sf_metrics_free(o->m);
    o->m = NULL;
}
