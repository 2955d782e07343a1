/* common/sandbox/local/sbx_proc.c: the local backend's proc host
 * (sandbox_proc.h), over the in-sandbox init's SPAWN/SIGNAL messages.
 *
 * Design: one host thread per sandbox polls the control socket, an eventfd
 * (wake-up for stop and new processes) and the stdout/stderr pipes of every
 * live process. A spawn is a request/answer over the control socket; init
 * answers requests in order, so one spawn is in flight at a time (spawn_mu)
 * and the host thread, which reads every message, registers the process on
 * STARTED before any EXITED for it can be read. On EXITED the pipes are
 * drained of what the process wrote and closed even if a background child
 * still holds them (as sf_iopump does), then EXIT is delivered. */
#include "sbx_proc.h"
#include "sbx_exec.h"
#include "sbx_init.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROC_READ_CHUNK (32u << 10)      /* as envd's stdout chunk */
#define PROC_SPAWN_TIMEOUT_MS 10000

struct proc {
    int pid;
    int fd[2];                   /* stdout, stderr read ends (a terminal: its
                                    master, and -1); -1 at EOF */
    bool pty;
    bool held;                   /* its consumer asked for a pause: not polled */
    sf_proc_cb cb;
    void *arg;
};

struct sbx_proc_host {
    struct sf_proc_host base;    /* first: the interface */
    int ctl;                     /* borrowed from the sandbox */
    int wakefd;
    bool user_mapped;
    const char *const *env_extra; /* the sandbox's environment defaults (borrowed) */
    pthread_t thread;
    pthread_mutex_t mu;          /* everything below */
    pthread_cond_t cv;
    struct proc *procs;          /* host thread's table; others read under mu */
    size_t nprocs, cap;
    bool stop, dead;
    /* the one spawn in flight */
    pthread_mutex_t spawn_mu;
    struct proc pending;
    bool waiting, answered;
    struct sf_sbx_msg answer;
    int answer_fd;               /* a terminal's master with STARTED */
};

/* ---- host thread ------------------------------------------------------------ */

static void proc_deliver(struct proc *p, enum sf_proc_event_kind kind, const char *data,
                         size_t len)
{
    if (p->pty) kind = SF_PROC_PTY;
    struct sf_proc_event ev = { .kind = kind, .pid = p->pid, .data = data, .len = len };
    if (p->cb(p->arg, &ev)) p->held = true;
}

/* Read what is there. Returns false at EOF or error (fd closed). */
static bool proc_read(struct proc *p, int i, char *buf)
{
    ssize_t n = read(p->fd[i], buf, PROC_READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) {
        close(p->fd[i]);
        p->fd[i] = -1;
        return false;
    }
    proc_deliver(p, i == 0 ? SF_PROC_STDOUT : SF_PROC_STDERR, buf, (size_t)n);
    return true;
}

/* The process exited (or the sandbox died): take what is buffered, close,
 * report, forget. Caller holds mu; callbacks run under it, which keeps the
 * table stable (callbacks must not call back into the host). */
static void proc_finish(struct sbx_proc_host *h, size_t idx, int status, bool died, char *buf)
{
    struct proc *p = &h->procs[idx];
    for (int i = 0; i < 2; i++) {
        int guard = 64;                          /* a full pipe is at most a few chunks */
        while (p->fd[i] >= 0 && guard-- > 0) {
            ssize_t n = read(p->fd[i], buf, PROC_READ_CHUNK);
            if (n <= 0) break;
            proc_deliver(p, i == 0 ? SF_PROC_STDOUT : SF_PROC_STDERR, buf, (size_t)n);
        }
        if (p->fd[i] >= 0) close(p->fd[i]);
        p->fd[i] = -1;
    }
    struct sf_proc_event ev = { .kind = SF_PROC_EXIT, .pid = p->pid,
                                    .wait_status = status, .sandbox_died = died };
    p->cb(p->arg, &ev);
    h->procs[idx] = h->procs[--h->nprocs];
}

