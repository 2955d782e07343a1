/* common/base/http.c: see http.h. libmicrohttpd runs one internal polling
 * thread; a request's body is gathered across callbacks into a buffer hung
 * on the connection, then the matching route runs once. */
#include "http.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include "lazy_mhd.h"
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

struct route {
    char *method, *prefix;
    sf_http_handler fn;
    void *arg;
};

struct sf_http {
    struct MHD_Daemon *d;
    struct route *routes;
    size_t n_routes;
    size_t max_body;
    int port;
};

struct pending {
    struct sf_buf body;
    bool too_big;
};

struct sf_http *sf_http_new(size_t max_body)
{
    struct sf_http *h = sf_xcalloc(1, sizeof(*h));
    h->max_body = max_body ? max_body : (16u << 20);
    return h;
}

void sf_http_route(struct sf_http *h, const char *method, const char *prefix,
                   sf_http_handler fn, void *arg)
{
    h->routes = sf_xrealloc(h->routes, (h->n_routes + 1) * sizeof(struct route));
    h->routes[h->n_routes++] = (struct route){ sf_xstrdup(method), sf_xstrdup(prefix), fn, arg };
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
        if (r->method && strcmp(r->method, method)) continue;
        if (n && r->prefix[n - 1] == '/' ? !strncmp(path, r->prefix, n) : !strcmp(path, r->prefix))
            return r;
    }
    return NULL;
}

static MHD_RESULT send_resp(struct MHD_Connection *c, struct sf_http_resp *resp)
{
    struct MHD_Response *r = sf_mhd_create_response_from_buffer(resp->len, resp->body,
                                                             MHD_RESPMEM_MUST_FREE);
    resp->body = NULL;
    sf_mhd_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "text/plain; charset=utf-8");
    sf_mhd_add_response_header(r, "Cache-Control", "no-store");
    MHD_RESULT ret = sf_mhd_queue_response(c, (unsigned)(resp->status ? resp->status : 200), r);
    sf_mhd_destroy_response(r);
    return ret;
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    struct sf_http *h = cls;
    struct pending *p = *con_cls;
    if (!p) {                                  /* first call: headers only */
        p = sf_xcalloc(1, sizeof(*p));
        *con_cls = p;
        return MHD_YES;
    }
    if (*upload_size) {
        if (p->body.len + *upload_size > h->max_body) p->too_big = true;
        else sf_buf_append(&p->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    struct sf_http_resp resp = { 0 };
    if (p->too_big) {
        sf_http_reply(&resp, 413, NULL, "request body too large\n");
        return send_resp(c, &resp);
    }
    const struct route *r = match(h, method, url);
    if (!r) {
        sf_http_reply(&resp, 404, NULL, "not found\n");
        return send_resp(c, &resp);
    }
    sf_buf_append(&p->body, "", 0);
    struct sf_http_req req = { method, url, p->body.data, p->body.len, c };
    r->fn(r->arg, &req, &resp);
    if (!resp.body) resp.body = sf_xcalloc(1, 1);
    return send_resp(c, &resp);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls; (void)c; (void)toe;
    struct pending *p = *con_cls;
    if (!p) return;
    sf_buf_free(&p->body);
    free(p);
    *con_cls = NULL;
}

int sf_http_listen(struct sf_http *h, const char *hostport, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    struct sockaddr_in sin = { .sin_family = AF_INET };
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
        sf_errf(err, errlen, "--http: '%s' is not HOST:PORT", hostport);
        return -EINVAL;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        sf_errf(err, errlen, "--http: bad port in '%s'", hostport);
        return -EINVAL;
    }
    if (!strcmp(host, "localhost") || !*host) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        sf_errf(err, errlen, "--http: '%s' is not an IPv4 address", host);
        return -EINVAL;
    }
    sin.sin_port = htons((uint16_t)port);
    char why[512];
    if (sf_mhd_load(why, sizeof(why)) < 0) {
        sf_errf(err, errlen, "--http: %s", why);
        return -ENOENT;
    }
    const struct MHD_OptionItem opts[] = {
        { MHD_OPTION_SOCK_ADDR, 0, &sin },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_done, h },
        { MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL },
        { MHD_OPTION_END, 0, NULL },
    };
    h->d = sf_mhd_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                               on_request, h, opts);
    if (!h->d) {
        sf_errf(err, errlen, "--http: cannot listen on %s (in use, or not allowed)", hostport);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *info = sf_mhd_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : (int)port;
    return 0;
}

int sf_http_port(const struct sf_http *h) { return h->port; }

void sf_http_free(struct sf_http *h)
{
    if (!h) return;
    if (h->d) sf_mhd_stop_daemon(h->d);
    for (size_t i = 0; i < h->n_routes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].prefix);
    }
    free(h->routes);
    free(h);
}
