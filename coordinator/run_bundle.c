/* coordinator/run_bundle.c: a "sandbox": "shared" workflow through a broker.
 * Its steps must share one sandbox, so they cannot be spread over the
 * fleet: the whole workflow (files inline) goes out as ONE task with the
 * field `workflow`; whichever worker takes it runs every step in one
 * sandbox (common/exec/bundle.c) and answers with the run's result document,
 * which becomes this run's document. Publishing once per task id and
 * resuming with --run-id work as for any task. */
#include "coord.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#define BUNDLE_STEP "__workflow__"

/* A document for a bundle that produced none (its worker crashed, or it was
 * rejected): every step failed with the bundle's error. */
static json_t *failed_doc(const struct sf_workflow *wf, const char *run_id, const struct sf_result *r)
{
    json_t *steps = json_object();
    for (size_t i = 0; i < wf->n_steps; i++)
        json_object_set_new(steps, wf->steps[i].id,
            json_pack("{s:s, s:n, s:n, s:i, s:i, s:s, s:s, s:s?}", "status", "failed", "output",
                      "exit_code", "attempts", 0, "duration_ms", 0, "stderr_tail",
                      r->stderr_tail ? r->stderr_tail : "", "error",
                      r->error ? r->error : sf_result_status_name(r->status), "worker", r->worker));
    return json_pack("{s:s, s:s, s:s, s:i, s:o}", "workflow", wf->name, "run_id", run_id,
                     "status", "failed", "duration_ms", 0, "steps", steps);
}

json_t *coord_run_bundle(const struct coord_cfg *cfg, const struct sf_workflow *wf, const char *run_id,
                         json_t *input, struct coord_exec *ex, const struct sf_log *lg,
                         char *err, size_t errlen)
{
    int64_t t0 = sf_now_ms();
    struct sf_task *t = sf_xcalloc(1, sizeof(*t));
    t->v = SF_WIRE_VERSION;
    t->id = sf_xasprintf("%s:%s:0", run_id, BUNDLE_STEP);
    t->run_id = sf_xstrdup(run_id);
    t->step = sf_xstrdup(BUNDLE_STEP);
    t->attempt = t->max_attempts = 1;
    t->priority = (int)cfg->priority;
    t->workflow = sf_workflow_to_json(wf);
    t->input = input ? json_incref(input) : json_null();
    t->created_at = sf_wall_ms();
    char *bundle_id = sf_xstrdup(t->id);
    json_t *doc = NULL;
    SF_LOG(lg, SF_LOG_INFO, run_id, bundle_id,
           "workflow '%s' shares one sandbox: sent as one task for a single worker", wf->name);
    if (ex->submit(ex, t) < 0) {                   /* takes t */
        sf_errf(err, errlen, "%s", ex->errstr);
        goto out;
    }
    while (!doc) {
        struct pollfd pfd = { ex->fd(ex), POLLIN, 0 };
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
            sf_errf(err, errlen, "poll: %s", strerror(errno));
            goto out;
        }
        struct sf_result *r;
        while (!doc && (r = ex->take(ex))) {
            if (r->task_id && !strcmp(r->task_id, bundle_id)) {
                json_t *inner = r->output;
                if (json_is_object(inner) && json_is_object(json_object_get(inner, "steps")))
                    doc = json_deep_copy(inner);
                else
                    doc = failed_doc(wf, run_id, r);
                SF_LOG(lg, r->status == SF_RESULT_OK ? SF_LOG_INFO : SF_LOG_WARN, run_id, bundle_id,
                       "bundle %s on %s", sf_result_status_name(r->status), r->worker ? r->worker : "?");
            }
            sf_result_free(r);
        }
        if (!doc && ex->tick(ex) < 0) {
            sf_errf(err, errlen, "%s", ex->errstr);
            goto out;
        }
    }
    json_object_set_new(doc, "run_id", json_string(run_id));
    json_object_set_new(doc, "duration_ms", json_integer(sf_now_ms() - t0));
out:
    free(bundle_id);
    return doc;
}
