/* coordinator/gateway/gw_loop.c: the gateway's thread (gw_int.h): epoll,
 * accepting under the connection limits, per-state timeouts, the client
 * connection's life, local answers, and start/stop.
 *
 * DESIGN. One thread, level-triggered epoll, a step function per connection
 * that makes every bit of progress it can and then states what it waits
 * for. Blocking work (the broker, name resolution) goes to a small pool and
 * comes back through its eventfd, so a slow Redis delays the requests that
 * need it and nothing else. Timeouts: one deadline per connection, checked
 * by a sweep at most every 100 ms (thousands of connections cost
 * microseconds). Limits are checked at accept, before a byte is read:
 * total connections (each may hold an upstream: two descriptors) and
 * connections per client address, so one address cannot starve the others. */
#include "gw_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#define GW_DEF_EXCHANGE_MS 900000
#define GW_LINGER_MS 2000
#define GW_POOL_THREADS 4

/* ---- buffers ------------------------------------------------------------------ */

void gw_buf_init(struct gw_buf *b, size_t cap, size_t max)
{
    b->d = sf_xmalloc(cap);
    b->off = b->len = 0;
    b->cap = cap;
    b->max = max;
}

void gw_buf_free(struct gw_buf *b)
{
    free(b->d);
    memset(b, 0, sizeof(*b));
}

size_t gw_buf_avail(const struct gw_buf *b)
{
    return b->len - b->off;
}

size_t gw_buf_room(struct gw_buf *b)
{
    if (b->off && b->len == b->cap) {
        memmove(b->d, b->d + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len == b->cap && b->cap < b->max) {
        b->cap = b->cap * 2 < b->max ? b->cap * 2 : b->max;
        b->d = sf_xrealloc(b->d, b->cap);
    }
    return b->cap - b->len;
}

void gw_buf_put(struct gw_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        if (b->off) {
            memmove(b->d, b->d + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            b->cap = b->len + n;
            b->d = sf_xrealloc(b->d, b->cap);
        }
    }
    memcpy(b->d + b->len, p, n);
    b->len += n;
}

void gw_buf_drop(struct gw_buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len) b->off = b->len = 0;
}

/* ---- connections per client address --------------------------------------- */

#define GW_IP_BUCKETS 1024

struct gw_ipnode {
    char ip[48];
    int n;
    struct gw_ipnode *next;
};

struct gw_ipcount {
    struct gw_ipnode *b[GW_IP_BUCKETS];
};

static unsigned ip_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % GW_IP_BUCKETS;
}

/* Add d to ip's count; returns the new count. */
static int ip_add(struct gw_ipcount *t, const char *ip, int d)
{
    struct gw_ipnode **pp = &t->b[ip_hash(ip)];
    while (*pp && strcmp((*pp)->ip, ip)) pp = &(*pp)->next;
    if (!*pp) {
        if (d <= 0) return 0;
        *pp = sf_xcalloc(1, sizeof(**pp));
        sf_strlcpy((*pp)->ip, ip, sizeof((*pp)->ip));
    }
    int n = ((*pp)->n += d);
    if (n <= 0) {
        struct gw_ipnode *dead = *pp;
        *pp = dead->next;
        free(dead);
    }
    return n;
}

static void ip_free(struct gw_ipcount *t)
{
    for (size_t i = 0; t && i < GW_IP_BUCKETS; i++)
        for (struct gw_ipnode *n = t->b[i], *next; n; n = next) {
            next = n->next;
            free(n);
        }
    free(t);
}

/* ---- epoll ------------------------------------------------------------------ */

void gw_set_events(struct gw *g, struct gw_ev *ev, int fd, uint32_t *cur, uint32_t want)
{
    if (*cur == want) return;
    struct epoll_event e = { .events = want, .data.ptr = ev };
    epoll_ctl(g->ep, EPOLL_CTL_MOD, fd, &e);
    *cur = want;
}

void gw_submit(struct gw *g, struct gw_job *j)
{
    j->gw = g;
    if (j->cli) j->cli->jobs++;
    sf_pool_submit(g->pool, j);
}

