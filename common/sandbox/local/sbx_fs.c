/* common/sandbox/local/sbx_fs.c: the local backend's sandbox_fs.h — open,
 * stat, list, mkdir, rename, remove and inotify watches on a running
 * sandbox, from the worker.
 *
 * Design: every path is first cleaned lexically (".", ".." and "//" gone,
 * clamped at "/"), so a last component is never "." or ".."; its parent is
 * then opened with openat2(RESOLVE_IN_ROOT) from the sandbox's root fd and
 * the last component is acted on relative to that fd (renameat, unlinkat,
 * fstatat with AT_SYMLINK_NOFOLLOW). Walks below a directory open each
 * child with O_NOFOLLOW relative to its parent's fd, so a symlink swapped
 * in during a walk is never followed. The calling thread acts with the
 * sandbox user's fsuid/fsgid (sbx_files.h). Watches are inotify watches on
 * "/proc/self/fd/N" of an O_PATH fd found that way: the watched inode is
 * the sandbox's own, whatever the path looks like on the host. */
#include "sandbox_fs.h"
#include "fsat.h"
#include "sbx_files.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_WATCH_MAX_DIRS 1024          /* inotify watches are root's, host-wide */

/* ---- paths -------------------------------------------------------------- */

/* Lexical clean of an absolute path into out ("/a/./b/../c//" → "/a/c"). */
static int fs_clean(const char *in, char *out, size_t size)
{
    size_t n = 0;
    if (!in || in[0] != '/' || strlen(in) >= size) return -EINVAL;
    out[n++] = '/';
    for (const char *p = in; *p;) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* nothing */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 1 && out[n - 1] != '/') n--;
            if (n > 1) n--;                      /* the slash before it */
        } else {
            if (n > 1) out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p = e;
    }
    out[n] = '\0';
    return 0;
}

/* Split a cleaned path: the parent opened (O_PATH) in the root, *base the
 * last component. -EBUSY for "/" itself. */
static int fs_parent(int rootfd, char *clean, const char **base, int *pfd)
{
    char *slash = strrchr(clean, '/');
    if (!slash[1]) return -EBUSY;
    *base = slash + 1;
    if (slash == clean) {
        *pfd = sf_sbx_openat2(rootfd, "/", O_PATH | O_DIRECTORY, 0);
    } else {
        *slash = '\0';
        *pfd = sf_sbx_openat2(rootfd, clean, O_PATH | O_DIRECTORY, 0);
        *slash = '/';
    }
    return *pfd < 0 ? *pfd : 0;
}

/* ---- entries ------------------------------------------------------------ */

static enum sf_fs_type fs_type(mode_t m)
{
    return S_ISREG(m) ? SF_FS_FILE : S_ISDIR(m) ? SF_FS_DIR : S_ISLNK(m) ? SF_FS_SYMLINK : SF_FS_OTHER;
}

static void fs_fill(struct sf_fs_entry *e, const struct stat *st, const char *name,
                    const char *path)
{
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->path = path;
    e->type = fs_type(st->st_mode);
    e->size = (int64_t)st->st_size;
    e->mode = (uint32_t)st->st_mode;
    e->uid = (uint32_t)st->st_uid;
    e->gid = (uint32_t)st->st_gid;
    e->mtime_s = (int64_t)st->st_mtim.tv_sec;
    e->mtime_ns = (int32_t)st->st_mtim.tv_nsec;
}

/* Host ids as the sandbox sees them: the worker stats with host ids. */
static void fs_ids_inside(const struct sf_sbx_files *f, struct sf_fs_entry *e)
{
    e->uid = e->uid == f->root_uid ? 0 : f->user_uid && e->uid == f->user_uid ? 1000 : 65534;
    e->gid = e->gid == f->root_gid ? 0 : f->user_gid && e->gid == f->user_gid ? 1000 : 65534;
}

/* ---- operations ------------------------------------------------------- */

