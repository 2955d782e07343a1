/* common/callback/callback_net.c: see callback_net.h. The address classes
 * are netaddr.h's; anything not public is denied. */
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
    enum sf_netaddr_class c = sf_netaddr_classify(sa);
    if (c == SF_NETADDR_PUBLIC && a->any_public) return 0;
    sf_netaddr_ntop(sa, ip, sizeof(ip));
    if (c == SF_NETADDR_PUBLIC)
        sf_errf(reason, reasonlen, "destination host '%.200s' is not in the callback allowlist "
                "(--callback-allow / SANDFLEET_CALLBACK_ALLOW)", host);
    else
        sf_errf(reason, reasonlen, "destination %s (host '%.200s') is %s: denied unless the host is "
                "allowed with --callback-allow / SANDFLEET_CALLBACK_ALLOW", ip, host,
                sf_netaddr_class_name(c));
    return -EACCES;
}
