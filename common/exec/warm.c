/* common/exec/warm.c: see warm.h.
 *
 * Design: the pool is a mutex-guarded list of idle agents, most recently
 * used first, and a count of all agents. A task takes an agent out of the
 * list (no lock is held while it runs: one agent serves one task at a
 * time); when none of its key is idle it reserves room for a new one,
 * evicting the least recently used idle agent of another key when the
 * pool is full. The exchange is one poll(2) loop over the agent's stdin,
 * stdout, stderr and the sandbox's wait fd, the way iopump.c runs a cold
 * command, except that stdin stays open and the exchange ends at the first
 * newline on stdout. */
#include "warm.h"
#include "exec.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WARM_DEFAULT_IDLE_MS 60000
#define WARM_DEFAULT_OUTPUT_CAP (16u << 20)
#define WARM_STDERR_TAIL 4096u
#define WARM_EXIT_GRACE_MS 1000         /* after stdout closed, for the exit status */

struct agent {
    struct agent *next;             /* pool's idle list */
    char *run_id, *step;
    struct sf_sandbox *sb;
    struct sf_sandbox_cmd cmd;
    struct sf_buf out;              /* stdout read and not yet answered */
    bool gone;                      /* exited, or out of step: never reused */
    int64_t idle_since;
    /* The secrets in its environment, as they were when it started: what
     * it prints is masked with these (a value rotated since is still the
     * one it holds). Wiped when it stops. */
    struct sf_secret_values sv;
};

struct sf_warm_pool {
    pthread_mutex_t mu;
    struct agent *idle;             /* most recently used first */
    size_t total, max;
    int64_t idle_ms;
};

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void agent_stop(struct agent *a)
{
    if (!a) return;
    close_fd(&a->cmd.in_fd);
    close_fd(&a->cmd.out_fd);
    close_fd(&a->cmd.err_fd);
    sf_sandbox_destroy(a->sb);
    sf_buf_free(&a->out);
    sf_secret_values_clear(&a->sv);
    free(a->run_id);
    free(a->step);
    free(a);
}

struct sf_warm_pool *sf_warm_pool_new(size_t max_agents, int64_t idle_ms)
{
    struct sf_warm_pool *wp = sf_xcalloc(1, sizeof(*wp));
    pthread_mutex_init(&wp->mu, NULL);
    wp->max = max_agents ? max_agents : 1;
    wp->idle_ms = idle_ms > 0 ? idle_ms : WARM_DEFAULT_IDLE_MS;
    return wp;
}

void sf_warm_pool_free(struct sf_warm_pool *wp)
{
    if (!wp) return;
    struct agent *a = wp->idle;
    while (a) {
        struct agent *next = a->next;
        agent_stop(a);
        a = next;
    }
    pthread_mutex_destroy(&wp->mu);
    free(wp);
}

size_t sf_warm_pool_size(struct sf_warm_pool *wp)
{
    pthread_mutex_lock(&wp->mu);
    size_t n = wp->total;
    pthread_mutex_unlock(&wp->mu);
    return n;
}

/* An idle agent of t's key, or NULL with room reserved for a new one (and
 * *victim set to an agent the caller must stop: it made the room). */
static struct agent *pool_take(struct sf_warm_pool *wp, const struct sf_task *t,
                               struct agent **victim)
{
    struct agent **pp, *a = NULL, **lru = NULL;
    *victim = NULL;
    pthread_mutex_lock(&wp->mu);
    for (pp = &wp->idle; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->run_id, t->run_id) && !strcmp((*pp)->step, t->step)) {
            a = *pp;
            *pp = a->next;
            break;
        }
        lru = pp;
    }
    if (!a) {
        if (wp->total >= wp->max && lru) {
            for (pp = lru; (*pp)->next; pp = &(*pp)->next) {}
            *victim = *pp;               /* the last one: least recently used */
            *pp = NULL;
        } else {
            wp->total++;
        }
    }
    pthread_mutex_unlock(&wp->mu);
    if (a) a->next = NULL;
    return a;
}

static void pool_put(struct sf_warm_pool *wp, struct agent *a)
{
    a->idle_since = sf_now_ms();
    pthread_mutex_lock(&wp->mu);
    a->next = wp->idle;
    wp->idle = a;
    pthread_mutex_unlock(&wp->mu);
}

/* Give back a reservation (the agent, if any, is stopped by the caller). */
static void pool_release(struct sf_warm_pool *wp)
{
    pthread_mutex_lock(&wp->mu);
    wp->total--;
    pthread_mutex_unlock(&wp->mu);
}

