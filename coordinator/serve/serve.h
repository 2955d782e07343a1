/* coordinator/serve/serve.h: `sandfleet-coordinator serve`, a long-running
 * coordinator: workflow submissions over HTTP and from the sf:submissions
 * stream, many runs at once on one loop thread, a JSON API and a status
 * page. Modules:
 *   serve.c         options, the loop, starting and finishing runs
 *   serve_submit.c  a submission document -> workflow + input + reply_to
 *   serve_api.c     HTTP handlers (/api/..., the page) over the run table
 *   serve_auth.c    API tokens, the auth hook, who may see which run
 *   web/ (embedded) index.html, app.js, style.css
 * Threads: the loop thread owns the runs; HTTP handlers (libmicrohttpd's
 * thread) and the submissions reader thread meet it in struct serve_table
 * (one mutex) and wake it through an eventfd. */
#ifndef SF_SERVE_H
#define SF_SERVE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker.h"
#include "health.h"
#include "http.h"
#include "metrics.h"
#include "tokens.h"
#include "util.h"
#include "workflow.h"

/* --- serve_submit.c ---------------------------------------------------------- */

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

/* --- the run table shared with the HTTP thread ----------------------------- */

#define SERVE_OWNER_MAX 96

struct serve_entry {
    char run_id[128];
    char owner[SERVE_OWNER_MAX];   /* "api:<token name>" or "stream" */
    char *summary;          /* JSON text: id, workflow, state, times, steps */
    char *doc;              /* result document when finished, else NULL */
    int64_t created_ms;
};

struct serve_pending {      /* a submission waiting for the loop */
    struct serve_submission sub;
    char run_id[128];
    char owner[SERVE_OWNER_MAX];
    char handle[96];        /* submissions-stream entry to ack; "" for HTTP */
    struct serve_pending *next;
};

struct serve_table {
    pthread_mutex_t mu;
    struct serve_entry *v;
    size_t n, cap;
    struct serve_pending *head, **tail;   /* intake, oldest first */
    int efd;                /* eventfd: written when intake grows */
    bool closed;            /* draining: intake refused */
};

struct serve_ctx {
    struct sf_broker *b;            /* thread-safe */
    struct serve_table *tab;
    struct sf_health *health;
    struct sf_metrics *m;
    struct sf_counter *submitted;
    int64_t lease_ms;
    const struct sf_log *lg;
};

/* serve_auth.c. Tokens from SANDFLEET_API_TOKEN and token_file (may be
 * NULL); *out stays NULL when there is none, which is allowed only on a
 * loopback --http (-EPERM otherwise). 0 or -errno with err. */
int serve_auth_setup(const char *token_file, const char *http, struct sf_tokens **out,
                     const struct sf_log *lg, char *err, size_t errlen);
/* The http.h auth hook; arg is the struct sf_tokens. */
int serve_auth_hook(void *arg, const struct sf_http_req *req, const void **principal,
                    struct sf_http_resp *resp);
/* NULL (no tokens: open on loopback) counts as admin. */
bool serve_is_admin(const struct sf_principal *p);
void serve_owner_of(const struct sf_principal *p, char *buf, size_t n);
bool serve_may_see(const struct sf_principal *p, const char *owner);

/* serve_api.c: register every route (API, page, probes) on http. */
void serve_api_routes(struct sf_http *http, struct serve_ctx *sc);
/* Table helpers (take the mutex themselves). */
void serve_table_put(struct serve_table *tab, const char *run_id, char *summary, char *doc);
/* Queue a submission for the loop; -EEXIST when run_id is known,
 * -ESHUTDOWN when draining. Takes ownership of p on success. */
int serve_table_submit(struct serve_table *tab, struct serve_pending *p);
struct serve_pending *serve_table_take(struct serve_table *tab);
void serve_new_run_id(char *buf, size_t n);

#endif
