/* coordinator/gateway/gw_proxy.c: the relay between a client and the worker
 * that owns its sandbox (gw_int.h), and the upstream connections.
 *
 * DESIGN. The request head is rebuilt (gw_fwd_head): the same method,
 * target and end-to-end headers, without hop-by-hop ones, plus the gateway's
 * signature; so what the worker parses is exactly what the gateway
 * understood, and no second reading of an odd head can differ (smuggling).
 * Bodies are relayed as they come, in both directions, through one buffer
 * each; the HTTP/1.1 framer counts where a message ends so that bytes of the
 * next request stay with the client and the upstream can be reused. Reading
 * stops while the other side cannot take more (backpressure), so a slow
 * reader holds at most one buffer per direction in the gateway. A response
 * 101 after an Upgrade request turns both into a tunnel (WebSocket, get_host).
 * Upstreams are pooled per worker; a pooled one that the worker has closed
 * is found by a peek before reuse, and a request that meets a dead pooled
 * connection before a byte of body or answer went anywhere is sent once
 * more on a fresh one. */
#include "gw_int.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define GW_IDLE_PER_WORKER 64

/* ---- the request head for the worker -------------------------------------------- */

static bool hop_by_hop(const struct sf_h1_header *hd)
{
    return sf_h1_is(hd, "Connection") || sf_h1_is(hd, "Keep-Alive") ||
           sf_h1_is(hd, "Proxy-Connection") || sf_h1_is(hd, "TE") || sf_h1_is(hd, "Upgrade") ||
           sf_h1_is(hd, SF_E2B_GW_AUTH);
}

void gw_fwd_head(struct gw_cli *c, const struct sf_h1_head *h, const char *host)
{
    struct gw *g = c->gw;
    char sig[160], sid[SF_E2B_ID_MAX + 8] = "";
    const char *sidp = sf_h1_get(h, "E2b-Sandbox-Id", sid, sizeof(sid)) ? sid : NULL;
    sf_buf_free(&c->fwd);
    sf_buf_appendf(&c->fwd, "%s %s HTTP/1.1\r\n", c->method, c->target);
    for (size_t i = 0; i < h->nh; i++) {
        const struct sf_h1_header *hd = &h->h[i];
        if (hop_by_hop(hd) && !(c->upgrade && sf_h1_is(hd, "Upgrade"))) continue;
        sf_buf_append(&c->fwd, hd->name, hd->nlen);
        sf_buf_append(&c->fwd, ": ", 2);
        sf_buf_append(&c->fwd, hd->value, hd->vlen);
        sf_buf_append(&c->fwd, "\r\n", 2);
    }
    if (c->upgrade) sf_buf_append(&c->fwd, "Connection: Upgrade\r\n", 21);
    sf_e2b_gw_sign(g->secret, g->slen, sf_wall_ms(), c->method, c->target, strcspn(c->target, "?"),
                   host, sidp, sig, sizeof(sig));
    sf_buf_appendf(&c->fwd, "%s: %s\r\n\r\n", SF_E2B_GW_AUTH, sig);
}

/* ---- upstream connections -------------------------------------------------------- */

/* Close now, free at the end of the turn (gw_graves_free). */
static void up_free(struct gw_up *u)
{
    struct gw *g = u->gw;
    epoll_ctl(g->ep, EPOLL_CTL_DEL, u->fd, NULL);
    close(u->fd);
    u->fd = -1;
    u->dead = true;
    u->cli = NULL;
    gw_worker_unref(g, u->w);
    u->w = NULL;
    u->next = g->grave_up;
    g->grave_up = u;
}

void gw_up_graves_free(struct gw *g)
{
    while (g->grave_up) {
        struct gw_up *u = g->grave_up;
        g->grave_up = u->next;
        gw_buf_free(&u->in);
        sf_buf_free(&u->out);
        free(u);
    }
}

static void up_set(struct gw_up *u, uint32_t want)
{
    gw_set_events(u->gw, &u->ev, u->fd, &u->events, want);
}

/* A pooled connection the worker has not closed, or a new one (connecting).
 * NULL with errno when a connection cannot even be started. */