static int fs_open(struct sf_sandbox *sb, uint32_t uid, const char *path, int flags, int mode,
                   int *out)
{
    struct sf_sbx_files f;
    struct sf_sbx_fsids ids = { 0, 0, false };
    char clean[PATH_MAX];
    int rc, fd = -1;
    *out = -1;
    if ((rc = sf_sbx_files_of(sb, uid, &f)) < 0 || (rc = fs_clean(path, clean, sizeof(clean))) < 0)
        return rc;
    sf_sbx_fsids_enter(&f, &ids);
    if (flags & O_CREAT) {
        char *slash = strrchr(clean, '/');
        if (!slash[1]) { rc = -EISDIR; goto out; }
        if (slash != clean) {
            *slash = '\0';
            rc = sf_sbx_mkdirs(f.rootfd, clean);
            *slash = '/';
            if (rc < 0) goto out;
        }
        fd = sf_sbx_open_file(f.rootfd, clean, flags | O_NOFOLLOW, mode ? mode : 0644);
    } else {
        fd = sf_sbx_open_file(f.rootfd, clean, O_RDONLY, 0);
    }
    if (fd < 0) { rc = fd; goto out; }
    *out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    sf_sbx_fsids_leave(&ids);
    return rc;
}

static int fs_stat(struct sf_sandbox *sb, uint32_t uid, const char *path, bool follow,
                   struct sf_fs_entry *e, char *target, size_t tsize)
{
    struct sf_sbx_files f;
    struct sf_sbx_fsids ids = { 0, 0, false };
    char clean[PATH_MAX];
    struct stat st;
    int rc, fd;
    if ((rc = sf_sbx_files_of(sb, uid, &f)) < 0 || (rc = fs_clean(path, clean, sizeof(clean))) < 0)
        return rc;
    sf_sbx_fsids_enter(&f, &ids);
    fd = sf_sbx_openat2(f.rootfd, clean, O_PATH | (follow ? 0 : O_NOFOLLOW), 0);
    if (fd < 0) { rc = fd; goto out; }
    if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) { rc = -errno; goto out; }
    const char *base = strrchr(clean, '/') + 1;
    fs_fill(e, &st, base[0] ? base : "/", path);
    fs_ids_inside(&f, e);
    if (S_ISLNK(st.st_mode) && target && tsize) {
        ssize_t n = readlinkat(fd, "", target, tsize - 1);
        target[n > 0 ? n : 0] = '\0';
        e->symlink_target = target;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    sf_sbx_fsids_leave(&ids);
    return rc;
}

struct fs_walk {
    const struct sf_sbx_files *f;
    int depth;
    sf_fs_list_cb cb;
    void *arg;
};

static int fs_walk(struct fs_walk *w, int dirfd, const char *prefix, int level)
{
    size_t n;
    char **names = sf_dir_names(dirfd, &n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        char *path = sf_xasprintf("%s/%s", strcmp(prefix, "/") ? prefix : "", names[i]);
        if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            struct sf_fs_entry e;
            char target[PATH_MAX];
            fs_fill(&e, &st, names[i], path);
            fs_ids_inside(w->f, &e);
            if (S_ISLNK(st.st_mode)) {
                ssize_t k = readlinkat(dirfd, names[i], target, sizeof(target) - 1);
                target[k > 0 ? k : 0] = '\0';
                e.symlink_target = target;
            }
            rc = w->cb(w->arg, &e);
            if (!rc && S_ISDIR(st.st_mode) && level < w->depth) {
                int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0) {
                    rc = fs_walk(w, sub, path, level + 1);
                    close(sub);
                }
            }
        }
        free(path);
        if (rc) break;
    }
    sf_dir_names_free(names, n);
    return rc;
}

