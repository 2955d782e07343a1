/* common/sandbox/local/sbx_image.c: see sbx_image.h.
 *
 * Design: an image is built by a short-lived child cloned into a new mount
 * and pid namespace (it is pid 1 of the pid namespace whose procfs goes on
 * the image's /proc: empty once it exits). It runs the IMAGE plan with the
 * sandbox root's host ids as its file system ids (so what it creates is
 * owned as a sandbox's own files were), reports over a pipe and waits until
 * the cache has opened /proc/PID/ns/mnt, which keeps the namespace alive
 * after it exits. Images are keyed by what their plan depends on (network,
 * rootfs, the ro_binds as given) and the least recently used of ZYG_IMAGES
 * is dropped when a new one is needed: sandboxes cloned from it keep their
 * own copies. One inotify instance watches the directories of the host
 * paths the images bind; an event naming one of them drops the images that
 * bind it. */
#include "sbx_image.h"
#include "sbx_mount.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SF_SBX_IMAGES 8

struct sf_sbx_image {
    bool used, network;
    char *rootfs;                       /* NULL: the host's */
    char **binds;                       /* host, sandbox, host, sandbox, ... */
    size_t n_binds;
    int fd;                             /* its mount namespace */
    uint64_t last;
};

struct sf_sbx_watch {
    int wd;
    char *name;                         /* a bound host path's last component */
    uint32_t images;                    /* bit i: image i binds it */
};

struct sf_sbx_images {
    uint32_t uid, gid;
    struct sf_sbx_image v[SF_SBX_IMAGES];
    uint64_t tick;
    int ino;                            /* inotify, -1: none */
    struct sf_sbx_watch *w;
    size_t nw;
};

static void sf_sbx_image_drop(struct sf_sbx_images *im, int i)
{
    struct sf_sbx_image *g = &im->v[i];
    if (!g->used) return;
    close(g->fd);
    free(g->rootfs);
    for (size_t k = 0; k < 2 * g->n_binds; k++) free(g->binds[k]);
    free(g->binds);
    memset(g, 0, sizeof(*g));
    for (size_t k = 0; k < im->nw; k++) im->w[k].images &= ~(1u << i);
}

static bool sf_sbx_image_is(const struct sf_sbx_image *g, const struct sf_sandbox_opts *o)
{
    if (!g->used || g->network != o->network || g->n_binds != o->n_ro_binds ||
        strcmp(g->rootfs ? g->rootfs : "", o->rootfs ? o->rootfs : ""))
        return false;
    for (size_t k = 0; k < o->n_ro_binds; k++)
        if (strcmp(g->binds[2 * k], o->ro_binds[k].host_path) ||
            strcmp(g->binds[2 * k + 1], o->ro_binds[k].sandbox_path))
            return false;
    return true;
}

/* Drop the images whose bound host paths were replaced, deleted or moved. */
static void sf_sbx_images_check(struct sf_sbx_images *im)
{
    union { char buf[4096]; struct inotify_event align; } u;
    for (;;) {
        ssize_t n = read(im->ino, u.buf, sizeof(u.buf));
        if (n <= 0) return;
        for (char *p = u.buf; p < u.buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            bool whole = !e->len || (e->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF |
                                                IN_MOVE_SELF));
            for (size_t k = 0; k < im->nw; k++) {
                struct sf_sbx_watch *w = &im->w[k];
                if ((e->mask & IN_Q_OVERFLOW) ||
                    (w->wd == e->wd && (whole || !strcmp(w->name, e->name))))
                    for (int i = 0; i < SF_SBX_IMAGES; i++)
                        if (w->images & (1u << i)) sf_sbx_image_drop(im, i);
            }
            p += sizeof(*e) + e->len;
        }
    }
}

/* Watch the directory of every host path image i binds for that name. */
static void sf_sbx_images_watch(struct sf_sbx_images *im, int i, const struct sf_sbx_mount_plan *plan)
{
    const char *root = "";                  /* where it was built: PIVOT's */
    for (size_t k = 0; k < plan->n; k++)
        if (plan->ops[k].kind == SF_SBX_MOP_PIVOT) root = plan->ops[k].dst;
    size_t rl = strlen(root);
    for (size_t k = 0; im->ino >= 0 && k < plan->n; k++) {
        const struct sf_sbx_mop *op = &plan->ops[k];
        if (op->kind != SF_SBX_MOP_BIND || !op->src || (!strncmp(op->src, root, rl) &&
                                                         op->src[rl] == '/'))
            continue;
        char dir[PATH_MAX];
        sf_strlcpy(dir, op->src, sizeof(dir));
        char *slash = strrchr(dir, '/');
        if (!slash || !slash[1]) continue;
        const char *name = op->src + (slash - dir) + 1;
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
        int wd = inotify_add_watch(im->ino, dir, IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                   IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF);
        if (wd < 0) continue;
        size_t w = 0;
        while (w < im->nw && !(im->w[w].wd == wd && !strcmp(im->w[w].name, name))) w++;
        if (w == im->nw) {
            im->w = sf_xrealloc(im->w, (im->nw + 1) * sizeof(*im->w));
            im->w[im->nw++] = (struct sf_sbx_watch){ .wd = wd, .name = sf_xstrdup(name) };
        }
        im->w[w].images |= 1u << i;
    }
}

struct sf_sbx_img_status {
    int32_t err;                        /* positive errno, 0: built */
    uint32_t step;                      /* the plan step that failed */
};

