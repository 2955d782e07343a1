/* common/sandbox/local/sbx_zygote.c: see sbx_zygote.h.
 *
 * Design: one SOCK_SEQPACKET socketpair; a request is one datagram (a
 * header, then the template root and the bind pairs as NUL-terminated
 * strings) with its fds by SCM_RIGHTS; the answer is one datagram with the
 * pidfd. The worker side holds a mutex across send and receive, so answers
 * pair with requests. The zygote is made with glibc's fork() (not a raw
 * clone), which leaves malloc usable in it: it builds mount plans itself
 * and keeps the last few (a plan depends only on the request's fields,
 * and most sandboxes ask for the same). Its children are raw clones of it
 * and run sbx_init.c as before. The zygote dies with the worker
 * (PR_SET_PDEATHSIG, and end of file on its socket). */
#include "sbx_zygote.h"
#include "sbx_image.h"
#include "sbx_init.h"
#include "sbx_mount.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#define ZYG_MAX_REQ (64 * 1024)
#define ZYG_PLANS 8                     /* cached plans (requests without ro_binds) */

enum { ZYG_NETWORK = 1, ZYG_HAS_NETNS = 2, ZYG_HAS_CG0 = 4, ZYG_HAS_CG1 = 8, ZYG_HAS_CGDIR = 16 };

struct zyg_req_hdr {
    uint32_t flags;
    uint32_t n_binds;
    int64_t disk_mb;
    uint32_t strings_len;               /* rootfs ("" = none), then host, sandbox per bind */
};

struct zyg_reply {
    int32_t err;                        /* positive errno, 0: ok */
    int32_t pid;
    int32_t at_clone;                   /* err came from clone() itself */
    int32_t in_cgroup;                  /* the child started in its v2 cgroup */
    int32_t part;                       /* the child's plan: enum sf_sbx_plan_part */
    char msg[SF_ERRSTR_LEN];            /* the whole reason */
};

struct sf_sbx_zygote {
    pthread_mutex_t mu;
    int sock;
    pid_t pid;
    char no_images[SF_ERRSTR_LEN];      /* why there are no images; "" when there are */
};

int sf_sbx_write_maps(pid_t pid, const struct sf_sbx_zygote_cfg *ids, const char **what)
{
    char map[64], path[64];
    int rc = 0;
    for (int step = 0; step < 3 && rc == 0; step++) {
        static const char *const file[] = { "uid_map", "setgroups", "gid_map" };
        /* An unprivileged writer may map a gid only with setgroups denied. */
        if (step == 1 && !ids->write_setgroups) continue;
        /* "user" (1000) gets its own unprivileged host id when we may map two. */
        uint32_t root = step == 0 ? ids->host_uid : ids->host_gid;
        uint32_t user = step == 0 ? ids->user_uid : ids->user_gid;
        if (step == 1) snprintf(map, sizeof(map), "deny");
        else if (user) snprintf(map, sizeof(map), "0 %u 1\n1000 %u 1\n", root, user);
        else snprintf(map, sizeof(map), "0 %u 1\n", root);
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file[step]);
        *what = file[step];
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) { rc = -errno; break; }
        rc = sf_write_all(fd, map, strlen(map));
        close(fd);
    }
    return rc;
}

/* ---- the zygote ----------------------------------------------------------- */

struct zyg_plan {
    bool used, network;
    enum sf_sbx_plan_part part;
    int64_t disk_mb;
    char *rootfs;
    struct sf_sbx_mount_plan plan;
    uint64_t last;
};

struct zyg {
    const struct sf_sbx_zygote_cfg *cfg;
    int sock, home_net;
    int home_mnt, cwd;                  /* where to come back after an image */
    struct sf_sbx_images *images;       /* NULL: every child builds its whole root */
    struct zyg_plan plans[ZYG_PLANS];
    uint64_t tick;
    char buf[ZYG_MAX_REQ];
};

