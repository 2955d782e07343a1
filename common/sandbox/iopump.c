/* common/sandbox/iopump.c: see iopump.h. A poll(2) loop over at most four fds. */
#include "iopump.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SF_DEFAULT_STDOUT_CAP (16u << 20)
#define SF_DEFAULT_STDERR_TAIL 4096u

static void set_nonblock(int fd)
{
    if (fd < 0) return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

void sf_iopump_init(struct sf_iopump *p, const struct sf_run_spec *spec,
                    int in_fd, int out_fd, int err_fd)
{
    memset(p, 0, sizeof(*p));
    p->spec = spec;
    p->in_fd = in_fd;
    p->out_fd = out_fd;
    p->err_fd = err_fd;
    p->out_cap = spec->stdout_cap ? spec->stdout_cap : SF_DEFAULT_STDOUT_CAP;
    p->err_cap = spec->stderr_tail ? spec->stderr_tail : SF_DEFAULT_STDERR_TAIL;
    set_nonblock(in_fd);
    set_nonblock(out_fd);
    set_nonblock(err_fd);
    if (p->in_fd >= 0 && spec->stdin_len == 0) close_fd(&p->in_fd);
}

static void keep_out(struct sf_iopump *p, const char *d, size_t n)
{
    if (p->out.len + n > p->out_cap) {
        p->out_truncated = 1;
        n = p->out_cap > p->out.len ? p->out_cap - p->out.len : 0;
    }
    if (!n) return;
    if (p->out.len + n + 1 > p->out.cap) {
        size_t cap = p->out.cap ? p->out.cap : 4096;
        while (cap < p->out.len + n + 1) cap *= 2;
        p->out.data = sf_xrealloc(p->out.data, cap);
        p->out.cap = cap;
    }
    memcpy(p->out.data + p->out.len, d, n);
    p->out.len += n;
}

/* Keep only the last err_cap bytes: a buffer of twice that, slid when full. */
static void keep_err(struct sf_iopump *p, const char *d, size_t n)
{
    if (n >= p->err_cap) {
        d += n - p->err_cap;
        n = p->err_cap;
    }
    if (!p->err.data) {
        p->err.cap = 2 * p->err_cap + 1;
        p->err.data = sf_xmalloc(p->err.cap);
    }
    if (p->err.len + n > 2 * p->err_cap) {
        size_t keep = p->err_cap - n;
        if (keep > p->err.len) keep = p->err.len;
        memmove(p->err.data, p->err.data + p->err.len - keep, keep);
        p->err.len = keep;
    }
    memcpy(p->err.data + p->err.len, d, n);
    p->err.len += n;
}

/* Read what is available on *fd; returns 1 at EOF/error (fd closed). */
static int drain(struct sf_iopump *p, int *fd, int is_err)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof(chunk));
        if (n > 0) {
            if (is_err) {
                keep_err(p, chunk, (size_t)n);
                if (p->spec->on_stderr) p->spec->on_stderr(p->spec->cb_arg, chunk, (size_t)n);
            } else {
                keep_out(p, chunk, (size_t)n);
                if (p->spec->on_stdout) p->spec->on_stdout(p->spec->cb_arg, chunk, (size_t)n);
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        close_fd(fd);
        return 1;
    }
}

static void feed(struct sf_iopump *p)
{
    const char *d = p->spec->stdin_data;
    while (p->in_off < p->spec->stdin_len) {
        ssize_t n = write(p->in_fd, d + p->in_off, p->spec->stdin_len - p->in_off);
        if (n > 0) { p->in_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        break;                            /* EPIPE: the agent does not read stdin */
    }
    close_fd(&p->in_fd);
}

int sf_iopump_run(struct sf_iopump *p, int ctl_fd, sf_iopump_ctl_cb cb, void *arg,
                  int64_t deadline_ms)
{
    for (;;) {
        struct pollfd pfd[4];
        int n = 0, i_in = -1, i_out = -1, i_err = -1, i_ctl;
        if (p->in_fd >= 0) { i_in = n; pfd[n++] = (struct pollfd){ p->in_fd, POLLOUT, 0 }; }
        if (p->out_fd >= 0) { i_out = n; pfd[n++] = (struct pollfd){ p->out_fd, POLLIN, 0 }; }
        if (p->err_fd >= 0) { i_err = n; pfd[n++] = (struct pollfd){ p->err_fd, POLLIN, 0 }; }
        i_ctl = n;
        pfd[n++] = (struct pollfd){ ctl_fd, POLLIN, 0 };

        int timeout = -1;
        if (deadline_ms > 0) {
            int64_t left = deadline_ms - sf_now_ms();
            if (left <= 0) return 0;
            timeout = left > 1000000 ? 1000000 : (int)left;
        }
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) continue;             /* deadline is checked at the top */
        if (i_in >= 0 && pfd[i_in].revents) feed(p);
        if (i_out >= 0 && pfd[i_out].revents) drain(p, &p->out_fd, 0);
        if (i_err >= 0 && pfd[i_err].revents) drain(p, &p->err_fd, 1);
        if (pfd[i_ctl].revents) {
            int done = cb(arg);
            if (done < 0) return done;
            if (done) {
                /* The process is gone: whatever it wrote is in the pipes now. */
                if (p->out_fd >= 0) drain(p, &p->out_fd, 0);
                if (p->err_fd >= 0) drain(p, &p->err_fd, 1);
                return 1;
            }
        }
    }
}

void sf_iopump_finish(struct sf_iopump *p, struct sf_run_result *res)
{
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    if (!p->out.data) p->out.data = sf_xcalloc(1, 1);
    p->out.data[p->out.len] = '\0';
    res->out = p->out.data;
    res->out_len = p->out.len;
    res->out_truncated = p->out_truncated != 0;
    if (!p->err.data) {
        p->err.data = sf_xcalloc(1, 1);
    } else if (p->err.len > p->err_cap) {
        memmove(p->err.data, p->err.data + p->err.len - p->err_cap, p->err_cap);
        p->err.len = p->err_cap;
    }
    p->err.data[p->err.len] = '\0';
    res->err_tail = p->err.data;
    res->err_len = p->err.len;
    p->out.data = p->err.data = NULL;
}
