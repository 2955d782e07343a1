/* Callbacks without a network: HMAC-SHA256 against RFC 4231, the signature
 * format, the address classifier and allowlist, the retry schedule,
 * Retry-After, status verdicts, the spec validation (in a task too) and the
 * delivery record round trip. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "callback.h"
#include "callback_net.h"
#include "hmac.h"
#include "task.h"

/* --- HMAC ------------------------------------------------------------------- */

static void unhex(const char *hex, uint8_t *out, size_t *n)
{
    *n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[(*n)++] = (uint8_t)v;
    }
}

static void check_vector(const char *key_hex, const char *data_hex, const char *mac_hex, size_t trunc)
{
    uint8_t key[200], data[200], mac[SF_HMAC_SHA256_LEN];
    size_t kn, dn;
    char hex[2 * SF_HMAC_SHA256_LEN + 1];
    unhex(key_hex, key, &kn);
    unhex(data_hex, data, &dn);
    const void *parts[] = { data };
    size_t lens[] = { dn };
    assert_int_equal(sf_hmac_sha256(key, kn, parts, lens, 1, mac), 0);
    sf_hmac_hex(mac, trunc, hex);
    assert_string_equal(hex, mac_hex);
}

static char *rep(const char *unit, int times)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)times + 1);
    for (int i = 0; i < times; i++) memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)times] = '\0';
    return s;
}