static void zyg_reply(int sock, int err, pid_t pid, int pidfd, const char *msg, bool in_cgroup,
                      enum sf_sbx_plan_part part)
{
    struct zyg_reply r = { .err = err, .pid = pid, .at_clone = pid < 0, .in_cgroup = in_cgroup,
                           .part = part };
    if (msg) sf_strlcpy(r.msg, msg, sizeof(r.msg));
    if (r.at_clone) r.pid = 0;
    sf_sbx_send_with_fd(sock, &r, sizeof(r), pidfd);
}

/* The child's plan for these options (the whole root, or its own part on
 * an image: that depends only on the disk size): a cached one unless
 * extra binds are in it. */
static int zyg_plan(struct zyg *z, const struct sf_sandbox_opts *o, int64_t disk_mb,
                    enum sf_sbx_plan_part part, struct sf_sbx_mount_plan **out,
                    struct sf_sbx_mount_plan *own, char *err, size_t errlen)
{
    bool user_mapped = z->cfg->user_uid != 0;
    if (o->n_ro_binds && part == SF_SBX_PLAN_FULL) {
        *out = own;
        return sf_sbx_mount_plan_build(own, o, disk_mb, user_mapped, part, err, errlen);
    }
    bool network = part == SF_SBX_PLAN_FULL && o->network;
    const char *rootfs = part == SF_SBX_PLAN_FULL && o->rootfs ? o->rootfs : "";
    struct zyg_plan *lru = &z->plans[0];
    for (int i = 0; i < ZYG_PLANS; i++) {
        struct zyg_plan *p = &z->plans[i];
        if (p->used && p->part == part && p->network == network && p->disk_mb == disk_mb &&
            !strcmp(p->rootfs ? p->rootfs : "", rootfs)) {
            p->last = ++z->tick;
            *out = &p->plan;
            return 0;
        }
        if (!p->used || p->last < lru->last) lru = p;
    }
    if (lru->used) {
        sf_sbx_mount_plan_free(&lru->plan);
        free(lru->rootfs);
    }
    memset(lru, 0, sizeof(*lru));
    int rc = sf_sbx_mount_plan_build(&lru->plan, o, disk_mb, user_mapped, part, err, errlen);
    if (rc < 0) return rc;
    lru->used = true;
    lru->part = part;
    lru->network = network;
    lru->disk_mb = disk_mb;
    lru->rootfs = rootfs[0] ? sf_xstrdup(rootfs) : NULL;
    lru->last = ++z->tick;
    *out = &lru->plan;
    return 0;
}

/* Enter the image for o (its mount namespace: clone() copies it), or
 * stay for a child that builds its whole root. Returns the part of the
 * plan the child runs, or -errno (err) for options no root can be built
 * for (a bad ro_bind). */
static int zyg_enter_image(struct zyg *z, const struct sf_sandbox_opts *o, char *err,
                           size_t errlen)
{
    int fd;
    if (!z->images || !sf_sbx_mount_image_fits(o)) return SF_SBX_PLAN_FULL;
    int rc = sf_sbx_images_get(z->images, o, &fd, err, errlen);
    if (rc < 0) return rc;
    return setns(fd, CLONE_NEWNS) == 0 ? SF_SBX_PLAN_SANDBOX : SF_SBX_PLAN_FULL;
}

/* Back from an image: never clone from one by accident, never run with its
 * root as cwd. */
static void zyg_leave_image(struct zyg *z)
{
    if (setns(z->home_mnt, CLONE_NEWNS) < 0 || fchdir(z->cwd) < 0) _exit(1);
}

/* Parse a request into o (strings point into z->buf, binds into
 * binds[64]). false for a malformed one. */
