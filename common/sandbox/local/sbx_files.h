/* common/sandbox/local/sbx_files.h: the worker's file API into a running local sandbox.
 *
 * Paths resolve through an O_PATH fd of the sandbox root with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): absolute symlinks and
 * ".." planted by the sandbox stay inside it. When the worker is root the
 * calling thread switches its fsuid/fsgid to the sandbox's mapped ids for
 * the call (per thread), so files are created as the sandbox's root would
 * create them and a planted symlink cannot make the worker read what the
 * sandbox may not. Relative paths are relative to /workspace.
 * Thread: any thread; one call at a time per sandbox. */
#ifndef SF_SBX_FILES_H
#define SF_SBX_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sf_sbx_files {
    int rootfd;                 /* borrowed */
    uint32_t uid, gid;          /* host ids to act with (the sandbox's root's) */
    bool switch_ids;            /* worker is root: act with uid/gid */
    /* host ids of the sandbox's root and of "user" (0: not mapped), to
     * show owners as the sandbox sees them */
    uint32_t root_uid, root_gid, user_uid, user_gid;
};

/* The ids a call acts with (per thread), entered and left around it. */
struct sf_sbx_fsids { int uid, gid; bool set; };
void sf_sbx_fsids_enter(const struct sf_sbx_files *f, struct sf_sbx_fsids *s);
void sf_sbx_fsids_leave(const struct sf_sbx_fsids *s);
/* openat2 under dirfd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (and
 * O_CLOEXEC). fd or -errno. */
int sf_sbx_openat2(int dirfd, const char *path, int flags, int mode);
/* A regular file under the root, opened with openat2 as above; 'flags'
 * as for open(2). Never blocks: it is opened O_NONBLOCK (a FIFO the
 * sandbox planted would otherwise hold the calling thread until the
 * sandbox opens its other end — for a writer, forever), then checked and
 * made blocking. fd, or -EISDIR (a directory), -EINVAL (anything else but
 * a regular file), -errno. */
int sf_sbx_open_file(int rootfd, const char *path, int flags, int mode);
/* mkdir -p of the absolute 'dir' inside the root. 0 or -errno. */
int sf_sbx_mkdirs(int rootfd, const char *dir);

/* The files view of local sandbox sb acting as sandbox uid 'uid' (0 or
 * 1000; an id the sandbox does not map acts as its root). Defined in
 * sandbox_local.c; -ESRCH when the sandbox is not running. */
struct sf_sandbox;
int sf_sbx_files_of(struct sf_sandbox *sb, uint32_t uid, struct sf_sbx_files *f);

/* The local backend's sandbox_fs.h operations (sbx_fs.c). */
extern const struct sf_fs_ops sf_sbx_fs_ops;

/* Write 'len' bytes (parents created, mode 0644 or 'mode'). 0 or -errno. */
int sf_sbx_files_write(const struct sf_sbx_files *f, const char *path, const void *data,
                       size_t len, int mode);

/* Read a regular file of at most 'max' bytes into a malloc'd, NUL-terminated
 * buffer owned by the caller. -EFBIG when larger, -EINVAL when not a regular
 * file, else 0 or -errno. */
int sf_sbx_files_read(const struct sf_sbx_files *f, const char *path, size_t max, char **data,
                      size_t *len);

#endif
