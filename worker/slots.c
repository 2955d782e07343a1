/* worker/slots.c: one delivery on one pool thread (a "slot").
 *
 * decode -> run in a fresh sandbox -> one broker call that settles it:
 *   ok                         complete (result + ack, atomic)
 *   failed, attempts left      retry: next attempt stored with backoff+jitter, ack
 *   failed, last attempt       complete with dead letter: final result + dead
 *                              letter with the reason + ack, atomic
 *   undecodable                dead-letter the raw bytes with the reason, ack
 * The worker owns retries, so a coordinator (or any integration) sees one
 * final result per task. Broker calls that fail transiently (Redis
 * restarting) are retried with backoff while the slot holds the result: the
 * work is never redone just because Redis blinked. */
#include "worker.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t worker_backoff_ms(int64_t base_ms, int attempt)
{
    int64_t d = base_ms > 0 ? base_ms : 500;
    for (int a = 1; a < attempt && d < 30000; a++) d *= 2;
    if (d > 30000) d = 30000;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) rnd = (uint32_t)attempt * 2654435761u;
    return d / 2 + (int64_t)(rnd % (uint32_t)(d / 2 + 1));
}

/* After a failed broker call: true when it is worth trying again (after a
 * pause), false when it failed for good or the worker is stopping hard. */
static bool again(struct worker *w, const struct wjob *j, int rc, int64_t *delay, const char *what,
                  const char *err)
{
    if (!sf_broker_transient(rc) || atomic_load(&w->hard_stop)) {
        SF_LOG(w->lg, SF_LOG_ERROR, j->run_id[0] ? j->run_id : NULL, j->task_id[0] ? j->task_id : NULL,
               "%s: %s", what, err);
        return false;
    }
    struct timespec ts = { *delay / 1000, (*delay % 1000) * 1000000 };
    nanosleep(&ts, NULL);
    if (*delay < 2000) *delay *= 2;
    return true;
}

static void dead_letter(struct worker *w, struct wjob *j, const char *reason)
{
    char err[512];
    int64_t delay = 100;
    int rc;
    atomic_store(&j->finished, 1);
    do {
        rc = w->b->ops->dead(w->b, j->d.handle, j->d.data, j->d.len, reason, err, sizeof(err));
    } while (rc < 0 && again(w, j, rc, &delay, "dead-letter", err));
    j->outcome = rc < 0 ? WJOB_ABANDONED : WJOB_DEAD;
    if (rc == 0) sf_counter_inc(w->obs.dead_lettered);
    if (rc == 0)
        SF_LOG(w->lg, SF_LOG_WARN, NULL, NULL, "dead-lettered message %s: %s", j->d.handle, reason);
}

static int schedule_retry(struct worker *w, struct wjob *j, const struct sf_task *t,
                          char *err, size_t errlen)
{
    struct sf_task *next = sf_task_dup(t);
    next->attempt = t->attempt + 1;
    json_t *js = sf_task_to_json(next);
    char *s = NULL;
    int64_t delay = 100;
    int rc = sf_broker_claim_check(w->b, js, "input", err, errlen);
    if (rc >= 0) {
        s = json_dumps(js, JSON_COMPACT);
        int64_t wait = worker_backoff_ms(w->cfg->retry_base_ms, t->attempt);
        do {
            rc = w->b->ops->retry(w->b, j->d.handle, s, strlen(s), wait, err, errlen);
        } while (rc < 0 && again(w, j, rc, &delay, "scheduling a retry", err));
        if (rc == 0) sf_counter_inc(w->obs.retried);
        if (rc == 0)
            SF_LOG(w->lg, SF_LOG_INFO, t->run_id, t->id, "attempt %d failed; attempt %d in %lld ms",
                   t->attempt, next->attempt, (long long)wait);
        else if (rc == 1)
            SF_LOG(w->lg, SF_LOG_WARN, t->run_id, t->id,
                   "lease lost before the retry was stored; the new owner decides");
    }
    free(s);
    json_decref(js);
    sf_task_free(next);
    return rc;
}

void worker_slot_work(void *job, void *ctx)
{
    struct wjob *j = job;
    struct worker *w = ctx;
    struct sf_task *t = NULL;
    struct sf_result *r = NULL;
    char err[1024];
    bool transient = false;
    int64_t delay = 100;
    int rc;

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
            atomic_store(&j->finished, 1);
            return;
        }
        dead_letter(w, j, err);
        return;
    }
    sf_strlcpy(j->task_id, t->id, sizeof(j->task_id));
    sf_strlcpy(j->run_id, t->run_id, sizeof(j->run_id));
    j->attempt = t->attempt;
    SF_LOG(w->lg, SF_LOG_DEBUG, t->run_id, t->id, "start attempt %d/%d%s", t->attempt,
           t->max_attempts, j->d.reclaimed ? " (reclaimed from a dead worker)" : "");
    sf_counter_inc(w->obs.started);
    int64_t create_ms = -1;
    if (t->workflow)                     /* a whole "shared" workflow: one bundle task */
        r = sf_bundle_exec(w->prov, t, &w->ecfg);
    else
        r = sf_exec_task(w->prov, NULL, t, &w->ecfg, &create_ms);
    atomic_store(&j->finished, 1);
    worker_obs_attempt(&w->obs, r, create_ms);

    bool ok = r->status == SF_RESULT_OK;
    bool retriable = !ok && r->status != SF_RESULT_REJECTED && t->attempt < t->max_attempts;
    if (retriable) {
        rc = schedule_retry(w, j, t, err, sizeof(err));
        j->outcome = rc < 0 ? WJOB_ABANDONED : WJOB_RETRY;
        goto out;
    }
    char reason[1200];
    if (!ok)
        snprintf(reason, sizeof(reason), "%s after %d attempt%s: %s", sf_result_status_name(r->status),
                 t->attempt, t->attempt == 1 ? "" : "s", r->error ? r->error : "(no message)");
    do {
        rc = sf_broker_complete_task(w->b, j->d.handle, t, r, j->d.data, j->d.len,
                                     ok ? NULL : reason, err, sizeof(err));
    } while (rc < 0 && again(w, j, rc, &delay, "storing a result", err));
    if (rc < 0) {
        j->outcome = WJOB_ABANDONED;
    } else {
        j->outcome = ok ? WJOB_OK : WJOB_FAILED;
        atomic_fetch_add(ok ? &w->done : &w->failed, 1);
        if (!ok && rc == 0) sf_counter_inc(w->obs.dead_lettered);
        if (rc == 1)
            SF_LOG(w->lg, SF_LOG_INFO, t->run_id, t->id, "a result was already stored; acked only");
    }
out:
    sf_result_free(r);
    sf_task_free(t);
}
