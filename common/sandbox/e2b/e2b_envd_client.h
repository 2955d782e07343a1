/* common/sandbox/e2b/e2b_envd_client.h: the client side of envd, the daemon inside an E2B
 * sandbox: file upload and download (/files) and processes over Connect
 * (process.Process/Start server-streaming, SendInput, CloseStdin,
 * SendSignal). Every request carries X-Access-Token (when the sandbox has
 * one), E2b-Sandbox-Id and E2b-Sandbox-Port, so both the shared-host
 * routing of the E2B edge and a direct URL work.
 * Thread: a struct sf_e2b_envd is read-only; calls may run from any thread,
 * including a second call from inside a Start callback (own curl handle). */
#ifndef SF_E2B_ENVD_H
#define SF_E2B_ENVD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "e2b_client.h"
#include "e2b_connect.h"

struct sf_e2b_envd {
    const struct sf_e2b_conn *conn;      /* borrowed */
    const struct sf_e2b_sandbox_info *sbx; /* borrowed */
    const char *user;                    /* "root" or "user"; NULL: envd's default */
};

/* Write 'len' bytes to 'path' (parents created). 0 or -errno + message. */
int sf_e2b_envd_upload(const struct sf_e2b_envd *e, const char *path, const void *data,
                       size_t len, char *err, size_t errlen);
/* Read 'path', at most 'max' bytes: -ENOENT missing, -EFBIG larger. *data
 * malloc'd and NUL-terminated, owned by the caller. */
int sf_e2b_envd_download(const struct sf_e2b_envd *e, const char *path, size_t max, char **data,
                         size_t *len, char *err, size_t errlen);

/* What to start: argv[0] is the program (envd's ProcessConfig.cmd). */
struct sf_e2b_start {
    const char *const *argv;         /* NULL-terminated */
    const char *const *env;          /* "K=V", NULL-terminated, may be NULL */
    const char *cwd;                 /* NULL: envd's default (the user's home) */
    bool stdin_open;                 /* keep a stdin pipe for SendInput */
    int64_t deadline_ms;             /* CLOCK_MONOTONIC; <= 0 none. Enforced here
                                        and sent as Connect-Timeout-Ms */
};

/* Stream callbacks; any may be NULL. on_start runs once with the pid before
 * any output (this is where stdin can be sent). Return non-zero from
 * on_start to abort the stream. */
struct sf_e2b_start_cb {
    int (*on_start)(void *arg, uint32_t pid);
    void (*on_data)(void *arg, enum sf_e2b_stream stream, const char *data, size_t len);
    void *arg;
};

struct sf_e2b_end {
    bool ended;                  /* an end event arrived */
    bool timed_out;              /* the deadline passed (here or in envd) */
    uint32_t pid;
    int exit_code;
    bool exited;
    char status[128], error[256];
};

/* Run to the end of the stream. 0 when the process ended (see *end) or the
 * deadline passed (end->timed_out; the process may still run: kill it);
 * -errno with a message when the stream failed: -ENOEXEC envd could not
 * start it (bad cwd or program), -EHOSTDOWN the sandbox is gone (502),
 * -EACCES token or user refused, -EIO / -EPROTO other errors and cut
 * connections. */
int sf_e2b_envd_start(const struct sf_e2b_envd *e, const struct sf_e2b_start *req,
                      const struct sf_e2b_start_cb *cb, struct sf_e2b_end *end, char *err,
                      size_t errlen);

/* Unary process calls. -ENOENT for an unknown pid. */
int sf_e2b_envd_send_stdin(const struct sf_e2b_envd *e, uint32_t pid, const void *data,
                           size_t len, char *err, size_t errlen);
int sf_e2b_envd_close_stdin(const struct sf_e2b_envd *e, uint32_t pid, char *err, size_t errlen);
/* sig: 9 or 15 (the only two envd knows). */
int sf_e2b_envd_signal(const struct sf_e2b_envd *e, uint32_t pid, int sig, char *err,
                       size_t errlen);

#endif