static bool zyg_parse(struct zyg *z, size_t len, int nfds, struct zyg_req_hdr *h,
                      struct sf_bind *binds, struct sf_sandbox_opts *o)
{
    if (len < sizeof(*h)) return false;
    memcpy(h, z->buf, sizeof(*h));
    int want = 1 + !!(h->flags & ZYG_HAS_NETNS) + !!(h->flags & ZYG_HAS_CG0) +
               !!(h->flags & ZYG_HAS_CG1) + !!(h->flags & ZYG_HAS_CGDIR);
    const char *p = z->buf + sizeof(*h), *end = z->buf + len, *s[1 + 2 * 64];
    size_t nstr = 1 + 2 * (size_t)h->n_binds;
    if (nfds != want || h->n_binds > 64 || h->strings_len != len - sizeof(*h)) return false;
    for (size_t ns = 0; ns < nstr; ns++) {
        const char *zp = memchr(p, '\0', (size_t)(end - p));
        if (!zp) return false;
        s[ns] = p;
        p = zp + 1;
    }
    for (uint32_t i = 0; i < h->n_binds; i++)
        binds[i] = (struct sf_bind){ .host_path = s[1 + 2 * i], .sandbox_path = s[2 + 2 * i] };
    *o = (struct sf_sandbox_opts){ .network = (h->flags & ZYG_NETWORK) != 0,
                                   .rootfs = s[0][0] ? s[0] : NULL,
                                   .ro_binds = binds, .n_ro_binds = h->n_binds };
    return true;
}

/* Clone the child with cfg, into cgroup dir cgdir when >= 0 (v2). */
static pid_t zyg_clone(const struct sf_sbx_child_cfg *cfg, bool new_net, int cgdir, int *pidfd,
                       bool *in_cgroup)
{
    long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                 (new_net ? CLONE_NEWNET : 0) | CLONE_PIDFD | SIGCHLD;
    pid_t pid = -1;
    *in_cgroup = false;
    if (cgdir >= 0) {
        /* cgroup v2: the child starts in its cgroup (CLONE_INTO_CGROUP), so
         * nobody moves it from outside, which takes the kernel's global
         * cgroup_threadgroup_rwsem. Kernels or setups without it: below. */
        struct clone_args ca;
        memset(&ca, 0, sizeof(ca));
        ca.flags = (uint64_t)(flags & ~0xffL & ~(long)CLONE_PIDFD) | CLONE_PIDFD | CLONE_INTO_CGROUP;
        ca.pidfd = (uint64_t)(uintptr_t)pidfd;
        ca.exit_signal = SIGCHLD;
        ca.cgroup = (uint64_t)cgdir;
        pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
        if (pid == 0) sf_sbx_init_main(cfg);
        *in_cgroup = pid > 0;
    }
    if (pid < 0) pid = (pid_t)syscall(SYS_clone, flags, 0, pidfd, 0, 0);
    if (pid == 0) sf_sbx_init_main(cfg);
    return pid;
}

