/* coordinator/serve/serve.h: `sandfleet-coordinator serve`, a long-running
 * coordinator: workflow submissions over HTTP and from the sf:submissions
 * stream, many runs at once on one loop thread, a JSON API and a status
 * page. Private to this folder. Modules:
 *   serve.c         options, set-up, the loop
 *   serve_runs.c    starting, stepping and finishing runs on the loop
 *   serve_jobs.c    the blocking broker work, on a pool (claims, preparing
 *                   a run, storing its document, lookups, the status)
 *   serve_reader.c  the submissions stream reader thread
 *   serve_table.c   the run table and the intake shared with the HTTP and
 *                   reader threads, and their decisions (bounds, 409)
 *   serve_submit.c  a submission document -> workflow + input + reply_to
 *   serve_api.c     HTTP handlers (/api/..., the page) over the run table
 *   serve_auth.c    API tokens, the auth hook, who may see which run
 *   web/ (embedded) index.html, app.js, style.css
 *
 * Threads (docs/architecture.md). The loop thread owns the runs and never
 * waits for the broker: every blocking broker call is a job on serve's pool,
 * whose completions come back through the pool's eventfd. HTTP handlers
 * (libmicrohttpd's thread) answer from the run table or defer the request
 * to the loop, which answers it when its job is done (sf_http_defer). The
 * submissions reader is its own thread. They meet the loop in struct
 * serve_table (one mutex) and wake it through its eventfd. One broker
 * connection set and one result reader (run_feed.c) serve every run. */
#ifndef SF_SERVE_H
#define SF_SERVE_H

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker.h"
#include "coord.h"
#include "health.h"
#include "http.h"
#include "metrics.h"
#include "pool.h"
#include "run_broker.h"
#include "tokens.h"
#include "util.h"
#include "workflow.h"

#define SERVE_OWNER_MAX 96
/* A stream submission without a run_id runs as "sub-<entry id>"; a
 * submission may not name such an id itself. */
#define SERVE_STREAM_ID_PREFIX "sub-"

/* --- serve_submit.c ------------------------------------------------------- */

/* A submission is either a workflow document whose steps carry their
 * `files` inline (path -> content), or
 *   {"workflow": {...} | "<json text>", "files": {"<name>": "<content>"},
 *    "input": any, "run_id": "...", "reply_to": "<stream>", "priority": 0..9}
 * where each step's `files` value names an entry of the top-level "files"
 * (so an unchanged workflow.json travels with the files it refers to). */
struct serve_submission {
    struct sf_workflow *wf;
    json_t *input;          /* NULL = the workflow's own inputs */
    char *run_id, *reply_to;
    int priority;           /* of the steps without their own (docs/workflows.md) */
};
/* 0, or -EINVAL with one line per problem in errs. */
int serve_submission_parse(const char *data, size_t len, struct serve_submission *out,
                           struct sf_buf *errs);
void serve_submission_clear(struct serve_submission *s);

/* --- serve_table.c: what the loop shares with the other threads ------------ */

struct serve_entry {
    char run_id[128];
    char owner[SERVE_OWNER_MAX];   /* "api:<token name>" or "stream" */
    char *summary;          /* JSON text: id, workflow, state, times, steps */
    char *doc;              /* result document when finished, else NULL */
    int64_t created_ms;
};

enum serve_req_kind {
    SERVE_POST,             /* an HTTP submission, not parsed yet (on the pool: a large body
                               takes a second, which the HTTP thread must not spend) */
    SERVE_SUBMIT,           /* a submission: claim its id, then run it */
    SERVE_LOOKUP,           /* GET /api/runs/{id} of a run this instance does not hold */
    SERVE_STATUS,           /* GET /api/status */
};

/* A request for the loop. HTTP ones carry the parked connection to answer. */
struct serve_req {
    enum serve_req_kind kind;
    struct sf_http_later *later;        /* NULL: a stream submission */
    const struct sf_principal *who;     /* NULL: admin (no tokens) or the stream */
    char run_id[128];
    char owner[SERVE_OWNER_MAX];
    char claim[112];        /* "stream:<entry>" resumes; an HTTP claim is random */
    char handle[96];        /* the stream entry to ack; "" for HTTP */
    struct serve_submission sub;
    const char *body;       /* SERVE_POST: the parked request's body (http.h: valid until answered) */
    size_t body_len;
    bool resumed;           /* the claim was found already ours (a restart) */
    struct serve_req *next;
};
void serve_req_free(struct serve_req *r);

