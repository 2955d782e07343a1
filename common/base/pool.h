/* common/base/pool.h: a fixed pool of threads for blocking work (sandbox runs),
 * reporting back to the loop thread through an eventfd (like Redis' bio.c).
 * The loop submits jobs; a pool thread calls work(job, ctx) and queues the
 * job as done; the loop polls sf_pool_fd() and takes done jobs.
 * Thread: submit/take/free from the loop thread only; work runs on pool
 * threads. Jobs are owned by the caller throughout. */
#ifndef SF_POOL_H
#define SF_POOL_H

#include <stddef.h>

struct sf_pool;
typedef void (*sf_pool_work_fn)(void *job, void *ctx);

/* NULL with errno set when threads cannot be started. */
struct sf_pool *sf_pool_new(size_t nthreads, sf_pool_work_fn work, void *ctx);
void sf_pool_submit(struct sf_pool *p, void *job);
/* Readable when done jobs are waiting. */
int sf_pool_fd(const struct sf_pool *p);
/* A done job, or NULL. Clears the eventfd when the done queue is empty. */
void *sf_pool_take_done(struct sf_pool *p);
/* Jobs submitted and not yet taken back. */
size_t sf_pool_busy(const struct sf_pool *p);
/* Waits for queued and running jobs, then joins. Done jobs not taken are
 * handed to 'leftover' (may be NULL). NULL is a no-op. */
void sf_pool_free(struct sf_pool *p, void (*leftover)(void *job));

#endif
