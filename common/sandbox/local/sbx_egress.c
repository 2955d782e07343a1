/* common/sandbox/local/sbx_egress.c: see sbx_egress.h. The proxy thread's
 * loop, the sandboxes it serves, and TCP (the verdict on a destination is
 * sbx_egress_judge.c).
 *
 * Design: one epoll loop, level-triggered; every fd's interest is set from
 * its connection's state after each step, so no event is lost and none
 * spins. A TCP connection is a client socket (accepted in the sandbox's
 * namespace), an upstream socket (made in the worker's), and two pipes the
 * bytes are spliced through. Before the upstream exists a connection may
 * be "sniffing": reading the client's first bytes into a buffer to find the
 * host it names (sniff.h); those bytes go into the pipe first once it is
 * allowed. Commands from other threads (attach, detach, stop) come through
 * a mutex-protected list and an eventfd; their callers wait for them. */
#include "sbx_egress_int.h"
#include "sniff.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum { CMD_ATTACH = 1, CMD_DETACH, CMD_STOP };

struct eg_cmd {
    int type;
    struct sf_sbx_egress_att *att;
    bool done;
    struct eg_cmd *next;
};


static void conn_step(struct sf_sbx_egress *eg, struct eg_conn *c);

/* ---- epoll helpers ---------------------------------------------------------- */

