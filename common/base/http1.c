/* common/base/http1.c: see http1.h. Written after RFC 9112 (message syntax
 * and framing, §2-§7) and the smuggling notes of RFC 9112 §6.3 and §11.2. */
#include "http1.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define H1_MAX_CHUNK_EXT 1024     /* one chunk-size line's extensions */
#define H1_MAX_TRAILER 8192       /* all trailer lines */

/* tchar of RFC 9110 §5.6.2 */
static bool tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool sf_h1_is(const struct sf_h1_header *hd, const char *name)
{
    size_t n = strlen(name);
    return hd->nlen == n && !strncasecmp(hd->name, name, n);
}

const struct sf_h1_header *sf_h1_find(const struct sf_h1_head *h, const char *name)
{
    for (size_t i = 0; i < h->nh; i++)
        if (sf_h1_is(&h->h[i], name)) return &h->h[i];
    return NULL;
}

bool sf_h1_get(const struct sf_h1_head *h, const char *name, char *dst, size_t size)
{
    const struct sf_h1_header *hd = sf_h1_find(h, name);
    if (!hd || !size) return false;
    size_t n = hd->vlen < size - 1 ? hd->vlen : size - 1;
    memcpy(dst, hd->value, n);
    dst[n] = '\0';
    return true;
}

/* The end of the line starting at p (pointing at its CR), or NULL when the
 * buffer ends first; -EINVAL through *bad for a CR not followed by LF or a
 * bare LF. */
static const char *line_end(const char *p, const char *end, bool *bad)
{
    for (const char *q = p; q < end; q++) {
        if (*q == '\n') {
            *bad = true;                 /* bare LF */
            return NULL;
        }
        if (*q == '\r') {
            if (q + 1 == end) return NULL;
            if (q[1] != '\n') *bad = true;
            return *bad ? NULL : q;
        }
    }
    return NULL;
}

/* Does the comma-separated list v contain token t (case-insensitive)? */
static bool has_token(const char *v, size_t n, const char *t)
{
    size_t tl = strlen(t), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && !strncasecmp(v + s, t, tl)) return true;
    }
    return false;
}

/* The last coding of a Transfer-Encoding list. */
static bool ends_chunked(const char *v, size_t n)
{
    size_t e = n;
    while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t' || v[e - 1] == ',')) e--;
    size_t s = e;
    while (s > 0 && v[s - 1] != ',') s--;
    while (s < e && (v[s] == ' ' || v[s] == '\t')) s++;
    return e - s == 7 && !strncasecmp(v + s, "chunked", 7);
}

