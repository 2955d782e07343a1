/* coordinator/run_broker.c: the broker executor: submit publishes a task
 * for the fleet, results come back through the feed (run_feed.c). The same
 * coord_runner drives it as the local pool.
 *
 * Design notes.
 * - Ownership: a run id is claimed in the broker before anything else
 *   (ops->run_claim, atomic). `run` claims for cli:<--owner> and resumes a
 *   run it finds under that same claim and workflow; serve claims for the
 *   token that submitted (serve_jobs.c). docs/security.md, "Front doors".
 * - Publishing is once per task id (the broker remembers the ids of a run),
 *   so a coordinator restarted with the same --run-id re-derives the same
 *   deterministic tasks and publishes only those never published.
 * - Publishing never sleeps: a task the broker cannot take now (restarting)
 *   is parked, in order, and tried again from the loop's next submit or
 *   tick after a pause (100 ms doubling to 2 s); after 10 minutes of
 *   failing the run stops with the reason. One loop thread drives many runs
 *   in serve: a sleep here would stall all of them.
 * - Resume: coord_broker_prepare reads what the run's results stream holds
 *   and hands it over first, in the workflow's topological order (stable
 *   within a step), because the scheduler can only accept a step's results
 *   once its needs are complete; the feed goes on from there.
 * - Retries belong to the workers: a worker posts one final result per task,
 *   carrying the attempt number it reached, and this executor says so
 *   (external_retries), so the scheduler takes that result as final.
 * - "sandbox": "shared" workflows need every step in one sandbox on one
 *   machine: run_bundle.c ships the whole workflow as ONE task (field
 *   `workflow`) that a single worker runs step by step (bundle.c), through
 *   this same executor. */
#include "broker.h"
#include "retry.h"
#include "run_broker.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define READ_BATCH 256
#define PUBLISH_BUDGET_MS 600000

struct rqueue {
    struct sf_result **v;
    size_t head, n, cap;
};

struct broker_exec {
    struct coord_exec base;
    struct sf_broker *b;
    struct coord_feed *feed;
    uint64_t feed_token;
    bool own;                    /* b and feed are this executor's (`run`) */
    bool keepalive;
    const struct sf_workflow *wf;
    const struct sf_log *lg;
    char run_id[128];
    json_t *inflight;            /* loop thread: task id -> true, published, no result yet */
    int efd;
    pthread_mutex_t mu;          /* guards q and fatal (the feed thread writes them) */
    struct rqueue q;
    char fatal[512];             /* non-empty: reading results failed for good */
    /* Loop thread: tasks waiting for the broker to take them, oldest first. */
    struct sf_task **parked;
    size_t n_parked, cap_parked;
    int64_t retry_at;
    struct sf_retry rt;
};

static void q_push(struct rqueue *q, struct sf_result *r)
{
    if (q->head + q->n == q->cap) {
        if (q->head) {
            memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
            q->head = 0;
        }
        if (q->n == q->cap) {
            q->cap = q->cap ? 2 * q->cap : 64;
            q->v = sf_xrealloc(q->v, q->cap * sizeof(*q->v));
        }
    }
    q->v[q->head + q->n++] = r;
}

static struct sf_result *q_pop(struct rqueue *q)
{
    if (!q->n) return NULL;
    q->n--;
    return q->v[q->head++];
}

static void wake(struct broker_exec *be)
{
    uint64_t one = 1;
    if (write(be->efd, &one, sizeof(one)) < 0) { /* counter full: already readable */ }
}

void coord_exec_broker_deliver(struct coord_exec *ex, struct sf_result *r, const char *fatal)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    pthread_mutex_lock(&be->mu);
    if (r) q_push(&be->q, r);
    else if (!be->fatal[0]) sf_strlcpy(be->fatal, fatal ? fatal : "?", sizeof(be->fatal));
    pthread_mutex_unlock(&be->mu);
    wake(be);
}

/* --- preparing a run ------------------------------------------------------------ */

/* Position of a step in the topological order (unknown steps last). */
static size_t topo_pos(const struct sf_workflow *wf, const char *step)
{
    long i = step ? sf_workflow_find(wf, step) : -1;
    for (size_t k = 0; i >= 0 && k < wf->n_steps; k++)
        if (wf->order[k] == (size_t)i) return k;
    return wf->n_steps;
}

static int cmp_topo_arg(const void *a, const void *b, void *arg)
{
    const struct sf_workflow *wf = arg;
    struct sf_result *const *ra = a, *const *rb = b;
    size_t pa = topo_pos(wf, (*ra)->step), pb = topo_pos(wf, (*rb)->step);
    if (pa != pb) return pa < pb ? -1 : 1;
    return (*ra)->index < (*rb)->index ? -1 : (*ra)->index > (*rb)->index;
}

void coord_prep_clear(struct coord_prep *p)
{
    for (size_t i = 0; i < p->n; i++) sf_result_free(p->backlog[i]);
    free(p->backlog);
    memset(p, 0, sizeof(*p));
}