/* One message from init, with the fd it may carry (-1 if none). */
static ssize_t proc_recv(int ctl, struct sf_sbx_msg *m, int *fd)
{
    struct iovec iov = { m, sizeof(*m) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    ssize_t n;
    *fd = -1;
    do n = recvmsg(ctl, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(c), sizeof(int));
    return n;
}

static void proc_on_ctl(struct sbx_proc_host *h, char *buf)
{
    struct sf_sbx_msg m;
    int fd;
    ssize_t n = proc_recv(h->ctl, &m, &fd);
    if (n < 0 && errno == EAGAIN) return;
    pthread_mutex_lock(&h->mu);
    if (n != (ssize_t)sizeof(m)) {
        /* init is gone: the sandbox died (or was killed). */
        h->dead = true;
        while (h->nprocs) proc_finish(h, h->nprocs - 1, 9, true, buf);
    } else if (m.type == SF_SBX_MSG_EXITED) {
        for (size_t i = 0; i < h->nprocs; i++)
            if (h->procs[i].pid == m.pid) {
                proc_finish(h, i, m.status, false, buf);
                break;
            }
    } else if (h->waiting && (m.type == SF_SBX_MSG_STARTED || m.type == SF_SBX_MSG_EXEC_FAILED)) {
        if (m.type == SF_SBX_MSG_STARTED) {
            if (h->nprocs == h->cap) {
                h->cap = h->cap ? h->cap * 2 : 8;
                h->procs = sf_xrealloc(h->procs, h->cap * sizeof(*h->procs));
            }
            h->pending.pid = m.pid;
            if (h->pending.pty && fd >= 0) {
                fcntl(fd, F_SETFL, O_NONBLOCK);
                h->pending.fd[0] = fd;
                h->answer_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
                fd = -1;
            }
            h->procs[h->nprocs++] = h->pending;
        }
        h->answer = m;
        h->answered = true;
    }
    if (fd >= 0) close(fd);
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void *proc_thread(void *arg)
{
    struct sbx_proc_host *h = arg;
    char *buf = sf_xmalloc(PROC_READ_CHUNK);
    struct pollfd *pfd = NULL;
    size_t pcap = 0;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        if (h->stop || h->dead) {
            while (h->nprocs) proc_finish(h, h->nprocs - 1, 9, true, buf);
            h->dead = true;
            pthread_cond_broadcast(&h->cv);
            pthread_mutex_unlock(&h->mu);
            break;
        }
        size_t need = 2 + 2 * h->nprocs, k = 2;
        if (need > pcap) {
            pcap = need * 2;
            pfd = sf_xrealloc(pfd, pcap * sizeof(*pfd));
        }
        pfd[0] = (struct pollfd){ h->ctl, POLLIN, 0 };
        pfd[1] = (struct pollfd){ h->wakefd, POLLIN, 0 };
        for (size_t i = 0; i < h->nprocs; i++)
            for (int j = 0; j < 2; j++)                              /* -1 is skipped */
                pfd[k++] = (struct pollfd){ h->procs[i].held ? -1 : h->procs[i].fd[j], POLLIN, 0 };
        pthread_mutex_unlock(&h->mu);

        if (poll(pfd, k, -1) < 0 && errno != EINTR) break;
        if (pfd[1].revents) {
            uint64_t v;
            (void)!read(h->wakefd, &v, sizeof(v));
        }
        /* Pipes first: output written before an exit is delivered before it. */
        pthread_mutex_lock(&h->mu);
        for (size_t i = 2; i < k; i++) {
            if (!pfd[i].revents || pfd[i].fd < 0) continue;
            for (size_t j = 0; j < h->nprocs; j++)
                for (int f = 0; f < 2; f++)
                    if (h->procs[j].fd[f] == pfd[i].fd && !h->procs[j].held) proc_read(&h->procs[j], f, buf);
        }
        pthread_mutex_unlock(&h->mu);
        if (pfd[0].revents) proc_on_ctl(h, buf);
    }
    free(pfd);
    free(buf);
    return NULL;
}

/* ---- API -------------------------------------------------------------------- */

static void proc_wake(struct sbx_proc_host *h)
{
    uint64_t one = 1;
    (void)!write(h->wakefd, &one, sizeof(one));
}

static void proc_host_free(struct sf_proc_host *base)
{
    struct sbx_proc_host *h = (struct sbx_proc_host *)base;
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    proc_wake(h);
    pthread_join(h->thread, NULL);
    close(h->wakefd);
    free(h->procs);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->spawn_mu);
    free(h);
}