static int parse_length(const char *v, size_t n, int64_t *out)
{
    int64_t x = 0;
    if (!n || n > 18) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -EINVAL;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Header fields from p to the blank line; fills h. */
static int parse_fields(const char *p, const char *end, size_t max, const char *start,
                        struct sf_h1_head *h, const char **why)
{
    bool bad = false;
    for (;;) {
        const char *eol = line_end(p, end, &bad);
        if (bad) goto malformed;
        if (!eol) return (size_t)(end - start) >= max ? -E2BIG : 0;
        if ((size_t)(eol + 2 - start) > max) return -E2BIG;
        if (eol == p) {
            h->len = (size_t)(eol + 2 - start);
            return 1;
        }
        if (*p == ' ' || *p == '\t') {
            *why = "folded header line";
            return -EINVAL;
        }
        const char *colon = p;
        while (colon < eol && tchar((unsigned char)*colon)) colon++;
        if (colon == p || colon == eol || *colon != ':') {
            *why = colon < eol && (*colon == ' ' || *colon == '\t') ? "whitespace before a colon"
                                                                     : "bad header name";
            return -EINVAL;
        }
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (const char *q = v; q < ve; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
                *why = "control byte in a header value";
                return -EINVAL;
            }
        if (h->nh == SF_H1_MAX_HEADERS) return -E2BIG;
        struct sf_h1_header *hd = &h->h[h->nh++];
        *hd = (struct sf_h1_header){ p, v, (size_t)(colon - p), (size_t)(ve - v) };
        p = eol + 2;
    }
malformed:
    *why = "line not ended by CRLF";
    return -EINVAL;
}

/* Framing facts from the fields. */
static int framing(struct sf_h1_head *h, const char **why)
{
    h->content_length = -1;
    bool te = false;
    for (size_t i = 0; i < h->nh; i++) {
        const struct sf_h1_header *hd = &h->h[i];
        if (sf_h1_is(hd, "Content-Length")) {
            int64_t v;
            if (parse_length(hd->value, hd->vlen, &v) < 0) {
                *why = "bad Content-Length";
                return -EINVAL;
            }
            if (h->content_length >= 0 && h->content_length != v) {
                *why = "differing Content-Length headers";
                return -EINVAL;
            }
            h->content_length = v;
        } else if (sf_h1_is(hd, "Transfer-Encoding")) {
            /* Several headers form one list: the last one decides. */
            te = true;
            h->chunked = ends_chunked(hd->value, hd->vlen);
        } else if (sf_h1_is(hd, "Connection")) {
            h->conn_close |= has_token(hd->value, hd->vlen, "close");
            h->conn_upgrade |= has_token(hd->value, hd->vlen, "upgrade");
            h->keep_alive |= has_token(hd->value, hd->vlen, "keep-alive");
        } else if (sf_h1_is(hd, "Upgrade")) {
            h->upgrade = true;
        }
    }
    h->other_coding = te && !h->chunked;
    return 0;
}

static int version(const char *p, const char *e, int *minor)
{
    if (e - p != 8 || memcmp(p, "HTTP/1.", 7) || p[7] < '0' || p[7] > '9') return -EINVAL;
    *minor = p[7] - '0';
    return 0;
}

static void head_reset(struct sf_h1_head *h)
{
    h->method = h->target = NULL;
    h->mlen = h->tlen = 0;
    h->status = h->minor = 0;
    h->nh = h->len = 0;
    h->content_length = -1;
    h->chunked = h->other_coding = h->conn_close = h->conn_upgrade = h->keep_alive = h->upgrade = false;
}

int sf_h1_parse_request(const char *buf, size_t len, size_t max, struct sf_h1_head *h,
                        const char **why)
{
    const char *p = buf, *end = buf + len;
    bool bad = false;
    head_reset(h);
    *why = "";
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n' && p - buf < 16) p += 2;
    const char *eol = line_end(p, end, &bad);
    if (bad) {
        *why = "request line not ended by CRLF";
        return -EINVAL;
    }
    if (!eol) return len >= max ? -E2BIG : 0;
    if ((size_t)(eol + 2 - buf) > max) return -E2BIG;
    const char *sp1 = p;
    while (sp1 < eol && tchar((unsigned char)*sp1)) sp1++;
    if (sp1 == p || sp1 == eol || *sp1 != ' ') goto bad_line;
    const char *t = sp1 + 1, *sp2 = t;
    while (sp2 < eol && (unsigned char)*sp2 > 0x20 && *sp2 != 0x7f) sp2++;
    if (sp2 == t || sp2 == eol || *sp2 != ' ') goto bad_line;
    if (version(sp2 + 1, eol, &h->minor) < 0) goto bad_line;
    h->method = p;
    h->mlen = (size_t)(sp1 - p);
    h->target = t;
    h->tlen = (size_t)(sp2 - t);
    int rc = parse_fields(eol + 2, end, max, buf, h, why);
    if (rc <= 0) return rc;
    return framing(h, why) < 0 ? -EINVAL : 1;
bad_line:
    *why = "bad request line";
    return -EINVAL;
}

int sf_h1_parse_response(const char *buf, size_t len, size_t max, struct sf_h1_head *h,
                         const char **why)
{
    const char *p = buf, *end = buf + len;
    bool bad = false;
    head_reset(h);
    *why = "";
    const char *eol = line_end(p, end, &bad);
    if (bad) {
        *why = "status line not ended by CRLF";
        return -EINVAL;
    }
    if (!eol) return len >= max ? -E2BIG : 0;
    if ((size_t)(eol + 2 - buf) > max) return -E2BIG;
    if (eol - p < 12 || version(p, p + 8, &h->minor) < 0 || p[8] != ' ' ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (eol - p > 12 && p[12] != ' ')) {
        *why = "bad status line";
        return -EINVAL;
    }
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    int rc = parse_fields(eol + 2, end, max, buf, h, why);
    if (rc <= 0) return rc;
    return framing(h, why) < 0 ? -EINVAL : 1;
}

/* ---- body framing ----------------------------------------------------------- */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF,
       CH_TRAILER_LINE, CH_TRAILER_LINE_LF };

static void body_set(struct sf_h1_body *b, enum sf_h1_body_kind k, uint64_t left)
{
    memset(b, 0, sizeof(*b));
    b->kind = k;
    b->left = left;
    b->done = k == SF_H1_BODY_NONE || (k == SF_H1_BODY_LENGTH && left == 0);
}

int sf_h1_body_request(struct sf_h1_body *b, const struct sf_h1_head *h, const char **why)
{
    if (h->chunked && h->content_length >= 0) {
        *why = "both Transfer-Encoding and Content-Length";
        return -EINVAL;
    }
    if (h->other_coding) {
        *why = "Transfer-Encoding other than chunked";
        return -ENOTSUP;
    }
    if (h->chunked) body_set(b, SF_H1_BODY_CHUNKED, 0);
    else if (h->content_length > 0) body_set(b, SF_H1_BODY_LENGTH, (uint64_t)h->content_length);
    else body_set(b, SF_H1_BODY_NONE, 0);
    return 0;
}

