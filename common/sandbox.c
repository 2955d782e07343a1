/* common/sandbox.c: provider dispatch and the helpers every backend shares. */
#include "sandbox.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void sf_limits_defaults(struct sf_limits *l)
{
    l->memory_mb = 512;
    l->pids = 256;
    l->disk_mb = 256;
    l->cpu_s = 0;
    l->nofile = 1024;
}

void sf_limits_merge(struct sf_limits *l, const struct sf_limits *d)
{
    if (!l->memory_mb) l->memory_mb = d->memory_mb;
    if (!l->pids) l->pids = d->pids;
    if (!l->disk_mb) l->disk_mb = d->disk_mb;
    if (!l->cpu_s) l->cpu_s = d->cpu_s;
    if (!l->nofile) l->nofile = d->nofile;
}

void sf_run_result_clear(struct sf_run_result *r)
{
    free(r->out);
    free(r->err_tail);
    memset(r, 0, sizeof(*r));
}

void sf_run_result_from_wait(struct sf_run_result *r, int st)
{
    if (WIFEXITED(st)) {
        r->status = SF_RUN_EXITED;
        r->exit_code = WEXITSTATUS(st);
        return;
    }
    r->status = SF_RUN_SIGNALED;
    r->term_signal = WTERMSIG(st);
    r->exit_code = 128 + r->term_signal;
    sf_errf(r->error, sizeof(r->error), "killed by signal %d (%s)", r->term_signal,
            strsignal(r->term_signal));
}

struct sf_sandbox_provider *sf_sandbox_provider_new(const char *kind,
        const struct sf_provider_config *cfg, char *errstr, size_t errlen)
{
    if (!kind || !strcmp(kind, "local")) return sf_sandbox_local_new(cfg, errstr, errlen);
    if (!strcmp(kind, "process")) return sf_sandbox_process_new(cfg, errstr, errlen);
    if (!strcmp(kind, "e2b")) return sf_sandbox_e2b_new(cfg, errstr, errlen);
    sf_errf(errstr, errlen, "unknown sandbox backend '%s' (use local, process or e2b)", kind);
    return NULL;
}
