/* worker/e2b/e2b_ingress.c: E2B's get_host — a request to
 * "<port>-<sandboxID>.<domain>" (or with E2b-Sandbox-Id and E2b-Sandbox-Port
 * headers) for any port but envd's 49983 reaches that port inside that
 * sandbox's own network namespace: HTTP with the body streamed both ways,
 * and WebSocket (any Upgrade) relayed byte for byte after the 101.
 *
 * Design: the worker connects to 127.0.0.1:PORT inside the sandbox
 * (sandbox.h connect_port), so each sandbox's ports are its own and two
 * sandboxes may serve the same port. The request is re-sent as HTTP/1.1
 * with "Connection: close" (one upstream connection per request): its head
 * at the first callback, its body through the request's sink as it
 * arrives (framed as chunked when the client's length is unknown), then
 * the response head is read and parsed (httphead.h: a sandbox's server is
 * not trusted), and the body comes back through a content reader that
 * de-chunks it and hands over what is there as soon as it is there, so
 * streamed responses stream. libmicrohttpd runs a thread per connection,
 * so the waits below block only this request. A port nothing listens on
 * answers 502 as E2B's proxy does; with allow_public_traffic false the
 * sandbox's traffic token must come in e2b-traffic-access-token. */
#include "e2b_server.h"
#include "e2b_network.h"
#include "e2b_registry.h"
#include "httphead.h"
#include "lazy_mhd.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define ING_CONNECT_MS 5000
#define ING_IO_MS 600000                   /* E2B's proxy gives up after ~620 s idle */
#define ING_HEAD_MAX 65536

enum { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED, BODY_EOF };
enum { CH_SIZE = 0, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

struct ingress {
    int fd;
    bool chunked_req;                      /* the request body goes out chunked */
    bool upgrade;
    bool failed;
    char *buf;                             /* response bytes read, not yet handed on */
    size_t blen, boff;
    int mode, cstate;
    uint64_t left;                         /* BODY_LENGTH / CH_DATA: bytes still to come */
    char line[32];                         /* a chunk-size line in the making */
    size_t llen;
};

/* ---- routing ------------------------------------------------------------------ */

bool e2b_ingress_route(struct e2b_req *rq, const char *host_port, const char *header_port)
{
    long port = -1;
    if (header_port && header_port[0]) {
        char *end;
        port = strtol(header_port, &end, 10);
        if (*end) port = -1;
    } else if (host_port) {
        port = strtol(host_port, NULL, 10);
    }
    if (port < 1 || port > 65535 || port == 49983) return false;
    rq->port = (int)port;
    return true;
}

/* ---- I/O with deadlines ---------------------------------------------------------- */

static int ing_wait(int fd, short ev, int ms)
{
    struct pollfd p = { fd, ev, 0 };
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        return r ? 0 : -ETIMEDOUT;
    }
}

static int ing_write(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            int rc = ing_wait(fd, POLLOUT, ING_IO_MS);
            if (rc < 0) return rc;
            continue;
        }
        if (w < 0) return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Some bytes, waiting at most ING_IO_MS: >0, 0 at EOF, -errno. */
static ssize_t ing_read(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return -errno;
        int rc = ing_wait(fd, POLLIN, ING_IO_MS);
        if (rc < 0) return rc;
    }
}

/* ---- the request, out ----------------------------------------------------------- */

static bool hop_by_hop(const char *name)
{
    static const char *const hop[] = { "Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                       "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
                                       "E2b-Sandbox-Id", "E2b-Sandbox-Port",
                                       "e2b-traffic-access-token", NULL };
    for (int i = 0; hop[i]; i++)
        if (!strcasecmp(name, hop[i])) return true;
    return false;
}

struct head_ctx {
    struct sf_buf *out;
    const char *host;                      /* replaces the client's Host, or NULL */
};

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct head_ctx *h = cls;
    (void)kind;
    if (!k || hop_by_hop(k) || (h->host && !strcasecmp(k, "Host"))) return MHD_YES;
    sf_buf_appendf(h->out, "%s: %s\r\n", k, v ? v : "");
    return MHD_YES;
}

/* libmicrohttpd hands over the path and the query unescaped: escape them
 * again (a path's "%2F" comes back as "/": the one thing that changes). */
