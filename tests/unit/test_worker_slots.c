/* The worker's decisions (worker/loop.c, worker/slots.c) against a broker
 * that injects faults (a mock only for that; the sandboxes are real
 * `process` ones):
 *  - slot accounting: never more deliveries held than slots, fetch asks for
 *    the free slots only, a drain finishes what it holds;
 *  - the lease of a finished task is renewed until its result is stored,
 *    while the broker refuses the result (issue 16: it used to stop at the
 *    end of the run), and a settle that cannot succeed gives up after
 *    --settle-timeout-s, leaving the delivery to its lease;
 *  - a slot that settles a task may take its next delivery in the same call
 *    (sf_completion.next): still never more held than slots, the loop
 *    renews the new delivery, and none is taken while draining;
 *  - retry decisions: a failure with attempts left is stored as the next
 *    attempt with the backoff, the last one and a rejected one are final
 *    (result + dead letter naming the reason), bad messages are
 *    dead-lettered; due retries are promoted (maintain) while running.
 * Built with the worker's loop.c, slots.c and obs.c (tests/CMakeLists.txt). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "retry.h"
#include "worker.h"

/* ---- the mock broker --------------------------------------------------------- */

#define MAX_MSGS 16
#define MAX_EVENTS 4096

struct msg {
    char *data;
    char handle[16];
    bool delivered, settled;
};

struct mock {
    struct sf_broker base;
    pthread_mutex_t mu;
    struct msg q[MAX_MSGS];
    size_t n;
    size_t held, max_held, max_asked_over_free;   /* slot accounting */
    int64_t complete_fails_until;                  /* complete -ECONNRESET before this time */
    int complete_fails, completes, maintains, heartbeats_leaving;
    bool chain;                 /* complete hands out the next message when asked */
    int chained, unasked_after_stop;   /* next deliveries given; completes without 'next' */
    /* renewals of each handle, with their time */
    struct { char handle[16]; int64_t at; } renews[MAX_EVENTS];
    size_t n_renews;
    int64_t settled_at[MAX_MSGS];
    char *results[MAX_MSGS], *dead_reasons[MAX_MSGS], *retried[MAX_MSGS];
    int64_t retry_delay[MAX_MSGS];
};

static struct msg *find(struct mock *m, const char *handle)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->q[i].handle, handle)) return &m->q[i];
    return NULL;
}

static size_t idx(struct mock *m, const char *handle) { return (size_t)(find(m, handle) - m->q); }

static void settle(struct mock *m, const char *handle)
{
    struct msg *g = find(m, handle);
    g->settled = true;
    m->held--;
    m->settled_at[g - m->q] = sf_now_ms();
}

static int m_check(struct sf_broker *b, char *err, size_t n) { (void)b; (void)err; (void)n; return 0; }

/* Under m->mu: up to max undelivered messages into out. */
static size_t deliver(struct mock *m, struct sf_delivery *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n && n < max; i++) {
        if (m->q[i].delivered) continue;
        m->q[i].delivered = true;
        out[n] = (struct sf_delivery){ .data = strdup(m->q[i].data), .len = strlen(m->q[i].data) };
        sf_strlcpy(out[n].handle, m->q[i].handle, sizeof(out[n].handle));
        if (!strcmp(m->q[i].data, "PROBLEM")) sf_strlcpy(out[n].problem, "no 'task' field", 160);
        n++;
        if (++m->held > m->max_held) m->max_held = m->held;
    }
    return n;
}

static int m_fetch(struct sf_broker *b, struct sf_delivery *out, size_t max, int block_ms, size_t *n,
                   char *err, size_t errlen)
{
    struct mock *m = (struct mock *)b;
    (void)err; (void)errlen;
    pthread_mutex_lock(&m->mu);
    /* The worker must only ask for what it has room for (its slots). */
    long slots = 2;
    if ((long)(max + m->held) > slots) m->max_asked_over_free++;
    *n = deliver(m, out, max);
    pthread_mutex_unlock(&m->mu);
    if (!*n) sf_sleep_ms(block_ms < 20 ? block_ms : 20);
    return 0;
}