size_t sf_warm_pool_sweep(struct sf_warm_pool *wp, int64_t now_ms)
{
    struct agent *old = NULL, **pp;
    size_t n = 0;
    pthread_mutex_lock(&wp->mu);
    for (pp = &wp->idle; *pp;) {
        struct agent *a = *pp;
        if (now_ms - a->idle_since < wp->idle_ms) {
            pp = &a->next;
            continue;
        }
        *pp = a->next;
        a->next = old;
        old = a;
        wp->total--;
        n++;
    }
    pthread_mutex_unlock(&wp->mu);
    while (old) {
        struct agent *next = old->next;
        agent_stop(old);
        old = next;
    }
    return n;
}

/* Is an idle agent still fit to serve? Not when it exited, or when it
 * wrote anything since its last answer (out of step with its inputs). */
static bool agent_fit(struct agent *a)
{
    if (a->gone || a->out.len) return false;
    struct pollfd pfd[2] = { { a->cmd.out_fd, POLLIN, 0 }, { a->cmd.wait_fd, POLLIN, 0 } };
    if (a->cmd.out_fd < 0 || poll(pfd, 2, 0) != 0) return false;
    return true;
}

/* A new agent for t in a fresh sandbox. Returns 0 with *out; 1 when the
 * task failed before an agent ran (*res set); -ENOTSUP when the backend
 * cannot keep a command running. */
static int agent_start(struct sf_sandbox_provider *p, const struct sf_task *t,
                       const struct sf_limits *limits, const char *rootfs,
                       const struct sf_exec_cfg *cfg, struct agent **out, struct sf_result **res)
{
    struct agent *a = sf_xcalloc(1, sizeof(*a));
    struct sf_run_result rr = { 0 };
    char err[SF_ERRSTR_LEN], label[300];
    char **env = NULL;
    int rc;

    a->cmd.in_fd = a->cmd.out_fd = a->cmd.err_fd = a->cmd.wait_fd = -1;
    a->run_id = sf_xstrdup(t->run_id);
    a->step = sf_xstrdup(t->step);
    snprintf(label, sizeof(label), "%s:%s (serving)", t->run_id, t->step);
    /* The step's egress rules too: without them a serving agent would get
     * the default policy, wider than what its step asks for. */
    struct sf_sandbox_opts opts = { .network = t->network, .net_policy = t->net_policy,
                                    .limits = *limits, .label = label, .rootfs = rootfs };
    if ((rc = sf_sandbox_create(p, &opts, &a->sb, err, sizeof(err))) < 0) {
        *res = sf_result_for(t, SF_RESULT_CRASHED, cfg->worker, "sandbox: %s", err);
        goto fail;
    }
    if (sf_exec_write_files(a->sb, t, err, sizeof(err)) < 0) {
        *res = sf_result_for(t, SF_RESULT_ERROR, cfg->worker, "%s", err);
        goto fail;
    }
    /* cpu_s would count every input the agent serves: timeout_s bounds each. */
    struct sf_limits lim = *limits;
    lim.cpu_s = 0;
    /* The agent's secrets (sf_exec_task checked they resolve). */
    if (sf_secrets_resolve(cfg->secrets, t->secrets, &a->sv, NULL, err, sizeof(err)) < 0) {
        *res = sf_result_for(t, SF_RESULT_ERROR, cfg->worker, "%s", err);
        goto fail;
    }
    env = sf_exec_env(t, false, &a->sv);
    struct sf_run_spec spec = { .cmd = t->run, .cwd = "/workspace",
                                .env = (const char *const *)env, .limits = &lim };
    rc = sf_sandbox_start(a->sb, &spec, &a->cmd, &rr);
    sf_exec_env_free(env);
    if (rc == -ENOTSUP) {
        agent_stop(a);
        return -ENOTSUP;
    }
    if (rc == 1) {
        *res = sf_result_for(t, SF_RESULT_ERROR, cfg->worker, "%s",
                             rr.error[0] ? rr.error : "cannot start the command");
        (*res)->exit_code = rr.exit_code;
        goto fail;
    }
    if (rc < 0) {
        *res = sf_result_for(t, SF_RESULT_CRASHED, cfg->worker, "sandbox: %s", a->sb->errstr);
        goto fail;
    }
    sf_run_result_clear(&rr);
    *out = a;
    return 0;
fail:
    sf_run_result_clear(&rr);
    agent_stop(a);
    return 1;
}

/* Keep the last WARM_STDERR_TAIL bytes of stderr in 'tail'. */
static void keep_tail(struct sf_buf *tail, const char *d, size_t n)
{
    if (n >= WARM_STDERR_TAIL) {
        tail->len = 0;
        d += n - WARM_STDERR_TAIL;
        n = WARM_STDERR_TAIL;
    } else if (tail->len + n > WARM_STDERR_TAIL) {
        size_t drop = tail->len + n - WARM_STDERR_TAIL;
        memmove(tail->data, tail->data + drop, tail->len - drop);
        tail->len -= drop;
    }
    sf_buf_append(tail, d, n);
}

