/* worker/loop.c: the worker's one loop thread.
 *
 * Each turn: look at signals and finished jobs without waiting,
 * run the periodic duties that are due (heartbeat, lease renewal, moving due
 * retries back to the queue), then either
 *   - fetch as many deliveries as there are free slots, blocking in the
 *     broker for a short while (XREADGROUP BLOCK) when none is there, or
 *   - when every slot is busy (or we are draining), wait on the signalfd and
 *     the pool's eventfd only. That is the backpressure: a worker never holds
 *     a task it has no slot for, so tasks stay available to other workers.
 * A slot whose task settled with a result usually brings its next delivery
 * itself (worker.h): the loop then hears of it only through lease renewals.
 * The fetch block is short (a quarter of the lease, at most 1 s) so leases
 * are renewed and signals are seen in time. A job's lease is renewed until
 * its outcome is settled in the broker (worker.h, enum wjob_phase), not
 * only while it runs.
 * Signals: the first SIGTERM/SIGINT stops fetching and drains (in-flight
 * tasks finish and are acked within --grace-s), the second returns at once;
 * unfinished tasks then come back to the fleet when their leases run out. */
#include "worker.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum loop_state { RUNNING, DRAINING };

struct loop {
    struct worker *w;
    enum loop_state state;
    int sfd;
    bool hard;
    int64_t grace_deadline;
    int64_t next_hb, next_renew, next_maintain, fetch_backoff_until;
    struct sf_retry fetch_retry;   /* pauses between failed fetches (not slept here) */
    int64_t e2b_flush_after;      /* --e2b-ingress: next record flush after a failure */
    int64_t last_err_log;
};

static void add_inflight(struct worker *w, struct wjob *j)
{
    w->inflight[w->n_inflight++] = j;
    sf_gauge_set(w->obs.inflight, (int64_t)w->n_inflight);
}

static void remove_inflight(struct worker *w, struct wjob *j)
{
    for (size_t i = 0; i < w->n_inflight; i++)
        if (w->inflight[i] == j) {
            w->inflight[i] = w->inflight[--w->n_inflight];
            sf_gauge_set(w->obs.inflight, (int64_t)w->n_inflight);
            return;
        }
}

/* The job's ids for a log line, or NULLs while the pool thread has not
 * published them yet. Under w->jobs_mu while the job is in flight. */
static void job_ids(const struct wjob *j, const char **run_id, const char **task_id)
{
    bool ready = atomic_load_explicit(&j->ids_ready, memory_order_acquire);
    *run_id = ready ? j->run_id : NULL;
    *task_id = ready ? j->task_id : NULL;
}

/* Jobs whose slot went idle (each outcome was logged by its pool thread). */
static void take_done(struct loop *lp)
{
    struct worker *w = lp->w;
    struct wjob *j;
    while ((j = sf_pool_take_done(w->pool))) {
        remove_inflight(w, j);
        sf_delivery_clear(&j->d);
        free(j);
    }
}