/* ---- local answers ------------------------------------------------------------ */

const char *gw_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

void gw_reply(struct gw_cli *c, int status, const char *ctype, const char *body, size_t len)
{
    gw_reply_x(c, status, ctype, NULL, body, len);
}

void gw_reply_x(struct gw_cli *c, int status, const char *ctype, const char *extra, const char *body,
                size_t len)
{
    if (c->http10) c->close_after = true;
    sf_buf_appendf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                   status, gw_reason(status), ctype ? ctype : "application/json", len,
                   extra ? extra : "", c->close_after ? "Connection: close\r\n" : "");
    if (!c->head_req && len) sf_buf_append(&c->out, body, len);
    c->st = C_REPLY;
    c->deadline = sf_now_ms() + c->gw->head_ms;
}

/* Steals j. */
static void reply_json(struct gw_cli *c, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    gw_reply(c, status, NULL, s, strlen(s));
    free(s);
    json_decref(j);
}

void gw_reply_error(struct gw_cli *c, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(c, status, sf_e2b_error_json(status, msg));
}

void gw_reply_no_sandbox(struct gw_cli *c)
{
    reply_json(c, 502, sf_e2b_gone_json(c->sid));
}

/* ---- the client connection ---------------------------------------------------- */

static void cli_request_reset(struct gw_cli *c)
{
    free(c->target);
    c->target = NULL;
    sf_buf_free(&c->fwd);
    sf_buf_free(&c->body);
    c->gw->buffered -= c->body_held;
    c->body_held = 0;
    gw_create_drop(c);
    c->route = R_NONE;
    c->v2 = c->head_req = c->upgrade = c->expect = false;
    c->resp_started = c->intercept = c->hold = c->retried = false;
    c->resp_status = 0;
    c->sid[0] = c->method[0] = '\0';
}

static void cli_free(struct gw_cli *c)
{
    cli_request_reset(c);
    gw_buf_free(&c->in);
    sf_buf_free(&c->out);
    free(c);
}

static void bury(struct gw_cli *c)
{
    c->next = c->gw->grave_cli;
    c->gw->grave_cli = c;
}

void gw_graves_free(struct gw *g)
{
    while (g->grave_cli) {
        struct gw_cli *c = g->grave_cli;
        g->grave_cli = c->next;
        cli_free(c);
    }
    gw_up_graves_free(g);
}

void gw_cli_close(struct gw_cli *c)
{
    struct gw *g = c->gw;
    if (c->dead) return;
    c->dead = true;
    if (c->up) {
        struct gw_up *u = c->up;
        c->up = NULL;
        u->cli = NULL;
        gw_up_release(u, false);
    }
    epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    ip_add(g->ips, c->ip, -1);
    if (c->prev) c->prev->next = c->next;
    else g->clis = c->next;
    if (c->next) c->next->prev = c->prev;
    g->ncli--;
    sf_gauge_set(g->g_conns, g->ncli);
    if (!c->jobs) bury(c);
}

/* Answered: the next request on this connection, or a lingering close. */
static void cli_reply_written(struct gw_cli *c)
{
    sf_buf_free(&c->out);
    c->out_off = 0;
    if (c->close_after) {
        shutdown(c->fd, SHUT_WR);
        c->st = C_LINGER;
        c->deadline = sf_now_ms() + GW_LINGER_MS;
        return;
    }
    cli_request_reset(c);
    c->st = C_HEAD;
    c->deadline = sf_now_ms() + c->gw->idle_ms;
}

void gw_exchange_done(struct gw_cli *c)
{
    if (c->close_after) {
        gw_cli_close(c);
        return;
    }
    cli_request_reset(c);
    c->st = C_HEAD;
    c->deadline = sf_now_ms() + c->gw->idle_ms;
}

void gw_cli_update(struct gw_cli *c)
{
    uint32_t want = EPOLLRDHUP;
    switch (c->st) {
    case C_HEAD:
    case C_BODY:
    case C_LINGER:
        want |= EPOLLIN;
        break;
    case C_REPLY:
        want |= EPOLLOUT;
        break;
    case C_WAIT:
        break;
    case C_PROXY:
    case C_TUNNEL:
        return;                         /* gw_proxy_step sets both ends */
    }
    gw_set_events(c->gw, &c->ev, c->fd, &c->events, want);
}

