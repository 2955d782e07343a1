/* common/base/http.h: the daemons' small HTTP server (libmicrohttpd) for
 * /metrics, /healthz, /readyz and the coordinator's submission API and
 * status page. Routes are registered before sf_http_listen; requests are
 * served on libmicrohttpd's own thread (an edge thread: handlers must be
 * thread-safe and must not block for long). Request bodies are capped
 * (413 beyond the cap).
 * Thread: new/route/listen/free from the main thread; handlers run on the
 * HTTP thread. */
#ifndef SF_HTTP_H
#define SF_HTTP_H

#include <stddef.h>

struct sf_http;

struct sf_http_req {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* without the query string */
    const char *body;          /* NUL-terminated; "" when none */
    size_t body_len;
    void *conn_;               /* private */
};

/* A request header or query argument, or NULL. */
const char *sf_http_header(const struct sf_http_req *req, const char *name);
const char *sf_http_query(const struct sf_http_req *req, const char *name);

struct sf_http_resp {
    int status;                /* default 200 */
    const char *content_type;  /* default "text/plain; charset=utf-8" */
    char *body;                /* malloc'd by the handler; freed by the server */
    size_t len;
};

/* Fill resp. The path matched the route's prefix. */
typedef void (*sf_http_handler)(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp);

struct sf_http *sf_http_new(size_t max_body);
/* method NULL = any. A prefix ending in '/' matches everything below it;
 * otherwise the path must match exactly. First match wins. */
void sf_http_route(struct sf_http *h, const char *method, const char *prefix,
                   sf_http_handler fn, void *arg);
/* Listen on "HOST:PORT" (PORT 0 = any free port). 0 or -errno with a message. */
int sf_http_listen(struct sf_http *h, const char *hostport, char *err, size_t errlen);
/* The port actually bound (after listen). */
int sf_http_port(const struct sf_http *h);
void sf_http_free(struct sf_http *h);      /* stops the server; NULL is a no-op */

/* Helpers for handlers. */
void sf_http_reply(struct sf_http_resp *resp, int status, const char *content_type,
                   const char *text);

#endif
