/* common/sandbox/sandbox_proc.h: several processes at once in one sandbox,
 * each with its own pid, stdin pipe, streamed stdout/stderr and exit
 * notification, plus signals — what an E2B envd needs and sf_sandbox_run
 * (one command to completion) does not give. Part of the sandbox interface:
 * a backend offers it through sf_sandbox_ops.proc_host (today the local
 * backend; others answer -ENOTSUP).
 *
 * A sandbox driven by a proc host must not be given to sf_sandbox_run at the
 * same time. Files still go through sf_sandbox_write_file/read_file.
 * The host calls the process callbacks from its own thread (keep them
 * short). Thread: spawn and signal from any thread; free from one thread
 * once. */
#ifndef SF_SANDBOX_PROC_H
#define SF_SANDBOX_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

enum sf_proc_event_kind {
    SF_PROC_STDOUT = 1,
    SF_PROC_STDERR,
    SF_PROC_EXIT,            /* last event of a process */
    SF_PROC_PTY,             /* what a terminal process wrote to its terminal */
};

struct sf_proc_event {
    enum sf_proc_event_kind kind;
    int pid;
    const char *data;        /* STDOUT/STDERR: borrowed for the call */
    size_t len;
    int wait_status;         /* EXIT: as from waitpid */
    bool sandbox_died;       /* EXIT: the sandbox went away under it */
};

/* Returns true to hold the process's output: its consumer cannot take more
 * now, so the host stops reading its stdout/stderr (the process blocks
 * once its pipe is full, as on any pipe) until sf_proc_resume. Ignored
 * for EXIT. Without it a process printing faster than its reader takes
 * would grow the consumer's memory without end. */
typedef bool (*sf_proc_cb)(void *arg, const struct sf_proc_event *ev);

struct sf_proc_spec {
    const char *cmd;                 /* run by /bin/sh -c */
    const char *cwd;                 /* NULL: /home/user */
    const char *const *env;          /* "K=V", NULL-terminated; PATH and HOME defaulted */
    bool stdin_pipe;                 /* false: stdin is /dev/null */
    uint32_t uid;                    /* 0 (root) or SF_FS_UID_USER (1000): who runs it
                                        (where 1000 is not mapped, e.g. a worker without
                                        privileges, the sandbox's root runs it) */
    uint16_t pty_rows, pty_cols;     /* both > 0: on a new terminal of the sandbox
                                        (its own devpts) of that size; output comes
                                        as SF_PROC_PTY, *stdin_fd is the terminal */
    sf_proc_cb cb;                   /* required */
    void *arg;
};

struct sf_proc_host;
struct sf_proc_host_ops {
    int (*spawn)(struct sf_proc_host *h, const struct sf_proc_spec *spec, int *stdin_fd,
                 char *err, size_t errlen);
    int (*signal)(struct sf_proc_host *h, int pid, int sig);
    int (*resize)(struct sf_proc_host *h, int pid, uint16_t rows, uint16_t cols);
    int (*resume)(struct sf_proc_host *h, int pid);
    void (*free)(struct sf_proc_host *h);
};
/* Every backend's proc host starts with this. */
struct sf_proc_host {
    const struct sf_proc_host_ops *ops;
};

/* Take over a running sandbox's process control and start the host. The
 * sandbox stays owned by the caller and must outlive the host.
 * 0, -ENOTSUP for a backend without it, -ESRCH when the sandbox is dead, or
 * -errno; a message in err. */
int sf_proc_host_new(struct sf_sandbox *sb, struct sf_proc_host **out, char *err, size_t errlen);

/* Start a process. Returns its pid (> 0, the sandbox's view) and, when
 * spec->stdin_pipe, the write end of its stdin in *stdin_fd (owned by the
 * caller, O_CLOEXEC|O_NONBLOCK); -ENOEXEC when it could not start (cwd,
 * exec; message in err), -ESRCH when the sandbox is dead, -EAGAIN when too
 * many processes run. Events may arrive before this returns. */
static inline int sf_proc_spawn(struct sf_proc_host *h, const struct sf_proc_spec *spec,
                                int *stdin_fd, char *err, size_t errlen)
{ return h->ops->spawn(h, spec, stdin_fd, err, errlen); }
/* Signal a running process (its process group). 0, -ESRCH when it is not
 * running. */
static inline int sf_proc_signal(struct sf_proc_host *h, int pid, int sig)
{ return h->ops->signal(h, pid, sig); }
/* Resize a terminal process's terminal (its foreground group gets
 * SIGWINCH). 0, -ESRCH when not running, -ENOTTY when it has no terminal. */
static inline int sf_proc_resize(struct sf_proc_host *h, int pid, uint16_t rows, uint16_t cols)
{ return h->ops->resize(h, pid, rows, cols); }
/* Read a held process's output again (see sf_proc_cb). 0, -ESRCH when it
 * is not running. Not from a callback. */
static inline int sf_proc_resume(struct sf_proc_host *h, int pid)
{ return h->ops->resume(h, pid); }
/* Stop the host; every process still known gets an EXIT event with
 * sandbox_died first. Call before destroying the sandbox. NULL is a no-op. */
static inline void sf_proc_host_free(struct sf_proc_host *h)
{ if (h) h->ops->free(h); }

#endif