static void escape_into(struct sf_buf *b, const char *s, const char *keep)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr(keep, *p)) sf_buf_append(b, p, 1);
        else sf_buf_appendf(b, "%%%02X", *p);
    }
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct sf_buf *b = cls;
    (void)kind;
    sf_buf_append(b, b->data[b->len - 1] == '?' ? "" : "&", b->data[b->len - 1] == '?' ? 0 : 1);
    escape_into(b, k ? k : "", "-._~!$'()*,;:@/");
    if (v) {
        sf_buf_append(b, "=", 1);
        escape_into(b, v, "-._~!$'()*,;:@/");
    }
    return MHD_YES;
}

static int ing_send_head(struct e2b_req *rq, struct ingress *in, char *err, size_t errlen)
{
    struct sf_buf b = { 0 };
    const char *cl = e2b_header(rq, "Content-Length"), *te = e2b_header(rq, "Transfer-Encoding");
    const char *up = e2b_header(rq, "Upgrade");
    char host[300] = "";
    in->upgrade = up && up[0];
    sf_buf_appendf(&b, "%s ", rq->method);
    escape_into(&b, rq->url, "-._~!$&'()*+,;=:@/");
    sf_buf_append(&b, "?", 1);
    sf_mhd_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, add_arg, &b);
    if (b.data[b.len - 1] == '?') b.len--;
    sf_buf_append(&b, " HTTP/1.1\r\n", 11);
    if (e2b_network_host_mask(rq->sbx, rq->port, host, sizeof(host)))
        sf_buf_appendf(&b, "Host: %s\r\n", host);
    struct head_ctx hc = { &b, host[0] ? host : NULL };
    sf_mhd_get_connection_values(rq->conn, MHD_HEADER_KIND, add_header, &hc);
    if (in->upgrade) {
        sf_buf_appendf(&b, "Connection: Upgrade\r\nUpgrade: %s\r\n", up);
    } else {
        sf_buf_append(&b, "Connection: close\r\n", 19);
    }
    if (cl) {
        sf_buf_appendf(&b, "Content-Length: %s\r\n", cl);
    } else if (te && strcasestr(te, "chunked")) {
        sf_buf_append(&b, "Transfer-Encoding: chunked\r\n", 28);
        in->chunked_req = true;
    }
    sf_buf_append(&b, "\r\n", 2);
    int rc = ing_write(in->fd, b.data, b.len);
    if (rc < 0) sf_errf(err, errlen, "sending the request to port %d: %s", rq->port, strerror(-rc));
    sf_buf_free(&b);
    return rc;
}

/* ---- the response, back ------------------------------------------------------------ */

static void ing_free(void *state)
{
    struct ingress *in = state;
    if (!in) return;
    if (in->fd >= 0) close(in->fd);
    free(in->buf);
    free(in);
}

/* Hand over buffered bytes first, then read more. */
static ssize_t ing_raw(struct ingress *in, char *out, size_t max)
{
    if (in->boff < in->blen) {
        size_t n = in->blen - in->boff < max ? in->blen - in->boff : max;
        memcpy(out, in->buf + in->boff, n);
        in->boff += n;
        return (ssize_t)n;
    }
    return ing_read(in->fd, out, max);
}

/* One step of de-chunking: reads some raw bytes and returns the data bytes
 * found in them (possibly 0 while sizes and line ends go by), -1 at the
 * end, -2 on a broken body. */
static ssize_t ing_dechunk(struct ingress *in, char *out, size_t max)
{
    char tmp[16384];
    size_t cap = max < sizeof(tmp) ? max : sizeof(tmp);
    if (in->cstate == CH_DATA) {
        size_t want = in->left < cap ? (size_t)in->left : cap;
        ssize_t r = ing_raw(in, out, want);
        if (r <= 0) return -2;
        in->left -= (uint64_t)r;
        if (!in->left) in->cstate = CH_DATA_END;
        return r;
    }
    if (in->cstate == CH_DONE) return -1;
    ssize_t r = ing_raw(in, tmp, 1);
    if (r <= 0) return -2;
    char c = tmp[0];
    switch (in->cstate) {
    case CH_SIZE:
        if (c != '\n') {
            if (in->llen + 1 >= sizeof(in->line)) return -2;
            in->line[in->llen++] = c;
            return 0;
        }
        in->line[in->llen] = '\0';
        in->llen = 0;
        char *end;
        in->left = strtoull(in->line, &end, 16);
        if (end == in->line || (*end && *end != ';' && *end != '\r' && *end != ' ')) return -2;
        in->cstate = in->left ? CH_DATA : CH_TRAILER;
        return 0;
    case CH_DATA_END:
        if (c == '\n') in->cstate = CH_SIZE;
        return 0;
    case CH_TRAILER:
        /* Trailer fields are dropped; an empty line ends the body. */
        if (c == '\n') {
            if (!in->llen) {
                in->cstate = CH_DONE;
                return -1;
            }
            in->llen = 0;
        } else if (c != '\r') {
            in->llen = 1;
        }
        return 0;
    }
    return -2;
}

