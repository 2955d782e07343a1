/* common/sandbox/local/sbx_init.c: see sbx_init.h.
 *
 * Design: pid 1 of the sandbox is a small reaper, like bubblewrap's
 * do_init, that also execs commands on the worker's behalf, so a sandbox
 * lives across runs without setns() into it from the host (no host binary
 * or fd ever enters the sandbox). Killing it with SIGKILL makes the kernel
 * kill the whole pid namespace. Only syscalls from here on: no malloc, no
 * stdio, no snprintf; buffers are static (each sandbox child has its own
 * copy-on-write copy of them). */
#include "sbx_init.h"
#include "sbx_exec.h"
#include "sbx_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECBIT_NOROOT
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#endif

const char *sf_sbx_step_name(int step)
{
    switch ((enum sf_sbx_step)step) {
    case SF_SBX_STEP_RELEASE: return "waiting for the worker";
    case SF_SBX_STEP_SETID: return "switching to the mapped uid/gid";
    case SF_SBX_STEP_CGROUPNS: return "unshare(CLONE_NEWCGROUP)";
    case SF_SBX_STEP_MOUNT: return "building the root";
    case SF_SBX_STEP_HOSTNAME: return "sethostname";
    case SF_SBX_STEP_LOOPBACK: return "bringing up lo";
    case SF_SBX_STEP_ROOTFD: return "opening the root";
    case SF_SBX_STEP_CAPBSET: return "dropping the capability bounding set";
    case SF_SBX_STEP_CLONE: return "clone";
    case SF_SBX_STEP_FDS: return "setting up stdin/stdout/stderr";
    case SF_SBX_STEP_CWD: return "chdir";
    case SF_SBX_STEP_RLIMIT: return "setrlimit";
    case SF_SBX_STEP_CAPS: return "dropping capabilities";
    case SF_SBX_STEP_NNP: return "PR_SET_NO_NEW_PRIVS";
    case SF_SBX_STEP_SECCOMP: return "installing the seccomp filter";
    case SF_SBX_STEP_EXEC: return "execve /bin/sh";
    case SF_SBX_STEP_PROTOCOL: return "bad request from the worker";
    case SF_SBX_STEP_CGROUP: return "joining the sandbox's cgroup";
    }
    return "setup";
}

/* ---- helpers (async-signal-safe) ----------------------------------------- */

void sf_sbx_send_with_fd(int fd, const void *msg, size_t len, int pass_fd)
{
    struct iovec iov = { (void *)msg, len };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    while (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
}

static void sf_sbx_send(int fd, const struct sf_sbx_msg *m, int pass_fd)
{
    sf_sbx_send_with_fd(fd, m, sizeof(*m), pass_fd);
}

static void __attribute__((noreturn)) sf_sbx_setup_fail(int ctl, int step, int err, size_t detail)
{
    struct sf_sbx_msg m = { .type = SF_SBX_MSG_SETUP_FAILED, .step = step, .err = err,
                            .detail = (uint32_t)detail };
    sf_sbx_send(ctl, &m, -1);
    _exit(127);
}

/* Close every fd but 'keep' (and 0-2 when keep_std). */
static void sf_sbx_close_others(int keep, bool keep_std)
{
    unsigned lo = keep_std ? 3 : 0;
    if (keep > (int)lo) syscall(SYS_close_range, lo, (unsigned)keep - 1, 0);
    syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0);
}

/* The child is a copy of the worker: its argv and environment (API keys)
 * would show in /proc/1/cmdline and /proc/1/environ inside. Wipe both
 * areas; their addresses are fields 48-51 of /proc/self/stat. */
void sf_sbx_scrub_argv_env(void)
{
    static char buf[2048];
    unsigned long v[4] = { 0, 0, 0, 0 };
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    char *p = NULL;
    for (char *q = buf; *q; q++)
        if (*q == ')') p = q;                /* comm may contain ')' itself */
    if (!p) return;
    int field = 2;
    for (; *p; p++) {
        if (*p != ' ') continue;
        field++;
        if (field < 48 || field > 51) continue;
        unsigned long x = 0;
        for (const char *d = p + 1; *d >= '0' && *d <= '9'; d++) x = x * 10 + (unsigned long)(*d - '0');
        v[field - 48] = x;
    }
    for (int i = 0; i < 4; i += 2)
        if (v[i] && v[i + 1] > v[i]) memset((void *)v[i], 0, v[i + 1] - v[i]);
    if (v[0] && v[1] - v[0] > 13) memcpy((void *)v[0], "sandbox-init", 13);
    prctl(PR_SET_NAME, "sandbox-init", 0, 0, 0);
}

