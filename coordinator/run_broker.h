/* coordinator/run_broker.h: runs through a broker (run_broker.c) and the
 * one reader of their results (run_feed.c).
 *
 * Two ways in:
 * - `run --broker` (coord_exec_broker_new): open the broker, claim the run
 *   (owner cli:<--owner>), prepare it, read its results through a feed of
 *   its own. Blocking; that process drives one run.
 * - serve: one broker and one feed for every run; the blocking steps (claim,
 *   coord_broker_prepare) run on serve's pool, and coord_exec_broker_attach
 *   makes the executor on the loop thread without any broker I/O.
 * Threads: executors belong to the loop thread, except
 * coord_exec_broker_deliver (the feed's thread); the feed is its own thread. */
#ifndef SF_RUN_BROKER_H
#define SF_RUN_BROKER_H

#include <stdint.h>

#include "coord.h"

/* --- run_feed.c --------------------------------------------------------- */
struct coord_feed;
/* Start the reader over b (borrowed: it must outlive the feed). */
struct coord_feed *coord_feed_new(struct sf_broker *b, const struct sf_log *lg, char *err, size_t errlen);
/* Read run_id's results from cursor on, into ex (a broker executor).
 * Returns a token for detach. Any thread. */
uint64_t coord_feed_attach(struct coord_feed *f, struct coord_exec *ex, const char *run_id,
                           const char *cursor);
/* After this returns the feed never touches ex again. Any thread. */
void coord_feed_detach(struct coord_feed *f, struct coord_exec *ex, uint64_t token);
/* Stops the thread; every executor must have detached. NULL is a no-op. */
void coord_feed_free(struct coord_feed *f);

/* --- run_broker.c --------------------------------------------------------- */

/* What preparing a run found. */
struct coord_prep {
    struct sf_result **backlog;   /* results stored before, in the workflow's order */
    size_t n;
    char cursor[64];              /* where the feed goes on from */
};
void coord_prep_clear(struct coord_prep *p);

/* Blocking (a pool thread, or `run` at start): record the run as running
 * (workflow, status; started_at when resumed is false) and read the results
 * it already has, sorted so that a step's needs come before it (the
 * scheduler takes a step's results only once its needs are complete). 0 or
 * -errno with err; a transient error is worth another try. */
int coord_broker_prepare(struct sf_broker *b, const struct sf_workflow *wf, const char *run_id,
                         bool resumed, struct coord_prep *out, const struct sf_log *lg,
                         char *err, size_t errlen);

/* The executor of a prepared run over a shared broker and feed (both
 * borrowed); takes prep's backlog, which it hands to the scheduler first.
 * No broker call until the scheduler submits. keepalive: tick writes the
 * run's updated_at (serve keeps all its runs alive in one job instead). */
struct coord_exec *coord_exec_broker_attach(struct sf_broker *b, struct coord_feed *feed,
                                            const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                            const char *run_id, struct coord_prep *prep, bool keepalive,
                                            const struct sf_log *lg);

/* `run --broker`: connect (waiting up to 30 s), claim run_id for
 * cli:<cfg->owner> (a run of the same owner and workflow resumes; anyone
 * else's is refused, docs/security.md), prepare it and read its results.
 * NULL with the reason in err. The executor owns its broker and feed. */
struct coord_exec *coord_exec_broker_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                         const char *run_id, const struct sf_log *lg,
                                         char *err, size_t errlen);
/* Record the run's final status ("succeeded"/"failed"). Blocking. */
int coord_exec_broker_finish(struct coord_exec *ex, const char *status, char *err, size_t errlen);

/* The feed's hand-off: a result (taken over), or NULL with why the reading
 * failed for good (the executor reports it at its next tick). Feed thread. */
void coord_exec_broker_deliver(struct coord_exec *ex, struct sf_result *r, const char *fatal);

#endif
