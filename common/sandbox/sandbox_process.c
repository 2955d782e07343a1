/* common/sandbox/sandbox_process.c: the "process" backend — a plain child process,
 * NO isolation. For trusted agents and hosts without namespaces; it warns on
 * creation. Each sandbox is a private directory that stands in for the
 * sandbox file system: a path "/x" inside the sandbox is "<root>/x" on the
 * host, the command runs in <root>/workspace with HOME, TMPDIR and SF_ROOT
 * pointing into it. An agent that opens /tmp/input.json literally reads the
 * host's /tmp; the contract's stdin copy of the input always works. */
#include "sandbox.h"
#include "iopump.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct proc_provider {
    struct sf_sandbox_provider base;
    struct sf_limits defaults;
};

struct proc_sandbox {
    struct sf_sandbox base;
    char root[256];
    struct sf_limits limits;
    pid_t pid;                  /* the running command, 0: none */
    int pidfd;
};

/* Map a sandbox path to the host. Rejects ".." so a path cannot leave root. */
static int host_path(struct proc_sandbox *ps, const char *path, char *out, size_t n)
{
    if (path[0] != '/') {
        snprintf(out, n, "%s/workspace/%s", ps->root, path);
    } else {
        snprintf(out, n, "%s%s", ps->root, path);
    }
    if (strstr(path, "..")) {
        const char *p = path;
        while ((p = strstr(p, ".."))) {
            if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) return -EINVAL;
            p += 2;
        }
    }
    return 0;
}

static int proc_write_file(struct sf_sandbox *sb, const char *path, const void *data,
                           size_t len, int mode)
{
    struct proc_sandbox *ps = (struct proc_sandbox *)sb;
    char hp[4096];
    int fd = -1, rc;
    if ((rc = host_path(ps, path, hp, sizeof(hp))) < 0) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "bad path '%s'", path);
        return rc;
    }
    char *slash = strrchr(hp, '/');
    *slash = '\0';
    rc = sf_mkdir_p(hp, 0755);
    *slash = '/';
    if (rc < 0) goto fail;
    fd = open(hp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode ? mode : 0644);
    if (fd < 0) { rc = -errno; goto fail; }
    if ((rc = sf_write_all(fd, data, len)) < 0) goto fail;
    close(fd);
    return 0;
fail:
    if (fd >= 0) close(fd);
    sf_errf(sb->errstr, sizeof(sb->errstr), "write %s: %s", path, strerror(-rc));
    return rc;
}

static int proc_read_file(struct sf_sandbox *sb, const char *path, size_t max,
                          char **data, size_t *len)
{
    struct proc_sandbox *ps = (struct proc_sandbox *)sb;
    char hp[4096];
    int rc = host_path(ps, path, hp, sizeof(hp));
    if (rc == 0) rc = sf_read_file(hp, max, data, len);
    if (rc < 0) sf_errf(sb->errstr, sizeof(sb->errstr), "read %s: %s", path, strerror(-rc));
    return rc;
}

struct proc_wait {
    pid_t pid;
    int status;
};

static int on_pidfd(void *arg)
{
    struct proc_wait *w = arg;
    pid_t r = waitpid(w->pid, &w->status, WNOHANG);
    if (r == w->pid) return 1;
    if (r < 0 && errno != EINTR) return -errno;
    return 0;
}

/* Fork and exec spec->cmd with its pipes: 0 with cmd filled (wait_fd a
 * pidfd, owned by ps); 1 when it could not start (res filled); -errno. */
