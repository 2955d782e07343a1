/* worker/e2b/e2b_proc.h: envd processes of the E2B-compatible server — one per
 * process.Process/Start — and the Connect server-streaming responses that
 * carry their output as it happens.
 *
 * A process keeps a log of encoded events (data, end) from the moment it
 * starts; each stream reads the log from its own position, so the Start
 * stream misses nothing and a Connect stream joins at the present. Bytes
 * no stream still needs are dropped. Stream bodies are produced by
 * libmicrohttpd content-reader callbacks that block (the server runs a
 * thread per connection), waking for output, the end, a keepalive
 * interval or the Connect-Timeout-Ms deadline (which kills the process,
 * as envd does for Start).
 * Thread: all functions are thread-safe; references are counted. */
#ifndef SF_E2B_PROC_H
#define SF_E2B_PROC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "e2b_registry.h"

struct MHD_Response;
struct e2b_proc;

struct e2b_proc_start {
    const char *sh_cmd;          /* the command line for /bin/sh -c */
    json_t *config;              /* ProcessConfig as requested (borrowed; copied) */
    const char *cwd;             /* NULL: /home/user */
    const char *const *env;      /* "K=V", NULL-terminated */
    const char *tag;             /* may be NULL */
    bool stdin_pipe;
    uint32_t uid;                /* 0 root, 1000 user */
    uint16_t pty_rows, pty_cols; /* both > 0: on a terminal (stdin is then the terminal) */
};

/* Start a process in s. 0 with *out referenced for the caller; -ENOEXEC
 * (bad cwd or exec, message in err), -ESRCH (sandbox gone), -EAGAIN. The
 * Start stream must be made with e2b_proc_stream before any output is
 * lost: the process keeps its log until the first stream has read it. */
int e2b_proc_start(struct e2b_sbx *s, const struct e2b_proc_start *st, struct e2b_proc **out,
                   char *err, size_t errlen);
/* A running process by pid (> 0) or tag, referenced; NULL when not found. */
struct e2b_proc *e2b_proc_find(struct e2b_sbx *s, int pid, const char *tag);
void e2b_proc_put(struct e2b_proc *p);
int e2b_proc_pid(const struct e2b_proc *p);

/* stdin: -EPIPE when not enabled or closed, -ESRCH when it has ended. */
int e2b_proc_write_stdin(struct e2b_proc *p, const void *data, size_t len);
int e2b_proc_close_stdin(struct e2b_proc *p);
/* Resize its terminal: -ENOTTY without one, -ESRCH when not running. */
int e2b_proc_resize(struct e2b_sbx *s, struct e2b_proc *p, uint16_t rows, uint16_t cols);
bool e2b_proc_is_pty(const struct e2b_proc *p);
/* Signal it through the sandbox. -ESRCH when it is not running. */
int e2b_proc_signal(struct e2b_sbx *s, struct e2b_proc *p, int sig);
/* ProcessInfo JSON {"config","pid","tag"}; new reference. */
json_t *e2b_proc_info(struct e2b_proc *p);

/* A streaming response body for p. The stream holds its own references
 * to s (through r) and p. from_start: read the log from the beginning
 * (Start), else from now (Connect). deadline_ms: CLOCK_MONOTONIC, <= 0
 * none; kill_at_deadline: kill the process then (Start). */
struct MHD_Response *e2b_proc_stream(struct e2b_registry *r, struct e2b_sbx *s,
                                     struct e2b_proc *p, bool from_start, int keepalive_s,
                                     int64_t deadline_ms, bool kill_at_deadline);

#endif