static int fs_list(struct sf_sandbox *sb, uint32_t uid, const char *path, int depth,
                   sf_fs_list_cb cb, void *arg)
{
    struct sf_sbx_files f;
    struct sf_sbx_fsids ids = { 0, 0, false };
    char clean[PATH_MAX];
    int rc, fd;
    if ((rc = sf_sbx_files_of(sb, uid, &f)) < 0 || (rc = fs_clean(path, clean, sizeof(clean))) < 0)
        return rc;
    sf_sbx_fsids_enter(&f, &ids);
    fd = sf_sbx_openat2(f.rootfd, clean, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        rc = fd;
        if (rc == -ENOTDIR) {
            /* A path that exists but is not a directory, as envd tells it. */
            int any = sf_sbx_openat2(f.rootfd, clean, O_PATH, 0);
            if (any < 0) rc = any;
            else close(any);
        }
        goto out;
    }
    struct fs_walk w = { &f, depth < 1 ? 1 : depth, cb, arg };
    rc = fs_walk(&w, fd, clean, 1);
    close(fd);
out:
    sf_sbx_fsids_leave(&ids);
    return rc;
}

static int fs_mkdir(struct sf_sandbox *sb, uint32_t uid, const char *path)
{
    struct sf_sbx_files f;
    struct sf_sbx_fsids ids = { 0, 0, false };
    char clean[PATH_MAX];
    int rc;
    if ((rc = sf_sbx_files_of(sb, uid, &f)) < 0 || (rc = fs_clean(path, clean, sizeof(clean))) < 0)
        return rc;
    sf_sbx_fsids_enter(&f, &ids);
    int fd = sf_sbx_openat2(f.rootfd, clean, O_PATH, 0);
    if (fd >= 0) {
        struct stat st;
        rc = fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode) ? -ENOTDIR : -EEXIST;
        close(fd);
    } else if (fd == -ENOENT) {
        rc = sf_sbx_mkdirs(f.rootfd, clean);
    } else {
        rc = fd;
    }
    sf_sbx_fsids_leave(&ids);
    return rc;
}

static int fs_rename(struct sf_sandbox *sb, uint32_t uid, const char *from, const char *to)
{
    struct sf_sbx_files f;
    struct sf_sbx_fsids ids = { 0, 0, false };
    char a[PATH_MAX], b[PATH_MAX];
    const char *abase, *bbase;
    int rc, pa = -1, pb = -1;
    if ((rc = sf_sbx_files_of(sb, uid, &f)) < 0 || (rc = fs_clean(from, a, sizeof(a))) < 0 ||
        (rc = fs_clean(to, b, sizeof(b))) < 0)
        return rc;
    sf_sbx_fsids_enter(&f, &ids);
    char *slash = strrchr(b, '/');
    if (slash != b && slash[1]) {
        *slash = '\0';
        rc = sf_sbx_mkdirs(f.rootfd, b);
        *slash = '/';
        if (rc < 0) goto out;
    }
    if ((rc = fs_parent(f.rootfd, a, &abase, &pa)) < 0 || (rc = fs_parent(f.rootfd, b, &bbase, &pb)) < 0)
        goto out;
    rc = renameat(pa, abase, pb, bbase) < 0 ? -errno : 0;
out:
    if (pa >= 0) close(pa);
    if (pb >= 0) close(pb);
    sf_sbx_fsids_leave(&ids);
    return rc;
}

static int fs_remove(struct sf_sandbox *sb, uint32_t uid, const char *path)
{
    struct sf_sbx_files f;
    struct sf_sbx_fsids ids = { 0, 0, false };
    char clean[PATH_MAX];
    const char *base;
    int rc, pfd = -1;
    if ((rc = sf_sbx_files_of(sb, uid, &f)) < 0 || (rc = fs_clean(path, clean, sizeof(clean))) < 0)
        return rc;
    sf_sbx_fsids_enter(&f, &ids);
    if ((rc = fs_parent(f.rootfd, clean, &base, &pfd)) < 0) {
        if (rc == -ENOENT) rc = 0;
        goto out;
    }
    rc = sf_remove_at(pfd, base);
out:
    if (pfd >= 0) close(pfd);
    sf_sbx_fsids_leave(&ids);
    return rc;
}

