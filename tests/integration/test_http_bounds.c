/* The bounds of every HTTP listener (base/http_guard.c under base/http.c),
 * tried the way an attacker on the network would: many slow connections
 * from one address, heads and bodies trickled a byte at a time, bodies
 * declared or streamed beyond the limits, unauthenticated uploads, and a
 * handler that answers later from another thread. Raw sockets, so that
 * every byte on the wire is the test's choice. Listens on 127.0.0.1 and
 * connects from 127.0.0.2 (both loopback). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "health.h"
#include "http.h"
#include "util.h"

static atomic_int handled;

static void echo(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    (void)arg;
    atomic_fetch_add(&handled, 1);
    char *s = sf_xasprintf("%s %zu %s", req->method, req->body_len,
                           req->principal ? (const char *)req->principal : "-");
    sf_http_reply(resp, 200, NULL, s);
    free(s);
}

static int auth(void *arg, const struct sf_http_req *req, const void **principal,
                struct sf_http_resp *resp)
{
    (void)arg;
    (void)resp;
    const char *a = sf_http_header(req, "Authorization");
    if (!a) return 401;
    if (strcmp(a, "Bearer good")) return 403;
    *principal = "alice";
    return 0;
}

struct later_job {
    struct sf_http_later *l;
    pthread_t th;
};

static void *answer_later(void *arg)
{
    struct later_job *j = arg;
    usleep(300 * 1000);
    struct sf_http_resp resp = { 0 };
    sf_http_reply(&resp, 202, NULL, "later");
    sf_http_later_reply(j->l, &resp);
    return NULL;
}

static struct later_job job;

static void slow(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    (void)arg;
    (void)resp;
    job.l = sf_http_defer(req);
    pthread_create(&job.th, NULL, answer_later, &job);
}

struct srv {
    struct sf_http *h;
    struct sf_health health;
    struct sf_metrics *m;
    int port;
};

static void srv_start(struct srv *s, const struct sf_http_limits *lim)
{
    char err[256];
    memset(s, 0, sizeof(*s));
    atomic_store(&handled, 0);
    s->m = sf_metrics_new();
    sf_health_init(&s->health, 30000);
    s->h = sf_http_new(lim);
    sf_http_set_auth(s->h, auth, NULL);
    sf_health_routes(s->h, &s->health, s->m);
    sf_http_route(s->h, NULL, "/echo", echo, NULL);
    sf_http_route(s->h, NULL, "/slow", slow, NULL);
    if (sf_http_listen(s->h, "127.0.0.1:0", err, sizeof(err)) < 0) fail_msg("listen: %s", err);
    s->port = sf_http_port(s->h);
}

static void srv_stop(struct srv *s)
{
    sf_http_free(s->h);
    sf_metrics_free(s->m);
}

/* A connection from src (a 127/8 address) to the server. */
static int dial(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    inet_pton(AF_INET, src, &a.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) fail_msg("bind %s: %s", src, strerror(errno));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) fail_msg("connect: %s", strerror(errno));
    return fd;
}

static void say(int fd, const char *s)
{
    if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
        fail_msg("send: %s", strerror(errno));
}

/* Read until the peer closes or the head of a response is in: the status,
 * 0 when closed without a response, -1 after timeout_ms. The response
 * (head and what came with it) goes to buf. */
static int response(int fd, int timeout_ms, char *buf, size_t len)
{
    size_t got = 0;
    int64_t end = sf_now_ms() + timeout_ms;
    buf[0] = '\0';
    for (;;) {
        int left = (int)(end - sf_now_ms());
        struct pollfd p = { fd, POLLIN, 0 };
        if (left <= 0 || poll(&p, 1, left) == 0) return -1;
        ssize_t n = recv(fd, buf + got, len - 1 - got, 0);
        if (n <= 0) return got ? atoi(buf + 9) : 0;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            usleep(20 * 1000);                   /* the small body, if any */
            n = recv(fd, buf + got, len - 1 - got, MSG_DONTWAIT);
            if (n > 0) buf[got + (size_t)n] = '\0';
            return atoi(buf + 9);
        }
    }
}

static int request(int port, const char *src, const char *raw, char *buf, size_t len)
{
    int fd = dial(src, port);
    say(fd, raw);
    int st = response(fd, 3000, buf, len);
    close(fd);
    return st;
}

