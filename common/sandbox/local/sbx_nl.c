/* common/sandbox/local/sbx_nl.c: see sbx_nl.h.
 *
 * Design: a tiny netlink builder over a stack buffer (messages, attributes,
 * nested attributes), one send, then every answer read until each message
 * is acknowledged. nftables changes go in one batch (BEGIN ... END), so the
 * table appears whole or not at all. The expressions are exactly what
 * `nft --debug=netlink` prints for the ruleset in sbx_nl.h. */
#include "sbx_nl.h"

#include <errno.h>
#include <netinet/in.h>             /* before the linux/ headers, which would define it again */
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NL_BUF 2048

struct nl {
    char buf[NL_BUF];
    size_t len;
    struct nlmsghdr *msg;           /* the message being built */
    size_t nest[8];                 /* offsets of open nested attributes */
    int depth;
    uint32_t seq;
    int acks;                       /* messages that ask for an answer */
    bool overflow;
};

static void *nl_put(struct nl *n, size_t len)
{
    size_t at = n->len, padded = NLMSG_ALIGN(len);
    if (at + padded > sizeof(n->buf)) {
        n->overflow = true;
        return NULL;
    }
    memset(n->buf + at, 0, padded);
    n->len += padded;
    return n->buf + at;
}

static void nl_msg(struct nl *n, uint16_t type, uint16_t flags, const void *hdr, size_t hlen)
{
    struct nlmsghdr *h = nl_put(n, sizeof(*h));
    if (!h) return;
    h->nlmsg_type = type;
    h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    h->nlmsg_seq = ++n->seq;
    n->msg = h;
    if (flags & NLM_F_ACK) n->acks++;
    void *p = nl_put(n, hlen);
    if (p) memcpy(p, hdr, hlen);
}

static void nl_end(struct nl *n)
{
    if (n->msg) n->msg->nlmsg_len = (uint32_t)(n->buf + n->len - (char *)n->msg);
    n->msg = NULL;
}

static void nl_attr(struct nl *n, uint16_t type, const void *data, size_t len)
{
    struct nlattr *a = nl_put(n, NLA_HDRLEN + len);
    if (!a) return;
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy((char *)a + NLA_HDRLEN, data, len);
}

static void nl_u32(struct nl *n, uint16_t type, uint32_t v) { nl_attr(n, type, &v, 4); }
static void nl_be32(struct nl *n, uint16_t type, uint32_t v) { nl_u32(n, type, htonl(v)); }
static void nl_str(struct nl *n, uint16_t type, const char *s) { nl_attr(n, type, s, strlen(s) + 1); }

static void nl_nest(struct nl *n, uint16_t type)
{
    size_t at = n->len;
    struct nlattr *a = nl_put(n, NLA_HDRLEN);
    if (!a || n->depth == 8) {
        n->overflow = true;
        return;
    }
    a->nla_type = (uint16_t)(type | NLA_F_NESTED);
    n->nest[n->depth++] = at;
}

static void nl_unnest(struct nl *n)
{
    if (n->overflow || !n->depth) return;
    struct nlattr *a = (struct nlattr *)(n->buf + n->nest[--n->depth]);
    a->nla_len = (uint16_t)(n->len - n->nest[n->depth]);
}

/* Send everything, then read until every NLM_F_ACK message is answered.
 * The first error wins. */
static int nl_talk(struct nl *n, int proto)
{
    if (n->overflow) return -ENOBUFS;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto), rc = 0;
    if (s < 0) return -errno;
    struct sockaddr_nl k = { .nl_family = AF_NETLINK };
    ssize_t w;
    do w = sendto(s, n->buf, n->len, 0, (struct sockaddr *)&k, sizeof(k)); while (w < 0 && errno == EINTR);
    if (w < 0) rc = -errno;
    for (int answered = 0; !rc && answered < n->acks;) {
        union { char b[4096]; struct nlmsghdr align; } in;
        ssize_t r = recv(s, in.b, sizeof(in.b), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { rc = r < 0 ? -errno : -EPROTO; break; }
        for (struct nlmsghdr *h = &in.align; NLMSG_OK(h, (size_t)r); h = NLMSG_NEXT(h, r)) {
            if (h->nlmsg_type != NLMSG_ERROR) continue;
            const struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error && !rc) rc = e->error;
            answered++;
        }
    }
    close(s);
    return rc;
}

