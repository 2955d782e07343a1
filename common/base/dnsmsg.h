/* common/base/dnsmsg.h: just enough of the DNS message format (RFC 1035) for a
 * filtering forwarder: read a query's question, build short replies and
 * queries, and read the IPv4 addresses out of an answer. Input is hostile
 * (sandboxes write queries, upstream servers write answers): every offset
 * is checked, compression pointers may only point backwards and are
 * followed a bounded number of times.
 * Thread: reentrant. */
#ifndef SF_DNSMSG_H
#define SF_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_DNS_A 1
#define SF_DNS_CNAME 5
#define SF_DNS_AAAA 28
#define SF_DNS_IN 1

enum sf_dns_rcode {
    SF_DNS_NOERROR = 0, SF_DNS_FORMERR = 1, SF_DNS_SERVFAIL = 2, SF_DNS_NXDOMAIN = 3,
    SF_DNS_NOTIMP = 4, SF_DNS_REFUSED = 5,
};

/* The one question of a message. */
struct sf_dns_q {
    uint16_t id, flags;
    char name[256];             /* dotted, lower case, no trailing dot; "" for the root */
    uint16_t qtype, qclass;
    size_t end;                 /* offset just past the question */
};

/* Read the header and the (single) question. 0, or -EINVAL for anything
 * else (truncated, qdcount != 1, a bad name). */
int sf_dns_question(const uint8_t *msg, size_t len, struct sf_dns_q *q);

/* A reply to a query: its header (QR set, RD kept, RA set, rcode) and its
 * question, no records. Returns the length written, 0 when out is too
 * small. */
size_t sf_dns_reply(const uint8_t *query, const struct sf_dns_q *q, int rcode, uint8_t *out,
                    size_t cap);

/* The same with one A record for the question's name (NOERROR). */
size_t sf_dns_reply_a(const uint8_t *query, const struct sf_dns_q *q, uint32_t v4, uint32_t ttl,
                      uint8_t *out, size_t cap);

/* A recursive query for name/qtype with 'id'. Returns its length, 0 when
 * the name is not a valid name or out too small. */
size_t sf_dns_query(uint16_t id, const char *name, uint16_t qtype, uint8_t *out, size_t cap);

/* An answer to q (same question echoed, QR set): its rcode, and every A
 * record of the answer section, whatever its owner (CNAME chains lead
 * there from the question), passed to 'each' with its TTL. -EINVAL when it
 * is not a well-formed answer to q. */
int sf_dns_answer(const uint8_t *msg, size_t len, const struct sf_dns_q *q,
                  void (*each)(void *arg, uint32_t v4, uint32_t ttl), void *arg);

/* Rewrite the id of a message in place. */
void sf_dns_set_id(uint8_t *msg, size_t len, uint16_t id);

#endif