/* Read what fd has into 'into' (stdout) or the tail (stderr). false at EOF
 * or error: the fd is closed. */
static bool drain(int *fd, struct sf_buf *into, bool is_err, const struct sf_exec_cfg *cfg)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof(chunk));
        if (n > 0) {
            if (is_err) {
                keep_tail(into, chunk, (size_t)n);
                if (cfg->on_stderr) cfg->on_stderr(cfg->cb_arg, chunk, (size_t)n);
            } else {
                sf_buf_append(into, chunk, (size_t)n);
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return true;
        close_fd(fd);
        return false;
    }
}

enum exchange_end { EX_LINE, EX_TIMEOUT, EX_EXITED, EX_CLOSED, EX_TOO_LONG, EX_BROKEN };

struct exchange {
    const char *in;                 /* the input line */
    size_t in_len, in_off;
    size_t cap;
    int64_t deadline;               /* 0: none */
    struct sf_buf err;              /* this task's stderr tail */
    struct sf_run_result rr;        /* EX_EXITED: how it ended */
};

/* Feed the input line and wait for the answer line (in a->out). */
static enum exchange_end exchange(struct agent *a, struct exchange *x,
                                  const struct sf_exec_cfg *cfg)
{
    struct sf_sandbox_cmd *c = &a->cmd;
    int64_t closed_at = 0;
    for (;;) {
        char *nl = a->out.len ? memchr(a->out.data, '\n', a->out.len) : NULL;
        if (nl) return (size_t)(nl - a->out.data) > x->cap ? EX_TOO_LONG : EX_LINE;
        if (a->out.len > x->cap) return EX_TOO_LONG;
        /* stdout closed: no line can come; the exit that usually follows
         * says more than "closed", so wait a moment for it. */
        int64_t now = sf_now_ms();
        if (c->out_fd < 0 && !closed_at) closed_at = now;
        if (closed_at && now - closed_at >= WARM_EXIT_GRACE_MS) {
            a->gone = true;
            return EX_CLOSED;
        }
        struct pollfd pfd[4];
        int n = 0, i_in = -1, i_out = -1, i_err = -1, i_wait;
        if (c->in_fd >= 0 && x->in_off < x->in_len) {
            i_in = n;
            pfd[n++] = (struct pollfd){ c->in_fd, POLLOUT, 0 };
        }
        if (c->out_fd >= 0) { i_out = n; pfd[n++] = (struct pollfd){ c->out_fd, POLLIN, 0 }; }
        if (c->err_fd >= 0) { i_err = n; pfd[n++] = (struct pollfd){ c->err_fd, POLLIN, 0 }; }
        i_wait = n;
        pfd[n++] = (struct pollfd){ c->wait_fd, POLLIN, 0 };
        int64_t until = closed_at ? closed_at + WARM_EXIT_GRACE_MS : 0;
        if (x->deadline > 0 && (!until || x->deadline < until)) until = x->deadline;
        int timeout = -1;
        if (until) {
            int64_t left = until - now;
            if (left <= 0 && until == x->deadline) return EX_TIMEOUT;
            timeout = left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
        }
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR) return EX_BROKEN;
        if (r <= 0) continue;
        if (i_in >= 0 && pfd[i_in].revents) {
            ssize_t w = write(c->in_fd, x->in + x->in_off, x->in_len - x->in_off);
            if (w > 0) x->in_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) close_fd(&c->in_fd);
        }
        if (i_out >= 0 && pfd[i_out].revents) drain(&c->out_fd, &a->out, false, cfg);
        if (i_err >= 0 && pfd[i_err].revents) drain(&c->err_fd, &x->err, true, cfg);
        if (pfd[i_wait].revents) {
            int rc = sf_sandbox_reap(a->sb, c, &x->rr);
            if (rc < 0) return EX_BROKEN;
            if (rc == 0) continue;
            /* Gone: what it wrote before it went is in the pipes now. */
            a->gone = true;
            if (c->out_fd >= 0) drain(&c->out_fd, &a->out, false, cfg);
            if (c->err_fd >= 0) drain(&c->err_fd, &x->err, true, cfg);
            nl = a->out.len ? memchr(a->out.data, '\n', a->out.len) : NULL;
            if (nl) return (size_t)(nl - a->out.data) > x->cap ? EX_TOO_LONG : EX_LINE;
            return EX_EXITED;
        }
    }
}

/* The task's result from how the exchange ended; false when the agent must
 * not serve again. */