static struct gw_up *up_get(struct gw *g, struct gw_worker *w)
{
    while (w->idle) {
        struct gw_up *u = w->idle;
        w->idle = u->next;
        w->nidle--;
        char b;
        ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            u->next = NULL;
            u->reused = true;
            return u;
        }
        up_free(u);                      /* closed by the worker, or stray bytes */
    }
    if (!w->salen) {
        errno = EHOSTUNREACH;
        return NULL;
    }
    int fd = socket(w->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&w->sa, w->salen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    struct gw_up *u = sf_xcalloc(1, sizeof(*u));
    u->ev.kind = GW_K_UP;
    u->fd = fd;
    u->gw = g;
    u->w = w;
    gw_worker_ref(w);
    u->connecting = true;
    gw_buf_init(&u->in, 4096, GW_BUF);
    u->deadline = sf_now_ms() + GW_CONNECT_TIMEOUT_MS;
    struct epoll_event e = { .events = EPOLLOUT, .data.ptr = &u->ev };
    u->events = EPOLLOUT;
    epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &e);
    return u;
}

void gw_up_release(struct gw_up *u, bool reusable)
{
    struct gw_worker *w = u->w;
    u->cli = NULL;
    if (!reusable || !w->present || w->nidle >= GW_IDLE_PER_WORKER || u->connecting ||
        gw_buf_avail(&u->in)) {
        up_free(u);
        return;
    }
    sf_buf_free(&u->out);
    u->out_off = 0;
    if (u->in.cap > GW_BUF) {
        gw_buf_free(&u->in);
        gw_buf_init(&u->in, 4096, GW_BUF);
    }
    u->in.max = GW_BUF;
    u->in.off = u->in.len = 0;
    u->reused = false;
    u->idle_since = sf_now_ms();
    u->next = w->idle;
    w->idle = u;
    w->nidle++;
    up_set(u, EPOLLIN | EPOLLRDHUP);     /* anything now means the worker closed it */
}

void gw_up_idle_sweep(struct gw *g, int64_t now)
{
    for (size_t i = 0; i < g->nworkers; i++) {
        struct gw_worker *w = g->workers[i];
        for (struct gw_up **pp = &w->idle; *pp;) {
            struct gw_up *u = *pp;
            if (now - u->idle_since < GW_UP_IDLE_MS && w->present) {
                pp = &u->next;
                continue;
            }
            *pp = u->next;
            w->nidle--;
            up_free(u);
        }
    }
    for (struct gw_up **pp = &g->detached; *pp;) {
        struct gw_up *u = *pp;
        if (now < u->deadline) {
            pp = &u->next;
            continue;
        }
        *pp = u->next;
        up_free(u);
    }
}

void gw_up_close_all(struct gw *g)
{
    for (size_t i = 0; i < g->nworkers; i++) {
        struct gw_worker *w = g->workers[i];
        while (w->idle) {
            struct gw_up *u = w->idle;
            w->idle = u->next;
            w->refs++;                   /* up_free drops one; the table is freed whole after */
            up_free(u);
        }
        w->nidle = 0;
    }
    while (g->detached) {
        struct gw_up *u = g->detached;
        g->detached = u->next;
        u->w->refs++;
        up_free(u);
    }
}

/* ---- starting and failing an exchange ---------------------------------------------- */

static void exchange_reset(struct gw_cli *c)
{
    c->rp = RP_HEAD;
    c->rp_pend = c->rp_head = c->rp_seen = 0;
    c->up_close = c->up_eof = c->resp_started = c->resp_bytes = c->body_sent = false;
}

static void worker_down(struct gw_worker *w)
{
    w->down_until = sf_now_ms() + 2000;
}

/* The worker is unreachable or broke off before answering. */
static void up_failed(struct gw_cli *c, const char *why, bool was_connect)
{
    struct gw_up *u = c->up;
    c->up = NULL;
    if (was_connect) worker_down(u->w);
    gw_up_release(u, false);
    if (c->intercept) {
        gw_create_failed(c, why);
        return;
    }
    if (!c->reqb.done) c->close_after = true;
    SF_LOG(c->gw->cfg.lg, SF_LOG_DEBUG, NULL, NULL, "e2b gateway: %s %s for %s: %s", c->method,
           c->target, c->sid, why);
    if (c->route == R_ENVD) {
        gw_reply_no_sandbox(c);
    } else {
        gw_cache_del(c->gw->cache, c->sid);
        gw_reply_error(c, 502, "the worker holding sandbox %s did not answer (%s)", c->sid, why);
    }
}

