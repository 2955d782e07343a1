/* coordinator/coord.h: the coordinator's configuration and the executor
 * interface its run loop drives. An executor takes tasks and hands back
 * results through a pollable fd: the local pool (run_local.c: the
 * coordinator creates the sandboxes itself) or a broker (run_broker.c:
 * workers anywhere run them). Everything here belongs to the loop thread. */
#ifndef SF_COORD_H
#define SF_COORD_H

#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "scheduler.h"
#include "task.h"
#include "workflow.h"

struct coord_cfg {
    char *input;          /* --input FILE or "-" */
    char *output;         /* --output FILE */
    long concurrency;     /* 0 = number of CPUs */
    char *sandbox;        /* local | process | e2b */
    struct sf_broker_flags bf;   /* --broker (NULL url: central), --queue, --kafka-config */
    char *e2b_template;   /* --sandbox e2b: template of the sandboxes */
    struct sf_strlist egress_allow, egress_deny, egress_dns;   /* central: sandbox egress */
    int no_network;       /* central: refuse workflows with network steps */
    char *run_id;
    char *owner;          /* --owner: a broker run is claimed as cli:<owner> (run_broker.h) */
    char *log_format, *log_level;
    long output_cap;
    long retry_base_ms;
    long max_inflight;    /* broker mode: tasks published and not yet finished */
    int progress;         /* force the progress bar even without a tty */
    long priority;        /* --priority: of the steps without their own (0..9) */
    char *secrets_dir;    /* --secrets-dir (central runs): DIR/NAME (secrets.h) */
    char *callback_url, *callback_secret_ref;   /* a run's callback (callbacks.h) */
    struct sf_strlist callback_headers;         /* --callback-header NAME:VALUE */
    int help, version;
};

struct coord_exec {
    /* Take ownership of t and start it. 0 or -errno (message in errstr). */
    int (*submit)(struct coord_exec *ex, struct sf_task *t);
    /* Readable when results may be waiting. */
    int (*fd)(struct coord_exec *ex);
    /* A finished result (caller owns it), or NULL. */
    struct sf_result *(*take)(struct coord_exec *ex);
    /* Tasks submitted whose result has not been taken. */
    size_t (*inflight)(struct coord_exec *ex);
    /* Called about once a second from the loop (leases, reconnects). */
    int (*tick)(struct coord_exec *ex);
    void (*free)(struct coord_exec *ex);
    size_t max_inflight;
    bool external_retries;   /* it retries failed tasks itself (scheduler.h) */
    /* Central runs: concurrency keys and rate limits within this process
     * (gate.h), consulted by the scheduler; NULL through a broker, where
     * the fleet enforces them. Owned by the executor. */
    struct sf_gate *gate;
    char errstr[512];
};

/* run_local.c: NULL with a message in err when the sandbox backend cannot
 * work here. Not for "shared" workflows: */
struct coord_exec *coord_exec_local_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                        const struct sf_log *lg, char *err, size_t errlen);
/* run_local.c: a "shared"-sandbox workflow centrally, through the bundle
 * runner (bundle.h). Same contract as coord_run. */
json_t *coord_run_local_shared(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                               const char *run_id, json_t *input, const struct sf_log *lg,
                               char *err, size_t errlen);
/* run.c: one task's result on the log (a failure at warn, without text the
 * agent wrote; that at debug only). */
void coord_log_result(const struct sf_log *lg, const struct sf_result *r);

/* run.c: drive a workflow to the end through 'ex'. Returns the result
 * document (new reference), or NULL with a message when the executor broke. */
json_t *coord_run(const struct coord_cfg *cfg, const struct sf_workflow *wf, const char *run_id,
                  json_t *input, struct coord_exec *ex, const struct sf_log *lg,
                  char *err, size_t errlen);

/* run_bundle.c: a "shared"-sandbox workflow through a broker, as one task
 * that one worker runs whole. Same contract as coord_run. */
json_t *coord_run_bundle(const struct coord_cfg *cfg, const struct sf_workflow *wf, const char *run_id,
                         json_t *input, struct coord_exec *ex, const struct sf_log *lg,
                         char *err, size_t errlen);

/* run.c: one run as a step function, for loops that drive several runs
 * (serve). step() does what can be done now without waiting and returns 1
 * when the run is over, 0 with *timeout_ms = how long the caller may wait
 * on ex->fd before the next step, or -EIO with a message when the executor
 * broke. progress_bar: draw the bar on stderr. The runner borrows cfg, wf,
 * input, ex and lg. Loop thread only. */
struct coord_runner;
struct coord_runner *coord_runner_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                      const char *run_id, json_t *input, struct coord_exec *ex,
                                      const struct sf_log *lg, bool progress_bar);
int coord_runner_step(struct coord_runner *cr, int *timeout_ms, char *err, size_t errlen);
const struct sf_sched *coord_runner_sched(const struct coord_runner *cr);
/* The run's priority (0..9) for its steps without their own: call before
 * the first step (serve: the submission's "priority"). */
void coord_runner_set_priority(struct coord_runner *cr, int priority);
/* The result document (new reference); meaningful once step() returned 1. */
json_t *coord_runner_doc(const struct coord_runner *cr);
void coord_runner_free(struct coord_runner *cr);

/* progress.c */
struct coord_progress;
struct coord_progress *coord_progress_new(bool tty, int fd);
void coord_progress_update(struct coord_progress *pg, const struct sf_sched_progress *p,
                           bool final);
void coord_progress_free(struct coord_progress *pg);

#endif
