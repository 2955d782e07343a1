/* common/base/health.c: see health.h. The handlers only read atomics and render
 * the registry, so they never wait on the loop thread: a wedged loop is
 * exactly what /healthz must be able to report. */
#include "health.h"
#include "util.h"

#include <stdio.h>

void sf_health_init(struct sf_health *h, int64_t stale_ms)
{
    atomic_store(&h->beat_ms, sf_now_ms());
    atomic_store(&h->connected, 0);
    atomic_store(&h->draining, 0);
    h->stale_ms = stale_ms > 0 ? stale_ms : 30000;
}

void sf_health_beat(struct sf_health *h) { atomic_store(&h->beat_ms, sf_now_ms()); }
void sf_health_set_connected(struct sf_health *h, int connected) { atomic_store(&h->connected, connected); }
void sf_health_set_draining(struct sf_health *h) { atomic_store(&h->draining, 1); }

static void healthz(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct sf_health *h = arg;
    int64_t age = sf_now_ms() - atomic_load(&h->beat_ms);
    char msg[128];
    (void)req;
    if (age > h->stale_ms) {
        snprintf(msg, sizeof(msg), "stale: the loop thread last ran %lld ms ago\n", (long long)age);
        sf_http_reply(resp, 503, NULL, msg);
    } else {
        snprintf(msg, sizeof(msg), "ok: loop ran %lld ms ago\n", (long long)age);
        sf_http_reply(resp, 200, NULL, msg);
    }
}

static void readyz(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct sf_health *h = arg;
    (void)req;
    if (atomic_load(&h->draining))
        sf_http_reply(resp, 503, NULL, "draining\n");
    else if (!atomic_load(&h->connected))
        sf_http_reply(resp, 503, NULL, "not connected to the broker\n");
    else
        sf_http_reply(resp, 200, NULL, "ready\n");
}

static void metrics(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct sf_buf b = {0};
    (void)req;
    sf_metrics_render(arg, &b);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = sf_buf_steal(&b, &resp->len);
}

void sf_health_routes(struct sf_http *http, struct sf_health *h, struct sf_metrics *m)
{
    sf_http_route_open(http, "GET", "/healthz", healthz, h);
    sf_http_route_open(http, "GET", "/readyz", readyz, h);
    sf_http_route_open(http, "GET", "/metrics", metrics, m);
}