/* ---- watches ------------------------------------------------------------ */

/* A watch holds two descriptors whatever it covers: its inotify instance
 * and an O_PATH fd of the watched directory. The directories below it are
 * known by watch descriptor and path (relative to the top), not by an open
 * fd each: a recursive watch of 1024 directories must not take 1024 of the
 * worker's descriptors, which every sandbox and connection share. */
struct fs_wdir {
    int wd;
    char *rel;                   /* "" for the watched directory itself */
};

struct fs_watch {
    struct sf_fs_watch base;
    struct sf_sbx_files f;
    int ifd;
    int top;                     /* O_PATH of the watched directory */
    bool recursive;
    struct fs_wdir *dirs;
    size_t n, cap;
};

#define FS_WATCH_MASK (IN_CREATE | IN_MODIFY | IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM | \
                       IN_MOVED_TO | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR | IN_DONT_FOLLOW)

static struct fs_wdir *fs_watch_dir(struct fs_watch *w, int wd);

/* Watch directory fd (borrowed) as rel. 0 added, 1 already watched (the
 * same directory reached again), -errno. */
static int fs_watch_one(struct fs_watch *w, int fd, const char *rel)
{
    char proc[64];
    if (w->n >= FS_WATCH_MAX_DIRS) return -ENOSPC;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(w->ifd, proc, FS_WATCH_MASK & ~IN_DONT_FOLLOW);
    if (wd < 0) return -errno;
    struct fs_wdir *d = fs_watch_dir(w, wd);
    if (d) {
        free(d->rel);
        d->rel = sf_xstrdup(rel);
        return 1;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->dirs = sf_xrealloc(w->dirs, w->cap * sizeof(*w->dirs));
    }
    w->dirs[w->n++] = (struct fs_wdir){ wd, sf_xstrdup(rel) };
    return 0;
}

/* Every directory below rel (already watched), breadth first, up to the
 * cap; at most two descriptors open at a time, however deep the tree. */
