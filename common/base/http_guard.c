/* common/base/http_guard.c: see http_guard.h. Each connection is a small
 * record on a list under one mutex, with the deadline of the phase it is in
 * (head, body; none while handled). The watchdog thread sleeps until the
 * earliest deadline and shuts down the sockets that passed theirs;
 * libmicrohttpd sees end-of-file and closes the connection through its
 * usual path, which notifies CLOSED (the record goes) before it closes the
 * fd, so the watchdog never touches a descriptor that was reused. */
#include "http_guard.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct guard_conn {
    struct guard_conn *prev, *next;
    int fd;
    int64_t deadline;           /* sf_now_ms(); 0 = none */
};

struct sf_http_guard {
    struct sf_http_limits lim;
    size_t max_body, max_total;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct guard_conn conns;    /* list head (sentinel) */
    size_t buffered;            /* body bytes reserved, all requests */
    int64_t next_wake;
    bool stop;
    pthread_t watchdog;
    struct sf_http_guard_stats stats;
};

void sf_http_limits_fill(struct sf_http_limits *l)
{
    if (l->max_conns <= 0) l->max_conns = 256;
    if (l->max_conns_per_ip <= 0) l->max_conns_per_ip = 32;
    if (l->header_timeout_s <= 0) l->header_timeout_s = 10;
    if (l->body_timeout_s <= 0) l->body_timeout_s = 60;
    if (l->idle_timeout_s <= 0) l->idle_timeout_s = 30;
    if (l->max_body_kb <= 0) l->max_body_kb = 1024;
    if (l->max_body_total_kb <= 0) l->max_body_total_kb = 4 * l->max_body_kb;
    if (l->max_body_total_kb < l->max_body_kb) l->max_body_total_kb = l->max_body_kb;
}

/* Caller holds mu. Wakes the watchdog when this deadline comes first. */
static void set_deadline(struct sf_http_guard *g, struct guard_conn *gc, int64_t at)
{
    gc->deadline = at;
    if (at && at < g->next_wake) pthread_cond_signal(&g->cv);
}

static void *watchdog_main(void *arg)
{
    struct sf_http_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        int64_t now = sf_now_ms(), next = now + 60000;
        for (struct guard_conn *gc = g->conns.next; gc != &g->conns; gc = gc->next) {
            if (!gc->deadline) continue;
            if (now >= gc->deadline) {
                atomic_fetch_add(&g->stats.cut_slow, 1);   /* before the peer can see it */
                gc->deadline = 0;
                shutdown(gc->fd, SHUT_RDWR);
            } else if (gc->deadline < next) {
                next = gc->deadline;
            }
        }
        g->next_wake = next;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = next - now;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct sf_http_guard *g = cls;
    struct guard_conn *gc = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = sf_mhd_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        gc = sf_xcalloc(1, sizeof(*gc));
        gc->fd = ci ? ci->connect_fd : -1;
        pthread_mutex_lock(&g->mu);
        gc->next = g->conns.next;
        gc->prev = &g->conns;
        gc->next->prev = gc;
        g->conns.next = gc;
        if (gc->fd >= 0) set_deadline(g, gc, sf_now_ms() + g->lim.header_timeout_s * 1000);
        pthread_mutex_unlock(&g->mu);
        *socket_context = gc;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && gc) {
        pthread_mutex_lock(&g->mu);
        gc->prev->next = gc->next;
        gc->next->prev = gc->prev;
        pthread_mutex_unlock(&g->mu);
        free(gc);
        *socket_context = NULL;
    }
}

static struct guard_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = sf_mhd_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

struct sf_http_guard *sf_http_guard_new(const struct sf_http_limits *l)
{
    struct sf_http_guard *g = sf_xcalloc(1, sizeof(*g));
    pthread_condattr_t ca;
    if (l) g->lim = *l;
    sf_http_limits_fill(&g->lim);
    g->max_body = (size_t)g->lim.max_body_kb << 10;
    g->max_total = (size_t)g->lim.max_body_total_kb << 10;
    g->conns.next = g->conns.prev = &g->conns;
    g->next_wake = INT64_MAX;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&g->watchdog, NULL, watchdog_main, g);
    if (rc != 0) {
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        free(g);
        errno = rc;
        return NULL;
    }
    return g;
}