/* ---- the command (grandchild) -------------------------------------------- */

static char sf_sbx_runbuf[SF_SBX_RUN_MAX];
static char *sf_sbx_envp[SF_SBX_ENV_MAX + 2];      /* + PWD for a direct exec */
static char *sf_sbx_argv[SF_SBX_ARGV_MAX + 2];     /* [0] spare, see sbx_exec.h */
static char sf_sbx_pwd[4096 + 8];

struct sf_sbx_exec {
    const struct sf_sbx_run_hdr *hdr;
    const char *cwd, *cmd;
    size_t nenv;
    int fds[3];
    int report_fd;                      /* CLOEXEC pipe back to init */
    const struct sf_sbx_bpf *filter;
};

static void __attribute__((noreturn)) sf_sbx_exec_fail(const struct sf_sbx_exec *x, int step)
{
    int32_t v[2] = { step, errno };
    (void)!write(x->report_fd, v, sizeof(v));
    _exit(127);
}

static int sf_sbx_setrl(int res, int64_t soft, int64_t hard)
{
    struct rlimit r = { (rlim_t)soft, (rlim_t)hard };
    return setrlimit(res, &r);
}

static void __attribute__((noreturn)) sf_sbx_exec_child(const struct sf_sbx_exec *x)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();                                    /* no controlling tty: no TIOCSTI */
    for (int i = 0; i < 3; i++)
        if (dup2(x->fds[i], i) < 0) sf_sbx_exec_fail(x, SF_SBX_STEP_FDS);
    /* A terminal of its own (TIOCSTI stays denied by seccomp), owned by
     * the user it runs as. */
    if (x->hdr->pty_rows && (ioctl(0, TIOCSCTTY, 0) < 0 ||
                             (x->hdr->uid && fchown(0, x->hdr->uid, x->hdr->uid) < 0)))
        sf_sbx_exec_fail(x, SF_SBX_STEP_FDS);
    /* Nothing but stdio and the report pipe (CLOEXEC) reaches the command. */
    sf_sbx_close_others(x->report_fd, true);
    if (chdir(x->cwd) < 0) sf_sbx_exec_fail(x, SF_SBX_STEP_CWD);
    const struct sf_sbx_run_hdr *h = x->hdr;
    if (sf_sbx_setrl(RLIMIT_CORE, 0, 0) < 0 ||
        (h->nofile > 0 && sf_sbx_setrl(RLIMIT_NOFILE, h->nofile, h->nofile) < 0) ||
        (h->cpu_s > 0 && sf_sbx_setrl(RLIMIT_CPU, h->cpu_s, h->cpu_s + 1) < 0) ||
        (h->fsize_bytes > 0 && sf_sbx_setrl(RLIMIT_FSIZE, h->fsize_bytes, h->fsize_bytes) < 0))
        sf_sbx_exec_fail(x, SF_SBX_STEP_RLIMIT);
    /* uid 0 in the namespace, mapped to the unprivileged host id; execve as
     * that root would re-grant capabilities, which NOROOT and the empty
     * bounding set (dropped by init) prevent. */
    struct __user_cap_header_struct ch = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct cd[2];
    memset(cd, 0, sizeof(cd));
    if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0) < 0)
        sf_sbx_exec_fail(x, SF_SBX_STEP_CAPS);
    /* "user": after the securebits (they need CAP_SETPCAP), before the
     * rest. Raw syscalls: glibc's set*id would signal the worker's threads. */
    if (h->uid && (syscall(SYS_setgroups, 0, NULL) < 0 ||
                   syscall(SYS_setresgid, h->uid, h->uid, h->uid) < 0 ||
                   syscall(SYS_setresuid, h->uid, h->uid, h->uid) < 0))
        sf_sbx_exec_fail(x, SF_SBX_STEP_SETID);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
        syscall(SYS_capset, &ch, cd) < 0)
        sf_sbx_exec_fail(x, SF_SBX_STEP_CAPS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) sf_sbx_exec_fail(x, SF_SBX_STEP_NNP);
    umask(022);
    /* Last: after it, none of the calls above would be allowed. */
    int rc = sf_sbx_seccomp_apply(x->filter);
    if (rc < 0) { errno = -rc; sf_sbx_exec_fail(x, SF_SBX_STEP_SECCOMP); }
    if (h->argc) {
        /* From here on failures are the command's, as with sh: 127 or 126. */
        size_t n = x->nenv;
        sf_sbx_exec_pwd(sf_sbx_envp, &n, sf_sbx_pwd, sizeof(sf_sbx_pwd));
        sf_sbx_exec_direct(sf_sbx_argv, sf_sbx_envp);
    }
    char *argv[] = { "sh", "-c", (char *)x->cmd, NULL };
    execve("/bin/sh", argv, sf_sbx_envp);
    sf_sbx_exec_fail(x, SF_SBX_STEP_EXEC);
}

