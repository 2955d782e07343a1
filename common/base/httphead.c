/* common/base/httphead.c: see httphead.h (RFC 9112 §2-5). */
#include "httphead.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar. */
static bool tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool sf_http_str_is(const struct sf_http_str *s, const char *c)
{
    size_t n = strlen(c);
    return s->n == n && !strncasecmp(s->p, c, n);
}

/* One line ending in CRLF (a bare LF is accepted, a bare CR is not).
 * Returns the line's length without its end, *next the offset after it;
 * -1 when incomplete, -2 when malformed. */
static long line_at(const char *buf, size_t len, size_t off, size_t *next)
{
    const char *nl = memchr(buf + off, '\n', len - off);
    if (!nl) return -1;
    size_t end = (size_t)(nl - buf);
    size_t n = end - off;
    if (n && buf[end - 1] == '\r') n--;
    if (memchr(buf + off, '\r', n)) return -2;
    *next = end + 1;
    return (long)n;
}

static int start_line(const char *l, size_t n, struct sf_httphead *h)
{
    if (n >= 12 && !memcmp(l, "HTTP/1.", 7)) {
        h->response = true;
        if (!isdigit((unsigned char)l[7]) || l[8] != ' ' || !isdigit((unsigned char)l[9]) ||
            !isdigit((unsigned char)l[10]) || !isdigit((unsigned char)l[11]) || (n > 12 && l[12] != ' '))
            return -EINVAL;
        h->minor = l[7] - '0';
        h->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
        if (h->status < 100) return -EINVAL;
        h->reason = (struct sf_http_str){ l + (n > 13 ? 13 : n), n > 13 ? n - 13 : 0 };
        return 0;
    }
    const char *sp1 = memchr(l, ' ', n);
    if (!sp1 || sp1 == l) return -EINVAL;
    for (const char *p = l; p < sp1; p++)
        if (!tchar((unsigned char)*p)) return -EINVAL;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(l + n - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1 || (size_t)(l + n - sp2) != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) ||
        !isdigit((unsigned char)sp2[8]))
        return -EINVAL;
    for (const char *p = sp1 + 1; p < sp2; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return -EINVAL;
    h->method = (struct sf_http_str){ l, (size_t)(sp1 - l) };
    h->target = (struct sf_http_str){ sp1 + 1, (size_t)(sp2 - sp1 - 1) };
    h->minor = sp2[8] - '0';
    return 0;
}

long sf_httphead_parse(const char *buf, size_t len, struct sf_httphead *h)
{
    size_t off = 0, next = 0;
    memset(h, 0, sizeof(*h));
    long n = line_at(buf, len, off, &next);
    if (n == -1) return 0;
    if (n < 0 || start_line(buf, (size_t)n, h) < 0) return -EINVAL;
    for (off = next;;) {
        n = line_at(buf, len, off, &next);
        if (n == -1) return 0;
        if (n < 0) return -EINVAL;
        if (n == 0) return (long)next;
        const char *l = buf + off, *colon = memchr(l, ':', (size_t)n);
        if (!colon || colon == l) return -EINVAL;            /* folding starts with a space */
        for (const char *p = l; p < colon; p++)
            if (!tchar((unsigned char)*p)) return -EINVAL;
        const char *v = colon + 1, *ve = l + n;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (const char *p = v; p < ve; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) return -EINVAL;
        if (h->nfields == SF_HTTPHEAD_MAX_FIELDS) return -E2BIG;
        h->names[h->nfields] = (struct sf_http_str){ l, (size_t)(colon - l) };
        h->values[h->nfields++] = (struct sf_http_str){ v, (size_t)(ve - v) };
        off = next;
    }
}

const struct sf_http_str *sf_httphead_get(const struct sf_httphead *h, const char *name)
{
    for (size_t i = 0; i < h->nfields; i++)
        if (sf_http_str_is(&h->names[i], name)) return &h->values[i];
    return NULL;
}

bool sf_httphead_has_token(const struct sf_httphead *h, const char *name, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < h->nfields; i++) {
        if (!sf_http_str_is(&h->names[i], name)) continue;
        const char *p = h->values[i].p, *end = p + h->values[i].n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
            const char *s = p;
            while (p < end && *p != ',') p++;
            const char *e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
            if ((size_t)(e - s) == tl && !strncasecmp(s, token, tl)) return true;
        }
    }
    return false;
}