/* Serve one request; fds[] are closed by the caller. */
static void zyg_serve(struct zyg *z, size_t len, const int *fds, int nfds)
{
    struct zyg_req_hdr h;
    char err[SF_ERRSTR_LEN] = "";
    struct sf_bind binds[64];
    struct sf_sandbox_opts o;
    if (!zyg_parse(z, len, nfds, &h, binds, &o)) {
        zyg_reply(z->sock, EPROTO, 0, -1, "zygote: bad request", false, SF_SBX_PLAN_FULL);
        return;
    }
    struct sf_sbx_mount_plan own = { 0 }, *plan = NULL;
    int part = zyg_enter_image(z, &o, err, sizeof(err)), rc = part;
    if (part >= 0 && (rc = zyg_plan(z, &o, h.disk_mb, part, &plan, &own, err, sizeof(err))) < 0 &&
        part == SF_SBX_PLAN_SANDBOX)
        zyg_leave_image(z);
    if (rc < 0) {
        zyg_reply(z->sock, -rc, 0, -1, err, false, SF_SBX_PLAN_FULL);
        sf_sbx_mount_plan_free(&own);
        return;
    }
    int k = 1, netns = -1, cgdir = -1, pidfd = -1;
    struct sf_sbx_child_cfg cfg = {
        .ctl_fd = fds[0], .drop_groups = z->cfg->drop_groups, .plan = plan,
        .filter = z->cfg->filter, .cap_last = z->cfg->cap_last, .cg_join = { -1, -1 },
        .clean = true,
    };
    if (h.flags & ZYG_HAS_NETNS) netns = fds[k++];
    if (h.flags & ZYG_HAS_CG0) cfg.cg_join[0] = fds[k++];
    if (h.flags & ZYG_HAS_CG1) cfg.cg_join[1] = fds[k++];
    if (h.flags & ZYG_HAS_CGDIR) cgdir = fds[k++];
    cfg.lo_ready = netns >= 0;
    pid_t pid = -1;
    bool in_cgroup = false;
    int clone_err = 0, ns_err = 0;
    if (netns >= 0 && setns(netns, CLONE_NEWNET) < 0) {
        ns_err = errno;
        snprintf(err, sizeof(err), "entering the sandbox's network namespace: %s", strerror(ns_err));
    } else {
        pid = zyg_clone(&cfg, netns < 0, cgdir, &pidfd, &in_cgroup);
        clone_err = errno;
        if (netns >= 0 && setns(z->home_net, CLONE_NEWNET) < 0) _exit(1);   /* never stay in one */
    }
    if (part == SF_SBX_PLAN_SANDBOX) zyg_leave_image(z);
    sf_sbx_mount_plan_free(&own);
    if (ns_err) {
        zyg_reply(z->sock, ns_err, 0, -1, err, false, SF_SBX_PLAN_FULL);
        return;
    }
    if (pid < 0) {
        snprintf(err, sizeof(err), "clone: %s", strerror(clone_err));
        zyg_reply(z->sock, clone_err, -1, -1, err, false, SF_SBX_PLAN_FULL);   /* at clone */
        return;
    }
    const char *what = NULL;
    if ((rc = sf_sbx_write_maps(pid, z->cfg, &what)) < 0) {
        snprintf(err, sizeof(err), "local sandbox: %s for pid %d: %s", what, (int)pid,
                 strerror(-rc));
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        zyg_reply(z->sock, -rc, 0, -1, err, false, SF_SBX_PLAN_FULL);
        close(pidfd);
        return;
    }
    zyg_reply(z->sock, 0, pid, pidfd, NULL, cgdir >= 0 && in_cgroup, part);
    close(pidfd);
}

/* Can a child cloned from the default image mount its own procfs (the
 * kernel's "fully visible" rule, sbx_image.h)? A throw-away child tries,
 * before any sandbox depends on it. 0 or a positive errno. */
static int zyg_probe_image(struct zyg *z)
{
    int p[2], err = EIO;
    char e[SF_ERRSTR_LEN];
    struct sf_sandbox_opts def = { 0 };
    if (pipe2(p, O_CLOEXEC) < 0) return errno;
    int part = zyg_enter_image(z, &def, e, sizeof(e));
    if (part != SF_SBX_PLAN_SANDBOX) {
        if (part == SF_SBX_PLAN_FULL) zyg_leave_image(z);
        close(p[0]);
        close(p[1]);
        return part < 0 ? -part : ENOTSUP;
    }
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | SIGCHLD,
                               0, 0, 0, 0);
    if (pid == 0) {
        int r = mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ? errno : 0;
        if (write(p[1], &r, sizeof(r)) != (ssize_t)sizeof(r)) _exit(1);
        _exit(0);
    }
    if (pid < 0) err = errno;
    zyg_leave_image(z);
    close(p[1]);
    if (pid > 0 && read(p[0], &err, sizeof(err)) != (ssize_t)sizeof(err)) err = EIO;
    close(p[0]);
    return err;
}

