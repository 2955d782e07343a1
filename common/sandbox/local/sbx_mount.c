/* common/sandbox/local/sbx_mount.c: see sbx_mount.h.
 *
 * Design: the plan is built where allocation and stdio are allowed, the
 * child only walks an array. The new root is a tmpfs mounted in the
 * child's private mount namespace on a host directory that is not the
 * source of any bind (first of /tmp, /mnt, ...), the writable tmpfs on
 * the next such directory (its subdirectories are bound into the root),
 * then pivot_root(".", ".") swaps the root in and the old root is detached
 * in one umount (runc/bwrap trick: no put_old directory needed; each
 * umount waits for an RCU grace period, so there is only this one). Read-only is applied with mount_setattr(AT_RECURSIVE)
 * so submounts are covered and flags locked by the user namespace (nosuid,
 * nodev of the source) are never cleared; kernels before 5.12 fall back to
 * a bind remount that keeps the source's statfs flags. */
#include "sbx_mount.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- building the plan (parent) ------------------------------------------ */

static const char *sf_sbx_plan_str(struct sf_sbx_mount_plan *plan, char *s)
{
    if (plan->nstrings == plan->capstrings) {
        plan->capstrings = plan->capstrings ? plan->capstrings * 2 : 64;
        plan->strings = sf_xrealloc(plan->strings, plan->capstrings * sizeof(char *));
    }
    plan->strings[plan->nstrings++] = s;
    return s;
}

static struct sf_sbx_mop *sf_sbx_plan_add(struct sf_sbx_mount_plan *plan,
                                          enum sf_sbx_mop_kind kind, const char *src,
                                          const char *dst, int mode)
{
    if (plan->n == plan->cap) {
        plan->cap = plan->cap ? plan->cap * 2 : 64;
        plan->ops = sf_xrealloc(plan->ops, plan->cap * sizeof(*plan->ops));
    }
    struct sf_sbx_mop *op = &plan->ops[plan->n++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->src = src ? sf_sbx_plan_str(plan, sf_xstrdup(src)) : NULL;
    op->dst = dst ? sf_sbx_plan_str(plan, sf_xstrdup(dst)) : NULL;
    op->mode = mode;
    return op;
}

struct sf_sbx_plan_ctx {
    struct sf_sbx_mount_plan *plan;
    char mp[64];                    /* where the new root is built */
    char rw[64];                    /* where the writable tmpfs is mounted */
    const char *tpl;                /* a template's root, or NULL (the host's /usr) */
};

/* Add an op whose dst is a path inside the sandbox ("/usr"). */
static struct sf_sbx_mop *sf_sbx_in(struct sf_sbx_plan_ctx *c, enum sf_sbx_mop_kind kind,
                                    const char *src, const char *inside, int mode)
{
    char dst[PATH_MAX];
    /* Sandbox paths are checked shorter than PATH_MAX / 2 (sf_sbx_path_ok). */
    if (snprintf(dst, sizeof(dst), "%s%s", c->mp, inside) >= (int)sizeof(dst)) dst[0] = '\0';
    return sf_sbx_plan_add(c->plan, kind, src, dst, mode);
}

static void sf_sbx_ro_bind(struct sf_sbx_plan_ctx *c, const char *host, const char *inside,
                           bool is_dir)
{
    sf_sbx_in(c, is_dir ? SF_SBX_MOP_MKDIR : SF_SBX_MOP_MKFILE, NULL, inside, is_dir ? 0755 : 0644);
    sf_sbx_in(c, SF_SBX_MOP_BIND, host, inside, 0);
    sf_sbx_in(c, SF_SBX_MOP_RDONLY, NULL, inside, 0)->rec = true;
}

/* Bind a host file or directory at the same path when it exists. */
static void sf_sbx_ro_bind_if(struct sf_sbx_plan_ctx *c, const char *host)
{
    struct stat st;
    if (stat(host, &st) < 0) return;
    if (S_ISDIR(st.st_mode)) sf_sbx_ro_bind(c, host, host, true);
    else if (S_ISREG(st.st_mode)) sf_sbx_ro_bind(c, host, host, false);
}

static void sf_sbx_write(struct sf_sbx_plan_ctx *c, const char *inside, const char *content)
{
    struct sf_sbx_mop *op = sf_sbx_in(c, SF_SBX_MOP_WRITE, NULL, inside, 0644);
    op->data = sf_sbx_plan_str(c->plan, sf_xstrdup(content));
    op->data_len = strlen(content);
}

/* mkdir every ancestor of 'inside' (not 'inside' itself). */
static void sf_sbx_mkparents(struct sf_sbx_plan_ctx *c, const char *inside)
{
    char tmp[PATH_MAX];
    sf_strlcpy(tmp, inside, sizeof(tmp));
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        sf_sbx_in(c, SF_SBX_MOP_MKDIR, NULL, tmp, 0755);
        *s = '/';
    }
}