/* The builder: pid 1 of a new pid namespace, in a new mount namespace. */
static void __attribute__((noreturn)) sf_sbx_image_builder(const struct sf_sbx_images *im,
                                                           const struct sf_sbx_mount_plan *plan,
                                                           const int st[2], const int go[2])
{
    struct sf_sbx_img_status s = { 0, 0 };
    close(st[0]);
    close(go[1]);                           /* so that the read below sees the cache's close */
    size_t failed = 0;
    setfsgid(im->gid);
    setfsuid(im->uid);
    int rc = sf_sbx_mount_execute(plan, &failed);
    s.err = -rc;
    s.step = (uint32_t)failed;
    if (write(st[1], &s, sizeof(s)) != (ssize_t)sizeof(s)) _exit(1);
    char c;
    while (read(go[0], &c, 1) < 0 && errno == EINTR) {}   /* until the namespace is held */
    _exit(0);
}

static int sf_sbx_image_build(struct sf_sbx_images *im, const struct sf_sandbox_opts *o, int i,
                              char *err, size_t errlen)
{
    struct sf_sbx_mount_plan plan;
    int st[2] = { -1, -1 }, go[2] = { -1, -1 }, fd = -1;
    int rc = sf_sbx_mount_plan_build(&plan, o, 0, false, SF_SBX_PLAN_IMAGE, err, errlen);
    if (rc < 0) return rc;
    if (pipe2(st, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
        rc = -errno;
        sf_errf(err, errlen, "sandbox image: pipe: %s", strerror(errno));
        goto cleanup;
    }
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) sf_sbx_image_builder(im, &plan, st, go);
    if (pid < 0) {
        rc = -errno;
        sf_errf(err, errlen, "sandbox image: clone: %s", strerror(errno));
        goto cleanup;
    }
    close(st[1]);
    st[1] = -1;
    struct sf_sbx_img_status s;
    ssize_t n;
    while ((n = read(st[0], &s, sizeof(s))) < 0 && errno == EINTR) {}
    if (n == (ssize_t)sizeof(s) && !s.err) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            rc = -errno;
            sf_errf(err, errlen, "sandbox image: %s: %s", path, strerror(errno));
        }
    } else if (n == (ssize_t)sizeof(s)) {
        char desc[PATH_MAX + 64];
        sf_sbx_mount_describe(&plan, s.step, desc, sizeof(desc));
        rc = -s.err;
        sf_errf(err, errlen, "building the sandbox image: %s: %s", desc, strerror(s.err));
    } else {
        rc = -EIO;
        sf_errf(err, errlen, "building the sandbox image: the builder died without a report");
    }
    if (fd >= 0) {
        struct sf_sbx_image *g = &im->v[i];
        g->used = true;
        g->network = o->network;
        g->rootfs = o->rootfs ? sf_xstrdup(o->rootfs) : NULL;
        g->n_binds = o->n_ro_binds;
        g->binds = sf_xcalloc(2 * o->n_ro_binds + 1, sizeof(char *));
        for (size_t k = 0; k < o->n_ro_binds; k++) {
            g->binds[2 * k] = sf_xstrdup(o->ro_binds[k].host_path);
            g->binds[2 * k + 1] = sf_xstrdup(o->ro_binds[k].sandbox_path);
        }
        g->fd = fd;
        g->last = ++im->tick;
        sf_sbx_images_watch(im, i, &plan);
        rc = 0;
    }
cleanup:
    for (int k = 0; k < 2; k++) {
        if (st[k] >= 0) close(st[k]);
        if (go[k] >= 0) close(go[k]);       /* the builder exits */
    }
    sf_sbx_mount_plan_free(&plan);
    return rc;
}

int sf_sbx_images_get(struct sf_sbx_images *im, const struct sf_sandbox_opts *opts, int *mntns,
                      char *err, size_t errlen)
{
    sf_sbx_images_check(im);
    int lru = 0;
    for (int i = 0; i < SF_SBX_IMAGES; i++) {
        if (sf_sbx_image_is(&im->v[i], opts)) {
            im->v[i].last = ++im->tick;
            *mntns = im->v[i].fd;
            return 0;
        }
        if (!im->v[i].used || (im->v[lru].used && im->v[i].last < im->v[lru].last)) lru = i;
    }
    sf_sbx_image_drop(im, lru);
    int rc = sf_sbx_image_build(im, opts, lru, err, errlen);
    if (rc == 0) *mntns = im->v[lru].fd;
    return rc;
}

struct sf_sbx_images *sf_sbx_images_new(uint32_t uid, uint32_t gid, char *err, size_t errlen)
{
    struct sf_sbx_images *im = sf_xcalloc(1, sizeof(*im));
    im->uid = uid;
    im->gid = gid;
    im->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int fd;
    struct sf_sandbox_opts def = { 0 };
    if (sf_sbx_images_get(im, &def, &fd, err, errlen) < 0) {
        sf_sbx_images_free(im);
        return NULL;
    }
    return im;
}

void sf_sbx_images_free(struct sf_sbx_images *im)
{
    if (!im) return;
    for (int i = 0; i < SF_SBX_IMAGES; i++) sf_sbx_image_drop(im, i);
    for (size_t k = 0; k < im->nw; k++) free(im->w[k].name);
    free(im->w);
    if (im->ino >= 0) close(im->ino);
    free(im);
}
