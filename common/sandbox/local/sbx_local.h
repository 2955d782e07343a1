/* common/sandbox/local/sbx_local.h: the local backend's provider and sandbox
 * structs and what its files share (private to sandbox_local.c, the
 * lifecycle: create, files, destroy; and sbx_local_run.c, the commands:
 * run, start, reap).
 * Thread: as sandbox.h — a provider from any thread, a sandbox from one at
 * a time. */
#ifndef SF_SBX_LOCAL_H
#define SF_SBX_LOCAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "sbx_cgroup.h"
#include "sbx_egress.h"
#include "sbx_init.h"
#include "sbx_netns.h"
#include "sbx_ready.h"
#include "sbx_seccomp.h"
#include "sbx_zygote.h"

#define SF_LOCAL_SETUP_TIMEOUT_MS 10000
#define SF_LOCAL_READY 2                /* default sandboxes made ahead (sbx_ready.h) */
#define SF_LOCAL_NETNS_POOL 4           /* fresh network namespaces kept ready, per kind */

struct local_provider {
    struct sf_sandbox_provider base;
    struct sf_limits defaults;
    uint32_t host_uid, host_gid;
    uint32_t user_uid, user_gid;        /* host ids of "user" (1000); 0: not mapped */
    bool worker_is_root;
    struct sf_sbx_bpf bpf;
    struct sf_sbx_cgroup_base cgbase;   /* version 0: running without cgroups */
    struct sf_sbx_netns_pool *netns;    /* plain ones; NULL: each sandbox makes its own */
    struct sf_sbx_egress_kit egress;    /* the way out for network steps (sbx_egress.h) */
    int cap_last;
    const struct sf_log *log;
    struct sf_sbx_zygote_cfg ids;       /* what every child gets (sbx_zygote.h) */
    struct sf_sbx_zygote *zygote;       /* clones the children; NULL: this process does */
    struct sf_sbx_ready *ready;         /* default sandboxes made ahead; NULL: none */
    struct sf_sbx_ready *ready_net;     /* the same with network on (the default policy,
                                           rules set when taken); NULL: none */
};

struct local_sandbox {
    struct sf_sandbox base;
    struct local_provider *lp;
    struct sf_limits limits;
    struct sf_sbx_cgroup cg;
    pid_t init_pid;                     /* 0 once reaped */
    int pidfd;                          /* of init when the zygote cloned it, else -1 */
    int ctl, rootfd;
    int netns;                          /* its network namespace, for connect_port; -1 */
    struct sf_sbx_egress_att *egress;   /* network on: its egress; NULL otherwise */
    const char *const *env_extra;       /* environment defaults of its commands (inject: the
                                           CA variables), NULL: none */
    pid_t run_pid;                      /* the command of run()/start(), 0: none */
    uint64_t oom0;                      /* OOM kills counted when it started */
    int64_t run_mem_mb;                 /* its memory limit, for the OOM message */
    char dead[160];                     /* why the sandbox cannot run any more */
};

/* Receive one message, with an optional fd, before 'deadline_ms' (<= 0:
 * none). Returns bytes, 0 at EOF, -ETIMEDOUT or -errno. */
ssize_t sf_sbx_local_recv(int ctl, struct sf_sbx_msg *m, int *fd, int64_t deadline_ms);
/* Kill pid 1 (the kernel then kills the whole pid namespace) and wait for
 * its end; 'why' (may be NULL) says why the sandbox cannot run any more. */
void sf_sbx_local_kill(struct local_sandbox *ls, const char *why);

/* sbx_local_run.c: the run, start and reap ops of sandbox.h. */
int sf_sbx_local_run(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                     struct sf_run_result *res);
int sf_sbx_local_start(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                       struct sf_sandbox_cmd *cmd, struct sf_run_result *res);
int sf_sbx_local_reap(struct sf_sandbox *sb, struct sf_sandbox_cmd *cmd,
                      struct sf_run_result *res);

static inline void sf_sbx_close_pair(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0) close(p[i]);
    p[0] = p[1] = -1;
}

#endif
