/* tests/unit/test_http1.c: the HTTP/1.1 head parser and body framer the E2B
 * gateway relays with — heads split across reads, every smuggling shape
 * refused (TE+CL, two lengths, space before colon, folded lines, bare LF/CR,
 * control bytes, codings other than chunked), and the framer finding where
 * a body ends (length, chunks with extensions and trailers, the
 * connection's end) fed whole or a byte at a time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http1.h"
#include "util.h"

static int req(const char *s, struct sf_h1_head *h)
{
    const char *why;
    return sf_h1_parse_request(s, strlen(s), 4096, h, &why);
}

static void parses_a_request_head(void **state)
{
    (void)state;
    struct sf_h1_head h;
    const char *s = "\r\nPOST /files?path=/a HTTP/1.1\r\nHost: 49983-iabc.x\r\n"
                    "Content-Length:  5 \r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nhello";
    assert_int_equal(req(s, &h), 1);
    assert_int_equal(h.len, strlen(s) - 5);
    assert_int_equal(h.mlen, 4);
    assert_memory_equal(h.method, "POST", 4);
    assert_int_equal(h.tlen, strlen("/files?path=/a"));
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.content_length, 5);
    assert_true(h.keep_alive && h.conn_upgrade && h.upgrade && !h.conn_close);
    char v[64];
    assert_true(sf_h1_get(&h, "host", v, sizeof(v)));
    assert_string_equal(v, "49983-iabc.x");
    assert_true(sf_h1_get(&h, "CONTENT-LENGTH", v, sizeof(v)));
    assert_string_equal(v, "5");                     /* blanks around the value trimmed */
    assert_null(sf_h1_find(&h, "X-Missing"));
}

static void waits_for_more_and_bounds_the_head(void **state)
{
    (void)state;
    struct sf_h1_head h;
    const char *why;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t n = 0; n < strlen(s); n++)
        assert_int_equal(sf_h1_parse_request(s, n, 4096, &h, &why), 0);
    assert_int_equal(sf_h1_parse_request(s, strlen(s), 4096, &h, &why), 1);
    assert_int_equal(sf_h1_parse_request(s, strlen(s), 20, &h, &why), -E2BIG);
    char big[4096];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    assert_int_equal(sf_h1_parse_request(big, sizeof(big), 1024, &h, &why), -E2BIG);
    /* more headers than the parser keeps */
    char many[8192] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < SF_H1_MAX_HEADERS + 1; i++) strcat(many, "X-A: b\r\n");
    strcat(many, "\r\n");
    assert_int_equal(sf_h1_parse_request(many, strlen(many), sizeof(many), &h, &why), -E2BIG);
}

