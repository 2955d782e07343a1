/* common/sandbox/local/sandbox_local.c: the "local" backend — Linux namespaces, seccomp,
 * cgroups (see sandbox.h for the interface, docs/security.md for why): the
 * provider and each sandbox's lifecycle (create, files, destroy); its
 * commands are in sbx_local_run.c, the shared structs in sbx_local.h.
 *
 * Design: create() prepares everything that can fail (cgroup with limits;
 * the seccomp BPF is compiled once per provider), then has the provider's
 * zygote (sbx_zygote.h) build the mount plan and clone a child into new
 * user, pid, mount, ipc, uts (and net) namespaces; the zygote writes the
 * child's uid/gid maps. Without a zygote this process plans and clones
 * itself. The worker puts the child in the cgroup and releases it; the
 * child builds its root and stays as pid 1 (sbx_init.c). Files are read and
 * written by the worker through an O_PATH fd of the sandbox root with
 * openat2(RESOLVE_IN_ROOT), so symlinks planted inside cannot point at the
 * host. Killing pid 1 kills every process of the sandbox. */
#include "sandbox.h"
#include "sandbox_fs.h"
#include "iopump.h"
#include "sbx_cgroup.h"
#include "sbx_egress.h"
#include "sbx_exec.h"
#include "sbx_files.h"
#include "sbx_init.h"
#include "sbx_local.h"
#include "sbx_mount.h"
#include "sbx_netns.h"
#include "sbx_proc.h"
#include "sbx_seccomp.h"
#include "sbx_zygote.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small helpers -------------------------------------------------------- */

/* Receive one message, with an optional fd, before 'deadline_ms' (<= 0:
 * none). Returns bytes, 0 at EOF, -ETIMEDOUT or -errno. */
ssize_t sf_sbx_local_recv(int ctl, struct sf_sbx_msg *m, int *fd, int64_t deadline_ms)
{
    if (fd) *fd = -1;
    for (;;) {
        if (deadline_ms > 0) {
            int64_t left = deadline_ms - sf_now_ms();
            if (left <= 0) return -ETIMEDOUT;
            struct pollfd pfd = { ctl, POLLIN, 0 };
            int r = poll(&pfd, 1, (int)left);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return -errno;
            if (r == 0) return -ETIMEDOUT;
        }
        struct iovec iov = { m, sizeof(*m) };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int got;
            memcpy(&got, CMSG_DATA(c), sizeof(int));
            if (fd) *fd = got;
            else close(got);
        }
        if (n > 0 && n != (ssize_t)sizeof(*m)) return -EPROTO;
        return n;
    }
}

/* Kill pid 1 (the kernel then kills the whole pid namespace) and wait for
 * its end: reap it, or (the zygote's child, reaped by the kernel) see its
 * pidfd become readable. */
void sf_sbx_local_kill(struct local_sandbox *ls, const char *why)
{
    /* init_pid 0 first (atomically): the file calls of other threads
     * (sf_sbx_files_of) see a dead sandbox from here on. */
    pid_t pid = __atomic_exchange_n(&ls->init_pid, 0, __ATOMIC_ACQ_REL);
    if (ls->pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, ls->pidfd, SIGKILL, NULL, 0);
        struct pollfd pfd = { ls->pidfd, POLLIN, 0 };
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {}
        close(ls->pidfd);
        ls->pidfd = -1;
    } else if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (why && !ls->dead[0]) sf_strlcpy(ls->dead, why, sizeof(ls->dead));
}

/* ---- files (sbx_files.c) ---------------------------------------------------- */

static struct sf_sbx_files local_files(const struct local_sandbox *ls)
{
    const struct local_provider *lp = ls->lp;
    return (struct sf_sbx_files){ .rootfd = ls->rootfd, .uid = lp->host_uid, .gid = lp->host_gid,
                                  .switch_ids = lp->worker_is_root, .root_uid = lp->host_uid,
                                  .root_gid = lp->host_gid, .user_uid = lp->user_uid,
                                  .user_gid = lp->user_gid };
}

