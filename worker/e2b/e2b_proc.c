/* worker/e2b/e2b_proc.c: see e2b_proc.h. Events arrive on the sandbox's
 * process-host thread (sandbox_proc.h) and are encoded once into the process
 * log; streams copy from it at their own pace. */
#include "e2b_proc.h"
#include "e2b_connect.h"
#include "util.h"

#include <errno.h>
#include "lazy_mhd.h"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_TRIM_BYTES (64u << 10)
/* Output a process may have waiting for its slowest stream: beyond, the
 * process host stops reading it (the process blocks on its full pipe, as
 * under envd) until the streams are down to half of it. Without a bound a
 * background command whose handle is never waited on (the SDK reads its
 * stream only then) grew the worker by all it printed. */
#define PROC_HOLD_BYTES (1u << 20)

struct e2b_stream;

struct e2b_proc {
    struct e2b_sbx *s;           /* borrowed: the sandbox outlives its processes' events */
    int refs;                    /* atomic */
    json_t *config;              /* ProcessConfig; read-only */
    char *tag;
    bool pty;                    /* runs on a terminal; stdin_fd is it */
    pthread_mutex_t mu;          /* everything below */
    pthread_cond_t cv;
    int pid;
    int stdin_fd;                /* -1: none or closed */
    struct sf_buf log;           /* encoded events from absolute offset 'base' */
    uint64_t base;
    bool ended;
    bool held;                   /* the host holds its output (sf_proc_cb) */
    struct e2b_stream **subs;
    size_t nsubs, cap;
    bool first_sub_pending;      /* the Start stream has not attached yet */
};

struct e2b_stream {
    struct e2b_registry *r;
    struct e2b_sbx *s;
    struct e2b_proc *p;
    uint64_t pos;                /* absolute position in p->log */
    struct sf_buf pend;          /* our own frames: start, keepalive, trailer */
    size_t pend_off;
    int keepalive_ms;
    int64_t deadline_ms, last_ms;
    bool kill_at_deadline, deadline_hit, trailer_done;
};

/* ---- references ------------------------------------------------------------- */

int e2b_proc_pid(const struct e2b_proc *p)
{
    return __atomic_load_n(&p->pid, __ATOMIC_RELAXED);
}

static void e2b_proc_ref(struct e2b_proc *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
}

void e2b_proc_put(struct e2b_proc *p)
{
    if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL)) return;
    if (p->stdin_fd >= 0) close(p->stdin_fd);
    json_decref(p->config);
    free(p->tag);
    sf_buf_free(&p->log);
    free(p->subs);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- events from the sandbox (process-host thread) ------------------------ */

static const char *e2b_signame(int sig)
{
    switch (sig) {
    case SIGKILL: return "killed";
    case SIGTERM: return "terminated";
    case SIGINT: return "interrupt";
    case SIGABRT: return "aborted";
    case SIGSEGV: return "segmentation fault";
    case SIGHUP: return "hangup";
    case SIGPIPE: return "broken pipe";
    case SIGXCPU: return "CPU time limit exceeded";
    default: return "signaled";
    }
}

/* Where the slowest stream is in the log (caller holds mu); the log's
 * start while the Start stream has not attached yet. */
static uint64_t e2b_proc_slowest(const struct e2b_proc *p)
{
    uint64_t min = p->base + p->log.len;
    if (p->first_sub_pending) return p->base;
    for (size_t i = 0; i < p->nsubs; i++)
        if (p->subs[i]->pos < min) min = p->subs[i]->pos;
    return min;
}

/* Drop log bytes every stream has read (caller holds mu). True when the
 * process's output was held and is now down to half the bound: the caller
 * resumes it (e2b_proc_resume, without mu). */