static void __attribute__((noreturn)) zyg_main(const struct sf_sbx_zygote_cfg *cfg, int sock,
                                               pid_t parent)
{
    static struct zyg z;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(0);
    z.cfg = cfg;
    z.sock = sock;
    /* Nothing of the worker's but our socket, and no API key in our argv or
     * environment for any child to inherit. */
    if (sock > 3) syscall(SYS_close_range, 3, (unsigned)sock - 1, 0);
    syscall(SYS_close_range, (unsigned)sock + 1, ~0u, 0);
    sf_sbx_scrub_argv_env();
    prctl(PR_SET_NAME, "sf-zygote", 0, 0, 0);
    /* Every sandbox of the worker goes through here: on a busy host a
     * zygote with a fair share only would serialise them all behind every
     * runnable process (measured: ~30 creations/s at load 20 on 2 cores).
     * Root may raise its priority; each child drops back to 0. */
    setpriority(PRIO_PROCESS, 0, SF_SBX_ZYGOTE_NICE);
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = sig == SIGCHLD ? SIG_IGN : SIG_DFL;    /* children reap themselves */
        sigaction(sig, &sa, NULL);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    z.home_net = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    z.home_mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    z.cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    /* The first message says whether sandboxes get images (sbx_image.h). */
    char why[SF_ERRSTR_LEN] = "turned off (SF_SBX_NO_IMAGE=1)";
    if (cfg->images && z.home_mnt >= 0 && z.cwd >= 0)
        z.images = sf_sbx_images_new(cfg->host_uid, cfg->host_gid, why, sizeof(why));
    int perr = z.images ? zyg_probe_image(&z) : 0;
    if (perr) {
        snprintf(why, sizeof(why), "a sandbox on an image cannot mount its /proc: %s", strerror(perr));
        sf_sbx_images_free(z.images);
        z.images = NULL;
    }
    zyg_reply(sock, z.images ? 0 : ENOTSUP, 0, -1, z.images ? NULL : why, false, SF_SBX_PLAN_FULL);
    for (;;) {
        struct iovec iov = { z.buf, sizeof(z.buf) };
        union { char buf[CMSG_SPACE(5 * sizeof(int))]; struct cmsghdr align; } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(0);                   /* the worker is gone */
        int fds[5] = { -1, -1, -1, -1, -1 }, nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k && nfds < 5; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
            zyg_reply(sock, EPROTO, 0, -1, "zygote: request too large", false, SF_SBX_PLAN_FULL);
        else
            zyg_serve(&z, (size_t)n, fds, nfds);
        for (int i = 0; i < nfds; i++) close(fds[i]);
    }
}

/* ---- the worker's side ----------------------------------------------------- */

struct sf_sbx_zygote *sf_sbx_zygote_start(const struct sf_sbx_zygote_cfg *cfg, char *err,
                                          size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        sf_errf(err, errlen, "zygote: socketpair: %s", strerror(errno));
        return NULL;
    }
    int sndbuf = 2 * ZYG_MAX_REQ;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        zyg_main(cfg, sv[1], parent);
    }
    close(sv[1]);
    if (pid < 0) {
        sf_errf(err, errlen, "zygote: fork: %s", strerror(errno));
        close(sv[0]);
        return NULL;
    }
    struct sf_sbx_zygote *z = sf_xcalloc(1, sizeof(*z));
    pthread_mutex_init(&z->mu, NULL);
    z->sock = sv[0];
    z->pid = pid;
    struct zyg_reply r;
    ssize_t n;
    while ((n = recv(z->sock, &r, sizeof(r), 0)) < 0 && errno == EINTR) {}
    if (n != (ssize_t)sizeof(r)) {
        sf_errf(err, errlen, "zygote: it ended at start (%s)", n < 0 ? strerror(errno) : "no answer");
        sf_sbx_zygote_stop(z);
        return NULL;
    }
    r.msg[sizeof(r.msg) - 1] = '\0';
    if (r.err) sf_strlcpy(z->no_images, r.msg[0] ? r.msg : strerror(r.err), sizeof(z->no_images));
    return z;
}

const char *sf_sbx_zygote_no_images(const struct sf_sbx_zygote *z)
{
    return z && z->no_images[0] ? z->no_images : NULL;
}

void sf_sbx_zygote_stop(struct sf_sbx_zygote *z)
{
    if (!z) return;
    close(z->sock);                         /* it exits at end of file */
    while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR) {}
    pthread_mutex_destroy(&z->mu);
    free(z);
}

