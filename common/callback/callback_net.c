/* common/callback/callback_net.c: see callback_net.h. Ranges follow the IANA
 * special-purpose registries (RFC 6890) for the ones that matter to a
 * request forger; anything not obviously public is denied. */
#include "callback_net.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const class_names[] = {
    [SF_CALLBACK_NET_PUBLIC] = "public",
    [SF_CALLBACK_NET_LOOPBACK] = "loopback",
    [SF_CALLBACK_NET_PRIVATE] = "private",
    [SF_CALLBACK_NET_LINK_LOCAL] = "link-local (cloud metadata lives here)",
    [SF_CALLBACK_NET_SHARED] = "shared address space (100.64/10)",
    [SF_CALLBACK_NET_UNSPECIFIED] = "unspecified (this host)",
    [SF_CALLBACK_NET_MULTICAST] = "multicast",
    [SF_CALLBACK_NET_RESERVED] = "reserved",
};

const char *sf_callback_net_class_name(enum sf_callback_net_class c)
{
    return (unsigned)c < sizeof(class_names) / sizeof(class_names[0]) ? class_names[c] : "unknown";
}

static bool in4(uint32_t a, uint32_t net, int bits)
{
    uint32_t mask = bits ? 0xffffffffu << (32 - bits) : 0;
    return (a & mask) == (net & mask);
}

static enum sf_callback_net_class classify4(uint32_t a)
{
    if (in4(a, 0x00000000, 8)) return SF_CALLBACK_NET_UNSPECIFIED;
    if (in4(a, 0x7f000000, 8)) return SF_CALLBACK_NET_LOOPBACK;
    if (in4(a, 0x0a000000, 8) || in4(a, 0xac100000, 12) || in4(a, 0xc0a80000, 16))
        return SF_CALLBACK_NET_PRIVATE;
    if (in4(a, 0xa9fe0000, 16)) return SF_CALLBACK_NET_LINK_LOCAL;
    if (in4(a, 0x64400000, 10)) return SF_CALLBACK_NET_SHARED;
    if (in4(a, 0xe0000000, 4)) return SF_CALLBACK_NET_MULTICAST;
    if (in4(a, 0xf0000000, 4) || in4(a, 0xc0000000, 24) || in4(a, 0xc6120000, 15) ||
        in4(a, 0xc0000200, 24) || in4(a, 0xc6336400, 24) || in4(a, 0xcb007100, 24))
        return SF_CALLBACK_NET_RESERVED;
    return SF_CALLBACK_NET_PUBLIC;
}

static enum sf_callback_net_class classify6(const uint8_t *b)
{
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
    if (!memcmp(b, zero, 16)) return SF_CALLBACK_NET_UNSPECIFIED;
    if (!memcmp(b, zero, 15) && b[15] == 1) return SF_CALLBACK_NET_LOOPBACK;
    /* An IPv4 address in IPv6 clothes is judged as that IPv4 address. */
    if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12) || !memcmp(b, zero, 12))
        return classify4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    if ((b[0] & 0xfe) == 0xfc) return SF_CALLBACK_NET_PRIVATE;                 /* fc00::/7 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return SF_CALLBACK_NET_LINK_LOCAL; /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return SF_CALLBACK_NET_PRIVATE;  /* fec0::/10 site-local */
    if (b[0] == 0xff) return SF_CALLBACK_NET_MULTICAST;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return SF_CALLBACK_NET_RESERVED;
    /* Only global unicast (2000::/3) is public; the rest is unassigned. */
    if ((b[0] & 0xe0) != 0x20) return SF_CALLBACK_NET_RESERVED;
    return SF_CALLBACK_NET_PUBLIC;
}

enum sf_callback_net_class sf_callback_net_classify(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return classify4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return classify6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return SF_CALLBACK_NET_RESERVED;
}

const char *sf_callback_net_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)len)) sf_strlcpy(buf, "?", len);
    return buf;
}

/* Lower-case host; IP literals in inet_ntop's canonical form. */
static char *canonical_host(const char *h, size_t n)
{
    char tmp[256];
    uint8_t bin[16];
    if (n >= sizeof(tmp)) return NULL;
    memcpy(tmp, h, n);
    tmp[n] = '\0';
    if (n > 2 && tmp[0] == '[' && tmp[n - 1] == ']') {
        memmove(tmp, tmp + 1, n - 2);
        tmp[n - 2] = '\0';
    }
    for (char *p = tmp; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (inet_pton(AF_INET6, tmp, bin) == 1) {
        char out[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, bin, out, sizeof(out));
        return sf_xstrdup(out);
    }
    return sf_xstrdup(tmp);
}

int sf_callback_net_allow_add(struct sf_callback_allow *a, const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) { p++; n--; }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n == 1 && *p == '*') {
            a->any_public = true;
        } else if (n) {
            char *h = canonical_host(p, n);
            bool ok = h && *h;
            for (const char *c = h; ok && *c; c++)
                ok = isalnum((unsigned char)*c) || strchr("-._:", *c);
            if (!ok) {
                sf_errf(err, errlen, "--callback-allow: '%.*s' is not a host name or IP address",
                        (int)(n > 100 ? 100 : n), p);
                free(h);
                return -EINVAL;
            }
            a->hosts = sf_xrealloc(a->hosts, (a->n + 1) * sizeof(char *));
            a->hosts[a->n++] = h;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

void sf_callback_net_allow_done(struct sf_callback_allow *a)
{
    if (a->n == 0) a->any_public = true;
}

void sf_callback_net_allow_clear(struct sf_callback_allow *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->hosts[i]);
    free(a->hosts);
    memset(a, 0, sizeof(*a));
}

bool sf_callback_net_listed(const struct sf_callback_allow *a, const char *host)
{
    char *h = canonical_host(host, strlen(host));
    bool found = false;
    for (size_t i = 0; h && i < a->n && !found; i++) found = !strcmp(a->hosts[i], h);
    free(h);
    return found;
}

int sf_callback_net_check(const struct sf_callback_allow *a, const char *host,
                          const struct sockaddr *sa, char *reason, size_t reasonlen)
{
    char ip[INET6_ADDRSTRLEN];
    if (sf_callback_net_listed(a, host)) return 0;
    enum sf_callback_net_class c = sf_callback_net_classify(sa);
    if (c == SF_CALLBACK_NET_PUBLIC && a->any_public) return 0;
    sf_callback_net_ntop(sa, ip, sizeof(ip));
    if (c == SF_CALLBACK_NET_PUBLIC)
        sf_errf(reason, reasonlen, "destination host '%.200s' is not in the callback allowlist "
                "(--callback-allow / SANDFLEET_CALLBACK_ALLOW)", host);
    else
        sf_errf(reason, reasonlen, "destination %s (host '%.200s') is %s: denied unless the host is "
                "allowed with --callback-allow / SANDFLEET_CALLBACK_ALLOW", ip, host,
                sf_callback_net_class_name(c));
    return -EACCES;
}
