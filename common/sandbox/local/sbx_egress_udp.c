/* common/sandbox/local/sbx_egress_udp.c: UDP out of a sandbox (see
 * sbx_egress.h). Datagrams arrive on the transparent UDP socket with their
 * original destination (IP_ORIGDSTADDR). Port 53 goes to the sandbox's
 * resolver; anything else is judged once per flow (client address and
 * port, destination address and port), and an allowed flow gets its own
 * socket in the worker's namespace, connected to the destination. Answers
 * go back into the sandbox from a socket of the flow's made in the
 * sandbox's namespace and bound to the destination, so a connected UDP
 * client accepts them (no raw socket: no CAP_NET_RAW); they carry the
 * egress mark, so the namespace's tproxy rule lets them pass. A flow idle
 * for EG_FLOW_IDLE_MS is closed. UDP names no host: rules that open an
 * address only by name open it to UDP when the sandbox's resolver gave
 * that address for an allowed name. */
#include "sbx_egress_int.h"
#include "sbx_netns.h"
#include "sbx_nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct eg_flow {
    struct sf_sbx_egress_att *att;
    struct eg_ep ep;
    struct sockaddr_in client, dst;
    int reply;                          /* in the sandbox, bound to dst; -1 until needed */
    int64_t last_ms;
    struct eg_flow *prev, *next;
};

/* A UDP socket in the sandbox's namespace bound to 'from' (every address
 * is local there), marked so the namespace's tproxy rule lets what it sends
 * pass. Unconnected: tproxy's lookup of established sockets skips it, so
 * what the sandbox sends keeps going to the transparent socket. */
static int reply_socket(struct sf_sbx_egress_att *a, const struct sockaddr_in *from)
{
    int s = sf_sbx_netns_socket(a->netns, AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return s;
    int one = 1;
    uint32_t mark = SF_SBX_EGRESS_MARK;
    if (setsockopt(s, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s, (const struct sockaddr *)from, sizeof(*from)) < 0) {
        int rc = -errno;
        close(s);
        return rc;
    }
    return s;
}

int eg_udp_inject(struct sf_sbx_egress_att *a, const struct sockaddr_in *from,
                  const struct sockaddr_in *to, const void *data, size_t len, int *cache)
{
    int s = cache && *cache >= 0 ? *cache : reply_socket(a, from);
    if (s < 0) return s;
    ssize_t n = sendto(s, data, len, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to));
    int rc = n < 0 ? -errno : 0;
    if (cache) *cache = s;
    else close(s);
    return rc;
}

static void flow_close(struct sf_sbx_egress *eg, struct eg_flow *f)
{
    struct sf_sbx_egress_att *a = f->att;
    if (f->prev) f->prev->next = f->next;
    else a->flows = f->next;
    if (f->next) f->next->prev = f->prev;
    a->nflows--;
    eg_del(eg, &f->ep);
    if (f->reply >= 0) close(f->reply);
    eg_defer_free(eg, f);
}

static struct eg_flow *flow_find(struct sf_sbx_egress_att *a, const struct sockaddr_in *client,
                                 const struct sockaddr_in *dst)
{
    for (struct eg_flow *f = a->flows; f; f = f->next)
        if (f->client.sin_addr.s_addr == client->sin_addr.s_addr &&
            f->client.sin_port == client->sin_port && f->dst.sin_addr.s_addr == dst->sin_addr.s_addr &&
            f->dst.sin_port == dst->sin_port)
            return f;
    return NULL;
}

/* May this sandbox send UDP to dst? */
static bool udp_allowed(struct sf_sbx_egress_att *a, const struct sockaddr_in *dst)
{
    bool nh, ns;
    char why[200];
    int v = eg_judge(a->eg, a, dst, &nh, &ns, why, sizeof(why));
    if (v == 1) {
        size_t skip = 0;
        const char *bound;
        while ((bound = eg_bind_name_for(a, ntohl(dst->sin_addr.s_addr), &skip)))
            if (eg_name_ok(a->eg, a, bound, nh, ns)) return true;
        sf_strlcpy(why, "open to allowed host names only, and UDP names none", sizeof(why));
    }
    if (v != 0) eg_denied(a, "udp", dst, why);
    return v == 0;
}

static struct eg_flow *flow_open(struct sf_sbx_egress_att *a, const struct sockaddr_in *client,
                                 const struct sockaddr_in *dst)
{
    if (a->nflows >= EG_MAX_FLOWS_PER_SBX) {
        eg_denied(a, "udp", dst, "too many UDP flows");
        return NULL;
    }
    if (!udp_allowed(a, dst)) return NULL;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return NULL;
    if (connect(s, (const struct sockaddr *)dst, sizeof(*dst)) < 0) {
        close(s);
        return NULL;
    }
    struct eg_flow *f = sf_xcalloc(1, sizeof(*f));
    if (eg_add(a->eg, &f->ep, EK_FLOW, f, s, EPOLLIN) < 0) {
        close(s);
        free(f);
        return NULL;
    }
    f->att = a;
    f->reply = -1;
    f->client = *client;
    f->dst = *dst;
    f->next = a->flows;
    if (a->flows) a->flows->prev = f;
    a->flows = f;
    a->nflows++;
    a->n_ok++;
    return f;
}

void eg_udp_in(struct sf_sbx_egress_att *a)
{
    for (int budget = 64; budget--;) {
        static uint8_t buf[65536];       /* the proxy thread's only */
        struct sockaddr_in client, orig = { 0 };
        union { char b[CMSG_SPACE(sizeof(struct sockaddr_in))]; struct cmsghdr align; } u;
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_name = &client, .msg_namelen = sizeof(client), .msg_iov = &iov,
                             .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b) };
        ssize_t n = recvmsg(a->ep[SF_SBX_NS_UDP].fd, &mh, MSG_DONTWAIT);
        if (n < 0) return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR)
                memcpy(&orig, CMSG_DATA(c), sizeof(orig));
        if (orig.sin_family != AF_INET || client.sin_family != AF_INET) continue;
        if (ntohs(orig.sin_port) == 53) {   /* DNS to any server: the sandbox's resolver */
            eg_dns_query_udp(a, buf, (size_t)n, -1, &client, &orig);
            continue;
        }
        struct eg_flow *f = flow_find(a, &client, &orig);
        if (!f && !(f = flow_open(a, &client, &orig))) continue;
        f->last_ms = sf_now_ms();
        send(f->ep.fd, buf, (size_t)n, MSG_DONTWAIT);
    }
}

void eg_flow_event(struct sf_sbx_egress *eg, struct eg_flow *f)
{
    for (int budget = 64; budget--;) {
        static uint8_t buf[65507];
        ssize_t n = recv(f->ep.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0) {                     /* ICMP unreachable and the like: the flow is over */
            flow_close(eg, f);
            return;
        }
        f->last_ms = sf_now_ms();
        eg_udp_inject(f->att, &f->dst, &f->client, buf, (size_t)n, &f->reply);
    }
}

void eg_flows_close(struct sf_sbx_egress_att *a)
{
    while (a->flows) flow_close(a->eg, a->flows);
}

void eg_udp_tick(struct sf_sbx_egress_att *a, int64_t now)
{
    for (struct eg_flow *f = a->flows, *n; f; f = n) {
        n = f->next;
        if (now - f->last_ms > EG_FLOW_IDLE_MS) flow_close(a->eg, f);
    }
}