/* The SPAWN request: header, cwd, cmd, env (sf_sbx_exec_defaults unless given). */
static int proc_pack(const struct sf_proc_spec *spec, const char *const *extra, struct sf_buf *b)
{
    struct sf_sbx_run_hdr hd = { .type = SF_SBX_MSG_SPAWN, .nofile = 1024, .uid = spec->uid,
                                 .pty_rows = spec->pty_rows, .pty_cols = spec->pty_cols };
    const char *cwd = spec->cwd && spec->cwd[0] ? spec->cwd : "/home/user";
    sf_buf_append(b, &hd, sizeof(hd));
    sf_buf_append(b, cwd, strlen(cwd) + 1);
    sf_buf_append(b, spec->cmd, strlen(spec->cmd) + 1);
    size_t nextra = 0;
    while (extra && extra[nextra]) nextra++;
    const char **defs = sf_xcalloc(nextra + 3, sizeof(*defs));
    size_t nd = sf_sbx_exec_defaults(spec->env, extra, defs);
    for (size_t d = 0; d < nd; d++) {
        sf_buf_append(b, defs[d], strlen(defs[d]) + 1);
        hd.nenv++;
    }
    free(defs);
    for (size_t i = 0; spec->env && spec->env[i]; i++) {
        sf_buf_append(b, spec->env[i], strlen(spec->env[i]) + 1);
        hd.nenv++;
    }
    hd.strings_len = (uint32_t)(b->len - sizeof(hd));
    memcpy(b->data, &hd, sizeof(hd));
    return b->len > SF_SBX_RUN_MAX || hd.nenv > SF_SBX_ENV_MAX ? -E2BIG : 0;
}

/* fds: the three stdio fds, or NULL for a terminal process. */
static int proc_send(int ctl, const struct sf_buf *b, const int fds[3])
{
    struct iovec iov = { b->data, b->len };
    union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = fds ? u.buf : NULL,
                         .msg_controllen = fds ? sizeof(u.buf) : 0 };
    if (fds) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(3 * sizeof(int));
        memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
    }
    while (sendmsg(ctl, &mh, MSG_NOSIGNAL) < 0)
        if (errno != EINTR) return -errno;
    return 0;
}

