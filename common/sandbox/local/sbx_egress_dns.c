/* common/sandbox/local/sbx_egress_dns.c: each sandbox's resolver (see
 * sbx_egress.h). Questions arrive on 127.0.0.53:53 (UDP and TCP) or, sent to
 * any other address, through the transparent sockets; they are judged
 * (rules that close the internet let only allowed names resolve; AAAA gets
 * an empty answer, there being no IPv6 route inside), then forwarded with a
 * fresh id from one socket in the worker's namespace to the upstream
 * resolvers, one after another on silence. An answer is checked against
 * its question, its A records are remembered for the sandbox (name ->
 * address bindings, for protocols that name no host), and it goes back
 * with the sandbox's own id. The egress path also asks here, for itself,
 * whether a name it was shown resolves to the address being connected to. */
#include "sbx_egress_int.h"
#include "dnsmsg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#define EG_DNS_MAX_MSG 4096
#define EG_DNS_PER_SBX 64              /* questions in flight per sandbox */
#define EG_DNSTCP_PER_SBX 16

struct eg_pending {
    bool used;
    uint16_t up_id, orig_id;
    struct sf_sbx_egress_att *att;
    struct eg_conn *conn;              /* the egress path's own question */
    struct eg_dnstcp *tcp;             /* answer over this TCP connection */
    int reply_fd;                      /* else over the resolver socket, to client */
    struct sockaddr_in client, orig;   /* orig.sin_family: answer from orig (transparent) */
    struct sf_dns_q q;
    uint8_t *msg;                      /* the question as sent upstream */
    size_t len;
    struct sockaddr_in up[SF_SBX_EGRESS_MAX_DNS];
    int nup, tried;
    int64_t next_ms, deadline_ms;
};

struct eg_dnstcp {
    struct sf_sbx_egress_att *att;
    struct eg_ep ep;
    uint8_t in[2 + EG_DNS_MAX_MSG];
    size_t inlen;
    struct sf_buf out;
    size_t outoff;
    int pending;
    bool eof;
    struct eg_dnstcp *next;
};

/* ---- bindings ------------------------------------------------------------------ */

static void bind_add(struct sf_sbx_egress_att *a, const char *name, uint32_t v4, uint32_t ttl)
{
    int64_t now = sf_now_ms(), exp = now + (int64_t)(ttl > EG_BIND_MIN_S ? ttl : EG_BIND_MIN_S) * 1000;
    size_t oldest = 0;
    for (size_t i = 0; i < a->nbinds; i++) {
        struct eg_bind *b = &a->binds[i];
        if (b->v4 == v4 && !strcmp(b->name, name)) {
            if (exp > b->expires_ms) b->expires_ms = exp;
            return;
        }
        if (b->expires_ms < a->binds[oldest].expires_ms) oldest = i;
    }
    if (a->nbinds < EG_MAX_BINDS_PER_SBX) {
        a->binds = sf_xrealloc(a->binds, (a->nbinds + 1) * sizeof(*a->binds));
        a->binds[a->nbinds++] = (struct eg_bind){ sf_xstrdup(name), v4, exp };
        return;
    }
    free(a->binds[oldest].name);
    a->binds[oldest] = (struct eg_bind){ sf_xstrdup(name), v4, exp };
}

bool eg_bind_has(struct sf_sbx_egress_att *a, const char *name, uint32_t v4)
{
    int64_t now = sf_now_ms();
    for (size_t i = 0; i < a->nbinds; i++)
        if (a->binds[i].v4 == v4 && a->binds[i].expires_ms > now && !strcmp(a->binds[i].name, name))
            return true;
    return false;
}

const char *eg_bind_name_for(struct sf_sbx_egress_att *a, uint32_t v4, size_t *skip)
{
    int64_t now = sf_now_ms();
    for (size_t i = *skip; i < a->nbinds; i++)
        if (a->binds[i].v4 == v4 && a->binds[i].expires_ms > now) {
            *skip = i + 1;
            return a->binds[i].name;
        }
    *skip = a->nbinds;
    return NULL;
}

