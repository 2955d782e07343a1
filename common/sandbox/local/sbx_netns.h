/* common/sandbox/local/sbx_netns.h: fresh network namespaces made ahead of time.
 *
 * A new network namespace is the most expensive part of a sandbox's
 * clone() (about 0.45 ms of the 0.5 ms here), and an egress namespace
 * (sbx_egress.h) costs more again (a route, an nftables table, five
 * sockets). A helper thread of the provider keeps a few fresh ones of each
 * kind ready; create() takes one, enters it on the calling thread just
 * around clone() (setns affects only that thread; the child inherits it),
 * and keeps its fd only for the worker's own connections into it (E2B
 * get_host): each namespace serves exactly one sandbox and dies with it.
 * The namespaces are owned by the worker's user namespace, so nothing
 * inside a sandbox has any capability over its network (with CLONE_NEWNET
 * its own root did, until the commands dropped every capability).
 *
 * Two kinds:
 *   PLAIN   only lo, up                               ("network": false)
 *   EGRESS  lo, every IPv4 address local, tproxy to the worker's sockets
 *           (sbx_nl.h), the sockets themselves, and the sandbox's resolver
 *           at 127.0.0.53:53                          ("network": true / rules)
 * Both let the sandbox bind ports below 1024 (ip_unprivileged_port_start 0),
 * so a server on port 80 works as in an E2B sandbox.
 *
 * Making a network namespace needs CAP_SYS_ADMIN, an egress one also
 * CAP_NET_ADMIN: without them there is no pool (a plain sandbox then uses
 * CLONE_NEWNET; an egress one cannot be made, docs/security.md).
 * Thread: every function may be called from any thread. */
#ifndef SF_SBX_NETNS_H
#define SF_SBX_NETNS_H

#include "log.h"

enum sf_sbx_ns_kind { SF_SBX_NS_PLAIN = 0, SF_SBX_NS_EGRESS };

/* The sockets an egress namespace is made with, all made inside it. */
enum sf_sbx_ns_sock {
    SF_SBX_NS_TCP = 0,          /* transparent TCP listener, 0.0.0.0:SF_SBX_EGRESS_PORT */
    SF_SBX_NS_UDP,              /* transparent UDP socket, same port, IP_RECVORIGDSTADDR */
    SF_SBX_NS_DNS_UDP,          /* 127.0.0.53:53 */
    SF_SBX_NS_DNS_TCP,          /* 127.0.0.53:53, listening */
    SF_SBX_NS_NSOCK,
};

/* One namespace: its fd and (EGRESS) its sockets; -1 where absent. */
struct sf_sbx_ns {
    int net;
    int sock[SF_SBX_NS_NSOCK];
};

/* Close every fd of ns and mark them -1. */
void sf_sbx_ns_close(struct sf_sbx_ns *ns);

/* Make a namespace of 'kind' on the calling thread, which ends up where it
 * started. 0 or -errno (the thread did not move). */
int sf_sbx_ns_make(enum sf_sbx_ns_kind kind, struct sf_sbx_ns *out);

struct sf_sbx_netns_pool;

/* Start a pool that keeps 'size' namespaces of 'kind' ready. Returns NULL
 * when this process may not make them (then it sets *err to the errno) or
 * cannot start the thread. log: where the helper says it stopped. Free with
 * sf_sbx_netns_pool_free. */
struct sf_sbx_netns_pool *sf_sbx_netns_pool_new(int size, enum sf_sbx_ns_kind kind,
                                                const struct sf_log *log, int *err);

/* Free the pool: stops the helper, closes the unused namespaces. NULL ok. */
void sf_sbx_netns_pool_free(struct sf_sbx_netns_pool *p);

/* Take a fresh namespace, never handed out again; the caller owns its fds.
 * -EAGAIN when none is ready (or in a forked child of the pool's process). */
int sf_sbx_netns_pool_take(struct sf_sbx_netns_pool *p, struct sf_sbx_ns *out);

/* Move the calling thread into the namespace 'nsfd'. Returns an fd of the
 * thread's previous namespace for sf_sbx_netns_leave, or -errno (the
 * thread did not move). */
int sf_sbx_netns_enter(int nsfd);

/* Move the calling thread back into 'prev' and close it. A thread left in
 * a sandbox's namespace would open the worker's own sockets there, so a
 * failure aborts the process (it needs CAP_SYS_ADMIN, which enter had). */
void sf_sbx_netns_leave(int prev);

/* A socket of 'type' made inside the namespace 'nsfd' (the calling thread
 * enters it and comes back). -errno on failure. */
int sf_sbx_netns_socket(int nsfd, int domain, int type, int protocol);

/* Bring `lo` up in the calling thread's network namespace. Only socket(2)
 * and ioctl(2): safe in the sandbox child between clone and exec. 0 or
 * -errno. */
int sf_sbx_netns_lo_up(void);

#endif
