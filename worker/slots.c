/* worker/slots.c: one delivery on one pool thread (a "slot").
 *
 * decode -> run in a fresh sandbox -> one broker call that settles it:
 *   ok                         complete (result + ack, atomic)
 *   failed, attempts left      retry: next attempt stored with backoff+jitter, ack
 *   failed, last attempt       complete with dead letter: final result + dead
 *   or rejected                letter with the reason + ack, atomic
 *   undecodable                dead-letter the raw bytes with the reason, ack
 * The worker owns retries, so a coordinator (or any integration) sees one
 * final result per task. A settling call that fails transiently (the broker
 * restarting) is retried (retry.h) for up to --settle-timeout-s while the
 * slot holds the result and the loop keeps renewing the lease (the job
 * stays in flight until settled), so the work is not redone because the
 * broker blinked; past that deadline the delivery is left to its lease.
 *
 * A completion may bring the slot's next delivery (worker.h): this thread
 * then runs it too, and the job goes back to the loop only when a settling
 * call brought none (the queue was empty, draining, priority bands or a
 * reclaim scan want the loop's fetch, another outcome than a result).
 *
 * Shared with the loop thread (worker.h): j->phase (atomic), the ids, which
 * this thread writes once per delivery and then publishes with
 * j->ids_ready, and j->d, replaced under w->jobs_mu. */
#include "worker.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool stopping_hard(void *arg)
{
    return atomic_load(&((struct worker *)arg)->hard_stop) != 0;
}

struct sf_retry worker_retry(struct worker *w, struct wjob *j, const char *what, bool settling)
{
    struct sf_retry rt = SF_RETRY(w->lg, what, w->cfg->settle_timeout_s * 1000);
    rt.stop = stopping_hard;
    rt.stop_arg = w;
    if (atomic_load_explicit(&j->ids_ready, memory_order_relaxed)) {
        rt.run_id = j->run_id;
        rt.task_id = j->task_id;
    }
    if (settling) atomic_store(&j->phase, WJOB_SETTLING);
    return rt;
}

/* The retry loop of one settling call: --settle-timeout-s, then give up. */
static struct sf_retry settle_retry(struct worker *w, struct wjob *j, const char *what)
{
    return worker_retry(w, j, what, true);
}

void worker_settle_failed(struct worker *w, struct wjob *j, int rc, const char *what, const char *err)
{
    bool ids = atomic_load_explicit(&j->ids_ready, memory_order_relaxed);
    SF_LOG(w->lg, SF_LOG_ERROR, ids ? j->run_id : NULL, ids ? j->task_id : NULL,
           "%s: %s; %s", what, err,
           sf_broker_transient(rc) ? "gave up: the delivery is left to its lease" : "failed for good");
}

