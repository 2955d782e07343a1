/* The names a connection's first bytes carry (TLS SNI, HTTP Host) and the
 * DNS messages of the sandboxes' resolver: what is read, what is refused,
 * and that cut-off input asks for more instead of guessing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dnsmsg.h"
#include "httphead.h"
#include "sniff.h"

/* A ClientHello record with one server_name entry (or none). */
static size_t client_hello(uint8_t *out, const char *sni)
{
    uint8_t body[600];
    size_t b = 0, n = sni ? strlen(sni) : 0;
    body[b++] = 3; body[b++] = 3;                       /* legacy_version */
    memset(body + b, 0x11, 32); b += 32;                 /* random */
    body[b++] = 0;                                       /* session id */
    body[b++] = 0; body[b++] = 2; body[b++] = 0x13; body[b++] = 0x01;   /* one suite */
    body[b++] = 1; body[b++] = 0;                        /* compression: null */
    size_t ext_len = sni ? 4 + 2 + 3 + n : 0;
    ext_len += 4 + 2;                                    /* a supported_versions-ish filler */
    body[b++] = (uint8_t)(ext_len >> 8); body[b++] = (uint8_t)ext_len;
    body[b++] = 0; body[b++] = 43; body[b++] = 0; body[b++] = 2; body[b++] = 3; body[b++] = 4;
    if (sni) {
        body[b++] = 0; body[b++] = 0;                    /* server_name */
        body[b++] = (uint8_t)((n + 5) >> 8); body[b++] = (uint8_t)(n + 5);
        body[b++] = (uint8_t)((n + 3) >> 8); body[b++] = (uint8_t)(n + 3);
        body[b++] = 0;                                   /* host_name */
        body[b++] = (uint8_t)(n >> 8); body[b++] = (uint8_t)n;
        memcpy(body + b, sni, n); b += n;
    }
    size_t o = 0;
    out[o++] = 0x16; out[o++] = 3; out[o++] = 1;
    out[o++] = (uint8_t)((b + 4) >> 8); out[o++] = (uint8_t)(b + 4);
    out[o++] = 1; out[o++] = 0; out[o++] = (uint8_t)(b >> 8); out[o++] = (uint8_t)b;
    memcpy(out + o, body, b);
    return o + b;
}

static enum sf_sniff sniff(const void *buf, size_t len, char *name)
{
    const char *proto;
    return sf_sniff_name(buf, len, name, 256, &proto);
}

static void tls_sni_is_read_and_cut_input_asks_for_more(void **state)
{
    (void)state;
    uint8_t hello[700];
    char name[256];
    size_t n = client_hello(hello, "API.Example.COM.");
    assert_int_equal(sniff(hello, n, name), SF_SNIFF_NAME);
    assert_string_equal(name, "api.example.com");
    for (size_t cut = 1; cut < n; cut++)
        if (sniff(hello, cut, name) != SF_SNIFF_MORE) fail_msg("cut at %zu of %zu: not MORE", cut, n);
    n = client_hello(hello, NULL);
    assert_int_equal(sniff(hello, n, name), SF_SNIFF_NONAME);
    n = client_hello(hello, "bad name");
    assert_int_equal(sniff(hello, n, name), SF_SNIFF_NONAME);
    /* A handshake record that is not a ClientHello names nothing. */
    n = client_hello(hello, "a.example");
    hello[5] = 2;
    assert_int_equal(sniff(hello, n, name), SF_SNIFF_NONAME);
    /* A length that claims more than the record: no read past the end. */
    n = client_hello(hello, "a.example");
    hello[n - 12] = 0xff;
    sniff(hello, n, name);
}

static void http_host_is_read(void **state)
{
    (void)state;
    char name[256];
    const char *get = "GET /x HTTP/1.1\r\nUser-Agent: t\r\nhost:  Example.org:8080 \r\n\r\n";
    assert_int_equal(sniff(get, strlen(get), name), SF_SNIFF_NAME);
    assert_string_equal(name, "example.org");
    assert_int_equal(sniff(get, 20, name), SF_SNIFF_MORE);
    const char *v6 = "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n";
    assert_int_equal(sniff(v6, strlen(v6), name), SF_SNIFF_NONAME);
    const char *none = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(sniff(none, strlen(none), name), SF_SNIFF_NONAME);
    const char *h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_int_equal(sniff(h2, strlen(h2), name), SF_SNIFF_NONAME);
    assert_int_equal(sniff("SSH-2.0-x\r\n", 11, name), SF_SNIFF_OTHER);
    assert_int_equal(sniff("\x00\x01", 2, name), SF_SNIFF_OTHER);
    assert_int_equal(sniff("GE", 2, name), SF_SNIFF_MORE);
    /* A head that never ends stops being worth waiting for. */
    char *big = malloc(SF_SNIFF_MAX + 10);
    memcpy(big, "GET / HTTP/1.1\r\n", 16);
    memset(big + 16, 'a', SF_SNIFF_MAX - 6);
    assert_int_equal(sniff(big, SF_SNIFF_MAX + 10, name), SF_SNIFF_NONAME);
    free(big);
}

