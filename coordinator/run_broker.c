/* coordinator/run_broker.c: the broker executor (pattern P2): submit
 * publishes a task for the fleet, results come back from the run's result
 * stream. The same coord_run loop drives it as the local pool.
 *
 * Design notes.
 * - Publishing is once per task id (the broker remembers the ids of a run),
 *   so a coordinator restarted with the same --run-id re-derives the same
 *   deterministic tasks and publishes only those never published.
 * - A reader thread blocks on the run's results (XREAD BLOCK) and hands
 *   decoded results to the loop through a queue and an eventfd: fd()/take().
 * - Resume: the reader starts at the beginning of the run's result stream.
 *   Everything already there is read first and handed over in the
 *   workflow's topological order (stable within a step), because the
 *   scheduler can only accept a step's results once its needs are complete.
 * - Retries belong to the workers: a worker posts one final result per task,
 *   carrying the attempt number it reached, and this executor says so
 *   (external_retries), so the scheduler takes that result as final.
 * - "sandbox": "shared" workflows need every step in one sandbox on one
 *   machine: run_bundle.c ships the whole workflow as ONE task (field
 *   `workflow`) that a single worker runs step by step (bundle.c), through
 *   this same executor.
 */
#include "broker.h"
#include "retry.h"
#include "run_broker.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define READ_BATCH 256

struct rqueue {
    struct sf_result **v;
    size_t head, n, cap;
};

struct broker_exec {
    struct coord_exec base;
    struct sf_broker *b;
    const struct sf_workflow *wf;
    const struct sf_log *lg;
    char run_id[128];
    json_t *inflight;            /* loop thread: task id -> true */
    int efd;
    pthread_t reader;
    bool reader_started;
    atomic_int stop;
    pthread_mutex_t mu;          /* guards q and fatal */
    struct rqueue q;
    char fatal[512];             /* non-empty: the reader failed for good */
    char cursor[64];             /* reader thread */
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

/* Position of a step in the topological order (unknown steps last). */
static size_t topo_pos(const struct sf_workflow *wf, const char *step)
{
    long i = step ? sf_workflow_find(wf, step) : -1;
    for (size_t k = 0; i >= 0 && k < wf->n_steps; k++)
        if (wf->order[k] == (size_t)i) return k;
    return wf->n_steps;
}

/* Hand one result to the loop. */
static void deliver(struct broker_exec *be, struct sf_result *r)
{
    pthread_mutex_lock(&be->mu);
    q_push(&be->q, r);
    pthread_mutex_unlock(&be->mu);
}

static void wake(struct broker_exec *be)
{
    uint64_t one = 1;
    if (write(be->efd, &one, sizeof(one)) < 0) { /* counter full: already readable */ }
}

/* One batch from the result stream, decoded. Returns how many, or -errno. */
static int read_batch(struct broker_exec *be, struct sf_result **out, int block_ms,
                      char *err, size_t errlen)
{
    char *raw[READ_BATCH];
    size_t lens[READ_BATCH], n = 0, k = 0;
    int rc = be->b->ops->results(be->b, be->run_id, be->cursor, sizeof(be->cursor), raw, lens,
                                 READ_BATCH, block_ms, &n, err, errlen);
    if (rc < 0) return rc;
    for (size_t i = 0; i < n; i++) {
        char derr[512];
        struct sf_result *r = sf_broker_decode_result(be->b, raw[i], lens[i], derr, sizeof(derr));
        if (r)
            out[k++] = r;
        else
            SF_LOG(be->lg, SF_LOG_WARN, be->run_id, NULL, "ignoring a bad result message: %s", derr);
        free(raw[i]);
    }
    return (int)k;
}

static int cmp_topo_arg(const void *a, const void *b, void *arg)
{
    const struct sf_workflow *wf = arg;
    struct sf_result *const *ra = a, *const *rb = b;
    size_t pa = topo_pos(wf, (*ra)->step), pb = topo_pos(wf, (*rb)->step);
    if (pa != pb) return pa < pb ? -1 : 1;
    return (*ra)->index < (*rb)->index ? -1 : (*ra)->index > (*rb)->index;
}

static bool reader_stopping(void *arg)
{
    return atomic_load(&((struct broker_exec *)arg)->stop);
}

static void *reader_main(void *arg)
{
    struct broker_exec *be = arg;
    struct sf_result *batch[READ_BATCH];
    struct sf_result **backlog = NULL;
    size_t n_backlog = 0;
    bool catching_up = true;
    struct sf_retry rt = SF_RETRY(be->lg, "reading results", -1);
    rt.run_id = be->run_id;
    rt.stop = reader_stopping;
    rt.stop_arg = be;
    char err[512];

    while (!atomic_load(&be->stop)) {
        int n = read_batch(be, batch, catching_up ? 0 : 250, err, sizeof(err));
        if (n < 0) {
            if (!sf_broker_transient(n)) {
                pthread_mutex_lock(&be->mu);
                sf_strlcpy(be->fatal, err, sizeof(be->fatal));
                pthread_mutex_unlock(&be->mu);
                wake(be);
                break;
            }
            sf_retry_wait(&rt, err);
            continue;
        }
        sf_retry_reset(&rt);
        if (catching_up) {
            backlog = sf_xrealloc(backlog, (n_backlog + (size_t)n + 1) * sizeof(*backlog));
            memcpy(backlog + n_backlog, batch, (size_t)n * sizeof(*batch));
            n_backlog += (size_t)n;
            if (n == READ_BATCH) continue;
            /* The stored results are in: replay them in topological order. */
            qsort_r(backlog, n_backlog, sizeof(*backlog), cmp_topo_arg, (void *)be->wf);
            if (n_backlog)
                SF_LOG(be->lg, SF_LOG_INFO, be->run_id, NULL, "replaying %zu stored result(s)", n_backlog);
            for (size_t i = 0; i < n_backlog; i++) deliver(be, backlog[i]);
            free(backlog);
            backlog = NULL;
            catching_up = false;
            if (n_backlog) wake(be);
            n_backlog = 0;
            continue;
        }
        for (int i = 0; i < n; i++) deliver(be, batch[i]);
        if (n) wake(be);
    }
    for (size_t i = 0; i < n_backlog; i++) sf_result_free(backlog[i]);
    free(backlog);
    return NULL;
}

static int be_submit(struct coord_exec *ex, struct sf_task *t)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    struct sf_retry rt = SF_RETRY(be->lg, "publishing", 600000);
    rt.run_id = be->run_id;
    rt.task_id = t->id;
    int rc;
    /* Redis restarting must not fail the run: publish again until it is back
     * (the run's published set makes a repeat harmless). */
    while ((rc = sf_broker_publish_task(be->b, t, ex->errstr, sizeof(ex->errstr))) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, ex->errstr)) {}
    if (rc == 1) SF_LOG(be->lg, SF_LOG_DEBUG, be->run_id, t->id, "published before; waiting for its result");
    if (rc >= 0) json_object_set_new(be->inflight, t->id, json_true());
    sf_task_free(t);
    return rc < 0 ? rc : 0;
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
    return json_object_size(((struct broker_exec *)ex)->inflight);
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
    if (rc < 0) return rc;
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
    atomic_store(&be->stop, 1);
    if (be->reader_started) pthread_join(be->reader, NULL);
    while ((r = q_pop(&be->q))) sf_result_free(r);
    free(be->q.v);
    json_decref(be->inflight);
    if (be->efd >= 0) close(be->efd);
    pthread_mutex_destroy(&be->mu);
    sf_broker_free(be->b);
    free(be);
}