static void read_signals(struct loop *lp)
{
    struct signalfd_siginfo si;
    while (read(lp->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (lp->state == RUNNING) {
            lp->state = DRAINING;
            atomic_store(&lp->w->draining, true);      /* slots take no next delivery */
            sf_health_set_draining(&lp->w->obs.health);
            if (lp->w->e2b) lp->w->e2b->drain(lp->w->e2b->arg);
            lp->next_hb = 0;                /* tell the E2B gateways at once */
            lp->grace_deadline = sf_now_ms() + lp->w->cfg->grace_s * 1000;
            SF_LOG(lp->w->lg, SF_LOG_INFO, NULL, NULL,
                   "signal %u: draining %zu in-flight task(s) (grace %lds; again to stop now)",
                   si.ssi_signo, lp->w->n_inflight, lp->w->cfg->grace_s);
        } else {
            SF_LOG(lp->w->lg, SF_LOG_WARN, NULL, NULL,
                   "second signal: stopping now; %zu task(s) return to the queue when their leases run out",
                   lp->w->n_inflight);
            lp->hard = true;
        }
    }
}

static void log_broker_error(struct loop *lp, const char *what, const char *err)
{
    int64_t now = sf_now_ms();
    if (now - lp->last_err_log < 5000) return;
    lp->last_err_log = now;
    SF_LOG(lp->w->lg, SF_LOG_WARN, NULL, NULL, "%s: %s (retrying)", what, err);
}

static void heartbeat(struct loop *lp, bool leaving)
{
    struct worker *w = lp->w;
    char err[512];
    struct sf_worker_info wi = {
        .id = w->id, .host = w->host, .sandbox = w->cfg->sandbox, .pid = (int)getpid(),
        .concurrency = (int)w->cfg->concurrency, .busy = (int)w->n_inflight,
        .started_ms = w->started_ms, .done = atomic_load(&w->done), .failed = atomic_load(&w->failed),
        .secrets = sf_secrets_names(&w->secrets),     /* names only */
    };
    if (w->b->ops->heartbeat(w->b, &wi, leaving, err, sizeof(err)) < 0)
        log_broker_error(lp, "heartbeat", err);
    json_decref(wi.secrets);
    const struct worker_e2b *e = w->e2b;
    if (e && e->beat && e->beat(e->arg, w->b, lp->state == DRAINING, leaving, err, sizeof(err)) < 0)
        log_broker_error(lp, "E2B heartbeat", err);
}

/* --e2b-ingress: sandbox records that changed go to the broker. */
static void e2b_flush(struct loop *lp, int64_t now)
{
    char err[512];
    const struct worker_e2b *e = lp->w->e2b;
    if (!e || !e->flush || now < lp->e2b_flush_after) return;
    if (e->flush(e->arg, lp->w->b, err, sizeof(err)) < 0) {
        log_broker_error(lp, "storing E2B sandbox records", err);
        lp->e2b_flush_after = now + 500;
    }
}

static void renew(struct loop *lp)
{
    struct worker *w = lp->w;
    size_t cap = w->n_inflight ? w->n_inflight : 1;
    char (*copies)[sizeof(w->inflight[0]->d.handle)] = sf_xcalloc(cap, sizeof(*copies));
    const char *handles[cap];
    struct wjob *jobs[cap];
    bool lost[cap];
    size_t n = 0;
    char err[512];
    /* Copies: a pool thread may move its job on to the slot's next delivery
     * meanwhile (worker.h). */
    pthread_mutex_lock(&w->jobs_mu);
    for (size_t i = 0; i < w->n_inflight; i++) {
        struct wjob *j = w->inflight[i];
        if (atomic_load(&j->phase) == WJOB_SETTLED) continue;
        jobs[n] = j;
        memcpy(copies[n], j->d.handle, sizeof(copies[n]));
        handles[n] = copies[n];
        n++;
    }
    pthread_mutex_unlock(&w->jobs_mu);
    if (!n || w->b->ops->renew(w->b, handles, n, lost, err, sizeof(err)) < 0) {
        if (n) log_broker_error(lp, "lease renewal", err);
        free(copies);
        return;
    }
    pthread_mutex_lock(&w->jobs_mu);
    for (size_t i = 0; i < n; i++) {
        /* A job that settled meanwhile was acked: "not ours" is expected.
         * One still settling says for itself whether its result was new;
         * one that went on to its next delivery renews that one next time. */
        if (strcmp(jobs[i]->d.handle, handles[i])) continue;
        if (lost[i] && atomic_load(&jobs[i]->phase) != WJOB_RUNNING) continue;
        sf_counter_inc(lost[i] ? w->obs.leases_lost : w->obs.renewals);
        if (!lost[i] || jobs[i]->lost_logged) continue;
        jobs[i]->lost_logged = true;
        const char *run, *task;
        job_ids(jobs[i], &run, &task);
        SF_LOG(w->lg, SF_LOG_WARN, run, task,
               "lease of %s lost (another worker reclaimed it); the first result stored wins",
               jobs[i]->d.handle);
    }
    pthread_mutex_unlock(&w->jobs_mu);
    free(copies);
}

static void duties(struct loop *lp, int64_t now)
{
    struct worker *w = lp->w;
    int64_t lease = w->cfg->lease_ms;
    char err[512];
    if (now >= lp->next_renew) {
        renew(lp);
        lp->next_renew = now + (lease / 3 > 10 ? lease / 3 : 10);
    }
    if (now >= lp->next_hb) {
        heartbeat(lp, false);
        if (w->ecfg.warm) sf_warm_pool_sweep(w->ecfg.warm, now);   /* idle warm agents */
        int64_t every = lease / 3 < 5000 ? lease / 3 : 5000;
        lp->next_hb = now + (every > 500 ? every : 500);
    }
    if (now >= lp->next_maintain && lp->state == RUNNING) {
        if (w->b->ops->maintain(w->b, err, sizeof(err)) < 0) log_broker_error(lp, "moving due retries", err);
        lp->next_maintain = now + 250;
    }
}

static void fetch(struct loop *lp, size_t free_slots, int block_ms)
{
    struct worker *w = lp->w;
    struct sf_delivery ds[free_slots];
    size_t n = 0;
    char err[512];
    int rc = w->b->ops->fetch(w->b, ds, free_slots, block_ms, &n, err, sizeof(err));
    if (rc < 0) {
        log_broker_error(lp, "fetching tasks", err);
        if (sf_broker_transient(rc)) sf_health_set_connected(&w->obs.health, 0);
        lp->fetch_backoff_until = sf_now_ms() + sf_retry_next_ms(&lp->fetch_retry);
        return;
    }
    sf_retry_reset(&lp->fetch_retry);
    sf_health_set_connected(&w->obs.health, 1);
    for (size_t i = 0; i < n; i++) {
        struct wjob *j = sf_xcalloc(1, sizeof(*j));
        j->w = w;
        j->d = ds[i];
        if (ds[i].reclaimed) sf_counter_inc(w->obs.reclaimed);
        if (ds[i].reclaimed)
            SF_LOG(w->lg, SF_LOG_INFO, NULL, NULL, "reclaimed %s from a worker whose lease ran out",
                   ds[i].handle);
        add_inflight(w, j);
        sf_pool_submit(w->pool, j);
    }
}

int worker_loop(struct worker *w, int sfd)
{
    struct loop lp = { .w = w, .state = RUNNING, .sfd = sfd };
    size_t slots = (size_t)w->cfg->concurrency;
    int block_ms = (int)(w->cfg->lease_ms / 4 < 1000 ? w->cfg->lease_ms / 4 : 1000);
    if (block_ms < 10) block_ms = 10;

    SF_LOG(w->lg, SF_LOG_INFO, NULL, NULL, "worker %s: queue %s on %s, %zu slot(s), sandbox %s, lease %ld ms",
           w->id, w->b->cfg.queue, w->b->url_redacted, slots, w->cfg->sandbox, w->cfg->lease_ms);
    SF_LOG(w->lg, SF_LOG_INFO, NULL, NULL,
           "caps per sandbox (0: none): memory %lld MB, pids %lld, disk %lld MB, cpu %lld s, timeout %g s",
           (long long)w->policy.max.memory_mb, (long long)w->policy.max.pids,
           (long long)w->policy.max.disk_mb, (long long)w->policy.max.cpu_s, w->policy.max_timeout_s);
    for (;;) {
        int64_t now = sf_now_ms();
        bool can_fetch = lp.state == RUNNING && w->n_inflight < slots && now >= lp.fetch_backoff_until;
        int timeout = 0;
        if (!can_fetch) {
            int64_t until = lp.next_renew < lp.next_hb ? lp.next_renew : lp.next_hb;
            /* Busy slots go on by themselves (worker.h): due retries must
             * not wait for one of them to come back. */
            if (lp.state == RUNNING && lp.next_maintain < until) until = lp.next_maintain;
            if (lp.state == RUNNING && w->n_inflight < slots && lp.fetch_backoff_until < until)
                until = lp.fetch_backoff_until;
            if (lp.state == DRAINING && lp.grace_deadline < until) until = lp.grace_deadline;
            timeout = until > now ? (int)(until - now) : 0;
            if (timeout > 1000) timeout = 1000;
        }
        struct pollfd pfd[3] = { { sfd, POLLIN, 0 }, { sf_pool_fd(w->pool), POLLIN, 0 },
                                 { w->e2b && w->e2b->fd ? w->e2b->fd(w->e2b->arg) : -1, POLLIN, 0 } };
        if (now < lp.e2b_flush_after) {
            pfd[2].fd = -1;
            if (lp.e2b_flush_after - now < timeout) timeout = (int)(lp.e2b_flush_after - now);
        }
        if (poll(pfd, 3, timeout) < 0 && errno != EINTR) {
            SF_LOG(w->lg, SF_LOG_ERROR, NULL, NULL, "poll: %s", strerror(errno));
            lp.hard = true;
        }
        sf_health_beat(&w->obs.health);
        read_signals(&lp);
        take_done(&lp);
        if (lp.hard) break;
        now = sf_now_ms();
        /* E2B sandboxes are served on through the drain, until they end
         * or the grace period does. */
        size_t e2b_alive = w->e2b ? w->e2b->alive(w->e2b->arg) : 0;
        if (lp.state == DRAINING && w->n_inflight == 0 && e2b_alive == 0) break;
        if (lp.state == DRAINING && now >= lp.grace_deadline && w->n_inflight == 0) {
            SF_LOG(w->lg, SF_LOG_INFO, NULL, NULL, "grace period over: killing %zu E2B sandbox(es)",
                   e2b_alive);
            break;
        }
        if (lp.state == DRAINING && now >= lp.grace_deadline) {
            SF_LOG(w->lg, SF_LOG_WARN, NULL, NULL,
                   "grace period over: %zu task(s) return to the queue when their leases run out",
                   w->n_inflight);
            lp.hard = true;
            break;
        }
        duties(&lp, now);
        e2b_flush(&lp, now);
        if (can_fetch && lp.state == RUNNING && w->n_inflight < slots)
            fetch(&lp, slots - w->n_inflight, block_ms);
    }
    atomic_store(&w->hard_stop, lp.hard ? 1 : 0);
    if (!lp.hard) {
        heartbeat(&lp, true);
        SF_LOG(w->lg, SF_LOG_INFO, NULL, NULL, "drained: %lld done, %lld failed; bye",
               (long long)atomic_load(&w->done), (long long)atomic_load(&w->failed));
        return 0;
    }
    return 1;
}
