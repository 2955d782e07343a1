/* coordinator/run_local.c: the central executor ("orchestrator as message
 * bus"): the coordinator creates each sandbox itself on a pool of threads
 * and passes outputs to inputs in memory. A "sandbox": "shared" workflow
 * is run by the bundle runner instead (common/exec/bundle.c, the same code
 * a worker runs a bundle task with): every step, one at a time, in a single
 * sandbox, so agents can hand files to each other through /tmp/shared. */
#include "coord.h"
#include "bundle.h"
#include "gate.h"
#include "pool.h"
#include "warm.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
    struct sf_task *t;
    struct sf_result *r;
};

struct local_exec {
    struct coord_exec base;
    struct sf_sandbox_provider *prov;
    struct sf_pool *pool;
    struct sf_exec_cfg ecfg;
    struct sf_secrets secrets;
    char worker[128];
};

static void work(void *arg, void *ctx)
{
    struct job *j = arg;
    struct local_exec *le = ctx;
    j->r = sf_exec_task(le->prov, NULL, j->t, &le->ecfg, NULL);
}

static int local_submit(struct coord_exec *ex, struct sf_task *t)
{
    struct local_exec *le = (struct local_exec *)ex;
    struct job *j = sf_xcalloc(1, sizeof(*j));
    j->t = t;
    sf_pool_submit(le->pool, j);
    return 0;
}

static int local_fd(struct coord_exec *ex) { return sf_pool_fd(((struct local_exec *)ex)->pool); }

static struct sf_result *local_take(struct coord_exec *ex)
{
    struct local_exec *le = (struct local_exec *)ex;
    struct job *j = sf_pool_take_done(le->pool);
    if (!j) return NULL;
    struct sf_result *r = j->r;
    sf_task_free(j->t);
    free(j);
    sf_warm_pool_sweep(le->ecfg.warm, sf_now_ms());
    return r;
}

static size_t local_inflight(struct coord_exec *ex)
{
    return sf_pool_busy(((struct local_exec *)ex)->pool);
}

static int local_tick(struct coord_exec *ex) { (void)ex; return 0; }

static void drop_job(void *arg)
{
    struct job *j = arg;
    sf_task_free(j->t);
    sf_result_free(j->r);
    free(j);
}

static void local_free(struct coord_exec *ex)
{
    struct local_exec *le = (struct local_exec *)ex;
    if (!le) return;
    sf_pool_free(le->pool, drop_job);
    sf_warm_pool_free(le->ecfg.warm);
    sf_gate_free(le->base.gate);
    sf_sandbox_provider_free(le->prov);
    free(le);
}

/* The provider and the exec settings both central modes use; ecfg points
 * at *secrets (the caller keeps both alive). */
static struct sf_sandbox_provider *central_setup(const struct coord_cfg *cfg, const struct sf_log *lg,
                                                 struct sf_exec_cfg *ecfg, struct sf_secrets *secrets,
                                                 char *worker, size_t wlen, char *err, size_t errlen)
{
    struct sf_provider_config pcfg = {
        .e2b_template = cfg->e2b_template, .log = lg,
        .egress_allow = (const char *const *)cfg->egress_allow.v,
        .egress_deny = (const char *const *)cfg->egress_deny.v,
        .egress_dns = (const char *const *)cfg->egress_dns.v,
    };
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(worker, wlen, "coordinator@%s", host);
    secrets->dir = cfg->secrets_dir;
    *ecfg = (struct sf_exec_cfg){ .worker = worker, .output_cap = (size_t)cfg->output_cap,
                                  .secrets = secrets };
    return sf_sandbox_provider_new(cfg->sandbox, &pcfg, err, errlen);
}

struct coord_exec *coord_exec_local_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                        const struct sf_log *lg, char *err, size_t errlen)
{
    struct local_exec *le = sf_xcalloc(1, sizeof(*le));
    size_t n = (size_t)cfg->concurrency;
    (void)wf;
    le->base.submit = local_submit;
    le->base.fd = local_fd;
    le->base.take = local_take;
    le->base.inflight = local_inflight;
    le->base.tick = local_tick;
    le->base.free = local_free;
    le->prov = central_setup(cfg, lg, &le->ecfg, &le->secrets, le->worker, sizeof(le->worker), err, errlen);
    le->base.gate = sf_gate_new();
    if (!le->prov) goto fail;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (size_t)cpus : 1;
    }
    le->base.max_inflight = n;
    le->ecfg.warm = sf_warm_pool_new(n, 0);     /* "serve": "lines" steps (warm.h) */
    le->pool = sf_pool_new(n, work, le);
    if (!le->pool) {
        sf_errf(err, errlen, "cannot start %zu threads: %s", n, strerror(errno));
        goto fail;
    }
    return &le->base;
fail:
    local_free(&le->base);
    return NULL;
}

/* A shared run's logs and progress, as coord_run gives the others. */
struct shared_watch {
    const struct sf_log *lg;
    struct coord_progress *pg;
    size_t steps_done;
};

static void shared_result(void *arg, const struct sf_sched *s, const struct sf_result *r)
{
    struct shared_watch *sw = arg;
    struct sf_sched_progress prog;
    coord_log_result(sw->lg, r);
    sf_sched_progress(s, &prog);
    if (prog.steps_done != sw->steps_done) {
        sw->steps_done = prog.steps_done;
        SF_LOG(sw->lg, SF_LOG_INFO, sf_sched_run_id(s), NULL, "%zu/%zu steps done, %lld/%lld tasks",
               prog.steps_done, prog.steps_total, (long long)prog.tasks_done,
               (long long)prog.tasks_known);
    }
    coord_progress_update(sw->pg, &prog, sf_sched_done(s));
}

json_t *coord_run_local_shared(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                               const char *run_id, json_t *input, const struct sf_log *lg,
                               char *err, size_t errlen)
{
    struct sf_exec_cfg ecfg;
    struct sf_secrets secrets;
    char worker[128];
    struct sf_sandbox_provider *prov = central_setup(cfg, lg, &ecfg, &secrets, worker, sizeof(worker),
                                                     err, errlen);
    if (!prov) return NULL;
    struct shared_watch sw = { .lg = lg, .pg = coord_progress_new(cfg->progress || isatty(2), 2) };
    struct sf_bundle_opts bo = { .retry_base_ms = cfg->retry_base_ms, .priority = (int)cfg->priority,
                                 .on_result = shared_result, .arg = &sw };
    SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "workflow '%s': %zu steps, all in one shared sandbox",
           wf->name, wf->n_steps);
    json_t *doc = sf_bundle_run(prov, wf, run_id, input, &ecfg, &bo, err, errlen);
    if (doc)
        SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "workflow '%s' %s in %lld ms", wf->name,
               json_string_value(json_object_get(doc, "status")),
               (long long)json_integer_value(json_object_get(doc, "duration_ms")));
    coord_progress_free(sw.pg);
    sf_sandbox_provider_free(prov);
    return doc;
}