void eg_binds_free(struct sf_sbx_egress_att *a)
{
    for (size_t i = 0; i < a->nbinds; i++) free(a->binds[i].name);
    free(a->binds);
    a->binds = NULL;
    a->nbinds = 0;
}

/* ---- answering the sandbox ------------------------------------------------------ */

static void dnstcp_close(struct sf_sbx_egress *eg, struct eg_dnstcp *t);

static void dnstcp_flush(struct sf_sbx_egress *eg, struct eg_dnstcp *t)
{
    while (t->outoff < t->out.len) {
        ssize_t n = send(t->ep.fd, t->out.data + t->outoff, t->out.len - t->outoff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            dnstcp_close(eg, t);
            return;
        }
        t->outoff += (size_t)n;
    }
    if (t->outoff == t->out.len) {
        t->out.len = t->outoff = 0;
        if (t->eof && !t->pending) {
            dnstcp_close(eg, t);
            return;
        }
    }
    eg_set_events(eg, &t->ep, (t->eof ? 0 : EPOLLIN) | (t->out.len ? EPOLLOUT : 0));
}

/* Send an answer back the way its question came. */
static void answer(struct sf_sbx_egress_att *a, struct eg_dnstcp *tcp, int reply_fd,
                   const struct sockaddr_in *client, const struct sockaddr_in *orig,
                   const uint8_t *msg, size_t len)
{
    if (tcp) {
        uint8_t l[2] = { (uint8_t)(len >> 8), (uint8_t)len };
        sf_buf_append(&tcp->out, l, 2);
        sf_buf_append(&tcp->out, msg, len);
        dnstcp_flush(a->eg, tcp);
    } else if (orig && orig->sin_family == AF_INET) {
        eg_udp_inject(a, orig, client, msg, len, NULL);
    } else {
        sendto(reply_fd, msg, len, MSG_DONTWAIT, (const struct sockaddr *)client, sizeof(*client));
    }
}

static void answer_rcode(struct sf_sbx_egress_att *a, struct eg_dnstcp *tcp, int reply_fd,
                         const struct sockaddr_in *client, const struct sockaddr_in *orig,
                         const uint8_t *query, const struct sf_dns_q *q, int rcode)
{
    uint8_t out[EG_DNS_MAX_MSG];
    size_t n = sf_dns_reply(query, q, rcode, out, sizeof(out));
    if (n) answer(a, tcp, reply_fd, client, orig, out, n);
}

/* ---- questions upstream --------------------------------------------------------- */

static void pending_free(struct eg_pending *p)
{
    if (p->tcp) p->tcp->pending--;
    free(p->msg);
    memset(p, 0, sizeof(*p));
}

static void pending_send(struct sf_sbx_egress *eg, struct eg_pending *p)
{
    const struct sockaddr_in *to = &p->up[p->tried % p->nup];
    p->tried++;
    p->next_ms = sf_now_ms() + EG_DNS_TRY_MS;
    sendto(eg->dns_ep.fd, p->msg, p->len, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to));
}

/* The upstreams for a sandbox: its rules' dns_servers (public ones only,
 * the house stays closed), else the worker's. */
static int upstreams(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a, struct sockaddr_in *out)
{
    struct sf_netpolicy *p = eg_policy(a);
    int n = 0;
    if (p && p->dns_set) {
        for (size_t i = 0; i < p->n_dns && n < SF_SBX_EGRESS_MAX_DNS; i++) {
            struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
            memcpy(&sa.sin_addr, p->dns[i].addr, 4);
            bool nh, ns;
            char why[200];
            if (eg_judge(eg, a, &sa, &nh, &ns, why, sizeof(why)) == 0) out[n++] = sa;
        }
    } else {
        n = eg->ndns;
        memcpy(out, eg->dns, sizeof(eg->dns[0]) * (size_t)n);
    }
    sf_netpolicy_free(p);
    return n;
}