/* A template's top level, read once per worker process: templates are
 * read-only roots, so what their top level holds does not change while the
 * worker runs (a template is prepared once, never per sandbox). */
struct sf_sbx_tpl_top {
    char *root;
    size_t n;
    struct { char *name, *link; } *v;       /* link NULL: a directory */
    struct sf_sbx_tpl_top *next;
};
static struct sf_sbx_tpl_top *sf_sbx_tpl_cache;
static pthread_mutex_t sf_sbx_tpl_mu = PTHREAD_MUTEX_INITIALIZER;

static struct sf_sbx_tpl_top *sf_sbx_tpl_read(const char *root, char *errstr, size_t errlen)
{
    static const char *const own[] = { "proc", "dev", "sys", "tmp", "home", "workspace", "run",
                                       "root", "mnt", "lost+found" };
    char host[PATH_MAX], target[PATH_MAX];
    DIR *d = opendir(root);
    if (!d) {
        sf_errf(errstr, errlen, "template root %s: %s", root, strerror(errno));
        return NULL;
    }
    struct sf_sbx_tpl_top *t = sf_xcalloc(1, sizeof(*t));
    t->root = sf_xstrdup(root);
    for (struct dirent *e; (e = readdir(d));) {
        bool skip = e->d_name[0] == '.';
        for (size_t i = 0; !skip && i < sizeof(own) / sizeof(own[0]); i++) skip = !strcmp(e->d_name, own[i]);
        struct stat st;
        snprintf(host, sizeof(host), "%s/%s", root, e->d_name);
        if (skip || lstat(host, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))) continue;
        ssize_t n = S_ISLNK(st.st_mode) ? readlink(host, target, sizeof(target) - 1) : 0;
        if (n < 0) continue;
        target[n] = '\0';
        t->v = sf_xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
        t->v[t->n].name = sf_xstrdup(e->d_name);
        t->v[t->n++].link = S_ISLNK(st.st_mode) ? sf_xstrdup(target) : NULL;
    }
    closedir(d);
    return t;
}

/* Its directories bound read-only, its symlinks (usr-merged /bin ->
 * usr/bin) copied as symlinks that resolve inside the sandbox; what the
 * sandbox has of its own (/proc, /dev, /tmp, /home, /workspace, /run,
 * /root, /mnt) is never taken from it. */
static int sf_sbx_plan_template(struct sf_sbx_plan_ctx *c, char *errstr, size_t errlen)
{
    char host[PATH_MAX], inside[PATH_MAX];
    pthread_mutex_lock(&sf_sbx_tpl_mu);
    struct sf_sbx_tpl_top *t = sf_sbx_tpl_cache;
    while (t && strcmp(t->root, c->tpl)) t = t->next;
    if (!t && (t = sf_sbx_tpl_read(c->tpl, errstr, errlen))) {
        t->next = sf_sbx_tpl_cache;
        sf_sbx_tpl_cache = t;
    }
    pthread_mutex_unlock(&sf_sbx_tpl_mu);
    if (!t) return -ENOENT;
    for (size_t i = 0; i < t->n; i++) {            /* immutable once cached */
        snprintf(host, sizeof(host), "%s/%s", c->tpl, t->v[i].name);
        snprintf(inside, sizeof(inside), "/%s", t->v[i].name);
        if (t->v[i].link) sf_sbx_in(c, SF_SBX_MOP_SYMLINK, t->v[i].link, inside, 0);
        else sf_sbx_ro_bind(c, host, inside, true);
    }
    return 0;
}

/* A generated /etc file: written into the root (host image), or written
 * under /run and bound over the template's file (a template's /etc is a
 * read-only bind; a file it lacks is skipped). */
