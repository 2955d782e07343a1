/* worker/e2b/e2b_registry.c: see e2b_registry.h. The table is a small array:
 * a worker serves tens to hundreds of sandboxes, and every lookup is one
 * pass under one mutex. The reaper sleeps until the earliest end time (or a
 * second at most) on a condition variable that create/timeout/free signal. */
#include "e2b_registry.h"
#include "e2b_network.h"
#include "e2b_proc.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct e2b_registry {
    struct sf_sandbox_provider *prov;
    const struct sf_log *lg;
    int max;
    int max_paused;                  /* paused ones kept at once: they hold their memory and
                                        have no timeout, so they need a bound of their own */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct e2b_sbx **v;              /* live sandboxes, oldest first */
    size_t n, cap;
    int creating;                    /* creates in progress, counted against max */
    int watches;                     /* directory watches open (e2b_fs.c) */
    bool stop, draining;
    void (*observe)(void *arg, const char *id);   /* fleet hook, or NULL */
    void *observe_arg;
    pthread_t reaper;
};

/* ---- ids -------------------------------------------------------------------- */

/* "i" + 20 of [a-z0-9], as E2B's API server makes them. */
static void e2b_new_id(char *dst, size_t size)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char hex[41];
    sf_random_hex(hex, sizeof(hex), 40);
    dst[0] = 'i';
    for (size_t i = 0; i < 20 && i + 2 < size; i++) {
        unsigned v = (unsigned)strtoul((char[]){ hex[2 * i], hex[2 * i + 1], 0 }, NULL, 16);
        dst[i + 1] = alphabet[v % 36];
        dst[i + 2] = '\0';
    }
}

/* ---- lifetime --------------------------------------------------------------- */

static void e2b_sbx_free(struct e2b_registry *r, struct e2b_sbx *s)
{
    e2b_fs_watchers_free(r, s);
    sf_sandbox_destroy(s->sb);
    json_decref(s->metadata);
    json_decref(s->env_vars);
    free(s->procs);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->plock);
    pthread_mutex_destroy(&s->wlock);
    free(s);
}

void e2b_registry_put(struct e2b_registry *r, struct e2b_sbx *s)
{
    if (!s) return;
    pthread_mutex_lock(&r->mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) e2b_sbx_free(r, s);
}

/* Stop everything in s now; the registry has already dropped it. */
static void e2b_sbx_kill(struct e2b_sbx *s)
{
    pthread_mutex_lock(&s->mu);
    s->killed = true;
    /* A task frozen by the v1 freezer dies only once thawed. */
    sf_sandbox_freeze(s->sb, false);
    struct sf_proc_host *ph = s->ph;
    s->ph = NULL;
    if (ph) {
        /* pids copied first: signalling takes the host's lock, which
         * process callbacks hold while they take plock. */
        pthread_mutex_lock(&s->plock);
        size_t n = s->nprocs;
        int *pids = sf_xcalloc(n ? n : 1, sizeof(int));
        for (size_t i = 0; i < n; i++) pids[i] = e2b_proc_pid(s->procs[i]);
        pthread_mutex_unlock(&s->plock);
        for (size_t i = 0; i < n; i++) sf_proc_signal(ph, pids[i], SIGKILL);
        free(pids);
        /* Ends every process with sandbox_died: open streams finish. */
        sf_proc_host_free(ph);
    }
    /* Everything else too (a daemon started in the background): requests
     * still holding the sandbox (a download being read) must not keep it
     * running; it is freed when the last of them ends. */
    sf_sandbox_kill(s->sb);
    pthread_mutex_unlock(&s->mu);
}

static struct e2b_sbx *e2b_take(struct e2b_registry *r, size_t i)
{
    struct e2b_sbx *s = r->v[i];
    memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(*r->v));
    r->n--;
    return s;
}

int e2b_registry_kill(struct e2b_registry *r, const char *id)
{
    struct e2b_sbx *s = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i]->id, id)) {
            s = e2b_take(r, i);
            break;
        }
    pthread_mutex_unlock(&r->mu);
    if (!s) return -ENOENT;
    e2b_sbx_kill(s);
    SF_LOGI(r->lg, "e2b: sandbox %s killed", s->id);
    if (r->observe) r->observe(r->observe_arg, s->id);
    e2b_registry_put(r, s);
    return 0;
}

