/* common/base/http_guard.h: the bounds every sandfleet HTTP listener keeps
 * (serve, --http, --e2b-listen), written once over libmicrohttpd so that no
 * server has its own copy. docs/security.md ("Front doors") lists them.
 *
 * What it bounds:
 *  - connections: max_conns in all and max_conns_per_ip per client address
 *    (libmicrohttpd refuses the rest at accept, so one address holding its
 *    share leaves room for everybody else, /healthz probes included);
 *  - time: the request head (request line and headers) must be in within
 *    header_timeout_s of the accept, or of the previous response on a
 *    kept-alive connection; the body within body_timeout_s of the head; no
 *    byte for idle_timeout_s closes a connection. A client trickling one byte
 *    every few seconds is cut at its deadline: the guard's watchdog thread
 *    shuts the socket down and libmicrohttpd closes it as any dead peer (the
 *    fd stays libmicrohttpd's; it is never closed or reused under it);
 *  - memory: a body larger than max_body is refused before any byte of it is
 *    read (413 from the declared Content-Length; a chunked body is cut at the
 *    chunk that passes the limit), and the bodies of all requests together
 *    stay under max_body_total (503 when it is full: the declared length is
 *    reserved up front, chunked bodies as they come). Request heads are held
 *    in libmicrohttpd's per-connection pool, set here to 32 KiB (431 beyond).
 *
 * How a server uses it (http.c is the reference user):
 *   g = sf_http_guard_new(&limits);
 *   n = sf_http_guard_options(g, opts, cap);   MHD options to add before
 *       MHD_OPTION_END (limits, idle timeout, head memory, the connection
 *       watcher). Any threading mode works; with one polling thread use
 *       MHD_USE_EPOLL, or select() caps the daemon at 1024 descriptors.
 *   access handler, first call (head in, no body read yet): route and
 *       authenticate first, then
 *         st = sf_http_guard_begin(g, conn, &rq->guard, max_body);
 *       st != 0 is an HTTP status to answer at once (413, 503).
 *   each body chunk:    if (sf_http_guard_body(g, &rq->guard, n) < 0)
 *                           return MHD_NO;        (cut: over the limits)
 *   body complete:      sf_http_guard_ready(g, &rq->guard);  no deadline
 *                       while the handler (or a deferred reply) works
 *   NOTIFY_COMPLETED:   sf_http_guard_end(g, conn, &rq->guard);
 *   after MHD_stop_daemon: sf_http_guard_free(g).
 *
 * Threads: begin/body/ready/end on the daemon's threads (any of them); the
 * watchdog is the guard's own thread; stats from any thread. */
#ifndef SF_HTTP_GUARD_H
#define SF_HTTP_GUARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lazy_mhd.h"

/* All longs so that the option table can fill them (SF_HTTP_LIMIT_OPTS);
 * 0 = the default named beside each. */
struct sf_http_limits {
    long max_conns;          /* 256: connections at once, all clients */
    long max_conns_per_ip;   /* 32: connections at once from one address */
    long header_timeout_s;   /* 10: request head complete within this */
    long body_timeout_s;     /* 60: request body complete within this after the head */
    long idle_timeout_s;     /* 30: no byte for this long closes the connection */
    long max_body_kb;        /* 1024: one request's body */
    long max_body_total_kb;  /* 4 x max_body_kb: all bodies being received */
};

/* The option table rows for a listener's limits: FLAG "-max-conns" etc.,
 * with ENV "_MAX_CONNS" etc., landing in TYPE.FIELD (a struct sf_http_limits).
 * BODY_KB is the listener's default body limit as text. Example:
 *   SF_HTTP_LIMIT_OPTS("http", "SANDFLEET_HTTP", struct serve_cfg, limits, "16384")
 * gives --http-max-conns / SANDFLEET_HTTP_MAX_CONNS, ... */
#define SF_HTTP_LIMIT_OPTS(FLAG, ENV, TYPE, FIELD, BODY_KB)                                        \
    SF_HTTP_LIMIT_OPTS_CONNS(FLAG, ENV, TYPE, FIELD, BODY_KB, "256", "32")
/* The same with other connection defaults (as text), for a listener whose
 * clients hold many connections each (the E2B port: a stream per command). */