/* ---- init: serve RUN requests, reap everything ---------------------------- */

struct sf_sbx_init {
    int ctl, sigfd;
    pid_t run_pid;
    const struct sf_sbx_bpf *filter;
};

/* Live SPAWNed pids (0 = free slot); static as the other buffers here. */
static pid_t sf_sbx_spawned[SF_SBX_SPAWN_MAX];

static int sf_sbx_spawn_slot(pid_t pid)
{
    for (int i = 0; i < SF_SBX_SPAWN_MAX; i++)
        if (sf_sbx_spawned[i] == pid) return i;
    return -1;
}

static void sf_sbx_reply(struct sf_sbx_init *in, uint32_t type, int step, int err, pid_t pid,
                         int status)
{
    struct sf_sbx_msg m = { .type = type, .step = step, .err = err, .pid = pid, .status = status };
    sf_sbx_send(in->ctl, &m, -1);
}

static void sf_sbx_close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

/* A new terminal from the sandbox's own devpts, sized as asked: the
 * master in *master (CLOEXEC), the slave in fds[0]. 0 or an errno. */
static int sf_sbx_open_pty(const struct sf_sbx_run_hdr *h, int *master, int *fds)
{
    int unlock = 0;
    struct winsize ws = { .ws_row = h->pty_rows, .ws_col = h->pty_cols };
    int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return errno;
    int sl = -1;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0 ||
        (sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY)) < 0) {
        int err = errno;
        close(m);
        return err;
    }
    *master = m;
    fds[0] = sl;
    return 0;
}

