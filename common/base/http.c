/* common/base/http.c: see http.h. libmicrohttpd runs one internal polling
 * thread (epoll). A request goes through three kinds of callback:
 *  1. the head is in: route it (404), authenticate (401/403) and let the
 *     guard check the declared body (413/503); any refusal is answered at
 *     once, and libmicrohttpd then closes the connection without reading
 *     the body;
 *  2. body chunks, counted by the guard (a chunked body passing the limit
 *     cuts the connection) and gathered into a buffer;
 *  3. the body is complete: the route's handler runs once. A handler that
 *     defers suspends the connection (libmicrohttpd stops polling it); the
 *     reply from another thread resumes it, and libmicrohttpd calls us
 *     again with the reply ready. */
#include "http.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct route {
    char *method, *prefix;
    sf_http_handler fn;
    void *arg;
    bool open;
};

struct sf_http {
    struct MHD_Daemon *d;
    struct sf_http_guard *guard;
    struct sf_http_limits lim;
    struct route *routes;
    size_t n_routes;
    sf_http_auth_fn auth;
    const struct sf_log *lg;
    void *auth_arg;
    atomic_int deferred;        /* parked requests not yet replied to */
    int port;
};

struct pending {                /* one request: libmicrohttpd's con_cls */
    struct sf_http *h;
    struct MHD_Connection *c;
    const struct route *route;
    const void *principal;
    struct sf_http_guard_req guard;
    struct sf_buf body;
    bool parked;                /* deferred by its handler (HTTP thread only) */
    bool replied;               /* resp holds the deferred reply (set before the resume) */
    struct sf_http_resp resp;
};

struct sf_http *sf_http_new(const struct sf_http_limits *lim)
{
    struct sf_http *h = sf_xcalloc(1, sizeof(*h));
    if (lim) h->lim = *lim;
    sf_http_limits_fill(&h->lim);
    return h;
}

void sf_http_set_auth(struct sf_http *h, sf_http_auth_fn fn, void *arg)
{
    h->auth = fn;
    h->auth_arg = arg;
}

void sf_http_set_log(struct sf_http *h, const struct sf_log *lg) { h->lg = lg; }

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    const struct sf_http *h = cls;
    char msg[512];
    if (!h->lg || h->lg->level > SF_LOG_DEBUG) return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    SF_LOG(h->lg, SF_LOG_DEBUG, NULL, NULL, "http: %s", msg);
}

static void add_route(struct sf_http *h, const char *method, const char *prefix,
                      sf_http_handler fn, void *arg, bool open)
{
    h->routes = sf_xrealloc(h->routes, (h->n_routes + 1) * sizeof(struct route));
    h->routes[h->n_routes++] = (struct route){ sf_xstrdup(method), sf_xstrdup(prefix), fn, arg, open };
}

void sf_http_route(struct sf_http *h, const char *method, const char *prefix,
                   sf_http_handler fn, void *arg)
{
    add_route(h, method, prefix, fn, arg, false);
}

void sf_http_route_open(struct sf_http *h, const char *method, const char *prefix,
                        sf_http_handler fn, void *arg)
{
    add_route(h, method, prefix, fn, arg, true);
}

const char *sf_http_header(const struct sf_http_req *req, const char *name)
{
    return sf_mhd_lookup_connection_value(req->conn_, MHD_HEADER_KIND, name);
}

const char *sf_http_query(const struct sf_http_req *req, const char *name)
{
    return sf_mhd_lookup_connection_value(req->conn_, MHD_GET_ARGUMENT_KIND, name);
}

void sf_http_reply(struct sf_http_resp *resp, int status, const char *content_type,
                   const char *text)
{
    resp->status = status;
    resp->content_type = content_type;
    free(resp->body);
    resp->body = sf_xstrdup(text);
    resp->len = strlen(text);
}

