/* common/sandbox/local/sbx_egress.h: the worker as the only way out of a
 * sandbox's network namespace.
 *
 * An egress namespace (sbx_netns.h) has no interface but lo: every IPv4
 * address is local to it and nftables hands every TCP connection and UDP
 * datagram not meant for 127/8 to transparent sockets the worker made in it
 * (sbx_nl.h). This module owns those sockets. For each connection it reads
 * the original destination (the accepted socket's own address), judges it —
 * the worker's default policy "internet, not the house" with the operator's
 * --egress-allow/--egress-deny, then the sandbox's own rules (netpolicy.h) —
 * and, when allowed, connects to it from the worker's own namespace and
 * relays bytes both ways (splice through pipes, no copy to user space).
 * Since the sandbox has no route anywhere, nothing bypasses this check:
 * not the host's loopback, not another sandbox, not a metadata endpoint.
 *
 * Names: a rule may name hosts ("api.example.com"). A connection to an
 * address the rules only open by name is allowed when it names an allowed
 * host — the SNI of its TLS ClientHello or the Host of its HTTP request —
 * and that host resolves to the address; or, for protocols that name no
 * host (database drivers, gRPC over plain TCP...), when the sandbox's own
 * resolver answered an allowed name with that address. The sandbox's
 * resolver is this module too: /etc/resolv.conf says 127.0.0.53, and DNS
 * to any address (UDP or TCP port 53) is answered by it, forwarding to the
 * worker's resolvers (or the rules' dns_servers); with rules that close the
 * internet, only allowed names resolve.
 *
 * Denied TCP connections are reset (the sandbox sees the connect succeed,
 * then ECONNRESET: the kernel completes the handshake before the worker can
 * judge it, as in E2B); denied UDP is dropped. IPv6 has no route inside
 * (ENETUNREACH) and AAAA questions get empty answers, so clients use IPv4.
 *
 * Thread: one proxy thread per provider owns every connection. attach,
 * set_policy and detach may be called from any thread; detach waits until
 * the proxy has closed everything of that sandbox. */
#ifndef SF_SBX_EGRESS_H
#define SF_SBX_EGRESS_H

#include <stddef.h>
#include <netinet/in.h>

#include "inject.h"
#include "log.h"
#include "netpolicy.h"
#include "sbx_netns.h"

#define SF_SBX_EGRESS_MAX_DNS 3

struct sf_sbx_egress_cfg {
    const struct sf_netpolicy *op;     /* operator rules (allow: CIDRs and names, deny: CIDRs),
                                          copied; NULL: none */
    struct sockaddr_in dns[SF_SBX_EGRESS_MAX_DNS]; /* upstream resolvers */
    int ndns;                          /* 0: the nameservers of /etc/resolv.conf */
    const struct sf_log *log;          /* borrowed; NULL: silent */
};

struct sf_sbx_egress;
struct sf_sbx_egress_att;

/* Start the proxy thread. NULL with a message in err. */
struct sf_sbx_egress *sf_sbx_egress_new(const struct sf_sbx_egress_cfg *cfg, char *err,
                                        size_t errlen);
/* Stop: every sandbox must have been detached. NULL is a no-op. */
void sf_sbx_egress_free(struct sf_sbx_egress *eg);

/* Serve one sandbox: takes ns->sock[] (set to -1), a copy of the fd of its
 * network namespace 'netns' (for UDP reply sockets made in it) and copies
 * of 'policy' (NULL: the default policy) and 'inject' (NULL: no
 * interception). 'label' names the sandbox in logs. 0 or -errno. */
int sf_sbx_egress_attach(struct sf_sbx_egress *eg, int netns, struct sf_sbx_ns *ns,
                         const struct sf_netpolicy *policy, const struct sf_inject *inject,
                         const char *label, struct sf_sbx_egress_att **out);
/* The worker's CA for injected headers (sbx_egress_tls.c): the file with
 * the host's trusted certificates and the CA's, and the CA's alone, for
 * sandboxes with inject rules. -ENOTSUP when interception could not start
 * (the reason is in the worker's log). */
int sf_sbx_egress_ca_files(const struct sf_sbx_egress *eg, const char **bundle, const char **ca);
/* Other sandboxes reach this one's ports by HTTP with Host "<port>-<name>"
 * (E2B get_host from inside a sandbox, sbx_egress_in.c): their resolver
 * answers that name, the worker connects to 127.0.0.1:port inside 'netns'
 * (copied) and relays. 'token' (NULL: none) must then be sent in the header
 * e2b-traffic-access-token. 'key' identifies the entry for del. 0 or -errno. */
int sf_sbx_egress_ingress_add(struct sf_sbx_egress *eg, const void *key, int netns, const char *name,
                              const char *token);
void sf_sbx_egress_ingress_del(struct sf_sbx_egress *eg, const void *key);
/* Replace the sandbox's rules and injected headers (E2B update_network).
 * New connections follow them; connections already open stay as they are. */
void sf_sbx_egress_set_policy(struct sf_sbx_egress_att *a, const struct sf_netpolicy *policy,
                              const struct sf_inject *inject);
/* Close every connection, flow and socket of the sandbox, then free it.
 * NULL is a no-op. */
void sf_sbx_egress_detach(struct sf_sbx_egress_att *a);

/* The operator's flags (NULL-terminated lists; each entry may be a comma-
 * separated list): allow = CIDRs and host names, deny = CIDRs, dns =
 * "IPV4[:PORT]". Fills out (out->op points at *op, which the caller frees
 * after sf_sbx_egress_new). 0, or -EINVAL with the bad entry named. */
int sf_sbx_egress_cfg_parse(const char *const *allow, const char *const *deny,
                            const char *const *dns, struct sf_sbx_egress_cfg *out,
                            struct sf_netpolicy **op, char *errstr, size_t errlen);

/* The provider's egress path: the proxy and a pool of egress namespaces, or
 * why there are none (no privileges: network steps then fail with it). */
struct sf_sbx_egress_kit {
    struct sf_sbx_egress *eg;          /* NULL: network steps cannot run here */
    struct sf_sbx_netns_pool *pool;
    char why[512];
};

/* Start it from the operator's flags. -EINVAL (bad flags, message in
 * errstr) is the only failure: missing privileges leave k->eg NULL. */
int sf_sbx_egress_kit_start(struct sf_sbx_egress_kit *k, int pool_size, const char *const *allow,
                            const char *const *deny, const char *const *dns,
                            const struct sf_log *log, char *errstr, size_t errlen);
void sf_sbx_egress_kit_stop(struct sf_sbx_egress_kit *k);
/* An egress namespace for a new sandbox: a pooled one, or one made now.
 * -EPERM with the reason when network steps cannot run here. */
int sf_sbx_egress_kit_take(struct sf_sbx_egress_kit *k, struct sf_sbx_ns *ns, char *errstr,
                           size_t errlen);

/* The nameservers of a resolv.conf text, as IPv4 addresses (port 53);
 * IPv6 nameservers are skipped. Returns how many (at most max). */
int sf_sbx_egress_resolv_conf(const char *text, struct sockaddr_in *out, int max);

#endif
