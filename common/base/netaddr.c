/* common/base/netaddr.c: see netaddr.h. Anything not obviously public is
 * given a class of its own, so policies can deny it by default. */
#include "netaddr.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_names[] = {
    [SF_NETADDR_PUBLIC] = "public",
    [SF_NETADDR_LOOPBACK] = "loopback",
    [SF_NETADDR_PRIVATE] = "private",
    [SF_NETADDR_LINK_LOCAL] = "link-local (cloud metadata lives here)",
    [SF_NETADDR_SHARED] = "shared address space (100.64/10)",
    [SF_NETADDR_UNSPECIFIED] = "unspecified (this host)",
    [SF_NETADDR_MULTICAST] = "multicast",
    [SF_NETADDR_DOCUMENTATION] = "documentation",
    [SF_NETADDR_RESERVED] = "reserved",
};

const char *sf_netaddr_class_name(enum sf_netaddr_class c)
{
    return (unsigned)c < sizeof(class_names) / sizeof(class_names[0]) ? class_names[c] : "unknown";
}

static bool in4(uint32_t a, uint32_t net, int bits)
{
    uint32_t mask = bits ? 0xffffffffu << (32 - bits) : 0;
    return (a & mask) == (net & mask);
}

static enum sf_netaddr_class classify4(uint32_t a)
{
    if (in4(a, 0x00000000, 8)) return SF_NETADDR_UNSPECIFIED;
    if (in4(a, 0x7f000000, 8)) return SF_NETADDR_LOOPBACK;
    if (in4(a, 0x0a000000, 8) || in4(a, 0xac100000, 12) || in4(a, 0xc0a80000, 16))
        return SF_NETADDR_PRIVATE;
    if (in4(a, 0xa9fe0000, 16)) return SF_NETADDR_LINK_LOCAL;
    if (in4(a, 0x64400000, 10)) return SF_NETADDR_SHARED;
    if (in4(a, 0xe0000000, 4)) return SF_NETADDR_MULTICAST;
    if (in4(a, 0xc0000200, 24) || in4(a, 0xc6336400, 24) || in4(a, 0xcb007100, 24))
        return SF_NETADDR_DOCUMENTATION;
    if (in4(a, 0xf0000000, 4) || in4(a, 0xc0000000, 24) || in4(a, 0xc6120000, 15))
        return SF_NETADDR_RESERVED;
    return SF_NETADDR_PUBLIC;
}

/* The IPv4 address inside an IPv4-mapped, -compatible or NAT64 address. */
static bool v4_inside(const uint8_t *b, uint32_t *v4)
{
    static const uint8_t zero[12];
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
    if (memcmp(b, mapped, 12) && memcmp(b, nat64, 12) && memcmp(b, zero, 12)) return false;
    /* :: and ::1 are IPv6's own unspecified and loopback addresses. */
    if (!memcmp(b, zero, 12) && !b[12] && !b[13] && !b[14] && b[15] <= 1) return false;
    *v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
    return true;
}

static enum sf_netaddr_class classify6(const uint8_t *b)
{
    static const uint8_t zero[16];
    uint32_t v4;
    if (!memcmp(b, zero, 16)) return SF_NETADDR_UNSPECIFIED;
    if (!memcmp(b, zero, 15) && b[15] == 1) return SF_NETADDR_LOOPBACK;
    if (v4_inside(b, &v4)) return classify4(v4);
    if ((b[0] & 0xfe) == 0xfc) return SF_NETADDR_PRIVATE;                  /* fc00::/7 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return SF_NETADDR_LINK_LOCAL; /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return SF_NETADDR_PRIVATE;   /* fec0::/10 site-local */
    if (b[0] == 0xff) return SF_NETADDR_MULTICAST;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return SF_NETADDR_DOCUMENTATION;
    /* Only global unicast (2000::/3) is public; the rest is unassigned. */
    if ((b[0] & 0xe0) != 0x20) return SF_NETADDR_RESERVED;
    return SF_NETADDR_PUBLIC;
}

enum sf_netaddr_class sf_netaddr_classify(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return classify4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return classify6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return SF_NETADDR_RESERVED;
}

bool sf_netaddr_v4(const struct sockaddr *sa, uint32_t *v4)
{
    if (sa->sa_family == AF_INET) {
        *v4 = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return true;
    }
    return sa->sa_family == AF_INET6 &&
           v4_inside(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, v4);
}

const char *sf_netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        !inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
        sf_strlcpy(buf, "?", len);
    return buf;
}

/* ---- CIDR blocks ------------------------------------------------------------ */

static bool host_bits_clear(const uint8_t *a, int bits, int total)
{
    for (int i = bits; i < total; i++)
        if (a[i / 8] & (0x80 >> (i % 8))) return false;
    return true;
}

int sf_cidr_parse(const char *s, struct sf_cidr *out)
{
    char tmp[64];
    const char *slash = s ? strchr(s, '/') : NULL;
    size_t n = slash ? (size_t)(slash - s) : (s ? strlen(s) : 0);
    int bits = -1;
    memset(out, 0, sizeof(*out));
    if (!n || n >= sizeof(tmp)) return -EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (slash) {
        char *end;
        if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3) return -EINVAL;
        long b = strtol(slash + 1, &end, 10);
        if (*end) return -EINVAL;
        bits = (int)b;
    }
    if (inet_pton(AF_INET, tmp, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = bits < 0 ? 32 : bits;
        if (out->bits > 32) return -EINVAL;
        return host_bits_clear(out->addr, out->bits, 32) ? 0 : -EINVAL;
    }
    if (inet_pton(AF_INET6, tmp, out->addr) != 1) return -EINVAL;
    out->family = AF_INET6;
    out->bits = bits < 0 ? 128 : bits;
    if (out->bits > 128 || !host_bits_clear(out->addr, out->bits, 128)) return -EINVAL;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (out->bits >= 96 && !memcmp(out->addr, mapped, 12)) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->bits -= 96;
    }
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole)) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool sf_cidr_match(const struct sf_cidr *c, const struct sockaddr *sa)
{
    if (c->family == AF_INET) {
        uint32_t v4;
        if (!sf_netaddr_v4(sa, &v4)) return false;
        uint8_t b[4] = { (uint8_t)(v4 >> 24), (uint8_t)(v4 >> 16), (uint8_t)(v4 >> 8), (uint8_t)v4 };
        return prefix_eq(b, c->addr, c->bits);
    }
    if (sa->sa_family != AF_INET6) return false;
    return prefix_eq(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, c->addr, c->bits);
}

const char *sf_cidr_format(const struct sf_cidr *c, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->family, c->addr, ip, sizeof(ip));
    snprintf(buf, len, "%s/%d", ip, c->bits);
    return buf;
}
