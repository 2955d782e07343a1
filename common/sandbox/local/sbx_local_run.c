/* common/sandbox/local/sbx_local_run.c: the commands of a local sandbox (see
 * sbx_local.h): run() sends a RUN request over the control socket and pumps
 * I/O with sf_iopump until init reports the exit; start() sends the same
 * request and hands the pipes to the caller, reap() reads the exit report
 * without blocking. Both share begin (limits, OOM baseline), start_cmd (the
 * request and its answer) and outcome (exit, signal or OOM). */
#include "sbx_local.h"
#include "iopump.h"
#include "sbx_exec.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct local_wait {
    struct local_sandbox *ls;
    pid_t pid;
    int status;
};

static int local_on_ctl(void *arg)
{
    struct local_wait *w = arg;
    struct sf_sbx_msg m;
    ssize_t n = sf_sbx_local_recv(w->ls->ctl, &m, NULL, 0);
    if (n == 0) return -EPIPE;                 /* pid 1 is gone */
    if (n < 0) return (int)n;
    if (m.type == SF_SBX_MSG_EXITED && m.pid == w->pid) {
        w->status = m.status;
        return 1;
    }
    return 0;
}

static void local_result_empty(struct sf_run_result *res)
{
    if (!res->out) res->out = sf_xcalloc(1, 1);
    if (!res->err_tail) res->err_tail = sf_xcalloc(1, 1);
}

/* What every command needs first: a live sandbox, the limits of this run
 * written to the cgroup, the OOM count to compare with. 0 or -errno. */
static int local_begin(struct local_sandbox *ls, const struct sf_run_spec *spec,
                       struct sf_limits *lim)
{
    struct sf_sandbox *sb = &ls->base;
    *lim = ls->limits;
    if (ls->dead[0] || ls->init_pid <= 0) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s cannot run commands: %s", sb->id,
                ls->dead[0] ? ls->dead : "it is not running");
        return -ESRCH;
    }
    if (!spec->cmd) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "run: no command");
        return -EINVAL;
    }
    if (spec->limits) {
        struct sf_limits o = *spec->limits;
        sf_limits_merge(&o, &ls->limits);
        *lim = o;
    }
    int rc = sf_sbx_cgroup_set_limits(&ls->cg, lim->memory_mb, lim->pids, sb->errstr,
                                      sizeof(sb->errstr));
    if (rc < 0) return rc;
    ls->oom0 = 0;
    if (ls->cg.version) sf_sbx_cgroup_oom_kills(&ls->cg, &ls->oom0);
    ls->run_mem_mb = lim->memory_mb;
    return 0;
}

/* Send RUN and wait for STARTED until 'deadline' (<= 0: none). 0 with the
 * command's pipes in cmd; 1 when it could not start (res filled);
 * -ETIMEDOUT; -ESRCH when the sandbox broke (errstr, sandbox killed). */
static int local_start_cmd(struct local_sandbox *ls, const struct sf_run_spec *spec,
                           const struct sf_limits *lim, int64_t deadline,
                           struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{
    struct sf_sandbox *sb = &ls->base;
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, rc = 0;
    struct sf_buf req = { 0 };
    /* The tmpfs enforces the sandbox's disk size; a smaller per-run value
     * can only be a per-file limit. */
    int64_t fsize = lim->disk_mb < ls->limits.disk_mb ? lim->disk_mb * 1024 * 1024 : 0;
    if (!sf_sbx_exec_pack(spec, lim, fsize, ls->env_extra, &req)) {
        res->status = SF_RUN_EXEC_FAILED;
        res->exit_code = 127;
        sf_errf(res->error, sizeof(res->error), "command and environment too large: %zu bytes "
                "(at most %d)", req.len, SF_SBX_RUN_MAX);
        rc = 1;
        goto cleanup;
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        rc = -errno;
        sf_errf(sb->errstr, sizeof(sb->errstr), "run: pipe: %s", strerror(errno));
        goto cleanup;
    }
    int child_fds[3] = { in[0], out[1], err[1] };
    rc = sf_sbx_exec_send(ls->ctl, &req, child_fds);
    close(in[0]); close(out[1]); close(err[1]);
    in[0] = out[1] = err[1] = -1;
    if (rc < 0) {
        sf_sbx_local_kill(ls, "its init process died");
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s: sending the command: %s", sb->id,
                strerror(-rc));
        rc = -ESRCH;
        goto cleanup;
    }
    struct sf_sbx_msg m;
    ssize_t n = sf_sbx_local_recv(ls->ctl, &m, NULL, deadline);
    if (n == -ETIMEDOUT) { rc = -ETIMEDOUT; goto cleanup; }
    if (n <= 0 || (m.type != SF_SBX_MSG_STARTED && m.type != SF_SBX_MSG_EXEC_FAILED)) {
        sf_sbx_local_kill(ls, "its init process died");
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s: no answer from its init: %s", sb->id,
                n < 0 ? strerror((int)-n) : "connection closed");
        rc = -ESRCH;
        goto cleanup;
    }
    if (m.type == SF_SBX_MSG_EXEC_FAILED) {
        res->status = SF_RUN_EXEC_FAILED;
        res->exit_code = 127;
        if (m.step == SF_SBX_STEP_CWD)
            sf_errf(res->error, sizeof(res->error), "cannot start command: working directory %s: %s",
                    spec->cwd && spec->cwd[0] ? spec->cwd : "/workspace", strerror(m.err));
        else
            sf_errf(res->error, sizeof(res->error), "cannot start command: %s: %s",
                    sf_sbx_step_name(m.step), strerror(m.err));
        rc = 1;
        goto cleanup;
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    *cmd = (struct sf_sandbox_cmd){ .pid = m.pid, .in_fd = in[1], .out_fd = out[0],
                                    .err_fd = err[0], .wait_fd = ls->ctl };
    ls->run_pid = m.pid;
    in[1] = out[0] = err[0] = -1;
cleanup:
    sf_sbx_close_pair(in);
    sf_sbx_close_pair(out);
    sf_sbx_close_pair(err);
    sf_buf_free(&req);
    return rc;
}