static int m_renew(struct sf_broker *b, const char *const *handles, size_t n, bool *lost, char *err,
                   size_t errlen)
{
    struct mock *m = (struct mock *)b;
    (void)err; (void)errlen;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        struct msg *g = find(m, handles[i]);
        lost[i] = !g || g->settled;
        if (m->n_renews < MAX_EVENTS) {
            sf_strlcpy(m->renews[m->n_renews].handle, handles[i], 16);
            m->renews[m->n_renews++].at = sf_now_ms();
        }
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int m_complete(struct sf_broker *b, const char *handle, const struct sf_completion *c,
                      char *err, size_t errlen)
{
    struct mock *m = (struct mock *)b;
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (sf_now_ms() < m->complete_fails_until) {
        m->complete_fails++;
        sf_errf(err, errlen, "connection reset (injected)");
        rc = -ECONNRESET;
    } else {
        size_t i = idx(m, handle);
        m->completes++;
        m->results[i] = strdup(c->result);
        if (c->dead_reason) m->dead_reasons[i] = strdup(c->dead_reason);
        settle(m, handle);
        if (m->chain && c->next) m->chained += (int)deliver(m, c->next, 1);
        if (m->chain && !c->next) m->unasked_after_stop++;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_retry(struct sf_broker *b, const char *handle, const char *task, size_t len,
                   int64_t delay_ms, char *err, size_t errlen)
{
    struct mock *m = (struct mock *)b;
    (void)len; (void)err; (void)errlen;
    pthread_mutex_lock(&m->mu);
    size_t i = idx(m, handle);
    m->retried[i] = strdup(task);
    m->retry_delay[i] = delay_ms;
    settle(m, handle);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int m_dead(struct sf_broker *b, const char *handle, const char *raw, size_t len,
                  const char *reason, char *err, size_t errlen)
{
    struct mock *m = (struct mock *)b;
    (void)raw; (void)len; (void)err; (void)errlen;
    pthread_mutex_lock(&m->mu);
    m->dead_reasons[idx(m, handle)] = strdup(reason);
    settle(m, handle);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int m_heartbeat(struct sf_broker *b, const struct sf_worker_info *wi, bool leaving,
                       char *err, size_t errlen)
{
    struct mock *m = (struct mock *)b;
    (void)wi; (void)err; (void)errlen;
    pthread_mutex_lock(&m->mu);
    if (leaving) m->heartbeats_leaving++;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int m_maintain(struct sf_broker *b, char *err, size_t errlen)
{
    struct mock *m = (struct mock *)b;
    (void)err; (void)errlen;
    pthread_mutex_lock(&m->mu);
    m->maintains++;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static void m_free(struct sf_broker *b) { (void)b; }

static const struct sf_broker_ops mock_ops = {
    .scheme = "mock", .check = m_check, .fetch = m_fetch, .renew = m_renew, .complete = m_complete,
    .retry = m_retry, .dead = m_dead, .heartbeat = m_heartbeat, .maintain = m_maintain, .free = m_free,
};

static void mock_push(struct mock *m, const char *data)
{
    struct msg *g = &m->q[m->n];
    g->data = strdup(data);
    snprintf(g->handle, sizeof(g->handle), "h%zu", m->n);
    m->n++;
}

static char *task(const char *id, const char *run, const char *extra)
{
    return sf_xasprintf("{\"v\":1,\"id\":\"%s\",\"run_id\":\"r\",\"step\":\"s\",\"run\":\"%s\"%s%s}", id,
                        run, extra ? "," : "", extra ? extra : "");
}

/* ---- a worker over the mock ----------------------------------------------------- */

struct rig {
    struct mock m;
    struct worker_cfg cfg;
    struct worker w;
    struct sf_log lg;
    int sig[2];              /* stands in for the signalfd */
    pthread_t loop;
    int code;
};

static void *loop_main(void *arg)
{
    struct rig *r = arg;
    r->code = worker_loop(&r->w, r->sig[0]);
    return NULL;
}

static void rig_start(struct rig *r, long lease_ms, long settle_timeout_s)
{
    char err[256];
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->m.mu, NULL);
    r->m.base.ops = &mock_ops;
    r->m.base.url_redacted = "mock://";
    r->m.base.cfg.queue = "default";
    r->cfg = (struct worker_cfg){ .sandbox = "process", .concurrency = 2, .lease_ms = lease_ms,
                                  .grace_s = 30, .retry_base_ms = 100, .settle_timeout_s = settle_timeout_s };
    r->cfg.bf.queue = "default";
    sf_log_init(&r->lg, "worker");
    r->lg.level = SF_LOG_ERROR;
    r->w.cfg = &r->cfg;
    r->w.lg = &r->lg;
    r->w.b = &r->m.base;
    sf_strlcpy(r->w.id, "w-test", sizeof(r->w.id));
    r->w.ecfg.worker = r->w.id;
    sf_policy_defaults(&r->w.policy);
    r->w.policy.max.memory_mb = 1024;
    r->w.ecfg.policy = &r->w.policy;
    r->w.inflight = sf_xcalloc(2, sizeof(struct wjob *));
    pthread_mutex_init(&r->w.jobs_mu, NULL);
    worker_obs_init(&r->w.obs, "default", "process", 2, 30000);
    struct sf_provider_config pcfg = {0};
    r->w.prov = sf_sandbox_provider_new("process", &pcfg, err, sizeof(err));
    assert_non_null(r->w.prov);
    r->w.pool = sf_pool_new(2, worker_slot_work, &r->w);
    assert_non_null(r->w.pool);
    assert_int_equal(pipe2(r->sig, O_NONBLOCK | O_CLOEXEC), 0);
}

static void rig_run(struct rig *r) { assert_int_equal(pthread_create(&r->loop, NULL, loop_main, r), 0); }

/* Wait until every message is settled (or the time is up). */
static bool rig_wait_settled(struct rig *r, size_t n, int64_t ms)
{
    for (int64_t t0 = sf_now_ms(); sf_now_ms() - t0 < ms; sf_sleep_ms(10)) {
        size_t k = 0;
        pthread_mutex_lock(&r->m.mu);
        for (size_t i = 0; i < r->m.n; i++) k += r->m.q[i].settled;
        pthread_mutex_unlock(&r->m.mu);
        if (k >= n) return true;
    }
    return false;
}

/* SIGTERM: drain, then the loop returns. */
static int rig_stop(struct rig *r)
{
    struct signalfd_siginfo si = { .ssi_signo = 15 };
    assert_int_equal(write(r->sig[1], &si, sizeof(si)), (ssize_t)sizeof(si));
    pthread_join(r->loop, NULL);
    return r->code;
}

static void rig_free(struct rig *r)
{
    sf_pool_free(r->w.pool, NULL);
    sf_sandbox_provider_free(r->w.prov);
    worker_obs_free(&r->w.obs);
    free(r->w.inflight);
    pthread_mutex_destroy(&r->w.jobs_mu);
    for (size_t i = 0; i < r->m.n; i++) {
        free(r->m.q[i].data);
        free(r->m.results[i]);
        free(r->m.dead_reasons[i]);
        free(r->m.retried[i]);
    }
    close(r->sig[0]);
    close(r->sig[1]);
    pthread_mutex_destroy(&r->m.mu);
}

static void push_task(struct rig *r, const char *id, const char *run, const char *extra)
{
    char *t = task(id, run, extra);
    mock_push(&r->m, t);
    free(t);
}

/* n tasks r:s:0.. running cmd */
static void push_tasks(struct rig *r, int n, const char *cmd)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r:s:%d", i);
        push_task(r, id, cmd, NULL);
    }
}

/* ---- the tests ------------------------------------------------------------------- */

static void never_holds_more_than_its_slots(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 30000, 60);
    push_tasks(&r, 6, "sleep 0.1; cat");
    rig_run(&r);
    assert_true(rig_wait_settled(&r, 6, 20000));
    assert_int_equal(rig_stop(&r), 0);                  /* drained cleanly */
    assert_int_equal(r.m.max_held, 2);
    assert_int_equal(r.m.max_asked_over_free, 0);
    assert_int_equal(r.m.completes, 6);
    assert_int_equal(r.m.heartbeats_leaving, 1);
    assert_true(r.m.maintains >= 1);                    /* due retries promoted while running */
    assert_int_equal(r.w.n_inflight, 0);
    rig_free(&r);
}

static size_t renewals_of(struct rig *r, const char *handle, int64_t after, int64_t before);

static void a_slot_takes_its_next_task_with_the_result(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 300, 60);                  /* renewed every 100 ms */
    r.m.chain = true;
    push_tasks(&r, 6, "sleep 0.3; cat");
    rig_run(&r);
    assert_true(rig_wait_settled(&r, 6, 20000));
    assert_int_equal(rig_stop(&r), 0);
    assert_int_equal(r.m.completes, 6);
    assert_true(r.m.chained >= 3);           /* two fetched, the rest came with results */
    assert_int_equal(r.m.max_held, 2);       /* one next delivery per slot freed */
    assert_int_equal(r.m.max_asked_over_free, 0);
    /* The loop renewed every delivery while it ran, the chained ones too. */
    for (size_t i = 0; i < 6; i++) assert_true(renewals_of(&r, r.m.q[i].handle, 0, INT64_MAX) >= 1);
    assert_int_equal(sf_counter_get(r.w.obs.leases_lost), 0);
    assert_int_equal(r.w.n_inflight, 0);
    rig_free(&r);
}

static void a_draining_slot_takes_no_next_task(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 30000, 60);
    r.m.chain = true;
    push_tasks(&r, 5, "sleep 0.3; cat");
    rig_run(&r);
    sf_sleep_ms(100);                        /* both slots busy with their first task */
    assert_int_equal(rig_stop(&r), 0);       /* SIGTERM: drain */
    /* The two running tasks finished and took nothing more. */
    assert_int_equal(r.m.completes, 2);
    assert_int_equal(r.m.chained, 0);
    assert_int_equal(r.m.unasked_after_stop, 2);
    assert_false(r.m.q[2].delivered);
    rig_free(&r);
}

static size_t renewals_of(struct rig *r, const char *handle, int64_t after, int64_t before)
{
    size_t k = 0;
    for (size_t i = 0; i < r->m.n_renews; i++)
        if (!strcmp(r->m.renews[i].handle, handle) && r->m.renews[i].at > after &&
            r->m.renews[i].at < before)
            k++;
    return k;
}

static void lease_is_renewed_until_the_result_is_stored(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 150, 60);                  /* renewed every 50 ms */
    push_task(&r, "r:s:0", "cat", NULL);
    /* The broker refuses results for the first 800 ms: the task has long
     * finished, its result waits in the slot. */
    r.m.complete_fails_until = sf_now_ms() + 800;
    int64_t t0 = sf_now_ms();
    rig_run(&r);
    assert_true(rig_wait_settled(&r, 1, 10000));
    pthread_mutex_lock(&r.m.mu);
    assert_true(r.m.complete_fails >= 2);
    /* While the result was refused (from 300 ms, well after `cat` ended, to
     * the refusals' end) the lease went on being renewed. */
    size_t during = renewals_of(&r, "h0", t0 + 300, t0 + 800);
    pthread_mutex_unlock(&r.m.mu);
    assert_true(during >= 4);
    assert_int_equal(rig_stop(&r), 0);
    assert_non_null(r.m.results[0]);
    /* No renewal after it was stored was counted as a lost lease. */
    assert_int_equal(sf_counter_get(r.w.obs.leases_lost), 0);
    rig_free(&r);
}