/* Read into c->in; 1 read something, 0 would block, -1 closed or failed. */
static int cli_read(struct gw_cli *c)
{
    size_t room = gw_buf_room(&c->in);
    if (!room) return 0;
    ssize_t n = read(c->fd, c->in.d + c->in.len, room);
    if (n > 0) {
        c->in.len += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
}

/* One step in a state the relay does not own; true when it should run again. */
static bool cli_step_once(struct gw_cli *c)
{
    struct gw *g = c->gw;
    switch (c->st) {
    case C_HEAD: {
        size_t had = gw_buf_avail(&c->in);
        if (had) {
            size_t before = c->in.off;
            gw_route_head(c);
            if (c->dead || c->st != C_HEAD || c->in.off != before) return !c->dead;
        }
        int r = cli_read(c);
        if (r < 0) {
            gw_cli_close(c);
            return false;
        }
        /* The head's clock starts at its first byte and is not reset by
         * more: a client trickling bytes still runs out of time. */
        if (r > 0 && !had) c->deadline = sf_now_ms() + g->head_ms;
        return r > 0;
    }
    case C_BODY: {
        /* The body the gateway keeps: count it through the framer. */
        if (gw_buf_avail(&c->in)) {
            ssize_t k = sf_h1_body_feed(&c->reqb, c->in.d + c->in.off, gw_buf_avail(&c->in));
            if (k < 0) {
                c->close_after = true;
                gw_reply_error(c, 400, "malformed chunked request body");
                return true;
            }
            if (c->body.len + (size_t)k > g->max_body) {
                c->close_after = true;
                gw_reply_error(c, 413, "request body larger than %zu bytes", g->max_body);
                return true;
            }
            if (g->buffered + (size_t)k > g->max_body_total) {
                c->close_after = true;
                gw_reply_error(c, 503, "the gateway holds too many request bodies; try again");
                return true;
            }
            sf_buf_append(&c->body, c->in.d + c->in.off, (size_t)k);
            g->buffered += (size_t)k;
            c->body_held += (size_t)k;
            gw_buf_drop(&c->in, (size_t)k);
            if (c->reqb.done) {
                gw_create_begin(c);
                return true;
            }
        }
        int r = cli_read(c);
        if (r < 0) gw_cli_close(c);
        return r > 0;
    }
    case C_REPLY: {
        while (c->out_off < c->out.len) {
            ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
            if (n <= 0) {
                gw_cli_close(c);
                return false;
            }
            c->out_off += (size_t)n;
        }
        cli_reply_written(c);
        return true;
    }
    case C_LINGER: {
        char junk[4096];
        ssize_t n = read(c->fd, junk, sizeof(junk));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) gw_cli_close(c);
        return n > 0;
    }
    case C_WAIT:
        return false;
    case C_PROXY:
    case C_TUNNEL:
        return gw_proxy_step(c);
    }
    return false;
}

void gw_cli_step(struct gw_cli *c)
{
    for (int i = 0; i < 64 && !c->dead && cli_step_once(c); i++) {}
    if (!c->dead) gw_cli_update(c);
}

/* ---- accept ----------------------------------------------------------------- */

static void refuse(int fd, const char *why)
{
    char body[160], msg[384];
    int bl = snprintf(body, sizeof(body), "{\"code\":503,\"message\":\"%s\"}", why);
    int n = snprintf(msg, sizeof(msg), "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s", bl, body);
    (void)!write(fd, msg, (size_t)n);    /* best effort: nothing of the client was read */
    close(fd);
}

