/* coordinator/run.c: the coordinator's loop for workflow runs, the same for
 * every executor: hand ready tasks out while there is room, feed results
 * back to the scheduler, tick the executor, redraw progress, until every
 * step has an outcome.
 *
 * Design. The work of one turn is coord_runner_step(), which never waits;
 * the caller waits on the executor's fd for the time step() asks for. `run`
 * drives one runner with coord_run(); `serve` drives many from one loop
 * thread (serve.c), so several runs share that thread instead of getting a
 * thread each and a lock around every run's state. */
#include "coord.h"
#include "exec.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct coord_runner {
    const struct sf_workflow *wf;
    const struct sf_log *lg;
    struct coord_exec *ex;
    struct sf_sched *s;
    struct coord_progress *pg;
    bool fast_redraw;
    char *run_id;
    int64_t t0, last_tick;
    size_t steps_done;
    bool over;
};

void coord_log_result(const struct sf_log *lg, const struct sf_result *r)
{
    const char *e = r->error ? r->error : "";
    if (r->status == SF_RESULT_OK) {
        SF_LOG(lg, SF_LOG_DEBUG, r->run_id, r->task_id, "ok in %lld ms on %s (attempt %d)",
               (long long)r->duration_ms, r->worker ? r->worker : "?", r->attempt);
        return;
    }
    /* An error that quotes the agent's output is not for logs above debug. */
    bool quotes_agent = !strncmp(e, SF_EXEC_NOT_JSON, strlen(SF_EXEC_NOT_JSON));
    SF_LOG(lg, SF_LOG_WARN, r->run_id, r->task_id, "%s on %s (attempt %d): %s",
           sf_result_status_name(r->status), r->worker ? r->worker : "?", r->attempt,
           quotes_agent ? SF_EXEC_NOT_JSON " (at debug level: what it printed)" : e);
    if (quotes_agent && lg && lg->level <= SF_LOG_DEBUG) {
        char shown[4 * SF_LOG_EXCERPT_MAX + 32];
        SF_LOG(lg, SF_LOG_DEBUG, r->run_id, r->task_id, "%s",
               sf_log_excerpt(shown, sizeof(shown), e, strlen(e), SF_LOG_EXCERPT_MAX + 32));
    }
}

struct coord_runner *coord_runner_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                      const char *run_id, json_t *input, struct coord_exec *ex,
                                      const struct sf_log *lg, bool progress_bar)
{
    struct coord_runner *cr = sf_xcalloc(1, sizeof(*cr));
    cr->wf = wf;
    cr->lg = lg;
    cr->ex = ex;
    cr->run_id = sf_xstrdup(run_id);
    cr->s = sf_sched_new(wf, run_id, input);
    cr->pg = progress_bar ? coord_progress_new(true, 2) : NULL;
    cr->fast_redraw = progress_bar;
    cr->t0 = cr->last_tick = sf_now_ms();
    if (cfg->retry_base_ms > 0) sf_sched_set_retry_base_ms(cr->s, cfg->retry_base_ms);
    sf_sched_set_external_retries(cr->s, ex->external_retries);
    if (cfg->priority > 0) sf_sched_set_priority(cr->s, (int)cfg->priority);
    if (ex->gate) sf_sched_set_gate(cr->s, ex->gate);
    SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "workflow '%s': %zu steps, sandbox %s, %zu at once",
           wf->name, wf->n_steps, wf->sandbox == SF_SANDBOX_SHARED ? "shared" : "per-step",
           ex->max_inflight);
    return cr;
}

int coord_runner_step(struct coord_runner *cr, int *timeout_ms, char *err, size_t errlen)
{
    struct coord_exec *ex = cr->ex;
    struct sf_sched_progress prog;
    struct sf_result *r;
    int64_t now = sf_now_ms();

    if (cr->over) return 1;
    while ((r = ex->take(ex))) {
        coord_log_result(cr->lg, r);
        sf_sched_complete(cr->s, r, sf_now_ms());
        sf_result_free(r);
    }
    now = sf_now_ms();
    if (now - cr->last_tick >= 1000) {
        cr->last_tick = now;
        if (ex->tick(ex) < 0) {
            sf_errf(err, errlen, "%s", ex->errstr);
            return -EIO;
        }
    }
    while (ex->inflight(ex) < ex->max_inflight) {
        struct sf_task *t = sf_sched_next(cr->s, now);
        if (!t) break;
        sf_sched_started(cr->s, t, now);
        SF_LOG(cr->lg, SF_LOG_DEBUG, cr->run_id, t->id, "dispatch attempt %d", t->attempt);
        if (ex->submit(ex, t) < 0) {
            sf_errf(err, errlen, "%s", ex->errstr);
            return -EIO;
        }
    }
    sf_sched_progress(cr->s, &prog);
    if (prog.steps_done != cr->steps_done) {
        cr->steps_done = prog.steps_done;
        SF_LOG(cr->lg, SF_LOG_INFO, cr->run_id, NULL, "%zu/%zu steps done, %lld/%lld tasks",
               prog.steps_done, prog.steps_total, (long long)prog.tasks_done,
               (long long)prog.tasks_known);
    }
    if (sf_sched_done(cr->s)) {
        cr->over = true;
        coord_progress_update(cr->pg, &prog, true);
        SF_LOG(cr->lg, SF_LOG_INFO, cr->run_id, NULL, "workflow '%s' %s in %lld ms", cr->wf->name,
               sf_sched_succeeded(cr->s) ? "succeeded" : "failed", (long long)(sf_now_ms() - cr->t0));
        return 1;
    }
    coord_progress_update(cr->pg, &prog, false);
    int timeout = 1000;
    int64_t wake = sf_sched_next_wakeup(cr->s);
    if (wake >= 0 && wake - now < timeout) timeout = wake > now ? (int)(wake - now) : 0;
    if (cr->fast_redraw && timeout > 100) timeout = 100;
    *timeout_ms = timeout;
    return 0;
}

const struct sf_sched *coord_runner_sched(const struct coord_runner *cr) { return cr->s; }

void coord_runner_set_priority(struct coord_runner *cr, int priority)
{
    sf_sched_set_priority(cr->s, priority);
}

json_t *coord_runner_doc(const struct coord_runner *cr)
{
    return sf_sched_result_doc(cr->s, sf_now_ms() - cr->t0);
}

void coord_runner_free(struct coord_runner *cr)
{
    if (!cr) return;
    coord_progress_free(cr->pg);
    sf_sched_free(cr->s);
    free(cr->run_id);
    free(cr);
}

json_t *coord_run(const struct coord_cfg *cfg, const struct sf_workflow *wf, const char *run_id,
                  json_t *input, struct coord_exec *ex, const struct sf_log *lg,
                  char *err, size_t errlen)
{
    struct coord_runner *cr = coord_runner_new(cfg, wf, run_id, input, ex, lg,
                                               cfg->progress || isatty(2));
    json_t *doc = NULL;
    for (;;) {
        int timeout = 0, rc = coord_runner_step(cr, &timeout, err, errlen);
        if (rc < 0) goto out;
        if (rc == 1) break;
        struct pollfd pfd = { ex->fd(ex), POLLIN, 0 };
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
            sf_errf(err, errlen, "poll: %s", strerror(errno));
            goto out;
        }
    }
    doc = coord_runner_doc(cr);
out:
    coord_runner_free(cr);
    return doc;
}