static void a_settle_that_cannot_succeed_gives_up_and_leaves_the_lease(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 150, 1);                   /* --settle-timeout-s 1 */
    push_task(&r, "r:s:0", "cat", NULL);
    r.m.complete_fails_until = INT64_MAX;
    rig_run(&r);
    int64_t t0 = sf_now_ms();
    /* Given up: the job comes back and the slot is free again. */
    for (; sf_now_ms() - t0 < 10000; sf_sleep_ms(20)) {
        pthread_mutex_lock(&r.m.mu);
        int fails = r.m.complete_fails;
        pthread_mutex_unlock(&r.m.mu);
        if (fails && !sf_gauge_get(r.w.obs.inflight)) break;
    }
    int64_t gave_up = sf_now_ms();
    assert_true(gave_up - t0 >= 900 && gave_up - t0 < 8000);
    sf_sleep_ms(300);
    pthread_mutex_lock(&r.m.mu);
    assert_int_equal(r.m.completes, 0);
    assert_false(r.m.q[0].settled);          /* not acked: back to the fleet through its lease */
    assert_int_equal(renewals_of(&r, "h0", gave_up + 100, INT64_MAX), 0);   /* no longer renewed */
    pthread_mutex_unlock(&r.m.mu);
    assert_int_equal(rig_stop(&r), 0);
    rig_free(&r);
}

