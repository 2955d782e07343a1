/* coordinator/serve/serve_runs.c: serve's runs on the loop thread.
 * A submission whose id is claimed waits in sv->ready for a slot
 * (--max-runs); taking a slot starts a prepare job; once prepared, the run
 * gets an executor on the shared broker and feed (coord_exec_broker_attach,
 * no broker I/O) and a coord_runner, and the loop steps it whenever its
 * executor's fd is readable or its scheduler wants to go on. A finished run
 * hands its document to a store job and leaves. Nothing here waits. */
#include "run_broker.h"
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The run as the table shows it. */
static void publish(struct serve *sv, struct srun *r, const char *state, json_t *doc, const char *error)
{
    json_t *steps = json_array();
    struct sf_sched_progress p = {0};
    const struct sf_sched *s = r->cr ? coord_runner_sched(r->cr) : NULL;
    if (s) {
        sf_sched_progress(s, &p);
        for (size_t i = 0; i < r->sub.wf->n_steps; i++) {
            struct sf_sched_step ss;
            sf_sched_step_progress(s, i, &ss);
            json_array_append_new(steps, json_pack("{s:s, s:s, s:I, s:I, s:b}", "id", r->sub.wf->steps[i].id,
                                                   "state", ss.state, "done", (json_int_t)ss.done,
                                                   "total", (json_int_t)ss.total, "map", r->sub.wf->steps[i].map));
        }
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "run_id", r->run_id,
                          "workflow", r->sub.wf->name, "state", state, "created_ms", (json_int_t)r->created_ms,
                          "started_ms", (json_int_t)r->started_ms, "tasks_done", (json_int_t)p.tasks_done,
                          "tasks_known", (json_int_t)p.tasks_known, "steps", steps);
    if (doc) json_object_set_new(j, "finished_ms", json_integer(sf_wall_ms()));
    if (error) json_object_set_new(j, "error", json_string(error));
    serve_table_put(&sv->tab, r->run_id, json_dumps(j, JSON_COMPACT),
                    doc ? json_dumps(doc, JSON_COMPACT) : NULL);
    json_decref(j);
}

static void gauge(struct serve *sv)
{
    sf_gauge_set(sv->active_g, sv->active);
}

void serve_run_claimed(struct serve *sv, struct serve_req *r)
{
    if (r->later) {
        char *url = sf_xasprintf("/api/runs/%s", r->run_id);
        serve_answer(r, 202, json_pack("{s:s, s:s, s:s}", "run_id", r->run_id, "state", "queued", "url", url));
        free(url);
        r->later = NULL;
    }
    sf_counter_inc(sv->submitted);
    SF_LOG(sv->lg, SF_LOG_INFO, r->run_id, NULL, "accepted workflow '%s' (%s)%s", r->sub.wf->name, r->owner,
           r->resumed ? ": resuming" : "");
    r->next = NULL;
    *sv->ready_tail = r;
    sv->ready_tail = &r->next;
}

static void run_free(struct srun *r)
{
    coord_runner_free(r->cr);
    if (r->ex) r->ex->free(r->ex);
    serve_submission_clear(&r->sub);
    free(r);
}

/* Take slots for claimed submissions. Draining: those never started are
 * reported as cancelled (a stream one stays unacked for the next start). */
void serve_runs_start(struct serve *sv)
{
    struct serve_req *q;
    while ((q = sv->ready) && (sv->draining || sv->active < sv->cfg->max_runs)) {
        sv->ready = q->next;
        if (!sv->ready) sv->ready_tail = &sv->ready;
        serve_table_unqueue(&sv->tab);
        struct srun *r = sf_xcalloc(1, sizeof(*r));
        sf_strlcpy(r->run_id, q->run_id, sizeof(r->run_id));
        sf_strlcpy(r->handle, q->handle, sizeof(r->handle));
        sf_strlcpy(r->owner, q->owner, sizeof(r->owner));
        r->sub = q->sub;
        memset(&q->sub, 0, sizeof(q->sub));
        r->resumed = q->resumed;
        r->created_ms = r->started_ms = sf_wall_ms();
        serve_req_free(q);
        if (sv->draining) {
            publish(sv, r, "cancelled", NULL, "the coordinator stopped before the run started");
            run_free(r);
            continue;
        }
        r->next = sv->runs;
        sv->runs = r;
        sv->active++;
        gauge(sv);
        r->due = INT64_MAX;                /* stepped once prepared */
        publish(sv, r, "starting", NULL, NULL);
        serve_job_prepare(sv, r);
    }
}