static const struct route *match(const struct sf_http *h, const char *method, const char *path)
{
    for (size_t i = 0; i < h->n_routes; i++) {
        const struct route *r = &h->routes[i];
        size_t n = strlen(r->prefix);
        /* HEAD is a GET whose body libmicrohttpd leaves out. */
        if (r->method && strcmp(r->method, method) && !(!strcmp(method, "HEAD") && !strcmp(r->method, "GET")))
            continue;
        if (n && r->prefix[n - 1] == '/' ? !strncmp(path, r->prefix, n) : !strcmp(path, r->prefix))
            return r;
    }
    return NULL;
}

static MHD_RESULT send_resp(struct MHD_Connection *c, struct sf_http_resp *resp)
{
    if (!resp->body) resp->body = sf_xcalloc(1, 1);
    struct MHD_Response *r = sf_mhd_create_response_from_buffer(resp->len, resp->body,
                                                             MHD_RESPMEM_MUST_FREE);
    resp->body = NULL;
    sf_mhd_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "text/plain; charset=utf-8");
    sf_mhd_add_response_header(r, "Cache-Control", "no-store");
    for (size_t i = 0; i + 1 < NELEM(resp->headers) && resp->headers[i]; i += 2)
        sf_mhd_add_response_header(r, resp->headers[i], resp->headers[i + 1]);
    MHD_RESULT ret = sf_mhd_queue_response(c, (unsigned)(resp->status ? resp->status : 200), r);
    sf_mhd_destroy_response(r);
    return ret;
}

static MHD_RESULT refuse(struct MHD_Connection *c, int status, struct sf_http_resp *resp)
{
    static const char *const text[][2] = {
        { "401", "authentication required: Authorization: Bearer <token>\n" },
        { "403", "forbidden\n" },
        { "404", "not found\n" },
        { "413", "request body too large\n" },
        { "503", "busy: too many request bodies at once; retry later\n" },
    };
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    if (!resp->body)
        for (size_t i = 0; i < NELEM(text); i++)
            if (!strcmp(text[i][0], code)) sf_http_reply(resp, status, NULL, text[i][1]);
    resp->status = status;
    if (status == 401 && !resp->headers[0]) {
        resp->headers[0] = "WWW-Authenticate";
        resp->headers[1] = "Bearer realm=\"sandfleet\"";
    } else if (status == 503 && !resp->headers[0]) {
        resp->headers[0] = "Retry-After";
        resp->headers[1] = "1";
    }
    return send_resp(c, resp);
}

