/* bench/e2b_ttfo.c: time to first output, the way public sandbox leaderboards
 * measure it: from the start of Sandbox.create to the first byte of the
 * first command's output (`echo hi`), over the E2B REST API and envd, with
 * the success rate. Sandboxes are killed after the clock stops.
 *
 *   e2b_ttfo HOST:PORT KEY seq N      N one after the other
 *   e2b_ttfo HOST:PORT KEY burst N    N at once (N threads released together)
 *
 * One JSON line: n, ok, then p50/p95/p99/min/max (ms) of the whole, of the
 * create alone (until the 201) and of the command (201 to first output).
 * A minimal HTTP/1.1 client over blocking sockets, one kept-alive
 * connection per client thread as the SDKs keep theirs; the answers are
 * read with the relay's own parser (http1.h) and the Connect codec
 * (e2b_connect.h), so the client costs microseconds, not the server's
 * milliseconds. */
#include "e2b_connect.h"
#include "http1.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    char buf[65536];
    size_t len;
};

struct sample {
    bool ok;
    double total, create, cmd;
    char id[64], err[160];
};

static struct sockaddr_in g_addr;
static const char *g_key;
static pthread_barrier_t g_start;

static int conn_open(struct conn *c)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = { 30, 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return connect(c->fd, (struct sockaddr *)&g_addr, sizeof(g_addr));
}

/* Read until a whole response head is in; returns its length, the status in h. */
static int read_head(struct conn *c, struct sf_h1_head *h)
{
    const char *why;
    for (;;) {
        int rc = sf_h1_parse_response(c->buf, c->len, sizeof(c->buf), h, &why);
        if (rc == 1) return (int)h->len;
        if (rc < 0) return -EPROTO;
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n <= 0) return -EIO;
        c->len += (size_t)n;
    }
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* A whole (Content-Length) answer: status, body copied to out. */
static int request(struct conn *c, const char *req, size_t rlen, struct sf_buf *out)
{
    struct sf_h1_head h;
    struct sf_h1_body b;
    if (sf_write_all(c->fd, req, rlen) < 0) return -EIO;
    int hl = read_head(c, &h);
    if (hl < 0) return hl;
    int status = h.status;
    sf_h1_body_response(&b, &h, false);
    consume(c, (size_t)hl);
    while (!b.done) {
        if (!c->len) {
            ssize_t n = read(c->fd, c->buf, sizeof(c->buf));
            if (n <= 0) return b.kind == SF_H1_BODY_EOF ? status : -EIO;
            c->len = (size_t)n;
        }
        ssize_t k = sf_h1_body_feed(&b, c->buf, c->len);
        if (k < 0) return -EPROTO;
        if (out) sf_buf_append(out, c->buf, (size_t)k);
        consume(c, (size_t)k);
    }
    return status;
}

static void feed(void *arg, const char *p, size_t n)
{
    sf_e2b_reader_feed(arg, p, n);
}

/* Start `echo hi` and return when its first stdout byte arrives; the rest
 * of the stream is read to the end so the connection can be reused. */
static int first_output(struct conn *c, const char *id, const char *tok, double t0, double *at)
{
    static const char start[] = "{\"process\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\",\"echo hi\"]}}";
    struct sf_buf body = { 0 }, req = { 0 };
    sf_e2b_frame(&body, 0, start, strlen(start));
    sf_buf_appendf(&req, "POST /process.Process/Start HTTP/1.1\r\nHost: gw\r\nE2b-Sandbox-Id: %s\r\n"
                   "X-Access-Token: %s\r\nContent-Type: application/connect+json\r\n"
                   "Connect-Protocol-Version: 1\r\nContent-Length: %zu\r\n\r\n", id, tok, body.len);
    sf_buf_append(&req, body.data, body.len);
    int rc = sf_write_all(c->fd, req.data, req.len) < 0 ? -EIO : 0;
    sf_buf_free(&req);
    sf_buf_free(&body);
    struct sf_h1_head h;
    int hl = rc ? rc : read_head(c, &h);
    if (hl < 0) return hl;
    if (h.status != 200) return -h.status;
    struct sf_h1_body b;
    sf_h1_body_response(&b, &h, false);
    consume(c, (size_t)hl);
    struct sf_e2b_reader r = { 0 };
    bool got = false;
    while (!b.done) {
        if (!c->len) {
            ssize_t n = read(c->fd, c->buf, sizeof(c->buf));
            if (n <= 0) return -EIO;
            c->len = (size_t)n;
        }
        ssize_t k = sf_h1_body_payload(&b, c->buf, c->len, feed, &r);
        if (k < 0) return -EPROTO;
        consume(c, (size_t)k);
        uint8_t flags;
        const char *msg;
        size_t mlen;
        while (!got && sf_e2b_reader_next(&r, &flags, &msg, &mlen) == 1) {
            struct sf_e2b_event ev;
            char err[64];
            if (!(flags & SF_E2B_FLAG_END) && sf_e2b_event_parse(msg, mlen, &ev, err, sizeof(err)) == 0) {
                if (ev.kind == SF_E2B_EV_DATA && ev.len) {
                    *at = (double)sf_now_us() / 1000.0 - t0;
                    got = true;
                }
                sf_e2b_event_clear(&ev);
            }
        }
    }
    sf_e2b_reader_free(&r);
    return got ? 0 : -ENODATA;
}

