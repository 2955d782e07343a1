/* common/base/httphead.h: the head of an HTTP/1.x message — a request's or a
 * response's start line and its header fields — as written by a peer that
 * is not trusted (a sandbox's server behind E2B get_host, a sandbox's client
 * on the egress path). Parses in place: names, values and the start line's
 * parts point into the caller's buffer. Bounded: at most SF_HTTPHEAD_MAX_FIELDS
 * fields; obsolete line folding, bare CR, a space before the colon and
 * control characters in values are refused (request smuggling lives there).
 * Thread: reentrant. */
#ifndef SF_HTTPHEAD_H
#define SF_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define SF_HTTPHEAD_MAX_FIELDS 100

struct sf_http_str {
    const char *p;
    size_t n;
};

struct sf_httphead {
    bool response;
    int minor;                          /* HTTP/1.minor */
    int status;                         /* response */
    struct sf_http_str method, target;  /* request */
    struct sf_http_str reason;          /* response */
    struct sf_http_str names[SF_HTTPHEAD_MAX_FIELDS], values[SF_HTTPHEAD_MAX_FIELDS];
    size_t nfields;
};

/* Parse the head at the start of buf. Returns its length (through the
 * blank line) when complete, 0 when more bytes are needed, -EINVAL when it
 * is not a well-formed HTTP/1.x head, -E2BIG with more fields than fit. */
long sf_httphead_parse(const char *buf, size_t len, struct sf_httphead *h);

/* The value of the first field named 'name' (case-insensitive), or NULL. */
const struct sf_http_str *sf_httphead_get(const struct sf_httphead *h, const char *name);
/* Does a comma-separated field (Connection, Transfer-Encoding) list 'token'
 * (case-insensitive), in any of its occurrences? */
bool sf_httphead_has_token(const struct sf_httphead *h, const char *name, const char *token);
/* Case-insensitive comparison of a parsed string with a C string. */
bool sf_http_str_is(const struct sf_http_str *s, const char *c);

#endif