static void refuses_what_two_parsers_could_read_differently(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",                       /* space before colon */
        "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",                   /* folded */
        "GET / HTTP/1.1\nHost: a\r\n\r\n",                          /* bare LF */
        "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",                  /* bare CR */
        "GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",                    /* control byte */
        "GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "G@T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty\r\n\r\n",
    };
    struct sf_h1_head h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = req(bad[i], &h);
        if (rc != -EINVAL) fail_msg("accepted: %s", bad[i]);
    }
    struct sf_h1_body b;
    const char *why;
    assert_int_equal(req("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", &h), 1);
    assert_int_equal(sf_h1_body_request(&b, &h, &why), -EINVAL);
    assert_int_equal(req("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &h), 1);
    assert_int_equal(sf_h1_body_request(&b, &h, &why), -ENOTSUP);
    assert_int_equal(req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", &h), 1);
    assert_int_equal(sf_h1_body_request(&b, &h, &why), -ENOTSUP);
    assert_int_equal(req("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h), 1);
    assert_int_equal(sf_h1_body_request(&b, &h, &why), 0);
    assert_int_equal(b.kind, SF_H1_BODY_CHUNKED);
}

/* Count a body fed whole, then byte by byte; both must agree. */
static ssize_t frame(struct sf_h1_body start, const char *s, bool *done)
{
    struct sf_h1_body a = start, b = start;
    ssize_t whole = sf_h1_body_feed(&a, s, strlen(s)), got = 0;
    for (size_t i = 0; i < strlen(s) && !b.done; i++) {
        ssize_t k = sf_h1_body_feed(&b, s + i, 1);
        if (k < 0) {
            got = k;
            break;
        }
        got += k;
    }
    assert_int_equal(whole, got);
    assert_int_equal(a.done, b.done);
    *done = a.done;
    return whole;
}

static void collect(void *arg, const char *p, size_t n)
{
    sf_buf_append(arg, p, n);
}

static void frames_chunked_bodies(void **state)
{
    (void)state;
    struct sf_h1_head h;
    struct sf_h1_body b;
    const char *why;
    bool done;
    assert_int_equal(req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &h), 1);
    assert_int_equal(sf_h1_body_request(&b, &h, &why), 0);
    const char *body = "5;name=val\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
    char s[256];
    snprintf(s, sizeof(s), "%sGET / HTTP/1.1\r\n\r\n", body);
    assert_int_equal(frame(b, s, &done), (ssize_t)strlen(body));
    assert_true(done);
    /* the payload, chunk framing and trailers left out */
    struct sf_buf pay = { 0 };
    struct sf_h1_body p = b;
    assert_int_equal(sf_h1_body_payload(&p, s, strlen(s), collect, &pay), (ssize_t)strlen(body));
    assert_int_equal(pay.len, 15);
    assert_memory_equal(pay.data, "hello0123456789", 15);
    sf_buf_free(&pay);
    assert_int_equal(frame(b, "5\r\nhel", &done), 6);        /* not done yet */
    assert_false(done);
    assert_int_equal(frame(b, "zz\r\n", &done), -EINVAL);
    assert_int_equal(frame(b, "5\r\nhelloXX", &done), -EINVAL);    /* no CRLF after the data */
    assert_int_equal(frame(b, "1000000000000000\r\n", &done), -EINVAL);   /* absurd size */
    assert_int_equal(frame(b, "\r\n", &done), -EINVAL);            /* no digits */
}

static void frames_responses(void **state)
{
    (void)state;
    struct sf_h1_head h;
    struct sf_h1_body b;
    const char *why;
    bool done;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    assert_int_equal(sf_h1_parse_response(ok, strlen(ok), 4096, &h, &why), 1);
    assert_int_equal(h.status, 200);
    sf_h1_body_response(&b, &h, false);
    assert_int_equal(frame(b, "abcdef", &done), 3);
    assert_true(done);
    sf_h1_body_response(&b, &h, true);                        /* to a HEAD */
    assert_int_equal(b.kind, SF_H1_BODY_NONE);
    const char *eof = "HTTP/1.1 200 OK\r\n\r\n";
    assert_int_equal(sf_h1_parse_response(eof, strlen(eof), 4096, &h, &why), 1);
    sf_h1_body_response(&b, &h, false);
    assert_int_equal(b.kind, SF_H1_BODY_EOF);
    assert_int_equal(sf_h1_body_feed(&b, "anything", 8), 8);
    assert_false(b.done);
    static const char *none[] = { "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                                  "HTTP/1.1 304 Not Modified\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n",
                                  "HTTP/1.1 101 Switching Protocols\r\n\r\n" };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(sf_h1_parse_response(none[i], strlen(none[i]), 4096, &h, &why), 1);
        sf_h1_body_response(&b, &h, false);
        assert_int_equal(b.kind, SF_H1_BODY_NONE);
    }
    const char *bad = "HTTP/1.1 99 Odd\r\n\r\n";
    assert_int_equal(sf_h1_parse_response(bad, strlen(bad), 4096, &h, &why), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_request_head),
        cmocka_unit_test(waits_for_more_and_bounds_the_head),
        cmocka_unit_test(refuses_what_two_parsers_could_read_differently),
        cmocka_unit_test(frames_chunked_bodies),
        cmocka_unit_test(frames_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