static void sf_sbx_etc(struct sf_sbx_plan_ctx *c, const char *inside, const char *content)
{
    char src[PATH_MAX];
    if (!c->tpl) {
        sf_sbx_write(c, inside, content);
        return;
    }
    char run[64];
    snprintf(run, sizeof(run), "/run/sf-%.40s", strrchr(inside, '/') + 1);
    sf_sbx_write(c, run, content);
    snprintf(src, sizeof(src), "%s%s", c->mp, run);
    sf_sbx_in(c, SF_SBX_MOP_BIND, src, inside, 0)->optional = true;
    sf_sbx_in(c, SF_SBX_MOP_RDONLY, NULL, inside, 0)->optional = true;
}

/* The host's file bound over a template's (when both exist). */
static void sf_sbx_etc_host(struct sf_sbx_plan_ctx *c, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) return;
    sf_sbx_in(c, SF_SBX_MOP_BIND, path, path, 0)->optional = true;
    sf_sbx_in(c, SF_SBX_MOP_RDONLY, NULL, path, 0)->optional = true;
}

static bool sf_sbx_path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

static bool sf_sbx_path_ok(const char *p)
{
    if (p[0] != '/' || !p[1] || strlen(p) >= PATH_MAX / 2) return false;
    for (const char *s = p; (s = strstr(s, "..")); s += 2)
        if (s[-1] == '/' && (s[2] == '/' || s[2] == '\0')) return false;
    return true;
}

static const char *const sf_sbx_dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
static const char *const sf_sbx_proc_masked_files[] = {
    "kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats",
    "kallsyms", "kpagecount", "kpageflags", "kpagecgroup",
};
static const char *const sf_sbx_proc_masked_dirs[] = { "acpi", "scsi", "asound", "driver" };
static const char *const sf_sbx_proc_ro[] = { "sys", "sysrq-trigger", "irq", "bus", "fs" };

/* Which of the /proc entries above this kernel has: fixed while it runs,
 * so looked up once per process instead of once per sandbox. */
#define SF_SBX_PROC_N 19
static bool sf_sbx_proc_absent[SF_SBX_PROC_N];
static pthread_once_t sf_sbx_proc_once = PTHREAD_ONCE_INIT;

static const char *sf_sbx_proc_name(size_t i)
{
    const size_t nf = sizeof(sf_sbx_proc_masked_files) / sizeof(sf_sbx_proc_masked_files[0]);
    const size_t nd = sizeof(sf_sbx_proc_masked_dirs) / sizeof(sf_sbx_proc_masked_dirs[0]);
    if (i < nf) return sf_sbx_proc_masked_files[i];
    if (i < nf + nd) return sf_sbx_proc_masked_dirs[i - nf];
    return sf_sbx_proc_ro[i - nf - nd];
}

static void sf_sbx_proc_probe(void)
{
    for (size_t i = 0; i < SF_SBX_PROC_N; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%s", sf_sbx_proc_name(i));
        sf_sbx_proc_absent[i] = access(path, F_OK) < 0 && errno == ENOENT;
    }
}

/* Entry i of the three lists, in order, on this kernel? */
static bool sf_sbx_proc_has(size_t i)
{
    pthread_once(&sf_sbx_proc_once, sf_sbx_proc_probe);
    return !sf_sbx_proc_absent[i];
}

