/* coordinator/run_feed.c: one reader of results for every run a process
 * drives through a broker (run_broker.h).
 *
 * Design notes.
 * - One thread calls ops->results_many over the attached runs, each from
 *   its own cursor (Redis: one XREAD over their streams; Kafka: one
 *   consumer over their partitions), so serve's hundred runs cost one
 *   connection and one thread, not a hundred; `run` attaches its one run.
 * - The thread reads from a snapshot of the attached runs without holding
 *   the lock (the read blocks up to 250 ms), then, under the lock, hands
 *   each decoded result to its run if the run is still attached and moves
 *   the run's cursor. Detach takes the same lock, so once it returns the
 *   feed never touches that run again.
 * - A run attached while a read blocks is picked up by the next read:
 *   its first result may wait up to one block (250 ms).
 * - Broker hiccups are retried (100 ms doubling to 2 s, logged once per
 *   5 s); a failure for good is given to every attached run (coord_feed_
 *   deliver_fatal), which their executors report on the next tick. */
#include "broker.h"
#include "retry.h"
#include "run_broker.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FEED_BATCH 256
#define FEED_BLOCK_MS 250

struct attached {
    struct coord_exec *ex;
    char run_id[128];
    char cursor[64];
    uint64_t gen;                /* tells a re-attached run from its old self */
};

struct coord_feed {
    struct sf_broker *b;
    const struct sf_log *lg;
    pthread_mutex_t mu;
    struct attached *v;
    size_t n, cap;
    uint64_t next_gen;
    atomic_int stop;
    pthread_t th;
};

static bool feed_stopping(void *arg) { return atomic_load(&((struct coord_feed *)arg)->stop); }

/* Under mu: the index of the entry that is still (ex, gen), or -1. */
static long find(const struct coord_feed *f, const struct coord_exec *ex, uint64_t gen)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].ex == ex && f->v[i].gen == gen) return (long)i;
    return -1;
}

/* Decode without the lock (a claim-checked output is fetched from the
 * broker), then hand each result to its run if the run is still attached. */
static void hand_over(struct coord_feed *f, const struct attached *snap, struct sf_run_cursor *cur,
                      size_t n, char **raw, size_t *lens, size_t *which, size_t got)
{
    struct sf_result *res[FEED_BATCH];
    for (size_t k = 0; k < got; k++) {
        char derr[512];
        if (!(res[k] = sf_broker_decode_result(f->b, raw[k], lens[k], derr, sizeof(derr))))
            SF_LOG(f->lg, SF_LOG_WARN, snap[which[k]].run_id, NULL, "ignoring a bad result message: %s", derr);
        free(raw[k]);
    }
    pthread_mutex_lock(&f->mu);
    for (size_t k = 0; k < got; k++) {
        long i = res[k] ? find(f, snap[which[k]].ex, snap[which[k]].gen) : -1;
        if (i >= 0) coord_exec_broker_deliver(f->v[i].ex, res[k], NULL);
        else sf_result_free(res[k]);
    }
    for (size_t j = 0; j < n; j++) {
        long i = find(f, snap[j].ex, snap[j].gen);
        if (i >= 0) sf_strlcpy(f->v[i].cursor, cur[j].cursor, sizeof(f->v[i].cursor));
    }
    pthread_mutex_unlock(&f->mu);
}

static void fail_all(struct coord_feed *f, const char *why)
{
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n; i++) coord_exec_broker_deliver(f->v[i].ex, NULL, why);
    pthread_mutex_unlock(&f->mu);
}

static void *feed_main(void *arg)
{
    struct coord_feed *f = arg;
    struct sf_retry rt = SF_RETRY(f->lg, "reading results", -1);
    rt.stop = feed_stopping;
    rt.stop_arg = f;
    char *raw[FEED_BATCH], err[512];
    size_t lens[FEED_BATCH], which[FEED_BATCH];
    while (!atomic_load(&f->stop)) {
        pthread_mutex_lock(&f->mu);
        size_t n = f->n;
        struct attached *snap = sf_xcalloc(n ? n : 1, sizeof(*snap));
        struct sf_run_cursor *cur = sf_xcalloc(n ? n : 1, sizeof(*cur));
        if (n) memcpy(snap, f->v, n * sizeof(*snap));
        pthread_mutex_unlock(&f->mu);
        for (size_t i = 0; i < n; i++) {
            cur[i].run_id = snap[i].run_id;
            sf_strlcpy(cur[i].cursor, snap[i].cursor, sizeof(cur[i].cursor));
        }
        size_t got = 0;
        int rc = f->b->ops->results_many(f->b, cur, n, raw, lens, which, FEED_BATCH, FEED_BLOCK_MS, &got,
                                         err, sizeof(err));
        if (rc == 0) {
            sf_retry_reset(&rt);
            hand_over(f, snap, cur, n, raw, lens, which, got);
        } else if (sf_broker_transient(rc)) {
            sf_retry_wait(&rt, err);
        } else {
            SF_LOG(f->lg, SF_LOG_ERROR, NULL, NULL, "reading results: %s", err);
            fail_all(f, err);
            sf_retry_wait(&rt, err);
        }
        free(snap);
        free(cur);
    }
    return NULL;
}

struct coord_feed *coord_feed_new(struct sf_broker *b, const struct sf_log *lg, char *err, size_t errlen)
{
    struct coord_feed *f = sf_xcalloc(1, sizeof(*f));
    f->b = b;
    f->lg = lg;
    pthread_mutex_init(&f->mu, NULL);
    if (!b->ops->results_many) {
        sf_errf(err, errlen, "the %s backend cannot read several runs' results at once", b->ops->scheme);
        goto fail;
    }
    if (pthread_create(&f->th, NULL, feed_main, f) != 0) {
        sf_errf(err, errlen, "cannot start the result reader: %s", strerror(errno));
        goto fail;
    }
    return f;
fail:
    pthread_mutex_destroy(&f->mu);
    free(f);
    return NULL;
}

uint64_t coord_feed_attach(struct coord_feed *f, struct coord_exec *ex, const char *run_id,
                           const char *cursor)
{
    pthread_mutex_lock(&f->mu);
    if (f->n == f->cap) f->v = sf_xrealloc(f->v, (f->cap = f->cap ? 2 * f->cap : 16) * sizeof(*f->v));
    struct attached *a = &f->v[f->n++];
    memset(a, 0, sizeof(*a));
    a->ex = ex;
    a->gen = ++f->next_gen;
    sf_strlcpy(a->run_id, run_id, sizeof(a->run_id));
    sf_strlcpy(a->cursor, cursor ? cursor : "", sizeof(a->cursor));
    uint64_t gen = a->gen;
    pthread_mutex_unlock(&f->mu);
    return gen;
}

void coord_feed_detach(struct coord_feed *f, struct coord_exec *ex, uint64_t gen)
{
    pthread_mutex_lock(&f->mu);
    long i = find(f, ex, gen);
    if (i >= 0) f->v[i] = f->v[--f->n];
    pthread_mutex_unlock(&f->mu);
}

void coord_feed_free(struct coord_feed *f)
{
    if (!f) return;
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    pthread_mutex_destroy(&f->mu);
    free(f->v);
    free(f);
}
