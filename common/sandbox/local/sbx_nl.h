/* common/sandbox/local/sbx_nl.h: the netlink messages that turn a fresh network
 * namespace into an egress namespace (sbx_egress.h): a route that makes
 * every IPv4 address local to it ("local 0.0.0.0/0 dev lo table local"),
 * and an nftables table that hands every TCP and UDP packet not meant for
 * 127/8 to the worker's transparent sockets (tproxy) and drops the rest.
 *
 * Written against the kernel's netlink ABI directly (no libmnl, no nft
 * binary): the messages are few and fixed, and built on the stack, so the
 * functions use only system calls and may run where malloc may not.
 * Thread: any; they act on the calling thread's network namespace, which
 * must be a fresh one the caller owns (never the worker's own). */
#ifndef SF_SBX_NL_H
#define SF_SBX_NL_H

#include <stdint.h>

/* The transparent sockets listen on this port in every egress namespace
 * (a port below 1024 that the sandbox cannot take first: they are made
 * before it exists). */
#define SF_SBX_EGRESS_PORT 1
/* Packets the worker injects back into the namespace (UDP replies) carry
 * this mark and skip the tproxy rule. Only CAP_NET_ADMIN can set a mark. */
#define SF_SBX_EGRESS_MARK 0x53466531u

/* "local 0.0.0.0/0 dev lo table local": every IPv4 destination is this
 * namespace's own, so connect() never fails with ENETUNREACH and every
 * packet passes the prerouting hook on lo. 0 or -errno. */
int sf_sbx_nl_route_local_all(void);

/* table ip sandfleet { chain pre { type filter hook prerouting priority
 * mangle; ip daddr 127.0.0.0/8 return; meta mark MARK return; meta l4proto
 * tcp tproxy to :PORT accept; meta l4proto udp tproxy to :PORT accept;
 * meta l4proto tcp accept; meta l4proto udp accept; drop } }. 0 or -errno. */
int sf_sbx_nl_egress_rules(uint16_t port, uint32_t mark);

#endif
