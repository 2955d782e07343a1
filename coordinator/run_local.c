/* coordinator/run_local.c: the central executor ("orchestrator as message
 * bus"): the coordinator creates each sandbox itself on a pool of threads
 * and passes outputs to inputs in memory. With "sandbox": "shared" every
 * step runs, one at a time, in a single sandbox created up front, so agents
 * can hand files to each other through /tmp/shared. */
#include "coord.h"
#include "bundle.h"
#include "pool.h"
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
    struct sf_sandbox *shared;
    struct sf_pool *pool;
    struct sf_exec_cfg ecfg;
    char worker[128];
};

static void work(void *arg, void *ctx)
{
    struct job *j = arg;
    struct local_exec *le = ctx;
    j->r = sf_exec_task(le->prov, le->shared, j->t, &le->ecfg, NULL);
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
    struct job *j = sf_pool_take_done(((struct local_exec *)ex)->pool);
    if (!j) return NULL;
    struct sf_result *r = j->r;
    sf_task_free(j->t);
    free(j);
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
    sf_sandbox_destroy(le->shared);
    sf_sandbox_provider_free(le->prov);
    free(le);
}

struct coord_exec *coord_exec_local_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                        const struct sf_log *lg, char *err, size_t errlen)
{
    struct local_exec *le = sf_xcalloc(1, sizeof(*le));
    struct sf_provider_config pcfg = {0};
    pcfg.e2b_template = cfg->e2b_template;
    pcfg.egress_allow = (const char *const *)cfg->egress_allow.v;
    pcfg.egress_deny = (const char *const *)cfg->egress_deny.v;
    pcfg.egress_dns = (const char *const *)cfg->egress_dns.v;
    pcfg.log = lg;
    char host[64] = "localhost";
    size_t n = (size_t)cfg->concurrency;

    gethostname(host, sizeof(host) - 1);
    snprintf(le->worker, sizeof(le->worker), "coordinator@%s", host);
    le->base.submit = local_submit;
    le->base.fd = local_fd;
    le->base.take = local_take;
    le->base.inflight = local_inflight;
    le->base.tick = local_tick;
    le->base.free = local_free;
    le->ecfg.worker = le->worker;
    le->ecfg.output_cap = (size_t)cfg->output_cap;

    le->prov = sf_sandbox_provider_new(cfg->sandbox, &pcfg, err, errlen);
    if (!le->prov) goto fail;
    if (wf->sandbox == SF_SANDBOX_SHARED) {
        struct sf_sandbox_opts o;
        if (sf_bundle_sandbox_opts(wf, le->ecfg.templates, &o, err, errlen) < 0) goto fail;
        if (sf_sandbox_create(le->prov, &o, &le->shared, err, errlen) < 0) goto fail;
        SF_LOG(lg, SF_LOG_INFO, NULL, NULL, "shared sandbox %s created for all steps",
               le->shared->id);
        n = 1;                           /* one sandbox runs one command at a time */
    }
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (size_t)cpus : 1;
    }
    le->base.max_inflight = n;
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