int eg_add(struct sf_sbx_egress *eg, struct eg_ep *ep, enum eg_kind kind, void *obj, int fd,
           uint32_t events)
{
    ep->kind = kind;
    ep->obj = obj;
    ep->fd = fd;
    ep->events = events;
    struct epoll_event ev = { .events = events, .data.ptr = ep };
    return epoll_ctl(eg->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void eg_set_events(struct sf_sbx_egress *eg, struct eg_ep *ep, uint32_t events)
{
    if (ep->fd < 0 || ep->events == events) return;
    ep->events = events;
    struct epoll_event ev = { .events = events, .data.ptr = ep };
    epoll_ctl(eg->epfd, EPOLL_CTL_MOD, ep->fd, &ev);
}

void eg_del(struct sf_sbx_egress *eg, struct eg_ep *ep)
{
    if (ep->fd < 0) return;
    epoll_ctl(eg->epfd, EPOLL_CTL_DEL, ep->fd, NULL);
    close(ep->fd);
    ep->fd = -1;
}

void eg_defer_free(struct sf_sbx_egress *eg, void *p)
{
    if (eg->ngrave == eg->capgrave) {
        eg->capgrave = eg->capgrave ? eg->capgrave * 2 : 64;
        eg->graveyard = sf_xrealloc(eg->graveyard, eg->capgrave * sizeof(void *));
    }
    eg->graveyard[eg->ngrave++] = p;
}

static void eg_bury(struct sf_sbx_egress *eg)
{
    for (size_t i = 0; i < eg->ngrave; i++) free(eg->graveyard[i]);
    eg->ngrave = 0;
}

/* ---- TCP connections -------------------------------------------------------- */

static void conn_interest(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    uint32_t ce = 0, ue = 0;
    if (!c->c_eof && (c->sniffing ? c->hlen < SF_SNIFF_MAX : c->in_cu < c->cap_cu) && !c->resolving)
        ce |= EPOLLIN;
    if (c->in_uc) ce |= EPOLLOUT;
    if (c->up == UP_CONNECTING) ue |= EPOLLOUT;
    if (c->up == UP_OPEN) {
        if (!c->u_eof && c->in_uc < c->cap_uc) ue |= EPOLLIN;
        if (c->in_cu) ue |= EPOLLOUT;
    }
    eg_set_events(eg, &c->cep, ce);
    eg_set_events(eg, &c->uep, ue);
}

static void conn_unlink(struct eg_conn *c)
{
    struct sf_sbx_egress_att *a = c->att;
    if (c->prev) c->prev->next = c->next;
    else a->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    a->nconns--;
}

void eg_conn_close(struct sf_sbx_egress *eg, struct eg_conn *c, bool reset)
{
    if (c->resolving) eg_dns_forget_conn(eg, c);
    for (int i = 0; reset && i < 2; i++) {
        /* Close with RST: the sandbox sees ECONNRESET, the server an abort. */
        int fd = i ? c->uep.fd : c->cep.fd;
        struct linger l = { 1, 0 };
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    eg_del(eg, &c->cep);
    eg_del(eg, &c->uep);
    for (int i = 0; i < 2; i++) {
        if (c->pcu[i] >= 0) close(c->pcu[i]);
        if (c->puc[i] >= 0) close(c->puc[i]);
    }
    conn_unlink(c);
    free(c->head);
    c->head = NULL;
    eg_tls_free(c->tls);
    c->tls = NULL;
    sf_inject_free(c->tls_rule);
    c->tls_rule = NULL;
    eg_defer_free(eg, c);
}

static void conn_deny(struct sf_sbx_egress *eg, struct eg_conn *c, const char *why)
{
    eg_denied(c->att, "tcp", &c->dst, why);
    eg_conn_close(eg, c, true);
}

/* Bytes read while sniffing go into the pipe first. */
static int conn_release_head(struct eg_conn *c)
{
    c->sniffing = false;
    size_t off = 0;
    while (off < c->hlen) {
        ssize_t n = write(c->pcu[1], c->head + off, c->hlen - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -EIO;          /* cannot happen: the pipe is larger than the head */
        off += (size_t)n;
    }
    c->in_cu += c->hlen;
    free(c->head);
    c->head = NULL;
    c->hlen = 0;
    return 0;
}

/* Start the upstream connection (s >= 0: one already connecting). -1 when
 * it failed (c is then closed). */
static int conn_connect(struct sf_sbx_egress *eg, struct eg_conn *c, int s)
{
    if (s < 0) s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    else goto started;
    if (s >= 0 && connect(s, (struct sockaddr *)&c->dst, sizeof(c->dst)) < 0 && errno != EINPROGRESS) {
        close(s);
        s = -1;
    }
started:
    if (s < 0 || eg_add(eg, &c->uep, EK_CONN_U, c, s, EPOLLOUT) < 0) {
        if (s >= 0) close(s);
        c->uep.fd = -1;
        eg_conn_close(eg, c, true);
        return -1;
    }
    c->up = UP_CONNECTING;
    c->deadline = sf_now_ms() + EG_CONNECT_MS;
    c->att->n_ok++;
    return 0;
}

/* The upstream connection is on its way: relay, or intercept. */
static void conn_opened(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    if (c->tls_rule) eg_tls_begin(eg, c);
    else conn_interest(eg, c);
}

void eg_conn_resolved(struct sf_sbx_egress *eg, struct eg_conn *c, const uint32_t *v4, size_t n)
{
    c->resolving = false;
    uint32_t want = ntohl(c->dst.sin_addr.s_addr);
    for (size_t i = 0; i < n; i++)
        if (v4[i] == want) {
            if (conn_connect(eg, c, -1) == 0) conn_opened(eg, c);
            return;
        }
    conn_deny(eg, c, "the host it names does not resolve to this address");
}

/* The client's first bytes are in: judge the name they carry. */
static void conn_sniffed(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    char name[256];
    const char *proto;
    enum sf_sniff r = sf_sniff_name(c->head, c->hlen, name, sizeof(name), &proto);
    if (r == SF_SNIFF_MORE && !c->c_eof) {
        conn_interest(eg, c);
        return;
    }
    if (c->ingress) {
        /* Another sandbox's port, by its get_host name (sbx_egress_in.c). */
        char why[300] = "another sandbox is reached by HTTP naming it";
        int s = r == SF_SNIFF_NAME && !strcmp(proto, "http")
                    ? eg_ingress_connect(c->att, c->head, c->hlen, name, why, sizeof(why)) : -1;
        if (s < 0) {
            conn_deny(eg, c, why);
        } else if (conn_release_head(c) < 0) {
            close(s);
            eg_conn_close(eg, c, true);
        } else if (conn_connect(eg, c, s) == 0) {
            conn_interest(eg, c);
        }
        return;
    }
    if (r == SF_SNIFF_NAME && !eg_name_ok(eg, c->att, name, c->need_house, c->need_sbx)) {
        char why[300];
        snprintf(why, sizeof(why), "names %s, which is not allowed", name);
        conn_deny(eg, c, why);
        return;
    }
    /* A TLS connection to a host the sandbox's inject rules name is ended
     * here (sbx_egress_tls.c); every other connection stays end to end. */
    if (r == SF_SNIFF_NAME && !strcmp(proto, "tls") && eg->ca &&
        (c->tls_rule = eg_inject_pick(c->att, name)))
        sf_strlcpy(c->tls_host, name, sizeof(c->tls_host));
    if (c->check_only) {
        /* Allowed already (by address, or by the sandbox's own DNS answer);
         * a protocol that names no host keeps that permission. */
        if (c->tls_rule) eg_tls_begin(eg, c);
        else if (conn_release_head(c) < 0) eg_conn_close(eg, c, true);
        else conn_step(eg, c);
        return;
    }
    if (r != SF_SNIFF_NAME) {
        conn_deny(eg, c, "open to allowed host names only, and the connection names none");
        return;
    }
    if (!c->tls_rule && conn_release_head(c) < 0) {
        eg_conn_close(eg, c, true);
        return;
    }
    /* The name is allowed: is this address really that host? */
    if (eg_bind_has(c->att, name, ntohl(c->dst.sin_addr.s_addr))) {
        if (conn_connect(eg, c, -1) == 0) conn_opened(eg, c);
        return;
    }
    c->resolving = true;
    c->deadline = sf_now_ms() + EG_DNS_TIMEOUT_MS + 1000;
    if (eg_dns_lookup(c->att, c, name) < 0) {
        c->resolving = false;
        conn_deny(eg, c, "cannot resolve the host it names");
        return;
    }
    conn_interest(eg, c);
}

static void conn_sniff_read(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    if (!c->head) c->head = sf_xmalloc(SF_SNIFF_MAX);
    ssize_t n = recv(c->cep.fd, c->head + c->hlen, SF_SNIFF_MAX - c->hlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
        eg_conn_close(eg, c, true);
        return;
    }
    if (n == 0) c->c_eof = true;
    c->hlen += (size_t)n;
    conn_sniffed(eg, c);
}

/* Move what can be moved, both ways. -1 when the connection broke. */
static int conn_pump(struct eg_conn *c)
{
    const unsigned fl = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    for (bool progress = true; progress;) {
        progress = false;
        ssize_t n;
        if (!c->sniffing && !c->c_eof && c->cep.fd >= 0 && c->in_cu < c->cap_cu) {
            n = splice(c->cep.fd, NULL, c->pcu[1], NULL, c->cap_cu - c->in_cu, fl);
            if (n > 0) { c->in_cu += (size_t)n; progress = true; }
            else if (n == 0) c->c_eof = true;
            else if (errno != EAGAIN && errno != EINTR) return -1;
        }
        if (c->up == UP_OPEN && c->uep.fd >= 0 && c->in_cu) {
            n = splice(c->pcu[0], NULL, c->uep.fd, NULL, c->in_cu, fl);
            if (n > 0) { c->in_cu -= (size_t)n; progress = true; }
            else if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
        }
        if (c->up == UP_OPEN && c->uep.fd >= 0 && !c->u_eof && c->in_uc < c->cap_uc) {
            n = splice(c->uep.fd, NULL, c->puc[1], NULL, c->cap_uc - c->in_uc, fl);
            if (n > 0) { c->in_uc += (size_t)n; progress = true; }
            else if (n == 0) c->u_eof = true;
            else if (errno != EAGAIN && errno != EINTR) return -1;
        }
        if (c->in_uc && c->cep.fd >= 0) {
            n = splice(c->puc[0], NULL, c->cep.fd, NULL, c->in_uc, fl);
            if (n > 0) { c->in_uc -= (size_t)n; progress = true; }
            else if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
        }
    }
    /* Half-closes pass through, so request/response protocols that end
     * with shutdown(SHUT_WR) work. */
    if (c->c_eof && !c->sniffing && !c->in_cu && c->up == UP_OPEN && !c->u_wshut && c->uep.fd >= 0) {
        shutdown(c->uep.fd, SHUT_WR);
        c->u_wshut = true;
    }
    if (c->u_eof && !c->in_uc && !c->c_wshut && c->cep.fd >= 0) {
        shutdown(c->cep.fd, SHUT_WR);
        c->c_wshut = true;
    }
    return 0;
}

/* Pump, then close a finished connection or set its interest. */
static void conn_step(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    if (conn_pump(c) < 0) {
        eg_conn_close(eg, c, true);
        return;
    }
    if (c->c_wshut && c->u_wshut) {
        eg_conn_close(eg, c, false);
        return;
    }
    conn_interest(eg, c);
}

static void conn_event(struct sf_sbx_egress *eg, struct eg_ep *ep, uint32_t events)
{
    struct eg_conn *c = ep->obj;
    bool up_side = ep == &c->uep;
    if (up_side && c->up == UP_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        if (getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
        if (err == EINPROGRESS || err == EALREADY) return;
        if (err) {
            eg_conn_close(eg, c, true);     /* refused or unreachable: the sandbox sees a reset */
            return;
        }
        c->up = UP_OPEN;
        if (!c->resolving) c->deadline = 0;
    }
    if (c->tls) {
        eg_tls_event(eg, c, up_side, events);
        return;
    }
    if (events & EPOLLERR) {
        eg_conn_close(eg, c, true);
        return;
    }
    if (!up_side && c->sniffing) {
        if (events & (EPOLLIN | EPOLLHUP)) conn_sniff_read(eg, c);
        return;
    }
    if (conn_pump(c) < 0) {
        eg_conn_close(eg, c, true);
        return;
    }
    if (events & EPOLLHUP) {
        /* That peer is gone both ways: fine if nothing more is owed to it,
         * otherwise the other side learns by a reset. */
        bool owed = up_side ? !c->c_eof || c->in_cu : !c->u_eof || c->in_uc;
        bool drained = up_side ? c->u_eof : c->c_eof;
        if (owed || !drained) {
            eg_conn_close(eg, c, true);
            return;
        }
        if (up_side) {
            c->u_wshut = true;
            eg_del(eg, &c->uep);
        } else {
            c->c_wshut = true;
            eg_del(eg, &c->cep);
        }
    }
    conn_step(eg, c);
}

static void tcp_accept(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a)
{
    for (;;) {
        struct sockaddr_in dst;
        socklen_t dl = sizeof(dst);
        int fd = accept4(a->ep[SF_SBX_NS_TCP].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        /* tproxy: the accepted socket's own address is where the sandbox
         * wanted to go. */
        if (getsockname(fd, (struct sockaddr *)&dst, &dl) < 0 || dst.sin_family != AF_INET ||
            a->nconns >= EG_MAX_CONNS_PER_SBX) {
            struct linger l = { 1, 0 };
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            close(fd);
            if (a->nconns >= EG_MAX_CONNS_PER_SBX) eg_denied(a, "tcp", &dst, "too many connections");
            continue;
        }
        if (ntohs(dst.sin_port) == 53) {    /* DNS to any server: the sandbox's resolver */
            eg_dns_adopt_tcp(a, fd);
            continue;
        }
        struct eg_conn *c = sf_xcalloc(1, sizeof(*c));
        c->att = a;
        c->dst = dst;
        c->uep.fd = -1;
        c->pcu[0] = c->pcu[1] = c->puc[0] = c->puc[1] = -1;
        c->next = a->conns;
        if (a->conns) a->conns->prev = c;
        a->conns = c;
        a->nconns++;
        if (eg_add(eg, &c->cep, EK_CONN_C, c, fd, 0) < 0) {
            close(fd);
            c->cep.fd = -1;
            eg_conn_close(eg, c, true);
            continue;
        }
        if (pipe2(c->pcu, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(c->puc, O_NONBLOCK | O_CLOEXEC) < 0) {
            eg_conn_close(eg, c, true);
            continue;
        }
        c->cap_cu = (size_t)fcntl(c->pcu[0], F_GETPIPE_SZ);
        c->cap_uc = (size_t)fcntl(c->puc[0], F_GETPIPE_SZ);
        if (ntohl(dst.sin_addr.s_addr) == EG_INGRESS_VIP) {
            c->sniffing = c->ingress = true;
            c->deadline = sf_now_ms() + EG_SNIFF_MS;
            conn_interest(eg, c);
            continue;
        }
        char why[200];
        int v = eg_judge(eg, a, &dst, &c->need_house, &c->need_sbx, why, sizeof(why));
        if (v < 0) {
            conn_deny(eg, c, why);
            continue;
        }
        if (v == 0) {
            /* With inject rules, every connection's first bytes are looked
             * at (while it connects): a TLS one to such a host is intercepted. */
            if (eg->ca && eg_has_inject(a)) c->sniffing = c->check_only = true;
            if (conn_connect(eg, c, -1) < 0) continue;
        } else {
            /* Open by name only. A name the sandbox's resolver gave this
             * address lets protocols that name no host through; otherwise
             * wait for the client to name one. */
            size_t skip = 0;
            const char *bound;
            c->sniffing = true;
            while ((bound = eg_bind_name_for(a, ntohl(dst.sin_addr.s_addr), &skip)))
                if (eg_name_ok(eg, a, bound, c->need_house, c->need_sbx)) break;
            if (bound) {
                c->check_only = true;
                if (conn_connect(eg, c, -1) < 0) continue;
            } else {
                c->deadline = sf_now_ms() + EG_SNIFF_MS;
            }
        }
        conn_interest(eg, c);
    }
}

/* ---- sandboxes -------------------------------------------------------------- */

static void att_free(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a)
{
    while (a->conns) eg_conn_close(eg, a->conns, true);
    eg_flows_close(a);
    eg_dns_close_tcp(a);
    eg_dns_forget_att(eg, a);
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++) eg_del(eg, &a->ep[i]);
    eg_binds_free(a);
    if (a->n_denied)
        SF_LOG(eg->log, SF_LOG_INFO, NULL, a->label, "egress: %llu connections allowed, %llu "
               "denied (first: %s)", (unsigned long long)a->n_ok, (unsigned long long)a->n_denied,
               a->first_denied);
    sf_netpolicy_free(a->policy);
    sf_inject_free(a->inject);
    if (a->netns >= 0) close(a->netns);
    pthread_mutex_destroy(&a->mu);
    eg_defer_free(eg, a);
}

static void att_start(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a)
{
    static const enum eg_kind kinds[SF_SBX_NS_NSOCK] = {
        [SF_SBX_NS_TCP] = EK_TCP_LISTEN, [SF_SBX_NS_UDP] = EK_UDP,
        [SF_SBX_NS_DNS_UDP] = EK_DNS_UDP, [SF_SBX_NS_DNS_TCP] = EK_DNS_LISTEN,
    };
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++) {
        a->ep[i].kind = kinds[i];
        a->ep[i].obj = a;
        if (kinds[i] && a->ep[i].fd >= 0) {
            int fd = a->ep[i].fd;
            a->ep[i].fd = -1;
            if (eg_add(eg, &a->ep[i], kinds[i], a, fd, EPOLLIN) < 0) close(fd);
        }
    }
    a->next = eg->atts;
    eg->atts = a;
}

static void att_remove(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a)
{
    for (struct sf_sbx_egress_att **pp = &eg->atts; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    att_free(eg, a);
}

/* ---- the loop ---------------------------------------------------------------- */

static void eg_commands(struct sf_sbx_egress *eg)
{
    uint64_t v;
    (void)!read(eg->cmd_ep.fd, &v, sizeof(v));
    pthread_mutex_lock(&eg->mu);
    struct eg_cmd *list = eg->cmds;
    eg->cmds = NULL;
    pthread_mutex_unlock(&eg->mu);
    /* Oldest first. */
    struct eg_cmd *rev = NULL;
    while (list) {
        struct eg_cmd *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    for (struct eg_cmd *c = rev; c;) {
        struct eg_cmd *n = c->next;
        if (c->type == CMD_ATTACH) att_start(eg, c->att);
        else if (c->type == CMD_DETACH) att_remove(eg, c->att);
        else eg->stop = true;
        pthread_mutex_lock(&eg->mu);
        c->done = true;
        pthread_cond_broadcast(&eg->cv);
        pthread_mutex_unlock(&eg->mu);
        c = n;
    }
}

static void eg_tick(struct sf_sbx_egress *eg)
{
    uint64_t v;
    (void)!read(eg->timer_ep.fd, &v, sizeof(v));
    int64_t now = sf_now_ms();
    for (struct sf_sbx_egress_att *a = eg->atts; a; a = a->next) {
        for (struct eg_conn *c = a->conns, *n; c; c = n) {
            n = c->next;
            if (!c->deadline || c->deadline > now) continue;
            if (c->up == UP_CONNECTING) eg_conn_close(eg, c, true);
            else if (c->resolving) conn_deny(eg, c, "its host name did not resolve in time");
            else if (c->sniffing && !c->check_only)
                conn_deny(eg, c, "named no host within 10 s");
            else c->deadline = 0;
        }
        eg_udp_tick(a, now);
    }
    eg_dns_tick(eg, now);
}

static void *eg_main(void *arg)
{
    struct sf_sbx_egress *eg = arg;
    struct epoll_event evs[64];
    while (!eg->stop) {
        int n = epoll_wait(eg->epfd, evs, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (int i = 0; i < n; i++) {
            struct eg_ep *ep = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (ep->fd < 0) continue;          /* closed by an earlier event of this batch */
            switch (ep->kind) {
            case EK_CMD: eg_commands(eg); break;
            case EK_TIMER: eg_tick(eg); break;
            case EK_TCP_LISTEN: tcp_accept(eg, ep->obj); break;
            case EK_UDP: eg_udp_in(ep->obj); break;
            case EK_DNS_UDP: {
                uint8_t buf[4096];
                struct sockaddr_in from;
                socklen_t fl = sizeof(from);
                ssize_t r = recvfrom(ep->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
                if (r > 0) eg_dns_query_udp(ep->obj, buf, (size_t)r, ep->fd, &from, NULL);
                break;
            }
            case EK_DNS_LISTEN: eg_dns_accept(ep->obj); break;
            case EK_DNS_TCP: eg_dns_tcp_event(eg, ep->obj, e); break;
            case EK_DNS_UP: eg_dns_on_upstream(eg); break;
            case EK_CONN_C: case EK_CONN_U: conn_event(eg, ep, e); break;
            case EK_FLOW: eg_flow_event(eg, ep->obj); break;
            }
        }
        /* Objects closed by this batch: no event of it refers to them any more. */
        eg_bury(eg);
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------ */

static void eg_post(struct sf_sbx_egress *eg, struct eg_cmd *c)
{
    pthread_mutex_lock(&eg->mu);
    c->next = eg->cmds;
    eg->cmds = c;
    uint64_t one = 1;
    (void)!write(eg->cmd_ep.fd, &one, sizeof(one));
    while (!c->done) pthread_cond_wait(&eg->cv, &eg->mu);
    pthread_mutex_unlock(&eg->mu);
}

int sf_sbx_egress_resolv_conf(const char *text, struct sockaddr_in *out, int max)
{
    int n = 0;
    for (const char *line = text; line && *line && n < max;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[128];
        if (len < sizeof(buf)) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            char ip[64];
            struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
            if (sscanf(buf, " nameserver %63s", ip) == 1 && inet_pton(AF_INET, ip, &sa.sin_addr) == 1)
                out[n++] = sa;
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

struct sf_sbx_egress *sf_sbx_egress_new(const struct sf_sbx_egress_cfg *cfg, char *err,
                                        size_t errlen)
{
    struct sf_sbx_egress *eg = sf_xcalloc(1, sizeof(*eg));
    eg->epfd = epoll_create1(EPOLL_CLOEXEC);
    eg->cmd_ep.fd = eg->timer_ep.fd = eg->dns_ep.fd = -1;
    pthread_mutex_init(&eg->mu, NULL);
    pthread_mutex_init(&eg->in_mu, NULL);
    pthread_cond_init(&eg->cv, NULL);
    eg->op = sf_netpolicy_dup(cfg->op);
    eg->log = cfg->log;
    eg->ndns = cfg->ndns;
    memcpy(eg->dns, cfg->dns, sizeof(eg->dns));
    if (!eg->ndns) {
        char *rc = NULL;
        size_t n;
        if (sf_read_file("/etc/resolv.conf", 1 << 16, &rc, &n) == 0)
            eg->ndns = sf_sbx_egress_resolv_conf(rc, eg->dns, SF_SBX_EGRESS_MAX_DNS);
        free(rc);
    }
    int cmdfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = { { 1, 0 }, { 1, 0 } };
    if (eg->epfd < 0 || cmdfd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 ||
        eg_add(eg, &eg->cmd_ep, EK_CMD, eg, cmdfd, EPOLLIN) < 0 ||
        eg_add(eg, &eg->timer_ep, EK_TIMER, eg, tfd, EPOLLIN) < 0) {
        sf_errf(err, errlen, "egress proxy: %s", strerror(errno));
        if (eg->cmd_ep.fd < 0 && cmdfd >= 0) close(cmdfd);
        if (eg->timer_ep.fd < 0 && tfd >= 0) close(tfd);
        goto fail;
    }
    if (eg_dns_init(eg, err, errlen) < 0) goto fail;
    char why[512];
    if (eg_tls_init(eg, why, sizeof(why)) < 0)
        SF_LOG(eg->log, SF_LOG_WARN, NULL, NULL, "%s: steps with \"inject\" cannot run here", why);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&eg->thread, NULL, eg_main, eg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        sf_errf(err, errlen, "egress proxy: cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    return eg;
fail:
    eg_dns_fini(eg);
    eg_del(eg, &eg->cmd_ep);
    eg_del(eg, &eg->timer_ep);
    if (eg->epfd >= 0) close(eg->epfd);
    sf_netpolicy_free(eg->op);
    free(eg);
    return NULL;
}

void sf_sbx_egress_free(struct sf_sbx_egress *eg)
{
    if (!eg) return;
    struct eg_cmd c = { .type = CMD_STOP };
    eg_post(eg, &c);
    pthread_join(eg->thread, NULL);
    while (eg->atts) att_remove(eg, eg->atts);
    eg_bury(eg);
    free(eg->graveyard);
    eg_tls_fini(eg);
    eg_dns_fini(eg);
    eg_del(eg, &eg->cmd_ep);
    eg_del(eg, &eg->timer_ep);
    close(eg->epfd);
    sf_netpolicy_free(eg->op);
    pthread_cond_destroy(&eg->cv);
    pthread_mutex_destroy(&eg->mu);
    eg_ingress_free(eg);
    pthread_mutex_destroy(&eg->in_mu);
    free(eg);
}

int sf_sbx_egress_attach(struct sf_sbx_egress *eg, int netns, struct sf_sbx_ns *ns,
                         const struct sf_netpolicy *policy, const struct sf_inject *inject,
                         const char *label, struct sf_sbx_egress_att **out)
{
    int nsfd = fcntl(netns, F_DUPFD_CLOEXEC, 0);
    if (nsfd < 0) return -errno;
    struct sf_sbx_egress_att *a = sf_xcalloc(1, sizeof(*a));
    a->eg = eg;
    a->netns = nsfd;
    pthread_mutex_init(&a->mu, NULL);
    a->policy = sf_netpolicy_dup(policy);
    a->inject = sf_inject_dup(inject);
    sf_strlcpy(a->label, label ? label : "", sizeof(a->label));
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++) {
        a->ep[i].fd = ns->sock[i];
        ns->sock[i] = -1;
    }
    struct eg_cmd c = { .type = CMD_ATTACH, .att = a };
    eg_post(eg, &c);
    *out = a;
    return 0;
}

void sf_sbx_egress_set_policy(struct sf_sbx_egress_att *a, const struct sf_netpolicy *policy,
                              const struct sf_inject *inject)
{
    struct sf_netpolicy *p = sf_netpolicy_dup(policy), *old;
    struct sf_inject *in = sf_inject_dup(inject), *old_in;
    pthread_mutex_lock(&a->mu);
    old = a->policy;
    a->policy = p;
    old_in = a->inject;
    a->inject = in;
    pthread_mutex_unlock(&a->mu);
    sf_netpolicy_free(old);
    sf_inject_free(old_in);
}

void sf_sbx_egress_detach(struct sf_sbx_egress_att *a)
{
    if (!a) return;
    struct eg_cmd c = { .type = CMD_DETACH, .att = a };
    eg_post(a->eg, &c);
}