struct got { uint32_t v4, ttl; int n; };

static void each(void *arg, uint32_t v4, uint32_t ttl)
{
    struct got *g = arg;
    g->v4 = v4;
    g->ttl = ttl;
    g->n++;
}

static void dns_questions_replies_and_answers(void **state)
{
    (void)state;
    uint8_t q[512], out[512];
    size_t n = sf_dns_query(0x1234, "pub.sandfleet.test", SF_DNS_A, q, sizeof(q));
    assert_true(n > 12);
    struct sf_dns_q dq;
    assert_int_equal(sf_dns_question(q, n, &dq), 0);
    assert_string_equal(dq.name, "pub.sandfleet.test");
    assert_int_equal(dq.qtype, SF_DNS_A);
    assert_int_equal(dq.id, 0x1234);
    size_t r = sf_dns_reply(q, &dq, SF_DNS_REFUSED, out, sizeof(out));
    assert_int_equal(r, n);
    assert_int_equal(out[3] & 0xf, SF_DNS_REFUSED);
    assert_true(out[2] & 0x80);
    /* An answer: a CNAME, then an A record whose name is compressed. */
    uint8_t a[512];
    memcpy(a, q, n);
    a[2] = 0x81; a[3] = 0x80; a[7] = 2;
    size_t o = n;
    const uint8_t cname[] = { 0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 'x', 0xc0, 12 };
    memcpy(a + o, cname, sizeof(cname)); o += sizeof(cname);
    const uint8_t arec[] = { 0xc0, (uint8_t)(n), 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 198, 51, 100, 2 };
    memcpy(a + o, arec, sizeof(arec)); o += sizeof(arec);
    struct got got = { 0, 0, 0 };
    assert_int_equal(sf_dns_answer(a, o, &dq, each, &got), SF_DNS_NOERROR);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.v4, 0xc6336402);
    assert_int_equal(got.ttl, 256);
    /* Not an answer to this question: another id, another name. */
    a[1] ^= 1;
    assert_int_equal(sf_dns_answer(a, o, &dq, each, &got), -EINVAL);
    a[1] ^= 1;
    a[13] = 'X';
    assert_int_equal(sf_dns_answer(a, o, &dq, each, &got), -EINVAL);
    /* Truncated input and pointer loops are refused, not followed. */
    for (size_t cut = 0; cut < n; cut++) assert_int_equal(sf_dns_question(q, cut, &dq), -EINVAL);
    uint8_t loop[] = { 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1 };
    assert_int_equal(sf_dns_question(loop, sizeof(loop), &dq), -EINVAL);
    assert_int_equal(sf_dns_query(1, "a..b", SF_DNS_A, q, sizeof(q)), 0);
    assert_int_equal(sf_dns_query(1, "a.b.", SF_DNS_A, q, sizeof(q)), 0);
}

static void http_heads_are_parsed_and_smuggling_refused(void **state)
{
    (void)state;
    struct sf_httphead h;
    const char *r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\nrest";
    long n = sf_httphead_parse(r, strlen(r), &h);
    assert_int_equal(n, (long)(strstr(r, "rest") - r));
    assert_true(h.response);
    assert_int_equal(h.status, 101);
    assert_true(sf_httphead_has_token(&h, "connection", "upgrade"));
    assert_false(sf_httphead_has_token(&h, "connection", "close"));
    assert_true(sf_http_str_is(sf_httphead_get(&h, "UPGRADE"), "websocket"));
    for (size_t cut = 0; cut < (size_t)n; cut++) assert_int_equal(sf_httphead_parse(r, cut, &h), 0);
    const char *q = "POST /a?b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_true(sf_httphead_parse(q, strlen(q), &h) > 0);
    assert_false(h.response);
    assert_true(sf_http_str_is(&h.method, "POST") && sf_http_str_is(&h.target, "/a?b"));
    assert_true(sf_httphead_has_token(&h, "Transfer-Encoding", "chunked"));
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",           /* bare CR */
        "HTTP/1.1 200 OK\r\n folded\r\n\r\n",            /* obsolete folding */
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",        /* space in a name */
        "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/2 200\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",         /* control character */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sf_httphead_parse(bad[i], strlen(bad[i]), &h) >= 0) fail_msg("accepted: %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_sni_is_read_and_cut_input_asks_for_more),
        cmocka_unit_test(http_host_is_read),
        cmocka_unit_test(dns_questions_replies_and_answers),
        cmocka_unit_test(http_heads_are_parsed_and_smuggling_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