struct serve_table {
    pthread_mutex_t mu;
    struct serve_entry *v;
    size_t n, cap;
    struct serve_req *head, **tail;   /* intake, oldest first */
    size_t queued;          /* submissions accepted and not started or refused yet */
    size_t max_queued;      /* beyond: 429 */
    size_t asks;            /* lookups and status requests in progress */
    size_t max_asks;        /* beyond: 429 */
    int efd;                /* eventfd: written when intake grows */
    bool closed;            /* draining: submissions refused */
    bool stopped;           /* stopping: lookups refused too */
    char *status_doc;       /* the last /api/status document and when it was made */
    int64_t status_ms;
};

/* Set up / tear down (efd is created here; -errno when it cannot be). */
int serve_table_init(struct serve_table *tab, size_t max_queued, size_t max_asks);
void serve_table_destroy(struct serve_table *tab);
/* Publish a run's summary (and document once finished). Takes the strings. */
void serve_table_put(struct serve_table *tab, const char *run_id, char *summary, char *doc);
/* A submission for the loop: 0 queued; -ESHUTDOWN draining (503); -EEXIST
 * this instance knows the id (409); -EAGAIN the intake is full (429). Takes
 * r on success (it may be freed by the loop at once). */
int serve_table_submit(struct serve_table *tab, struct serve_req *r);
/* An HTTP submission before it is parsed: its place in the intake is taken
 * now (-EAGAIN, -ESHUTDOWN as above); once parsed, serve_table_enter gives
 * it its table entry (0, -EEXIST, -ESHUTDOWN; on an error the caller
 * unqueues it). */
int serve_table_reserve(struct serve_table *tab, struct serve_req *r);
int serve_table_enter(struct serve_table *tab, struct serve_req *r);
/* A lookup or status request: 0 queued, -EAGAIN too many at once (429),
 * -ESHUTDOWN stopping (503). */
int serve_table_ask(struct serve_table *tab, struct serve_req *r);
/* The loop's side: the next request, or NULL. */
struct serve_req *serve_table_take(struct serve_table *tab);
/* A queued submission started or was refused: room for another. */
void serve_table_unqueue(struct serve_table *tab);
/* A lookup/status request was answered. */
void serve_table_answered(struct serve_table *tab);
/* Remove a run this instance no longer holds (its claim was refused). */
void serve_table_forget(struct serve_table *tab, const char *run_id);
/* Draining: no more submissions; everything: no more requests at all. */
void serve_table_close(struct serve_table *tab, bool everything);
/* Submissions queued (the reader keeps active + queued under --max-runs). */
size_t serve_table_queued(struct serve_table *tab);
void serve_new_run_id(char *buf, size_t n);

/* --- serve_auth.c ------------------------------------------------------------- */

/* Tokens from SANDFLEET_API_TOKEN and token_file (may be NULL); *out stays
 * NULL when there is none, which is allowed only on a loopback --http
 * (-EPERM otherwise). 0 or -errno with err. */
int serve_auth_setup(const char *token_file, const char *http, struct sf_tokens **out,
                     const struct sf_log *lg, char *err, size_t errlen);
/* The http.h auth hook; arg is the struct sf_tokens. */
int serve_auth_hook(void *arg, const struct sf_http_req *req, const void **principal,
                    struct sf_http_resp *resp);
/* NULL (no tokens: open on loopback) counts as admin. */
bool serve_is_admin(const struct sf_principal *p);
void serve_owner_of(const struct sf_principal *p, char *buf, size_t n);
bool serve_may_see(const struct sf_principal *p, const char *owner);

/* --- the server ---------------------------------------------------------------- */

struct serve_cfg {
    struct sf_broker_flags bf;
    char *http, *id, *log_format, *log_level, *api_token_file;
    long max_runs, max_queued, max_inflight, retry_base_ms, lease_ms, grace_s, io_threads;
    struct sf_http_limits http_limits;
    char *e2b_listen, *e2b_secret;      /* the fleet's E2B gateway (serve_e2b.c) */
    struct sf_strlist e2b_keys;
    struct sf_http_limits e2b_limits;
    long e2b_min_free_mb;
    int help;
};

/* One run (serve_runs.c; the loop thread's). */
struct srun {
    char run_id[128], handle[96], owner[SERVE_OWNER_MAX];
    struct serve_submission sub;
    bool resumed;               /* its claim was ours already: a restart goes on */
    struct coord_exec *ex;      /* NULL while preparing */
    struct coord_runner *cr;
    int64_t created_ms, started_ms, due;   /* due: monotonic time of the next step */
    struct srun *next;
};