int sf_sbx_files_of(struct sf_sandbox *sb, uint32_t uid, struct sf_sbx_files *f)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    *f = local_files(ls);
    if (ls->rootfd < 0 || __atomic_load_n(&ls->init_pid, __ATOMIC_ACQUIRE) <= 0) return -ESRCH;
    if (uid == SF_FS_UID_USER && ls->lp->user_uid) {
        f->uid = ls->lp->user_uid;
        f->gid = ls->lp->user_gid;
    }
    return 0;
}

static int local_write_file(struct sf_sandbox *sb, const char *path, const void *data,
                            size_t len, int mode)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    struct sf_sbx_files f = local_files(ls);
    int rc = sf_sbx_files_write(&f, path, data, len, mode);
    if (rc < 0)
        sf_errf(sb->errstr, sizeof(sb->errstr), "write %s in sandbox %s: %s", path ? path : "(null)",
                sb->id, strerror(-rc));
    return rc;
}

static int local_read_file(struct sf_sandbox *sb, const char *path, size_t max, char **data,
                           size_t *len)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    struct sf_sbx_files f = local_files(ls);
    int rc = sf_sbx_files_read(&f, path, max, data, len);
    if (rc < 0)
        sf_errf(sb->errstr, sizeof(sb->errstr), "read %s in sandbox %s: %s", path ? path : "(null)",
                sb->id, strerror(-rc));
    return rc;
}

/* ---- run ------------------------------------------------------------------ */

static void local_destroy(struct sf_sandbox *sb)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    if (!ls) return;
    sf_sbx_local_kill(ls, NULL);
    if (ls->lp->egress.eg) sf_sbx_egress_ingress_del(ls->lp->egress.eg, ls);
    sf_sbx_egress_detach(ls->egress);
    if (ls->netns >= 0) close(ls->netns);
    if (ls->ctl >= 0) close(ls->ctl);
    if (ls->rootfd >= 0) close(ls->rootfd);
    char cgdir[SF_SBX_CG_PATH];
    sf_strlcpy(cgdir, ls->cg.mem, sizeof(cgdir));
    int rc = sf_sbx_cgroup_destroy(&ls->cg, 2000);
    if (rc < 0)
        SF_LOGW(ls->lp->log, "sandbox %s: cgroup %s not removed: %s", sb->id, cgdir, strerror(-rc));
    free(ls);
}

static void local_kill(struct sf_sandbox *sb)
{
    sf_sbx_local_kill((struct local_sandbox *)sb, "the sandbox was killed");
}

static int local_proc_host(struct sf_sandbox *sb, struct sf_proc_host **out, char *err,
                           size_t errlen);

static int local_freeze(struct sf_sandbox *sb, bool frozen)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    if (ls->init_pid <= 0) return -ESRCH;
    int rc = sf_sbx_cgroup_freeze(&ls->cg, frozen);
    if (rc < 0)
        sf_errf(sb->errstr, sizeof(sb->errstr), "%s sandbox %s: %s", frozen ? "freeze" : "thaw",
                sb->id, rc == -ENOTSUP ? "no cgroup freezer (cgroup v2, or v1 with the freezer "
                "hierarchy mounted, is needed)" : strerror(-rc));
    return rc;
}

static int local_stats(struct sf_sandbox *sb, struct sf_sandbox_stats *st)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    st->cpus = cpus > 0 ? (int)cpus : 1;
    st->mem_limit_bytes = ls->limits.memory_mb * 1024 * 1024;
    st->disk_limit_bytes = ls->limits.disk_mb * 1024 * 1024;
    st->disk_bytes = -1;
    sf_sbx_cgroup_usage(&ls->cg, &st->cpu_usage_us, &st->mem_bytes);
    /* The writable places are one tmpfs: /tmp is on it. */
    int fd = ls->rootfd >= 0 ? sf_sbx_openat2(ls->rootfd, "/tmp", O_PATH | O_DIRECTORY, 0) : -1;
    struct statfs fs;
    if (fd >= 0 && fstatfs(fd, &fs) == 0) {
        st->disk_limit_bytes = (int64_t)fs.f_blocks * fs.f_bsize;
        st->disk_bytes = (int64_t)(fs.f_blocks - fs.f_bfree) * fs.f_bsize;
    }
    if (fd >= 0) close(fd);
    return 0;
}

