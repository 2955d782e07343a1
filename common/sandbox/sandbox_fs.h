/* common/sandbox/sandbox_fs.h: the file system of a running sandbox as a
 * client of it sees it — open, stat, list, mkdir, rename, remove, watch —
 * acting as one of the sandbox's users. What an E2B envd's filesystem
 * service needs and sf_sandbox_write_file/read_file (whole files, as root)
 * do not give. Part of the sandbox interface: a backend offers it through
 * sf_sandbox_ops.fs (today the local backend; NULL elsewhere: -ENOTSUP).
 *
 * Every path is absolute inside the sandbox and resolves inside it: ".."
 * and symlinks planted by the sandbox (absolute or relative) never leave
 * its root, and the call acts with the given user's ids, so it can touch
 * only what that user could touch from inside.
 * Thread: any thread, several calls at once on one sandbox. */
#ifndef SF_SANDBOX_FS_H
#define SF_SANDBOX_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

#define SF_FS_UID_ROOT 0
#define SF_FS_UID_USER 1000      /* "user", home /home/user */

enum sf_fs_type { SF_FS_OTHER = 0, SF_FS_FILE, SF_FS_DIR, SF_FS_SYMLINK };

struct sf_fs_entry {
    const char *name, *path;     /* borrowed for the callback / call */
    enum sf_fs_type type;
    int64_t size;
    uint32_t mode;               /* st_mode (type and permission bits) */
    uint32_t uid, gid;           /* as the sandbox sees them */
    int64_t mtime_s;
    int32_t mtime_ns;
    const char *symlink_target;  /* NULL unless a symlink */
};

typedef int (*sf_fs_list_cb)(void *arg, const struct sf_fs_entry *e);

enum sf_fs_event_kind {
    SF_FS_EV_CREATE = 1, SF_FS_EV_WRITE, SF_FS_EV_REMOVE, SF_FS_EV_RENAME, SF_FS_EV_CHMOD,
};

struct sf_fs_event {
    enum sf_fs_event_kind kind;
    const char *name;            /* relative to the watched directory */
};
typedef void (*sf_fs_event_cb)(void *arg, const struct sf_fs_event *ev);

/* A directory watch. Poll fd() for input, then read() delivers what
 * happened (non-blocking). Thread: one thread at a time. */
struct sf_fs_watch;
struct sf_fs_watch_ops {
    int (*fd)(struct sf_fs_watch *w);
    int (*read)(struct sf_fs_watch *w, sf_fs_event_cb cb, void *arg);   /* 0 or -errno */
    void (*free)(struct sf_fs_watch *w);
};
struct sf_fs_watch {
    const struct sf_fs_watch_ops *ops;
};

struct sf_fs_ops {
    /* Open a regular file. With O_WRONLY|O_CREAT the parents are made
     * (owned by uid) and the file is created with 'mode'; reads refuse
     * anything but a regular file (-EISDIR for a directory, -EINVAL else).
     * The fd is O_CLOEXEC and the caller's. */
    int (*open)(struct sf_sandbox *sb, uint32_t uid, const char *path, int flags, int mode,
                int *fd);
    /* follow: stat the target of a symlink (else the link itself). */
    int (*stat)(struct sf_sandbox *sb, uint32_t uid, const char *path, bool follow,
                struct sf_fs_entry *e, char *target, size_t tsize);
    /* Entries under path (a directory, symlinks followed for it) down to
     * depth levels (1: its children), never following symlinks below it;
     * cb returning non-zero stops the walk with that value. */
    int (*list)(struct sf_sandbox *sb, uint32_t uid, const char *path, int depth,
                sf_fs_list_cb cb, void *arg);
    /* mkdir -p, owned by uid; -EEXIST when path already exists (-ENOTDIR
     * when it is not a directory). */
    int (*mkdir)(struct sf_sandbox *sb, uint32_t uid, const char *path);
    /* rename; the destination's parents are made. */
    int (*rename)(struct sf_sandbox *sb, uint32_t uid, const char *from, const char *to);
    /* rm -rf; 0 when it did not exist. */
    int (*remove)(struct sf_sandbox *sb, uint32_t uid, const char *path);
    int (*watch)(struct sf_sandbox *sb, uint32_t uid, const char *path, bool recursive,
                 struct sf_fs_watch **out);
};

static inline const struct sf_fs_ops *sf_sandbox_fs(const struct sf_sandbox *sb)
{ return sb->ops->fs; }

static inline int sf_fs_watch_fd(struct sf_fs_watch *w) { return w->ops->fd(w); }
static inline int sf_fs_watch_read(struct sf_fs_watch *w, sf_fs_event_cb cb, void *arg)
{ return w->ops->read(w, cb, arg); }
/* NULL is a no-op. */
static inline void sf_fs_watch_free(struct sf_fs_watch *w) { if (w) w->ops->free(w); }

#endif
