/* common/callback/callback_dispatch.h: delivers pending callbacks (callback.h) from
 * the broker to their URLs.
 *
 * One dispatcher thread per process drives a libcurl multi handle: it claims
 * due deliveries from the broker (each leased, so a dead process loses
 * nothing), resolves the host asynchronously (getaddrinfo_a), applies the
 * destination policy (callback_net.h) to every address, pins the checked
 * addresses for libcurl, signs and POSTs, then settles each delivery:
 * delivered, retried later (backoff + jitter, Retry-After) or dead-lettered.
 * Why its own thread rather than the worker's loop: the loop blocks inside
 * the broker (XREADGROUP BLOCK) to apply backpressure and must renew leases
 * on time; HTTP receivers that are slow or down must not delay either, and
 * task execution must not wait for them. The thread only shares the broker
 * (thread-safe) and the log.
 *
 * Thread: start/stop/stats from one owner thread (the daemon's main).
 */
#ifndef SF_CALLBACK_DISPATCH_H
#define SF_CALLBACK_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "callback_net.h"
#include "log.h"
#include "secrets.h"

#define SF_CALLBACK_DEFAULT_TIMEOUT_MS 10000
#define SF_CALLBACK_DEFAULT_CONCURRENCY 16
#define SF_CALLBACK_DEFAULT_MAX_BODY (1u << 20)
#define SF_CALLBACK_DEFAULT_MAX_RESPONSE (64u << 10)

struct sf_callback_dispatch_cfg {
    struct sf_broker *b;                    /* borrowed; must outlive the dispatcher */
    const struct sf_log *lg;                /* borrowed; may be NULL */
    const struct sf_callback_allow *allow;  /* borrowed, read-only; NULL = public only */
    int concurrency;                        /* 0 = 16 deliveries at once */
    int64_t timeout_ms;                     /* 0 = 10 s per request */
    int max_attempts;                       /* 0 = 10 */
    int64_t base_ms;                        /* 0 = 10 s: the first retry delay */
    size_t max_body;                        /* 0 = 1 MiB: larger documents are dead-lettered */
    size_t max_response;                    /* 0 = 64 KiB read from a response, then cut */
    int64_t poll_ms;                        /* 0 = 250: how often due deliveries are looked for */
    const struct sf_secrets *secrets;       /* borrowed; NULL = the environment only (secrets.h) */
};

struct sf_callback_dispatch_stats {
    int64_t delivered, retried, dead, in_flight;
};

struct sf_callback_dispatch;

/* Start the thread. NULL with the reason in err (thread or curl set-up). */
struct sf_callback_dispatch *sf_callback_dispatch_start(const struct sf_callback_dispatch_cfg *cfg,
                                                        char *err, size_t errlen);
/* Stop claiming, give the leases of unfinished deliveries back (they are due
 * at once for any other process; a receiver may then see one twice), join
 * and free. NULL is a no-op. */
void sf_callback_dispatch_stop(struct sf_callback_dispatch *d);
void sf_callback_dispatch_stats(const struct sf_callback_dispatch *d,
                                struct sf_callback_dispatch_stats *st);

#endif