static void hmac_rfc4231_vectors(void **state)
{
    (void)state;
    /* Test cases 1, 2, 3, 4, 5 (truncated to 128 bits), 6 and 7. */
    char *k1 = rep("0b", 20), *k3 = rep("aa", 20), *d3 = rep("dd", 50), *d4 = rep("cd", 50);
    char *k5 = rep("0c", 20), *k6 = rep("aa", 131);
    check_vector(k1, "4869205468657265",
                 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32);
    check_vector("4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
                 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32);
    check_vector(k3, d3, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32);
    check_vector("0102030405060708090a0b0c0d0e0f10111213141516171819", d4,
                 "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32);
    check_vector(k5, "546573742057697468205472756e636174696f6e", "a3b6167473100ee06e0c796c2955552b", 16);
    check_vector(k6, "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
                 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32);
    check_vector(k6, "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
                 "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32);
    free(k1); free(k3); free(d3); free(d4); free(k5); free(k6);
}

static void signature_is_over_timestamp_dot_body(void **state)
{
    (void)state;
    char sig[80], sig2[80], hex[65];
    uint8_t mac[32];
    const char *body = "{\"status\":\"ok\"}";
    const void *parts[] = { "1700000000.{\"status\":\"ok\"}" };
    size_t lens[] = { strlen(parts[0]) };
    assert_int_equal(sf_callback_sign("s3cret", 6, 1700000000, body, strlen(body), sig, sizeof(sig)), 0);
    assert_int_equal(sf_hmac_sha256("s3cret", 6, parts, lens, 1, mac), 0);
    sf_hmac_hex(mac, 32, hex);
    assert_memory_equal(sig, "v1=", 3);
    assert_string_equal(sig + 3, hex);
    /* A different body or timestamp gives a different signature. */
    assert_int_equal(sf_callback_sign("s3cret", 6, 1700000001, body, strlen(body), sig2, sizeof(sig2)), 0);
    assert_string_not_equal(sig, sig2);
    assert_int_equal(sf_callback_sign("s3cret", 6, 1700000000, "{}", 2, sig2, sizeof(sig2)), 0);
    assert_string_not_equal(sig, sig2);
    assert_int_equal(sf_callback_sign("s3cret", 6, 1, "{}", 2, sig2, 20), -ENOSPC);
}

/* --- address policy ------------------------------------------------------------ */

static int check_host(const struct sf_callback_allow *a, const char *host, const char *ip, char *why)
{
    struct sockaddr_in s4 = { .sin_family = AF_INET };
    inet_pton(AF_INET, ip, &s4.sin_addr);
    return sf_callback_net_check(a, host, (struct sockaddr *)&s4, why, 300);
}

static void allowlist_decides(void **state)
{
    (void)state;
    struct sf_callback_allow none = {0}, lst = {0}, star = {0}, bad = {0};
    char why[300], err[200];
    sf_callback_net_allow_done(&none);
    /* No list: public yes, loopback no, with a reason that says how to allow it. */
    assert_int_equal(check_host(&none, "example.com", "93.184.216.34", why), 0);
    assert_int_equal(check_host(&none, "localhost", "127.0.0.1", why), -EACCES);
    assert_non_null(strstr(why, "loopback"));
    assert_non_null(strstr(why, "--callback-allow"));
    assert_int_equal(check_host(&none, "meta", "169.254.169.254", why), -EACCES);
    /* A list: only what is listed, at any address. */
    assert_int_equal(sf_callback_net_allow_add(&lst, " 127.0.0.1, Hooks.Internal ,[::1]", err, sizeof(err)), 0);
    sf_callback_net_allow_done(&lst);
    assert_int_equal(check_host(&lst, "127.0.0.1", "127.0.0.1", why), 0);
    assert_int_equal(check_host(&lst, "hooks.internal", "10.0.0.5", why), 0);
    assert_true(sf_callback_net_listed(&lst, "0:0::1"));
    assert_int_equal(check_host(&lst, "example.com", "93.184.216.34", why), -EACCES);
    assert_non_null(strstr(why, "not in the callback allowlist"));
    assert_int_equal(check_host(&lst, "other", "127.0.0.1", why), -EACCES);
    /* "*" adds every public host back. */
    assert_int_equal(sf_callback_net_allow_add(&star, "*,10.0.0.7", err, sizeof(err)), 0);
    sf_callback_net_allow_done(&star);
    assert_int_equal(check_host(&star, "example.com", "93.184.216.34", why), 0);
    assert_int_equal(check_host(&star, "10.0.0.7", "10.0.0.7", why), 0);
    assert_int_equal(check_host(&star, "10.0.0.8", "10.0.0.8", why), -EACCES);
    assert_int_equal(sf_callback_net_allow_add(&bad, "good.host,bad host/x", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad host/x"));
    sf_callback_net_allow_clear(&none);
    sf_callback_net_allow_clear(&lst);
    sf_callback_net_allow_clear(&star);
    sf_callback_net_allow_clear(&bad);
}

/* --- retries ------------------------------------------------------------------- */

static void backoff_schedule_spans_about_a_day(void **state)
{
    (void)state;
    static const int64_t nominal[] = { 10000, 30000, 90000, 270000, 810000, 2430000, 7290000,
                                       21870000, 65610000 };
    int64_t total_hi = 0, total_lo = 0;
    for (int n = 1; n <= 9; n++) {
        int64_t hi = sf_callback_backoff_ms(0, n, 0);            /* rnd 0: 100 % */
        int64_t lo = sf_callback_backoff_ms(0, n, UINT32_MAX);   /* 80 % */
        assert_int_equal(hi, nominal[n - 1]);
        assert_int_equal(lo, nominal[n - 1] * 8 / 10);
        int64_t mid = sf_callback_backoff_ms(0, n, 0x80000000u);
        assert_true(mid > lo && mid < hi);
        total_hi += hi;
        total_lo += lo;
    }
    /* 10 attempts: 9 waits between 21.9 h and 27.3 h. */
    assert_true(total_hi > 27 * 3600000LL && total_hi < 28 * 3600000LL);
    assert_true(total_lo > 21 * 3600000LL && total_lo < 22 * 3600000LL);
    assert_int_equal(sf_callback_backoff_ms(100, 3, 0), 900);
    assert_true(sf_callback_backoff_ms(1000, 200, 0) <= ((int64_t)1 << 40));
}

static void retry_after_parses_seconds_and_dates(void **state)
{
    (void)state;
    int64_t ms = -1, now = 784111777000LL;    /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(sf_callback_retry_after_ms("120", now, &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(sf_callback_retry_after_ms(" 0 ", now, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(sf_callback_retry_after_ms("99999999999", now, &ms), 0);
    assert_int_equal(ms, SF_CALLBACK_RETRY_AFTER_MAX_MS);
    assert_int_equal(sf_callback_retry_after_ms("Sun, 06 Nov 1994 08:50:07 GMT", now, &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(sf_callback_retry_after_ms("Sunday, 06-Nov-94 08:51:37 GMT", now, &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(sf_callback_retry_after_ms("Sun Nov  6 08:49:47 1994", now, &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(sf_callback_retry_after_ms("Sun, 06 Nov 1994 08:00:00 GMT", now, &ms), 0);
    assert_int_equal(ms, 0);                      /* in the past: now */
    assert_int_equal(sf_callback_retry_after_ms("soon", now, &ms), -EINVAL);
    assert_int_equal(sf_callback_retry_after_ms("", now, &ms), -EINVAL);
    assert_int_equal(sf_callback_retry_after_ms("12abc", now, &ms), -EINVAL);
    assert_int_equal(sf_callback_retry_after_ms("-5", now, &ms), -EINVAL);
}

static void status_verdicts(void **state)
{
    (void)state;
    assert_int_equal(sf_callback_verdict_for_status(200), SF_CALLBACK_DELIVERED);
    assert_int_equal(sf_callback_verdict_for_status(204), SF_CALLBACK_DELIVERED);
    assert_int_equal(sf_callback_verdict_for_status(500), SF_CALLBACK_RETRY);
    assert_int_equal(sf_callback_verdict_for_status(503), SF_CALLBACK_RETRY);
    assert_int_equal(sf_callback_verdict_for_status(429), SF_CALLBACK_RETRY);
    assert_int_equal(sf_callback_verdict_for_status(408), SF_CALLBACK_RETRY);
    assert_int_equal(sf_callback_verdict_for_status(400), SF_CALLBACK_GIVE_UP);
    assert_int_equal(sf_callback_verdict_for_status(404), SF_CALLBACK_GIVE_UP);
    assert_int_equal(sf_callback_verdict_for_status(301), SF_CALLBACK_GIVE_UP);
}

/* --- the spec, in a task -------------------------------------------------------- */

#define TASK "{\"v\":1,\"id\":\"t1\",\"run_id\":\"r\",\"step\":\"s\",\"run\":\"cat\",\"callback\":"

static void expect_task_reject(const char *cb, const char *reason)
{
    char msg[1024], err[512] = "";
    snprintf(msg, sizeof(msg), TASK "%s}", cb);
    struct sf_task *t = sf_task_decode(msg, strlen(msg), err, sizeof(err));
    if (t) fail_msg("accepted callback %s", cb);
    if (!strstr(err, reason)) fail_msg("reason '%s' lacks '%s' (callback %s)", err, reason, cb);
}

static void task_callback_validated_and_round_trips(void **state)
{
    (void)state;
    char err[512];
    const char *m = TASK "{\"url\":\"https://hooks.example.com/x?y=1\",\"headers\":{\"X-Token\":\"abc\"},"
                         "\"secret_ref\":\"HOOKS_1\"}}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    assert_non_null(t);
    assert_non_null(t->callback);
    assert_string_equal(t->callback->url, "https://hooks.example.com/x?y=1");
    assert_string_equal(t->callback->secret_ref, "HOOKS_1");
    char *enc = sf_task_encode(t);
    struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
    assert_non_null(t2);
    assert_string_equal(t2->callback->url, t->callback->url);
    assert_true(json_equal(t2->callback->headers, t->callback->headers));
    struct sf_task *t3 = sf_task_dup(t2);
    assert_string_equal(t3->callback->secret_ref, "HOOKS_1");
    free(enc);
    sf_task_free(t);
    sf_task_free(t2);
    sf_task_free(t3);

    expect_task_reject("\"http://x\"", "callback must be an object");
    expect_task_reject("{}", "missing string field 'url'");
    expect_task_reject("{\"url\":\"ftp://x/\"}", "http:// or https://");
    expect_task_reject("{\"url\":\"file:///etc/passwd\"}", "http:// or https://");
    expect_task_reject("{\"url\":\"https://user:pw@x/\"}", "user:password");
    expect_task_reject("{\"url\":\"not a url\"}", "http:// or https://");
    expect_task_reject("{\"url\":\"http://x/\",\"headers\":[]}", "'headers' must be an object");
    expect_task_reject("{\"url\":\"http://x/\",\"headers\":{\"A\":1}}", "header 'A' must be a string");
    expect_task_reject("{\"url\":\"http://x/\",\"headers\":{\"A\":\"v\\r\\nX-Evil: 1\"}}", "without CR, LF");
    expect_task_reject("{\"url\":\"http://x/\",\"headers\":{\"Bad Name\":\"v\"}}", "not an HTTP token");
    expect_task_reject("{\"url\":\"http://x/\",\"headers\":{\"Sandfleet-Signature\":\"v1=0\"}}", "set by sandfleet");
    expect_task_reject("{\"url\":\"http://x/\",\"headers\":{\"content-type\":\"text/plain\"}}", "set by sandfleet");
    expect_task_reject("{\"url\":\"http://x/\",\"secret_ref\":\"lower\"}", "secret_ref must be a NAME");
    expect_task_reject("{\"url\":\"http://x/\",\"secret_ref\":\"SECRET=1\"}", "secret_ref must be a NAME");
}

static void url_host_and_port(void **state)
{
    (void)state;
    char host[256];
    int port = 0;
    bool https = false;
    assert_int_equal(sf_callback_url_host("https://Hooks.Example.com/a", host, sizeof(host), &port, &https), 0);
    assert_int_equal(port, 443);
    assert_true(https);
    assert_int_equal(sf_callback_url_host("http://[::1]:8080/", host, sizeof(host), &port, &https), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_false(https);
    assert_int_equal(sf_callback_url_host("http://127.0.0.1/x", host, sizeof(host), &port, NULL), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 80);
}

static void record_round_trips(void **state)
{
    (void)state;
    char err[256];
    struct sf_callback cb = { .url = "http://h/x", .secret_ref = "K" };
    char *s = sf_callback_record_new(&cb, "task:t1:2", "task", "r", "t1", "{\"a\":\"\\u00e9\"}", 14, 1234);
    struct sf_callback_record *rec = sf_callback_record_decode(s, strlen(s), err, sizeof(err));
    assert_non_null(rec);
    assert_string_equal(rec->id, "task:t1:2");
    assert_string_equal(rec->task_id, "t1");
    assert_string_equal(rec->body, "{\"a\":\"\\u00e9\"}");
    assert_int_equal(rec->attempts, 0);
    assert_int_equal(rec->created_at, 1234);
    rec->attempts = 3;
    rec->last_error = strdup("HTTP 500");
    char *s2 = sf_callback_record_encode(rec);
    struct sf_callback_record *rec2 = sf_callback_record_decode(s2, strlen(s2), err, sizeof(err));
    assert_int_equal(rec2->attempts, 3);
    assert_string_equal(rec2->last_error, "HTTP 500");
    /* A record is re-validated: an edited one cannot carry a file:// URL. */
    const char *evil = "{\"id\":\"x\",\"url\":\"file:///etc/shadow\",\"body\":\"{}\"}";
    assert_null(sf_callback_record_decode(evil, strlen(evil), err, sizeof(err)));
    char *id = sf_callback_task_id("r:a:0", 2);
    assert_string_equal(id, "task:r:a:0:2");
    free(id);
    free(s);
    free(s2);
    sf_callback_record_free(rec);
    sf_callback_record_free(rec2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hmac_rfc4231_vectors),
        cmocka_unit_test(signature_is_over_timestamp_dot_body),
        cmocka_unit_test(allowlist_decides),
        cmocka_unit_test(backoff_schedule_spans_about_a_day),
        cmocka_unit_test(retry_after_parses_seconds_and_dates),
        cmocka_unit_test(status_verdicts),
        cmocka_unit_test(task_callback_validated_and_round_trips),
        cmocka_unit_test(url_host_and_port),
        cmocka_unit_test(record_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
