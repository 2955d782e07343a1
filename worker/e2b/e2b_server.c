/* worker/e2b/e2b_server.c: the libmicrohttpd daemon of the E2B-compatible
 * server: request life cycle (headers → body → handler → completion),
 * routing between the REST API and envd, and the reply helpers. See
 * e2b_server.h. */
#include "e2b_server.h"
#include "e2b_fleet.h"
#include "e2b_member.h"
#include "e2b_registry.h"
#include "e2b_network.h"
#include "template.h"

#include <arpa/inet.h>
#include <errno.h>
#include "lazy_mhd.h"
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E2B_API_BODY_MAX (16u << 20)     /* as E2B's API server */

struct sf_e2b_server {
    struct MHD_Daemon *d;
    struct e2b_registry *reg;
    struct e2b_member *member;           /* behind the gateway, or NULL */
    const struct sf_log *lg;
    char *api_key;
    const struct sf_policy *policy;
    const struct sf_secrets *secrets;       /* borrowed */
    uint16_t port;
    const struct sf_templates *templates;   /* borrowed */
    struct sf_http_guard *guard;
    long idle_s;
    char *domain;
};

int e2b_keepalive_s(struct e2b_req *rq)
{
    const char *k = e2b_header(rq, "Keepalive-Ping-Interval");
    long v = k ? strtol(k, NULL, 10) : 0, max = rq->srv->idle_s / 2 > 0 ? rq->srv->idle_s / 2 : 1;
    if (v <= 0 || v >= 3600) v = 90;
    return (int)(v < max ? v : max);
}

const struct sf_templates *e2b_templates(const struct sf_e2b_server *s)
{
    return s->templates;
}

const char *e2b_domain(const struct sf_e2b_server *s)
{
    return s->domain;
}

/* ---- replies ---------------------------------------------------------------- */

int e2b_reply(struct e2b_req *rq, unsigned status, const char *ctype, const void *body, size_t len)
{
    struct MHD_Response *r = sf_mhd_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (ctype) sf_mhd_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (int i = 0; i < rq->nxhdr; i++) sf_mhd_add_response_header(r, rq->xhdr[i][0], rq->xhdr[i][1]);
    int ret = sf_mhd_queue_response(rq->conn, status, r);
    sf_mhd_destroy_response(r);
    return ret;
}

int e2b_reply_json(struct e2b_req *rq, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    int ret = e2b_reply(rq, status, "application/json", s, strlen(s));
    free(s);
    json_decref(j);
    return ret;
}

int e2b_reply_error(struct e2b_req *rq, unsigned status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return e2b_reply_json(rq, status, sf_e2b_error_json((int)status, msg));
}

static unsigned e2b_connect_status(const char *code)
{
    static const struct { const char *code; unsigned status; } map[] = {
        { "canceled", 499 }, { "invalid_argument", 400 }, { "deadline_exceeded", 504 },
        { "not_found", 404 }, { "already_exists", 409 }, { "permission_denied", 403 },
        { "resource_exhausted", 429 }, { "failed_precondition", 400 }, { "aborted", 409 },
        { "out_of_range", 400 }, { "unimplemented", 501 }, { "unavailable", 503 },
        { "unauthenticated", 401 },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(code, map[i].code)) return map[i].status;
    return 500;
}

int e2b_reply_connect_error(struct e2b_req *rq, const char *code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return e2b_reply_json(rq, e2b_connect_status(code),
                          json_pack("{s:s,s:s}", "code", code, "message", msg));
}

