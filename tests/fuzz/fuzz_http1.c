/* libFuzzer target: the HTTP/1.1 head parser and body framer the E2B gateway
 * relays with (common/base/http1.h; outside input: any client on the
 * gateway's port, and what a worker answers). The first byte picks request
 * or response and how the rest is split into reads. Properties: a head
 * parsed from a prefix is the same as from the whole buffer (the parser
 * never reads past what it was given, never claims a head longer than the
 * data); pointers stay inside the buffer; the framer counts the same bytes
 * whether fed at once or in pieces, and never more than it was given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const char *buf, size_t len, const char *p, size_t n)
{
    if (p && (p < buf || p + n > buf + len)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    bool response = data[0] & 1;
    size_t step = (size_t)(data[0] >> 1) % 32 + 1;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1, max = 4096;
    struct sf_h1_head h, h2;
    const char *why;
    int rc = response ? sf_h1_parse_response(buf, len, max, &h, &why)
                      : sf_h1_parse_request(buf, len, max, &h, &why);
    if (rc < 0 && !why) abort();
    if (rc != 1) return 0;
    if (h.len > len || h.len > max || h.nh > SF_H1_MAX_HEADERS) abort();
    inside(buf, len, h.method, h.mlen);
    inside(buf, len, h.target, h.tlen);
    for (size_t i = 0; i < h.nh; i++) {
        inside(buf, h.len, h.h[i].name, h.h[i].nlen);
        inside(buf, h.len, h.h[i].value, h.h[i].vlen);
    }
    /* The head alone parses the same. */
    int rc2 = response ? sf_h1_parse_response(buf, h.len, max, &h2, &why)
                       : sf_h1_parse_request(buf, h.len, max, &h2, &why);
    if (rc2 != 1 || h2.len != h.len || h2.nh != h.nh || h2.status != h.status) abort();

    struct sf_h1_body a, b;
    if (response) {
        sf_h1_body_response(&a, &h, false);
    } else if (sf_h1_body_request(&a, &h, &why) < 0) {
        return 0;
    }
    b = a;
    const char *body = buf + h.len;
    size_t blen = len - h.len;
    ssize_t whole = sf_h1_body_feed(&a, body, blen);
    if (whole > (ssize_t)blen) abort();
    size_t got = 0;
    bool bad = false;
    for (size_t off = 0; off < blen && !b.done; off += step) {
        size_t n = off + step <= blen ? step : blen - off;
        ssize_t k = sf_h1_body_feed(&b, body + off, n);
        if (k < 0) {
            bad = true;
            break;
        }
        if ((size_t)k > n || ((size_t)k < n && !b.done)) abort();
        got += (size_t)k;
    }
    if (whole < 0) {
        if (!bad) abort();
    } else if (bad || got != (size_t)whole || a.done != b.done) {
        abort();
    }
    return 0;
}