static bool e2b_proc_trim(struct e2b_proc *p)
{
    size_t drop = (size_t)(e2b_proc_slowest(p) - p->base);
    if (drop && (drop >= PROC_TRIM_BYTES || drop == p->log.len)) {
        memmove(p->log.data, p->log.data + drop, p->log.len - drop);
        p->log.len -= drop;
        if (p->log.data) p->log.data[p->log.len] = '\0';
        p->base += drop;
    }
    uint64_t unread = p->base + p->log.len - e2b_proc_slowest(p);
    if (p->held && unread <= PROC_HOLD_BYTES / 2) {
        p->held = false;
        return true;
    }
    return false;
}

/* Let the host read a held process again. */
static void e2b_proc_resume(struct e2b_sbx *s, struct e2b_proc *p)
{
    pthread_mutex_lock(&s->mu);
    if (s->ph) sf_proc_resume(s->ph, e2b_proc_pid(p));
    pthread_mutex_unlock(&s->mu);
}

static bool e2b_proc_event(void *arg, const struct sf_proc_event *ev)
{
    struct e2b_proc *p = arg;
    bool hold = false;
    pthread_mutex_lock(&p->mu);
    if (ev->kind != SF_PROC_EXIT) {
        sf_e2b_put_data(&p->log, ev->kind == SF_PROC_STDOUT ? SF_E2B_STDOUT
                                 : ev->kind == SF_PROC_STDERR ? SF_E2B_STDERR : SF_E2B_PTY,
                        ev->data, ev->len);
    } else {
        char status[64], *error = NULL;
        int st = ev->wait_status;
        if (!ev->sandbox_died && WIFEXITED(st)) {
            snprintf(status, sizeof(status), "exit status %d", WEXITSTATUS(st));
            sf_e2b_put_end(&p->log, WEXITSTATUS(st), true, status, WEXITSTATUS(st) ? status : NULL);
        } else {
            int sig = ev->sandbox_died ? SIGKILL : WTERMSIG(st);
            snprintf(status, sizeof(status), "signal: %s", e2b_signame(sig));
            error = status;
            sf_e2b_put_end(&p->log, -1, false, status, error);
        }
        p->ended = true;
        if (p->stdin_fd >= 0) close(p->stdin_fd);
        p->stdin_fd = -1;
    }
    /* (On the host's thread: it reads no held process, so held is false
     * here but for the last drain of an exit.) */
    e2b_proc_trim(p);
    if (!p->ended) hold = p->held = p->base + p->log.len - e2b_proc_slowest(p) > PROC_HOLD_BYTES;
    pthread_cond_broadcast(&p->cv);
    bool ended = p->ended && ev->kind == SF_PROC_EXIT;
    pthread_mutex_unlock(&p->mu);
    if (ended) {
        e2b_sbx_remove_proc(p->s, p);
        e2b_proc_put(p);                      /* the sandbox table's reference */
    }
    return hold;
}

/* ---- start / find ----------------------------------------------------------- */

int e2b_proc_start(struct e2b_sbx *s, const struct e2b_proc_start *st, struct e2b_proc **out,
                   char *err, size_t errlen)
{
    struct e2b_proc *p = sf_xcalloc(1, sizeof(*p));
    int fd = -1, pid;
    p->s = s;
    p->refs = 2;                              /* the caller's and the sandbox table's */
    p->config = json_deep_copy(st->config);
    p->tag = st->tag ? sf_xstrdup(st->tag) : NULL;
    p->pty = st->pty_rows && st->pty_cols;
    p->stdin_fd = -1;
    p->first_sub_pending = true;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = NULL;

    /* In the table before it can produce events, so the exit removes it. */
    e2b_sbx_add_proc(s, p);
    struct sf_proc_spec spec = { .cmd = st->sh_cmd, .cwd = st->cwd, .env = st->env,
                                 .stdin_pipe = st->stdin_pipe, .uid = st->uid,
                                 .pty_rows = st->pty_rows, .pty_cols = st->pty_cols,
                                 .cb = e2b_proc_event, .arg = p };
    pthread_mutex_lock(&s->mu);
    if (!s->ph) {
        sf_errf(err, errlen, "the sandbox was killed");
        pid = -ESRCH;
    } else {
        pid = sf_proc_spawn(s->ph, &spec, st->stdin_pipe || p->pty ? &fd : NULL, err, errlen);
    }
    pthread_mutex_unlock(&s->mu);
    if (pid < 0) {
        e2b_sbx_remove_proc(s, p);
        p->refs = 1;
        e2b_proc_put(p);
        return pid;
    }
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->pid, pid, __ATOMIC_RELAXED);
    if (p->ended) {
        if (fd >= 0) close(fd);
    } else {
        p->stdin_fd = fd;
    }
    pthread_mutex_unlock(&p->mu);
    *out = p;
    return 0;
}