static void dead_letter(struct worker *w, struct wjob *j, const char *reason)
{
    char err[512];
    struct sf_retry rt = settle_retry(w, j, "dead-letter");
    int rc;
    while ((rc = w->b->ops->dead(w->b, j->d.handle, j->d.data, j->d.len, reason, err,
                                 sizeof(err))) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
    j->outcome = rc < 0 ? WJOB_ABANDONED : WJOB_DEAD;
    if (rc < 0) {
        worker_settle_failed(w, j, rc, "dead-letter", err);
        return;
    }
    sf_counter_inc(w->obs.dead_lettered);
    SF_LOG(w->lg, SF_LOG_WARN, NULL, NULL, "dead-lettered message %s: %s", j->d.handle, reason);
}

int worker_requeue(struct worker *w, struct wjob *j, const struct sf_task *next, int64_t delay_ms,
                   const char *what, char *err, size_t errlen)
{
    json_t *js = sf_task_to_json(next);
    char *s = NULL;
    struct sf_retry rt = settle_retry(w, j, what);
    int rc;
    while ((rc = sf_broker_claim_check(w->b, js, "input", err, errlen)) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
    if (rc >= 0) {
        s = json_dumps(js, JSON_COMPACT);
        while ((rc = w->b->ops->retry(w->b, j->d.handle, s, strlen(s), delay_ms, err, errlen)) < 0 &&
               sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
        if (rc == 1)
            SF_LOG(w->lg, SF_LOG_WARN, next->run_id, next->id,
                   "lease lost before the task was stored for later; the new owner decides");
    }
    if (rc < 0) worker_settle_failed(w, j, rc, what, err);
    free(s);
    json_decref(js);
    return rc;
}

static int schedule_retry(struct worker *w, struct wjob *j, const struct sf_task *t,
                          char *err, size_t errlen)
{
    struct sf_task *next = sf_task_dup(t);
    next->attempt = t->attempt + 1;
    int64_t wait = sf_retry_delay_ms(w->cfg->retry_base_ms, t->attempt, 30000);
    int rc = worker_requeue(w, j, next, wait, "scheduling a retry", err, errlen);
    if (rc == 0) {
        sf_counter_inc(w->obs.retried);
        SF_LOG(w->lg, SF_LOG_INFO, t->run_id, t->id, "attempt %d failed; attempt %d in %lld ms",
               t->attempt, next->attempt, (long long)wait);
    }
    sf_task_free(next);
    return rc;
}

void worker_complete(struct worker *w, struct wjob *j, const struct sf_task *t,
                     const struct sf_result *r, struct sf_delivery *next)
{
    char err[1024], reason[1200];
    bool ok = r->status == SF_RESULT_OK;
    struct sf_retry rt = settle_retry(w, j, "storing a result");
    int rc;
    if (!ok)
        snprintf(reason, sizeof(reason), "%s after %d attempt%s: %s", sf_result_status_name(r->status),
                 t->attempt, t->attempt == 1 ? "" : "s", r->error ? r->error : "(no message)");
    if (atomic_load(&w->draining) || atomic_load(&w->hard_stop)) next = NULL;
    while ((rc = sf_broker_complete_task(w->b, j->d.handle, t, r, j->d.data, j->d.len,
                                         ok ? NULL : reason, next, err, sizeof(err))) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
    if (rc < 0) {
        worker_settle_failed(w, j, rc, "storing a result", err);
        j->outcome = WJOB_ABANDONED;
        return;
    }
    j->outcome = ok ? WJOB_OK : WJOB_FAILED;
    atomic_fetch_add(ok ? &w->done : &w->failed, 1);
    if (!ok && rc == 0) sf_counter_inc(w->obs.dead_lettered);
    if (rc == 1) SF_LOG(w->lg, SF_LOG_INFO, t->run_id, t->id, "a result was already stored; acked only");
}

bool worker_should_retry(const struct sf_task *t, const struct sf_result *r)
{
    return r->status != SF_RESULT_OK && r->status != SF_RESULT_REJECTED &&
           t->attempt < t->max_attempts;
}

/* One delivery; *next gets the slot's next one when the result's call
 * brought it. */
static void run_task(struct worker *w, struct wjob *j, struct sf_delivery *next)
{
    struct sf_task *t = NULL;
    struct sf_result *r = NULL;
    char err[1024];
    bool transient = false;

    if (j->d.problem[0]) {
        dead_letter(w, j, j->d.problem);
        return;
    }
    t = sf_broker_decode_task(w->b, j->d.data, j->d.len, &transient, err, sizeof(err));
    if (!t) {
        if (transient) {
            /* The payload blob could not be read now: leave the delivery to
             * its lease rather than call a good task bad. */
            SF_LOG(w->lg, SF_LOG_WARN, NULL, NULL, "message %s: %s; left for a later delivery",
                   j->d.handle, err);
            j->outcome = WJOB_ABANDONED;
            return;
        }
        dead_letter(w, j, err);
        return;
    }
    sf_strlcpy(j->task_id, t->id, sizeof(j->task_id));
    sf_strlcpy(j->run_id, t->run_id, sizeof(j->run_id));
    j->attempt = t->attempt;
    atomic_store_explicit(&j->ids_ready, true, memory_order_release);
    if (worker_admit(w, j, t) != 0) {        /* handed on, or finished unrun */
        sf_task_free(t);
        return;
    }
    SF_LOG(w->lg, SF_LOG_DEBUG, t->run_id, t->id, "start attempt %d/%d%s", t->attempt,
           t->max_attempts, j->d.reclaimed ? " (reclaimed from a dead worker)" : "");
    sf_counter_inc(w->obs.started);
    int64_t create_ms = -1;
    if (t->workflow)                     /* a whole "shared" workflow: one bundle task */
        r = sf_bundle_exec(w->prov, t, &w->ecfg);
    else
        r = sf_exec_task(w->prov, NULL, t, &w->ecfg, &create_ms);
    worker_obs_attempt(&w->obs, r, create_ms);

    if (worker_should_retry(t, r))
        j->outcome = schedule_retry(w, j, t, err, sizeof(err)) < 0 ? WJOB_ABANDONED : WJOB_RETRY;
    else
        worker_complete(w, j, t, r, next);
    worker_leave(w, j, t);
    sf_result_free(r);
    sf_task_free(t);
}

static void log_outcome(struct worker *w, const struct wjob *j)
{
    const char *run = j->run_id[0] ? j->run_id : NULL, *task = j->task_id[0] ? j->task_id : NULL;
    if (j->outcome == WJOB_OK)
        SF_LOG(w->lg, SF_LOG_DEBUG, run, task, "done (attempt %d)", j->attempt);
    else if (j->outcome == WJOB_FAILED)
        SF_LOG(w->lg, SF_LOG_WARN, run, task, "failed for good (attempt %d); dead-lettered", j->attempt);
}

/* The slot goes on with its next delivery: the loop renews that one now. */
static void take_next(struct worker *w, struct wjob *j, struct sf_delivery *next)
{
    struct sf_delivery old;
    pthread_mutex_lock(&w->jobs_mu);
    old = j->d;
    j->d = *next;
    atomic_store_explicit(&j->ids_ready, false, memory_order_relaxed);
    j->task_id[0] = j->run_id[0] = '\0';
    j->attempt = 0;
    j->outcome = WJOB_OK;
    j->gated = false;
    j->lost_logged = false;
    atomic_store(&j->phase, WJOB_RUNNING);
    pthread_mutex_unlock(&w->jobs_mu);
    sf_delivery_clear(&old);
    memset(next, 0, sizeof(*next));
}

void worker_slot_work(void *job, void *ctx)
{
    struct wjob *j = job;
    struct worker *w = ctx;
    struct sf_delivery next = {0};
    for (;;) {
        run_task(w, j, &next);
        log_outcome(w, j);
        if (!next.data) break;
        take_next(w, j, &next);
    }
    /* Settled (or given up): the loop stops renewing and takes the job back. */
    atomic_store(&j->phase, WJOB_SETTLED);
}
