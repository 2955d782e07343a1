/* common/sandbox/sandbox.c: provider dispatch and the helpers every backend shares. */
#include "sandbox.h"
#include "sandbox_proc.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

int sf_proc_host_new(struct sf_sandbox *sb, struct sf_proc_host **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!sb->ops->proc_host) {
        sf_errf(err, errlen, "sandbox %s: several processes at once need the local sandbox", sb->id);
        return -ENOTSUP;
    }
    return sb->ops->proc_host(sb, out, err, errlen);
}