static void *e2b_reaper(void *arg)
{
    struct e2b_registry *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        int64_t now = sf_wall_ms(), next = now + 1000;
        struct e2b_sbx *expired = NULL;
        for (size_t i = 0; i < r->n; i++) {
            if (r->v[i]->paused) continue;           /* its timeout stopped */
            int64_t end = __atomic_load_n(&r->v[i]->end_wall_ms, __ATOMIC_RELAXED);
            if (end <= now) {
                expired = e2b_take(r, i);
                break;
            }
            if (end < next) next = end;
        }
        if (expired) {
            pthread_mutex_unlock(&r->mu);
            e2b_sbx_kill(expired);
            SF_LOGI(r->lg, "e2b: sandbox %s reached its timeout and was killed", expired->id);
            if (r->observe) r->observe(r->observe_arg, expired->id);
            e2b_registry_put(r, expired);
            pthread_mutex_lock(&r->mu);
            continue;
        }
        struct timespec ts = { (time_t)(next / 1000), (long)(next % 1000) * 1000000L };
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct e2b_registry *e2b_registry_new(struct sf_sandbox_provider *prov, int max, int max_paused,
                                      const struct sf_log *lg)
{
    struct e2b_registry *r = sf_xcalloc(1, sizeof(*r));
    r->prov = prov;
    r->lg = lg;
    r->max = max > 0 ? max : 64;
    r->max_paused = max_paused > 0 ? max_paused : r->max;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->reaper, NULL, e2b_reaper, r)) {
        free(r);
        return NULL;
    }
    return r;
}

void e2b_registry_kill_all(struct e2b_registry *r)
{
    pthread_mutex_lock(&r->mu);
    bool joined = r->stop;
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (!joined) pthread_join(r->reaper, NULL);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        struct e2b_sbx *s = r->n ? e2b_take(r, r->n - 1) : NULL;
        pthread_mutex_unlock(&r->mu);
        if (!s) break;
        e2b_sbx_kill(s);
        if (r->observe) r->observe(r->observe_arg, s->id);
        e2b_registry_put(r, s);
    }
}