static bool answer(struct agent *a, struct exchange *x, enum exchange_end end, double timeout_s,
                   const struct sf_task *t, const struct sf_exec_cfg *cfg, struct sf_result **out)
{
    char err[SF_ERRSTR_LEN];
    struct sf_result *r = sf_result_for(t, SF_RESULT_OK, cfg->worker, NULL);
    bool keep = false;
    switch (end) {
    case EX_LINE: {
        char *nl = memchr(a->out.data, '\n', a->out.len);
        size_t len = (size_t)(nl - a->out.data);
        r->exit_code = 0;
        /* With its newline, as a cold run would parse it (same messages). */
        r->output = sf_exec_parse_output(a->out.data, len + 1, &a->sv, err, sizeof(err));
        if (!r->output) {
            r->status = SF_RESULT_ERROR;
            r->error = sf_xstrdup(err);
        }
        /* Anything after the line is not an answer to anything: the agent
         * is out of step and is replaced before it serves again. */
        size_t rest = a->out.len - len - 1;
        memmove(a->out.data, nl + 1, rest);
        a->out.len = rest;
        keep = r->output && !a->gone;
        break;
    }
    case EX_TOO_LONG:
        r->status = SF_RESULT_ERROR;
        r->error = sf_xasprintf("output is larger than the cap of %zu bytes", x->cap);
        break;
    case EX_TIMEOUT:
        r->status = SF_RESULT_TIMEOUT;
        r->exit_code = 128 + SIGKILL;
        r->error = sf_xasprintf("timed out after %gs", timeout_s);
        break;
    case EX_CLOSED:
        r->status = SF_RESULT_ERROR;
        r->error = sf_xstrdup("the agent closed its stdout without answering");
        break;
    case EX_EXITED:
        r->exit_code = x->rr.exit_code;
        if (x->rr.status == SF_RUN_EXITED) {
            r->status = SF_RESULT_ERROR;
            r->error = sf_xasprintf("the agent exited with code %d without answering (a serving "
                                    "agent reads one JSON line per input and writes one line "
                                    "back)", x->rr.exit_code);
        } else {
            r->status = SF_RESULT_CRASHED;
            r->error = sf_xstrdup(x->rr.error[0] ? x->rr.error : "killed");
        }
        break;
    case EX_BROKEN:
        r->status = SF_RESULT_CRASHED;
        r->error = sf_xasprintf("sandbox: %s", a->sb->errstr[0] ? a->sb->errstr : "broken");
        break;
    }
    free(r->stderr_tail);
    r->stderr_tail = sf_xstrndup(x->err.data ? x->err.data : "", x->err.len);
    sf_exec_mask_result(&a->sv, r);
    *out = r;
    return keep;
}

struct sf_result *sf_warm_exec(struct sf_warm_pool *wp, struct sf_sandbox_provider *p,
                               const struct sf_task *t, const struct sf_limits *limits,
                               const char *rootfs, double timeout_s, const struct sf_exec_cfg *cfg,
                               int64_t *create_ms)
{
    struct agent *victim, *a = pool_take(wp, t, &victim);
    struct sf_result *r = NULL;
    if (create_ms) *create_ms = -1;
    if (victim) agent_stop(victim);      /* its room is ours now */
    if (a && !agent_fit(a)) {
        agent_stop(a);                   /* keep its room for the new one */
        a = NULL;
    }
    if (!a) {
        int64_t c0 = sf_now_ms();
        int rc = agent_start(p, t, limits, rootfs, cfg, &a, &r);
        if (create_ms) *create_ms = sf_now_ms() - c0;
        if (rc != 0) {
            pool_release(wp);
            return rc == -ENOTSUP ? NULL : r;
        }
    }
    char *input = json_dumps(t->input ? t->input : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!input) abort();
    /* Compact JSON has no raw newline: one value is exactly one line. */
    struct exchange x = { .in = NULL, .cap = cfg->output_cap ? cfg->output_cap : WARM_DEFAULT_OUTPUT_CAP };
    struct sf_buf line = { 0 };
    sf_buf_append(&line, input, strlen(input));
    sf_buf_append(&line, "\n", 1);
    free(input);
    x.in = line.data;
    x.in_len = line.len;
    x.deadline = timeout_s > 0 ? sf_now_ms() + (int64_t)(timeout_s * 1000.0 + 0.5) : 0;
    enum exchange_end end = exchange(a, &x, cfg);
    bool keep = answer(a, &x, end, timeout_s, t, cfg, &r);
    sf_buf_free(&line);
    sf_buf_free(&x.err);
    sf_run_result_clear(&x.rr);
    if (keep) {
        pool_put(wp, a);
    } else {
        agent_stop(a);
        pool_release(wp);
    }
    return r;
}