static json_t *parsed(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    return j;
}

static void failures_are_retried_until_the_last_attempt(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 30000, 60);
    push_task(&r, "r:s:0", "exit 3", "\"attempt\":1,\"max_attempts\":3");
    push_task(&r, "r:s:1", "exit 3", "\"attempt\":3,\"max_attempts\":3");
    push_task(&r, "r:s:2", "exit 3", "\"attempt\":1,\"max_attempts\":3,\"limits\":{\"memory_mb\":100000}");
    push_task(&r, "r:s:3", "cat", "\"attempt\":2,\"max_attempts\":3");
    mock_push(&r.m, "not json{");
    mock_push(&r.m, "PROBLEM");
    rig_run(&r);
    assert_true(rig_wait_settled(&r, 6, 20000));
    assert_int_equal(rig_stop(&r), 0);

    /* attempt 1 of 3 failed: attempt 2 stored, backoff 100 ms with equal jitter */
    assert_non_null(r.m.retried[0]);
    json_t *next = parsed(r.m.retried[0]);
    assert_int_equal(json_integer_value(json_object_get(next, "attempt")), 2);
    json_decref(next);
    assert_true(r.m.retry_delay[0] >= 50 && r.m.retry_delay[0] <= 100);
    assert_null(r.m.results[0]);
    /* the last attempt: final result + dead letter with the reason */
    assert_null(r.m.retried[1]);
    assert_non_null(r.m.results[1]);
    assert_string_equal(r.m.dead_reasons[1], "error after 3 attempts: exit code 3");
    /* over a cap: rejected at once, never retried */
    assert_null(r.m.retried[2]);
    assert_non_null(strstr(r.m.dead_reasons[2], "rejected after 1 attempt: limits.memory_mb 100000 is over"));
    json_t *res = parsed(r.m.results[2]);
    assert_string_equal(json_string_value(json_object_get(res, "status")), "rejected");
    json_decref(res);
    /* a later attempt that succeeds: just the result */
    assert_non_null(r.m.results[3]);
    assert_null(r.m.dead_reasons[3]);
    /* bad messages: dead-lettered with the decoder's reason, untouched */
    assert_non_null(strstr(r.m.dead_reasons[4], "malformed JSON"));
    assert_string_equal(r.m.dead_reasons[5], "no 'task' field");
    rig_free(&r);
}