static struct eg_pending *pending_new(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a)
{
    int mine = 0;
    struct eg_pending *slot = NULL;
    for (int i = 0; i < EG_MAX_PENDING; i++) {
        if (!eg->pending[i].used) {
            if (!slot) slot = &eg->pending[i];
        } else if (eg->pending[i].att == a) {
            mine++;
        }
    }
    if (!slot || mine >= EG_DNS_PER_SBX) return NULL;
    /* A fresh id no question in flight has. */
    for (;;) {
        uint16_t id = ++eg->dns_id;
        bool taken = false;
        for (int i = 0; i < EG_MAX_PENDING && !taken; i++)
            taken = eg->pending[i].used && eg->pending[i].up_id == id;
        if (!taken) {
            slot->up_id = id;
            break;
        }
    }
    slot->used = true;
    slot->att = a;
    slot->nup = upstreams(eg, a, slot->up);
    slot->deadline_ms = sf_now_ms() + EG_DNS_TIMEOUT_MS;
    return slot;
}

static void query_common(struct sf_sbx_egress_att *a, const uint8_t *msg, size_t len,
                         struct eg_dnstcp *tcp, int reply_fd, const struct sockaddr_in *client,
                         const struct sockaddr_in *orig)
{
    struct sf_sbx_egress *eg = a->eg;
    struct sf_dns_q q;
    if (len > EG_DNS_MAX_MSG || sf_dns_question(msg, len, &q) < 0) {
        if (len >= 12 && sf_dns_question(msg, 12, &q) < 0) {
            /* A header without a usable question: FORMERR with no question. */
            uint8_t out[12];
            memcpy(out, msg, 12);
            out[2] = (uint8_t)(0x80 | (msg[2] & 0x79));
            out[3] = 0x80 | SF_DNS_FORMERR;
            memset(out + 4, 0, 8);
            answer(a, tcp, reply_fd, client, orig, out, sizeof(out));
        }
        return;
    }
    if (q.flags & 0x8000) return;                       /* an answer, not a question */
    if ((q.flags >> 11 & 0xf) != 0) {
        answer_rcode(a, tcp, reply_fd, client, orig, msg, &q, SF_DNS_NOTIMP);
        return;
    }
    if (q.qclass != SF_DNS_IN) {
        answer_rcode(a, tcp, reply_fd, client, orig, msg, &q, SF_DNS_REFUSED);
        return;
    }
    struct sf_netpolicy *p = eg_policy(a);
    bool refused = sf_netpolicy_closed(p) && !sf_netpolicy_name(p, q.name);
    sf_netpolicy_free(p);
    if (refused) {
        SF_LOG(eg->log, SF_LOG_DEBUG, NULL, a->label, "egress: DNS %s refused by the rules", q.name);
        answer_rcode(a, tcp, reply_fd, client, orig, msg, &q, SF_DNS_REFUSED);
        return;
    }
    if (q.qtype == SF_DNS_AAAA) {                       /* no IPv6 route inside */
        answer_rcode(a, tcp, reply_fd, client, orig, msg, &q, SF_DNS_NOERROR);
        return;
    }
    if (q.qtype == SF_DNS_A && eg_ingress_name(eg, q.name)) {   /* another sandbox's port */
        uint8_t out[EG_DNS_MAX_MSG + 16];
        size_t n = sf_dns_reply_a(msg, &q, EG_INGRESS_VIP, 60, out, sizeof(out));
        if (n) answer(a, tcp, reply_fd, client, orig, out, n);
        return;
    }
    struct eg_pending *pd = pending_new(eg, a);
    if (!pd || !pd->nup) {
        if (pd) pending_free(pd);
        answer_rcode(a, tcp, reply_fd, client, orig, msg, &q, SF_DNS_SERVFAIL);
        return;
    }
    pd->orig_id = q.id;
    pd->q = q;
    pd->q.id = pd->up_id;
    pd->tcp = tcp;
    if (tcp) tcp->pending++;
    pd->reply_fd = reply_fd;
    if (client) pd->client = *client;
    if (orig) pd->orig = *orig;
    pd->msg = sf_xmalloc(len);
    memcpy(pd->msg, msg, len);
    pd->len = len;
    sf_dns_set_id(pd->msg, len, pd->up_id);
    pending_send(eg, pd);
}

void eg_dns_query_udp(struct sf_sbx_egress_att *a, const uint8_t *msg, size_t len, int reply_fd,
                      const struct sockaddr_in *client, const struct sockaddr_in *orig)
{
    query_common(a, msg, len, NULL, reply_fd, client, orig);
}