static int local_set_network(struct sf_sandbox *sb, const struct sf_netpolicy *rules,
                             const struct sf_inject *inject)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    if (!ls->egress) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s was made without network", sb->id);
        return -ENOTSUP;
    }
    if (inject && !ls->env_extra) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s does not trust the egress path's CA "
                "(made without inject rules, or this worker's egress TLS is off)", sb->id);
        return -EPERM;
    }
    sf_sbx_egress_set_policy(ls->egress, rules, inject);
    return 0;
}

static int local_set_ingress(struct sf_sandbox *sb, const char *name, const char *token)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    if (!ls->lp->egress.eg || ls->netns < 0) return -ENOTSUP;
    return sf_sbx_egress_ingress_add(ls->lp->egress.eg, ls, ls->netns, name, token);
}

static int local_connect_port(struct sf_sandbox *sb, uint16_t port, int *fd)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    if (ls->netns < 0) return -ENOTSUP;
    int s = sf_sbx_netns_socket(ls->netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return s;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int rc = -errno;
        close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

static const struct sf_sandbox_ops local_ops = {
    .write_file = local_write_file,
    .read_file = local_read_file,
    .run = sf_sbx_local_run,
    .destroy = local_destroy,
    .kill = local_kill,
    .proc_host = local_proc_host,
    .fs = &sf_sbx_fs_ops,
    .freeze = local_freeze,
    .stats = local_stats,
    .set_network = local_set_network,
    .connect_port = local_connect_port,
    .set_ingress = local_set_ingress,
    .start = sf_sbx_local_start,
    .reap = sf_sbx_local_reap,
};

/* ---- create ----------------------------------------------------------------- */

static int local_clone_error(int err, char *errstr, size_t errlen)
{
    sf_errf(errstr, errlen, "local sandbox: cannot create namespaces (clone: %s). User namespaces "
            "are disabled or not permitted here: enable them (sysctl user.max_user_namespaces > 0, "
            "kernel.unprivileged_userns_clone=1, or run the worker with CAP_SYS_ADMIN / without a "
            "seccomp profile that blocks clone), or choose --sandbox process (no isolation) or "
            "--sandbox e2b", strerror(err));
    return -err;
}

/* The network namespace for a new sandbox: a pooled one when there is one,
 * else made now; for network off without the privilege to make one, none
 * (ns->net -1: clone makes it). Network on never falls back to the host's
 * network: without an egress path the step fails. */
static int local_netns(struct local_provider *lp, const struct sf_sandbox_opts *opts,
                       struct sf_sbx_ns *ns, char *errstr, size_t errlen)
{
    ns->net = -1;
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++) ns->sock[i] = -1;
    if (opts->network) return sf_sbx_egress_kit_take(&lp->egress, ns, errstr, errlen);
    if (sf_sbx_netns_pool_take(lp->netns, ns) < 0 && lp->netns) sf_sbx_ns_make(SF_SBX_NS_PLAIN, ns);
    return 0;
}

/* Parent side of the handshake: ids (unless the zygote wrote them), cgroup,
 * GO, then READY or an error. */