static int proc_spawn(struct proc_sandbox *ps, const struct sf_run_spec *spec,
                      struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{
    struct sf_sandbox *sb = &ps->base;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, ex[2] = {-1, -1};
    int rc = 0;
    char cwd[4096], home[512], tmpdir[512], rootenv[512];
    struct sf_limits lim = ps->limits;
    if (spec->limits) {
        struct sf_limits o = *spec->limits;
        sf_limits_merge(&o, &lim);
        lim = o;
    }
    if ((rc = host_path(ps, spec->cwd ? spec->cwd : "/workspace", cwd, sizeof(cwd))) < 0) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "bad cwd");
        return rc;
    }
    snprintf(home, sizeof(home), "HOME=%s/home/user", ps->root);
    snprintf(tmpdir, sizeof(tmpdir), "TMPDIR=%s/tmp", ps->root);
    snprintf(rootenv, sizeof(rootenv), "SF_ROOT=%s", ps->root);

    /* Build envp before fork: the child may only call async-signal-safe code. */
    size_t nenv = 0;
    while (spec->env && spec->env[nenv]) nenv++;
    const char **envp = sf_xcalloc(nenv + 5, sizeof(char *));
    size_t k = 0;
    envp[k++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    envp[k++] = home;
    envp[k++] = tmpdir;
    envp[k++] = rootenv;
    for (size_t i = 0; i < nenv; i++) envp[k++] = spec->env[i];
    envp[k] = NULL;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(ex, O_CLOEXEC) < 0) {
        rc = -errno;
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) { rc = -errno; goto fail; }
    if (pid == 0) {
        int e;
        setsid();                                  /* its own process group: killable as one */
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) goto child_fail;
        if (chdir(cwd) < 0) goto child_fail;
        if (lim.cpu_s > 0) {
            struct rlimit r = { (rlim_t)lim.cpu_s, (rlim_t)lim.cpu_s + 1 };
            setrlimit(RLIMIT_CPU, &r);
        }
        if (lim.nofile > 0) {
            struct rlimit r = { (rlim_t)lim.nofile, (rlim_t)lim.nofile };
            setrlimit(RLIMIT_NOFILE, &r);
        }
        signal(SIGPIPE, SIG_DFL);
        execve("/bin/sh", (char *const[]){ "sh", "-c", (char *)spec->cmd, NULL },
               (char *const *)envp);
    child_fail:
        e = errno;
        (void)!write(ex[1], &e, sizeof(e));
        _exit(127);
    }
    close(in[0]); close(out[1]); close(err[1]); close(ex[1]);
    in[0] = out[1] = err[1] = ex[1] = -1;

    int child_errno = 0;
    ssize_t nr;
    do nr = read(ex[0], &child_errno, sizeof(child_errno)); while (nr < 0 && errno == EINTR);
    close(ex[0]);
    ex[0] = -1;
    if (nr == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        res->status = SF_RUN_EXEC_FAILED;
        res->exit_code = 127;
        sf_errf(res->error, sizeof(res->error), "cannot start command (cwd %s): %s",
                spec->cwd ? spec->cwd : "/workspace", strerror(child_errno));
        close(in[1]); close(out[0]); close(err[0]);
        res->out = sf_xcalloc(1, 1);
        res->err_tail = sf_xcalloc(1, 1);
        free(envp);
        return 1;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        rc = -errno;
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto fail;                                 /* closes in[1], out[0], err[0] once */
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    *cmd = (struct sf_sandbox_cmd){ .pid = pid, .in_fd = in[1], .out_fd = out[0],
                                    .err_fd = err[0], .wait_fd = pidfd };
    ps->pid = pid;
    ps->pidfd = pidfd;
    free(envp);
    return 0;
fail:
    sf_errf(sb->errstr, sizeof(sb->errstr), "spawn: %s", strerror(-rc));
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0) close(in[i]);
        if (out[i] >= 0) close(out[i]);
        if (err[i] >= 0) close(err[i]);
        if (ex[i] >= 0) close(ex[i]);
    }
    free(envp);
    return rc;
}

/* The command is over (or given up on): nothing of its process group
 * survives it, and it is reaped. */
static void proc_end(struct proc_sandbox *ps, bool reaped, int *status)
{
    if (ps->pid <= 0) return;
    kill(-ps->pid, SIGKILL);
    if (!reaped) while (waitpid(ps->pid, status, 0) < 0 && errno == EINTR) {}
    close(ps->pidfd);
    ps->pid = 0;
    ps->pidfd = -1;
}

static int proc_run(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                    struct sf_run_result *res)
{
    struct proc_sandbox *ps = (struct proc_sandbox *)sb;
    struct sf_sandbox_cmd cmd;
    memset(res, 0, sizeof(*res));
    int64_t t0 = sf_now_ms();
    int rc = proc_spawn(ps, spec, &cmd, res);
    if (rc != 0) {
        res->duration_ms = sf_now_ms() - t0;
        return rc < 0 ? rc : 0;
    }
    struct sf_iopump pump;
    struct proc_wait w = { cmd.pid, 0 };
    sf_iopump_init(&pump, spec, cmd.in_fd, cmd.out_fd, cmd.err_fd);
    int64_t deadline = spec->timeout_s > 0 ? t0 + (int64_t)(spec->timeout_s * 1000) : 0;
    int pr = sf_iopump_run(&pump, cmd.wait_fd, on_pidfd, &w, deadline);
    proc_end(ps, pr == 1, &w.status);
    sf_iopump_finish(&pump, res);
    if (pr == 0) {
        res->status = SF_RUN_TIMEOUT;
        res->exit_code = 128 + SIGKILL;
        sf_errf(res->error, sizeof(res->error), "timed out after %gs", spec->timeout_s);
    } else if (pr < 0) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "waiting for the command: %s", strerror(-pr));
        rc = pr;
    } else {
        sf_run_result_from_wait(res, w.status);
    }
    res->duration_ms = sf_now_ms() - t0;
    return rc;
}

