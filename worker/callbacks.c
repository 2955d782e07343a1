/* worker/callbacks.c: the worker delivers its queue's pending callbacks
 * (task results, and run documents queued by coordinators) with the
 * dispatcher of common/callback/callback_dispatch.h on its own thread, so slow or
 * absent receivers never hold up task execution or lease renewal. Every
 * worker of a queue takes part; the broker's leases keep two workers from
 * delivering the same callback at once. */
#include "worker.h"
#include "util.h"

#include <errno.h>

int worker_callbacks_start(struct worker *w, char *err, size_t errlen)
{
    const struct worker_cfg *cfg = w->cfg;
    int rc;
    if (cfg->callback_concurrency == 0) {
        SF_LOGI(w->lg, "callbacks: not delivered by this worker (--callback-concurrency 0)");
        return 0;
    }
    if (!sf_broker_has_callbacks(w->b)) {
        SF_LOGI(w->lg, "callbacks: the %s backend does not support them yet; none delivered",
                w->b->ops->scheme);
        return 0;
    }
    if ((rc = sf_callback_net_allow_add(&w->cb_allow, cfg->callback_allow, err, errlen)) < 0) return rc;
    sf_callback_net_allow_done(&w->cb_allow);
    struct sf_callback_dispatch_cfg dc = {
        .b = w->b, .lg = w->lg, .allow = &w->cb_allow,
        .concurrency = (int)cfg->callback_concurrency, .timeout_ms = cfg->callback_timeout_ms,
        .max_attempts = (int)cfg->callback_attempts, .base_ms = cfg->callback_base_ms,
        .max_body = (size_t)cfg->callback_max_body, .secrets = &w->secrets,
    };
    if (!(w->cbd = sf_callback_dispatch_start(&dc, err, errlen))) return -EAGAIN;
    SF_LOGI(w->lg, "callbacks: delivering up to %ld at once; destinations: %s%s", cfg->callback_concurrency,
            w->cb_allow.n ? "listed hosts" : "public addresses only",
            w->cb_allow.n && w->cb_allow.any_public ? " and public addresses" : "");
    return 0;
}

void worker_callbacks_stop(struct worker *w)
{
    sf_callback_dispatch_stop(w->cbd);
    w->cbd = NULL;
    sf_callback_net_allow_clear(&w->cb_allow);
}
