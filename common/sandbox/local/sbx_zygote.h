/* common/sandbox/local/sbx_zygote.h: the process that clones sandboxes.
 *
 * A sandbox's pid 1 used to be a raw clone() of the worker itself. Cloning
 * a process copies its page tables and takes its mmap lock for writing for
 * the whole copy: every other thread of the worker that faults a page (a
 * new stack page, fresh heap) waits, and a worker with a thread per slot
 * has thousands of mappings to copy. At --concurrency 1000 that serialised
 * the whole worker on clone() (1000 sandboxes that sleep 10 s took 110 s).
 *
 * The zygote is a small copy of the worker forked once, when the provider
 * starts and before it has threads of its own: it keeps no sandbox state,
 * has its argv/environment wiped and its signals reset once, and clones
 * every sandbox child on request. A request carries what the mount plan
 * depends on (network, disk size, template root, extra binds) and the fds
 * the child needs (its control socket end, v1 cgroup "tasks" files, a
 * network namespace to start in); the zygote builds the plan (the same
 * ones are cached), enters the image for those options when it has one
 * (sbx_image.h: the read-only part of the root, built once) so that the
 * child's mount namespace is a copy of it, clones the child, comes back,
 * writes the child's uid/gid maps and answers
 * with the child's pid and a pidfd. The worker then talks to the child over
 * the control socket exactly as before (GO, READY, RUN), kills it through
 * the pidfd and waits for its end by polling the pidfd; the zygote, whose
 * children they are, lets the kernel reap them (SIGCHLD ignored).
 *
 * Thread: sf_sbx_zygote_spawn from any thread (requests are serialised);
 * start/stop from one thread. */
#ifndef SF_SBX_ZYGOTE_H
#define SF_SBX_ZYGOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"
#include "sbx_seccomp.h"

#define SF_SBX_ZYGOTE_NICE (-10)      /* the zygote's; its children reset to 0 */

struct sf_sbx_zygote;

/* What every child of this provider gets, fixed when the zygote starts. */
struct sf_sbx_zygote_cfg {
    const struct sf_sbx_bpf *filter;
    int cap_last;
    bool drop_groups;                   /* worker is root: setgroups(0) allowed */
    uint32_t host_uid, host_gid;        /* sandbox root's host ids */
    uint32_t user_uid, user_gid;        /* "user" (1000), 0: not mapped */
    bool write_setgroups;               /* unprivileged: "deny" before gid_map */
    bool images;                        /* clone from images where it can (sbx_image.h) */
};

/* Fork the zygote. NULL with the reason in err (then the caller clones from
 * the worker as before). Call before the provider starts threads. */
struct sf_sbx_zygote *sf_sbx_zygote_start(const struct sf_sbx_zygote_cfg *cfg, char *err,
                                          size_t errlen);
/* Stop it (its live children are not touched: each dies with its control
 * socket). NULL ok. */
void sf_sbx_zygote_stop(struct sf_sbx_zygote *z);
/* NULL when its children are cloned from images (sbx_image.h), else why
 * not: each child then builds its whole root. */
const char *sf_sbx_zygote_no_images(const struct sf_sbx_zygote *z);

/* Per sandbox: what the plan depends on, and the fds the child needs. */
struct sf_sbx_zygote_req {
    const struct sf_sandbox_opts *opts; /* network, rootfs, ro_binds */
    int64_t disk_mb;
    int ctl_fd;                         /* the child's end of the control socket */
    int cg_join[2];                     /* v1 tasks files to join, or -1 */
    int netns;                          /* a namespace to start in (lo up), or -1: CLONE_NEWNET */
    int cgroup_dir;                     /* v2: the cgroup's directory, to start the child in
                                           (CLONE_INTO_CGROUP), or -1 */
};

/* Clone one sandbox child. 0 with *pid (in our pid namespace) and *pidfd
 * (owned by the caller), *in_cgroup when the child started in
 * req->cgroup_dir (else the caller attaches it) and *part, the part of the
 * mount plan it runs (enum sf_sbx_plan_part: the whole root, or its own
 * part on an image); -errno with the reason in err (a bad ro_bind, the
 * zygote gone). The request's fds stay the caller's. */
int sf_sbx_zygote_spawn(struct sf_sbx_zygote *z, const struct sf_sbx_zygote_req *req,
                        pid_t *pid, int *pidfd, bool *at_clone, bool *in_cgroup, int *part,
                        char *err, size_t errlen);

/* Write the uid/gid maps (and "deny" to setgroups when asked) of the new
 * user namespace of 'pid'. 0, or -errno with the file in *what. Used by the
 * zygote, and by the worker when it clones a child itself. */
int sf_sbx_write_maps(pid_t pid, const struct sf_sbx_zygote_cfg *ids, const char **what);

#endif
