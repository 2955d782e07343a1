/* coordinator/run.c: the coordinator's loop for one workflow run. It is the
 * same for every executor: hand ready tasks out while there is room, wait on
 * the executor's fd (or the next retry's time), feed results back to the
 * scheduler, redraw progress, until every step has an outcome. */
#include "coord.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

static void log_result(const struct sf_log *lg, const struct sf_result *r)
{
    if (r->status == SF_RESULT_OK) {
        SF_LOG(lg, SF_LOG_DEBUG, r->run_id, r->task_id, "ok in %lld ms on %s (attempt %d)",
               (long long)r->duration_ms, r->worker ? r->worker : "?", r->attempt);
    } else {
        SF_LOG(lg, SF_LOG_WARN, r->run_id, r->task_id, "%s on %s (attempt %d): %s",
               sf_result_status_name(r->status), r->worker ? r->worker : "?", r->attempt,
               r->error ? r->error : "");
    }
}

json_t *coord_run(const struct coord_cfg *cfg, const struct sf_workflow *wf, const char *run_id,
                  json_t *input, struct coord_exec *ex, const struct sf_log *lg,
                  char *err, size_t errlen)
{
    struct sf_sched *s = sf_sched_new(wf, run_id, input);
    struct coord_progress *pg = coord_progress_new(cfg->progress || isatty(2), 2);
    struct sf_sched_progress prog;
    json_t *doc = NULL;
    int64_t t0 = sf_now_ms(), last_tick = t0;
    size_t steps_done = 0;

    if (cfg->retry_base_ms > 0) sf_sched_set_retry_base_ms(s, cfg->retry_base_ms);
    SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "workflow '%s': %zu steps, sandbox %s, %zu at once",
           wf->name, wf->n_steps, wf->sandbox == SF_SANDBOX_SHARED ? "shared" : "per-step",
           ex->max_inflight);
    for (;;) {
        int64_t now = sf_now_ms();
        while (ex->inflight(ex) < ex->max_inflight) {
            struct sf_task *t = sf_sched_next(s, now);
            if (!t) break;
            sf_sched_started(s, t, now);
            SF_LOG(lg, SF_LOG_DEBUG, run_id, t->id, "dispatch attempt %d", t->attempt);
            if (ex->submit(ex, t) < 0) {
                sf_errf(err, errlen, "%s", ex->errstr);
                goto out;
            }
        }
        if (sf_sched_done(s)) break;

        int timeout = 1000;
        int64_t wake = sf_sched_next_wakeup(s);
        if (wake >= 0 && wake - now < timeout) timeout = wake > now ? (int)(wake - now) : 0;
        if (pg && cfg->progress + isatty(2) && timeout > 100) timeout = 100;
        struct pollfd pfd = { ex->fd(ex), POLLIN, 0 };
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
            sf_errf(err, errlen, "poll: %s", strerror(errno));
            goto out;
        }
        struct sf_result *r;
        while ((r = ex->take(ex))) {
            log_result(lg, r);
            sf_sched_complete(s, r, sf_now_ms());
            sf_result_free(r);
        }
        now = sf_now_ms();
        if (now - last_tick >= 1000) {
            last_tick = now;
            if (ex->tick(ex) < 0) {
                sf_errf(err, errlen, "%s", ex->errstr);
                goto out;
            }
        }
        sf_sched_progress(s, &prog);
        if (prog.steps_done != steps_done) {
            steps_done = prog.steps_done;
            SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "%zu/%zu steps done, %lld/%lld tasks",
                   prog.steps_done, prog.steps_total, (long long)prog.tasks_done,
                   (long long)prog.tasks_known);
        }
        coord_progress_update(pg, &prog, false);
    }
    sf_sched_progress(s, &prog);
    coord_progress_update(pg, &prog, true);
    doc = sf_sched_result_doc(s, sf_now_ms() - t0);
    SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "workflow '%s' %s in %lld ms", wf->name,
           sf_sched_succeeded(s) ? "succeeded" : "failed", (long long)(sf_now_ms() - t0));
out:
    coord_progress_free(pg);
    sf_sched_free(s);
    return doc;
}