#define SF_HTTP_LIMIT_OPTS_CONNS(FLAG, ENV, TYPE, FIELD, BODY_KB, CONNS, PER_IP)                  \
    { FLAG "-max-conns", ENV "_MAX_CONNS", SF_OPT_INT, offsetof(TYPE, FIELD.max_conns), CONNS, "N", \
      "connections at once, all clients together", 1, 100000 },                                    \
    { FLAG "-max-conns-per-ip", ENV "_MAX_CONNS_PER_IP", SF_OPT_INT,                                 \
      offsetof(TYPE, FIELD.max_conns_per_ip), PER_IP, "N",                                         \
      "connections at once from one client address", 1, 100000 },                                  \
    { FLAG "-header-timeout-s", ENV "_HEADER_TIMEOUT_S", SF_OPT_INT,                                 \
      offsetof(TYPE, FIELD.header_timeout_s), "10", "S",                                           \
      "a request's head (line and headers) must arrive within this", 1, 3600 },                    \
    { FLAG "-body-timeout-s", ENV "_BODY_TIMEOUT_S", SF_OPT_INT, offsetof(TYPE, FIELD.body_timeout_s), \
      "60", "S", "a request's body must arrive within this after its head", 1, 86400 },           \
    { FLAG "-idle-timeout-s", ENV "_IDLE_TIMEOUT_S", SF_OPT_INT, offsetof(TYPE, FIELD.idle_timeout_s), \
      "30", "S", "a connection silent for this long is closed", 1, 86400 },                        \
    { FLAG "-max-body-kb", ENV "_MAX_BODY_KB", SF_OPT_INT, offsetof(TYPE, FIELD.max_body_kb), BODY_KB, \
      "KB", "largest request body (413 beyond, refused before it is read)", 1, 4194304 },          \
    { FLAG "-max-body-total-kb", ENV "_MAX_BODY_TOTAL_KB", SF_OPT_INT,                               \
      offsetof(TYPE, FIELD.max_body_total_kb), NULL, "KB",                                         \
      "request bodies held at once, all connections (503 beyond; default 4 x the body limit)", 1,   \
      16777216 }

/* Fill zero fields with their defaults. */
void sf_http_limits_fill(struct sf_http_limits *l);

struct sf_http_guard_stats {
    atomic_llong cut_slow;      /* connections cut at a header/body deadline */
    atomic_llong too_large;     /* bodies refused or cut over max_body */
    atomic_llong busy;          /* bodies refused over max_body_total */
};

/* Per request, kept in the server's request state (zeroed at start). */
struct sf_http_guard_req {
    struct guard_conn *conn;    /* private */
    size_t reserved, received, max;
    int begun;
};

struct sf_http_guard;
/* NULL with errno set when the watchdog thread cannot start. */
struct sf_http_guard *sf_http_guard_new(const struct sf_http_limits *l);
/* Write the guard's MHD options into opts[0..cap); returns how many (at
 * most SF_HTTP_GUARD_NOPTS). The caller adds MHD_OPTION_END after its own. */
#define SF_HTTP_GUARD_NOPTS 5
size_t sf_http_guard_options(struct sf_http_guard *g, struct MHD_OptionItem *opts, size_t cap);
/* The head is in: check the declared body against max_body (0 = the
 * guard's limit) and reserve it. 0, or the HTTP status to answer now. */
int sf_http_guard_begin(struct sf_http_guard *g, struct MHD_Connection *c,
                        struct sf_http_guard_req *rq, size_t max_body);
/* n more body bytes are about to be kept: 0, or -EFBIG / -ENOSPC (cut the
 * connection: return MHD_NO). */
int sf_http_guard_body(struct sf_http_guard *g, struct sf_http_guard_req *rq, size_t n);
/* The head is in and the body will be streamed to where it goes, never
 * kept (uploads written as they arrive, client streams): no reservation,
 * no body limit or deadline here (the caller bounds it; the idle timeout
 * still holds). Instead of begin; ready/end as usual. */
void sf_http_guard_stream(struct sf_http_guard *g, struct MHD_Connection *c,
                          struct sf_http_guard_req *rq);
/* The body is complete: the request has no deadline while it is handled. */
void sf_http_guard_ready(struct sf_http_guard *g, struct sf_http_guard_req *rq);
/* The request is over (NOTIFY_COMPLETED): give its reservation back; a
 * kept-alive connection gets a new head deadline. Idempotent. */
void sf_http_guard_end(struct sf_http_guard *g, struct MHD_Connection *c, struct sf_http_guard_req *rq);
const struct sf_http_guard_stats *sf_http_guard_stats(const struct sf_http_guard *g);
size_t sf_http_guard_max_body(const struct sf_http_guard *g);
/* After the daemon stopped. NULL is a no-op. */
void sf_http_guard_free(struct sf_http_guard *g);

#endif