int sf_sbx_zygote_spawn(struct sf_sbx_zygote *z, const struct sf_sbx_zygote_req *req,
                        pid_t *pid, int *pidfd, bool *at_clone, bool *in_cgroup_out,
                        int *part, char *err, size_t errlen)
{
    *at_clone = false;
    *in_cgroup_out = false;
    *part = SF_SBX_PLAN_FULL;
    const struct sf_sandbox_opts *o = req->opts;
    struct zyg_req_hdr h = { .disk_mb = req->disk_mb, .n_binds = (uint32_t)o->n_ro_binds };
    struct sf_buf b = { 0 };
    int fds[5], nfds = 0, rc = 0;
    *pid = 0;
    *pidfd = -1;
    if (o->n_ro_binds > 64) {
        sf_errf(err, errlen, "at most 64 ro_binds");
        return -E2BIG;
    }
    fds[nfds++] = req->ctl_fd;
    if (o->network) h.flags |= ZYG_NETWORK;
    if (req->netns >= 0) { h.flags |= ZYG_HAS_NETNS; fds[nfds++] = req->netns; }
    if (req->cg_join[0] >= 0) { h.flags |= ZYG_HAS_CG0; fds[nfds++] = req->cg_join[0]; }
    if (req->cg_join[1] >= 0) { h.flags |= ZYG_HAS_CG1; fds[nfds++] = req->cg_join[1]; }
    if (req->cgroup_dir >= 0) { h.flags |= ZYG_HAS_CGDIR; fds[nfds++] = req->cgroup_dir; }
    sf_buf_append(&b, &h, sizeof(h));
    const char *root = o->rootfs ? o->rootfs : "";
    sf_buf_append(&b, root, strlen(root) + 1);
    for (size_t i = 0; i < o->n_ro_binds; i++) {
        const char *hp = o->ro_binds[i].host_path ? o->ro_binds[i].host_path : "";
        const char *sp = o->ro_binds[i].sandbox_path ? o->ro_binds[i].sandbox_path : "";
        sf_buf_append(&b, hp, strlen(hp) + 1);
        sf_buf_append(&b, sp, strlen(sp) + 1);
    }
    h.strings_len = (uint32_t)(b.len - sizeof(h));
    memcpy(b.data, &h, sizeof(h));
    if (b.len > ZYG_MAX_REQ) {
        sf_buf_free(&b);
        sf_errf(err, errlen, "sandbox options too large (%zu bytes)", b.len);
        return -E2BIG;
    }
    struct iovec iov = { b.data, b.len };
    union { char buf[CMSG_SPACE(5 * sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int)) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));

    struct zyg_reply r;
    struct iovec riov = { &r, sizeof(r) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ru;
    struct msghdr rh = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = ru.buf,
                         .msg_controllen = sizeof(ru.buf) };
    ssize_t n;
    pthread_mutex_lock(&z->mu);
    while ((n = sendmsg(z->sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    if (n >= 0)
        while ((n = recvmsg(z->sock, &rh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
    pthread_mutex_unlock(&z->mu);
    sf_buf_free(&b);
    if (n != (ssize_t)sizeof(r)) {
        rc = n < 0 ? -errno : -EPIPE;
        sf_errf(err, errlen, "the sandbox zygote is gone (%s)", strerror(-rc));
        return rc;
    }
    struct cmsghdr *rc_ = CMSG_FIRSTHDR(&rh);
    if (rc_ && rc_->cmsg_level == SOL_SOCKET && rc_->cmsg_type == SCM_RIGHTS)
        memcpy(pidfd, CMSG_DATA(rc_), sizeof(int));
    if (r.err) {
        if (*pidfd >= 0) close(*pidfd);
        *pidfd = -1;
        r.msg[sizeof(r.msg) - 1] = '\0';
        sf_errf(err, errlen, "%s", r.msg);
        *at_clone = r.at_clone != 0;
        return -r.err;
    }
    if (*pidfd < 0) {
        sf_errf(err, errlen, "the sandbox zygote sent no pidfd");
        return -EPROTO;
    }
    *pid = r.pid;
    *in_cgroup_out = r.in_cgroup != 0;
    *part = r.part;
    return 0;
}