static void accept_all(struct gw *g)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(g->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;                  /* EAGAIN, or out of descriptors: next time */
        char ip[48] = "?";
        if (sa.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof(ip));
        else if (sa.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof(ip));
        if (g->ncli >= g->max_conns) {
            sf_counter_inc(g->c_refused_conn);
            refuse(fd, "too many connections to the gateway");
            continue;
        }
        if (ip_add(g->ips, ip, 1) > g->max_per_ip) {
            ip_add(g->ips, ip, -1);
            sf_counter_inc(g->c_refused_conn);
            refuse(fd, "too many connections from this address");
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct gw_cli *c = sf_xcalloc(1, sizeof(*c));
        c->ev.kind = GW_K_CLI;
        c->fd = fd;
        c->gw = g;
        sf_strlcpy(c->ip, ip, sizeof(c->ip));
        gw_buf_init(&c->in, 4096, GW_BUF);
        c->st = C_HEAD;
        c->deadline = sf_now_ms() + g->head_ms;
        c->next = g->clis;
        if (g->clis) g->clis->prev = c;
        g->clis = c;
        g->ncli++;
        sf_gauge_set(g->g_conns, g->ncli);
        struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->ev };
        c->events = e.events;
        epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &e);
    }
}

/* ---- the thread ----------------------------------------------------------------- */

static void sweep(struct gw *g, int64_t now)
{
    for (struct gw_cli *c = g->clis, *next; c; c = next) {
        next = c->next;
        if (!c->deadline || now < c->deadline) continue;
        if (c->st == C_HEAD && gw_buf_avail(&c->in)) {
            c->close_after = true;
            gw_reply_error(c, 408, "request head not received in time");
            gw_cli_step(c);
        } else if (c->st == C_WAIT) {
            if (!c->reqb.done) c->close_after = true;
            gw_reply_error(c, 503, "the fleet's state did not answer in time; try again");
            gw_cli_step(c);
        } else if (c->st == C_PROXY && c->intercept) {
            gw_proxy_timeout(c);         /* a create the worker does not answer: the next one */
            gw_cli_step(c);
        } else {
            gw_cli_close(c);             /* idle, stalled or lingering */
        }
    }
    gw_up_idle_sweep(g, now);
}

static void take_jobs(struct gw *g)
{
    struct gw_job *j;
    while ((j = sf_pool_take_done(g->pool))) {
        struct gw_cli *c = j->cli;
        if (!c) {
            gw_fleet_job_done(j);
            continue;
        }
        c->jobs--;
        /* The client left, or was answered at its deadline, meanwhile. */
        if (c->dead || (j->kind != J_DEL && c->st != C_WAIT)) {
            if (j->kind == J_PUT) gw_create_job_done(j);  /* the sandbox must go again */
            else gw_job_free(j);
            if (c->dead && !c->jobs) bury(c);
            continue;
        }
        gw_route_job_done(j);
        if (!c->dead) gw_cli_step(c);
        else if (!c->jobs) bury(c);
    }
}

