/* common/exec/bundle.c: see bundle.h. The scheduler drives the run exactly as the
 * coordinator's loop does, with a single sandbox as the only "executor". */
#include "bundle.h"
#include "retry.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sf_bundle_sandbox_opts(const struct sf_workflow *wf, const struct sf_templates *tpl,
                           struct sf_sandbox_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < wf->n_steps; i++) {
        const struct sf_step *st = &wf->steps[i];
        const struct sf_limits *l = &st->limits;
        /* The workflow checked that network steps agree (shared_network). */
        if (st->network && !o->network) o->net_policy = st->net_policy;
        o->network |= st->network;
        if (l->memory_mb > o->limits.memory_mb) o->limits.memory_mb = l->memory_mb;
        if (l->pids > o->limits.pids) o->limits.pids = l->pids;
        if (l->disk_mb > o->limits.disk_mb) o->limits.disk_mb = l->disk_mb;
        if (l->nofile > o->limits.nofile) o->limits.nofile = l->nofile;
    }
    o->label = wf->name;
    /* The workflow checked that every step names the same template. */
    const char *name = wf->n_steps ? wf->steps[0].template_name : NULL;
    if (!sf_templates_find(tpl, name, &o->rootfs)) {
        sf_errf(err, errlen, "template '%s' is not known here (--template NAME=DIR, or "
                "sandfleet-worker template import)", name);
        return -EINVAL;
    }
    return 0;
}

/* Every step against the caps, before the one sandbox is made for all. */
static int check_steps(const struct sf_workflow *wf, const struct sf_policy *p, char *err,
                       size_t errlen)
{
    for (size_t i = 0; p && i < wf->n_steps; i++) {
        const struct sf_step *st = &wf->steps[i];
        char what[160];
        snprintf(what, sizeof(what), "step '%s'", st->id);
        struct sf_policy_ask ask = { .what = what, .limits = &st->limits,
                                     .timeout_s = st->timeout_s, .network = st->network };
        int rc = sf_policy_check(p, &ask, err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

json_t *sf_bundle_run(struct sf_sandbox_provider *p, const struct sf_workflow *wf,
                      const char *run_id, json_t *input, const struct sf_exec_cfg *cfg,
                      const struct sf_bundle_opts *bo, char *err, size_t errlen)
{
    struct sf_sandbox_opts opts;
    struct sf_sandbox *sb = NULL;
    if (sf_bundle_sandbox_opts(wf, cfg->templates, &opts, err, errlen) < 0) return NULL;
    sf_policy_fill(cfg->policy, &opts.limits, NULL);
    /* The steps agree on inject (shared_network): the first one's, resolved. */
    const json_t *inject = NULL;
    for (size_t i = 0; i < wf->n_steps && !inject; i++) inject = wf->steps[i].inject;
    struct sf_secret_values isv = { 0 };
    struct sf_inject *inj = NULL;
    int rc = sf_exec_inject(inject, cfg, &inj, &isv, err, errlen);
    opts.inject = inj;
    if (rc == 0) rc = sf_sandbox_create(p, &opts, &sb, err, errlen);
    sf_inject_free(inj);
    sf_secret_values_clear(&isv);
    if (rc < 0) return NULL;
    struct sf_sched *s = sf_sched_new(wf, run_id, input);
    if (bo && bo->retry_base_ms > 0) sf_sched_set_retry_base_ms(s, bo->retry_base_ms);
    if (bo && bo->priority > 0) sf_sched_set_priority(s, bo->priority);
    int64_t t0 = sf_now_ms();
    while (!sf_sched_done(s)) {
        int64_t now = sf_now_ms();
        struct sf_task *t = sf_sched_next(s, now);
        if (!t) {
            int64_t wake = sf_sched_next_wakeup(s);
            if (wake < 0) break;                  /* cannot happen: not done, nothing pending */
            int64_t ms = wake - now;
            sf_sleep_ms(ms);
            continue;
        }
        sf_sched_started(s, t, now);
        struct sf_result *r = sf_exec_task(p, sb, t, cfg, NULL);
        sf_sched_complete(s, r, sf_now_ms());
        if (bo && bo->on_result) bo->on_result(bo->arg, s, r);
        sf_result_free(r);
        sf_task_free(t);
    }
    json_t *doc = sf_sched_result_doc(s, sf_now_ms() - t0);
    sf_sched_free(s);
    sf_sandbox_destroy(sb);
    return doc;
}

struct sf_result *sf_bundle_exec(struct sf_sandbox_provider *p, const struct sf_task *t,
                                 const struct sf_exec_cfg *cfg)
{
    struct sf_workflow *wf = NULL;
    struct sf_buf errs = {0};
    struct sf_result *r;
    char err[SF_ERRSTR_LEN];
    int64_t t0 = sf_now_ms();
    char *text = json_dumps(t->workflow, JSON_COMPACT);
    if (!text) abort();
    if (sf_workflow_parse(text, strlen(text), "workflow", NULL, &wf, &errs) < 0) {
        r = sf_result_for(t, SF_RESULT_REJECTED, cfg->worker, "invalid workflow: %s",
                          errs.data ? errs.data : "?");
        goto out;
    }
    if (check_steps(wf, cfg->policy, err, sizeof(err)) < 0) {
        r = sf_result_for(t, SF_RESULT_REJECTED, cfg->worker, "%s", err);
        goto out;
    }
    struct sf_bundle_opts bo = { .priority = t->priority };
    json_t *doc = sf_bundle_run(p, wf, t->run_id, json_is_null(t->input) ? NULL : t->input, cfg,
                                &bo, err, sizeof(err));
    if (!doc) {
        r = sf_result_for(t, SF_RESULT_CRASHED, cfg->worker, "sandbox: %s", err);
        goto out;
    }
    bool ok = !strcmp(json_string_value(json_object_get(doc, "status")), "succeeded");
    r = sf_result_for(t, ok ? SF_RESULT_OK : SF_RESULT_ERROR, cfg->worker,
                      ok ? NULL : "workflow '%s' failed", wf->name);
    r->exit_code = ok ? 0 : 1;
    r->output = doc;
out:
    r->duration_ms = sf_now_ms() - t0;
    free(text);
    sf_buf_free(&errs);
    sf_workflow_free(wf);
    return r;
}