/* The image: the top directories, /usr (or a template), /etc. */
static int sf_sbx_plan_image(struct sf_sbx_plan_ctx *c, const struct sf_sandbox_opts *opts,
                             char *errstr, size_t errlen)
{
    char buf[PATH_MAX];
    int rc = 0;
    static const char *const top[] = { "/usr", "/etc", "/proc", "/dev", "/workspace", "/home",
                                       "/tmp", "/root", "/mnt", "/run" };
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        sf_sbx_in(c, SF_SBX_MOP_MKDIR, NULL, top[i], 0755);
    if (c->tpl) rc = sf_sbx_plan_template(c, errstr, errlen);
    else sf_sbx_ro_bind(c, "/usr", "/usr", true);
    if (rc < 0) return rc;
    static const char *const links[] = { "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };
    for (size_t i = 0; !c->tpl && i < sizeof(links) / sizeof(links[0]); i++) {
        struct stat st;
        if (lstat(links[i], &st) < 0) continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(links[i], buf, sizeof(buf) - 1);
            if (n <= 0) continue;
            buf[n] = '\0';
            sf_sbx_in(c, SF_SBX_MOP_SYMLINK, buf, links[i], 0);
        } else if (S_ISDIR(st.st_mode)) {
            sf_sbx_ro_bind(c, links[i], links[i], true);
        }
    }

    /* /etc: only what programs need to start; nothing about the host (a
     * template brings its own /etc; these four are the sandbox's anyway). */
    sf_sbx_etc(c, "/etc/passwd",
                 "root:x:0:0:root:/root:/bin/sh\n"
                 "user:x:1000:1000:user:/home/user:/bin/sh\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    sf_sbx_etc(c, "/etc/group", "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n");
    sf_sbx_etc(c, "/etc/hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n");
    sf_sbx_etc(c, "/etc/hostname", "sandbox\n");
    if (c->tpl) {
        if (opts->network) sf_sbx_etc_host(c, "/etc/resolv.conf");
        return 0;
    }
    sf_sbx_ro_bind_if(c, "/etc/ld.so.cache");
    sf_sbx_ro_bind_if(c, "/etc/ld.so.conf");
    sf_sbx_ro_bind_if(c, "/etc/ld.so.conf.d");
    sf_sbx_ro_bind_if(c, "/etc/alternatives");
    if (opts->network) {
        /* The sandbox's resolver is the worker's egress path (sbx_egress.h);
         * the host's resolver configuration stays out. */
        sf_sbx_write(c, "/etc/resolv.conf", "nameserver 127.0.0.53\noptions edns0\n");
        sf_sbx_write(c, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"
                     "networks: files\nprotocols: files\nservices: files\n");
        static const char *const net[] = { "/etc/gai.conf", "/etc/host.conf", "/etc/services",
                                           "/etc/protocols", "/etc/ssl", "/etc/ca-certificates" };
        for (size_t i = 0; i < sizeof(net) / sizeof(net[0]); i++) sf_sbx_ro_bind_if(c, net[i]);
    }
    return 0;
}

/* One writable tmpfs on c->rw: its size is the sandbox's disk limit; its
 * directories are bound where they belong (shm by sf_sbx_plan_shm, once
 * /dev is there), and c->rw itself is detached later (FULL: with the old
 * root, in the same umount: each umount waits for an RCU grace period;
 * SANDBOX: its own). */
static void sf_sbx_plan_writable(struct sf_sbx_plan_ctx *c, int64_t disk_mb, bool user_mapped)
{
    char buf[PATH_MAX], opt[128];
    struct sf_sbx_mount_plan *plan = c->plan;
    int64_t inodes = disk_mb * 256 < 4096 ? 4096 : disk_mb * 256;
    snprintf(opt, sizeof(opt), "size=%" PRId64 "m,nr_inodes=%" PRId64 ",mode=0755", disk_mb, inodes);
    sf_sbx_plan_add(plan, SF_SBX_MOP_TMPFS, NULL, c->rw, 0)->data = sf_sbx_plan_str(plan, sf_xstrdup(opt));
    static const struct { const char *dir; int mode; } rwdirs[] = {
        { "workspace", 0755 }, { "home", 0755 }, { "home/user", 0755 }, { "tmp", 01777 },
        { "tmp/shared", 01777 }, { "shm", 01777 },
    };
    for (size_t i = 0; i < sizeof(rwdirs) / sizeof(rwdirs[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", c->rw, rwdirs[i].dir);
        /* /home/user is user's; the sandbox's root has no capabilities
         * (no CAP_DAC_OVERRIDE), so it may write there only through the
         * mode. */
        bool home = user_mapped && !strcmp(rwdirs[i].dir, "home/user");
        sf_sbx_plan_add(plan, SF_SBX_MOP_MKDIR, NULL, buf, home ? 0777 : rwdirs[i].mode);
    }
    if (user_mapped) {
        snprintf(buf, sizeof(buf), "%s/home/user", c->rw);
        sf_sbx_plan_add(plan, SF_SBX_MOP_CHOWN, NULL, buf, 1000);
    }
    static const char *const places[][2] = { { "workspace", "/workspace" }, { "home", "/home" },
                                             { "tmp", "/tmp" } };
    for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", c->rw, places[i][0]);
        sf_sbx_in(c, SF_SBX_MOP_BIND, buf, places[i][1], 0);
    }
}

static void sf_sbx_plan_shm(struct sf_sbx_plan_ctx *c)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/shm", c->rw);
    sf_sbx_in(c, SF_SBX_MOP_BIND, buf, "/dev/shm", 0);
}

/* /dev: a small tmpfs with the harmless devices bound from the host; it
 * is made read-only once /dev/pts and /dev/shm are there (FULL) or right
 * away (IMAGE: each sandbox mounts those on the read-only /dev). */
static void sf_sbx_plan_dev(struct sf_sbx_plan_ctx *c)
{
    sf_sbx_in(c, SF_SBX_MOP_TMPFS, NULL, "/dev", 0)->data =
        sf_sbx_plan_str(c->plan, sf_xstrdup("size=64k,nr_inodes=64,mode=0755"));
    for (size_t i = 0; i < sizeof(sf_sbx_dev_nodes) / sizeof(sf_sbx_dev_nodes[0]); i++) {
        char host[64], inside[64];
        snprintf(host, sizeof(host), "/dev/%s", sf_sbx_dev_nodes[i]);
        snprintf(inside, sizeof(inside), "/dev/%s", sf_sbx_dev_nodes[i]);
        sf_sbx_in(c, SF_SBX_MOP_MKFILE, NULL, inside, 0666);
        sf_sbx_in(c, SF_SBX_MOP_BIND, host, inside, 0);
    }
    sf_sbx_in(c, SF_SBX_MOP_SYMLINK, "/proc/self/fd", "/dev/fd", 0);
    sf_sbx_in(c, SF_SBX_MOP_SYMLINK, "/proc/self/fd/0", "/dev/stdin", 0);
    sf_sbx_in(c, SF_SBX_MOP_SYMLINK, "/proc/self/fd/1", "/dev/stdout", 0);
    sf_sbx_in(c, SF_SBX_MOP_SYMLINK, "/proc/self/fd/2", "/dev/stderr", 0);
    sf_sbx_in(c, SF_SBX_MOP_MKDIR, NULL, "/dev/pts", 0755);
    sf_sbx_in(c, SF_SBX_MOP_SYMLINK, "pts/ptmx", "/dev/ptmx", 0);
    sf_sbx_in(c, SF_SBX_MOP_MKDIR, NULL, "/dev/shm", 0755);
}

/* A terminal of its own: a new devpts instance, never the host's. */
static void sf_sbx_plan_devpts(struct sf_sbx_plan_ctx *c)
{
    sf_sbx_in(c, SF_SBX_MOP_DEVPTS, NULL, "/dev/pts", 0);
}

/* /proc: our own pid namespace's; cover what leaks the host kernel. */
static void sf_sbx_plan_proc(struct sf_sbx_plan_ctx *c)
{
    char buf[PATH_MAX];
    sf_sbx_in(c, SF_SBX_MOP_PROC, NULL, "/proc", 0);
    snprintf(buf, sizeof(buf), "%s/dev/null", c->mp);
    /* Entries this kernel does not have (the worker's /proc is a procfs of
     * the same kernel) would only be failed steps in every sandbox. */
    const size_t nf = sizeof(sf_sbx_proc_masked_files) / sizeof(sf_sbx_proc_masked_files[0]);
    const size_t nd = sizeof(sf_sbx_proc_masked_dirs) / sizeof(sf_sbx_proc_masked_dirs[0]);
    _Static_assert(sizeof(sf_sbx_proc_masked_files) / sizeof(char *) +
                   sizeof(sf_sbx_proc_masked_dirs) / sizeof(char *) +
                   sizeof(sf_sbx_proc_ro) / sizeof(char *) == SF_SBX_PROC_N, "SF_SBX_PROC_N");
    for (size_t i = 0; i < nf; i++) {
        char inside[64];
        snprintf(inside, sizeof(inside), "/proc/%s", sf_sbx_proc_masked_files[i]);
        if (!sf_sbx_proc_has(i)) continue;
        sf_sbx_in(c, SF_SBX_MOP_BIND, buf, inside, 0)->optional = true;
    }
    for (size_t i = 0; i < nd; i++) {
        char inside[64];
        snprintf(inside, sizeof(inside), "/proc/%s", sf_sbx_proc_masked_dirs[i]);
        if (!sf_sbx_proc_has(nf + i)) continue;
        struct sf_sbx_mop *op = sf_sbx_in(c, SF_SBX_MOP_TMPFS, NULL, inside, 0);
        op->data = sf_sbx_plan_str(c->plan, sf_xstrdup("size=4k,nr_inodes=1,mode=0555"));
        op->optional = true;
        sf_sbx_in(c, SF_SBX_MOP_RDONLY, NULL, inside, 0)->optional = true;
    }
    for (size_t i = 0; i < sizeof(sf_sbx_proc_ro) / sizeof(sf_sbx_proc_ro[0]); i++) {
        char inside[64], self[PATH_MAX];
        snprintf(inside, sizeof(inside), "/proc/%s", sf_sbx_proc_ro[i]);
        if (!sf_sbx_proc_has(nf + nd + i)) continue;
        snprintf(self, sizeof(self), "%s%s", c->mp, inside);
        sf_sbx_in(c, SF_SBX_MOP_BIND, self, inside, 0)->optional = true;
        struct sf_sbx_mop *op = sf_sbx_in(c, SF_SBX_MOP_RDONLY, NULL, inside, 0);
        op->rec = true;
        op->optional = true;
    }
}

/* The sandbox paths each sandbox mounts for itself: an image's bind there
 * would be hidden. */
static const char *const sf_sbx_own_places[] = { "/workspace", "/home", "/tmp", "/proc", "/dev" };

bool sf_sbx_mount_image_fits(const struct sf_sandbox_opts *opts)
{
    for (size_t i = 0; i < opts->n_ro_binds; i++) {
        const char *p = opts->ro_binds[i].sandbox_path;
        for (size_t k = 0; p && k < sizeof(sf_sbx_own_places) / sizeof(sf_sbx_own_places[0]); k++)
            if (sf_sbx_path_under(p, sf_sbx_own_places[k])) return false;
    }
    return true;
}

/* Check the ro_binds, resolve their host paths into real[], and pick the
 * host directories the new root (c->mp) and the writable tmpfs (c->rw) are
 * mounted on: ones that hide no source. */
static int sf_sbx_plan_places(struct sf_sbx_plan_ctx *c, const struct sf_sandbox_opts *opts,
                              char (*real)[PATH_MAX], char *errstr, size_t errlen)
{
    for (size_t i = 0; i < opts->n_ro_binds; i++) {
        const struct sf_bind *b = &opts->ro_binds[i];
        if (!b->host_path || !b->sandbox_path || !sf_sbx_path_ok(b->sandbox_path)) {
            sf_errf(errstr, errlen, "ro_bind: sandbox path '%s' must be absolute, without '..'",
                    b->sandbox_path ? b->sandbox_path : "(null)");
            return -EINVAL;
        }
        if (!realpath(b->host_path, real[i])) {
            int rc = -errno;
            sf_errf(errstr, errlen, "ro_bind: host path %s: %s", b->host_path, strerror(errno));
            return rc;
        }
    }
    static const char *const cands[] = { "/tmp", "/mnt", "/media", "/srv", "/opt", "/run",
                                         "/boot", "/home", "/var" };
    for (size_t k = 0; k < sizeof(cands) / sizeof(cands[0]) && !c->rw[0]; k++) {
        struct stat st;
        if (lstat(cands[k], &st) < 0 || !S_ISDIR(st.st_mode)) continue;
        bool clash = c->tpl && sf_sbx_path_under(c->tpl, cands[k]);
        for (size_t i = 0; i < opts->n_ro_binds; i++)
            if (sf_sbx_path_under(real[i], cands[k])) clash = true;
        if (clash) continue;
        sf_strlcpy(c->mp[0] ? c->rw : c->mp, cands[k], sizeof(c->mp));
    }
    if (!c->rw[0]) {
        sf_errf(errstr, errlen, "no two host directories to build the sandbox root on (ro_binds "
                "cover all but one of /tmp, /mnt, /media, /srv, /opt, /run, /boot, /home, /var)");
        return -ENOENT;
    }
    return 0;
}

static int sf_sbx_plan_ro_binds(struct sf_sbx_plan_ctx *c, const struct sf_sandbox_opts *opts,
                                char (*real)[PATH_MAX], char *errstr, size_t errlen)
{
    for (size_t i = 0; i < opts->n_ro_binds; i++) {
        struct stat st;
        const char *inside = opts->ro_binds[i].sandbox_path;
        if (stat(real[i], &st) < 0) {
            int rc = -errno;
            sf_errf(errstr, errlen, "ro_bind: %s: %s", real[i], strerror(errno));
            return rc;
        }
        sf_sbx_mkparents(c, inside);
        sf_sbx_ro_bind(c, real[i], inside, S_ISDIR(st.st_mode));
    }
    return 0;
}

/* The sandbox's part on an image: it is inside the image's root already.
 * The writable tmpfs goes on /proc for a moment (the image's procfs lies
 * below: the directory exists and nothing of the sandbox is there yet),
 * its directories are bound into place and it is detached before the
 * sandbox's own /proc is mounted there. */
static void sf_sbx_plan_sandbox(struct sf_sbx_plan_ctx *c, int64_t disk_mb, bool user_mapped)
{
    sf_strlcpy(c->rw, "/proc", sizeof(c->rw));
    sf_sbx_plan_writable(c, disk_mb, user_mapped);
    sf_sbx_plan_shm(c);
    sf_sbx_plan_add(c->plan, SF_SBX_MOP_UMOUNT, NULL, c->rw, 0);
    sf_sbx_plan_devpts(c);
    sf_sbx_plan_proc(c);
}

int sf_sbx_mount_plan_build(struct sf_sbx_mount_plan *plan, const struct sf_sandbox_opts *opts,
                            int64_t disk_mb, bool user_mapped, enum sf_sbx_plan_part part,
                            char *errstr, size_t errlen)
{
    struct sf_sbx_plan_ctx c = { .plan = plan, .tpl = opts->rootfs };
    char (*real)[PATH_MAX] = NULL;
    int rc = 0;

    memset(plan, 0, sizeof(*plan));
    if (part == SF_SBX_PLAN_SANDBOX) {
        sf_sbx_plan_sandbox(&c, disk_mb, user_mapped);
        return 0;
    }
    if (opts->n_ro_binds) real = sf_xcalloc(opts->n_ro_binds, sizeof(*real));
    if ((rc = sf_sbx_plan_places(&c, opts, real, errstr, errlen)) < 0) goto cleanup;
    sf_sbx_plan_add(plan, SF_SBX_MOP_PRIVATE, NULL, "/", 0);
    sf_sbx_plan_add(plan, SF_SBX_MOP_TMPFS, NULL, c.mp, 0)->data =
        sf_sbx_plan_str(plan, sf_xstrdup("size=4m,nr_inodes=4096,mode=0755"));
    if ((rc = sf_sbx_plan_image(&c, opts, errstr, errlen)) < 0) goto cleanup;
    if (part == SF_SBX_PLAN_FULL) sf_sbx_plan_writable(&c, disk_mb, user_mapped);
    sf_sbx_plan_dev(&c);
    if (part == SF_SBX_PLAN_FULL) {
        sf_sbx_plan_devpts(&c);
        sf_sbx_plan_shm(&c);
    }
    sf_sbx_in(&c, SF_SBX_MOP_RDONLY, NULL, "/dev", 0);
    if (part == SF_SBX_PLAN_FULL) sf_sbx_plan_proc(&c);
    else sf_sbx_in(&c, SF_SBX_MOP_PROC, NULL, "/proc", 0);
    if ((rc = sf_sbx_plan_ro_binds(&c, opts, real, errstr, errlen)) < 0) goto cleanup;
    sf_sbx_plan_add(plan, SF_SBX_MOP_PIVOT, NULL, c.mp, 0);
    sf_sbx_plan_add(plan, SF_SBX_MOP_RDONLY, NULL, "/", 0);
cleanup:
    free(real);
    if (rc < 0) sf_sbx_mount_plan_free(plan);
    return rc;
}

void sf_sbx_mount_plan_free(struct sf_sbx_mount_plan *plan)
{
    if (!plan) return;
    for (size_t i = 0; i < plan->nstrings; i++) free(plan->strings[i]);
    free(plan->strings);
    free(plan->ops);
    memset(plan, 0, sizeof(*plan));
}

void sf_sbx_mount_describe(const struct sf_sbx_mount_plan *plan, size_t i, char *out, size_t size)
{
    static const char *const verb[] = {
        [SF_SBX_MOP_PRIVATE] = "make private", [SF_SBX_MOP_TMPFS] = "mount tmpfs on",
        [SF_SBX_MOP_MKDIR] = "mkdir", [SF_SBX_MOP_MKFILE] = "create",
        [SF_SBX_MOP_WRITE] = "write", [SF_SBX_MOP_SYMLINK] = "symlink",
        [SF_SBX_MOP_BIND] = "bind", [SF_SBX_MOP_RDONLY] = "make read-only",
        [SF_SBX_MOP_PROC] = "mount /proc on", [SF_SBX_MOP_PIVOT] = "pivot_root into",
        [SF_SBX_MOP_CHOWN] = "chown", [SF_SBX_MOP_DEVPTS] = "mount devpts on",
        [SF_SBX_MOP_UMOUNT] = "detach",
    };
    if (i >= plan->n) { snprintf(out, size, "mount step %zu", i); return; }
    const struct sf_sbx_mop *op = &plan->ops[i];
    if (op->src) snprintf(out, size, "%s %s on %s", verb[op->kind], op->src, op->dst);
    else snprintf(out, size, "%s %s", verb[op->kind], op->dst);
}

/* ---- executing the plan (child: syscalls only) --------------------------- */

static int sf_sbx_rdonly(const char *dst, bool rec)
{
#ifdef SYS_mount_setattr
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
    if (syscall(SYS_mount_setattr, AT_FDCWD, dst, rec ? AT_RECURSIVE : 0, &attr, sizeof(attr)) == 0)
        return 0;
    if (errno != ENOSYS) return -errno;
#endif
    /* Before 5.12: keep the flags the user namespace locked on the source. */
    struct statfs sfs;
    if (statfs(dst, &sfs) < 0) return -errno;
    unsigned long fl = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
    if (sfs.f_flags & ST_NOEXEC) fl |= MS_NOEXEC;
    if (sfs.f_flags & ST_NOATIME) fl |= MS_NOATIME;
    if (sfs.f_flags & ST_NODIRATIME) fl |= MS_NODIRATIME;
    if (sfs.f_flags & ST_RELATIME) fl |= MS_RELATIME;
    if (mount(NULL, dst, NULL, fl, NULL) < 0) return -errno;
    return 0;
}

static int sf_sbx_write_all_fd(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sf_sbx_mop_run(const struct sf_sbx_mop *op)
{
    int fd, rc;
    switch (op->kind) {
    case SF_SBX_MOP_PRIVATE:
        return mount(NULL, op->dst, NULL, MS_REC | MS_PRIVATE, NULL) < 0 ? -errno : 0;
    case SF_SBX_MOP_TMPFS:
        return mount("tmpfs", op->dst, "tmpfs", MS_NOSUID | MS_NODEV, op->data) < 0 ? -errno : 0;
    case SF_SBX_MOP_MKDIR:
        if (mkdir(op->dst, (mode_t)op->mode) < 0) return errno == EEXIST ? 0 : -errno;
        return 0;
    case SF_SBX_MOP_MKFILE:
        /* Read-only open: a file that exists already is fine even on a
         * read-only bind (a mount target over a host file). */
        fd = open(op->dst, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, (mode_t)(op->mode ? op->mode : 0644));
        if (fd < 0) return errno == EEXIST ? 0 : -errno;
        close(fd);
        return 0;
    case SF_SBX_MOP_WRITE:
        fd = open(op->dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, (mode_t)op->mode);
        if (fd < 0) return -errno;
        rc = sf_sbx_write_all_fd(fd, op->data, op->data_len);
        close(fd);
        return rc;
    case SF_SBX_MOP_SYMLINK:
        return symlink(op->src, op->dst) < 0 ? -errno : 0;
    case SF_SBX_MOP_BIND:
        return mount(op->src, op->dst, NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;
    case SF_SBX_MOP_RDONLY:
        return sf_sbx_rdonly(op->dst, op->rec);
    case SF_SBX_MOP_PROC:
        return mount("proc", op->dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ? -errno : 0;
    case SF_SBX_MOP_CHOWN:
        return chown(op->dst, (uid_t)op->mode, (gid_t)op->mode) < 0 ? -errno : 0;
    case SF_SBX_MOP_DEVPTS:
        /* max: terminals count against the host-wide kernel.pty.max. */
        return mount("devpts", op->dst, "devpts", MS_NOSUID | MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=0620,max=" SF_SBX_PTY_MAX_STR) < 0 ? -errno : 0;
    case SF_SBX_MOP_UMOUNT:
        return umount2(op->dst, MNT_DETACH) < 0 ? -errno : 0;
    case SF_SBX_MOP_PIVOT:
        if (chdir(op->dst) < 0) return -errno;
        if (syscall(SYS_pivot_root, ".", ".") < 0) return -errno;
        /* The old root now sits on top of the new one: detach it, and with
         * it the writable tmpfs's own mount point (its binds stay). */
        if (umount2(".", MNT_DETACH) < 0) return -errno;
        return chdir("/") < 0 ? -errno : 0;
    }
    return -EINVAL;
}

int sf_sbx_mount_execute(const struct sf_sbx_mount_plan *plan, size_t *failed)
{
    for (size_t i = 0; i < plan->n; i++) {
        int rc = sf_sbx_mop_run(&plan->ops[i]);
        if (rc == -ENOENT && plan->ops[i].optional) continue;
        if (rc < 0) {
            *failed = i;
            return rc;
        }
    }
    return 0;
}
