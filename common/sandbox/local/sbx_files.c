/* common/sandbox/local/sbx_files.c: see sbx_files.h. */
#include "sbx_files.h"
#include "fsat.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void sf_sbx_fsids_enter(const struct sf_sbx_files *f, struct sf_sbx_fsids *s)
{
    s->set = f->switch_ids;
    if (!s->set) return;
    s->gid = setfsgid(f->gid);
    s->uid = setfsuid(f->uid);
}

void sf_sbx_fsids_leave(const struct sf_sbx_fsids *s)
{
    if (!s->set) return;
    setfsuid((uid_t)s->uid);
    setfsgid((gid_t)s->gid);
}

int sf_sbx_openat2(int dirfd, const char *path, int flags, int mode)
{
    return sf_openat_in(dirfd, path, flags, mode);
}

int sf_sbx_open_file(int rootfd, const char *path, int flags, int mode)
{
    struct stat st;
    int fd = sf_sbx_openat2(rootfd, path, flags | O_NONBLOCK | O_NOCTTY, mode);
    /* ENXIO: a FIFO without a reader (or a socket) opened for writing. */
    if (fd < 0) return fd == -ENXIO ? -EINVAL : fd;
    int rc = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? (S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL)
           : fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ? -errno : 0;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int sf_sbx_mkdirs(int rootfd, const char *dir)
{
    return sf_mkdirs_in(rootfd, dir, 0755);
}

static int sf_sbx_abs(const char *path, char *out, size_t size)
{
    if (!path || !path[0] || strlen(path) >= size - 16) return -EINVAL;
    if (path[0] == '/') sf_strlcpy(out, path, size);
    else snprintf(out, size, "/workspace/%s", path);
    return 0;
}

int sf_sbx_files_write(const struct sf_sbx_files *f, const char *path, const void *data,
                       size_t len, int mode)
{
    char abs[4096];
    int fd = -1, rc;
    struct sf_sbx_fsids ids = { 0, 0, false };
    if (f->rootfd < 0) return -ESRCH;
    if ((rc = sf_sbx_abs(path, abs, sizeof(abs))) < 0) return rc;
    sf_sbx_fsids_enter(f, &ids);
    char *slash = strrchr(abs, '/');
    if (slash != abs) {
        *slash = '\0';
        rc = sf_sbx_mkdirs(f->rootfd, abs);
        *slash = '/';
        if (rc < 0) goto cleanup;
    }
    fd = sf_sbx_open_file(f->rootfd, abs, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode ? mode : 0644);
    if (fd < 0) { rc = fd; goto cleanup; }
    /* Exactly the given mode, whatever the worker's umask. */
    if (fchmod(fd, (mode_t)(mode ? mode : 0644)) < 0) { rc = -errno; goto cleanup; }
    rc = sf_write_all(fd, data, len);
cleanup:
    if (fd >= 0) close(fd);
    sf_sbx_fsids_leave(&ids);
    return rc;
}

int sf_sbx_files_read(const struct sf_sbx_files *f, const char *path, size_t max, char **data,
                      size_t *len)
{
    char abs[4096], chunk[65536];
    struct sf_buf b = { 0 };
    struct sf_sbx_fsids ids = { 0, 0, false };
    int fd = -1, rc;
    *data = NULL;
    *len = 0;
    if (f->rootfd < 0) return -ESRCH;
    if ((rc = sf_sbx_abs(path, abs, sizeof(abs))) < 0) return rc;
    sf_sbx_fsids_enter(f, &ids);
    fd = sf_sbx_open_file(f->rootfd, abs, O_RDONLY, 0);
    if (fd < 0) { rc = fd; goto cleanup; }
    struct stat st;
    if (fstat(fd, &st) < 0) { rc = -errno; goto cleanup; }
    if ((size_t)st.st_size > max) { rc = -EFBIG; goto cleanup; }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { rc = -errno; goto cleanup; }
        if (n == 0) break;
        if (b.len + (size_t)n > max) { rc = -EFBIG; goto cleanup; }
        sf_buf_append(&b, chunk, (size_t)n);
    }
    *data = sf_buf_steal(&b, len);
cleanup:
    if (fd >= 0) close(fd);
    sf_sbx_fsids_leave(&ids);
    sf_buf_free(&b);
    return rc;
}