void sf_h1_body_response(struct sf_h1_body *b, const struct sf_h1_head *h, bool head_request)
{
    if (head_request || h->status < 200 || h->status == 204 || h->status == 304)
        body_set(b, SF_H1_BODY_NONE, 0);
    else if (h->chunked)
        body_set(b, SF_H1_BODY_CHUNKED, 0);
    else if (h->other_coding)
        body_set(b, SF_H1_BODY_EOF, 0);
    else if (h->content_length >= 0)
        body_set(b, SF_H1_BODY_LENGTH, (uint64_t)h->content_length);
    else
        body_set(b, SF_H1_BODY_EOF, 0);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One step of the chunked framing over data[i]; returns the bytes used
 * (the whole run of chunk data at once) or -EINVAL. */
static ssize_t chunk_step(struct sf_h1_body *b, const char *data, size_t len)
{
    char c = data[0];
    int v;
    switch (b->state) {
    case CH_SIZE:
        if ((v = hexval(c)) >= 0) {
            if (++b->digits > 15) return -EINVAL;     /* no chunk is 2^60 bytes */
            b->left = b->left * 16 + (uint64_t)v;
            return 1;
        }
        if (!b->digits) return -EINVAL;
        if (c == ';' || c == ' ' || c == '\t') b->state = CH_EXT;
        else if (c == '\r') b->state = CH_SIZE_LF;
        else return -EINVAL;
        return 1;
    case CH_EXT:
        if (c == '\r') b->state = CH_SIZE_LF;
        else if (c == '\n' || ++b->line > H1_MAX_CHUNK_EXT) return -EINVAL;
        return 1;
    case CH_SIZE_LF:
        if (c != '\n') return -EINVAL;
        b->digits = b->line = 0;
        b->state = b->left ? CH_DATA : CH_TRAILER;
        return 1;
    case CH_DATA: {
        size_t n = len < b->left ? len : (size_t)b->left;
        b->left -= n;
        if (!b->left) b->state = CH_DATA_CR;
        return (ssize_t)n;
    }
    case CH_DATA_CR:
        if (c != '\r') return -EINVAL;
        b->state = CH_DATA_LF;
        return 1;
    case CH_DATA_LF:
        if (c != '\n') return -EINVAL;
        b->state = CH_SIZE;
        return 1;
    case CH_TRAILER:                    /* at the start of a trailer line */
        if (c == '\r') {
            b->state = CH_TRAILER_LF;
            return 1;
        }
        if (c == '\n') return -EINVAL;
        b->state = CH_TRAILER_LINE;
        /* fall through */
    case CH_TRAILER_LINE:
        if (++b->trailer > H1_MAX_TRAILER || c == '\n') return -EINVAL;
        if (c == '\r') b->state = CH_TRAILER_LINE_LF;
        return 1;
    case CH_TRAILER_LINE_LF:
        if (c != '\n') return -EINVAL;
        b->state = CH_TRAILER;
        return 1;
    case CH_TRAILER_LF:
        if (c != '\n') return -EINVAL;
        b->done = true;
        return 1;
    }
    return -EINVAL;
}

ssize_t sf_h1_body_feed(struct sf_h1_body *b, const char *data, size_t len)
{
    return sf_h1_body_payload(b, data, len, NULL, NULL);
}

ssize_t sf_h1_body_payload(struct sf_h1_body *b, const char *data, size_t len,
                           void (*fn)(void *arg, const char *p, size_t n), void *arg)
{
    if (b->done) return 0;
    switch (b->kind) {
    case SF_H1_BODY_NONE:
        b->done = true;
        return 0;
    case SF_H1_BODY_EOF:
        if (fn && len) fn(arg, data, len);
        return (ssize_t)len;
    case SF_H1_BODY_LENGTH: {
        size_t n = len < b->left ? len : (size_t)b->left;
        b->left -= n;
        b->done = b->left == 0;
        if (fn && n) fn(arg, data, n);
        return (ssize_t)n;
    }
    case SF_H1_BODY_CHUNKED: {
        size_t used = 0;
        while (used < len && !b->done) {
            bool payload = b->state == CH_DATA;
            ssize_t n = chunk_step(b, data + used, len - used);
            if (n < 0) return -EINVAL;
            if (payload && fn) fn(arg, data + used, (size_t)n);
            used += (size_t)n;
        }
        return (ssize_t)used;
    }
    }
    return -EINVAL;
}