/* The command ended with wait 'status', or (init_died) pid 1 died under
 * it. Fills res; -ESRCH when the sandbox broke for another reason than
 * the OOM killer. */
static int local_outcome(struct local_sandbox *ls, int status, bool init_died,
                         struct sf_run_result *res)
{
    struct sf_sandbox *sb = &ls->base;
    uint64_t oom1 = 0;
    if (ls->cg.version) sf_sbx_cgroup_oom_kills(&ls->cg, &oom1);
    bool oom = oom1 > ls->oom0;
    ls->run_pid = 0;
    if (init_died) {
        /* pid 1 died under the command: the OOM killer, or a kill from outside. */
        sf_sbx_local_kill(ls, oom ? "it was killed by the OOM killer" : "its init process died");
        if (!oom) {
            sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s: init died during the run", sb->id);
            return -ESRCH;
        }
        status = SIGKILL;                       /* as a wait status: killed by SIGKILL */
    }
    if (oom) {
        res->status = SF_RUN_OOM;
        res->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + res->term_signal;
        sf_errf(res->error, sizeof(res->error), "out of memory: the memory limit of %" PRId64
                " MiB was reached and the kernel's OOM killer ended a process", ls->run_mem_mb);
    } else {
        sf_run_result_from_wait(res, status);
    }
    return 0;
}

int sf_sbx_local_run(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                     struct sf_run_result *res)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    struct sf_limits lim;
    struct sf_sandbox_cmd cmd;
    int rc;

    memset(res, 0, sizeof(*res));
    int64_t t0 = sf_now_ms();
    int64_t deadline = spec->timeout_s > 0 ? t0 + (int64_t)(spec->timeout_s * 1000.0 + 0.5) : 0;
    if ((rc = local_begin(ls, spec, &lim)) < 0) return rc;
    rc = local_start_cmd(ls, spec, &lim, deadline, &cmd, res);
    if (rc == 1) goto done;
    if (rc == -ETIMEDOUT) goto timeout;
    if (rc < 0) return rc;

    struct sf_iopump pump;
    struct local_wait w = { ls, cmd.pid, 0 };
    sf_iopump_init(&pump, spec, cmd.in_fd, cmd.out_fd, cmd.err_fd);
    int pr = sf_iopump_run(&pump, ls->ctl, local_on_ctl, &w, deadline);
    sf_iopump_finish(&pump, res);
    if (pr == 0) goto timeout;
    if ((rc = local_outcome(ls, w.status, pr < 0, res)) < 0) return rc;
    goto done;
timeout:
    sf_sbx_local_kill(ls, "sandbox was killed by a timeout");
    res->status = SF_RUN_TIMEOUT;
    res->term_signal = SIGKILL;
    res->exit_code = 128 + SIGKILL;
    sf_errf(res->error, sizeof(res->error), "timed out after %gs: the sandbox was killed",
            spec->timeout_s);
done:
    local_result_empty(res);
    res->duration_ms = sf_now_ms() - t0;
    return 0;
}

int sf_sbx_local_start(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                       struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    struct sf_limits lim;
    memset(res, 0, sizeof(*res));
    int rc = local_begin(ls, spec, &lim);
    if (rc < 0) return rc;
    rc = local_start_cmd(ls, spec, &lim, sf_now_ms() + SF_LOCAL_SETUP_TIMEOUT_MS, cmd, res);
    if (rc == -ETIMEDOUT) {
        sf_sbx_local_kill(ls, "its init did not answer");
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s: its init did not start the command "
                "within %d s", sb->id, SF_LOCAL_SETUP_TIMEOUT_MS / 1000);
        rc = -ESRCH;
    }
    if (rc == 1) local_result_empty(res);
    return rc;
}

int sf_sbx_local_reap(struct sf_sandbox *sb, struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    if (ls->init_pid <= 0 || ls->ctl < 0) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s: %s", sb->id,
                ls->dead[0] ? ls->dead : "it is not running");
        return -ESRCH;
    }
    for (;;) {
        struct pollfd pfd = { ls->ctl, POLLIN, 0 };
        if (poll(&pfd, 1, 0) <= 0) return 0;
        struct local_wait w = { ls, cmd->pid, 0 };
        int done = local_on_ctl(&w);
        if (done == 0) continue;
        int rc = local_outcome(ls, w.status, done < 0, res);
        return rc < 0 ? rc : 1;
    }
}

