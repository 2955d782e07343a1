/* common/base/sniff.h: the host name a client names in the first bytes of a
 * TCP connection — the SNI of a TLS ClientHello, or the Host header of an
 * HTTP/1.x request — so an egress path can match names, not only addresses.
 * Input is hostile (a sandbox writes it): every length is checked against
 * the bytes present; the parser never reads past 'len'.
 * Thread: reentrant. */
#ifndef SF_SNIFF_H
#define SF_SNIFF_H

#include <stddef.h>
#include <stdint.h>

enum sf_sniff {
    SF_SNIFF_MORE = 0,          /* a TLS record or HTTP head not yet complete: read more */
    SF_SNIFF_NAME,              /* a name was found (lower case, no port, no trailing dot) */
    SF_SNIFF_NONAME,            /* TLS or HTTP, but no usable name in it */
    SF_SNIFF_OTHER,             /* neither TLS nor HTTP/1.x */
};

/* The largest prefix worth buffering: a ClientHello record (16 KiB + 5). */
#define SF_SNIFF_MAX (16384 + 5)

/* Look at the first 'len' bytes a client sent. With SF_SNIFF_NAME, 'name'
 * holds the host (at most 253 characters; namelen >= 254). *proto is set to
 * "tls", "http" or "" for messages. A head larger than SF_SNIFF_MAX
 * without an answer is SF_SNIFF_NONAME. */
enum sf_sniff sf_sniff_name(const uint8_t *buf, size_t len, char *name, size_t namelen,
                            const char **proto);

#endif
