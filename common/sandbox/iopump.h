/* common/sandbox/iopump.h: the I/O loop of one command run, shared by the sandbox
 * backends. It feeds stdin, collects stdout (up to a cap) and the tail of
 * stderr, calls the streaming callbacks, and stops when the backend says the
 * process is done or when the deadline passes. It never blocks on a pipe a
 * background process keeps open: once the main process has exited it takes
 * what is already buffered and returns.
 * Thread: the calling thread only; no global state. */
#ifndef SF_IOPUMP_H
#define SF_IOPUMP_H

#include <stdint.h>
#include "sandbox.h"

struct sf_iopump {
    int in_fd, out_fd, err_fd;      /* our ends; -1 when absent. Owned: closed by sf_iopump_finish */
    const struct sf_run_spec *spec;
    /* state */
    size_t in_off;
    struct { char *data; size_t len, cap; } out, err;
    size_t out_cap, err_cap;
    int out_truncated;
};

/* Takes ownership of the three fds (set O_NONBLOCK here). */
void sf_iopump_init(struct sf_iopump *p, const struct sf_run_spec *spec,
                    int in_fd, int out_fd, int err_fd);

/* Called when ctl_fd is readable. Return 1 when the process has finished,
 * 0 to keep going, -errno on a broken control channel. */
typedef int (*sf_iopump_ctl_cb)(void *arg);

/* Pump until the ctl callback reports completion (returns 1), the deadline
 * (CLOCK_MONOTONIC ms; <= 0 none) passes (returns 0), or the control channel
 * fails (-errno). */
int sf_iopump_run(struct sf_iopump *p, int ctl_fd, sf_iopump_ctl_cb cb, void *arg,
                  int64_t deadline_ms);

/* Close the fds and move stdout / stderr tail into res. */
void sf_iopump_finish(struct sf_iopump *p, struct sf_run_result *res);

#endif
