/* common/sandbox/local/sbx_init.h: the code that runs inside a local sandbox, and the
 * wire protocol between it and the worker.
 *
 * The worker clones a child into new namespaces. That child becomes pid 1
 * of the sandbox: it waits for GO (uid/gid maps written, cgroup joined),
 * switches to the mapped ids, builds the root (sbx_mount), then reports
 * READY with an O_PATH fd of its root and serves RUN requests until the
 * control socket closes. Each RUN forks a grandchild that drops every
 * privilege, installs the seccomp filter last and execs /bin/sh -c, or the
 * command itself when it is a plain one (sbx_exec.h).
 *
 * The control channel is a SOCK_SEQPACKET socketpair: one message per
 * request or event, fds by SCM_RIGHTS. Everything in this file that runs in
 * the child uses syscalls only: the worker is multi-threaded, so after a
 * raw clone() no lock held by another thread (malloc, stdio) may be taken. */
#ifndef SF_SBX_INIT_H
#define SF_SBX_INIT_H

#include <stdbool.h>
#include <stdint.h>
#include "sbx_mount.h"
#include "sbx_seccomp.h"

enum sf_sbx_msg_type {
    SF_SBX_MSG_GO = 1,          /* worker → child: maps written, cgroup joined */
    SF_SBX_MSG_READY,           /* child → worker: set up; SCM_RIGHTS root fd */
    SF_SBX_MSG_SETUP_FAILED,    /* child → worker: step, err, detail = mount op */
    SF_SBX_MSG_RUN,             /* worker → init: struct sf_sbx_run_hdr + strings + 3 fds */
    SF_SBX_MSG_STARTED,         /* init → worker: pid */
    SF_SBX_MSG_EXEC_FAILED,     /* init → worker: step, err */
    SF_SBX_MSG_EXITED,          /* init → worker: pid, wait status */
    /* Added for sbx_proc (several processes at once, e.g. the E2B server):
     * SPAWN is RUN without the one-at-a-time rule; init answers STARTED or
     * EXEC_FAILED in request order and later EXITED for each spawned pid.
     * SIGNAL (pid, status = signal number) signals a spawned pid's process
     * group; no answer. A sandbox uses RUN or SPAWN, not both at once.
     * A SPAWN with pty_rows/pty_cols is started on a pseudo-terminal that
     * init allocates from the sandbox's own /dev/pts: the process is its
     * session leader with it as controlling terminal, and the master comes
     * back with STARTED (SCM_RIGHTS). */
    SF_SBX_MSG_SPAWN,
    SF_SBX_MSG_SIGNAL,
};

#define SF_SBX_SPAWN_MAX 256        /* spawned processes alive at once */

/* Setup and exec steps, reported with an errno when they fail. */
enum sf_sbx_step {
    SF_SBX_STEP_RELEASE = 1, SF_SBX_STEP_SETID, SF_SBX_STEP_CGROUPNS, SF_SBX_STEP_MOUNT,
    SF_SBX_STEP_HOSTNAME, SF_SBX_STEP_LOOPBACK, SF_SBX_STEP_ROOTFD, SF_SBX_STEP_CAPBSET,
    SF_SBX_STEP_CLONE, SF_SBX_STEP_FDS, SF_SBX_STEP_CWD, SF_SBX_STEP_RLIMIT,
    SF_SBX_STEP_CAPS, SF_SBX_STEP_NNP, SF_SBX_STEP_SECCOMP, SF_SBX_STEP_EXEC,
    SF_SBX_STEP_PROTOCOL, SF_SBX_STEP_CGROUP,
};

struct sf_sbx_msg {
    uint32_t type;
    int32_t step, err;          /* err is a positive errno */
    int32_t pid, status;        /* status as from waitpid */
    uint32_t detail;
};

/* A RUN request: the header, then cwd, cmd, argc argv words and nenv env
 * strings, each NUL-terminated, back to back. argc > 0: the worker found no
 * shell syntax in cmd and split it (sbx_exec.h), exec the words without
 * /bin/sh. Limits <= 0 mean "leave as is". */
struct sf_sbx_run_hdr {
    uint32_t type;
    uint32_t nenv;
    uint32_t strings_len;
    uint32_t argc;
    int64_t cpu_s, nofile, fsize_bytes;
    uint32_t uid;               /* inside: 0 (root) or 1000 (user); gid the same */
    uint16_t pty_rows, pty_cols;/* SPAWN: > 0 runs it on a new terminal of the
                                   sandbox's devpts (no stdio fds sent); STARTED
                                   then carries the terminal's master */
};

#define SF_SBX_RUN_MAX (192 * 1024)  /* header + strings; execve caps one arg at 128 KiB */
#define SF_SBX_ENV_MAX 4096

/* What the child needs; prepared by the worker before clone(). */
struct sf_sbx_child_cfg {
    int ctl_fd;                         /* child end of the socketpair */
    bool drop_groups;                   /* setgroups(0) is allowed (worker is root) */
    bool lo_ready;                      /* a namespace made by the worker, lo already up */
    int cg_join[2];                     /* v1 "tasks" fds to join by writing "0", or -1 */
    const struct sf_sbx_mount_plan *plan;
    const struct sf_sbx_bpf *filter;
    int cap_last;                       /* /proc/sys/kernel/cap_last_cap */
    bool clean;                         /* cloned from the zygote: its argv and
                                           environment are wiped, its signals
                                           reset already (sbx_zygote.h) */
};

/* Send one datagram with an fd (SCM_RIGHTS; none when pass_fd < 0),
 * retrying EINTR. Syscalls only. */
void sf_sbx_send_with_fd(int fd, const void *msg, size_t len, int pass_fd);

/* Wipe the argv and environment areas of the calling process (they show in
 * /proc/PID/cmdline and environ) and name it "sandbox-init". Syscalls only. */
void sf_sbx_scrub_argv_env(void);

/* The child's whole life. Never returns. Child of clone() only. */
void sf_sbx_init_main(const struct sf_sbx_child_cfg *cfg) __attribute__((noreturn));

/* "mount", "chdir", ... for messages. Any thread. */
const char *sf_sbx_step_name(int step);

#endif
