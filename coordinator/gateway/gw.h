/* coordinator/gateway/gw.h: the E2B gateway of the fleet (`sandfleet-coordinator
 * serve --e2b-listen HOST:PORT`, docs/e2b.md "Gateway"): one E2B endpoint for
 * every worker that joined with --e2b-ingress. It answers the REST calls
 * that concern the fleet (health, create, list) itself and proxies every
 * per-sandbox call — REST, envd, get_host, streams and WebSocket upgrades —
 * to the worker that owns the sandbox, signing each request with the
 * secret shared with the workers. Its state is the broker's: any number of
 * gateways can serve the same fleet, and a restarted one loses nothing.
 * Modules:
 *   gw_loop.c    the thread: epoll, accept, limits, timeouts, client connections
 *   gw_proxy.c   upstream connections (pooled per worker) and the relay
 *   gw_route.c   a parsed request -> local answer, lookup, proxy or create
 *   gw_create.c  create: placement, retries on refusal, the record
 *   gw_fleet.c   the worker table, the sandbox cache, broker jobs on a pool
 * Thread: start/stop from the owner (serve's main thread); everything else
 * runs on the gateway's own thread, broker calls on its pool. */
#ifndef SF_GW_H
#define SF_GW_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "http_guard.h"
#include "log.h"
#include "metrics.h"

struct sf_gw_cfg {
    const char *listen;                 /* "HOST:PORT"; port 0 picks one */
    char *const *api_keys;              /* X-API-Key values accepted; n 0: any (loopback only) */
    size_t n_api_keys;
    const void *secret;                 /* shared with the workers (copied) */
    size_t secret_len;
    struct sf_broker *b;                /* borrowed, thread-safe; must have the e2b ops */
    const struct sf_log *lg;
    struct sf_metrics *m;               /* its series go here (sandfleet_e2b_gateway_*); may be NULL */
    int64_t min_free_mb;                /* placement: a worker needs this much free memory */
    /* The bounds every listener keeps (http_guard.h; enforced here, on the
     * gateway's own loop): connections in all and per address, the head's
     * deadline, idle keep-alive connections, and the bodies the gateway
     * reads itself (creates). A relayed request is cut after
     * exchange_timeout_ms without a byte either way (0: 15 min; streams
     * carry keepalives). */
    struct sf_http_limits limits;
    int exchange_timeout_ms;
};

struct sf_gw;

/* Listen and start the gateway's thread. 0, or -errno with a message. */
int sf_gw_start(const struct sf_gw_cfg *cfg, struct sf_gw **out, char *err, size_t errlen);
int sf_gw_port(const struct sf_gw *g);
/* Close every connection, join, free. NULL is a no-op. */
void sf_gw_stop(struct sf_gw *g);

#endif