/* Every stored result of the run, decoded, and the cursor after them. */
static int catch_up(struct sf_broker *b, const char *run_id, struct coord_prep *out,
                    const struct sf_log *lg, char *err, size_t errlen)
{
    char *raw[READ_BATCH];
    size_t lens[READ_BATCH], n;
    do {
        int rc = b->ops->results(b, run_id, out->cursor, sizeof(out->cursor), raw, lens, READ_BATCH, 0,
                                 &n, err, errlen);
        if (rc < 0) return rc;
        out->backlog = sf_xrealloc(out->backlog, (out->n + n + 1) * sizeof(*out->backlog));
        for (size_t i = 0; i < n; i++) {
            char derr[512];
            struct sf_result *r = sf_broker_decode_result(b, raw[i], lens[i], derr, sizeof(derr));
            if (r) out->backlog[out->n++] = r;
            else SF_LOG(lg, SF_LOG_WARN, run_id, NULL, "ignoring a bad result message: %s", derr);
            free(raw[i]);
        }
    } while (n == READ_BATCH);
    return 0;
}

int coord_broker_prepare(struct sf_broker *b, const struct sf_workflow *wf, const char *run_id,
                         bool resumed, struct coord_prep *out, const struct sf_log *lg,
                         char *err, size_t errlen)
{
    char ts[32];
    int rc;
    memset(out, 0, sizeof(*out));
    snprintf(ts, sizeof(ts), "%lld", (long long)sf_wall_ms());
    if ((rc = b->ops->state_set(b, run_id, "workflow", wf->name, err, errlen)) < 0 ||
        (rc = b->ops->state_set(b, run_id, "status", "running", err, errlen)) < 0 ||
        (!resumed && (rc = b->ops->state_set(b, run_id, "started_at", ts, err, errlen)) < 0) ||
        (rc = catch_up(b, run_id, out, lg, err, errlen)) < 0) {
        coord_prep_clear(out);
        return rc;
    }
    qsort_r(out->backlog, out->n, sizeof(*out->backlog), cmp_topo_arg, (void *)wf);
    if (out->n) SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "replaying %zu stored result(s)", out->n);
    return 0;
}

/* --- the executor ------------------------------------------------------------------ */

/* Publish parked tasks, oldest first, until the broker refuses one. 0, or
 * -errno when it failed for good or for too long. */
static int flush(struct broker_exec *be)
{
    struct coord_exec *ex = &be->base;
    while (be->n_parked && sf_now_ms() >= be->retry_at) {
        struct sf_task *t = be->parked[0];
        int rc = sf_broker_publish_task(be->b, t, ex->errstr, sizeof(ex->errstr));
        if (rc < 0) {
            int64_t pause;
            if (!sf_broker_transient(rc)) return rc;
            be->rt.task_id = t->id;
            if (!sf_retry_later(&be->rt, ex->errstr, &pause)) {
                char why[sizeof(ex->errstr)];
                sf_strlcpy(why, ex->errstr, sizeof(why));
                sf_errf(ex->errstr, sizeof(ex->errstr), "publishing failed for %d min: %s",
                        PUBLISH_BUDGET_MS / 60000, why);
                return -EIO;
            }
            be->retry_at = sf_now_ms() + pause;
            return 0;
        }
        sf_retry_reset(&be->rt);
        if (rc == 1) SF_LOG(be->lg, SF_LOG_DEBUG, be->run_id, t->id, "published before; waiting for its result");
        json_object_set_new(be->inflight, t->id, json_true());
        sf_task_free(t);
        memmove(be->parked, be->parked + 1, --be->n_parked * sizeof(*be->parked));
    }
    return 0;
}

static int be_submit(struct coord_exec *ex, struct sf_task *t)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    if (be->n_parked == be->cap_parked)
        be->parked = sf_xrealloc(be->parked, (be->cap_parked = be->cap_parked ? 2 * be->cap_parked : 16) *
                                             sizeof(*be->parked));
    be->parked[be->n_parked++] = t;
    return flush(be);
}

static int be_fd(struct coord_exec *ex) { return ((struct broker_exec *)ex)->efd; }

static struct sf_result *be_take(struct coord_exec *ex)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    uint64_t v;
    if (read(be->efd, &v, sizeof(v)) < 0) { /* EAGAIN: nothing signalled */ }
    pthread_mutex_lock(&be->mu);
    struct sf_result *r = q_pop(&be->q);
    pthread_mutex_unlock(&be->mu);
    if (r && r->task_id) json_object_del(be->inflight, r->task_id);
    return r;
}

static size_t be_inflight(struct coord_exec *ex)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    return json_object_size(be->inflight) + be->n_parked;
}

