/* common/model/scheduler.h: the run of one workflow as a state machine, independent of
 * how tasks are executed (the coordinator's local pool or a broker).
 *
 * It decides which tasks are ready (DAG order, map fan-out produced lazily,
 * one element at a time, so a 100,000-element map never exists as 100,000
 * tasks at once), wires inputs (a step's `input`, the output of its one need,
 * or {"need": output, ...}), takes results (idempotent by task id: duplicates
 * and stale attempts are ignored), schedules retries with exponential
 * backoff and jitter, skips the dependants of failed steps, and renders the
 * result document.
 *
 * Task ids are deterministic: "<run_id>:<step>:<index>", so a resumed run
 * recognises results from before the restart.
 * Ownership: the sched borrows the workflow (which must outlive it).
 * Thread: one thread (the coordinator's loop) owns a sched.
 */
#ifndef SF_SCHED_H
#define SF_SCHED_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "task.h"
#include "workflow.h"

struct sf_sched;

/* input_override: replaces the input of steps without needs (may be NULL;
 * borrowed until sf_sched_free). */
struct sf_sched *sf_sched_new(const struct sf_workflow *wf, const char *run_id,
                              json_t *input_override);
void sf_sched_free(struct sf_sched *s);

/* First retry delay (retry.h: doubles per attempt, capped at 30 s, jittered
 * to 50-100%). Default 500 ms. */
void sf_sched_set_retry_base_ms(struct sf_sched *s, int64_t ms);
/* The executor retries failed tasks itself (the workers of a broker) and
 * reports one final result per task, carrying the attempt it reached: the
 * scheduler then schedules no retries and takes a failure at any attempt
 * as final (the result document's "attempts" is that attempt). */
void sf_sched_set_external_retries(struct sf_sched *s, bool on);

/* The run's priority (0..9, default 0): of every step without its own
 * `priority` (a submission's or `run --priority`). */
void sf_sched_set_priority(struct sf_sched *s, int priority);

/* Central runs: tasks with a concurrency or rate key start only when this
 * in-process gate admits them (gate.h); a held-back task does not block the
 * others. Borrowed; NULL (the default) = no gating (through a broker the
 * fleet gates). */
struct sf_gate;
void sf_sched_set_gate(struct sf_sched *s, struct sf_gate *g);

/* The next task ready at 'now_ms' (CLOCK_MONOTONIC), owned by the caller, or
 * NULL when none is ready now. */
struct sf_task *sf_sched_next(struct sf_sched *s, int64_t now_ms);

/* The earliest time a delayed retry becomes ready or a task held back by a
 * rate gate may pass (as of the last sf_sched_next), or -1 when none. */
int64_t sf_sched_next_wakeup(const struct sf_sched *s);

/* Take a result. Returns 0 when it changed the state, 1 when it was ignored
 * (a duplicate, a stale attempt, or an unknown task), -EAGAIN when the step
 * is not ready yet (its input is unknown: feed the results of its needs
 * first; used when a resumed run replays stored results). */
int sf_sched_complete(struct sf_sched *s, const struct sf_result *r, int64_t now_ms);

/* Mark a task as started (for the step's duration and progress). */
void sf_sched_started(struct sf_sched *s, const struct sf_task *t, int64_t now_ms);

bool sf_sched_done(const struct sf_sched *s);
bool sf_sched_succeeded(const struct sf_sched *s);

/* Counts for progress: tasks finished and tasks known so far (a map adds its
 * elements once its input is known), steps finished and total. */
struct sf_sched_progress {
    int64_t tasks_done, tasks_known;
    size_t steps_done, steps_total;
    int64_t retries;
};
void sf_sched_progress(const struct sf_sched *s, struct sf_sched_progress *p);

/* One step's progress for status pages: state is "waiting" (needs not
 * done), "running", "succeeded", "failed", "timeout" or "skipped"; total is
 * 0 for a map whose input is not known yet. i < wf->n_steps. */
struct sf_sched_step {
    const char *state;          /* static string */
    int64_t done, total;
};
void sf_sched_step_progress(const struct sf_sched *s, size_t i, struct sf_sched_step *out);

/* The result document (README, "Result document"): new reference. */
json_t *sf_sched_result_doc(const struct sf_sched *s, int64_t duration_ms);

const char *sf_sched_run_id(const struct sf_sched *s);

#endif
