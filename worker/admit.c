/* worker/admit.c: what stands between a decoded task and its sandbox
 * (issue 15; docs/protocol.md §9). In order:
 *   1. the broker must honour every field: a task asking for concurrency,
 *      rate or priority on a backend without them (Kafka) is rejected
 *      (final result + dead letter), never run with the fields ignored;
 *   2. a task that came through band 0 but asks for a priority moves to
 *      its band and is delivered again by priority;
 *   3. secrets: every name must resolve here. If one does not, the task is
 *      handed on for a worker that has it (same attempt, "secret_misses" +
 *      1, a short delay), unless the registry shows no live worker holding
 *      all of them or it was handed on SECRET_HANDOFFS times already: then
 *      it fails for good with an error naming the secret and this worker;
 *   4. gates: the concurrency slot and rate token are taken, or the task
 *      waits in the broker (holding no slot here).
 * Only names are ever logged, never a value. */
#include "worker.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* How often a task is handed on by workers lacking one of its secrets
 * before it fails (only when the registry cannot say who holds them, or
 * the holders keep missing it). */
#define SECRET_HANDOFFS 20

/* A final result without a run: status st, message, dead letter with it. */
static void fail_unrun(struct worker *w, struct wjob *j, const struct sf_task *t,
                       enum sf_result_status st, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void fail_unrun(struct worker *w, struct wjob *j, const struct sf_task *t,
                       enum sf_result_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct sf_result *r = sf_result_for(t, st, w->id, "%s", msg);
    SF_LOG(w->lg, SF_LOG_WARN, t->run_id, t->id, "not run: %s", msg);
    worker_complete(w, j, t, r, NULL);            /* result + dead letter with the reason */
    sf_result_free(r);
}

static void handed_on(struct worker *w, struct wjob *j, int rc)
{
    j->outcome = rc < 0 ? WJOB_ABANDONED : WJOB_HANDED_ON;
    if (rc == 0) sf_counter_inc(w->obs.handed_on);
}

/* Live workers other than this one whose heartbeat lists every name;
 * -1 when the registry does not say (a backend without it, or workers too
 * old to report their secrets). */
static int holders(struct worker *w, json_t *names)
{
    json_t *ws = NULL, *x, *n;
    char err[256];
    size_t i, k;
    int count = 0;
    bool reported = false;
    if (sf_broker_workers(w->b, &ws, err, sizeof(err)) < 0) return -1;
    json_array_foreach(ws, i, x) {
        json_t *held = json_object_get(x, "secrets");
        const char *id = json_string_value(json_object_get(x, "id"));
        json_int_t age = json_integer_value(json_object_get(x, "heartbeat_age_ms"));
        if (!json_is_array(held)) continue;
        reported = true;
        if (!id || !strcmp(id, w->id) || age > 3 * w->cfg->lease_ms) continue;
        bool all = true;
        json_array_foreach(names, k, n) {
            bool has = false;
            size_t m;
            json_t *h;
            json_array_foreach(held, m, h) has = has || json_equal(h, n);
            all = all && has;
        }
        count += all;
    }
    json_decref(ws);
    return reported ? count : -1;
}

/* 0: every secret resolves here; 1: handed on or failed (j->outcome). */
static int check_secrets(struct worker *w, struct wjob *j, const struct sf_task *t)
{
    json_t *names = sf_task_secret_names(t);
    struct sf_secret_values sv;
    const char *missing = NULL;
    char err[512], name[SF_SECRET_NAME_MAX + 1];
    int rc = 0;
    if (!json_array_size(names) ||
        sf_secrets_resolve(&w->secrets, names, &sv, &missing, err, sizeof(err)) == 0) {
        if (json_array_size(names)) sf_secret_values_clear(&sv);
        json_decref(names);
        return 0;
    }
    sf_strlcpy(name, missing ? missing : "?", sizeof(name));
    int who = holders(w, names);
    json_decref(names);
    if (who == 0) {
        fail_unrun(w, j, t, SF_RESULT_ERROR, "secret '%s' is not available on worker %s (%s), and "
                   "no live worker of queue '%s' holds it", name, w->id, err, w->b->cfg.queue);
        return 1;
    }
    if (t->secret_misses >= SECRET_HANDOFFS) {
        fail_unrun(w, j, t, SF_RESULT_ERROR, "secret '%s' is not available on worker %s (%s); "
                   "handed on %d times without reaching a worker that holds it", name, w->id, err,
                   t->secret_misses);
        return 1;
    }
    struct sf_task *next = sf_task_dup(t);
    next->secret_misses = t->secret_misses + 1;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) rnd = 0;
    int64_t d = 250 * (int64_t)next->secret_misses;
    if (d > 5000) d = 5000;
    d = d / 2 + (int64_t)(rnd % (uint32_t)(d / 2 + 1));
    rc = worker_requeue(w, j, next, d, "handing a task on", err, sizeof(err));
    sf_task_free(next);
    if (rc == 0)
        SF_LOG(w->lg, SF_LOG_WARN, t->run_id, t->id, "needs secret '%s', which this worker does not "
               "have; handed on for a worker that does (%d/%d, %d live holder%s)", name,
               t->secret_misses + 1, SECRET_HANDOFFS, who, who == 1 ? "" : "s");
    handed_on(w, j, rc);
    return 1;
}