static int proc_start(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                      struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{
    memset(res, 0, sizeof(*res));
    return proc_spawn((struct proc_sandbox *)sb, spec, cmd, res);
}

static int proc_reap(struct sf_sandbox *sb, struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{
    struct proc_sandbox *ps = (struct proc_sandbox *)sb;
    struct proc_wait w = { cmd->pid, 0 };
    if (ps->pid <= 0 || cmd->pid != ps->pid) return -ESRCH;
    int rc = on_pidfd(&w);
    if (rc <= 0) return rc;
    proc_end(ps, true, NULL);
    sf_run_result_from_wait(res, w.status);
    return 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void proc_destroy(struct sf_sandbox *sb)
{
    struct proc_sandbox *ps = (struct proc_sandbox *)sb;
    proc_end(ps, false, NULL);
    nftw(ps->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(ps);
}

static const struct sf_sandbox_ops proc_ops = {
    .write_file = proc_write_file,
    .read_file = proc_read_file,
    .run = proc_run,
    .destroy = proc_destroy,
    .start = proc_start,
    .reap = proc_reap,
};

static int proc_create(struct sf_sandbox_provider *p, const struct sf_sandbox_opts *opts,
                       struct sf_sandbox **out, char *errstr, size_t errlen)
{
    struct proc_provider *pp = (struct proc_provider *)p;
    if (opts->inject) {
        /* Nothing stands between this process and the network to add them. */
        sf_errf(errstr, errlen, "process sandbox: 'inject' needs an egress path (--sandbox local "
                "or e2b)");
        return -ENOTSUP;
    }
    struct proc_sandbox *ps = sf_xcalloc(1, sizeof(*ps));
    /* $TMPDIR, else a tmpfs: a sandbox's directory lives for one task, and
     * on a disk file system (ext4 mounted with discard here) making and
     * removing its few directories cost 10-20 ms per task. */
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(ps->root, sizeof(ps->root), "%s/sandfleet-proc-XXXXXX", base);
    if (!mkdtemp(ps->root)) {
        int rc = -errno;
        sf_errf(errstr, errlen, "process sandbox: mkdtemp %s: %s", ps->root, strerror(errno));
        free(ps);
        return rc;
    }
    static const char *const dirs[] = { "/workspace", "/home/user", "/tmp/shared" };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char d[512];
        snprintf(d, sizeof(d), "%s%s", ps->root, dirs[i]);
        sf_mkdir_p(d, 0755);
    }
    ps->base.ops = &proc_ops;
    ps->pidfd = -1;
    snprintf(ps->base.id, sizeof(ps->base.id), "proc-%s", strrchr(ps->root, '-') + 1);
    ps->limits = opts->limits;
    sf_limits_merge(&ps->limits, &pp->defaults);
    *out = &ps->base;
    return 0;
}

static void proc_free(struct sf_sandbox_provider *p) { free(p); }

static const struct sf_provider_ops proc_provider_ops = {
    .name = "process",
    .create = proc_create,
    .free = proc_free,
};

struct sf_sandbox_provider *sf_sandbox_process_new(const struct sf_provider_config *cfg,
                                                   char *errstr, size_t errlen)
{
    (void)errstr; (void)errlen;
    struct proc_provider *pp = sf_xcalloc(1, sizeof(*pp));
    pp->base.ops = &proc_provider_ops;
    sf_limits_defaults(&pp->defaults);
    if (cfg) {
        struct sf_limits d = cfg->defaults;
        sf_limits_merge(&d, &pp->defaults);
        pp->defaults = d;
    }
    SF_LOGW(cfg ? cfg->log : NULL, "the 'process' sandbox backend runs agents as plain processes "
            "with NO isolation and no memory/pids limits; use it only for trusted agents");
    return &pp->base;
}
