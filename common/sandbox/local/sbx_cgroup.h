/* common/sandbox/local/sbx_cgroup.h: memory and pids limits for local sandboxes through
 * cgroups, v2 (unified) or v1 (separate memory and pids hierarchies).
 *
 * A *base* is the directory under which each sandbox gets its own cgroup:
 * "sandfleet" under the worker's own cgroup, or cfg->cgroup_parent. The
 * cgroup mount root and the /proc/self/cgroup file are parameters so unit
 * tests can point them at a fake tree in a temp dir.
 * Thread: a base is read-only after sf_sbx_cgroup_base_init and may be
 * shared; a struct sf_sbx_cgroup belongs to one sandbox. */
#ifndef SF_SBX_CGROUP_H
#define SF_SBX_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SF_SBX_CG_PATH 512
#define SF_SBX_CG_LEAF "worker"      /* v2: where our cgroup's processes move */

struct sf_sbx_cgroup_base {
    int version;                     /* 1 or 2 */
    char mem[SF_SBX_CG_PATH];        /* v1 memory base dir; v2: the base dir */
    char pids[SF_SBX_CG_PATH];       /* v1 pids base dir; v2: same as mem */
    bool has_memsw;                  /* v1 memory.memsw.* (swap accounting) */
    char freezer[SF_SBX_CG_PATH];    /* v1 freezer base dir; "" without one */
};

struct sf_sbx_cgroup {
    int version;                     /* 0: none (not created) */
    char mem[SF_SBX_CG_PATH];
    char pids[SF_SBX_CG_PATH];
    bool has_memsw, has_swap_max;
    int64_t memory_mb, pids_max;     /* values last written */
    char freezer[SF_SBX_CG_PATH];    /* v1: made at the first freeze; "" before */
    bool freezer_made;
};

/* Find the hierarchy under 'mount_root' (normally "/sys/fs/cgroup") and
 * create the base directory. 'self_cgroup' is the path of a
 * /proc/self/cgroup-format file; 'parent' overrides the location (a path
 * relative to the hierarchy root, e.g. "sandfleet" or "/jobs/sf"), NULL for
 * "<own cgroup>/sandfleet". v2: enables +memory +pids down to the base; when
 * our own cgroup holds processes (EBUSY, "no internal processes") they all -
 * the worker and whoever shares its cgroup - move into a leaf "<own>/worker"
 * first. A worker started from such a leaf uses the leaf's parent as its own
 * cgroup (its base: "<parent>/sandfleet").
 * Returns 0, or -errno with the reason in errstr. */
int sf_sbx_cgroup_base_init(struct sf_sbx_cgroup_base *base, const char *mount_root,
                            const char *self_cgroup, const char *parent,
                            char *errstr, size_t errlen);

/* Create the cgroup 'name' under base with limits written (memory, swap
 * off, pids). Returns 0 or -errno + errstr; on failure nothing is left. */
int sf_sbx_cgroup_create(const struct sf_sbx_cgroup_base *base, const char *name,
                         int64_t memory_mb, int64_t pids_max, struct sf_sbx_cgroup *cg,
                         char *errstr, size_t errlen);

/* Change the limits (writes only the values that differ). 0 or -errno. */
int sf_sbx_cgroup_set_limits(struct sf_sbx_cgroup *cg, int64_t memory_mb, int64_t pids_max,
                             char *errstr, size_t errlen);

/* Move process 'pid' into the cgroup (every hierarchy). 0 or -errno. */
int sf_sbx_cgroup_attach(const struct sf_sbx_cgroup *cg, pid_t pid, char *errstr, size_t errlen);

/* v1: open the cgroup's "tasks" files (memory, pids) so that a single-
 * threaded child can move itself by writing "0" to each. Moving a pid
 * from outside takes the kernel's global cgroup_threadgroup_rwsem for
 * writing, which waits for an RCU grace period (measured 25-450 us, per
 * hierarchy, worse when other processes use cgroups); a thread moving
 * itself does not. The kernel checks the opener's credentials, so the
 * child may use them after it changed its own. Fills fds[0..1] (-1 when
 * unused) and returns how many were opened: 0 on v2 and without cgroups
 * (then use sf_sbx_cgroup_attach), or -errno with nothing left open. */
int sf_sbx_cgroup_open_join(const struct sf_sbx_cgroup *cg, int fds[2]);

/* How many times the OOM killer fired in this cgroup (v2 memory.events
 * "oom_kill", v1 memory.oom_control "oom_kill"). 0 or -errno. */
int sf_sbx_cgroup_oom_kills(const struct sf_sbx_cgroup *cg, uint64_t *count);

/* Freeze every process of the cgroup where it is (memory kept), or thaw
 * them. v2: cgroup.freeze, waiting for cgroup.events "frozen 1". v1: the
 * processes are moved into a cgroup of the freezer hierarchy (made at the
 * first freeze: a sandbox that is never paused pays nothing), which is
 * then FROZEN; stragglers forked during the move are moved in until none
 * is left (a task that joins a frozen cgroup freezes). 0 or -errno
 * (-ENOTSUP: no freezer). */
int sf_sbx_cgroup_freeze(struct sf_sbx_cgroup *cg, bool frozen);

/* CPU time used (v2 cpu.stat usage_usec; v1: the live processes' utime +
 * stime from /proc, as v1 has no cpuacct here) and memory in use. -1 for
 * what cannot be read. 0 or -ENOENT without cgroups. */
int sf_sbx_cgroup_usage(const struct sf_sbx_cgroup *cg, int64_t *cpu_us, int64_t *mem_bytes);

/* Remove leftovers of a worker that died without destroy(): every
 * "<prefix>*" cgroup under base that rmdir accepts, i.e. that holds no
 * process (a live sandbox's pid 1 keeps its cgroup busy). Returns how many
 * were removed. Call once when a provider starts. */
int sf_sbx_cgroup_sweep(const struct sf_sbx_cgroup_base *base, const char *prefix);

/* Remove the cgroup dirs. The processes must be dead; a v1 rmdir that
 * still sees them (EBUSY while the kernel finishes the exit) is retried for
 * up to 'wait_ms'. Returns 0 or the last -errno; no-op for version 0. */
int sf_sbx_cgroup_destroy(struct sf_sbx_cgroup *cg, int wait_ms);

#endif