int worker_admit(struct worker *w, struct wjob *j, const struct sf_task *t)
{
    char err[1024];
    struct sf_retry rt;
    int rc;
    if (sf_broker_task_supported(w->b, t, err, sizeof(err)) < 0) {
        fail_unrun(w, j, t, SF_RESULT_REJECTED, "%s", err);
        return 1;
    }
    if (j->d.band == 0 && t->priority > 0 && w->b->ops->route) {
        rt = worker_retry(w, j, "moving a task to its priority band", true);
        while ((rc = w->b->ops->route(w->b, j->d.handle, t->priority, j->d.data, j->d.len, err,
                                      sizeof(err))) < 0 && sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
        if (rc < 0) worker_settle_failed(w, j, rc, "moving a task to its priority band", err);
        if (rc == 0)
            SF_LOG(w->lg, SF_LOG_DEBUG, t->run_id, t->id, "moved to priority band %d", t->priority);
        handed_on(w, j, rc);
        return 1;
    }
    if (check_secrets(w, j, t)) return 1;
    if ((!t->concurrency.key[0] && !t->rate.key[0]) || !w->b->ops->gate_enter) return 0;
    rt = worker_retry(w, j, "taking a concurrency slot or rate token", false);
    while ((rc = w->b->ops->gate_enter(w->b, j->d.handle, t, j->d.data, j->d.len, err, sizeof(err))) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
    if (rc < 0) worker_settle_failed(w, j, rc, "taking a concurrency slot or rate token", err);
    if (rc == 0) {
        j->gated = true;
        return 0;
    }
    if (rc == 1)
        SF_LOG(w->lg, SF_LOG_DEBUG, t->run_id, t->id, "waits for its %s", t->concurrency.key[0]
               ? "concurrency slot or rate token" : "rate token");
    else if (rc == 2)
        SF_LOG(w->lg, SF_LOG_WARN, t->run_id, t->id, "lease lost before the task could start");
    handed_on(w, j, rc < 0 ? rc : 0);
    return 1;
}

void worker_leave(struct worker *w, struct wjob *j, const struct sf_task *t)
{
    char err[512];
    int rc;
    if (!j->gated || !w->b->ops->gate_leave) return;
    j->gated = false;
    /* Failing for good here costs nothing lasting: the slot's lease runs out. */
    struct sf_retry rt = worker_retry(w, j, "giving a concurrency slot back", false);
    while ((rc = w->b->ops->gate_leave(w->b, j->d.handle, t, err, sizeof(err))) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
}
