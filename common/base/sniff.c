/* common/base/sniff.c: see sniff.h. TLS: RFC 8446 §4.1.2 (ClientHello) and
 * RFC 6066 §3 (server_name); HTTP: RFC 9112 (request line, Host). */
#include "sniff.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Copy a host name, lower-cased, without a trailing dot; false when it is
 * not made of name characters. */
static bool take_name(const uint8_t *p, size_t n, char *name, size_t namelen)
{
    if (n && p[n - 1] == '.') n--;
    if (!n || n > 253 || n >= namelen) return false;
    for (size_t i = 0; i < n; i++) {
        int c = p[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_')) return false;
        name[i] = (char)tolower(c);
    }
    name[n] = '\0';
    return true;
}

struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static uint32_t rd_n(struct rd *r, size_t n)
{
    uint32_t v = 0;
    if (r->bad || r->left < n) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++) v = v << 8 | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

static const uint8_t *rd_skip(struct rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

/* The server_name extension's data. */
static enum sf_sniff sni_ext(struct rd e, char *name, size_t namelen)
{
    size_t list = rd_n(&e, 2);
    struct rd l = { rd_skip(&e, list), list, e.bad };
    while (!l.bad && l.left) {
        uint32_t type = rd_n(&l, 1), n = rd_n(&l, 2);
        const uint8_t *host = rd_skip(&l, n);
        if (l.bad) break;
        if (type == 0) return take_name(host, n, name, namelen) ? SF_SNIFF_NAME : SF_SNIFF_NONAME;
    }
    return SF_SNIFF_NONAME;
}

static enum sf_sniff sniff_tls(const uint8_t *buf, size_t len, char *name, size_t namelen)
{
    if (len < 5) return SF_SNIFF_MORE;
    if (buf[1] != 3 || buf[2] > 4) return SF_SNIFF_OTHER;
    size_t rec = (size_t)buf[3] << 8 | buf[4];
    if (rec < 4 || rec > 16384 + 2048) return SF_SNIFF_NONAME;
    /* A ClientHello may span records, but the SNI is near its start: look
     * at what the first record holds once it is complete. */
    if (len < 5 + rec) return SF_SNIFF_MORE;
    struct rd r = { buf + 5, rec, false };
    if (rd_n(&r, 1) != 1) return SF_SNIFF_NONAME;           /* not a ClientHello */
    size_t hs = rd_n(&r, 3);
    if (hs < r.left) r.left = hs;
    rd_skip(&r, 2 + 32);                                    /* legacy_version, random */
    rd_skip(&r, rd_n(&r, 1));                               /* session id */
    rd_skip(&r, rd_n(&r, 2));                               /* cipher suites */
    rd_skip(&r, rd_n(&r, 1));                               /* compression */
    size_t exts = rd_n(&r, 2);
    struct rd x = { rd_skip(&r, exts), exts, r.bad };
    while (!x.bad && x.left) {
        uint32_t type = rd_n(&x, 2), n = rd_n(&x, 2);
        const uint8_t *data = rd_skip(&x, n);
        if (x.bad) break;
        if (type == 0) return sni_ext((struct rd){ data, n, false }, name, namelen);
    }
    return SF_SNIFF_NONAME;
}

/* The value of the Host header in a complete head. */
static enum sf_sniff http_host(const uint8_t *buf, size_t len, char *name, size_t namelen)
{
    const uint8_t *p = memchr(buf, '\n', len), *end = buf + len;
    while (p && p + 1 < end) {
        const uint8_t *line = p + 1;
        p = memchr(line, '\n', (size_t)(end - line));
        if (!p) break;
        size_t n = (size_t)(p - line);
        if (n && line[n - 1] == '\r') n--;
        if (!n) break;                                      /* end of the head */
        if (n < 5 || strncasecmp((const char *)line, "host:", 5)) continue;
        const uint8_t *v = line + 5, *ve = line + n;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        if (v < ve && *v == '[') return SF_SNIFF_NONAME;    /* an IPv6 literal is no name */
        const uint8_t *colon = memchr(v, ':', (size_t)(ve - v));
        if (colon) ve = colon;
        return take_name(v, (size_t)(ve - v), name, namelen) ? SF_SNIFF_NAME : SF_SNIFF_NONAME;
    }
    return SF_SNIFF_NONAME;
}

static enum sf_sniff sniff_http(const uint8_t *buf, size_t len, char *name, size_t namelen)
{
    /* A method is an upper-case token followed by a space. */
    size_t i = 0;
    while (i < len && i < 16 && buf[i] >= 'A' && buf[i] <= 'Z') i++;
    if (i == len && i < 16) return SF_SNIFF_MORE;
    if (!i || i == 16 || buf[i] != ' ') return SF_SNIFF_OTHER;
    if (len >= 14 && !memcmp(buf, "PRI * HTTP/2.0", 14)) return SF_SNIFF_NONAME;
    const uint8_t *end = NULL;
    for (size_t k = 0; k + 1 < len && !end; k++)
        if (buf[k] == '\n' && (buf[k + 1] == '\n' || (k + 2 < len && buf[k + 1] == '\r' &&
                                                      buf[k + 2] == '\n')))
            end = buf + k + 1;
    if (!end) return len >= SF_SNIFF_MAX ? SF_SNIFF_NONAME : SF_SNIFF_MORE;
    return http_host(buf, (size_t)(end - buf), name, namelen);
}

enum sf_sniff sf_sniff_name(const uint8_t *buf, size_t len, char *name, size_t namelen,
                            const char **proto)
{
    enum sf_sniff r;
    *proto = "";
    if (namelen) name[0] = '\0';
    if (!len) return SF_SNIFF_MORE;
    if (buf[0] == 0x16) {
        *proto = "tls";
        r = sniff_tls(buf, len, name, namelen);
    } else {
        *proto = "http";
        r = sniff_http(buf, len, name, namelen);
    }
    if (r == SF_SNIFF_OTHER) *proto = "";
    if (r == SF_SNIFF_MORE && len >= SF_SNIFF_MAX) r = SF_SNIFF_NONAME;
    return r;
}