static void fs_watch_below(struct fs_watch *w, const char *rel)
{
    char **q = sf_xcalloc(1, sizeof(*q));
    size_t head = 0, tail = 0, cap = 1;
    bool full = false;
    q[tail++] = sf_xstrdup(rel);
    while (head < tail) {
        char *r = q[head++];
        int rd = r[0] ? sf_sbx_openat2(w->top, r, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0)
                      : openat(w->top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t n = 0;
        char **names = rd >= 0 && !full ? sf_dir_names(rd, &n) : NULL;
        for (size_t i = 0; i < n && !full; i++) {
            int sub = openat(rd, names[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) continue;
            char *c = r[0] ? sf_xasprintf("%s/%s", r, names[i]) : sf_xstrdup(names[i]);
            int rc = fs_watch_one(w, sub, c);
            close(sub);
            full = rc == -ENOSPC;
            if (rc != 0) {
                free(c);
                continue;
            }
            if (tail == cap) q = sf_xrealloc(q, (cap *= 2) * sizeof(*q));
            q[tail++] = c;
        }
        sf_dir_names_free(names, n);
        if (rd >= 0) close(rd);
        free(r);
    }
    for (; head < tail; head++) free(q[head]);
    free(q);
}

/* A directory that appeared at rel (its parent watched): watch it and,
 * the watch being recursive, what it already holds (a tree moved in). */
static void fs_watch_new(struct fs_watch *w, const char *rel)
{
    int fd = sf_sbx_openat2(w->top, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
    if (fd < 0) return;
    int rc = fs_watch_one(w, fd, rel);
    close(fd);
    if (rc == 0) fs_watch_below(w, rel);
}

static struct fs_wdir *fs_watch_dir(struct fs_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd) return &w->dirs[i];
    return NULL;
}

static void fs_watch_forget(struct fs_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd) {
            free(w->dirs[i].rel);
            w->dirs[i] = w->dirs[--w->n];
            return;
        }
}

static int fs_watch_fd(struct sf_fs_watch *base)
{
    return ((struct fs_watch *)base)->ifd;
}

static enum sf_fs_event_kind fs_event_kind(uint32_t m)
{
    if (m & (IN_CREATE | IN_MOVED_TO)) return SF_FS_EV_CREATE;
    if (m & IN_MODIFY) return SF_FS_EV_WRITE;
    if (m & (IN_DELETE | IN_DELETE_SELF)) return SF_FS_EV_REMOVE;
    if (m & (IN_MOVED_FROM | IN_MOVE_SELF)) return SF_FS_EV_RENAME;
    if (m & IN_ATTRIB) return SF_FS_EV_CHMOD;
    return 0;
}

static int fs_watch_read(struct sf_fs_watch *base, sf_fs_event_cb cb, void *arg)
{
    struct fs_watch *w = (struct fs_watch *)base;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct sf_sbx_fsids ids = { 0, 0, false };
    sf_sbx_fsids_enter(&w->f, &ids);
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ie = (struct inotify_event *)p;
            p += sizeof(*ie) + ie->len;
            struct fs_wdir *d = fs_watch_dir(w, ie->wd);
            if (ie->mask & IN_IGNORED) {
                fs_watch_forget(w, ie->wd);
                continue;
            }
            if (!d) continue;
            enum sf_fs_event_kind k = fs_event_kind(ie->mask);
            /* The watched directory's own removal is reported by its
             * parent (or ends the watch); report only children's events
             * and the top directory's. */
            if (!k || ((ie->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) && d->rel[0])) continue;
            const char *name = ie->len ? ie->name : "";
            char *rel = d->rel[0] && name[0] ? sf_xasprintf("%s/%s", d->rel, name)
                                             : sf_xstrdup(d->rel[0] ? d->rel : name);
            struct sf_fs_event ev = { k, rel };
            cb(arg, &ev);
            if (w->recursive && (ie->mask & IN_ISDIR) && (ie->mask & (IN_CREATE | IN_MOVED_TO)) &&
                name[0])
                fs_watch_new(w, rel);
            free(rel);
        }
    }
    sf_sbx_fsids_leave(&ids);
    return 0;
}

static void fs_watch_free(struct sf_fs_watch *base)
{
    struct fs_watch *w = (struct fs_watch *)base;
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->dirs[i].rel);
    free(w->dirs);
    if (w->top >= 0) close(w->top);
    if (w->ifd >= 0) close(w->ifd);
    free(w);
}

static const struct sf_fs_watch_ops fs_watch_ops = { fs_watch_fd, fs_watch_read, fs_watch_free };

static int fs_watch(struct sf_sandbox *sb, uint32_t uid, const char *path, bool recursive,
                    struct sf_fs_watch **out)
{
    struct fs_watch *w = sf_xcalloc(1, sizeof(*w));
    struct sf_sbx_fsids ids = { 0, 0, false };
    char clean[PATH_MAX];
    int rc;
    *out = NULL;
    w->base.ops = &fs_watch_ops;
    w->ifd = w->top = -1;
    w->recursive = recursive;
    if ((rc = sf_sbx_files_of(sb, uid, &w->f)) < 0 || (rc = fs_clean(path, clean, sizeof(clean))) < 0) {
        free(w);
        return rc;
    }
    sf_sbx_fsids_enter(&w->f, &ids);
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->top = w->ifd < 0 ? -errno : sf_sbx_openat2(w->f.rootfd, clean, O_PATH | O_DIRECTORY, 0);
    rc = w->top < 0 ? w->top : fs_watch_one(w, w->top, "");
    if (rc == 0 && recursive) fs_watch_below(w, "");
    sf_sbx_fsids_leave(&ids);
    if (rc < 0) {
        fs_watch_free(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

const struct sf_fs_ops sf_sbx_fs_ops = {
    .open = fs_open, .stat = fs_stat, .list = fs_list, .mkdir = fs_mkdir,
    .rename = fs_rename, .remove = fs_remove, .watch = fs_watch,
};