/* The vfork child below never returns into this frame (it execs or
 * _exits), so nothing here can be clobbered; gcc cannot see that. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
static void sf_sbx_serve_run(struct sf_sbx_init *in, size_t len, int *fds, int nfds)
{
    const struct sf_sbx_run_hdr *h = (const struct sf_sbx_run_hdr *)sf_sbx_runbuf;
    struct sf_sbx_exec x = { .hdr = h, .filter = in->filter };
    int rep[2] = { -1, -1 };

    /* Parse: cwd, cmd, env strings, each NUL-terminated, inside len. */
    const char *p = sf_sbx_runbuf + sizeof(*h), *end = sf_sbx_runbuf + len;
    const char *s[2];
    size_t ne = 0, na = 0;
    bool pty = len >= sizeof(*h) && h->type == SF_SBX_MSG_SPAWN && h->pty_rows && h->pty_cols;
    bool ok = nfds == (pty ? 0 : 3) && len >= sizeof(*h) && h->nenv <= SF_SBX_ENV_MAX &&
              h->argc <= SF_SBX_ARGV_MAX && h->strings_len == len - sizeof(*h);
    for (size_t i = 0; ok && i < 2 + (size_t)h->argc + h->nenv; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z) { ok = false; break; }
        if (i < 2) s[i] = p;
        else if (i < 2 + (size_t)h->argc) sf_sbx_argv[1 + na++] = (char *)p;
        else sf_sbx_envp[ne++] = (char *)p;
        p = z + 1;
    }
    if (!ok) {
        sf_sbx_reply(in, SF_SBX_MSG_EXEC_FAILED, SF_SBX_STEP_PROTOCOL, EPROTO, 0, 0);
        sf_sbx_close_fds(fds, nfds);
        return;
    }
    sf_sbx_envp[ne] = NULL;
    sf_sbx_argv[1 + na] = NULL;
    x.nenv = ne;
    x.cwd = s[0];
    x.cmd = s[1];
    memcpy(x.fds, fds, sizeof(x.fds));
    int master = -1;
    if (pty) {
        int err = sf_sbx_open_pty(h, &master, fds);
        if (err) {
            sf_sbx_reply(in, SF_SBX_MSG_EXEC_FAILED, SF_SBX_STEP_FDS, err, 0, 0);
            return;
        }
        x.fds[0] = x.fds[1] = x.fds[2] = fds[0];
    }
    const int nclose = pty ? 1 : nfds;      /* a terminal's slave, once */
    if (pipe2(rep, O_CLOEXEC) < 0) {
        if (master >= 0) close(master);
        sf_sbx_reply(in, SF_SBX_MSG_EXEC_FAILED, SF_SBX_STEP_CLONE, errno, 0, 0);
        sf_sbx_close_fds(fds, nclose);
        return;
    }
    x.report_fd = rep[1];
    /* vfork, not fork(): glibc's fork runs atfork handlers and takes locks
     * that belonged to the worker's other threads, and a copy of init's
     * address space (itself a copy of the worker's) costs page tables and
     * copy-on-write faults only to be thrown away by execve. init waits
     * meanwhile; the child only reads x and the static buffers, and never
     * returns from this frame (sf_sbx_exec_child execs or _exits). */
    pid_t pid = vfork();
    if (pid == 0) sf_sbx_exec_child(&x);
    int err = errno;
    sf_sbx_close_fds(fds, nclose);
    close(rep[1]);
    if (pid < 0) {
        close(rep[0]);
        if (master >= 0) close(master);
        sf_sbx_reply(in, SF_SBX_MSG_EXEC_FAILED, SF_SBX_STEP_CLONE, err, 0, 0);
        return;
    }
    int32_t v[2];
    ssize_t n;
    do n = read(rep[0], v, sizeof(v)); while (n < 0 && errno == EINTR);
    close(rep[0]);
    if (n == (ssize_t)sizeof(v)) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (master >= 0) close(master);
        sf_sbx_reply(in, SF_SBX_MSG_EXEC_FAILED, v[0], v[1], pid, 0);
        return;
    }
    if (h->type == SF_SBX_MSG_SPAWN) sf_sbx_spawned[sf_sbx_spawn_slot(0)] = pid;
    else in->run_pid = pid;
    struct sf_sbx_msg m = { .type = SF_SBX_MSG_STARTED, .pid = pid };
    sf_sbx_send(in->ctl, &m, master);
    if (master >= 0) close(master);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static void sf_sbx_reap(struct sf_sbx_init *in)
{
    struct signalfd_siginfo si;
    while (read(in->sigfd, &si, sizeof(si)) > 0) {}
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) {
            if (pid < 0 && errno == EINTR) continue;
            return;
        }
        int slot = sf_sbx_spawn_slot(pid);
        if (slot >= 0) sf_sbx_spawned[slot] = 0;
        if (pid == in->run_pid || slot >= 0) {
            if (pid == in->run_pid) in->run_pid = 0;
            sf_sbx_reply(in, SF_SBX_MSG_EXITED, 0, 0, pid, st);
        }
    }
}