void e2b_registry_free(struct e2b_registry *r)
{
    if (!r) return;
    e2b_registry_kill_all(r);
    free(r->v);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- create / lookup -------------------------------------------------------- */

/* Sandboxes counted against the cap: the paused ones are not (mu held). */
static int e2b_running(const struct e2b_registry *r)
{
    int n = 0;
    for (size_t i = 0; i < r->n; i++) n += !r->v[i]->paused;
    return n;
}

static int e2b_set_end(struct e2b_registry *r, const char *id, int timeout_s, bool extend_only);

int e2b_registry_create(struct e2b_registry *r, const struct e2b_create *c, struct e2b_sbx **out,
                        char *err, size_t errlen)
{
    struct e2b_sbx *s;
    int rc;
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->stop || r->draining) {
        pthread_mutex_unlock(&r->mu);
        sf_errf(err, errlen, r->stop ? "the server is shutting down"
                                     : "this worker is draining: it takes no new sandboxes");
        return -ESHUTDOWN;
    }
    if (e2b_running(r) + r->creating >= r->max) {
        pthread_mutex_unlock(&r->mu);
        sf_errf(err, errlen, "you have reached the maximum number of concurrent E2B sandboxes "
                "(%d). If you need more, start the worker with a higher --e2b-max-sandboxes", r->max);
        return -EAGAIN;
    }
    r->creating++;
    pthread_mutex_unlock(&r->mu);

    s = sf_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->plock, NULL);
    pthread_mutex_init(&s->wlock, NULL);
    e2b_new_id(s->id, sizeof(s->id));
    s->timeout_s = c->timeout_s;
    s->network = c->network;
    sf_strlcpy(s->template_id, c->template_id, sizeof(s->template_id));
    if (c->secure) sf_random_hex(s->token, sizeof(s->token), 40);
    s->metadata = c->metadata ? json_deep_copy(c->metadata) : json_object();
    s->env_vars = c->env_vars ? json_deep_copy(c->env_vars) : json_object();
    s->started_wall_ms = sf_wall_ms();
    s->end_wall_ms = s->started_wall_ms + (int64_t)c->timeout_s * 1000;
    s->refs = 2;                                  /* the table's and the caller's */
    /* Always an egress namespace, so that update_network can open what
     * allow_internet_access false closed; without egress on this worker, a
     * sandbox that asked for no internet gets a plain one (e2b_network.h). */
    /* It trusts the egress CA from the start: update_network may add rules. */
    struct sf_sandbox_opts opts = { .network = true, .net_policy = c->net ? c->net->policy : NULL,
                                    .inject = c->net ? c->net->inject : NULL, .egress_ca = true,
                                    .limits = c->limits, .label = s->id, .rootfs = c->rootfs };
    if (c->net) e2b_network_init_sbx(s, c->net);
    rc = sf_sandbox_create(r->prov, &opts, &s->sb, err, errlen);
    if (rc == -EPERM && !c->network) {
        opts.network = false;
        rc = sf_sandbox_create(r->prov, &opts, &s->sb, err, errlen);
    }
    if (rc < 0 ||
        (rc = sf_proc_host_new(s->sb, &s->ph, err, errlen)) < 0) {
        pthread_mutex_lock(&r->mu);
        r->creating--;
        pthread_mutex_unlock(&r->mu);
        e2b_sbx_free(r, s);
        return rc;
    }
    /* Its get_host URLs work from other sandboxes as from outside. */
    if (c->domain) {
        char name[256];
        snprintf(name, sizeof(name), "%s.%s", s->id, c->domain);
        sf_sandbox_set_ingress(s->sb, name, s->traffic_token[0] ? s->traffic_token : NULL);
    }
    struct sf_sandbox_stats st = { 0 };
    if (sf_sandbox_stats(s->sb, &st) == 0) {
        s->memory_mb = (int)(st.mem_limit_bytes >> 20);
        s->disk_mb = (int)(st.disk_limit_bytes >> 20);
        s->cpus = st.cpus;
    }
    pthread_mutex_lock(&r->mu);
    r->creating--;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = sf_xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = s;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    SF_LOGI(r->lg, "e2b: sandbox %s created (template %s, timeout %ds, local %s)", s->id,
            s->template_id, c->timeout_s, s->sb->id);
    if (r->observe) r->observe(r->observe_arg, s->id);
    *out = s;
    return 0;
}

struct e2b_sbx *e2b_registry_get(struct e2b_registry *r, const char *id)
{
    struct e2b_sbx *s = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i]->id, id)) {
            s = r->v[i];
            s->refs++;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return s;
}

void e2b_registry_ref(struct e2b_registry *r, struct e2b_sbx *s)
{
    pthread_mutex_lock(&r->mu);
    s->refs++;
    pthread_mutex_unlock(&r->mu);
}

int e2b_registry_set_timeout(struct e2b_registry *r, const char *id, int timeout_s,
                             bool extend_only)
{
    int rc = e2b_set_end(r, id, timeout_s, extend_only);
    if (rc == 0 && r->observe) r->observe(r->observe_arg, id);
    return rc;
}

void e2b_registry_observe(struct e2b_registry *r, void (*fn)(void *arg, const char *id), void *arg)
{
    r->observe = fn;
    r->observe_arg = arg;
}

size_t e2b_registry_count(struct e2b_registry *r, int *running)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    if (running) *running = e2b_running(r);
    pthread_mutex_unlock(&r->mu);
    return n;
}

int e2b_registry_max(const struct e2b_registry *r)
{
    return r->max;
}

void e2b_registry_drain(struct e2b_registry *r)
{
    pthread_mutex_lock(&r->mu);
    r->draining = true;
    pthread_mutex_unlock(&r->mu);
}

static int e2b_set_end(struct e2b_registry *r, const char *id, int timeout_s, bool extend_only)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        struct e2b_sbx *s = r->v[i];
        if (strcmp(s->id, id)) continue;
        int64_t end = sf_wall_ms() + (int64_t)timeout_s * 1000;
        if (!extend_only || end > s->end_wall_ms)
            __atomic_store_n(&s->end_wall_ms, end, __ATOMIC_RELAXED);
        rc = 0;
        break;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t e2b_registry_snapshot(struct e2b_registry *r, struct e2b_sbx ***out)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    struct e2b_sbx **v = sf_xcalloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = r->v[n - 1 - i];
        v[i]->refs++;
    }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return n;
}