int coord_exec_broker_finish(struct coord_exec *ex, const char *status, char *err, size_t errlen)
{
    struct broker_exec *be = (struct broker_exec *)ex;
    return be->b->ops->state_set(be->b, be->run_id, "status", status, err, errlen);
}

struct coord_exec *coord_exec_broker_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                         const char *run_id, const struct sf_log *lg,
                                         char *err, size_t errlen)
{
    struct broker_exec *be;
    struct sf_broker_cfg bcfg = { .log = lg };
    char *prev = NULL, ts[32];

    be = sf_xcalloc(1, sizeof(*be));
    be->efd = -1;
    pthread_mutex_init(&be->mu, NULL);
    be->base.submit = be_submit;
    be->base.fd = be_fd;
    be->base.take = be_take;
    be->base.inflight = be_inflight;
    be->base.tick = be_tick;
    be->base.free = be_free;
    be->base.max_inflight = cfg->max_inflight > 0 ? (size_t)cfg->max_inflight : 1000;
    be->base.external_retries = true;
    be->wf = wf;
    be->lg = lg;
    be->inflight = json_object();
    sf_strlcpy(be->run_id, run_id, sizeof(be->run_id));
    if (sf_broker_open(&cfg->bf, &bcfg, 30000, NULL, NULL, &be->b, err, errlen) < 0) goto fail;
    /* Before any state is written: a backend that cannot honour concurrency,
     * rate or priority refuses the run rather than ignore them. */
    if (sf_broker_workflow_supported(be->b, wf, (int)cfg->priority, err, errlen) < 0) goto fail;
    if (be->b->ops->state_get(be->b, run_id, "workflow", &prev, err, errlen) < 0) goto fail;
    if (prev && strcmp(prev, wf->name)) {
        sf_errf(err, errlen, "run '%s' belongs to workflow '%s', not '%s'", run_id, prev, wf->name);
        goto fail;
    }
    if (prev) SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "resuming run from the state in %s", be->b->url_redacted);
    snprintf(ts, sizeof(ts), "%lld", (long long)sf_wall_ms());
    if (be->b->ops->state_set(be->b, run_id, "workflow", wf->name, err, errlen) < 0 ||
        be->b->ops->state_set(be->b, run_id, "status", "running", err, errlen) < 0 ||
        (!prev && be->b->ops->state_set(be->b, run_id, "started_at", ts, err, errlen) < 0))
        goto fail;
    be->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (be->efd < 0 || pthread_create(&be->reader, NULL, reader_main, be) != 0) {
        sf_errf(err, errlen, "cannot start the result reader: %s", strerror(errno));
        goto fail;
    }
    be->reader_started = true;
    free(prev);
    return &be->base;
fail:
    free(prev);
    be_free(&be->base);
    return NULL;
}