const char *e2b_header(struct e2b_req *rq, const char *name)
{
    return sf_mhd_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *e2b_query(struct e2b_req *rq, const char *name)
{
    return sf_mhd_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- routing ---------------------------------------------------------------- */

/* A request names a sandbox by E2b-Sandbox-Id (and E2b-Sandbox-Port) or by
 * its Host; port 49983 is envd, any other a port of the sandbox (get_host). */
static void e2b_classify(struct e2b_req *rq)
{
    unsigned port;
    const char *id = e2b_header(rq, "E2b-Sandbox-Id"), *host = e2b_header(rq, "Host");
    if (id && id[0]) {
        sf_strlcpy(rq->sandbox_id, id, sizeof(rq->sandbox_id));
        rq->envd = !e2b_ingress_route(rq, NULL, e2b_header(rq, "E2b-Sandbox-Port"));
    } else if (sf_e2b_host_route(host, &port, rq->sandbox_id, sizeof(rq->sandbox_id))) {
        rq->envd = !e2b_ingress_route(rq, host, NULL);
    }
}

/* ---- request life cycle ----------------------------------------------------- */

/* Everything that can be refused without the body is refused in the first
 * callback, before a byte of it is read: an unknown sandbox, a wrong API
 * key or envd token, a body larger than allowed. */
static void e2b_admit(struct e2b_req *rq)
{
    const char *url = rq->url;
    char why[256];
    /* Behind the gateway nothing is served, and no body read, for a
     * request that is not the gateway's. */
    if (rq->member && !e2b_member_auth(rq->member, e2b_header(rq, SF_E2B_GW_AUTH), rq->method, url,
                                       e2b_header(rq, "Host"), e2b_header(rq, "E2b-Sandbox-Id"),
                                       why, sizeof(why))) {
        e2b_reply_error(rq, 401, "%s", why);
        rq->answered = true;
        return;
    }
    if (!rq->envd && !strcmp(url, "/files") && e2b_query(rq, "signature")) {
        /* A signed URL names its sandbox by the signature only. */
        if ((rq->sbx = e2b_files_signed_sandbox(rq))) {
            rq->envd = true;
            sf_strlcpy(rq->sandbox_id, rq->sbx->id, sizeof(rq->sandbox_id));
        }
    }
    if (rq->port) {
        if (!e2b_ingress_admit(rq)) rq->answered = true;
    } else if (!rq->envd) {
        if (strcmp(url, "/health") && !e2b_api_key_ok(rq)) rq->answered = true;
    } else {
        if (!rq->sbx) rq->sbx = e2b_registry_get(rq->reg, rq->sandbox_id);
        if (!rq->sbx) {
            e2b_gone(rq);
            rq->answered = true;
        } else if (!e2b_envd_admit(rq)) {
            rq->answered = true;
        } else if (!strcmp(url, "/files") && !strcmp(rq->method, "POST")) {
            if (!e2b_files_upload_begin(rq)) rq->answered = true;
            return;                          /* streamed: no body limit but the disk's */
        } else if (!strcmp(url, "/process.Process/StreamInput")) {
            if (!e2b_stream_input_begin(rq)) rq->answered = true;
            return;
        }
    }
}

/* The listener's bounds (http_guard.h) once the head is admitted: a body
 * that is kept is checked and reserved; a streamed one (uploads, client
 * streams) is bounded by where it goes. */
static void e2b_guard_begin(struct e2b_req *rq)
{
    struct sf_e2b_server *srv = rq->srv;
    if (rq->answered) return;
    if (rq->sink.data) {
        sf_http_guard_stream(srv->guard, rq->conn, &rq->guard);
        return;
    }
    int st = sf_http_guard_begin(srv->guard, rq->conn, &rq->guard, rq->body_max);
    if (st) {
        e2b_reply_error(rq, (unsigned)st, st == 413 ? "request body too large (at most %zu bytes)"
                        : "the server is busy receiving other requests (at most %zu bytes each); "
                        "try again", rq->body_max);
        rq->answered = true;
    }
}

static enum MHD_Result e2b_access(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct sf_e2b_server *srv = cls;
    struct e2b_req *rq = *con_cls;
    (void)version;
    if (!rq) {
        rq = sf_xcalloc(1, sizeof(*rq));
        rq->srv = srv;
        rq->reg = srv->reg;
        rq->lg = srv->lg;
        rq->api_key = srv->api_key;
        rq->policy = srv->policy;
        rq->secrets = srv->secrets;
        rq->conn = conn;
        rq->method = method;
        rq->url = url;
        rq->member = srv->member;
        rq->body_max = E2B_API_BODY_MAX;
        e2b_classify(rq);
        *con_cls = rq;
        e2b_admit(rq);
        e2b_guard_begin(rq);
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->answered) {
            /* refused already: the rest is dropped unread into memory */
        } else if (rq->sink.data) {
            rq->sink.data(rq, upload, *upload_size);
        } else if (sf_http_guard_body(srv->guard, &rq->guard, *upload_size) < 0) {
            return MHD_NO;                   /* over the limits: cut */
        } else {
            sf_buf_append(&rq->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    rq->answered = true;
    sf_http_guard_ready(srv->guard, &rq->guard);
    if (rq->sink.data) return (enum MHD_Result)rq->sink.end(rq);
    return (enum MHD_Result)(rq->envd ? e2b_envd_handle(rq) : e2b_api_handle(rq));
}

static void e2b_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    struct sf_e2b_server *srv = cls;
    struct e2b_req *rq = *con_cls;
    (void)toe;
    if (!rq) return;
    sf_http_guard_end(srv->guard, conn, &rq->guard);
    if (rq->sink.free) rq->sink.free(rq->sink.state);
    if (rq->sbx) e2b_registry_put(rq->reg, rq->sbx);
    sf_buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

/* ---- start / stop ----------------------------------------------------------- */

static int e2b_parse_listen(const char *listen, struct sockaddr_in *sa, char *err, size_t errlen)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char host[64];
    char *end;
    if (!colon || (size_t)(colon - listen) >= sizeof(host)) goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) goto bad;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost")) sf_strlcpy(host, "127.0.0.1", sizeof(host));
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1) goto bad;
    return 0;
bad:
    sf_errf(err, errlen, "--e2b-listen '%s': expected IPV4:PORT, e.g. 127.0.0.1:3000",
            listen ? listen : "");
    return -EINVAL;
}

int sf_e2b_server_start(const struct sf_e2b_server_cfg *cfg, struct sf_e2b_server **out,
                        char *err, size_t errlen)
{
    struct sockaddr_in sa;
    int rc;
    *out = NULL;
    if ((rc = e2b_parse_listen(cfg->listen, &sa, err, errlen)) < 0) return rc;
    char why[512];
    if ((rc = sf_mhd_load(why, sizeof(why))) < 0) {
        sf_errf(err, errlen, "--e2b-listen: %s", why);
        return rc;
    }
    if (!cfg->prov || strcmp(cfg->prov->ops->name, "local")) {
        sf_errf(err, errlen, "--e2b-listen serves local sandboxes: use --sandbox local");
        return -EINVAL;
    }
    struct sf_e2b_server *s = sf_xcalloc(1, sizeof(*s));
    s->lg = cfg->lg;
    s->api_key = cfg->api_key ? sf_xstrdup(cfg->api_key) : NULL;
    s->policy = cfg->policy;
    s->secrets = cfg->secrets;
    s->templates = cfg->templates;
    s->domain = cfg->domain && cfg->domain[0] ? sf_xstrdup(cfg->domain) : NULL;
    struct sf_http_limits lim = cfg->limits;
    sf_http_limits_fill(&lim);
    s->idle_s = lim.idle_timeout_s;
    if (!(s->guard = sf_http_guard_new(&lim))) {
        sf_errf(err, errlen, "--e2b-listen: cannot start the connection watchdog: %s", strerror(errno));
        rc = -errno;
        goto fail;
    }
    if (!(s->reg = e2b_registry_new(cfg->prov, cfg->max_sandboxes, cfg->max_paused, cfg->lg))) {
        sf_errf(err, errlen, "cannot start the sandbox reaper thread");
        rc = -EAGAIN;
        goto fail;
    }
    if ((s->member = cfg->member)) {
        e2b_member_attach(s->member, s->reg);
        e2b_registry_observe(s->reg, e2b_member_changed, s->member);
    }
    struct MHD_OptionItem opts[SF_HTTP_GUARD_NOPTS + 4] = {
        { MHD_OPTION_SOCK_ADDR, 0, &sa },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)e2b_completed, s },
        { MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
    };
    size_t n = 3 + sf_http_guard_options(s->guard, opts + 3, SF_HTTP_GUARD_NOPTS);
    opts[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    /* A thread per connection: a process stream blocks in its reader.
     * Upgrades: WebSockets to a sandbox's port (e2b_ingress.c). poll(), not
     * select(): the worker holds three descriptors per process its
     * sandboxes run, and select() refused every connection whose socket
     * was numbered 1024 or more. */
    s->d = sf_mhd_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                               MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE, 0, NULL, NULL, e2b_access, s,
                               opts);
    if (!s->d) {
        sf_errf(err, errlen, "--e2b-listen %s: cannot listen (address in use or not local?)",
                cfg->listen);
        rc = -EADDRINUSE;
        goto fail;
    }
    const union MHD_DaemonInfo *di = sf_mhd_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : ntohs(sa.sin_port);
    *out = s;
    return 0;
fail:
    e2b_registry_free(s->reg);
    sf_http_guard_free(s->guard);
    free(s->api_key);
    free(s->domain);
    free(s);
    return rc;
}

uint16_t sf_e2b_server_port(const struct sf_e2b_server *s)
{
    return s->port;
}

void sf_e2b_server_drain(struct sf_e2b_server *s)
{
    if (s) e2b_registry_drain(s->reg);
}

size_t sf_e2b_server_alive(struct sf_e2b_server *s)
{
    return s ? e2b_registry_count(s->reg, NULL) : 0;
}

void sf_e2b_server_stop(struct sf_e2b_server *s)
{
    if (!s) return;
    /* Kill first: open process streams end, so their threads can be joined. */
    sf_mhd_quiesce_daemon(s->d);
    e2b_registry_kill_all(s->reg);
    sf_mhd_stop_daemon(s->d);
    e2b_registry_free(s->reg);
    sf_http_guard_free(s->guard);
    free(s->api_key);
    free(s->domain);
    free(s);
}
