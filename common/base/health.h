/* common/base/health.h: the probes every daemon serves next to /metrics.
 *   /healthz  200 while the daemon's loop thread is alive: the loop stamps
 *             sf_health_beat() every turn; no stamp for stale_ms -> 503.
 *   /readyz   200 once connected to the broker and not draining; 503
 *             otherwise, so a load balancer or Kubernetes stops sending work.
 *   /metrics  the registry in the Prometheus text format.
 * Liveness and readiness are separate on purpose: a worker waiting for Redis
 * is alive (restarting it would not help) but not ready.
 * Thread: the loop writes the atomics; the HTTP thread reads them. */
#ifndef SF_HEALTH_H
#define SF_HEALTH_H

#include <stdatomic.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"

struct sf_health {
    atomic_llong beat_ms;       /* sf_now_ms() of the loop's last turn */
    atomic_int connected;       /* the broker answered the last call */
    atomic_int draining;        /* stopping: take no new work */
    int64_t stale_ms;           /* /healthz fails after this long without a beat */
};

/* stale_ms <= 0 means 30 s. Starts with a beat, not connected, not draining. */
void sf_health_init(struct sf_health *h, int64_t stale_ms);
void sf_health_beat(struct sf_health *h);
void sf_health_set_connected(struct sf_health *h, int connected);
void sf_health_set_draining(struct sf_health *h);

/* Route /healthz, /readyz and /metrics on 'http', open (no auth hook). Both objects are borrowed
 * and must outlive the server. */
void sf_health_routes(struct sf_http *http, struct sf_health *h, struct sf_metrics *m);

#endif
