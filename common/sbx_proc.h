/* common/sbx_proc.h: several processes at once in one local sandbox, each
 * with its own pid, stdin pipe, streamed stdout/stderr and exit
 * notification, plus signals — what an E2B envd needs and sf_sandbox_run
 * (one command to completion) does not give.
 *
 * It speaks the in-sandbox init's SPAWN/SIGNAL messages (sbx_init.h) over
 * the sandbox's control socket, which the proc host then owns: a sandbox
 * driven by a proc host must not be given to sf_sandbox_run at the same
 * time. Files still go through sf_sandbox_write_file/read_file.
 * One thread per host polls the control socket and every process's pipes,
 * and calls the process callbacks from that thread (keep them short).
 * Thread: spawn and signal from any thread; free from one thread once. */
#ifndef SF_SBX_PROC_H
#define SF_SBX_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox.h"

/* The local sandbox's control socket (borrowed), -EINVAL for a sandbox of
 * another backend, -ESRCH when it is dead. Defined in sandbox_local.c. */
int sf_sandbox_local_ctl(struct sf_sandbox *sb);

enum sf_sbx_proc_event_kind {
    SF_SBX_PROC_STDOUT = 1,
    SF_SBX_PROC_STDERR,
    SF_SBX_PROC_EXIT,        /* last event of a process */
};

struct sf_sbx_proc_event {
    enum sf_sbx_proc_event_kind kind;
    int pid;
    const char *data;        /* STDOUT/STDERR: borrowed for the call */
    size_t len;
    int wait_status;         /* EXIT: as from waitpid */
    bool sandbox_died;       /* EXIT: the sandbox went away under it */
};

typedef void (*sf_sbx_proc_cb)(void *arg, const struct sf_sbx_proc_event *ev);

struct sf_sbx_proc_spec {
    const char *cmd;                 /* run by /bin/sh -c */
    const char *cwd;                 /* NULL: /home/user */
    const char *const *env;          /* "K=V", NULL-terminated; PATH and HOME defaulted */
    bool stdin_pipe;                 /* false: stdin is /dev/null */
    sf_sbx_proc_cb cb;               /* required */
    void *arg;
};

struct sf_sbx_proc_host;

/* Take over a running local sandbox's control channel and start the host
 * thread. The sandbox stays owned by the caller and must outlive the host.
 * 0, or -errno with a message. */
int sf_sbx_proc_host_new(struct sf_sandbox *sb, struct sf_sbx_proc_host **out, char *err,
                         size_t errlen);
/* Stop the thread; every process still known gets an EXIT event with
 * sandbox_died first. Call before destroying the sandbox. NULL is a no-op. */
void sf_sbx_proc_host_free(struct sf_sbx_proc_host *h);

/* Start a process. Returns its pid (> 0, the sandbox's view) and, when
 * spec->stdin_pipe, the write end of its stdin in *stdin_fd (owned by the
 * caller, O_CLOEXEC|O_NONBLOCK); -ENOEXEC when it could not start (cwd,
 * exec; message in err), -ESRCH when the sandbox is dead, -EAGAIN when too
 * many processes run. Events may arrive before this returns. */
int sf_sbx_proc_spawn(struct sf_sbx_proc_host *h, const struct sf_sbx_proc_spec *spec,
                      int *stdin_fd, char *err, size_t errlen);
/* Signal a running process (its process group). 0, -ESRCH when it is not
 * running. */
int sf_sbx_proc_signal(struct sf_sbx_proc_host *h, int pid, int sig);

#endif
