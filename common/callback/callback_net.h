/* common/callback/callback_net.h: where a callback may connect to.
 *
 * A worker must not become a request forger against its own network, so a
 * callback destination is checked on the addresses it resolves to, not on
 * the host name (classes of netaddr.h): loopback, private (RFC 1918, fc00::/7), link-local (which
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

#include "netaddr.h"

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

#endif
