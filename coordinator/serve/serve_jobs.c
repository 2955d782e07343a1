/* coordinator/serve/serve_jobs.c: every broker call serve makes that may
 * wait, as jobs on serve's pool (base/pool.h): the loop submits them and
 * acts on them when they come back through the pool's eventfd, so neither
 * the loop nor an HTTP handler ever waits for the broker (on Kafka a call
 * can take seconds). Kinds:
 *   parse      an HTTP submission's body (not the broker, but a second of
 *              CPU for a large one: not on the HTTP thread either)
 *   claim      a submission's run id, atomically in the broker
 *              (sf_broker_claim_run): new -> queued; taken -> 409 (HTTP) or
 *              a rejected document under the entry's own id (stream)
 *   prepare    record the run as running, read its stored results
 *   store      a finished run's document, reply_to, final status, ack
 *   lookup     GET /api/runs/{id} of a run another instance holds
 *   status     GET /api/status (cached for a second: pages poll it)
 *   keepalive  updated_at of every active run, every 2 s
 * A job retries a broker that is away (100 ms doubling to 2 s) for as long
 * as its kind allows and never once serve is stopping. */
#include "cmd.h"
#include "retry.h"
#include "run_broker.h"
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CLAIM_HTTP_BUDGET_MS 10000
#define PREPARE_BUDGET_MS 60000
#define STATUS_FRESH_MS 1000

enum job_kind { JOB_PARSE, JOB_CLAIM, JOB_ASK, JOB_PREPARE, JOB_STORE, JOB_KEEPALIVE };

struct job {
    enum job_kind kind;
    struct serve_req *req;      /* claim, ask */
    struct srun *run;           /* prepare */
    struct coord_prep prep;
    int rc;
    char err[512];
    /* ask: the answer */
    int status;
    json_t *answer;
    /* store */
    char run_id[128], handle[96], final[16];
    char *reply_to, *doc;
    /* keepalive */
    char **ids;
    size_t n_ids;
};

static bool stopping(void *arg) { return atomic_load(&((struct serve *)arg)->stopping); }

static struct sf_retry retry_for(struct serve *sv, const char *what, int64_t budget, const char *run_id)
{
    struct sf_retry rt = SF_RETRY(sv->lg, what, budget);
    rt.stop = stopping;
    rt.stop_arg = sv;
    rt.run_id = run_id;
    return rt;
}

static void submit(struct serve *sv, struct job *j)
{
    sv->jobs++;
    sf_pool_submit(sv->pool, j);
}

/* --- the work (pool threads) ------------------------------------------------------ */

/* The body, checked: 400 with every problem, or the submission ready for
 * its claim (run id given or made, owner from the token, a random claim: a
 * second submission of this id never presents it). */