int eg_dns_lookup(struct sf_sbx_egress_att *a, struct eg_conn *c, const char *name)
{
    struct sf_sbx_egress *eg = a->eg;
    struct eg_pending *pd = pending_new(eg, a);
    if (!pd) return -EAGAIN;
    pd->msg = sf_xmalloc(512);
    pd->len = sf_dns_query(pd->up_id, name, SF_DNS_A, pd->msg, 512);
    if (!pd->nup || !pd->len || sf_dns_question(pd->msg, pd->len, &pd->q) < 0) {
        pending_free(pd);
        return -EINVAL;
    }
    pd->conn = c;
    pending_send(eg, pd);
    return 0;
}

struct collect {
    uint32_t v4[32];
    uint32_t ttl[32];
    size_t n;
};

static void collect_a(void *arg, uint32_t v4, uint32_t ttl)
{
    struct collect *c = arg;
    if (c->n < 32) {
        c->v4[c->n] = v4;
        c->ttl[c->n++] = ttl;
    }
}

static void upstream_answer(struct sf_sbx_egress *eg, uint8_t *msg, size_t len,
                            const struct sockaddr_in *from)
{
    if (len < 12) return;
    uint16_t id = (uint16_t)(msg[0] << 8 | msg[1]);
    struct eg_pending *p = NULL;
    for (int i = 0; i < EG_MAX_PENDING && !p; i++)
        if (eg->pending[i].used && eg->pending[i].up_id == id) p = &eg->pending[i];
    if (!p) return;
    bool known = false;                 /* only from a server we asked */
    for (int i = 0; i < p->nup && !known; i++)
        known = p->up[i].sin_addr.s_addr == from->sin_addr.s_addr && p->up[i].sin_port == from->sin_port;
    struct collect col = { .n = 0 };
    if (!known || sf_dns_answer(msg, len, &p->q, collect_a, &col) < 0) return;
    struct sf_sbx_egress_att *a = p->att;
    if (p->conn) {
        struct eg_conn *c = p->conn;
        pending_free(p);
        eg_conn_resolved(eg, c, col.v4, col.n);
        return;
    }
    if (p->q.qtype == SF_DNS_A)
        for (size_t i = 0; i < col.n; i++) bind_add(a, p->q.name, col.v4[i], col.ttl[i]);
    sf_dns_set_id(msg, len, p->orig_id);
    struct eg_pending copy = *p;
    pending_free(p);
    answer(a, copy.tcp, copy.reply_fd, &copy.client, &copy.orig, msg, len);
}

void eg_dns_on_upstream(struct sf_sbx_egress *eg)
{
    for (;;) {
        uint8_t buf[EG_DNS_MAX_MSG];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(eg->dns_ep.fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0) return;
        upstream_answer(eg, buf, (size_t)n, &from);
    }
}

void eg_dns_tick(struct sf_sbx_egress *eg, int64_t now)
{
    for (int i = 0; i < EG_MAX_PENDING; i++) {
        struct eg_pending *p = &eg->pending[i];
        if (!p->used) continue;
        if (now >= p->deadline_ms) {
            struct sf_sbx_egress_att *a = p->att;
            if (p->conn) {
                struct eg_conn *c = p->conn;
                pending_free(p);
                eg_conn_resolved(eg, c, NULL, 0);
                continue;
            }
            /* The sandbox's resolver gives up the way a real one does. */
            struct eg_pending copy = *p;
            uint8_t *q = p->msg;
            p->msg = NULL;
            sf_dns_set_id(q, copy.len, copy.orig_id);
            struct eg_dnstcp *tcp = copy.tcp;
            pending_free(p);
            answer_rcode(a, tcp, copy.reply_fd, &copy.client, &copy.orig, q, &copy.q, SF_DNS_SERVFAIL);
            free(q);
        } else if (now >= p->next_ms) {
            pending_send(eg, p);
        }
    }
}

void eg_dns_forget_att(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a)
{
    for (int i = 0; i < EG_MAX_PENDING; i++)
        if (eg->pending[i].used && eg->pending[i].att == a) pending_free(&eg->pending[i]);
}