static void retry_delays_double_with_equal_jitter(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        int64_t d1 = sf_retry_delay_ms(500, 1, 30000), d3 = sf_retry_delay_ms(500, 3, 30000),
                d9 = sf_retry_delay_ms(500, 9, 30000);
        assert_true(d1 >= 250 && d1 <= 500);
        assert_true(d3 >= 1000 && d3 <= 2000);
        assert_true(d9 >= 15000 && d9 <= 30000);    /* capped */
    }
    struct sf_retry rt = SF_RETRY(NULL, "x", -1);
    int64_t want[] = { 100, 200, 400, 800, 1600, 2000, 2000 };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(sf_retry_next_ms(&rt), want[i]);
    sf_retry_reset(&rt);
    assert_int_equal(sf_retry_next_ms(&rt), 100);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);            /* as the worker: an agent may close its stdin early */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(never_holds_more_than_its_slots),
        cmocka_unit_test(a_slot_takes_its_next_task_with_the_result),
        cmocka_unit_test(a_draining_slot_takes_no_next_task),
        cmocka_unit_test(lease_is_renewed_until_the_result_is_stored),
        cmocka_unit_test(a_settle_that_cannot_succeed_gives_up_and_leaves_the_lease),
        cmocka_unit_test(failures_are_retried_until_the_last_attempt),
        cmocka_unit_test(retry_delays_double_with_equal_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