static void *gw_main(void *arg)
{
    struct gw *g = arg;
    struct epoll_event evs[128];
    int64_t last_sweep = 0;
    for (;;) {
        int64_t now = sf_now_ms();
        gw_fleet_tick(g, now);
        int n = epoll_wait(g->ep, evs, 128, 100);
        for (int i = 0; i < n; i++) {
            struct gw_ev *ev = evs[i].data.ptr;
            switch (ev->kind) {
            case GW_K_LISTEN:
                accept_all(g);
                break;
            case GW_K_WAKE:
                return NULL;
            case GW_K_POOL:
                take_jobs(g);
                break;
            case GW_K_CLI: {
                struct gw_cli *c = (struct gw_cli *)ev;
                if (c->dead) break;
                /* The peer went away: nothing it asked for is worth finishing. */
                if ((evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && c->st != C_LINGER &&
                    !(evs[i].events & EPOLLIN && c->st == C_HEAD)) {
                    gw_cli_close(c);
                    break;
                }
                gw_cli_step(c);
                break;
            }
            case GW_K_UP:
                gw_up_step((struct gw_up *)ev, evs[i].events);
                break;
            }
        }
        now = sf_now_ms();
        if (now - last_sweep >= 100) {
            last_sweep = now;
            sweep(g, now);
        }
        gw_graves_free(g);
    }
}

/* ---- start / stop ------------------------------------------------------------------ */

static int gw_listen(struct gw *g, const char *addr, char *err, size_t errlen)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char host[128];
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char *end;
    if (!colon || (size_t)(colon - addr) >= sizeof(host)) goto bad;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) goto bad;
    if (!strcmp(host, "localhost")) sf_strlcpy(host, "127.0.0.1", sizeof(host));
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa.sin_addr) != 1) goto bad;
    sa.sin_port = htons((uint16_t)port);
    g->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(g->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (g->lfd < 0 || bind(g->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(g->lfd, 1024) < 0) {
        sf_errf(err, errlen, "--e2b-listen %s: %s", addr, strerror(errno));
        return -errno;
    }
    socklen_t sl = sizeof(sa);
    getsockname(g->lfd, (struct sockaddr *)&sa, &sl);
    g->port = ntohs(sa.sin_port);
    return 0;
bad:
    sf_errf(err, errlen, "--e2b-listen '%s': expected IPV4:PORT, e.g. 127.0.0.1:3000",
            addr ? addr : "");
    return -EINVAL;
}

/* Each connection may hold an upstream too: make room for both. */
static void gw_fd_limit(struct gw *g)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long fit = ((long)rl.rlim_cur - 256) / 2;
        if (fit < 16) fit = 16;
        if (g->max_conns > fit) g->max_conns = fit;
    }
}

static void gw_metrics(struct gw *g)
{
    static const char ch[] = "Sandboxes created through this E2B gateway, and creates refused.";
    if (!g->cfg.m) g->cfg.m = g->own_m = sf_metrics_new();    /* counted, not shown */
    g->c_created = sf_metrics_counter(g->cfg.m, "sandfleet_e2b_gateway_creates_total", ch, "outcome=\"created\"");
    g->c_full = sf_metrics_counter(g->cfg.m, "sandfleet_e2b_gateway_creates_total", ch, "outcome=\"fleet_full\"");
    g->c_failed = sf_metrics_counter(g->cfg.m, "sandfleet_e2b_gateway_creates_total", ch, "outcome=\"failed\"");
    g->c_proxied = sf_metrics_counter(g->cfg.m, "sandfleet_e2b_gateway_proxied_total",
                                      "Requests relayed to the worker that owns their sandbox.", NULL);
    g->c_refused_conn = sf_metrics_counter(g->cfg.m, "sandfleet_e2b_gateway_refused_connections_total",
                                           "Connections refused by the total or per-address limit.", NULL);
    g->g_conns = sf_metrics_gauge(g->cfg.m, "sandfleet_e2b_gateway_connections",
                                  "Client connections open on the E2B gateway.", NULL);
    static const char wh[] = "E2B workers in the fleet as this gateway last read them.";
    g->g_live = sf_metrics_gauge(g->cfg.m, "sandfleet_e2b_gateway_workers", wh, "state=\"live\"");
    g->g_draining = sf_metrics_gauge(g->cfg.m, "sandfleet_e2b_gateway_workers", wh, "state=\"draining\"");
    g->g_capacity = sf_metrics_gauge(g->cfg.m, "sandfleet_e2b_gateway_fleet_sandboxes",
                                     "Sandboxes the live workers report: their caps together, and running.",
                                     "kind=\"capacity\"");
    g->g_running = sf_metrics_gauge(g->cfg.m, "sandfleet_e2b_gateway_fleet_sandboxes",
                                    "Sandboxes the live workers report: their caps together, and running.",
                                    "kind=\"running\"");
}

