/* common/model/netpolicy.h: a sandbox's egress rules — the object form of a
 * step's "network" (docs/workflows.md), and of the E2B API's "network"
 * option — parsed, validated, matched. I/O-free, so it can be fuzzed.
 *
 *   "network": false                     only lo (the default)
 *   "network": true                      the internet under the default policy
 *   "network": {"allow_out": [...], "deny_out": [...]}
 *
 * Entries are IPs, CIDR blocks or (allow_out only) host names, "*.example.com"
 * for every name under example.com. E2B's semantics: an address in allow_out
 * is allowed whatever deny_out says; an address in deny_out is denied unless
 * a name in allow_out re-opens it for connections that name that host;
 * allow_out without deny_out means "only those". None of this can widen the
 * worker's own default policy (no host, private or metadata addresses): the
 * egress path applies both (docs/security.md, "Network").
 *
 * Ownership: a policy owns its arrays; free with sf_netpolicy_free.
 * Thread: reentrant; a policy is read-only once parsed. */
#ifndef SF_NETPOLICY_H
#define SF_NETPOLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "netaddr.h"

#define SF_NETPOLICY_MAX_ENTRIES 256    /* per list */
#define SF_NETNAME_MAX 253

struct sf_netname {
    char *name;                 /* lower case, no trailing dot; "example.com" for "*.example.com" */
    bool wildcard;              /* "*.": every name strictly below 'name' */
};

struct sf_netpolicy {
    struct sf_cidr *allow;
    size_t n_allow;
    struct sf_netname *names;   /* the names of allow_out */
    size_t n_names;
    struct sf_cidr *deny;
    size_t n_deny;
    struct sf_cidr *dns;        /* E2B dns_servers (IPv4), when dns_set */
    size_t n_dns;
    bool allow_set, deny_set, dns_set;  /* the key was given (an empty list counts) */
};

/* Which fields an object may carry: a workflow step's allow_out/deny_out, or
 * the E2B API's allowOut/denyOut/dnsServers (snake_case accepted too). */
enum sf_netpolicy_form { SF_NETPOLICY_STEP = 0, SF_NETPOLICY_E2B };

/* Parse the object form. Returns a policy, or NULL with the first problem in
 * err ("network.allow_out[2]: 'exa mple.com' is not an IP, CIDR block or host
 * name"). Unknown keys are errors: a rule that would be silently ignored is
 * worse than a refused one. */
struct sf_netpolicy *sf_netpolicy_from_json(const json_t *obj, enum sf_netpolicy_form form,
                                            char *err, size_t errlen);
/* {"allow_out": [...], "deny_out": [...]} (and "dns_servers" when set). */
json_t *sf_netpolicy_to_json(const struct sf_netpolicy *p);
/* The same in a form's spelling (SF_NETPOLICY_E2B: allowOut, ...). */
json_t *sf_netpolicy_to_json_form(const struct sf_netpolicy *p, enum sf_netpolicy_form form);
struct sf_netpolicy *sf_netpolicy_dup(const struct sf_netpolicy *p);
void sf_netpolicy_free(struct sf_netpolicy *p);
bool sf_netpolicy_equal(const struct sf_netpolicy *a, const struct sf_netpolicy *b);

/* A step's "network" value: false/absent → *on false; true → *on, *out NULL;
 * an object → *on and the parsed policy in *out. 0 or -EINVAL with a reason. */
int sf_netpolicy_step(const json_t *v, bool *on, struct sf_netpolicy **out, char *err,
                      size_t errlen);

/* One entry of a list: an IP or block into *cidr (returns 1), or, when
 * names are allowed, a host name into *name (returns 2, name malloc'd);
 * -EINVAL otherwise. */
int sf_netpolicy_entry(const char *s, bool names_ok, struct sf_cidr *cidr, struct sf_netname *name);

enum sf_netverdict {
    SF_NET_ALLOW = 0,
    SF_NET_DENY,
    SF_NET_BY_NAME,             /* denied, unless the connection names an allowed host */
};

/* The policy's verdict on a destination address (the worker's own default
 * policy is applied separately). */
enum sf_netverdict sf_netpolicy_addr(const struct sf_netpolicy *p, const struct sockaddr *sa);
/* The worker's own default policy, "internet, not the house": public and
 * documentation addresses (RFC 5737/3849 stand for the internet in tests),
 * unless they are the host's own ('host_local': the caller knows); never
 * loopback, private, shared, link-local (cloud metadata), multicast,
 * unspecified or reserved ones. The operator's rules ('op', may be NULL:
 * --egress-deny as deny, --egress-allow as allow) come first: a deny
 * match is final, an allowed block is allowed, an allowed name makes the
 * rest SF_NET_BY_NAME. */
enum sf_netverdict sf_netpolicy_house(const struct sf_netpolicy *op, const struct sockaddr *sa,
                                      bool host_local);
/* Does the policy close the internet (deny_out covering a whole family,
 * or allow_out alone)? Its sandbox's resolver then answers only the
 * allowed names. */
bool sf_netpolicy_closed(const struct sf_netpolicy *p);
/* Is 'name' one of the allowed names (case-insensitive, a trailing dot
 * ignored)? */
bool sf_netpolicy_name(const struct sf_netpolicy *p, const char *name);
/* Does a name pattern match a host name? */
bool sf_netname_match(const struct sf_netname *n, const char *host);
/* Is this a syntactically valid host name (labels of [a-z0-9-], 1-63 each,
 * at most 253 in all)? */
bool sf_netname_valid(const char *host);

#endif