static int be_tick(struct coord_exec *ex)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    char ts[32];
    int rc = 0;
    pthread_mutex_lock(&be->mu);
    if (be->fatal[0]) {
        sf_errf(ex->errstr, sizeof(ex->errstr), "reading results: %s", be->fatal);
        rc = -EIO;
    }
    pthread_mutex_unlock(&be->mu);
    if (rc < 0 || (rc = flush(be)) < 0 || !be->keepalive) return rc;
    /* Keep-alive in the run state; a transient failure here is not fatal. */
    snprintf(ts, sizeof(ts), "%lld", (long long)sf_wall_ms());
    if ((rc = be->b->ops->state_set(be->b, be->run_id, "updated_at", ts, ex->errstr,
                                    sizeof(ex->errstr))) < 0 && !sf_broker_transient(rc))
        return rc;
    return 0;
}

static void be_free(struct coord_exec *ex)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    struct sf_result *r;
    if (!be) return;
    if (be->feed_token) coord_feed_detach(be->feed, ex, be->feed_token);
    if (be->own) {
        coord_feed_free(be->feed);
        sf_broker_free(be->b);
    }
    while ((r = q_pop(&be->q))) sf_result_free(r);
    free(be->q.v);
    for (size_t i = 0; i < be->n_parked; i++) sf_task_free(be->parked[i]);
    free(be->parked);
    json_decref(be->inflight);
    if (be->efd >= 0) close(be->efd);
    pthread_mutex_destroy(&be->mu);
    free(be);
}

int coord_exec_broker_finish(struct coord_exec *ex, const char *status, char *err, size_t errlen)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    return be->b->ops->state_set(be->b, be->run_id, "status", status, err, errlen);
}

struct coord_exec *coord_exec_broker_attach(struct sf_broker *b, struct coord_feed *feed,
                                            const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                            const char *run_id, struct coord_prep *prep, bool keepalive,
                                            const struct sf_log *lg)
{
    struct broker_exec *be = sf_xcalloc(1, sizeof(*be));
    pthread_mutex_init(&be->mu, NULL);
    be->base.submit = be_submit;
    be->base.fd = be_fd;
    be->base.take = be_take;
    be->base.inflight = be_inflight;
    be->base.tick = be_tick;
    be->base.free = be_free;
    be->base.max_inflight = cfg->max_inflight > 0 ? (size_t)cfg->max_inflight : 1000;
    be->base.external_retries = true;
    be->b = b;
    be->feed = feed;
    be->keepalive = keepalive;
    be->wf = wf;
    be->lg = lg;
    be->inflight = json_object();
    be->rt = SF_RETRY(lg, "publishing", PUBLISH_BUDGET_MS);
    sf_strlcpy(be->run_id, run_id, sizeof(be->run_id));
    be->rt.run_id = be->run_id;
    /* An eventfd cannot fail here for any reason but fd exhaustion, and
     * then nothing would work: abort like an allocation failure. */
    if ((be->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) abort();
    for (size_t i = 0; i < prep->n; i++) q_push(&be->q, prep->backlog[i]);
    prep->n = 0;
    if (be->q.n) wake(be);
    be->feed_token = coord_feed_attach(feed, &be->base, run_id, prep->cursor);
    return &be->base;
}

struct coord_exec *coord_exec_broker_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                         const char *run_id, const struct sf_log *lg,
                                         char *err, size_t errlen)
{
    struct sf_broker_cfg bcfg = { .log = lg };
    struct sf_broker *b = NULL;
    struct coord_feed *feed = NULL;
    struct coord_prep prep = {0};
    char owner[SF_RUN_ID_MAX + 8];
    int rc;

    if (sf_broker_open(&cfg->bf, &bcfg, 30000, NULL, NULL, &b, err, errlen) < 0) return NULL;
    /* Before anything is written: a backend that cannot honour concurrency,
     * rate or priority refuses the run rather than ignore them. */
    if (sf_broker_workflow_supported(b, wf, (int)cfg->priority, err, errlen) < 0) goto fail;
    snprintf(owner, sizeof(owner), "cli:%s", cfg->owner ? cfg->owner : "cli");
    struct sf_run_owner mine = { owner, owner, wf->name };
    if ((rc = sf_broker_claim_run(b, run_id, &mine, true, err, errlen)) < 0) {
        if (rc == -EEXIST) {
            char why[512];
            sf_strlcpy(why, err, sizeof(why));
            sf_errf(err, errlen, "%s: a --run-id resume is for runs `run` started with the same --owner "
                    "(this one is %s)", why, owner);
        }
        goto fail;
    }
    if (rc == 1) SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "resuming run from the state in %s", b->url_redacted);
    if (coord_broker_prepare(b, wf, run_id, rc == 1, &prep, lg, err, errlen) < 0 ||
        !(feed = coord_feed_new(b, lg, err, errlen)))
        goto fail;
    struct coord_exec *ex = coord_exec_broker_attach(b, feed, cfg, wf, run_id, &prep, true, lg);
    ((struct broker_exec *)ex)->own = true;
    coord_prep_clear(&prep);
    return ex;
fail:
    coord_prep_clear(&prep);
    coord_feed_free(feed);
    sf_broker_free(b);
    return NULL;
}
