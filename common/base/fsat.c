/* common/base/fsat.c: see fsat.h. */
#include "fsat.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int sf_openat_in(int rootfd, const char *path, int flags, int mode)
{
    struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = (uint64_t)mode,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    for (;;) {
        long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        if (fd >= 0) return (int)fd;
        if (errno != EAGAIN && errno != EINTR) return -errno;
    }
}

int sf_mkdirs_in(int rootfd, const char *dir, int mode)
{
    char tmp[4096];
    int fd = sf_openat_in(rootfd, dir[0] ? dir : "/", O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) { close(fd); return 0; }
    if (fd != -ENOENT) return fd;
    if (snprintf(tmp, sizeof(tmp), "%s%s", dir[0] == '/' ? "" : "/", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *s = tmp + 1;; s++) {
        if (*s != '/' && *s) continue;
        char save = *s;
        *s = '\0';
        /* tmp is one more component; create it in its parent. */
        char *slash = strrchr(tmp, '/');
        *slash = '\0';
        int pfd = sf_openat_in(rootfd, tmp[0] ? tmp : "/", O_PATH | O_DIRECTORY, 0);
        *slash = '/';
        if (pfd < 0) return pfd;
        int rc = 0;
        if (slash[1] && mkdirat(pfd, slash + 1, (mode_t)mode) < 0 && errno != EEXIST) rc = -errno;
        close(pfd);
        if (rc < 0) return rc;
        *s = save;
        if (!save) return 0;
    }
}

static int sf_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **sf_dir_names(int dirfd, size_t *n)
{
    int dup = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d) {
        if (dup >= 0) close(dup);
        return NULL;
    }
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            v = sf_xrealloc(v, cap * sizeof(*v));
        }
        v[(*n)++] = sf_xstrdup(de->d_name);
    }
    closedir(d);
    if (*n) qsort(v, *n, sizeof(*v), sf_cmp_names);
    return v;
}

void sf_dir_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* rm -rf with a bounded number of descriptors and stack frames, however
 * deep the tree: a sandbox can make a chain of 60000 directories, and
 * holding one fd (and one frame) per level would exhaust the worker's
 * descriptors (or its thread's stack) in the middle of the walk. Below
 * FSAT_RM_DEPTH levels a directory is not descended into but moved up
 * into the top directory being emptied (renameat2 RENAME_NOREPLACE under
 * a fresh name, on the same file system), where a later pass removes it
 * from the top again. Every entry is acted on relative to its parent's
 * fd, never following a symlink. */
#define FSAT_RM_DEPTH 32
#define FSAT_RM_MOVES_MAX (1u << 22)     /* a bound even against a tree still growing */

struct rm_walk {
    int top;                             /* the directory being emptied */
    unsigned moved;
};

static int rm_children(struct rm_walk *w, int dirfd, int depth);

/* Move dirfd/name into the top directory; 1 moved, -errno. */
static int rm_move_up(struct rm_walk *w, int dirfd, const char *name)
{
    char tmp[48];
    for (int tries = 0; tries < 64; tries++) {
        snprintf(tmp, sizeof(tmp), ".sf-rm-%d-%u", (int)getpid(), w->moved++);
        if (syscall(SYS_renameat2, dirfd, name, w->top, tmp, RENAME_NOREPLACE) == 0) return 1;
        /* A file system without RENAME_NOREPLACE: the name is ours alone
         * (pid and counter) once it is free. */
        if (errno == EINVAL) {
            if (faccessat(w->top, tmp, F_OK, AT_SYMLINK_NOFOLLOW) == 0) continue;
            if (errno == ENOENT && renameat(dirfd, name, w->top, tmp) == 0) return 1;
        }
        if (errno != EEXIST) return errno == ENOENT ? 0 : -errno;
    }
    return -EEXIST;
}

static int rm_entry(struct rm_walk *w, int dirfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        if (depth >= FSAT_RM_DEPTH) {
            int rc = rm_move_up(w, dirfd, name);
            return rc < 0 ? rc : 0;
        }
        int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) return -errno;
        int rc = rm_children(w, sub, depth + 1);
        close(sub);
        if (rc < 0) return rc;
    }
    if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static int rm_children(struct rm_walk *w, int dirfd, int depth)
{
    size_t n;
    char **names = sf_dir_names(dirfd, &n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = rm_entry(w, dirfd, names[i], depth);
        if (r < 0 && !rc) rc = r;
    }
    sf_dir_names_free(names, n);
    return rc;
}

int sf_empty_dir(int dirfd)
{
    struct rm_walk w = { dirfd, 0 };
    unsigned before;
    int rc;
    /* Again while the pass moved deep directories up to the top. */
    do {
        before = w.moved;
        rc = rm_children(&w, dirfd, 0);
    } while (rc == 0 && w.moved != before && w.moved < FSAT_RM_MOVES_MAX);
    return rc;
}

int sf_remove_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) return -errno;
        int rc = sf_empty_dir(sub);
        close(sub);
        if (rc < 0) return rc;
    }
    if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}