int sf_sbx_nl_route_local_all(void)
{
    struct nl n = { .len = 0 };
    struct rtmsg rt = { .rtm_family = AF_INET, .rtm_dst_len = 0, .rtm_table = RT_TABLE_LOCAL,
                        .rtm_protocol = RTPROT_BOOT, .rtm_scope = RT_SCOPE_HOST, .rtm_type = RTN_LOCAL };
    nl_msg(&n, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, &rt, sizeof(rt));
    nl_u32(&n, RTA_TABLE, RT_TABLE_LOCAL);
    nl_u32(&n, RTA_OIF, 1);                 /* lo is ifindex 1 in every namespace */
    nl_end(&n);
    return nl_talk(&n, NETLINK_ROUTE);
}

/* ---- nftables ------------------------------------------------------------- */

static void nft_msg(struct nl *n, uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id)
{
    struct nfgenmsg g = { .nfgen_family = family, .version = NFNETLINK_V0, .res_id = htons(res_id) };
    nl_msg(n, type, flags, &g, sizeof(g));
}

static void nft_expr_begin(struct nl *n, const char *name)
{
    nl_nest(n, NFTA_LIST_ELEM);
    nl_str(n, NFTA_EXPR_NAME, name);
    nl_nest(n, NFTA_EXPR_DATA);
}

static void nft_expr_end(struct nl *n)
{
    nl_unnest(n);
    nl_unnest(n);
}

static void nft_cmp_eq(struct nl *n, const void *data, size_t len)
{
    nft_expr_begin(n, "cmp");
    nl_be32(n, NFTA_CMP_SREG, NFT_REG_1);
    nl_be32(n, NFTA_CMP_OP, NFT_CMP_EQ);
    nl_nest(n, NFTA_CMP_DATA);
    nl_attr(n, NFTA_DATA_VALUE, data, len);
    nl_unnest(n);
    nft_expr_end(n);
}

static void nft_meta(struct nl *n, uint32_t key)
{
    nft_expr_begin(n, "meta");
    nl_be32(n, NFTA_META_DREG, NFT_REG_1);
    nl_be32(n, NFTA_META_KEY, key);
    nft_expr_end(n);
}