static int local_handshake(struct local_sandbox *ls, const struct sf_sandbox_opts *opts,
                           bool self_joined, int part, char *errstr, size_t errlen)
{
    struct local_provider *lp = ls->lp;
    int rc;
    const char *what = "uid_map";
    if (ls->pidfd < 0 && (rc = sf_sbx_write_maps(ls->init_pid, &lp->ids, &what)) < 0) goto fail;
    if (!self_joined && (rc = sf_sbx_cgroup_attach(&ls->cg, ls->init_pid, errstr, errlen)) < 0)
        return rc;
    struct sf_sbx_msg m = { .type = SF_SBX_MSG_GO };
    what = "releasing the sandbox child";
    if (send(ls->ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0) { rc = -errno; goto fail; }
    int fd = -1;
    ssize_t n = sf_sbx_local_recv(ls->ctl, &m, &fd, sf_now_ms() + SF_LOCAL_SETUP_TIMEOUT_MS);
    if (n > 0 && m.type == SF_SBX_MSG_READY && fd >= 0) {
        ls->rootfd = fd;
        return 0;
    }
    if (fd >= 0) close(fd);
    if (n > 0 && m.type == SF_SBX_MSG_SETUP_FAILED) {
        char desc[PATH_MAX + 64] = "", e2[8];
        /* The same options give the same plan: build it again to name the step. */
        struct sf_sbx_mount_plan plan = { 0 };
        if (m.step == SF_SBX_STEP_MOUNT &&
            sf_sbx_mount_plan_build(&plan, opts, ls->limits.disk_mb, lp->user_uid != 0, part, e2,
                                    sizeof(e2)) == 0)
            sf_sbx_mount_describe(&plan, m.detail, desc, sizeof(desc));
        sf_sbx_mount_plan_free(&plan);
        sf_errf(errstr, errlen, "local sandbox setup failed: %s%s%s: %s", sf_sbx_step_name(m.step),
                desc[0] ? ": " : "", desc, strerror(m.err));
        return -(m.err ? m.err : EIO);
    }
    sf_errf(errstr, errlen, "local sandbox setup failed: %s",
            n == -ETIMEDOUT ? "no answer from the sandbox child within 10 s"
                            : "the sandbox child died without a report");
    return n < 0 ? (int)n : -EIO;
fail:
    sf_errf(errstr, errlen, "local sandbox: %s for pid %d: %s", what, (int)ls->init_pid,
            strerror(-rc));
    return rc;
}

/* Clone the child from this process (no zygote): plan, enter its network
 * namespace around clone(). Returns the pid or -errno (errstr). */
static pid_t local_clone_here(struct local_sandbox *ls, const struct sf_sandbox_opts *opts,
                              int netns, int ctl_fd, const int cgj[2], char *errstr, size_t errlen)
{
    struct local_provider *lp = ls->lp;
    struct sf_sbx_mount_plan plan = { 0 };
    int rc = sf_sbx_mount_plan_build(&plan, opts, ls->limits.disk_mb, lp->user_uid != 0,
                                      SF_SBX_PLAN_FULL, errstr, errlen);
    if (rc < 0) return rc;
    struct sf_sbx_child_cfg cfg = {
        .ctl_fd = ctl_fd, .drop_groups = lp->worker_is_root, .plan = &plan, .filter = &lp->bpf,
        .cap_last = lp->cap_last, .cg_join = { cgj[0], cgj[1] }, .lo_ready = netns >= 0,
    };
    /* The namespace is entered by this thread only around clone() so that
     * the child starts in it (sbx_netns.h). */
    int prevns = netns >= 0 ? sf_sbx_netns_enter(netns) : -1;
    if (netns >= 0 && prevns < 0) {
        sf_errf(errstr, errlen, "local sandbox: entering its network namespace: %s",
                strerror(-prevns));
        sf_sbx_mount_plan_free(&plan);
        return prevns;
    }
    long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                 (netns >= 0 ? 0 : CLONE_NEWNET) | SIGCHLD;
    /* fork-like raw clone: see sbx_init.h for what the child may call. */
    pid_t pid = (pid_t)syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid == 0) sf_sbx_init_main(&cfg);
    int clone_errno = errno;
    if (netns >= 0) sf_sbx_netns_leave(prevns);
    sf_sbx_mount_plan_free(&plan);
    return pid < 0 ? local_clone_error(clone_errno, errstr, errlen) : pid;
}

/* Injected headers mean TLS to those hosts ends at the worker, with a
 * certificate of its own CA (sbx_egress_tls.c): the sandbox gets that CA
 * (beside the host's usual ones) bound in, over the system bundle too when
 * it runs on the host's image, and the variables that point clients at it.
 * local_inject_opts: 0 (o2 and binds set), 1 (egress_ca without inject on a
 * worker whose egress TLS is off: nothing to add), -ENOTSUP. */
static const char *const local_ca_env[] = {
    "SSL_CERT_FILE=/run/sandfleet/ca-bundle.crt", "REQUESTS_CA_BUNDLE=/run/sandfleet/ca-bundle.crt",
    "CURL_CA_BUNDLE=/run/sandfleet/ca-bundle.crt", "NODE_EXTRA_CA_CERTS=/run/sandfleet/ca.crt", NULL,
};