struct serve {
    const struct serve_cfg *cfg;
    struct coord_cfg ccfg;          /* what every run's executor and runner borrow */
    const struct sf_log *lg;
    struct sf_broker *b;            /* shared by every run and job (thread-safe) */
    struct coord_feed *feed;        /* every run's results */
    struct sf_pool *pool;           /* blocking broker work (serve_jobs.c) */
    size_t jobs;                    /* loop: jobs submitted, not yet taken back */
    atomic_int stopping;            /* jobs give up their retries */
    struct serve_table tab;
    struct sf_health health;
    struct sf_metrics *m;
    struct sf_counter *submitted, *ok, *failed, *rejected;
    struct sf_gauge *active_g;
    char consumer[160];
    /* loop thread */
    struct srun *runs;              /* started (or starting) runs */
    struct serve_req *ready, **ready_tail;   /* claimed, waiting for a slot */
    atomic_int active;              /* runs started or starting (the reader reads it) */
    bool draining;
    int64_t next_keepalive;
    bool keepalive_busy;
    /* the submissions reader (serve_reader.c) */
    atomic_int stop_reader;
    pthread_t reader;
    bool reader_started;
};

/* serve_api.c: register every route (API, page, probes) on http. */
void serve_api_routes(struct sf_http *http, struct serve *sv);
/* serve_reader.c */
int serve_reader_start(struct serve *sv);
void serve_reader_stop(struct serve *sv);

/* serve_api.c: an answer, JSON; and an answer to a parked HTTP request
 * (nothing for a stream submission). Take j. Any thread. */
void serve_json_resp(struct sf_http_resp *resp, int status, json_t *j);
void serve_answer(struct serve_req *r, int status, json_t *j);

/* serve_jobs.c: blocking broker work on the pool; done jobs come back to the
 * loop (serve_job_done), which acts on them. */
void serve_job_parse(struct serve *sv, struct serve_req *r);
void serve_job_claim(struct serve *sv, struct serve_req *r);
void serve_job_ask(struct serve *sv, struct serve_req *r);
void serve_job_prepare(struct serve *sv, struct srun *run);
/* Store a finished run's document (and reply, ack, final status). Takes doc. */
void serve_job_store(struct serve *sv, const char *run_id, const char *handle, const char *reply_to,
                     const char *status, json_t *doc);
/* The same, at once on the calling thread (the reader's): retried while
 * the broker is away, until serve stops. */
void serve_store_now(struct serve *sv, const char *run_id, const char *handle, const char *reply_to,
                     const char *status, json_t *doc);
/* The document of a rejected submission. */
json_t *serve_rejected_doc(const char *run_id, const char *why);
void serve_job_keepalive(struct serve *sv);
void serve_job_done(struct serve *sv, void *job);
void serve_job_work(void *job, void *ctx);
/* At exit: a job the pool never gave back (answers its HTTP request 503). */
void serve_job_leftover(void *job);

/* serve_runs.c (loop thread) */
void serve_run_claimed(struct serve *sv, struct serve_req *r);
void serve_runs_start(struct serve *sv);
void serve_run_prepared(struct serve *sv, struct srun *run, struct coord_prep *prep, int rc,
                        const char *err);
int64_t serve_runs_step(struct serve *sv, int64_t now);
size_t serve_runs_fds(struct serve *sv, struct pollfd *pfd, struct srun **who, size_t cap);
void serve_run_wake(struct srun *run);
void serve_runs_free(struct serve *sv);
/* The run ids active now (keepalive), malloc'd array of copies. */
char **serve_runs_ids(struct serve *sv, size_t *n);

/* serve_e2b.c: --e2b-listen, the fleet's E2B gateway (coordinator/gateway/gw.h). */
struct sf_gw;
struct serve_e2b_cfg {
    const char *listen, *secret;
    char *const *keys;
    size_t nkeys;
    int64_t min_free_mb;
    struct sf_http_limits limits;
};
/* Check the keys and the secret, then start the gateway's thread.
 * 0, or -errno with the reason (a backend without the E2B ops, no key on a
 * non-loopback address, no secret, the port). */
int serve_e2b_start(const struct serve_e2b_cfg *ec, struct sf_broker *b, struct sf_metrics *m,
                    const struct sf_log *lg, struct sf_gw **out, char *err, size_t errlen);

#endif