void gw_proxy_timeout(struct gw_cli *c)
{
    if (c->up) up_failed(c, "no answer in time", true);
}

void gw_proxy_start(struct gw_cli *c, struct gw_worker *w)
{
    struct gw_up *u = up_get(c->gw, w);
    c->st = C_PROXY;
    exchange_reset(c);
    if (!u) {
        worker_down(w);
        if (c->intercept) {
            gw_create_failed(c, strerror(errno));
        } else {
            if (!c->reqb.done) c->close_after = true;
            if (c->route == R_ENVD) gw_reply_no_sandbox(c);
            else gw_reply_error(c, 502, "the worker holding sandbox %s is unreachable", c->sid);
        }
        return;
    }
    u->cli = c;
    c->up = u;
    sf_buf_append(&u->out, c->fwd.data, c->fwd.len);
    u->out_off = 0;
    c->deadline = sf_now_ms() + c->gw->xch_ms;
    if (c->intercept) {
        u->in.max = GW_HEAD_MAX + c->gw->max_body + 4096;
        c->deadline = sf_now_ms() + GW_CREATE_TIMEOUT_MS;
    }
}

/* Same request, fresh connection: the pooled one was dead. */
static bool retry_fresh(struct gw_cli *c)
{
    struct gw_up *u = c->up;
    if (!u->reused || c->body_sent || c->resp_bytes || c->retried) return false;
    struct gw_worker *w = u->w;
    c->up = NULL;
    gw_up_release(u, false);
    c->retried = true;
    gw_proxy_start(c, w);
    return c->up != NULL;
}

/* ---- the response ------------------------------------------------------------------- */

/* What the answer tells the gateway about its own state. */
static void note_response(struct gw_cli *c, int status)
{
    struct gw *g = c->gw;
    c->resp_status = status;
    if (c->route == R_SANDBOX && status == 404) gw_cache_del(g->cache, c->sid);
    if (c->route == R_ENVD && status == 502) gw_cache_del(g->cache, c->sid);
    if (c->route == R_SANDBOX && !strcmp(c->method, "DELETE") && status == 204) {
        /* Killed: the record goes before the answer does, so a list right
         * after it (through any gateway) does not show the sandbox. (The
         * owner drops it too; a 404 here only drops the cache entry: it may
         * be a route the worker does not serve, not a missing sandbox.) */
        struct gw_job *j = sf_xcalloc(1, sizeof(*j));
        j->kind = J_DEL;
        sf_strlcpy(j->id, c->sid, sizeof(j->id));
        j->cli = c;
        c->hold = true;
        gw_cache_del(g->cache, c->sid);
        gw_submit(g, j);
    }
}

/* Parse a response head at the front of up->in (relay mode). 1 parsed, 0
 * more needed, -1 the exchange failed (handled). */
static int relay_head(struct gw_cli *c)
{
    struct gw_up *u = c->up;
    struct sf_h1_head h;
    const char *why;
    int rc = sf_h1_parse_response(u->in.d + u->in.off, gw_buf_avail(&u->in), GW_HEAD_MAX, &h, &why);
    if (rc == 0) return 0;
    if (rc < 0) {
        up_failed(c, rc == -E2BIG ? "response head too large" : why, false);
        return -1;
    }
    c->rp_pend = h.len;
    if (h.status == 101) {
        if (!c->upgrade) {
            up_failed(c, "101 to a request that did not ask to upgrade", false);
            return -1;
        }
        c->st = C_TUNNEL;
        c->rp = RP_DONE;
        c->deadline = sf_now_ms() + 3600000;
        return 1;
    }
    if (h.status < 200) return 1;        /* 100 Continue and friends: relayed, then the real one */
    c->resp_started = true;
    sf_h1_body_response(&c->respb, &h, c->head_req);
    c->up_close = h.conn_close || c->respb.kind == SF_H1_BODY_EOF;
    if (c->respb.kind == SF_H1_BODY_EOF) c->close_after = true;
    c->rp = c->respb.done ? RP_DONE : RP_BODY;
    note_response(c, h.status);
    return 1;
}