static void proc_close(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static int proc_spawn(struct sf_proc_host *base, const struct sf_proc_spec *spec, int *stdin_fd,
                      char *err, size_t errlen)
{
    struct sbx_proc_host *h = (struct sbx_proc_host *)base;
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 }, rc;
    struct sf_buf req = { 0 };

    bool pty = spec->pty_rows && spec->pty_cols;
    if (stdin_fd) *stdin_fd = -1;
    if (spec->uid && spec->uid != 1000) {
        sf_errf(err, errlen, "uid %u is not a user of this sandbox (0 and 1000 are)", spec->uid);
        return -ENOEXEC;
    }
    /* A worker without privileges maps one id only: "user" is then the
     * sandbox's root, as every file and process there is. */
    struct sf_proc_spec as = *spec;
    if (!h->user_mapped) as.uid = 0;
    spec = &as;
    if ((rc = proc_pack(spec, h->env_extra, &req)) < 0) {
        sf_errf(err, errlen, "command and environment too large: %zu bytes", req.len);
        sf_buf_free(&req);
        return -ENOEXEC;
    }
    if (!pty && ((spec->stdin_pipe ? pipe2(in, O_CLOEXEC) : ((in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ? -1 : 0)) < 0 ||
        pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0)) {
        rc = -errno;
        sf_errf(err, errlen, "pipe: %s", strerror(errno));
        goto cleanup;
    }
    if (!pty) {
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(er[0], F_SETFL, O_NONBLOCK);
    }
    if (in[1] >= 0) fcntl(in[1], F_SETFL, O_NONBLOCK);

    pthread_mutex_lock(&h->spawn_mu);
    pthread_mutex_lock(&h->mu);
    if (h->dead || h->stop) {
        pthread_mutex_unlock(&h->mu);
        pthread_mutex_unlock(&h->spawn_mu);
        sf_errf(err, errlen, "the sandbox is not running");
        rc = -ESRCH;
        goto cleanup;
    }
    h->pending = (struct proc){ .fd = { out[0], er[0] }, .pty = pty, .cb = spec->cb,
                                .arg = spec->arg };
    h->waiting = true;
    h->answered = false;
    h->answer_fd = -1;
    pthread_mutex_unlock(&h->mu);

    int child[3] = { in[0], out[1], er[1] };
    rc = proc_send(h->ctl, &req, pty ? NULL : child);
    proc_close(&in[0]);
    proc_close(&out[1]);
    proc_close(&er[1]);

    pthread_mutex_lock(&h->mu);
    int64_t deadline = sf_now_ms() + PROC_SPAWN_TIMEOUT_MS;
    while (rc == 0 && !h->answered && !h->dead && sf_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    h->waiting = false;
    bool answered = h->answered;
    struct sf_sbx_msg m = h->answer;
    int term = h->answer_fd;
    h->answer_fd = -1;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_unlock(&h->spawn_mu);

    if (rc < 0 || !answered) {
        sf_errf(err, errlen, "the sandbox did not start the process: %s",
                rc < 0 ? strerror(-rc) : "no answer from its init");
        rc = -ESRCH;
    } else if (m.type == SF_SBX_MSG_EXEC_FAILED) {
        if (m.step == SF_SBX_STEP_CWD)
            sf_errf(err, errlen, "cwd '%s' does not exist", spec->cwd ? spec->cwd : "/home/user");
        else if (m.step == SF_SBX_STEP_PROTOCOL)
            sf_errf(err, errlen, "too many processes in this sandbox");
        else
            sf_errf(err, errlen, "error starting process: %s: %s", sf_sbx_step_name(m.step),
                    strerror(m.err));
        rc = m.step == SF_SBX_STEP_PROTOCOL ? -EAGAIN : -ENOEXEC;
    } else {
        rc = m.pid;
        out[0] = er[0] = -1;               /* now the host thread's */
        if (pty) {
            in[1] = term;                  /* typing is writing to the terminal */
            term = -1;
        }
        if (stdin_fd) *stdin_fd = in[1];
        in[1] = -1;
        proc_wake(h);                      /* poll the new pipes */
    }
    if (term >= 0) close(term);
cleanup:
    if (rc <= 0) {
        /* Not started: the pending pipes never reached the table. */
        proc_close(&out[0]);
        proc_close(&er[0]);
    }
    proc_close(&in[0]);
    proc_close(&in[1]);
    proc_close(&out[1]);
    proc_close(&er[1]);
    sf_buf_free(&req);
    return rc;
}

static int proc_signal(struct sf_proc_host *base, int pid, int sig)
{
    struct sbx_proc_host *h = (struct sbx_proc_host *)base;
    bool known = false;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nprocs; i++)
        if (h->procs[i].pid == pid) known = true;
    pthread_mutex_unlock(&h->mu);
    if (!known) return -ESRCH;
    struct sf_sbx_msg m = { .type = SF_SBX_MSG_SIGNAL, .pid = pid, .status = sig };
    while (send(h->ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0)
        if (errno != EINTR) return -errno;
    return 0;
}

static int proc_resize(struct sf_proc_host *base, int pid, uint16_t rows, uint16_t cols)
{
    struct sbx_proc_host *h = (struct sbx_proc_host *)base;
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    int rc = -ESRCH;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nprocs; i++) {
        struct proc *p = &h->procs[i];
        if (p->pid != pid) continue;
        if (!p->pty || p->fd[0] < 0) rc = -ENOTTY;
        else rc = ioctl(p->fd[0], TIOCSWINSZ, &ws) < 0 ? -errno : 0;
        break;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static int proc_resume(struct sf_proc_host *base, int pid)
{
    struct sbx_proc_host *h = (struct sbx_proc_host *)base;
    int rc = -ESRCH;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nprocs; i++)
        if (h->procs[i].pid == pid) {
            h->procs[i].held = false;
            rc = 0;
        }
    pthread_mutex_unlock(&h->mu);
    if (rc == 0) proc_wake(h);                /* poll its pipes again */
    return rc;
}

/* ---- construction ------------------------------------------------------------ */

static const struct sf_proc_host_ops proc_host_ops = { proc_spawn, proc_signal, proc_resize,
                                                       proc_resume, proc_host_free };

int sf_sbx_proc_host_new(int ctl, bool user_mapped, const char *const *env_extra,
                         struct sf_proc_host **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sbx_proc_host *h = sf_xcalloc(1, sizeof(*h));
    h->ctl = ctl;
    h->user_mapped = user_mapped;
    h->env_extra = env_extra;
    h->answer_fd = -1;
    h->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->wakefd < 0) {
        int rc = -errno;
        sf_errf(err, errlen, "eventfd: %s", strerror(errno));
        free(h);
        return rc;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->spawn_mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    int rc = pthread_create(&h->thread, NULL, proc_thread, h);
    if (rc) {
        sf_errf(err, errlen, "pthread_create: %s", strerror(rc));
        close(h->wakefd);
        free(h);
        return -rc;
    }
    h->base.ops = &proc_host_ops;
    *out = &h->base;
    return 0;
}