static int local_inject_opts(struct local_provider *lp, const struct sf_sandbox_opts *opts,
                             struct sf_sandbox_opts *o2, struct sf_bind **binds, char *errstr,
                             size_t errlen)
{
    const char *bundle, *ca;
    struct stat st;
    bool ok = opts->network && lp->egress.eg && sf_sbx_egress_ca_files(lp->egress.eg, &bundle, &ca) == 0;
    if (!ok && !opts->inject) return 1;                /* egress_ca only: best effort */
    if (!ok) {
        sf_errf(errstr, errlen, "local sandbox: 'inject' cannot run on this worker: %s",
                !opts->network ? "it needs network" : !lp->egress.eg ? lp->egress.why
                : "its egress TLS could not start (see its log)");
        return -ENOTSUP;
    }
    *o2 = *opts;
    *binds = sf_xcalloc(opts->n_ro_binds + 3, sizeof(**binds));
    if (opts->n_ro_binds) memcpy(*binds, opts->ro_binds, opts->n_ro_binds * sizeof(**binds));
    size_t n = opts->n_ro_binds;
    (*binds)[n++] = (struct sf_bind){ bundle, "/run/sandfleet/ca-bundle.crt" };
    (*binds)[n++] = (struct sf_bind){ ca, "/run/sandfleet/ca.crt" };
    if (!opts->rootfs && stat("/etc/ssl/certs/ca-certificates.crt", &st) == 0)
        (*binds)[n++] = (struct sf_bind){ bundle, "/etc/ssl/certs/ca-certificates.crt" };
    o2->ro_binds = *binds;
    o2->n_ro_binds = n;
    return 0;
}

static int local_create_fresh(struct sf_sandbox_provider *p, const struct sf_sandbox_opts *opts,
                              struct sf_sandbox **out, char *errstr, size_t errlen)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct local_sandbox *ls = sf_xcalloc(1, sizeof(*ls));
    int sv[2] = { -1, -1 }, cgj[2] = { -1, -1 }, rc;
    char hex[16];
    struct sf_sandbox_opts o2;
    struct sf_bind *binds = NULL;

    ls->base.ops = &local_ops;
    ls->lp = lp;
    ls->ctl = ls->rootfd = ls->netns = ls->pidfd = -1;
    ls->limits = opts->limits;
    sf_limits_merge(&ls->limits, &lp->defaults);
    sf_random_hex(hex, sizeof(hex), 12);
    /* The worker's pid in the name: the cgroup sweep removes only leftovers of
     * workers that are gone. */
    snprintf(ls->base.id, sizeof(ls->base.id), "sf-%d-%s", (int)getpid(), hex);
    if (opts->inject || (opts->egress_ca && opts->network)) {
        if ((rc = local_inject_opts(lp, opts, &o2, &binds, errstr, errlen)) < 0) goto cleanup;
        if (rc == 0) {
            opts = &o2;
            ls->env_extra = local_ca_env;
        }
    }

    if (lp->cgbase.version &&
        (rc = sf_sbx_cgroup_create(&lp->cgbase, ls->base.id, ls->limits.memory_mb, ls->limits.pids,
                                   &ls->cg, errstr, errlen)) < 0)
        goto cleanup;
    if ((rc = sf_sbx_cgroup_open_join(&ls->cg, cgj)) < 0) {
        sf_errf(errstr, errlen, "local sandbox: cgroup %s: %s", ls->cg.mem, strerror(-rc));
        goto cleanup;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        sf_errf(errstr, errlen, "local sandbox: socketpair: %s", strerror(errno));
        goto cleanup;
    }
    /* Requests carry up to SF_SBX_RUN_MAX bytes in one datagram. */
    int sndbuf = 2 * SF_SBX_RUN_MAX;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    struct sf_sbx_ns ns;
    if ((rc = local_netns(lp, opts, &ns, errstr, errlen)) < 0) goto cleanup;
    pid_t pid;
    bool in_cgroup = false;
    int part = SF_SBX_PLAN_FULL;
    if (lp->zygote) {
        struct sf_sbx_zygote_req req = { .opts = opts, .disk_mb = ls->limits.disk_mb,
                                         .ctl_fd = sv[1], .cg_join = { cgj[0], cgj[1] },
                                         .netns = ns.net, .cgroup_dir = -1 };
        if (ls->cg.version == 2)
            req.cgroup_dir = open(ls->cg.mem, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        bool at_clone;
        int zrc = sf_sbx_zygote_spawn(lp->zygote, &req, &pid, &ls->pidfd, &at_clone, &in_cgroup,
                                      &part, errstr, errlen);
        if (req.cgroup_dir >= 0) close(req.cgroup_dir);
        if (zrc < 0) pid = at_clone ? local_clone_error(-zrc, errstr, errlen) : zrc;
    } else {
        pid = local_clone_here(ls, opts, ns.net, sv[1], cgj, errstr, errlen);
    }
    /* Kept for the worker's own connections into it (connect_port); the
     * namespace serves this sandbox only and dies with it. */
    ls->netns = ns.net;
    ns.net = -1;
    if (opts->network && pid > 0)
        sf_sbx_egress_attach(lp->egress.eg, ls->netns, &ns, opts->net_policy, opts->inject,
                             ls->base.id, &ls->egress);
    sf_sbx_ns_close(&ns);
    /* v1: the child moved itself; v2: it started there (CLONE_INTO_CGROUP) */
    bool self_joined = cgj[0] >= 0 || in_cgroup;
    sf_sbx_close_pair(cgj);
    if (pid < 0) {
        rc = pid;
        goto cleanup;
    }
    ls->init_pid = pid;
    close(sv[1]);
    sv[1] = -1;
    ls->ctl = sv[0];
    sv[0] = -1;
    if ((rc = local_handshake(ls, opts, self_joined, part, errstr, errlen)) < 0)
        goto cleanup;
    free(binds);
    *out = &ls->base;
    return 0;
cleanup:
    free(binds);
    sf_sbx_close_pair(sv);
    sf_sbx_close_pair(cgj);
    local_destroy(&ls->base);
    *out = NULL;
    return rc;
}