static void healthz_answers_while_one_address_holds_1100_slow_connections(void **state)
{
    (void)state;
    struct srv s;
    char buf[4096];
    static int fds[1100];
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 1400 && rl.rlim_max >= 1400) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    srv_start(&s, NULL);
    for (int i = 0; i < 1100; i++) {
        fds[i] = dial("127.0.0.2", s.port);
        say(fds[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n");    /* never finished */
    }
    int64_t t0 = sf_now_ms();
    int st = request(s.port, "127.0.0.1", "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     buf, sizeof(buf));
    int64_t took = sf_now_ms() - t0;
    assert_int_equal(st, 200);
    if (took > 1000) fail_msg("/healthz took %lld ms behind 1100 slow connections", (long long)took);
    /* The address got its share (32); the server closed the rest at once. */
    static struct pollfd pf[1100];
    static bool gone[1100];
    int closed = 0;
    for (int64_t end = sf_now_ms() + 5000; closed < 1100 - 32 && sf_now_ms() < end;) {
        for (int i = 0; i < 1100; i++) pf[i] = (struct pollfd){ gone[i] ? -1 : fds[i], POLLIN, 0 };
        if (poll(pf, 1100, 500) <= 0) continue;
        for (int i = 0; i < 1100; i++)
            if (pf[i].revents && recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT) <= 0) {
                gone[i] = true;
                closed++;
            }
    }
    assert_int_equal(closed, 1100 - 32);
    for (int i = 0; i < 1100; i++) close(fds[i]);
    srv_stop(&s);
}

static void trickled_head_is_cut_at_the_header_timeout(void **state)
{
    (void)state;
    struct srv s;
    char buf[512];
    srv_start(&s, &(struct sf_http_limits){ .header_timeout_s = 1 });
    int fd = dial("127.0.0.1", s.port);
    const char *head = "GET /healthz HTTP/1.1\r\nHost: a-very-slow-client.example\r\nX-Pad: ";
    int64_t t0 = sf_now_ms();
    int st = -1;
    for (size_t i = 0; st == -1 && sf_now_ms() - t0 < 5000; i++) {
        char c[2] = { head[i % strlen(head)], 0 };
        say(fd, i < strlen(head) ? c : "x");
        st = response(fd, 200, buf, sizeof(buf));  /* one byte every 200 ms */
    }
    int64_t took = sf_now_ms() - t0;
    assert_int_equal(st, 0);                       /* closed, no answer */
    if (took < 900 || took > 2500) fail_msg("cut after %lld ms, header timeout 1 s", (long long)took);
    assert_int_equal(atomic_load(&sf_http_stats(s.h)->cut_slow), 1);
    close(fd);
    srv_stop(&s);
}

static void trickled_body_is_cut_at_the_body_timeout(void **state)
{
    (void)state;
    struct srv s;
    char buf[512];
    srv_start(&s, &(struct sf_http_limits){ .body_timeout_s = 1 });
    int fd = dial("127.0.0.1", s.port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Length: 100\r\n\r\n");
    int64_t t0 = sf_now_ms();
    int st = -1;
    while (st == -1 && sf_now_ms() - t0 < 5000) {
        say(fd, "x");
        st = response(fd, 200, buf, sizeof(buf));
    }
    int64_t took = sf_now_ms() - t0;
    assert_int_equal(st, 0);
    if (took < 900 || took > 2500) fail_msg("cut after %lld ms, body timeout 1 s", (long long)took);
    assert_int_equal(atomic_load(&handled), 0);
    close(fd);
    srv_stop(&s);
}

static void declared_oversize_body_is_refused_before_it_is_read(void **state)
{
    (void)state;
    struct srv s;
    char buf[512];
    srv_start(&s, &(struct sf_http_limits){ .max_body_kb = 1 });
    /* No byte of the body is ever sent: the answer must not wait for it. */
    int st = request(s.port, "127.0.0.1", "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
                     "Content-Length: 1048576000\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(st, 413);
    st = request(s.port, "127.0.0.1", "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
                 "Content-Length: 1024\r\nExpect: 100-continue\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(st, 100);                     /* exactly at the limit: go on */
    assert_int_equal(atomic_load(&handled), 0);
    srv_stop(&s);
}

static void chunked_body_past_the_limit_is_cut(void **state)
{
    (void)state;
    struct srv s;
    char buf[512], chunk[600];
    srv_start(&s, &(struct sf_http_limits){ .max_body_kb = 1 });
    int fd = dial("127.0.0.1", s.port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nTransfer-Encoding: chunked\r\n\r\n");
    memset(chunk, 'y', sizeof(chunk));
    snprintf(chunk, sizeof(chunk), "200\r\n");
    memset(chunk + 5, 'y', 512);
    memcpy(chunk + 5 + 512, "\r\n", 3);
    int st = -1;
    for (int i = 0; i < 20 && st == -1; i++) {     /* 512 bytes a chunk; the third passes 1 KiB */
        say(fd, chunk);
        st = response(fd, 100, buf, sizeof(buf));
    }
    assert_int_equal(st, 0);
    assert_int_equal(atomic_load(&handled), 0);
    assert_true(atomic_load(&sf_http_stats(s.h)->too_large) >= 1);
    close(fd);
    srv_stop(&s);
}

static void bodies_beyond_the_total_wait_their_turn(void **state)
{
    (void)state;
    struct srv s;
    char buf[512];
    srv_start(&s, &(struct sf_http_limits){ .max_body_kb = 4, .max_body_total_kb = 8 });
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Length: 4096\r\n\r\n";
    int a = dial("127.0.0.1", s.port), b = dial("127.0.0.1", s.port);
    say(a, head);
    say(b, head);
    usleep(100 * 1000);                             /* both heads are in, 8 KiB reserved */
    assert_int_equal(request(s.port, "127.0.0.1", head, buf, sizeof(buf)), 503);
    assert_non_null(strstr(buf, "Retry-After: 1"));
    char body[4097];
    memset(body, 'z', 4096);
    body[4096] = '\0';
    say(a, body);
    assert_int_equal(response(a, 3000, buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "POST 4096 alice"));
    close(a);
    usleep(100 * 1000);
    int c = dial("127.0.0.1", s.port);              /* a's share is free again */
    say(c, head);
    say(c, body);
    assert_int_equal(response(c, 3000, buf, sizeof(buf)), 200);
    close(b);
    close(c);
    srv_stop(&s);
}

static void authentication_comes_before_the_body(void **state)
{
    (void)state;
    struct srv s;
    char buf[1024];
    srv_start(&s, NULL);
    int st = request(s.port, "127.0.0.1", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576000\r\n\r\n",
                     buf, sizeof(buf));
    assert_int_equal(st, 401);
    assert_non_null(strstr(buf, "WWW-Authenticate: Bearer"));
    st = request(s.port, "127.0.0.1", "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad\r\n"
                 "Content-Length: 1048576000\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(st, 403);
    st = request(s.port, "127.0.0.1", "GET /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576000\r\n\r\n",
                 buf, sizeof(buf));
    assert_int_equal(st, 404);
    assert_int_equal(atomic_load(&handled), 0);
    st = request(s.port, "127.0.0.1", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(st, 200);                     /* probes are open */
    st = request(s.port, "127.0.0.1", "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
                 "Content-Length: 5\r\n\r\nhello", buf, sizeof(buf));
    assert_int_equal(st, 200);
    assert_non_null(strstr(buf, "POST 5 alice"));
    srv_stop(&s);
}

static void a_deferred_reply_does_not_hold_the_server(void **state)
{
    (void)state;
    struct srv s;
    char buf[1024];
    srv_start(&s, NULL);
    int fd = dial("127.0.0.1", s.port);
    int64_t t0 = sf_now_ms();
    say(fd, "GET /slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n");
    usleep(50 * 1000);
    assert_int_equal(request(s.port, "127.0.0.1", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    assert_true(sf_now_ms() - t0 < 250);           /* answered while /slow waits */
    assert_int_equal(response(fd, 3000, buf, sizeof(buf)), 202);
    assert_non_null(strstr(buf, "later"));
    assert_true(sf_now_ms() - t0 >= 300);
    pthread_join(job.th, NULL);
    close(fd);
    srv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthz_answers_while_one_address_holds_1100_slow_connections),
        cmocka_unit_test(trickled_head_is_cut_at_the_header_timeout),
        cmocka_unit_test(trickled_body_is_cut_at_the_body_timeout),
        cmocka_unit_test(declared_oversize_body_is_refused_before_it_is_read),
        cmocka_unit_test(chunked_body_past_the_limit_is_cut),
        cmocka_unit_test(bodies_beyond_the_total_wait_their_turn),
        cmocka_unit_test(authentication_comes_before_the_body),
        cmocka_unit_test(a_deferred_reply_does_not_hold_the_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