struct e2b_proc *e2b_proc_find(struct e2b_sbx *s, int pid, const char *tag)
{
    struct e2b_proc *found = NULL;
    pthread_mutex_lock(&s->plock);
    for (size_t i = 0; i < s->nprocs && !found; i++) {
        struct e2b_proc *p = s->procs[i];
        if ((pid > 0 && e2b_proc_pid(p) == pid) || (tag && p->tag && !strcmp(tag, p->tag))) {
            found = p;
            e2b_proc_ref(p);
        }
    }
    pthread_mutex_unlock(&s->plock);
    return found;
}

int e2b_proc_write_stdin(struct e2b_proc *p, const void *data, size_t len)
{
    const char *b = data;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    while (len && rc == 0) {
        if (p->stdin_fd < 0) {
            rc = p->ended ? -ESRCH : -EPIPE;
            break;
        }
        ssize_t n = write(p->stdin_fd, b, len);
        if (n > 0) {
            b += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            /* The process is not reading yet: wait a little, without
             * holding up the event thread. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        } else if (n < 0 && errno != EINTR) {
            rc = -EPIPE;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int e2b_proc_close_stdin(struct e2b_proc *p)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->stdin_fd >= 0) close(p->stdin_fd);
    else if (p->ended) rc = -ESRCH;
    p->stdin_fd = -1;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

bool e2b_proc_is_pty(const struct e2b_proc *p)
{
    return p->pty;
}

int e2b_proc_resize(struct e2b_sbx *s, struct e2b_proc *p, uint16_t rows, uint16_t cols)
{
    int rc = -ESRCH;
    pthread_mutex_lock(&s->mu);
    if (s->ph) rc = sf_proc_resize(s->ph, e2b_proc_pid(p), rows, cols);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int e2b_proc_signal(struct e2b_sbx *s, struct e2b_proc *p, int sig)
{
    int rc = -ESRCH;
    pthread_mutex_lock(&s->mu);
    if (s->ph) rc = sf_proc_signal(s->ph, e2b_proc_pid(p), sig);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

json_t *e2b_proc_info(struct e2b_proc *p)
{
    json_t *j = json_pack("{s:O,s:i}", "config", p->config, "pid", e2b_proc_pid(p));
    if (p->tag) json_object_set_new(j, "tag", json_string(p->tag));
    return j;
}

/* ---- streams ---------------------------------------------------------------- */

static ssize_t e2b_stream_copy_pend(struct e2b_stream *st, char *buf, size_t max)
{
    size_t n = st->pend.len - st->pend_off;
    if (n > max) n = max;
    memcpy(buf, st->pend.data + st->pend_off, n);
    st->pend_off += n;
    if (st->pend_off == st->pend.len) st->pend.len = st->pend_off = 0;
    return (ssize_t)n;
}

static void e2b_abs_deadline(struct timespec *ts, int64_t wait_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(wait_ms / 1000);
    ts->tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

static ssize_t e2b_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct e2b_stream *st = cls;
    struct e2b_proc *p = st->p;
    (void)pos;
    if (st->pend.len) return e2b_stream_copy_pend(st, buf, max);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        uint64_t end = p->base + p->log.len;
        if (st->pos < end) {
            size_t n = (size_t)(end - st->pos) < max ? (size_t)(end - st->pos) : max;
            memcpy(buf, p->log.data + (st->pos - p->base), n);
            st->pos += n;
            st->last_ms = sf_now_ms();
            bool resume = e2b_proc_trim(p);
            pthread_mutex_unlock(&p->mu);
            if (resume) e2b_proc_resume(st->s, p);
            return (ssize_t)n;
        }
        if (p->ended) {
            pthread_mutex_unlock(&p->mu);
            if (st->trailer_done) return MHD_CONTENT_READER_END_OF_STREAM;
            st->trailer_done = true;
            if (st->deadline_hit) sf_e2b_put_trailer(&st->pend, "deadline_exceeded", "context deadline exceeded");
            else sf_e2b_put_trailer(&st->pend, NULL, NULL);
            return e2b_stream_copy_pend(st, buf, max);
        }
        int64_t now = sf_now_ms();
        if (st->deadline_ms > 0 && now >= st->deadline_ms && !st->deadline_hit) {
            st->deadline_hit = true;
            pthread_mutex_unlock(&p->mu);
            if (st->kill_at_deadline) {
                e2b_proc_signal(st->s, p, SIGKILL);
                pthread_mutex_lock(&p->mu);
                continue;                           /* the end event follows */
            }
            sf_e2b_put_trailer(&st->pend, "deadline_exceeded", "context deadline exceeded");
            st->trailer_done = true;
            return e2b_stream_copy_pend(st, buf, max);
        }
        if (now - st->last_ms >= st->keepalive_ms) {
            pthread_mutex_unlock(&p->mu);
            st->last_ms = now;
            sf_e2b_put_keepalive(&st->pend);
            return e2b_stream_copy_pend(st, buf, max);
        }
        int64_t wait = st->last_ms + st->keepalive_ms - now;
        if (st->deadline_ms > 0 && !st->deadline_hit && st->deadline_ms - now < wait)
            wait = st->deadline_ms - now;
        struct timespec ts;
        e2b_abs_deadline(&ts, wait > 0 ? wait : 1);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
}

static void e2b_stream_free(void *cls)
{
    struct e2b_stream *st = cls;
    struct e2b_proc *p = st->p;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nsubs; i++)
        if (p->subs[i] == st) {
            p->subs[i] = p->subs[--p->nsubs];
            break;
        }
    bool resume = e2b_proc_trim(p);
    pthread_mutex_unlock(&p->mu);
    if (resume) e2b_proc_resume(st->s, p);
    sf_buf_free(&st->pend);
    e2b_proc_put(p);
    e2b_registry_put(st->r, st->s);
    free(st);
}

struct MHD_Response *e2b_proc_stream(struct e2b_registry *r, struct e2b_sbx *s,
                                     struct e2b_proc *p, bool from_start, int keepalive_s,
                                     int64_t deadline_ms, bool kill_at_deadline)
{
    struct e2b_stream *st = sf_xcalloc(1, sizeof(*st));
    st->r = r;
    st->s = s;
    e2b_registry_ref(r, s);
    st->p = p;
    e2b_proc_ref(p);
    st->keepalive_ms = (keepalive_s > 0 ? keepalive_s : 90) * 1000;
    st->deadline_ms = deadline_ms;
    st->kill_at_deadline = kill_at_deadline;
    st->last_ms = sf_now_ms();
    sf_e2b_put_start(&st->pend, (uint32_t)e2b_proc_pid(p));
    pthread_mutex_lock(&p->mu);
    st->pos = from_start ? p->base : p->base + p->log.len;
    if (p->nsubs == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->subs = sf_xrealloc(p->subs, p->cap * sizeof(*p->subs));
    }
    p->subs[p->nsubs++] = st;
    if (from_start) p->first_sub_pending = false;
    pthread_mutex_unlock(&p->mu);
    return sf_mhd_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, e2b_stream_read, st,
                                             e2b_stream_free);
}