/* The ready pools' makers: a sandbox with the default options, with
 * network off or on (the default policy). */
static struct sf_sandbox *local_make_default(void *arg, char *err, size_t errlen)
{
    struct sf_sandbox *sb = NULL;
    struct sf_sandbox_opts opts = { 0 };
    return local_create_fresh(arg, &opts, &sb, err, errlen) < 0 ? NULL : sb;
}

static struct sf_sandbox *local_make_net(void *arg, char *err, size_t errlen)
{
    struct sf_sandbox *sb = NULL;
    struct sf_sandbox_opts opts = { .network = true };
    return local_create_fresh(arg, &opts, &sb, err, errlen) < 0 ? NULL : sb;
}

static int local_create(struct sf_sandbox_provider *p, const struct sf_sandbox_opts *opts,
                        struct sf_sandbox **out, char *errstr, size_t errlen)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct sf_limits lim = opts->limits;
    sf_limits_merge(&lim, &lp->defaults);
    /* A ready one fits when only memory and pids differ (cgroup limits,
     * rewritten here) and, with network, the rules (set here: nothing has
     * run in it yet); the disk is the size of its tmpfs. The CA of
     * injected headers changes its files: never from the pool. */
    bool fits = !opts->n_ro_binds && !opts->rootfs && !opts->inject && !opts->egress_ca &&
                lim.disk_mb == lp->defaults.disk_mb;
    struct local_sandbox *ls =
        fits ? (struct local_sandbox *)sf_sbx_ready_take(opts->network ? lp->ready_net : lp->ready)
             : NULL;
    if (ls && opts->network && !ls->egress) {        /* its egress never started */
        local_destroy(&ls->base);
        ls = NULL;
    }
    if (!ls) return local_create_fresh(p, opts, out, errstr, errlen);
    if (opts->network) sf_sbx_egress_set_policy(ls->egress, opts->net_policy, NULL);
    ls->limits = lim;
    int rc = sf_sbx_cgroup_set_limits(&ls->cg, lim.memory_mb, lim.pids, errstr, errlen);
    if (rc < 0) {
        local_destroy(&ls->base);
        return local_create_fresh(p, opts, out, errstr, errlen);
    }
    *out = &ls->base;
    return 0;
}