void eg_dns_forget_conn(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    for (int i = 0; i < EG_MAX_PENDING; i++)
        if (eg->pending[i].used && eg->pending[i].conn == c) pending_free(&eg->pending[i]);
}

/* ---- DNS over TCP from the sandbox ------------------------------------------------ */

static void dnstcp_close(struct sf_sbx_egress *eg, struct eg_dnstcp *t)
{
    struct sf_sbx_egress_att *a = t->att;
    for (int i = 0; i < EG_MAX_PENDING; i++)
        if (eg->pending[i].used && eg->pending[i].tcp == t) {
            eg->pending[i].tcp = NULL;
            pending_free(&eg->pending[i]);
        }
    for (struct eg_dnstcp **pp = &a->dnstcp; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    eg_del(eg, &t->ep);
    sf_buf_free(&t->out);
    eg_defer_free(eg, t);
}

void eg_dns_adopt_tcp(struct sf_sbx_egress_att *a, int fd)
{
    int n = 0;
    for (struct eg_dnstcp *t = a->dnstcp; t; t = t->next) n++;
    struct eg_dnstcp *t = n < EG_DNSTCP_PER_SBX ? sf_xcalloc(1, sizeof(*t)) : NULL;
    if (!t || eg_add(a->eg, &t->ep, EK_DNS_TCP, t, fd, EPOLLIN) < 0) {
        close(fd);
        free(t);
        return;
    }
    t->att = a;
    t->next = a->dnstcp;
    a->dnstcp = t;
}

void eg_dns_accept(struct sf_sbx_egress_att *a)
{
    for (;;) {
        int fd = accept4(a->ep[SF_SBX_NS_DNS_TCP].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        eg_dns_adopt_tcp(a, fd);
    }
}

void eg_dns_tcp_event(struct sf_sbx_egress *eg, struct eg_dnstcp *t, uint32_t events)
{
    if (events & EPOLLERR) {
        dnstcp_close(eg, t);
        return;
    }
    if (events & EPOLLOUT) {
        dnstcp_flush(eg, t);
        return;                         /* t may be gone */
    }
    if (!(events & (EPOLLIN | EPOLLHUP)) || t->eof) return;
    ssize_t n = recv(t->ep.fd, t->in + t->inlen, sizeof(t->in) - t->inlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        t->eof = true;
        if (!t->pending && !t->out.len) dnstcp_close(eg, t);
        else eg_set_events(eg, &t->ep, t->out.len ? EPOLLOUT : 0);
        return;
    }
    t->inlen += (size_t)n;
    while (t->inlen >= 2) {
        size_t l = (size_t)t->in[0] << 8 | t->in[1];
        if (l > EG_DNS_MAX_MSG) {
            dnstcp_close(eg, t);
            return;
        }
        if (t->inlen < 2 + l) break;
        query_common(t->att, t->in + 2, l, t, -1, NULL, NULL);
        memmove(t->in, t->in + 2 + l, t->inlen - 2 - l);
        t->inlen -= 2 + l;
    }
}

void eg_dns_close_tcp(struct sf_sbx_egress_att *a)
{
    while (a->dnstcp) dnstcp_close(a->eg, a->dnstcp);
}

/* ---- set-up ------------------------------------------------------------------------ */

int eg_dns_init(struct sf_sbx_egress *eg, char *err, size_t errlen)
{
    eg->pending = sf_xcalloc(EG_MAX_PENDING, sizeof(*eg->pending));
    if (getrandom(&eg->dns_id, sizeof(eg->dns_id), 0) < 0) eg->dns_id = (uint16_t)getpid();
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0 || eg_add(eg, &eg->dns_ep, EK_DNS_UP, eg, s, EPOLLIN) < 0) {
        if (s >= 0) close(s);
        sf_errf(err, errlen, "egress proxy: resolver socket: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

void eg_dns_fini(struct sf_sbx_egress *eg)
{
    for (int i = 0; eg->pending && i < EG_MAX_PENDING; i++)
        if (eg->pending[i].used) pending_free(&eg->pending[i]);
    free(eg->pending);
    eg->pending = NULL;
    eg_del(eg, &eg->dns_ep);
}
