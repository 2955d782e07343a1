/* common/exec/bundle.h: a whole workflow run inside ONE sandbox by whoever holds
 * it — the coordinator for a central "shared" run, or one worker when a
 * "shared"-sandbox workflow goes through a broker as a single bundle task
 * (task field `workflow`). Steps run one at a time in DAG order; files in
 * /tmp/shared persist between them; retries wait out their backoff here.
 * Thread: any; blocks until the run ends. */
#ifndef SF_BUNDLE_H
#define SF_BUNDLE_H

#include "exec.h"
#include "scheduler.h"
#include "workflow.h"

/* Sandbox options that fit every step of the workflow (the largest of each
 * limit; network when any step asks for it): the one sandbox of a
 * "shared" run. */
int sf_bundle_sandbox_opts(const struct sf_workflow *wf, const struct sf_templates *tpl,
                           struct sf_sandbox_opts *o, char *err, size_t errlen);

/* What a caller may add to a run (all optional). */
struct sf_bundle_opts {
    int64_t retry_base_ms;      /* 0: the scheduler's default */
    int priority;               /* the run's, for steps without their own (0..9) */
    /* After each task's result, on the running thread: for logs and progress. */
    void (*on_result)(void *arg, const struct sf_sched *s, const struct sf_result *r);
    void *arg;
};

/* Run 'wf' in one sandbox from 'p' — the one implementation of "shared"
 * runs, central or on a worker. input: replaces the input of root steps
 * (may be NULL); opts may be NULL. Returns the result document (new
 * reference); NULL with a message when the sandbox cannot be created. */
json_t *sf_bundle_run(struct sf_sandbox_provider *p, const struct sf_workflow *wf,
                      const char *run_id, json_t *input, const struct sf_exec_cfg *cfg,
                      const struct sf_bundle_opts *opts, char *err, size_t errlen);

/* The task form: t->workflow holds the workflow with its files inline.
 * The result's output is the run's result document; its status is ok when
 * the run succeeded, error when it ran and failed, rejected when the
 * embedded workflow is invalid (with every problem in the error). */
struct sf_result *sf_bundle_exec(struct sf_sandbox_provider *p, const struct sf_task *t,
                                 const struct sf_exec_cfg *cfg);

#endif
