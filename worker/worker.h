/* worker/worker.h: sandfleet-worker's state and modules.
 *   main.c   flags/env, set-up, exit code
 *   loop.c   the one loop thread: signals, fetch, leases, heartbeats, drain
 *   slots.c  what a pool thread does with one delivery: decode, run in a
 *            sandbox, then complete / retry later / dead-letter
 *   admit.c  before a task runs: backend support, priority band, secrets,
 *            concurrency and rate gates (issue 15; docs/protocol.md §9)
 * Threads: the loop thread owns struct worker and the in-flight table; pool
 * threads only touch their own struct wjob, the broker (thread-safe), the
 * provider (thread-safe create) and the atomic counters. A job is shared
 * between the two while in flight: see struct wjob. (ThreadSanitizer-clean:
 * tests/unit/test_worker_slots.c in a build with -DENABLE_TSAN=ON.)
 * A job is a slot kept busy: the call that settles a task may bring the
 * slot's next delivery (sf_completion.next), which the same pool thread then
 * runs without going back to the loop (no fetch round trip, no hand-off
 * per task). The loop still fetches for slots that went idle. */
#ifndef SF_WORKER_H
#define SF_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker.h"
#include "bundle.h"
#include "callback_dispatch.h"
#include "config.h"
#include "exec.h"
#include "log.h"
#include "obs.h"
#include "pool.h"
#include "retry.h"
#include "sandbox.h"
#include "util.h"
#include "warm.h"
#include "secrets.h"

struct worker_cfg {
    struct sf_broker_flags bf;        /* --broker, --queue, --kafka-config (broker.h) */
    char *sandbox, *worker_id;
    char *secrets_dir;      /* --secrets-dir: DIR/NAME (secrets.h) */
    char *log_format, *log_level;
    long concurrency;       /* slots (sandboxes at once) */
    long lease_ms, grace_s, output_cap, retry_base_ms, claim_check, settle_timeout_s;
    long warm_idle_s;       /* --warm-idle-s (warm.h) */
    long priority_aging_s;  /* --priority-aging-s (docs/protocol.md §9) */
    long max_memory_mb, max_pids, max_disk_mb, max_cpu_s;   /* operator caps (policy.h) */
    double max_timeout_s;
    struct sf_strlist templates;      /* --template NAME=DIR (repeatable) */
    char *template_store;             /* imported templates: STORE/NAME/rootfs */
    char *e2b_listen, *e2b_api_key, *e2b_template, *e2b_domain;  /* E2B-compatible server (e2b_server.h) */
    long e2b_max, e2b_max_paused;
    struct sf_http_limits e2b_limits;    /* --e2b-max-conns ... (http_guard.h) */
    char *e2b_ingress, *e2b_gw_secret;   /* behind the fleet's gateway (e2b_member.h) */
    char *http;             /* --http HOST:PORT: /metrics, /healthz, /readyz */
    struct sf_http_limits http_limits;   /* its bounds (http_guard.h) */
    long healthz_stale_s;
    char *callback_allow;   /* --callback-allow HOST[,HOST...] (callbacks.c) */
    struct sf_strlist egress_allow, egress_deny, egress_dns;   /* sandbox egress (sandbox.h) */
    int no_network;         /* --no-network: refuse tasks that ask for network */
    long callback_timeout_ms, callback_concurrency, callback_attempts, callback_base_ms,
         callback_max_body;
    int help, version;
};

/* What happened to a delivery, for the loop's log and counters. */
enum wjob_outcome {
    WJOB_OK = 0,       /* result stored (or it was a duplicate) and acked */
    WJOB_FAILED,       /* final attempt failed: result + dead letter, acked */
    WJOB_RETRY,        /* next attempt scheduled, acked */
    WJOB_DEAD,         /* undecodable: dead-lettered, acked */
    WJOB_ABANDONED,    /* broker unusable until stop: left to the lease */
    WJOB_HANDED_ON,    /* not run here: waits at a gate, moved to its band, or left
                          for a worker that holds its secrets (admit.c) */
};

struct worker;
struct e2b_member;
struct sf_e2b_server;
/* What the loop drives of the worker's E2B server (worker/e2b/, set up by
 * main.c; NULL without --e2b-listen / --e2b-ingress). The loop sees only
 * these, so it is built and tested without the E2B server. */
struct worker_e2b {
    void *arg;
    void (*drain)(void *arg);                    /* take no new sandboxes */
    size_t (*alive)(void *arg);                  /* sandboxes alive */
    /* --e2b-ingress only (NULL otherwise): the fleet's heartbeat, and the
     * records of changed sandboxes (fd readable when some wait). */
    int (*beat)(void *arg, struct sf_broker *b, bool draining, bool leaving, char *err,
                size_t errlen);
    int (*fd)(void *arg);
    int (*flush)(void *arg, struct sf_broker *b, char *err, size_t errlen);
};

/* Where a job is; the pool thread moves it forward, the loop reads it. */
enum wjob_phase {
    WJOB_RUNNING = 0,  /* decoding, running the sandbox: lease renewed */
    WJOB_SETTLING,     /* storing its outcome (retried on broker failures): lease
                          still renewed, so the task is not redone meanwhile */
    WJOB_SETTLED,      /* acked or given up: no more renewals */
};

