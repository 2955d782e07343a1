/* worker/obs.h: what a worker shows about itself: its Prometheus metrics
 * and, with --http HOST:PORT, /metrics, /healthz and /readyz (health.h).
 * The metrics exist with or without --http, so the task path updates them
 * unconditionally (lock-free atomics).
 * Thread: init/listen/free on the main thread; the counters from any
 * thread (pool threads count outcomes, the loop counts leases). */
#ifndef SF_WORKER_OBS_H
#define SF_WORKER_OBS_H

#include "health.h"
#include "http.h"
#include "metrics.h"
#include "task.h"

struct worker_obs {
    struct sf_metrics *m;
    struct sf_health health;
    struct sf_http *http;               /* NULL without --http */
    /* sandfleet_tasks_total{queue,status}: attempts started and how each
     * ended (succeeded / failed / timed_out), plus messages dead-lettered
     * and attempts sent back for a retry, and deliveries handed on unrun
     * (admit.c). */
    struct sf_counter *started, *succeeded, *failed, *timed_out, *dead_lettered, *retried,
                      *handed_on;
    struct sf_counter *renewals, *leases_lost, *reclaimed, *reconnects;
    struct sf_hist *task_s, *create_s;
    struct sf_gauge *inflight, *slots;
};

void worker_obs_init(struct worker_obs *o, const char *queue, const char *sandbox, long slots,
                     int64_t stale_ms);
/* Serve /metrics, /healthz, /readyz on HOST:PORT. 0 or -errno with err. */
int worker_obs_listen(struct worker_obs *o, const char *hostport, const struct sf_http_limits *lim,
                      const struct sf_log *lg, char *err, size_t errlen);
/* One finished attempt: its outcome counter and the duration histograms
 * (create_ms < 0: no sandbox was created). */
void worker_obs_attempt(struct worker_obs *o, const struct sf_result *r, int64_t create_ms);
/* The broker's on_reconnect hook (arg = struct worker_obs *). */
void worker_obs_reconnected(void *arg);
void worker_obs_free(struct worker_obs *o);   /* stops the server first */

#endif