/* The head is in: route, authenticate, size the body. */
static MHD_RESULT on_head(struct sf_http *h, struct pending *p, const char *url, const char *method)
{
    struct sf_http_resp resp = { 0 };
    int st;
    if (!(p->route = match(h, method, url))) return refuse(p->c, 404, &resp);
    if (!p->route->open && h->auth) {
        struct sf_http_req req = { method, url, "", 0, NULL, p->c, p };
        if ((st = h->auth(h->auth_arg, &req, &p->principal, &resp)) != 0) return refuse(p->c, st, &resp);
    }
    if ((st = sf_http_guard_begin(h->guard, p->c, &p->guard, 0)) != 0) return refuse(p->c, st, &resp);
    return MHD_YES;
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    struct sf_http *h = cls;
    struct pending *p = *con_cls;
    if (!p) {
        p = sf_xcalloc(1, sizeof(*p));
        p->h = h;
        p->c = c;
        *con_cls = p;
        return on_head(h, p, url, method);
    }
    if (p->replied) {                          /* resumed with the deferred reply */
        p->replied = false;
        return send_resp(c, &p->resp);
    }
    if (*upload_size) {
        if (sf_http_guard_body(h->guard, &p->guard, *upload_size) < 0) return MHD_NO;
        sf_buf_append(&p->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    sf_http_guard_ready(h->guard, &p->guard);
    sf_buf_append(&p->body, "", 0);
    struct sf_http_req req = { method, url, p->body.data, p->body.len, p->principal, c, p };
    struct sf_http_resp resp = { 0 };
    p->route->fn(p->route->arg, &req, &resp);
    if (p->parked) {                           /* the reply may even be in already */
        free(resp.body);
        return MHD_YES;
    }
    return send_resp(c, &resp);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct sf_http *h = cls;
    struct pending *p = *con_cls;
    if (!p) return;
    sf_http_guard_end(h->guard, c, &p->guard);
    sf_buf_free(&p->body);
    free(p->resp.body);
    free(p);
    *con_cls = NULL;
}

struct sf_http_later *sf_http_defer(const struct sf_http_req *req)
{
    struct pending *p = req->pend_;
    p->parked = true;
    atomic_fetch_add(&p->h->deferred, 1);
    /* Parked now, inside the handler: a reply from another thread cannot
     * come before the suspension it ends. */
    sf_mhd_suspend_connection(p->c);
    return (struct sf_http_later *)p;
}

void sf_http_later_reply(struct sf_http_later *l, struct sf_http_resp *resp)
{
    struct pending *p = (struct pending *)l;
    p->resp = *resp;
    memset(resp, 0, sizeof(*resp));
    p->replied = true;
    atomic_fetch_sub(&p->h->deferred, 1);
    sf_mhd_resume_connection(p->c);            /* libmicrohttpd calls on_request again */
}

static int parse_addr(const char *hostport, struct sockaddr_in *sin, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    *sin = (struct sockaddr_in){ .sin_family = AF_INET };
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
        sf_errf(err, errlen, "--http: '%s' is not HOST:PORT", hostport);
        return -EINVAL;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535) {
        sf_errf(err, errlen, "--http: bad port in '%s'", hostport);
        return -EINVAL;
    }
    if (!strcmp(host, "localhost") || !*host) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        sf_errf(err, errlen, "--http: '%s' is not an IPv4 address", host);
        return -EINVAL;
    }
    sin->sin_port = htons((uint16_t)port);
    return 0;
}

bool sf_http_is_loopback(const char *hostport)
{
    struct sockaddr_in sin;
    char err[128];
    return parse_addr(hostport, &sin, err, sizeof(err)) == 0 &&
           (ntohl(sin.sin_addr.s_addr) >> 24) == 127;
}

int sf_http_listen(struct sf_http *h, const char *hostport, char *err, size_t errlen)
{
    struct sockaddr_in sin;
    int rc = parse_addr(hostport, &sin, err, errlen);
    if (rc < 0) return rc;
    char why[512];
    if (sf_mhd_load(why, sizeof(why)) < 0) {
        sf_errf(err, errlen, "--http: %s", why);
        return -ENOENT;
    }
    if (!(h->guard = sf_http_guard_new(&h->lim))) {
        sf_errf(err, errlen, "--http: cannot start the connection watchdog: %s", strerror(errno));
        return -errno;
    }
    struct MHD_OptionItem opts[SF_HTTP_GUARD_NOPTS + 4] = {
        { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h },     /* first, or it is not used for all */
        { MHD_OPTION_SOCK_ADDR, 0, &sin },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_done, h },
    };
    size_t n = 3 + sf_http_guard_options(h->guard, opts + 3, SF_HTTP_GUARD_NOPTS);
    opts[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    h->d = sf_mhd_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                               MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h, opts);
    if (!h->d) {
        sf_errf(err, errlen, "--http: cannot listen on %s (in use, or not allowed)", hostport);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *info = sf_mhd_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : ntohs(sin.sin_port);
    return 0;
}

int sf_http_port(const struct sf_http *h) { return h->port; }

const struct sf_http_guard_stats *sf_http_stats(const struct sf_http *h)
{
    return h->guard ? sf_http_guard_stats(h->guard) : NULL;
}

void sf_http_free(struct sf_http *h)
{
    if (!h) return;
    if (h->d) sf_mhd_stop_daemon(h->d);
    sf_http_guard_free(h->guard);
    for (size_t i = 0; i < h->n_routes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].prefix);
    }
    free(h->routes);
    free(h);
}
