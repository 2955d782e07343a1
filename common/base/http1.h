/* common/base/http1.h: an I/O-free HTTP/1.1 message-head parser and body
 * framer, for a proxy that relays messages between two connections without
 * buffering them (the E2B gateway, coordinator/gateway/).
 *
 * The parser reads one request or response head (RFC 9112) out of a buffer;
 * everything it returns points into that buffer. The framer then tells, for
 * any bytes that follow, how many still belong to the message, so a proxy
 * finds where a body ends (Content-Length, chunked, or the connection's end)
 * without decoding or copying it. Strict where lenience lets two parsers
 * disagree on where a message ends (request smuggling): Transfer-Encoding
 * together with Content-Length, differing Content-Lengths, a Transfer-Encoding
 * that does not end in chunked, whitespace before a colon, folded lines,
 * bare CR, and control bytes in values are all malformed requests.
 * Like hiredis' reader, nothing here allocates; every call may be repeated
 * with more bytes. Thread: no shared state. */
#ifndef SF_HTTP1_H
#define SF_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SF_H1_MAX_HEADERS 64

struct sf_h1_header {
    const char *name, *value;    /* not NUL-terminated; value without surrounding blanks */
    size_t nlen, vlen;
};

struct sf_h1_head {
    const char *method, *target; /* request line (NULL in a response) */
    size_t mlen, tlen;
    int status;                  /* status line (0 in a request) */
    int minor;                   /* HTTP/1.<minor> */
    struct sf_h1_header h[SF_H1_MAX_HEADERS];
    size_t nh;
    size_t len;                  /* bytes of the head, blank line included */
    /* What the headers say about framing and the connection. */
    int64_t content_length;      /* -1: none */
    bool chunked;                /* Transfer-Encoding ends in chunked */
    bool other_coding;           /* Transfer-Encoding present, not ending in chunked */
    bool conn_close, conn_upgrade, keep_alive;   /* Connection tokens */
    bool upgrade;                /* an Upgrade header is present */
};

/* Parse the head at buf[0..len), at most max bytes long. 1: complete (h
 * filled), 0: more bytes needed, -E2BIG: longer than max or more than
 * SF_H1_MAX_HEADERS headers, -EINVAL: malformed (*why says how). Empty lines
 * before a request line are skipped (counted in h->len). */
int sf_h1_parse_request(const char *buf, size_t len, size_t max, struct sf_h1_head *h,
                        const char **why);
int sf_h1_parse_response(const char *buf, size_t len, size_t max, struct sf_h1_head *h,
                         const char **why);

/* The first header named 'name' (case-insensitive), or NULL. */
const struct sf_h1_header *sf_h1_find(const struct sf_h1_head *h, const char *name);
/* Its value copied into dst (NUL-terminated, cut to size); false when absent. */
bool sf_h1_get(const struct sf_h1_head *h, const char *name, char *dst, size_t size);
/* The header's name equals 'name' (case-insensitive). */
bool sf_h1_is(const struct sf_h1_header *hd, const char *name);

enum sf_h1_body_kind {
    SF_H1_BODY_NONE,             /* the message ends with its head */
    SF_H1_BODY_LENGTH,           /* Content-Length bytes */
    SF_H1_BODY_CHUNKED,          /* chunks, then trailers */
    SF_H1_BODY_EOF,              /* until the connection closes (responses only) */
};

struct sf_h1_body {
    enum sf_h1_body_kind kind;
    uint64_t left;               /* LENGTH: bytes to go; CHUNKED: of this chunk */
    int state;                   /* CHUNKED: where in the framing */
    unsigned digits, line;       /* CHUNKED: size digits / bytes of an extension or trailer line */
    size_t trailer;              /* CHUNKED: trailer bytes so far */
    bool done;
};

/* Framing of a request body. -EINVAL with *why when the head makes it
 * ambiguous (see above); -ENOTSUP for a Transfer-Encoding other than chunked. */
int sf_h1_body_request(struct sf_h1_body *b, const struct sf_h1_head *h, const char **why);
/* Framing of a response body; head_request: it answers a HEAD. A 101 or 1xx
 * is NONE (the caller decides what follows). */
void sf_h1_body_response(struct sf_h1_body *b, const struct sf_h1_head *h, bool head_request);
/* Of data[0..len), how many bytes still belong to the message (fewer than
 * len only when it ended there: b->done). -EINVAL on broken chunked framing.
 * An EOF body takes everything: it ends when the connection does. */
ssize_t sf_h1_body_feed(struct sf_h1_body *b, const char *data, size_t len);
/* The same, and the body's payload (chunk framing and trailers left out)
 * handed to fn as it goes by (a client reading a chunked stream). */
ssize_t sf_h1_body_payload(struct sf_h1_body *b, const char *data, size_t len,
                           void (*fn)(void *arg, const char *p, size_t n), void *arg);

#endif