static void unlink_run(struct serve *sv, struct srun *r)
{
    for (struct srun **pp = &sv->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    sv->active--;
    gauge(sv);
}

void serve_run_prepared(struct serve *sv, struct srun *r, struct coord_prep *prep, int rc, const char *err)
{
    if (rc < 0) {
        SF_LOG(sv->lg, SF_LOG_ERROR, r->run_id, NULL, "cannot start: %s", err);
        sf_counter_inc(sv->failed);
        unlink_run(sv, r);
        if (atomic_load(&sv->stopping)) {      /* a stream submission resumes next time */
            publish(sv, r, "cancelled", NULL, "the coordinator stopped before the run started");
        } else {
            json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "run_id", r->run_id, "workflow", r->sub.wf->name,
                                    "status", "failed", "error", err);
            publish(sv, r, "failed", doc, err);
            serve_job_store(sv, r->run_id, r->handle, r->sub.reply_to, "failed", doc);
        }
        run_free(r);
        return;
    }
    r->ex = coord_exec_broker_attach(sv->b, sv->feed, &sv->ccfg, r->sub.wf, r->run_id, prep, false, sv->lg);
    r->cr = coord_runner_new(&sv->ccfg, r->sub.wf, r->run_id, r->sub.input, r->ex, sv->lg, false);
    if (r->sub.priority) coord_runner_set_priority(r->cr, r->sub.priority);
    r->due = 0;
    publish(sv, r, "running", NULL, NULL);
}

/* Step a due run. Returns true when it is over (its document handed to a
 * store job, or left for a restart). */
static bool step_run(struct serve *sv, struct srun *r, int64_t now)
{
    char err[1024];
    int timeout = 1000;
    int rc = coord_runner_step(r->cr, &timeout, err, sizeof(err));
    if (rc == 0) {
        r->due = now + timeout;
        publish(sv, r, "running", NULL, NULL);
        return false;
    }
    if (rc < 0) {
        /* The executor broke (the broker refuses us for good): keep the
         * submission unacked so a restart resumes the run. */
        SF_LOG(sv->lg, SF_LOG_ERROR, r->run_id, NULL, "run stopped: %s", err);
        sf_counter_inc(sv->failed);
        publish(sv, r, "error", NULL, err);
        return true;
    }
    json_t *doc = coord_runner_doc(r->cr);
    const char *status = json_string_value(json_object_get(doc, "status"));
    bool ok = status && !strcmp(status, "succeeded");
    json_object_set_new(doc, "run_id", json_string(r->run_id));
    sf_counter_inc(ok ? sv->ok : sv->failed);
    publish(sv, r, ok ? "succeeded" : "failed", doc, NULL);
    serve_job_store(sv, r->run_id, r->handle, r->sub.reply_to, ok ? "succeeded" : "failed", doc);
    return true;
}

int64_t serve_runs_step(struct serve *sv, int64_t now)
{
    int64_t next = now + 1000;
    for (struct srun *r = sv->runs, *nx; r; r = nx) {
        nx = r->next;
        if (!r->ex) continue;                  /* preparing */
        if (now >= r->due && step_run(sv, r, now)) {
            unlink_run(sv, r);
            run_free(r);
            continue;
        }
        if (r->due < next) next = r->due;
    }
    return next;
}

size_t serve_runs_fds(struct serve *sv, struct pollfd *pfd, struct srun **who, size_t cap)
{
    size_t n = 0;
    for (struct srun *r = sv->runs; r && n < cap; r = r->next) {
        if (!r->ex) continue;
        who[n] = r;
        pfd[n++] = (struct pollfd){ r->ex->fd(r->ex), POLLIN, 0 };
    }
    return n;
}

void serve_run_wake(struct srun *r) { r->due = 0; }

char **serve_runs_ids(struct serve *sv, size_t *n)
{
    size_t k = 0;
    for (struct srun *r = sv->runs; r; r = r->next) k++;
    char **ids = sf_xcalloc(k ? k : 1, sizeof(char *));
    *n = 0;
    for (struct srun *r = sv->runs; r; r = r->next)
        if (r->ex) ids[(*n)++] = sf_xstrdup(r->run_id);
    return ids;
}

void serve_runs_free(struct serve *sv)
{
    while (sv->runs) {
        struct srun *r = sv->runs;
        sv->runs = r->next;
        run_free(r);
    }
    while (sv->ready) {
        struct serve_req *q = sv->ready;
        sv->ready = q->next;
        serve_req_free(q);
    }
    sv->ready_tail = &sv->ready;
}