int sf_gw_start(const struct sf_gw_cfg *cfg, struct sf_gw **out, char *err, size_t errlen)
{
    struct gw *g = sf_xcalloc(1, sizeof(*g));
    int rc;
    *out = NULL;
    g->cfg = *cfg;
    g->lfd = g->ep = g->wake = -1;
    sf_http_limits_fill(&g->cfg.limits);
    const struct sf_http_limits *l = &g->cfg.limits;
    g->max_conns = l->max_conns;
    g->max_per_ip = l->max_conns_per_ip;
    g->head_ms = l->header_timeout_s * 1000;
    g->body_ms = l->body_timeout_s * 1000;
    g->idle_ms = l->idle_timeout_s * 1000;
    g->xch_ms = cfg->exchange_timeout_ms > 0 ? cfg->exchange_timeout_ms : GW_DEF_EXCHANGE_MS;
    g->max_body = (size_t)l->max_body_kb << 10;
    g->max_body_total = (size_t)l->max_body_total_kb << 10;
    g->nkeys = cfg->n_api_keys;
    g->keys = sf_xcalloc(g->nkeys ? g->nkeys : 1, sizeof(char *));
    for (size_t i = 0; i < g->nkeys; i++) g->keys[i] = sf_xstrdup(cfg->api_keys[i]);
    g->secret = sf_xmalloc(cfg->secret_len);
    memcpy(g->secret, cfg->secret, cfg->secret_len);
    g->slen = cfg->secret_len;
    g->ips = sf_xcalloc(1, sizeof(*g->ips));
    g->cache = gw_cache_new();
    char seed[9];
    sf_random_hex(seed, sizeof(seed), 8);
    g->rnd = (uint32_t)strtoul(seed, NULL, 16);
    gw_fd_limit(g);
    gw_metrics(g);
    if ((rc = gw_listen(g, cfg->listen, err, errlen)) < 0) goto fail;
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->pool = sf_pool_new(GW_POOL_THREADS, gw_pool_work, g);
    if (g->ep < 0 || g->wake < 0 || !g->pool) {
        rc = -errno;
        sf_errf(err, errlen, "E2B gateway: cannot set up its loop: %s", strerror(errno));
        goto fail;
    }
    g->lev.kind = GW_K_LISTEN;
    g->wev.kind = GW_K_WAKE;
    g->pev.kind = GW_K_POOL;
    struct epoll_event e1 = { .events = EPOLLIN, .data.ptr = &g->lev };
    struct epoll_event e2 = { .events = EPOLLIN, .data.ptr = &g->wev };
    struct epoll_event e3 = { .events = EPOLLIN, .data.ptr = &g->pev };
    epoll_ctl(g->ep, EPOLL_CTL_ADD, g->lfd, &e1);
    epoll_ctl(g->ep, EPOLL_CTL_ADD, g->wake, &e2);
    epoll_ctl(g->ep, EPOLL_CTL_ADD, sf_pool_fd(g->pool), &e3);
    if ((rc = -pthread_create(&g->th, NULL, gw_main, g)) < 0) {
        sf_errf(err, errlen, "E2B gateway: cannot start its thread");
        goto fail;
    }
    g->started = true;
    *out = (struct sf_gw *)g;
    return 0;
fail:
    sf_gw_stop((struct sf_gw *)g);
    return rc;
}

int sf_gw_port(const struct sf_gw *gw)
{
    return ((const struct gw *)gw)->port;
}

static void leftover_job(void *job)
{
    gw_job_free(job);
}

void sf_gw_stop(struct sf_gw *gw)
{
    struct gw *g = (struct gw *)gw;
    if (!g) return;
    if (g->started) {
        uint64_t one = 1;
        (void)!write(g->wake, &one, sizeof(one));
        pthread_join(g->th, NULL);
    }
    /* Jobs still on the pool finish first; their clients are freed with them. */
    while (g->clis) {
        struct gw_cli *c = g->clis;
        c->jobs = 0;
        gw_cli_close(c);
    }
    sf_pool_free(g->pool, leftover_job);
    gw_graves_free(g);
    gw_fleet_free(g);
    gw_cache_free(g->cache);
    ip_free(g->ips);
    if (g->lfd >= 0) close(g->lfd);
    if (g->ep >= 0) close(g->ep);
    if (g->wake >= 0) close(g->wake);
    for (size_t i = 0; i < g->nkeys; i++) free(g->keys[i]);
    free(g->keys);
    if (g->secret) explicit_bzero(g->secret, g->slen);
    free(g->secret);
    sf_metrics_free(g->own_m);
    free(g);
}