static void do_parse(struct serve *sv, struct job *j)
{
    struct serve_req *r = j->req;
    struct sf_buf errs = {0};
    char why[512];
    if (serve_submission_parse(r->body, r->body_len, &r->sub, &errs) == 0 &&
        ((r->sub.reply_to && sf_broker_reply_to_check(sv->b, r->sub.reply_to, why, sizeof(why)) < 0) ||
         sf_broker_workflow_supported(sv->b, r->sub.wf, r->sub.priority, why, sizeof(why)) < 0)) {
        sf_buf_appendf(&errs, "submission: %s\n", why);
        serve_submission_clear(&r->sub);
    }
    r->body = NULL;                      /* the request may be answered from here on */
    if (!r->sub.wf) {
        json_t *arr = json_array();
        char *save = NULL;
        for (char *line = strtok_r(errs.data ? errs.data : "", "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            json_array_append_new(arr, json_string(line));
        j->status = 400;
        j->answer = json_pack("{s:s, s:o}", "error", "invalid submission", "errors", arr);
    } else {
        r->kind = SERVE_SUBMIT;
        if (r->sub.run_id) sf_strlcpy(r->run_id, r->sub.run_id, sizeof(r->run_id));
        else serve_new_run_id(r->run_id, sizeof(r->run_id));
        serve_owner_of(r->who, r->owner, sizeof(r->owner));
        sf_strlcpy(r->claim, "api:", sizeof(r->claim));
        sf_random_hex(r->claim + 4, 33, 32);
    }
    sf_buf_free(&errs);
}

static void do_claim(struct serve *sv, struct job *j)
{
    struct serve_req *r = j->req;
    struct sf_run_owner mine = { r->owner, r->claim, r->sub.wf->name };
    struct sf_retry rt = retry_for(sv, "claiming a run id", r->later ? CLAIM_HTTP_BUDGET_MS : -1, r->run_id);
    while ((j->rc = sf_broker_claim_run(sv->b, r->run_id, &mine, false, j->err, sizeof(j->err))) < 0 &&
           sf_broker_transient(j->rc) && sf_retry_wait(&rt, j->err)) {}
}

static void do_lookup(struct serve *sv, struct job *j)
{
    struct sf_broker *b = sv->b;
    const char *id = j->req->run_id;
    char *status = NULL, *wf = NULL, *owner = NULL, *doc = NULL;
    if (b->ops->state_get(b, id, "status", &status, j->err, sizeof(j->err)) < 0 ||
        b->ops->state_get(b, id, "workflow", &wf, j->err, sizeof(j->err)) < 0 ||
        b->ops->state_get(b, id, "owner", &owner, j->err, sizeof(j->err)) < 0 ||
        b->ops->run_doc_get(b, id, &doc, j->err, sizeof(j->err)) < 0) {
        j->status = 502;
        j->answer = json_pack("{s:s}", "error", j->err);
    } else if ((!status && !doc) || !serve_may_see(j->req->who, owner)) {
        /* Another's run answers exactly like no run at all. */
        j->status = 404;
        j->answer = json_pack("{s:s}", "error", "no such run");
    } else {
        json_t *d = doc ? json_loads(doc, 0, NULL) : NULL;
        json_t *st = json_object_get(d, "status");
        j->status = 200;
        j->answer = json_pack("{s:s, s:s?, s:s, s:o?}", "run_id", id, "workflow", wf, "state",
                              json_is_string(st) ? json_string_value(st) : status, "result", d);
    }
    /* Not ours: a cached copy would never see the run's later state. */
    if (b->ops->run_forget) b->ops->run_forget(b, id);
    free(status);
    free(wf);
    free(owner);
    free(doc);
}

static void do_status(struct serve *sv, struct job *j)
{
    json_t *doc;
    if (coord_status_collect(sv->b, sv->cfg->lease_ms, 10, &doc, j->err, sizeof(j->err)) < 0) {
        j->status = 502;
        j->answer = json_pack("{s:s}", "error", j->err);
        return;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    pthread_mutex_lock(&sv->tab.mu);
    free(sv->tab.status_doc);
    sv->tab.status_doc = text;
    sv->tab.status_ms = sf_now_ms();
    pthread_mutex_unlock(&sv->tab.mu);
    j->status = 200;
    j->answer = doc;
}

static void do_prepare(struct serve *sv, struct job *j)
{
    struct srun *run = j->run;
    struct sf_retry rt = retry_for(sv, "starting a run", PREPARE_BUDGET_MS, run->run_id);
    while ((j->rc = coord_broker_prepare(sv->b, run->sub.wf, run->run_id, run->resumed, &j->prep, sv->lg,
                                         j->err, sizeof(j->err))) < 0 &&
           sf_broker_transient(j->rc) && sf_retry_wait(&rt, j->err)) {}
}

/* The document is the run's whole point: retried until it is stored or
 * serve stops (then a stream submission stays unacked: the next start
 * resumes it and stores the document then). */
static void store(struct serve *sv, const char *run_id, const char *handle, const char *reply_to,
                  const char *final, const char *text)
{
    struct sf_broker *b = sv->b;
    struct sf_retry rt = retry_for(sv, "storing the result document", -1, run_id);
    char err[512];
    int rc;
    if (final && final[0]) {
        while ((rc = b->ops->state_set(b, run_id, "status", final, err, sizeof(err))) < 0 &&
               sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
        if (rc < 0) SF_LOG(sv->lg, SF_LOG_WARN, run_id, NULL, "recording the final status: %s", err);
        sf_retry_reset(&rt);
    }
    while ((rc = b->ops->run_doc_put(b, run_id, text, strlen(text), reply_to, err, sizeof(err))) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
    if (rc < 0) {
        SF_LOG(sv->lg, SF_LOG_ERROR, run_id, NULL, "storing the result document: %s", err);
        return;
    }
    if (handle && handle[0] && b->ops->sub_ack(b, handle, err, sizeof(err)) < 0)
        SF_LOG(sv->lg, SF_LOG_WARN, run_id, NULL, "acking submission %s: %s", handle, err);
    if (b->ops->run_forget) b->ops->run_forget(b, run_id);
}

void serve_store_now(struct serve *sv, const char *run_id, const char *handle, const char *reply_to,
                     const char *status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    store(sv, run_id, handle, reply_to, status, text);
    free(text);
    json_decref(doc);
}

static void do_keepalive(struct serve *sv, struct job *j)
{
    char ts[32], err[256];
    snprintf(ts, sizeof(ts), "%lld", (long long)sf_wall_ms());
    for (size_t i = 0; i < j->n_ids && !atomic_load(&sv->stopping); i++)
        if (sv->b->ops->state_set(sv->b, j->ids[i], "updated_at", ts, err, sizeof(err)) < 0) break;
}

void serve_job_work(void *job, void *ctx)
{
    struct job *j = job;
    struct serve *sv = ctx;
    switch (j->kind) {
    case JOB_PARSE: do_parse(sv, j); break;
    case JOB_CLAIM: do_claim(sv, j); break;
    case JOB_ASK: j->req->kind == SERVE_STATUS ? do_status(sv, j) : do_lookup(sv, j); break;
    case JOB_PREPARE: do_prepare(sv, j); break;
    case JOB_STORE: store(sv, j->run_id, j->handle, j->reply_to, j->final, j->doc); break;
    case JOB_KEEPALIVE: do_keepalive(sv, j); break;
    }
}

/* --- submitting (loop thread) --------------------------------------------------------- */

static struct job *job_new(enum job_kind kind)
{
    struct job *j = sf_xcalloc(1, sizeof(*j));
    j->kind = kind;
    return j;
}

static void submit_req(struct serve *sv, enum job_kind kind, struct serve_req *r)
{
    struct job *j = job_new(kind);
    j->req = r;
    submit(sv, j);
}

void serve_job_parse(struct serve *sv, struct serve_req *r) { submit_req(sv, JOB_PARSE, r); }
void serve_job_claim(struct serve *sv, struct serve_req *r) { submit_req(sv, JOB_CLAIM, r); }
void serve_job_ask(struct serve *sv, struct serve_req *r) { submit_req(sv, JOB_ASK, r); }

void serve_job_prepare(struct serve *sv, struct srun *run)
{
    struct job *j = job_new(JOB_PREPARE);
    j->run = run;
    submit(sv, j);
}

void serve_job_store(struct serve *sv, const char *run_id, const char *handle, const char *reply_to,
                     const char *status, json_t *doc)
{
    struct job *j = job_new(JOB_STORE);
    sf_strlcpy(j->run_id, run_id, sizeof(j->run_id));
    sf_strlcpy(j->handle, handle ? handle : "", sizeof(j->handle));
    sf_strlcpy(j->final, status ? status : "", sizeof(j->final));
    j->reply_to = sf_xstrdup(reply_to);
    j->doc = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    submit(sv, j);
}

void serve_job_keepalive(struct serve *sv)
{
    struct job *j = job_new(JOB_KEEPALIVE);
    j->ids = serve_runs_ids(sv, &j->n_ids);
    sv->keepalive_busy = true;
    submit(sv, j);
}

json_t *serve_rejected_doc(const char *run_id, const char *why)
{
    return json_pack("{s:s, s:s, s:s}", "run_id", run_id, "status", "rejected", "error", why);
}

/* --- done (loop thread) ------------------------------------------------------------------- */

static void parse_done(struct serve *sv, struct job *j)
{
    struct serve_req *r = j->req;
    int rc = j->status ? 0 : serve_table_enter(&sv->tab, r);
    if (!j->status && rc == 0) {
        serve_job_claim(sv, r);            /* its claim in the broker decides */
        return;
    }
    serve_table_unqueue(&sv->tab);
    if (j->status) serve_answer(r, j->status, j->answer);
    else if (rc == -EEXIST)
        serve_answer(r, 409, json_pack("{s:s, s:s}", "error", "this run_id is taken", "run_id", r->run_id));
    else serve_answer(r, 503, json_pack("{s:s}", "error", "draining: not accepting runs"));
    j->answer = NULL;
    serve_req_free(r);
}

static void claim_done(struct serve *sv, struct job *j)
{
    struct serve_req *r = j->req;
    if (j->rc >= 0) {
        r->resumed = j->rc == 1;
        serve_run_claimed(sv, r);          /* answers 202 and queues it for a slot */
        return;
    }
    serve_table_forget(&sv->tab, r->run_id);
    serve_table_unqueue(&sv->tab);
    sf_counter_inc(sv->rejected);
    if (j->rc == -EEXIST || j->rc == -EINVAL) {
        SF_LOG(sv->lg, SF_LOG_WARN, r->run_id, NULL, "submission refused: %s", j->err);
        if (r->later) {
            serve_answer(r, 409, json_pack("{s:s, s:s}", "error", "this run_id is taken", "run_id", r->run_id));
        } else {
            /* Never under the id it could not claim: that run is another's. */
            char own[160];
            snprintf(own, sizeof(own), SERVE_STREAM_ID_PREFIX "%s", r->handle);
            serve_job_store(sv, own, r->handle, r->sub.reply_to, NULL,
                            serve_rejected_doc(own, "run_id is taken by another run"));
        }
    } else {
        SF_LOG(sv->lg, SF_LOG_ERROR, r->run_id, NULL, "claiming the run id: %s", j->err);
        /* A stream submission stays unacked: the next start tries again. */
        serve_answer(r, 503, json_pack("{s:s}", "error", "the broker is not available; try again"));
    }
    serve_req_free(r);
}

void serve_job_done(struct serve *sv, void *job)
{
    struct job *j = job;
    sv->jobs--;
    switch (j->kind) {
    case JOB_PARSE:
        parse_done(sv, j);
        break;
    case JOB_CLAIM:
        claim_done(sv, j);
        break;
    case JOB_ASK:
        serve_answer(j->req, j->status, j->answer);
        serve_table_answered(&sv->tab);
        serve_req_free(j->req);
        break;
    case JOB_PREPARE:
        serve_run_prepared(sv, j->run, &j->prep, j->rc, j->err);
        coord_prep_clear(&j->prep);
        break;
    case JOB_STORE:
        break;
    case JOB_KEEPALIVE:
        sv->keepalive_busy = false;
        break;
    }
    for (size_t i = 0; i < j->n_ids; i++) free(j->ids[i]);
    free(j->ids);
    free(j->reply_to);
    free(j->doc);
    free(j);
}

void serve_job_leftover(void *job)
{
    struct job *j = job;
    if (j->req) {
        serve_answer(j->req, 503, json_pack("{s:s}", "error", "the coordinator is stopping"));
        serve_req_free(j->req);
    }
    json_decref(j->answer);
    coord_prep_clear(&j->prep);
    for (size_t i = 0; i < j->n_ids; i++) free(j->ids[i]);
    free(j->ids);
    free(j->reply_to);
    free(j->doc);
    free(j);
}