/* ---- provider --------------------------------------------------------------- */

static void local_free(struct sf_sandbox_provider *p)
{
    struct local_provider *lp = (struct local_provider *)p;
    if (!lp) return;
    sf_sbx_ready_free(lp->ready);       /* first: they create through the rest */
    sf_sbx_ready_free(lp->ready_net);
    sf_sbx_zygote_stop(lp->zygote);
    sf_sbx_netns_pool_free(lp->netns);
    sf_sbx_egress_kit_stop(&lp->egress);
    sf_sbx_seccomp_free(&lp->bpf);
    free(lp);
}

static const struct sf_provider_ops local_provider_ops = {
    .name = "local",
    .create = local_create,
    .free = local_free,
};

/* One throw-away child in the namespaces every sandbox needs: a clear error
 * at startup instead of at the first task. */
static int local_probe_userns(char *errstr, size_t errlen)
{
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
                               SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return local_clone_error(errno, errstr, errlen);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return 0;
}

struct sf_sandbox_provider *sf_sandbox_local_new(const struct sf_provider_config *cfg,
                                                 char *errstr, size_t errlen)
{
    struct local_provider *lp = sf_xcalloc(1, sizeof(*lp));
    char cgerr[SF_ERRSTR_LEN];
    lp->base.ops = &local_provider_ops;
    lp->log = cfg ? cfg->log : NULL;
    sf_limits_defaults(&lp->defaults);
    if (cfg) {
        struct sf_limits d = cfg->defaults;
        sf_limits_merge(&d, &lp->defaults);
        lp->defaults = d;
    }
    lp->worker_is_root = geteuid() == 0;
    if (lp->worker_is_root) {
        lp->host_uid = cfg && cfg->host_uid ? cfg->host_uid : 65534;
        lp->host_gid = cfg && cfg->host_gid ? cfg->host_gid : 65534;
        lp->user_uid = cfg && cfg->host_user_uid ? cfg->host_user_uid : 65533;
        lp->user_gid = cfg && cfg->host_user_gid ? cfg->host_user_gid : 65533;
        if (lp->user_uid == lp->host_uid || lp->user_gid == lp->host_gid) {
            sf_errf(errstr, errlen, "local sandbox: the host ids of the sandbox's root (%u:%u) and "
                    "of its \"user\" (%u:%u) must differ", lp->host_uid, lp->host_gid,
                    lp->user_uid, lp->user_gid);
            goto fail;
        }
    } else {
        /* Without privileges we can map exactly one id: our own. */
        lp->host_uid = geteuid();
        lp->host_gid = getegid();
        /* Nor drop our supplementary groups: setgroups is denied in the
         * sandbox's namespace, so the kernel still grants them there. */
        char groups[256];
        if (sf_drop_host_groups(groups, sizeof(groups)) > 0)
            SF_LOGW(lp->log, "local sandboxes keep this worker's supplementary groups (%s): an "
                    "unprivileged worker cannot drop them, and files of these groups stay "
                    "readable to agents; start it without them (systemd: no "
                    "SupplementaryGroups=, a user in no other group; setpriv --clear-groups) "
                    "or as root", groups);
    }
    lp->ids = (struct sf_sbx_zygote_cfg){
        .filter = &lp->bpf, .drop_groups = lp->worker_is_root, .host_uid = lp->host_uid,
        .host_gid = lp->host_gid, .user_uid = lp->user_uid, .user_gid = lp->user_gid,
        .write_setgroups = !lp->worker_is_root,
    };
    lp->cap_last = 40;
    char *s = NULL;
    size_t n;
    if (sf_read_file("/proc/sys/kernel/cap_last_cap", 32, &s, &n) == 0) lp->cap_last = atoi(s);
    free(s);

    if (local_probe_userns(errstr, errlen) < 0) goto fail;
    if (sf_sbx_seccomp_build(&lp->bpf, cgerr, sizeof(cgerr)) < 0) {
        sf_errf(errstr, errlen, "local sandbox: seccomp filter: %s", cgerr);
        goto fail;
    }
    if (sf_sbx_cgroup_base_init(&lp->cgbase, "/sys/fs/cgroup", "/proc/self/cgroup",
                                cfg ? cfg->cgroup_parent : NULL, cgerr, sizeof(cgerr)) < 0) {
        if (!cfg || !cfg->cgroups_optional) {
            sf_errf(errstr, errlen, "local sandbox: no usable cgroups for memory and pids limits "
                    "(%s). Run the worker as root, or on cgroup v2 in a delegated cgroup of its "
                    "own (a systemd service with Delegate=yes, or systemd-run --user --scope -p "
                    "Delegate=yes sandfleet-worker ...); docs/security.md, \"Where it runs\"",
                    cgerr);
            goto fail;
        }
        memset(&lp->cgbase, 0, sizeof(lp->cgbase));
        SF_LOGW(lp->log, "local sandboxes run WITHOUT memory and pids limits: %s", cgerr);
    } else {
        /* A worker killed with -9 never ran destroy(): its sandboxes died
         * with it (pid 1 exits when the control socket closes), their empty
         * cgroups stayed. */
        sf_sbx_cgroup_sweep(&lp->cgbase, "sf-");
    }
    /* Before any thread of ours: the zygote is a copy of this process as it
     * is now. SF_SBX_NO_ZYGOTE=1 clones from here instead (benchmarks.md §1
     * compares the two). */
    lp->ids.cap_last = lp->cap_last;
    const char *nz = getenv("SF_SBX_NO_ZYGOTE"), *ni = getenv("SF_SBX_NO_IMAGE");
    /* SF_SBX_NO_IMAGE=1: every sandbox builds its whole root (sbx_image.h;
     * benchmarks.md §1 compares). */
    lp->ids.images = !(ni && *ni == '1');
    if (!(nz && *nz == '1') && !(lp->zygote = sf_sbx_zygote_start(&lp->ids, cgerr, sizeof(cgerr))))
        SF_LOGW(lp->log, "local sandbox: %s; sandboxes are cloned from the worker", cgerr);
    const char *noimg = sf_sbx_zygote_no_images(lp->zygote);
    if (noimg && lp->worker_is_root && lp->ids.images)
        SF_LOGW(lp->log, "local sandbox: no sandbox images (%s); each sandbox builds its whole "
                "root", noimg);
    /* Without the privilege to make network namespaces outside a user
     * namespace, every sandbox makes its own (slower, as safe). */
    int nserr;
    lp->netns = sf_sbx_netns_pool_new(SF_LOCAL_NETNS_POOL, SF_SBX_NS_PLAIN, lp->log, &nserr);
    if (sf_sbx_egress_kit_start(&lp->egress, SF_LOCAL_NETNS_POOL, cfg ? cfg->egress_allow : NULL,
                                cfg ? cfg->egress_deny : NULL, cfg ? cfg->egress_dns : NULL,
                                cfg ? cfg->log : NULL, errstr, errlen) < 0)
        goto fail;
    /* Last: it creates sandboxes with everything above. SF_SBX_READY=N
     * keeps N (0: none; benchmarks.md §1 compares). */
    const char *rd = getenv("SF_SBX_READY");
    lp->ready = sf_sbx_ready_new(rd && *rd ? atoi(rd) : SF_LOCAL_READY, local_make_default, lp,
                                 lp->log);
    if (lp->egress.eg)
        lp->ready_net = sf_sbx_ready_new(rd && *rd ? atoi(rd) : SF_LOCAL_READY, local_make_net, lp,
                                         lp->log);
    return &lp->base;
fail:
    local_free(&lp->base);
    return NULL;
}

/* ---- several processes at once (sandbox_proc.h) ----------------------------- */

static int local_proc_host(struct sf_sandbox *sb, struct sf_proc_host **out, char *err,
                           size_t errlen)
{
    struct local_sandbox *ls = (struct local_sandbox *)sb;
    *out = NULL;
    if (ls->dead[0] || ls->init_pid <= 0 || ls->ctl < 0) {
        sf_errf(err, errlen, "sandbox %s: it is not running", sb->id);
        return -ESRCH;
    }
    return sf_sbx_proc_host_new(ls->ctl, ls->lp->user_uid != 0, ls->env_extra, out, err, errlen);
}
