/* common/base/netaddr.h: what kind of address an IP address is, and CIDR
 * blocks. Shared by the callback destination policy (callback_net.h) and the
 * sandboxes' egress policy (netpolicy.h): one classifier for both, so
 * "private" means the same thing everywhere.
 *
 * Ranges follow the IANA special-purpose registries (RFC 6890). IPv4-mapped
 * (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96)
 * IPv6 addresses are classified, and matched against IPv4 blocks, as the
 * IPv4 address inside: an address cannot dodge a rule by changing clothes.
 * Thread: reentrant. */
#ifndef SF_NETADDR_H
#define SF_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum sf_netaddr_class {
    SF_NETADDR_PUBLIC = 0,
    SF_NETADDR_LOOPBACK,        /* 127/8, ::1 */
    SF_NETADDR_PRIVATE,         /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    SF_NETADDR_LINK_LOCAL,      /* 169.254/16 (cloud metadata), fe80::/10 */
    SF_NETADDR_SHARED,          /* 100.64/10 (carrier-grade NAT) */
    SF_NETADDR_UNSPECIFIED,     /* 0/8, :: (connects to this host on Linux) */
    SF_NETADDR_MULTICAST,       /* 224/4, ff00::/8 */
    SF_NETADDR_DOCUMENTATION,   /* 192.0.2/24, 198.51.100/24, 203.0.113/24 (RFC 5737),
                                   2001:db8::/32 (RFC 3849) */
    SF_NETADDR_RESERVED,        /* 240/4 incl. broadcast, 192.0.0/24, 198.18/15, outside
                                   2000::/3, unknown families */
};

const char *sf_netaddr_class_name(enum sf_netaddr_class c);
enum sf_netaddr_class sf_netaddr_classify(const struct sockaddr *sa);

/* Numeric text of an AF_INET/AF_INET6 address ("127.0.0.1", "::1"). */
const char *sf_netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len);

/* An address or block. IPv4 blocks are kept as IPv4 (family AF_INET); an
 * IPv6 block that is IPv4-mapped (::ffff:0:0/96 and longer) is stored as
 * the IPv4 block it stands for. */
struct sf_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t addr[16];           /* network byte order; host bits cleared */
    int bits;
};

/* "10.0.0.0/8", "1.2.3.4" (= /32), "2001:db8::/32", "::1". Host bits set
 * below the prefix are an error ("10.0.0.1/8"), as a typo there usually
 * means a wider or narrower block than intended. 0 or -EINVAL. */
int sf_cidr_parse(const char *s, struct sf_cidr *out);
/* Does the block contain the address (IPv4 inside IPv6 counts as IPv4)? */
bool sf_cidr_match(const struct sf_cidr *c, const struct sockaddr *sa);
/* "10.0.0.0/8" into buf. */
const char *sf_cidr_format(const struct sf_cidr *c, char *buf, size_t len);

/* The IPv4 address (host order) an AF_INET or IPv4-in-IPv6 address stands
 * for; false for a native IPv6 address. */
bool sf_netaddr_v4(const struct sockaddr *sa, uint32_t *v4);

#endif