static void __attribute__((noreturn)) sf_sbx_loop(struct sf_sbx_init *in)
{
    for (;;) {
        struct pollfd pfd[2] = { { in->ctl, POLLIN, 0 }, { in->sigfd, POLLIN, 0 } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        if (pfd[1].revents) sf_sbx_reap(in);
        if (!pfd[0].revents) continue;
        struct iovec iov = { sf_sbx_runbuf, sizeof(sf_sbx_runbuf) };
        union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n = recvmsg(in->ctl, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(0);               /* the worker is gone: end the sandbox */
        int fds[3] = { -1, -1, -1 }, nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k && nfds < 3; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        uint32_t type;
        memcpy(&type, sf_sbx_runbuf, sizeof(type));
        if (type == SF_SBX_MSG_SIGNAL && (size_t)n == sizeof(struct sf_sbx_msg) && !nfds) {
            struct sf_sbx_msg sm;
            memcpy(&sm, sf_sbx_runbuf, sizeof(sm));
            /* Only our own live children: a recycled pid is never hit. */
            if (sm.pid > 1 && sf_sbx_spawn_slot(sm.pid) >= 0) {
                kill(-sm.pid, sm.status);
                kill(sm.pid, sm.status);
            }
            continue;
        }
        bool spawn = type == SF_SBX_MSG_SPAWN && sf_sbx_spawn_slot(0) >= 0;
        if ((size_t)n < sizeof(type) || (type != SF_SBX_MSG_RUN && !spawn) ||
            (mh.msg_flags & MSG_TRUNC) || (type == SF_SBX_MSG_RUN && in->run_pid)) {
            sf_sbx_close_fds(fds, nfds);
            sf_sbx_reply(in, SF_SBX_MSG_EXEC_FAILED, SF_SBX_STEP_PROTOCOL, EPROTO, 0, 0);
            continue;
        }
        sf_sbx_serve_run(in, (size_t)n, fds, nfds);
    }
}

/* ---- setup ---------------------------------------------------------------- */

void sf_sbx_init_main(const struct sf_sbx_child_cfg *cfg)
{
    int ctl = cfg->ctl_fd, cg_err = 0;
    struct sf_sbx_msg m;
    ssize_t n;

    /* Move ourselves into the sandbox's cgroup first, while we are the
     * only thread and before anything is charged: a thread moving itself
     * skips the global lock a move from outside takes (sbx_cgroup.h). */
    for (int i = 0; i < 2; i++)
        if (cfg->cg_join[i] >= 0 && write(cfg->cg_join[i], "0", 1) != 1 && !cg_err)
            cg_err = errno ? errno : EIO;
    /* Other sandboxes' sockets and pipes must not stay open in here. */
    sf_sbx_close_others(ctl, false);
    if (!cfg->clean) sf_sbx_scrub_argv_env();
    else {
        prctl(PR_SET_NAME, "sandbox-init", 0, 0, 0);
        setpriority(PRIO_PROCESS, 0, 0);        /* the zygote's was raised */
    }
    int devnull = open("/dev/null", O_RDWR);
    for (int i = 0; devnull >= 0 && i < 3; i++)
        if (devnull != i) dup2(devnull, i);
    if (devnull > 2) close(devnull);
    umask(0);
    /* Dispositions the worker ignored (SIGPIPE) would survive execve; the
     * zygote reset them once, except SIGCHLD, which it ignores. */
    for (int sig = cfg->clean ? SIGCHLD : 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);
        if (cfg->clean) break;
    }

    do n = recv(ctl, &m, sizeof(m), 0); while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(m) || m.type != SF_SBX_MSG_GO) _exit(1);
    if (cg_err) sf_sbx_setup_fail(ctl, SF_SBX_STEP_CGROUP, cg_err, 0);

    /* Until now our credentials were the worker's host ids. Raw syscalls:
     * glibc's set*id() signal every thread of the worker it thinks we still
     * have (nptl setxid) and wait forever for them to answer. */
    if (syscall(SYS_setresgid, 0, 0, 0) < 0 ||
        (cfg->drop_groups && syscall(SYS_setgroups, 0, NULL) < 0) ||
        syscall(SYS_setresuid, 0, 0, 0) < 0)
        sf_sbx_setup_fail(ctl, SF_SBX_STEP_SETID, errno, 0);
    /* After joining our cgroup: its root is then the sandbox's own cgroup. */
    if (unshare(CLONE_NEWCGROUP) < 0) sf_sbx_setup_fail(ctl, SF_SBX_STEP_CGROUPNS, errno, 0);
    size_t failed = 0;
    int rc = sf_sbx_mount_execute(cfg->plan, &failed);
    if (rc < 0) sf_sbx_setup_fail(ctl, SF_SBX_STEP_MOUNT, -rc, failed);
    if (sethostname("sandbox", 7) < 0) sf_sbx_setup_fail(ctl, SF_SBX_STEP_HOSTNAME, errno, 0);
    if (!cfg->lo_ready && (rc = sf_sbx_netns_lo_up()) < 0)
        sf_sbx_setup_fail(ctl, SF_SBX_STEP_LOOPBACK, -rc, 0);
    for (int c = 0; c <= cfg->cap_last; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            sf_sbx_setup_fail(ctl, SF_SBX_STEP_CAPBSET, errno, 0);
    /* Nobody inside may ptrace us or open our /proc files. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    struct sf_sbx_init in = { .ctl = ctl, .filter = cfg->filter };
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    in.sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (in.sigfd < 0) sf_sbx_setup_fail(ctl, SF_SBX_STEP_ROOTFD, errno, 0);
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) sf_sbx_setup_fail(ctl, SF_SBX_STEP_ROOTFD, errno, 0);
    m = (struct sf_sbx_msg){ .type = SF_SBX_MSG_READY, .pid = getpid() };
    sf_sbx_send(ctl, &m, rootfd);
    close(rootfd);
    sf_sbx_loop(&in);
}
