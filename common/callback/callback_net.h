/* common/callback/callback_net.h: where a callback may connect to.
 *
 * A worker must not become a request forger against its own network, so a
 * callback destination is checked on the addresses it resolves to, not on
 * the host name: loopback, private (RFC 1918, fc00::/7), link-local (which
 * holds the cloud metadata endpoint 169.254.169.254), shared (100.64/10),
 * unspecified, multicast and reserved ranges are denied unless the host is
 * explicitly listed. The dispatcher resolves the name itself, checks every
 * address, pins the checked addresses for libcurl (CURLOPT_RESOLVE) and
 * checks again the address of every socket libcurl opens, so DNS rebinding
 * between the check and the connect cannot route around the policy.
 *
 * The allowlist (--callback-allow / SANDFLEET_CALLBACK_ALLOW) is a comma
 * list of host names or IP literals, compared with the URL's host
 * (case-insensitive; IP literals in canonical form). Empty: any host whose
 * addresses are all public. Non-empty: only the listed hosts (at any
 * address), plus any public host when the list contains "*".
 * Thread: reentrant; an allowlist is read-only once parsed.
 */
#ifndef SF_CALLBACK_NET_H
#define SF_CALLBACK_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum sf_callback_net_class {
    SF_CALLBACK_NET_PUBLIC = 0,
    SF_CALLBACK_NET_LOOPBACK,       /* 127/8, ::1 */
    SF_CALLBACK_NET_PRIVATE,        /* 10/8, 172.16/12, 192.168/16, fc00::/7 */
    SF_CALLBACK_NET_LINK_LOCAL,     /* 169.254/16 (metadata), fe80::/10 */
    SF_CALLBACK_NET_SHARED,         /* 100.64/10 (carrier-grade NAT) */
    SF_CALLBACK_NET_UNSPECIFIED,    /* 0/8, :: (connects to this host on Linux) */
    SF_CALLBACK_NET_MULTICAST,      /* 224/4, ff00::/8 */
    SF_CALLBACK_NET_RESERVED,       /* 240/4 incl. broadcast, 192.0.0/24, 198.18/15, 2001:db8::/32,
                                       unknown families */
};

const char *sf_callback_net_class_name(enum sf_callback_net_class c);
/* Class of an AF_INET or AF_INET6 address; IPv4-mapped (::ffff:a.b.c.d),
 * IPv4-compatible and NAT64 (64:ff9b::/96) addresses are classified by the
 * IPv4 address inside. */
enum sf_callback_net_class sf_callback_net_classify(const struct sockaddr *sa);

struct sf_callback_allow {
    char **hosts;       /* lower-case names, canonical IP literals */
    size_t n;
    bool any_public;    /* no list, or "*" in it */
};

/* Add the comma-separated entries of spec (NULL/"" adds nothing). Returns 0
 * or -EINVAL with the bad entry named in err. Call sf_callback_net_allow_done
 * after the last spec. */
int sf_callback_net_allow_add(struct sf_callback_allow *a, const char *spec, char *err, size_t errlen);
void sf_callback_net_allow_done(struct sf_callback_allow *a);
void sf_callback_net_allow_clear(struct sf_callback_allow *a);
bool sf_callback_net_listed(const struct sf_callback_allow *a, const char *host);

/* May we connect to sa for a URL whose host is 'host'? 0, or -EACCES with
 * the reason in reason ("127.0.0.1 is loopback; allow the host with
 * --callback-allow"). */
int sf_callback_net_check(const struct sf_callback_allow *a, const char *host,
                          const struct sockaddr *sa, char *reason, size_t reasonlen);

/* Numeric text of an address ("127.0.0.1", "::1") into buf. */
const char *sf_callback_net_ntop(const struct sockaddr *sa, char *buf, size_t len);

#endif