/* Intercept mode (create): collect the whole answer, then hand it over. */
static bool intercept_step(struct gw_cli *c, bool eof)
{
    struct gw_up *u = c->up;
    struct sf_h1_head h;
    const char *why;
    for (;;) {
        const char *base = u->in.d + u->in.off;
        size_t avail = gw_buf_avail(&u->in);
        if (c->rp == RP_HEAD) {
            int rc = sf_h1_parse_response(base, avail, GW_HEAD_MAX, &h, &why);
            if (rc == 0) break;
            if (rc < 0 || h.chunked) {
                up_failed(c, rc < 0 ? why : "chunked answer to a create", false);
                return true;
            }
            if (h.status < 200) {         /* interim: drop it */
                gw_buf_drop(&u->in, h.len);
                continue;
            }
            sf_h1_body_response(&c->respb, &h, false);
            c->up_close = h.conn_close || c->respb.kind == SF_H1_BODY_EOF;
            c->rp_head = c->rp_seen = h.len;
            c->rp = RP_BODY;
        }
        if (c->rp == RP_BODY) {
            ssize_t k = sf_h1_body_feed(&c->respb, base + c->rp_seen, avail - c->rp_seen);
            if (k < 0) {
                up_failed(c, "broken answer framing", false);
                return true;
            }
            c->rp_seen += (size_t)k;
            if (c->respb.done || (eof && c->respb.kind == SF_H1_BODY_EOF)) c->rp = RP_DONE;
        }
        break;
    }
    if (c->rp != RP_DONE) {
        if (eof) up_failed(c, "the worker closed the connection", false);
        else if (!gw_buf_room(&u->in)) up_failed(c, "answer too large", false);
        return eof;
    }
    sf_h1_parse_response(u->in.d + u->in.off, c->rp_head, GW_HEAD_MAX, &h, &why);
    /* h points into u->in: hand it over before the upstream goes back. */
    c->up = NULL;
    gw_create_response(c, &h, u->in.d + u->in.off + c->rp_head, c->rp_seen - c->rp_head);
    gw_buf_drop(&u->in, c->rp_seen);
    gw_up_release(u, !c->up_close);
    return true;
}

/* ---- the relay ---------------------------------------------------------------------- */

/* Write from src to fd: first *pend bytes as they are (a head), then, with
 * a framer b, the bytes that still belong to its message; with raw, all
 * there is. How many went (0: would block), -1 dead socket, -2 bad framing. */