/* ---- process table ---------------------------------------------------------- */

void e2b_sbx_add_proc(struct e2b_sbx *s, struct e2b_proc *p)
{
    pthread_mutex_lock(&s->plock);
    if (s->nprocs == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->procs = sf_xrealloc(s->procs, s->cap * sizeof(*s->procs));
    }
    s->procs[s->nprocs++] = p;
    pthread_mutex_unlock(&s->plock);
}

void e2b_sbx_remove_proc(struct e2b_sbx *s, struct e2b_proc *p)
{
    pthread_mutex_lock(&s->plock);
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i] == p) {
            s->procs[i] = s->procs[--s->nprocs];
            break;
        }
    pthread_mutex_unlock(&s->plock);
}

/* ---- pause / resume ----------------------------------------------------------- */

static struct e2b_sbx *e2b_find(struct e2b_registry *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i]->id, id)) return r->v[i];
    return NULL;
}

bool e2b_sbx_paused(struct e2b_registry *r, struct e2b_sbx *s)
{
    pthread_mutex_lock(&r->mu);
    bool p = s->paused;
    pthread_mutex_unlock(&r->mu);
    return p;
}

int e2b_registry_pause(struct e2b_registry *r, const char *id, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    struct e2b_sbx *s = e2b_find(r, id);
    if (!s || s->paused) {
        pthread_mutex_unlock(&r->mu);
        return s ? -EALREADY : -ENOENT;
    }
    if ((int)r->n - e2b_running(r) >= r->max_paused) {
        pthread_mutex_unlock(&r->mu);
        sf_errf(err, errlen, "%d sandboxes are paused already, the most this server keeps: kill or "
                "resume one, or start the worker with a higher --e2b-max-paused", r->max_paused);
        return -EUSERS;
    }
    s->refs++;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&s->mu);
    int rc = s->killed ? -ENOENT : sf_sandbox_freeze(s->sb, true);
    if (rc < 0 && rc != -ENOENT) {
        sf_errf(err, errlen, "%s", s->sb->errstr);
        sf_sandbox_freeze(s->sb, false);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        s->paused = true;
        int64_t left = __atomic_load_n(&s->end_wall_ms, __ATOMIC_RELAXED) - sf_wall_ms();
        s->paused_left_ms = left > 1000 ? left : 1000;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        SF_LOGI(r->lg, "e2b: sandbox %s paused", s->id);
        if (r->observe) r->observe(r->observe_arg, s->id);
    }
    e2b_registry_put(r, s);
    return rc;
}

int e2b_registry_resume(struct e2b_registry *r, const char *id, int timeout_s, char *err,
                        size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    struct e2b_sbx *s = e2b_find(r, id);
    if (!s || !s->paused) {
        pthread_mutex_unlock(&r->mu);
        return s ? 0 : -ENOENT;
    }
    if (e2b_running(r) + r->creating >= r->max) {
        pthread_mutex_unlock(&r->mu);
        sf_errf(err, errlen, "you have reached the maximum number of concurrent E2B sandboxes (%d)",
                r->max);
        return -EAGAIN;
    }
    s->refs++;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&s->mu);
    int rc = s->killed ? -ENOENT : sf_sandbox_freeze(s->sb, false);
    if (rc < 0 && rc != -ENOENT) sf_errf(err, errlen, "%s", s->sb->errstr);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        s->paused = false;
        int64_t left = timeout_s > 0 ? (int64_t)timeout_s * 1000 : s->paused_left_ms;
        __atomic_store_n(&s->end_wall_ms, sf_wall_ms() + left, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        SF_LOGI(r->lg, "e2b: sandbox %s resumed", s->id);
        if (r->observe) r->observe(r->observe_arg, s->id);
        rc = 1;
    }
    e2b_registry_put(r, s);
    return rc;
}

bool e2b_registry_watch_take(struct e2b_registry *r)
{
    pthread_mutex_lock(&r->mu);
    bool ok = r->watches < E2B_WATCHES_MAX;
    if (ok) r->watches++;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void e2b_registry_watch_give(struct e2b_registry *r)
{
    pthread_mutex_lock(&r->mu);
    r->watches--;
    pthread_mutex_unlock(&r->mu);
}