static void nft_verdict(struct nl *n, int code)
{
    nft_expr_begin(n, "immediate");
    nl_be32(n, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    nl_nest(n, NFTA_IMMEDIATE_DATA);
    nl_nest(n, NFTA_DATA_VERDICT);
    nl_be32(n, NFTA_VERDICT_CODE, (uint32_t)code);
    nl_unnest(n);
    nl_unnest(n);
    nft_expr_end(n);
}

static void nft_rule_begin(struct nl *n)
{
    nft_msg(n, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, NFPROTO_IPV4, 0);
    nl_str(n, NFTA_RULE_TABLE, "sandfleet");
    nl_str(n, NFTA_RULE_CHAIN, "pre");
    nl_nest(n, NFTA_RULE_EXPRESSIONS);
}

static void nft_rule_end(struct nl *n)
{
    nl_unnest(n);
    nl_end(n);
}

/* meta l4proto PROTO tproxy ip to :PORT accept */
static void nft_tproxy_rule(struct nl *n, uint8_t proto, uint16_t port)
{
    uint16_t be_port = htons(port);
    nft_rule_begin(n);
    nft_meta(n, NFT_META_L4PROTO);
    nft_cmp_eq(n, &proto, 1);
    nft_expr_begin(n, "immediate");
    nl_be32(n, NFTA_IMMEDIATE_DREG, NFT_REG_1);
    nl_nest(n, NFTA_IMMEDIATE_DATA);
    nl_attr(n, NFTA_DATA_VALUE, &be_port, 2);
    nl_unnest(n);
    nft_expr_end(n);
    nft_expr_begin(n, "tproxy");
    nl_be32(n, NFTA_TPROXY_FAMILY, NFPROTO_IPV4);
    nl_be32(n, NFTA_TPROXY_REG_PORT, NFT_REG_1);
    nft_expr_end(n);
    nft_verdict(n, NF_ACCEPT);
    nft_rule_end(n);
}

int sf_sbx_nl_egress_rules(uint16_t port, uint32_t mark)
{
    struct nl n = { .len = 0 };
    nft_msg(&n, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    nl_end(&n);

    nft_msg(&n, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK,
            NFPROTO_IPV4, 0);
    nl_str(&n, NFTA_TABLE_NAME, "sandfleet");
    nl_end(&n);

    nft_msg(&n, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK,
            NFPROTO_IPV4, 0);
    nl_str(&n, NFTA_CHAIN_TABLE, "sandfleet");
    nl_str(&n, NFTA_CHAIN_NAME, "pre");
    nl_nest(&n, NFTA_CHAIN_HOOK);
    nl_be32(&n, NFTA_HOOK_HOOKNUM, NF_INET_PRE_ROUTING);
    nl_be32(&n, NFTA_HOOK_PRIORITY, (uint32_t)-150);        /* mangle, as tproxy wants */
    nl_unnest(&n);
    nl_be32(&n, NFTA_CHAIN_POLICY, NF_ACCEPT);
    nl_str(&n, NFTA_CHAIN_TYPE, "filter");
    nl_end(&n);

    /* ip daddr 127.0.0.0/8 return: the sandbox's own loopback stays its own. */
    uint8_t lo = 127;
    nft_rule_begin(&n);
    nft_expr_begin(&n, "payload");
    nl_be32(&n, NFTA_PAYLOAD_DREG, NFT_REG_1);
    nl_be32(&n, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
    nl_be32(&n, NFTA_PAYLOAD_OFFSET, 16);
    nl_be32(&n, NFTA_PAYLOAD_LEN, 1);
    nft_expr_end(&n);
    nft_cmp_eq(&n, &lo, 1);
    nft_verdict(&n, NFT_RETURN);
    nft_rule_end(&n);

    /* meta mark MARK return: the worker's own replies. */
    nft_rule_begin(&n);
    nft_meta(&n, NFT_META_MARK);
    nft_cmp_eq(&n, &mark, 4);
    nft_verdict(&n, NFT_RETURN);
    nft_rule_end(&n);

    nft_tproxy_rule(&n, IPPROTO_TCP, port);
    nft_tproxy_rule(&n, IPPROTO_UDP, port);

    /* tproxy only takes packets for transparent sockets; the rest of TCP
     * and UDP are answers to the sandbox's own sockets (a SYN-ACK from
     * the worker's listener, a reply datagram): those stay local. */
    uint8_t protos[2] = { IPPROTO_TCP, IPPROTO_UDP };
    for (int i = 0; i < 2; i++) {
        nft_rule_begin(&n);
        nft_meta(&n, NFT_META_L4PROTO);
        nft_cmp_eq(&n, &protos[i], 1);
        nft_verdict(&n, NF_ACCEPT);
        nft_rule_end(&n);
    }

    /* Everything else (ICMP, raw IP) would be answered by this namespace
     * itself, every address being local: drop it instead of faking a reply. */
    nft_rule_begin(&n);
    nft_verdict(&n, NF_DROP);
    nft_rule_end(&n);

    nft_msg(&n, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    nl_end(&n);
    return nl_talk(&n, NETLINK_NETFILTER);
}
