/* common/base/http.h: the daemons' small HTTP server (libmicrohttpd) for
 * /metrics, /healthz, /readyz and the coordinator's submission API and
 * status page. Routes are registered before sf_http_listen; requests are
 * served on libmicrohttpd's one polling thread (epoll), so a handler must
 * never block: it answers from memory, or defers the request
 * (sf_http_defer) to a thread that may wait and replies later.
 *
 * Every request passes the listener's bounds first (http_guard.h:
 * connections in all and per address, head/body/idle deadlines, body size
 * and total) and, on routes that are not open, the authentication hook,
 * both in the first callback, before a byte of the body is read: an
 * unauthenticated 15 MiB upload costs nothing.
 *
 * Thread: new/set_auth/route/listen/free from the main thread; handlers and
 * the auth hook run on the HTTP thread; sf_http_later_reply from any thread. */
#ifndef SF_HTTP_H
#define SF_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "http_guard.h"
#include "log.h"

struct sf_http;

struct sf_http_req {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* without the query string */
    const char *body;          /* NUL-terminated; "" when none (and in the auth hook) */
    size_t body_len;
    const void *principal;     /* what the auth hook returned; NULL on open routes */
    void *conn_, *pend_;       /* private */
};

/* A request header or query argument, or NULL. */
const char *sf_http_header(const struct sf_http_req *req, const char *name);
const char *sf_http_query(const struct sf_http_req *req, const char *name);

struct sf_http_resp {
    int status;                /* default 200 */
    const char *content_type;  /* default "text/plain; charset=utf-8" */
    char *body;                /* malloc'd by the handler; freed by the server */
    size_t len;
    const char *headers[5];    /* extra headers: name, value, name, value, NULL (static strings) */
};

/* Fill resp. The path matched the route's prefix. */
typedef void (*sf_http_handler)(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp);

/* Runs on the head of every request to a route that is not open, before
 * the body: 0 with *principal set (borrowed; must outlive the server), or
 * the status to answer (401 gets a WWW-Authenticate: Bearer header; 403).
 * resp may carry a message body. */
typedef int (*sf_http_auth_fn)(void *arg, const struct sf_http_req *req, const void **principal,
                               struct sf_http_resp *resp);

/* lim NULL: the defaults of http_guard.h. */
struct sf_http *sf_http_new(const struct sf_http_limits *lim);
void sf_http_set_auth(struct sf_http *h, sf_http_auth_fn fn, void *arg);
/* libmicrohttpd's own messages (a client hung up, a limit was hit: one per
 * connection under a flood) go to lg at debug level; without a log, nowhere. */
void sf_http_set_log(struct sf_http *h, const struct sf_log *lg);
/* method NULL = any. A prefix ending in '/' matches everything below it;
 * otherwise the path must match exactly. First match wins. Routes are
 * behind the auth hook, if one is set; sf_http_route_open's are not
 * (probes, the static page). */
void sf_http_route(struct sf_http *h, const char *method, const char *prefix,
                   sf_http_handler fn, void *arg);
void sf_http_route_open(struct sf_http *h, const char *method, const char *prefix,
                        sf_http_handler fn, void *arg);
/* Listen on "HOST:PORT" (IPv4; PORT 0 = any free port). 0 or -errno with a message. */
int sf_http_listen(struct sf_http *h, const char *hostport, char *err, size_t errlen);
/* The port actually bound (after listen). */
int sf_http_port(const struct sf_http *h);
/* True when "HOST:PORT" names a loopback address (127/8, localhost). */
bool sf_http_is_loopback(const char *hostport);
const struct sf_http_guard_stats *sf_http_stats(const struct sf_http *h);
/* Stops the server; NULL is a no-op. Every deferred request must have been
 * replied to before. */
void sf_http_free(struct sf_http *h);

/* Answer later: called by a handler, which then returns without filling
 * resp. The connection is parked (no thread waits on it) until
 * sf_http_later_reply, which must come exactly once, from any thread; resp
 * is taken over (its body freed by the server). Until then the request's
 * body and principal stay valid and unchanged, so the thread that answers
 * may read them (parse a large body off the HTTP thread). */
struct sf_http_later;
struct sf_http_later *sf_http_defer(const struct sf_http_req *req);
void sf_http_later_reply(struct sf_http_later *l, struct sf_http_resp *resp);

/* Helpers for handlers. */
void sf_http_reply(struct sf_http_resp *resp, int status, const char *content_type,
                   const char *text);

#endif