/* A slot's deliveries in flight, one at a time. The loop fills d, submits
 * the job and takes it back from the pool's done queue (after which it owns
 * everything again). Meanwhile the pool thread writes task_id/run_id/attempt
 * once per delivery and then sets ids_ready (release): the loop reads them
 * only after seeing ids_ready (acquire), under w->jobs_mu. When a settling
 * call brought the next delivery, the pool thread puts it in d (and resets
 * the rest) under w->jobs_mu, which the loop holds while it reads d.handle
 * or the ids. outcome is read by the loop only after the job came back. */
struct wjob {
    struct worker *w;
    struct sf_delivery d;     /* changed only under w->jobs_mu (see above) */
    atomic_int phase;         /* enum wjob_phase */
    atomic_bool ids_ready;
    bool lost_logged;         /* under w->jobs_mu */
    enum wjob_outcome outcome;
    char task_id[SF_TASK_ID_MAX + 1];
    char run_id[SF_RUN_ID_MAX + 1];   /* with task_id: on every log line about the job */
    int attempt;
    bool gated;               /* pool thread: holds a concurrency slot (admit.c) */
};

struct worker {
    const struct worker_cfg *cfg;
    const struct sf_log *lg;
    struct sf_broker *b;
    struct sf_sandbox_provider *prov;
    struct sf_exec_cfg ecfg;
    struct sf_templates *templates;   /* ecfg and the E2B server point here */
    struct sf_policy policy;  /* the operator's caps; ecfg and the E2B server point here */
    struct sf_pool *pool;
    char id[128], host[64];
    struct wjob **inflight;   /* loop thread: jobs submitted, not yet taken back */
    size_t n_inflight;
    pthread_mutex_t jobs_mu;  /* a job's delivery and ids while in flight (struct wjob) */
    atomic_int hard_stop;     /* pool threads stop retrying broker calls */
    atomic_bool draining;     /* set by the loop: slots take no next delivery */
    atomic_llong done, failed;
    int64_t started_ms;
    struct sf_callback_dispatch *cbd;   /* callbacks.c: delivering callbacks; NULL when off */
    const struct worker_e2b *e2b;       /* --e2b-listen / --e2b-ingress, or NULL */
    struct sf_e2b_server *e2b_srv;      /* main.c: the server behind it */
    struct e2b_member *member;          /* main.c: --e2b-ingress's state */
    struct sf_callback_allow cb_allow;
    struct sf_secrets secrets;    /* where task and callback secrets come from */
    struct worker_obs obs;    /* metrics and probes (obs.h); any thread */
};

/* slots.c: the pool's work function (job = struct wjob *, ctx = struct worker *). */
void worker_slot_work(void *job, void *ctx);
/* Whether a failed attempt is retried (rejected never is, nor the last). */
bool worker_should_retry(const struct sf_task *t, const struct sf_result *r);
/* For pool threads, around broker calls about job j: the retry loop of
 * retry.h with --settle-timeout-s, stopped by a hard stop; settling moves
 * the job to WJOB_SETTLING. */
struct sf_retry worker_retry(struct worker *w, struct wjob *j, const char *what, bool settling);
/* A settling call of job j that failed for good (logged with 'what'). */
void worker_settle_failed(struct worker *w, struct wjob *j, int rc, const char *what, const char *err);
/* Store 'next' (encoded, input claim-checked) to be queued again after
 * delay_ms and ack j's delivery: 0 stored, 1 the delivery was no longer
 * ours, -errno (given up). */
int worker_requeue(struct worker *w, struct wjob *j, const struct sf_task *next, int64_t delay_ms,
                   const char *what, char *err, size_t errlen);
/* The final result r of t (a dead letter with it when it failed); sets
 * j->outcome. next: NULL, or (zeroed) where the slot's next delivery may
 * come in the same call (not while draining or stopping). */
void worker_complete(struct worker *w, struct wjob *j, const struct sf_task *t,
                     const struct sf_result *r, struct sf_delivery *next);

/* admit.c: 0 when task t of job j may run now; 1 when it was handed on or
 * finished without running (j->outcome says how). Pool threads. */
int worker_admit(struct worker *w, struct wjob *j, const struct sf_task *t);
/* After t was settled: give back the concurrency slot admit took. */
void worker_leave(struct worker *w, struct wjob *j, const struct sf_task *t);

/* loop.c: run until drained or stopped. sfd: signalfd for SIGTERM/SIGINT.
 * Returns 0 after a clean drain, 1 when tasks were left to their leases. */
int worker_loop(struct worker *w, int sfd);

/* callbacks.c: start delivering the queue's pending callbacks on their own
 * thread (not when --callback-concurrency is 0 or the backend has no
 * callbacks yet); 0 or -errno with the reason. stop gives unfinished
 * deliveries back to the queue; both from main only. */
int worker_callbacks_start(struct worker *w, char *err, size_t errlen);
void worker_callbacks_stop(struct worker *w);

#endif
