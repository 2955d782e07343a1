/* common/sandbox/local/sbx_mount.h: the file system of a local sandbox.
 *
 * The parent (worker or zygote) turns the sandbox options into a *plan*: a
 * flat list of mount steps with every path and every file's content spelled
 * out. The child, between clone() and the init loop, executes the plan with
 * plain syscalls only (no allocation, no stdio: it may be the child of a
 * multi-threaded process). The result:
 *   /            tmpfs (4 MiB), read-only
 *   /usr         host, read-only; /bin /lib /lib64 /sbin mirror the host
 *                (symlinks stay symlinks, directories are read-only binds)
 *   /etc         generated passwd, group, hosts, hostname; host ld.so.cache,
 *                ld.so.conf(.d), alternatives; with network a generated
 *                resolv.conf (127.0.0.53) and nsswitch.conf, and the host's
 *                ssl, ca-certificates, gai.conf, host.conf, services, protocols
 *   /proc        fresh procfs; kcore, keys, ... masked; sys, sysrq-trigger,
 *                irq, bus, fs read-only (as OCI runtimes do)
 *   /dev         read-only tmpfs with null zero full random urandom tty, fd
 *                links, its own devpts instance on /dev/pts (ptmx a link into it)
 *   /workspace /home/user /tmp (1777, with /tmp/shared) /dev/shm
 *                directories of ONE writable tmpfs of disk_mb
 *   opts->ro_binds on top.
 * Three ways to cut it (enum sf_sbx_plan_part): the whole of it in the
 * child, on a copy of the host's mount namespace (FULL); or its read-only
 * part once per image (IMAGE, sbx_image.h: /, /usr, /etc, /dev, the
 * ro_binds) and the rest in each child cloned from inside that image
 * (SANDBOX: the writable tmpfs, /proc, /dev/pts, /dev/shm).
 * Thread: sf_sbx_mount_plan_build/free any thread; sf_sbx_mount_execute
 * only in the process that builds the mounts. */
#ifndef SF_SBX_MOUNT_H
#define SF_SBX_MOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sandbox.h"

/* Terminals a sandbox may hold at once (its devpts instance's max). */
#define SF_SBX_PTY_MAX_STR "32"

enum sf_sbx_mop_kind {
    SF_SBX_MOP_PRIVATE,     /* make / rprivate: nothing propagates to the host */
    SF_SBX_MOP_TMPFS,       /* mount tmpfs on dst; data = options */
    SF_SBX_MOP_MKDIR,       /* mkdir dst (EEXIST ok), chmod mode */
    SF_SBX_MOP_MKFILE,      /* create an empty file dst (bind target) */
    SF_SBX_MOP_WRITE,       /* create dst with 'data' as content, mode */
    SF_SBX_MOP_SYMLINK,     /* symlink src at dst */
    SF_SBX_MOP_BIND,        /* bind src on dst, recursive */
    SF_SBX_MOP_RDONLY,      /* make dst read-only (recursive when 'rec') */
    SF_SBX_MOP_PROC,        /* mount a fresh procfs on dst */
    SF_SBX_MOP_PIVOT,       /* pivot_root into dst, drop the old root */
    SF_SBX_MOP_CHOWN,       /* chown dst to mode:mode (an id inside) */
    SF_SBX_MOP_DEVPTS,      /* mount a new devpts instance on dst */
    SF_SBX_MOP_UMOUNT,      /* detach the mount on dst (its binds elsewhere stay) */
};

enum sf_sbx_plan_part {
    SF_SBX_PLAN_FULL,       /* everything, on a copy of the host's mount namespace */
    SF_SBX_PLAN_IMAGE,      /* the read-only part, in a mount namespace of its own,
                               ending in it (pivot_root); with a procfs on /proc, the
                               "fully visible" one the kernel wants to see before a user
                               namespace may mount its own (mount_too_revealing) */
    SF_SBX_PLAN_SANDBOX,    /* the rest, in a child cloned from inside an image */
};

struct sf_sbx_mop {
    enum sf_sbx_mop_kind kind;
    const char *src, *dst, *data;   /* owned by the plan */
    size_t data_len;
    int mode;
    bool rec;                       /* RDONLY: the whole subtree */
    bool optional;                  /* ENOENT is not an error (masks) */
};

struct sf_sbx_mount_plan {
    struct sf_sbx_mop *ops;
    size_t n, cap;
    char **strings;                 /* every string the ops point at */
    size_t nstrings, capstrings;
};

/* Build the plan for 'opts' (limits already merged), or the given part of
 * it. Returns 0 or -errno with the reason in errstr (a missing ro_bind
 * source, a bad sandbox path). The caller owns the plan: free with
 * sf_sbx_mount_plan_free. user_mapped: uid 1000 ("user") exists inside;
 * /home/user is then its. disk_mb and user_mapped do not matter to IMAGE;
 * network, rootfs and ro_binds do not matter to SANDBOX. */
int sf_sbx_mount_plan_build(struct sf_sbx_mount_plan *plan, const struct sf_sandbox_opts *opts,
                            int64_t disk_mb, bool user_mapped, enum sf_sbx_plan_part part,
                            char *errstr, size_t errlen);

/* May a sandbox with these options run on an image? Not when a ro_bind
 * lands where each sandbox mounts its own (the writable places, /proc,
 * /dev): the image's bind would be hidden. Any thread. */
bool sf_sbx_mount_image_fits(const struct sf_sandbox_opts *opts);
void sf_sbx_mount_plan_free(struct sf_sbx_mount_plan *plan);   /* NULL ok */

/* "bind /usr on /usr", for error messages. Any thread. */
void sf_sbx_mount_describe(const struct sf_sbx_mount_plan *plan, size_t i, char *out, size_t size);

/* Execute the plan. Async-signal-safe. Returns 0, or -errno with the index
 * of the failing step in *failed. */
int sf_sbx_mount_execute(const struct sf_sbx_mount_plan *plan, size_t *failed);

#endif