static ssize_t ing_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    struct ingress *in = cls;
    (void)pos;
    if (in->mode == BODY_LENGTH) {
        if (!in->left) return MHD_CONTENT_READER_END_OF_STREAM;
        ssize_t r = ing_raw(in, out, in->left < max ? (size_t)in->left : max);
        if (r <= 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        in->left -= (uint64_t)r;
        return r;
    }
    if (in->mode == BODY_EOF) {
        ssize_t r = ing_raw(in, out, max);
        return r > 0 ? r : r == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    for (;;) {
        ssize_t r = ing_dechunk(in, out, max);
        if (r > 0) return r;
        if (r == -1) return MHD_CONTENT_READER_END_OF_STREAM;
        if (r == -2) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* WebSocket: after the 101 both sides speak directly; relay until one ends. */
static void ing_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                         size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct ingress *in = cls;
    (void)c; (void)con_cls;
    if (extra_len && ing_write(in->fd, extra, extra_len) < 0) goto done;
    if (in->boff < in->blen && ing_write(sock, in->buf + in->boff, in->blen - in->boff) < 0) goto done;
    for (;;) {
        struct pollfd p[2] = { { sock, POLLIN, 0 }, { in->fd, POLLIN, 0 } };
        int r = poll(p, 2, ING_IO_MS);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        char buf[16384];
        int from = p[0].revents ? 0 : 1;
        ssize_t n = recv(from ? in->fd : sock, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0 || ing_write(from ? sock : in->fd, buf, (size_t)n) < 0) break;
    }
done:
    ing_free(in);
    sf_mhd_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static bool resp_hop(const struct sf_http_str *name)
{
    static const char *const hop[] = { "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                                       "Transfer-Encoding", "Content-Length", "Upgrade", NULL };
    for (int i = 0; hop[i]; i++)
        if (sf_http_str_is(name, hop[i])) return true;
    return false;
}

static void copy_headers(struct MHD_Response *r, const struct sf_httphead *h, bool upgrade)
{
    for (size_t i = 0; i < h->nfields; i++) {
        if (resp_hop(&h->names[i]) && !(upgrade && sf_http_str_is(&h->names[i], "Upgrade"))) continue;
        char name[256], value[8192];
        if (h->names[i].n >= sizeof(name) || h->values[i].n >= sizeof(value)) continue;
        memcpy(name, h->names[i].p, h->names[i].n);
        name[h->names[i].n] = '\0';
        memcpy(value, h->values[i].p, h->values[i].n);
        value[h->values[i].n] = '\0';
        sf_mhd_add_response_header(r, name, value);
    }
}

/* Read and parse the response head; the rest stays in in->buf. */
static int ing_read_head(struct ingress *in, struct sf_httphead *h)
{
    in->buf = sf_xmalloc(ING_HEAD_MAX);
    for (;;) {
        long n = sf_httphead_parse(in->buf, in->blen, h);
        if (n > 0) {
            in->boff = (size_t)n;
            return 0;
        }
        if (n < 0) return -EPROTO;
        if (in->blen == ING_HEAD_MAX) return -E2BIG;
        ssize_t r = ing_read(in->fd, in->buf + in->blen, ING_HEAD_MAX - in->blen);
        if (r <= 0) return r == 0 ? -ECONNRESET : (int)r;
        in->blen += (size_t)r;
    }
}

/* E2B's proxy answers a port it cannot reach with a 502 of this shape. */
static int ing_bad_gateway(struct e2b_req *rq, const char *msg)
{
    return e2b_reply_json(rq, 502, json_pack("{s:s,s:s,s:i,s:i}", "sandboxId", rq->sandbox_id,
                                             "message", msg, "port", rq->port, "code", 502));
}

static int ing_end(struct e2b_req *rq)
{
    struct ingress *in = rq->sink.state;
    struct sf_httphead h;
    if (in->failed) return ing_bad_gateway(rq, "The sandbox's server went away during the request");
    if (in->chunked_req && ing_write(in->fd, "0\r\n\r\n", 5) < 0)
        return ing_bad_gateway(rq, "The sandbox's server went away during the request");
    int rc = ing_read_head(in, &h);
    if (rc < 0 || !h.response)
        return ing_bad_gateway(rq, rc == -ECONNRESET ? "The sandbox's server closed the connection "
                               "without an answer" : "The sandbox's server answered with no valid "
                               "HTTP/1.x response");
    struct MHD_Response *r;
    if (h.status == 101 && in->upgrade) {
        r = sf_mhd_create_response_for_upgrade(ing_upgraded, in);
        copy_headers(r, &h, true);
        rq->sink.state = NULL;                      /* the upgrade handler owns it now */
    } else {
        bool no_body = !strcmp(rq->method, "HEAD") || h.status == 204 || h.status == 304 ||
                       h.status < 200;
        const struct sf_http_str *te = sf_httphead_get(&h, "Transfer-Encoding");
        const struct sf_http_str *cl = sf_httphead_get(&h, "Content-Length");
        uint64_t size = MHD_SIZE_UNKNOWN;
        if (no_body) {
            in->mode = BODY_LENGTH;
            in->left = 0;
            size = 0;
        } else if (te && sf_httphead_has_token(&h, "Transfer-Encoding", "chunked")) {
            in->mode = BODY_CHUNKED;
        } else if (cl) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(cl->n < 31 ? cl->n : 31), cl->p);
            char *end;
            in->left = size = strtoull(tmp, &end, 10);
            if (*end || !cl->n) return ing_bad_gateway(rq, "The sandbox's server sent a bad "
                                                       "Content-Length");
            in->mode = BODY_LENGTH;
        } else {
            in->mode = BODY_EOF;
        }
        r = sf_mhd_create_response_from_callback(size, 32 * 1024, ing_reader, in, ing_free);
        copy_headers(r, &h, false);
        rq->sink.state = NULL;                      /* the response owns it now */
    }
    int ret = sf_mhd_queue_response(rq->conn, (unsigned)h.status, r);
    sf_mhd_destroy_response(r);
    return ret;
}

static void ing_data(struct e2b_req *rq, const char *data, size_t len)
{
    struct ingress *in = rq->sink.state;
    if (in->failed || !len) return;
    char hdr[32];
    int rc = 0;
    if (in->chunked_req) {
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        rc = ing_write(in->fd, hdr, (size_t)n);
    }
    if (!rc) rc = ing_write(in->fd, data, len);
    if (!rc && in->chunked_req) rc = ing_write(in->fd, "\r\n", 2);
    if (rc < 0) in->failed = true;
}

/* ---- admission ---------------------------------------------------------------------- */

bool e2b_ingress_admit(struct e2b_req *rq)
{
    char err[256];
    if (!rq->sbx && !(rq->sbx = e2b_registry_get(rq->reg, rq->sandbox_id))) {
        e2b_gone(rq);
        return false;
    }
    if (!e2b_network_traffic_ok(rq->sbx, e2b_header(rq, "e2b-traffic-access-token"))) {
        e2b_reply_error(rq, 403, "Sandbox %s only accepts traffic with its traffic access token "
                        "(allow_public_traffic is false): send it in the e2b-traffic-access-token "
                        "header", rq->sandbox_id);
        return false;
    }
    struct ingress *in = sf_xcalloc(1, sizeof(*in));
    in->fd = -1;
    int rc = e2b_network_connect(rq->reg, rq->sbx, (uint16_t)rq->port, &in->fd);
    if (rc == 0) rc = ing_wait(in->fd, POLLOUT, ING_CONNECT_MS);
    if (rc == 0) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(in->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        rc = -soerr;
    }
    if (rc < 0) {
        ing_free(in);
        if (rc == -ESRCH || rc == -ENOTSUP)
            e2b_gone(rq);
        else if (rq->port == 49999)
            /* e2b-code-interpreter's Jupyter server: say so, not "timed out". */
            e2b_reply_error(rq, 501, "run_code (the Jupyter server of e2b-code-interpreter, port "
                            "49999) is not supported by this server unless the sandbox's template "
                            "runs one: see docs/e2b.md");
        else
            ing_bad_gateway(rq, "The sandbox is running but port is not open");
        return false;
    }
    if (ing_send_head(rq, in, err, sizeof(err)) < 0) {
        ing_free(in);
        ing_bad_gateway(rq, "The sandbox's server went away during the request");
        return false;
    }
    rq->sink = (struct e2b_sink){ .data = ing_data, .end = ing_end, .free = ing_free, .state = in };
    return true;
}
