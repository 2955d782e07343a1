/* The Prometheus registry's text format and the HTTP server that serves it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"
#include "metrics.h"

static void expect_line(const char *text, const char *line)
{
    if (!strstr(text, line)) fail_msg("missing line '%s' in:\n%s", line, text);
}

static void counters_gauges_histograms_render(void **state)
{
    (void)state;
    struct sf_metrics *m = sf_metrics_new();
    struct sf_counter *ok = sf_metrics_counter(m, "sf_tasks_total", "Tasks finished.", "queue=\"q\",status=\"ok\"");
    struct sf_counter *bad = sf_metrics_counter(m, "sf_tasks_total", NULL, "queue=\"q\",status=\"error\"");
    assert_ptr_equal(ok, sf_metrics_counter(m, "sf_tasks_total", NULL, "queue=\"q\",status=\"ok\""));
    sf_counter_add(ok, 3);
    sf_counter_inc(bad);
    struct sf_gauge *g = sf_metrics_gauge(m, "sf_inflight", "In flight.", NULL);
    sf_gauge_set(g, 5);
    sf_gauge_add(g, -2);
    double b[] = { 0.1, 1 };
    struct sf_hist *h = sf_metrics_hist(m, "sf_dur_seconds", "Durations.", "queue=\"q\"", b, 2);
    sf_hist_observe(h, 0.05);
    sf_hist_observe(h, 0.5);
    sf_hist_observe(h, 7);
    struct sf_buf out = {0};
    sf_metrics_render(m, &out);
    expect_line(out.data, "# HELP sf_tasks_total Tasks finished.\n# TYPE sf_tasks_total counter\n");
    expect_line(out.data, "sf_tasks_total{queue=\"q\",status=\"ok\"} 3\n");
    expect_line(out.data, "sf_tasks_total{queue=\"q\",status=\"error\"} 1\n");
    expect_line(out.data, "# TYPE sf_inflight gauge\nsf_inflight 3\n");
    expect_line(out.data, "sf_dur_seconds_bucket{queue=\"q\",le=\"0.1\"} 1\n");
    expect_line(out.data, "sf_dur_seconds_bucket{queue=\"q\",le=\"1\"} 2\n");
    expect_line(out.data, "sf_dur_seconds_bucket{queue=\"q\",le=\"+Inf\"} 3\n");
    expect_line(out.data, "sf_dur_seconds_sum{queue=\"q\"} 7.550000\n");
    expect_line(out.data, "sf_dur_seconds_count{queue=\"q\"} 3\n");
    expect_line(out.data, "process_resident_memory_bytes ");
    sf_buf_free(&out);
    sf_metrics_free(m);
}

static void metrics_handler(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    (void)req;
    struct sf_buf b = {0};
    sf_metrics_render(arg, &b);
    resp->content_type = "text/plain; version=0.0.4";
    resp->body = sf_buf_steal(&b, &resp->len);
}

static void echo_handler(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    (void)arg;
    const char *who = sf_http_query(req, "who");
    char *s = sf_xasprintf("%s %s %s %s", req->method, req->path, who ? who : "-", req->body);
    sf_http_reply(resp, 201, "text/plain", s);
    free(s);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    sf_buf_append(arg, p, size * n);
    return size * n;
}

static long fetch(int port, const char *path, const char *post, struct sf_buf *body)
{
    char url[256];
    long code = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

static void http_serves_routes_404_and_413(void **state)
{
    (void)state;
    char err[256];
    struct sf_metrics *m = sf_metrics_new();
    sf_counter_add(sf_metrics_counter(m, "sf_x_total", "X.", NULL), 42);
    struct sf_http *h = sf_http_new(&(struct sf_http_limits){ .max_body_kb = 1 });
    sf_http_route(h, "GET", "/metrics", metrics_handler, m);
    sf_http_route(h, NULL, "/echo/", echo_handler, NULL);
    assert_int_equal(sf_http_listen(h, "127.0.0.1:0", err, sizeof(err)), 0);
    int port = sf_http_port(h);
    assert_true(port > 0);

    struct sf_buf b = {0};
    assert_int_equal(fetch(port, "/metrics", NULL, &b), 200);
    expect_line(b.data, "sf_x_total 42\n");
    sf_buf_free(&b);
    assert_int_equal(fetch(port, "/echo/a?who=me", "hello", &b), 201);
    assert_string_equal(b.data, "POST /echo/a me hello");
    sf_buf_free(&b);
    assert_int_equal(fetch(port, "/nope", NULL, &b), 404);
    sf_buf_free(&b);
    assert_int_equal(fetch(port, "/metrics/x", NULL, &b), 404);   /* exact route */
    sf_buf_free(&b);
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(fetch(port, "/echo/", big, &b), 413);
    sf_buf_free(&b);
    sf_http_free(h);
    sf_metrics_free(m);
}

static void http_rejects_bad_addresses(void **state)
{
    (void)state;
    char err[256];
    struct sf_http *h = sf_http_new(NULL);
    assert_int_equal(sf_http_listen(h, "nonsense", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not HOST:PORT"));
    assert_int_equal(sf_http_listen(h, "127.0.0.1:99999", err, sizeof(err)), -EINVAL);
    sf_http_free(h);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_gauges_histograms_render),
        cmocka_unit_test(http_serves_routes_404_and_413),
        cmocka_unit_test(http_rejects_bad_addresses),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