static ssize_t relay(int fd, struct gw_buf *src, size_t *pend, struct sf_h1_body *b, bool raw)
{
    const char *p = src->d + src->off;
    size_t avail = gw_buf_avail(src), hp = pend ? *pend : 0, n = hp < avail ? hp : avail;
    if (raw) {
        n = avail;
    } else if (b && n == hp && avail > hp) {
        struct sf_h1_body probe = *b;
        ssize_t k = sf_h1_body_feed(&probe, p + hp, avail - hp);
        if (k < 0) return -2;
        n += (size_t)k;
    }
    if (!n) return 0;
    ssize_t w = write(fd, p, n);
    if (w < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    size_t body = (size_t)w > hp ? (size_t)w - hp : 0;
    if (pend) *pend = hp > (size_t)w ? hp - (size_t)w : 0;
    if (b && body) sf_h1_body_feed(b, p + hp, body);
    gw_buf_drop(src, (size_t)w);
    return w;
}

/* Read into buf from fd: 1 bytes, 0 would block or no room, -1 EOF/error. */
static int fill(int fd, struct gw_buf *buf)
{
    size_t room = gw_buf_room(buf);
    if (!room) return 0;
    ssize_t n = read(fd, buf->d + buf->len, room);
    if (n > 0) {
        buf->len += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
}

/* What each end waits for now. An upstream with nothing to wait for is
 * left with no events (epoll still reports errors: gw_up_step handles them). */
static void proxy_interest(struct gw_cli *c)
{
    struct gw_up *u = c->up;
    uint32_t cw = EPOLLRDHUP, uw = 0;
    bool tunnel = c->st == C_TUNNEL;
    bool to_up = gw_buf_avail(&c->in) && (tunnel || (!c->reqb.done && !c->intercept));
    if (u->connecting || u->out_off < u->out.len || to_up) uw |= EPOLLOUT;
    if ((tunnel || c->rp != RP_DONE) && !c->up_eof && gw_buf_room(&u->in)) uw |= EPOLLIN;
    if ((tunnel || (!c->reqb.done && !c->intercept && u->out_off == u->out.len)) && !to_up &&
        gw_buf_room(&c->in))
        cw |= EPOLLIN;
    if (!c->intercept && !c->hold && gw_buf_avail(&u->in) && (tunnel || c->rp_pend || c->rp == RP_BODY))
        cw |= EPOLLOUT;
    gw_set_events(c->gw, &c->ev, c->fd, &c->events, cw);
    if (!u->gone) up_set(u, uw);
}

/* Done with one request and its answer. */
static bool exchange_end(struct gw_cli *c)
{
    struct gw_up *u = c->up;
    c->up = NULL;
    bool clean = c->reqb.done;
    gw_up_release(u, clean && !c->up_close);
    if (!clean) {
        /* Answered before the body was all sent: what follows on the
         * client's connection is the rest of that body, not a request. */
        c->close_after = true;
        shutdown(c->fd, SHUT_WR);
        c->st = C_LINGER;
        c->deadline = sf_now_ms() + 2000;
        return true;
    }
    gw_exchange_done(c);
    return !c->dead;
}

static bool tunnel_step(struct gw_cli *c)
{
    struct gw_up *u = c->up;
    for (int i = 0; i < 64; i++) {
        bool progress = false;
        ssize_t w = relay(u->fd, &c->in, NULL, NULL, true);
        if (w < 0) goto closed;
        progress |= w > 0;
        w = relay(c->fd, &u->in, &c->rp_pend, NULL, true);
        if (w < 0) goto closed;
        progress |= w > 0;
        int r = fill(c->fd, &c->in);
        if (r < 0) goto closed;
        progress |= r > 0;
        r = fill(u->fd, &u->in);
        if (r < 0) goto closed;
        progress |= r > 0;
        if (!progress) break;
        c->deadline = sf_now_ms() + 3600000;
    }
    proxy_interest(c);
    return false;
closed:
    /* Either end closed: pass on what is buffered for the other, then go. */
    (void)relay(c->fd, &u->in, NULL, NULL, true);
    (void)relay(u->fd, &c->in, NULL, NULL, true);
    gw_cli_close(c);
    return false;
}

/* The request side: the head (and a create's body), then body bytes as
 * the client sends them. false when the exchange ended (handled). */
static bool request_side(struct gw_cli *c, bool *progress)
{
    struct gw_up *u = c->up;
    if (u->out_off < u->out.len) {
        ssize_t w = write(u->fd, u->out.data + u->out_off, u->out.len - u->out_off);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            if (!retry_fresh(c)) up_failed(c, strerror(errno), false);
            return false;
        }
        if (w > 0) {
            u->out_off += (size_t)w;
            *progress = true;
        }
    }
    if (u->out_off < u->out.len || c->reqb.done || c->intercept) return true;
    ssize_t w = relay(u->fd, &c->in, NULL, &c->reqb, false);
    if (w == -2) {                        /* broken chunked framing from the client */
        gw_cli_close(c);
        return false;
    }
    if (w < 0) {
        up_failed(c, "the worker closed the connection", false);
        return false;
    }
    if (w > 0) c->body_sent = *progress = true;
    if (!c->reqb.done && !gw_buf_avail(&c->in)) {
        int r = fill(c->fd, &c->in);
        if (r < 0) {
            gw_cli_close(c);
            return false;
        }
        *progress |= r > 0;
    }
    return true;
}

/* The answer side (relay mode). false when the exchange ended (handled). */
static bool answer_side(struct gw_cli *c, bool *progress)
{
    struct gw_up *u = c->up;
    if (c->rp != RP_DONE && !c->up_eof) {
        int r = fill(u->fd, &u->in);
        if (r > 0) c->resp_bytes = *progress = true;
        if (r < 0) {
            c->up_eof = true;
            if (!(c->rp == RP_BODY && c->respb.kind == SF_H1_BODY_EOF)) {
                /* cut off before the answer was whole */
                if (c->rp == RP_HEAD && !c->resp_bytes && retry_fresh(c)) return false;
                if (!c->resp_started && !c->rp_pend) up_failed(c, "the worker closed the connection", false);
                else gw_cli_close(c);
                return false;
            }
        }
    }
    if (c->rp == RP_HEAD && !c->rp_pend && gw_buf_avail(&u->in)) {
        int r = relay_head(c);
        if (r < 0) return false;
        *progress |= r > 0;
    }
    if (c->hold || (!c->rp_pend && c->rp != RP_BODY && c->st != C_TUNNEL)) return true;
    bool body = c->rp == RP_BODY;
    ssize_t w = relay(c->fd, &u->in, &c->rp_pend, body ? &c->respb : NULL, c->st == C_TUNNEL);
    if (w < 0) {
        gw_cli_close(c);
        return false;
    }
    *progress |= w > 0;
    if (body && (c->respb.done || (c->up_eof && !gw_buf_avail(&u->in)))) c->rp = RP_DONE;
    return true;
}

bool gw_proxy_step(struct gw_cli *c)
{
    struct gw_up *u = c->up;
    if (!u) return false;
    if (u->connecting) {
        proxy_interest(c);
        return false;
    }
    if (c->st == C_TUNNEL) return tunnel_step(c);
    for (int i = 0; i < 64; i++) {
        bool progress = false;
        if (!request_side(c, &progress)) return true;
        if (c->intercept) {
            int r = fill(u->fd, &u->in);
            if (r != 0 && intercept_step(c, r < 0)) return true;
            progress |= r > 0;
        } else {
            if (!answer_side(c, &progress)) return true;
            if (c->st == C_TUNNEL) return tunnel_step(c);
            if (c->rp == RP_DONE && !c->rp_pend && !c->hold) return exchange_end(c);
        }
        if (!progress) break;
        c->deadline = sf_now_ms() + c->gw->xch_ms;
    }
    proxy_interest(c);
    return false;
}

/* ---- upstream events ------------------------------------------------------------------ */

static void detached_step(struct gw_up *u, uint32_t events)
{
    if (!(events & (EPOLLERR | EPOLLHUP)) && u->out_off < u->out.len) {
        ssize_t w = write(u->fd, u->out.data + u->out_off, u->out.len - u->out_off);
        if (w > 0) u->out_off += (size_t)w;
        if (u->out_off < u->out.len && (w > 0 || errno == EAGAIN)) return;
    }
    char junk[512];
    if (u->out_off == u->out.len && !(events & (EPOLLERR | EPOLLHUP))) {
        ssize_t n = read(u->fd, junk, sizeof(junk));
        if (n < 0 && errno == EAGAIN) {
            up_set(u, EPOLLIN);
            return;
        }
    }
    for (struct gw_up **pp = &u->gw->detached; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    up_free(u);                          /* answered (or failed): that is all we wanted */
}

void gw_up_step(struct gw_up *u, uint32_t events)
{
    if (u->dead) return;
    if (u->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        u->connecting = false;
        if (err) {
            struct gw_cli *c = u->cli;
            if (u->detached) {
                detached_step(u, EPOLLERR);
            } else if (c) {
                up_failed(c, strerror(err), true);
                gw_cli_step(c);
            } else {
                up_free(u);
            }
            return;
        }
    }
    if (u->detached) {
        detached_step(u, events);
        return;
    }
    if (u->cli && (events & (EPOLLERR | EPOLLHUP)) && !(u->events & (EPOLLIN | EPOLLOUT))) {
        /* Reset while the exchange waits on the client or the broker: the
         * next read or write tells; stop hearing about it meanwhile. */
        epoll_ctl(u->gw->ep, EPOLL_CTL_DEL, u->fd, NULL);
        u->gone = true;
        u->cli->up_close = true;
        return;
    }
    if (!u->cli) {                       /* pooled: the worker closed it, or sent junk */
        struct gw_worker *w = u->w;
        for (struct gw_up **pp = &w->idle; *pp; pp = &(*pp)->next)
            if (*pp == u) {
                *pp = u->next;
                w->nidle--;
                break;
            }
        up_free(u);
        return;
    }
    gw_cli_step(u->cli);
}

void gw_up_kill_detached(struct gw *g, struct gw_worker *w, const char *id)
{
    struct gw_up *u = up_get(g, w);
    if (!u) return;
    char path[128], sig[160];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    sf_e2b_gw_sign(g->secret, g->slen, sf_wall_ms(), "DELETE", path, strlen(path), w->cap.ingress,
                   NULL, sig, sizeof(sig));
    sf_buf_appendf(&u->out, "DELETE %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n%s: %s\r\n\r\n", path, w->cap.ingress, SF_E2B_GW_AUTH, sig);
    u->detached = true;
    u->deadline = sf_now_ms() + 5000;
    u->next = g->detached;
    g->detached = u;
    if (!u->connecting) up_set(u, EPOLLOUT);
}