static void one(struct conn *c, struct sample *s)
{
    static const char body[] = "{\"templateID\":\"base\",\"timeout\":300,\"metadata\":{},\"envVars\":{},"
                               "\"secure\":true,\"allow_internet_access\":false}";
    char req[1024];
    int n = snprintf(req, sizeof(req), "POST /v2/sandboxes HTTP/1.1\r\nHost: gw\r\nX-API-Key: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     g_key, strlen(body), body);
    struct sf_buf out = { 0 };
    double t0 = (double)sf_now_us() / 1000.0;
    int st = request(c, req, (size_t)n, &out);
    s->create = (double)sf_now_us() / 1000.0 - t0;
    json_t *j = st == 201 ? json_loadb(out.data, out.len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "sandboxID"));
    const char *tok = json_string_value(json_object_get(j, "envdAccessToken"));
    if (!id || !tok) {
        snprintf(s->err, sizeof(s->err), "create: %d %.100s", st, out.data ? out.data : "");
    } else {
        sf_strlcpy(s->id, id, sizeof(s->id));
        int rc = first_output(c, id, tok, t0, &s->total);
        if (rc == 0) {
            s->ok = true;
            s->cmd = s->total - s->create;
        } else {
            snprintf(s->err, sizeof(s->err), "command: %d", rc);
        }
    }
    json_decref(j);
    sf_buf_free(&out);
}

static void kill_one(struct conn *c, const char *id)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "DELETE /sandboxes/%s HTTP/1.1\r\nHost: gw\r\nX-API-Key: %s\r\n"
                     "Content-Length: 0\r\n\r\n", id, g_key);
    (void)request(c, req, (size_t)n, NULL);
}

struct worker_arg {
    struct sample *s;
};

static void *burst_one(void *arg)
{
    struct worker_arg *a = arg;
    struct conn *c = sf_xcalloc(1, sizeof(*c));
    if (conn_open(c) < 0) snprintf(a->s->err, sizeof(a->s->err), "connect: %s", strerror(errno));
    pthread_barrier_wait(&g_start);
    if (!a->s->err[0]) one(c, a->s);
    if (a->s->id[0]) kill_one(c, a->s->id);
    close(c->fd);
    free(c);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void stats(const char *name, struct sample *s, size_t n, size_t off)
{
    double *v = sf_xcalloc(n, sizeof(double));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].ok) v[k++] = *(double *)((char *)&s[i] + off);
    qsort(v, k, sizeof(double), cmp);
    printf("\"%s\":{\"p50\":%.2f,\"p95\":%.2f,\"p99\":%.2f,\"min\":%.2f,\"max\":%.2f}", name,
           pct(v, k, .5), pct(v, k, .95), pct(v, k, .99), k ? v[0] : 0, k ? v[k - 1] : 0);
    free(v);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: e2b_ttfo HOST:PORT KEY seq|burst N\n");
        return 2;
    }
    char host[64];
    const char *colon = strrchr(argv[1], ':');
    snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - argv[1]) : 0, argv[1]);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)(colon ? atoi(colon + 1) : 0));
    if (!colon || inet_pton(AF_INET, host, &g_addr.sin_addr) != 1) {
        fprintf(stderr, "e2b_ttfo: HOST:PORT with an IPv4 host\n");
        return 2;
    }
    g_key = argv[2];
    bool burst = !strcmp(argv[3], "burst");
    size_t n = (size_t)atoi(argv[4]);
    struct sample *s = sf_xcalloc(n ? n : 1, sizeof(*s));
    if (burst) {
        pthread_t *th = sf_xcalloc(n, sizeof(*th));
        struct worker_arg *a = sf_xcalloc(n, sizeof(*a));
        pthread_barrier_init(&g_start, NULL, (unsigned)n);
        for (size_t i = 0; i < n; i++) {
            a[i].s = &s[i];
            pthread_create(&th[i], NULL, burst_one, &a[i]);
        }
        for (size_t i = 0; i < n; i++) pthread_join(th[i], NULL);
        free(th);
        free(a);
    } else {
        struct conn c;
        if (conn_open(&c) < 0) {
            fprintf(stderr, "e2b_ttfo: connect: %s\n", strerror(errno));
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            one(&c, &s[i]);
            if (s[i].id[0]) kill_one(&c, s[i].id);
            if (!s[i].ok) {                   /* a fresh connection after a failure */
                close(c.fd);
                conn_open(&c);
            }
        }
        close(c.fd);
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += s[i].ok;
    for (size_t i = 0; i < n; i++)
        if (!s[i].ok) {
            fprintf(stderr, "e2b_ttfo: %s\n", s[i].err);
            break;
        }
    printf("{\"mode\":\"%s\",\"n\":%zu,\"ok\":%zu,", burst ? "burst" : "seq", n, ok);
    stats("ttfo_ms", s, n, offsetof(struct sample, total));
    printf(",");
    stats("create_ms", s, n, offsetof(struct sample, create));
    printf(",");
    stats("command_ms", s, n, offsetof(struct sample, cmd));
    printf("}\n");
    free(s);
    return ok == n ? 0 : 1;
}
