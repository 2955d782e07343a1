/* common/base/dnsmsg.c: see dnsmsg.h. */
#include "dnsmsg.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#define DNS_HDR 12
#define DNS_MAX_JUMPS 16

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* Read a (possibly compressed) name at *off into out (dotted, lower case).
 * *off moves past the name as it appears at that place. -EINVAL when
 * malformed. */
static int read_name(const uint8_t *m, size_t len, size_t *off, char *out, size_t outlen)
{
    size_t p = *off, o = 0, after = 0;
    int jumps = 0;
    bool jumped = false;
    for (;;) {
        if (p >= len) return -EINVAL;
        uint8_t l = m[p];
        if ((l & 0xc0) == 0xc0) {
            if (p + 1 >= len || ++jumps > DNS_MAX_JUMPS) return -EINVAL;
            size_t to = (size_t)(l & 0x3f) << 8 | m[p + 1];
            if (to >= p) return -EINVAL;            /* only backwards: no loops */
            if (!jumped) after = p + 2;
            jumped = true;
            p = to;
            continue;
        }
        if (l & 0xc0) return -EINVAL;               /* 0x40/0x80 label types are obsolete */
        if (!l) {
            if (!jumped) after = p + 1;
            break;
        }
        if (p + 1 + l > len || o + l + 2 > outlen) return -EINVAL;
        if (o) out[o++] = '.';
        for (size_t i = 0; i < l; i++) {
            int c = m[p + 1 + i];
            if (c == '.' || c < 0x21 || c > 0x7e) return -EINVAL;   /* keep names printable */
            out[o++] = (char)tolower(c);
        }
        p += 1 + (size_t)l;
    }
    out[o] = '\0';
    *off = after;
    return 0;
}

int sf_dns_question(const uint8_t *msg, size_t len, struct sf_dns_q *q)
{
    memset(q, 0, sizeof(*q));
    if (len < DNS_HDR || get16(msg + 4) != 1) return -EINVAL;
    q->id = get16(msg);
    q->flags = get16(msg + 2);
    size_t off = DNS_HDR;
    if (read_name(msg, len, &off, q->name, sizeof(q->name)) < 0 || off + 4 > len) return -EINVAL;
    q->qtype = get16(msg + off);
    q->qclass = get16(msg + off + 2);
    q->end = off + 4;
    return 0;
}

size_t sf_dns_reply(const uint8_t *query, const struct sf_dns_q *q, int rcode, uint8_t *out,
                    size_t cap)
{
    if (q->end > cap || q->end < DNS_HDR) return 0;
    memcpy(out, query, q->end);
    /* QR, the query's opcode and RD, RA; no AA, TC, AD. */
    uint16_t flags = (uint16_t)(0x8000 | (q->flags & 0x7900) | 0x0080 | (rcode & 0xf));
    put16(out + 2, flags);
    put16(out + 4, 1);
    put16(out + 6, 0);
    put16(out + 8, 0);
    put16(out + 10, 0);
    return q->end;
}

size_t sf_dns_reply_a(const uint8_t *query, const struct sf_dns_q *q, uint32_t v4, uint32_t ttl,
                      uint8_t *out, size_t cap)
{
    size_t n = q->end + 16;
    if (n > cap || !sf_dns_reply(query, q, SF_DNS_NOERROR, out, cap)) return 0;
    put16(out + 6, 1);                                  /* ANCOUNT */
    uint8_t *rr = out + q->end;
    put16(rr, 0xc000 | DNS_HDR);                        /* the question's name */
    put16(rr + 2, SF_DNS_A);
    put16(rr + 4, SF_DNS_IN);
    put16(rr + 6, (uint16_t)(ttl >> 16));
    put16(rr + 8, (uint16_t)ttl);
    put16(rr + 10, 4);
    put16(rr + 12, (uint16_t)(v4 >> 16));
    put16(rr + 14, (uint16_t)v4);
    return n;
}

size_t sf_dns_query(uint16_t id, const char *name, uint16_t qtype, uint8_t *out, size_t cap)
{
    size_t n = strlen(name), o = DNS_HDR;
    if (n > 253 || cap < DNS_HDR + n + 2 + 4) return 0;
    memset(out, 0, DNS_HDR);
    put16(out, id);
    put16(out + 2, 0x0100);                             /* RD */
    put16(out + 4, 1);
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (!l || l > 63) return 0;
        out[o++] = (uint8_t)l;
        memcpy(out + o, p, l);
        o += l;
        p += l + (dot ? 1 : 0);
        if (dot && !*p) return 0;                       /* a trailing dot: not canonical */
    }
    out[o++] = 0;
    put16(out + o, qtype);
    put16(out + o + 2, SF_DNS_IN);
    return o + 4;
}

int sf_dns_answer(const uint8_t *msg, size_t len, const struct sf_dns_q *q,
                  void (*each)(void *arg, uint32_t v4, uint32_t ttl), void *arg)
{
    struct sf_dns_q a;
    if (sf_dns_question(msg, len, &a) < 0 || !(a.flags & 0x8000) || a.id != q->id ||
        a.qtype != q->qtype || a.qclass != q->qclass || strcmp(a.name, q->name))
        return -EINVAL;
    size_t off = a.end, ancount = get16(msg + 6);
    for (size_t i = 0; i < ancount; i++) {
        char owner[256];
        if (read_name(msg, len, &off, owner, sizeof(owner)) < 0 || off + 10 > len) return -EINVAL;
        uint16_t type = get16(msg + off), klass = get16(msg + off + 2);
        uint32_t ttl = (uint32_t)get16(msg + off + 4) << 16 | get16(msg + off + 6);
        size_t rdlen = get16(msg + off + 8);
        off += 10;
        if (off + rdlen > len) return -EINVAL;
        if (type == SF_DNS_A && klass == SF_DNS_IN && rdlen == 4 && each)
            each(arg, (uint32_t)msg[off] << 24 | (uint32_t)msg[off + 1] << 16 |
                      (uint32_t)msg[off + 2] << 8 | msg[off + 3],
                 ttl);
        off += rdlen;
    }
    return a.flags & 0xf;
}

void sf_dns_set_id(uint8_t *msg, size_t len, uint16_t id)
{
    if (len >= 2) put16(msg, id);
}