size_t sf_http_guard_options(struct sf_http_guard *g, struct MHD_OptionItem *opts, size_t cap)
{
    const struct MHD_OptionItem mine[SF_HTTP_GUARD_NOPTS] = {
        { MHD_OPTION_CONNECTION_LIMIT, g->lim.max_conns, NULL },
        { MHD_OPTION_PER_IP_CONNECTION_LIMIT, g->lim.max_conns_per_ip, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, g->lim.idle_timeout_s, NULL },
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32 << 10, NULL },
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, g },
    };
    size_t n = cap < SF_HTTP_GUARD_NOPTS ? cap : SF_HTTP_GUARD_NOPTS;
    memcpy(opts, mine, n * sizeof(*opts));
    return n;
}

/* Reserve n more bytes of the total: false when it is full. Holds mu. */
static bool reserve(struct sf_http_guard *g, struct sf_http_guard_req *rq, size_t n)
{
    if (g->buffered + n > g->max_total) return false;
    g->buffered += n;
    rq->reserved += n;
    return true;
}

int sf_http_guard_begin(struct sf_http_guard *g, struct MHD_Connection *c,
                        struct sf_http_guard_req *rq, size_t max_body)
{
    const char *cl = sf_mhd_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long declared = 0;
    int status = 0;
    if (!max_body || max_body > g->max_body) max_body = g->max_body;
    if (cl) {
        char *end;
        errno = 0;
        declared = strtoull(cl, &end, 10);
        if (errno || end == cl) declared = ULLONG_MAX;   /* libmicrohttpd refuses these first */
    }
    rq->conn = conn_of(c);
    rq->begun = 1;
    if (declared > max_body) {
        atomic_fetch_add(&g->stats.too_large, 1);
        return 413;
    }
    pthread_mutex_lock(&g->mu);
    if (!reserve(g, rq, (size_t)declared)) {
        atomic_fetch_add(&g->stats.busy, 1);
        status = 503;
    }
    if (rq->conn) set_deadline(g, rq->conn, sf_now_ms() + g->lim.body_timeout_s * 1000);
    pthread_mutex_unlock(&g->mu);
    rq->max = max_body;
    return status;
}

int sf_http_guard_body(struct sf_http_guard *g, struct sf_http_guard_req *rq, size_t n)
{
    int rc = 0;
    rq->received += n;
    if (rq->received > rq->max) {
        atomic_fetch_add(&g->stats.too_large, 1);
        return -EFBIG;
    }
    if (rq->received <= rq->reserved) return 0;
    pthread_mutex_lock(&g->mu);
    if (!reserve(g, rq, rq->received - rq->reserved)) {
        atomic_fetch_add(&g->stats.busy, 1);
        rc = -ENOSPC;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void sf_http_guard_stream(struct sf_http_guard *g, struct MHD_Connection *c,
                          struct sf_http_guard_req *rq)
{
    rq->conn = conn_of(c);
    rq->begun = 1;
    rq->max = SIZE_MAX;
    sf_http_guard_ready(g, rq);
}

void sf_http_guard_ready(struct sf_http_guard *g, struct sf_http_guard_req *rq)
{
    if (!rq->conn) return;
    pthread_mutex_lock(&g->mu);
    rq->conn->deadline = 0;
    pthread_mutex_unlock(&g->mu);
}

void sf_http_guard_end(struct sf_http_guard *g, struct MHD_Connection *c, struct sf_http_guard_req *rq)
{
    struct guard_conn *gc = rq->conn ? rq->conn : conn_of(c);
    pthread_mutex_lock(&g->mu);
    g->buffered -= rq->reserved;
    rq->reserved = 0;
    /* Kept alive: the next request's head is due like a new connection's. */
    if (gc) set_deadline(g, gc, sf_now_ms() + g->lim.header_timeout_s * 1000);
    pthread_mutex_unlock(&g->mu);
    rq->conn = NULL;
}

const struct sf_http_guard_stats *sf_http_guard_stats(const struct sf_http_guard *g) { return &g->stats; }
size_t sf_http_guard_max_body(const struct sf_http_guard *g) { return g->max_body; }

void sf_http_guard_free(struct sf_http_guard *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->watchdog, NULL);
    /* The daemon is stopped: every connection was notified CLOSED. */
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
