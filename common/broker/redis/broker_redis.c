/* common/broker/redis/broker_redis.c: the broker over Redis Streams (docs/protocol.md has
 * the public layout). For queue Q and run R:
 *   sf:Q:tasks            stream, group "workers", field "task"
 *   sf:Q:dead             stream, fields "task" (raw) and "reason"
 *   sf:Q:delayed          zset: next attempts by due time (ms, Redis clock)
 *   sf:Q:workers          zset: worker id by last heartbeat
 *   sf:Q:workers:info     hash: worker id -> JSON
 *   sf:run:R              hash: run state (coordinator)
 *   sf:run:R:published    set: task ids published for R
 *   sf:run:R:results      stream, field "result"
 *   sf:run:R:done         hash: task id -> 1 (one result per task id)
 *   sf:blob:<hex>         string with TTL: claim-checked payloads
 *
 * Leases are the consumer group's idle time: the owner resets it with
 * XCLAIM ... JUSTID (renew), anyone reclaims entries idle longer than the
 * lease with XAUTOCLAIM (inside fetch). Every transition that must be atomic
 * is a Lua script (broker_redis_lua.c). */
#include "broker.h"
#include "broker_redis.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


/* A task delivered this many times without finishing has taken its worker
 * down with it each time (a poison task: it OOMs the host, kills its parent,
 * trips a kernel bug). It is dead-lettered instead of being handed to the
 * next worker forever — Sidekiq's and Celery's failure mode. */
#define SF_REDIS_MAX_DELIVERIES 3

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *consumer(const struct redis_broker *rb)
{
    return rb->base.cfg.consumer ? rb->base.cfg.consumer : "coordinator";
}

static int ensure_group(struct redis_broker *rb, char *err, size_t errlen)
{
    const char *argv[] = { "XGROUP", "CREATE", rb->k_tasks, "workers", "0", "MKSTREAM" };
    redisReply *r;
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc == -EPROTO && strstr(err, "BUSYGROUP")) return 0;
    if (rc == 0) freeReplyObject(r);
    return rc;
}

/* A command; a missing group (Redis restarted without its data, or the
 * stream was deleted) is recreated once and the command repeated. */
static int rcall(struct redis_broker *rb, redisReply **out, char *err, size_t errlen, int argc,
                 const char **argv, const size_t *lens)
{
    int rc = sf_redis_cmd(rb->pool, out, err, errlen, argc, argv, lens);
    if (rc != -ENOENT) return rc;
    if ((rc = ensure_group(rb, err, errlen)) < 0) return rc;
    return sf_redis_cmd(rb->pool, out, err, errlen, argc, argv, lens);
}

/* EVAL script with keys then args (sf_redis_eval_on); lens may be NULL (all
 * C strings). A missing group is recreated once, as rcall does. */
int sf_redis_eval(struct redis_broker *rb, redisReply **out, char *err, size_t errlen,
                  const char *script, int nkeys, int nargs, const char **ka, const size_t *lens)
{
    size_t n = (size_t)(nkeys + nargs);
    int rc = sf_redis_eval_on(rb->pool, out, err, errlen, script, nkeys, ka, lens, n);
    if (rc != -ENOENT) return rc;
    if ((rc = ensure_group(rb, err, errlen)) < 0) return rc;
    return sf_redis_eval_on(rb->pool, out, err, errlen, script, nkeys, ka, lens, n);
}


/* --- worker side ---------------------------------------------------------------- */

const char *sf_redis_handle_stream(const struct redis_broker *rb, const char *handle,
                                   const char **id)
{
    const char *slash;
    *id = handle;
    if (handle[0] != 'p' || !(slash = strchr(handle, '/'))) return rb->k_tasks;
    int band = atoi(handle + 1);
    if (band < 1 || band >= SF_REDIS_BANDS) return rb->k_tasks;
    *id = slash + 1;
    return rb->k_band[band];
}

void sf_redis_handle_make(char *dst, size_t n, int band, const char *id)
{
    if (band > 0) snprintf(dst, n, "p%d/%s", band, id);
    else sf_strlcpy(dst, id, n);
}

void sf_redis_entry_to_delivery(const redisReply *id, const redisReply *f, struct sf_delivery *d,
                                bool reclaimed, int band)
{
    memset(d, 0, sizeof(*d));
    d->reclaimed = reclaimed;
    d->band = band;
    sf_redis_handle_make(d->handle, sizeof(d->handle), band, id->str);
    if (f && f->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < f->elements; i += 2) {
            if (!strcmp(f->element[i]->str, "task") && f->element[i + 1]->type == REDIS_REPLY_STRING) {
                d->data = sf_xstrndup(f->element[i + 1]->str, f->element[i + 1]->len);
                d->len = f->element[i + 1]->len;
                return;
            }
        }
    }
    /* Keep what there was, as "field=value" lines, for the dead letter
     * (byte for byte: names and values may hold NULs). */
    struct sf_buf b = {0};
    for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->str) sf_buf_append(&b, k->str, k->len);
        sf_buf_append(&b, "=", 1);
        if (v->str) sf_buf_append(&b, v->str, v->len);
        sf_buf_append(&b, "\n", 1);
    }
    d->data = sf_buf_steal(&b, &d->len);
    snprintf(d->problem, sizeof(d->problem), "stream entry has no 'task' field");
}

bool sf_redis_is_entry(const redisReply *e)
{
    return e && e->type == REDIS_REPLY_ARRAY && e->elements >= 2 &&
           e->element[0]->type == REDIS_REPLY_STRING;
}

/* After a reclaim: how often has this entry been delivered? XAUTOCLAIM
 * counts each claim, so the first delivery is 1. Over the limit, the
 * delivery carries a 'problem' and the worker dead-letters it unrun. */
static void mark_poison(struct redis_broker *rb, struct sf_delivery *d)
{
    redisReply *r;
    char err[128];
    const char *id;
    if (d->problem[0]) return;
    const char *stream = sf_redis_handle_stream(rb, d->handle, &id);
    const char *argv[] = { "XPENDING", stream, "workers", id, id, "1" };
    if (rcall(rb, &r, err, sizeof(err), NELEM(argv), argv, NULL) < 0) return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 4 && r->element[0]->element[3]->type == REDIS_REPLY_INTEGER) {
        long long times = r->element[0]->element[3]->integer;
        if (times > SF_REDIS_MAX_DELIVERIES)
            snprintf(d->problem, sizeof(d->problem),
                     "%lld workers took this task and died before finishing it "
                     "(a poison task?); not handing it out again", times - 1);
    }
    freeReplyObject(r);
}

/* One XAUTOCLAIM step over band 0 and the bands in use, one stream at a
 * time: a full scan of a stream moves on to the next; after the last the
 * next round waits for the interval. */
static int reclaim(struct redis_broker *rb, struct sf_delivery *out, size_t max, size_t *n,
                   char *err, size_t errlen)
{
    char idle[24], count[24];
    redisReply *r;
    unsigned bands = atomic_load(&rb->bands);
    int band = rb->reclaim_band;
    if (band > 0 && !(bands & (1u << band))) {            /* that band went idle */
        band = 0;
        rb->reclaim_cursor[0] = '\0';
    }
    snprintf(idle, sizeof(idle), "%lld", (long long)rb->lease_ms);
    snprintf(count, sizeof(count), "%zu", max);
    if (!rb->reclaim_cursor[0]) strcpy(rb->reclaim_cursor, "0-0");
    const char *argv[] = { "XAUTOCLAIM", rb->k_band[band], "workers", consumer(rb), idle,
                           rb->reclaim_cursor, "COUNT", count };
    int rc = rcall(rb, &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            sf_strlcpy(rb->reclaim_cursor, r->element[0]->str, sizeof(rb->reclaim_cursor));
        const redisReply *es = r->element[1];
        for (size_t i = 0; es->type == REDIS_REPLY_ARRAY && i < es->elements && *n < max; i++)
            if (sf_redis_is_entry(es->element[i])) sf_redis_entry_to_delivery(es->element[i]->element[0], es->element[i]->element[1], &out[(*n)++], true, band);
    }
    freeReplyObject(r);
    for (size_t i = 0; i < *n; i++) mark_poison(rb, &out[i]);
    /* A full scan done: the next band in use, or wait for the next interval;
     * otherwise continue the scan on the next fetch. */
    atomic_store(&rb->next_reclaim_ms, 0);
    if (!strcmp(rb->reclaim_cursor, "0-0")) {
        rb->reclaim_cursor[0] = '\0';
        do band++; while (band < SF_REDIS_BANDS && !(bands & (1u << band)));
        rb->reclaim_band = band < SF_REDIS_BANDS ? band : 0;
        if (!rb->reclaim_band) {
            int64_t every = rb->lease_ms / 2 < 5000 ? rb->lease_ms / 2 : 5000;
            atomic_store(&rb->next_reclaim_ms, sf_now_ms() + (every > 50 ? every : 50));
        }
    }
    return 0;
}

/* The pool got its connection back after losing it (any thread). */
static void reconnected(void *arg)
{
    struct redis_broker *rb = arg;
    atomic_store(&rb->hold_until, sf_now_ms() + rb->lease_ms);
    if (rb->base.cfg.on_reconnect) rb->base.cfg.on_reconnect(rb->base.cfg.on_reconnect_arg);
}

bool sf_redis_hold(struct redis_broker *rb)
{
    return sf_now_ms() < atomic_load(&rb->hold_until) || sf_redis_pool_down(rb->pool);
}

static int r_fetch(struct sf_broker *b, struct sf_delivery *out, size_t max, int block_ms,
                   size_t *n, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char count[24], block[24];
    redisReply *r;
    int rc;
    *n = 0;
    if (!max) return 0;
    /* No reclaim while Redis is away (the call that finds it back must not
     * be the reclaim) nor for a lease after. */
    if (sf_now_ms() >= atomic_load(&rb->next_reclaim_ms) && !sf_redis_hold(rb) &&
        (rc = reclaim(rb, out, max, n, err, errlen)) < 0)
        return rc;
    if (*n == max) return 0;
    /* Something will be due for maintain() before the block ends (a retry,
     * a token for a waiting task): come back then, not a block later. */
    int64_t due = atomic_load(&rb->due_at);
    if (due && block_ms > 0) {
        int64_t in = due - sf_now_ms();
        if (in < 25) in = 25;                 /* maintain runs at most every 250 ms */
        if (in < block_ms) block_ms = (int)in;
    }
    /* Priorities in use: the band fetch. Otherwise exactly the plain read of
     * band 0 below: priorities cost nothing while unused. */
    if (atomic_load(&rb->bands)) {
        size_t got = 0;
        rc = sf_redis_band_fetch(rb, out + *n, max - *n, *n ? 0 : block_ms, &got, err, errlen);
        *n += got;
        return rc < 0 && !*n ? rc : 0;
    }
    snprintf(count, sizeof(count), "%zu", max - *n);
    snprintf(block, sizeof(block), "%d", block_ms > 0 ? block_ms : 1);
    const char *argv[] = { "XREADGROUP", "GROUP", "workers", consumer(rb), "COUNT", count,
                           "BLOCK", block, "STREAMS", rb->k_tasks, ">" };
    /* Without BLOCK when we already have work or must not wait. */
    const char *argv_nb[] = { "XREADGROUP", "GROUP", "workers", consumer(rb), "COUNT", count,
                              "STREAMS", rb->k_tasks, ">" };
    bool nb = *n > 0 || block_ms <= 0;
    rc = nb ? rcall(rb, &r, err, errlen, NELEM(argv_nb), argv_nb, NULL)
            : rcall(rb, &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc < 0) {
        /* What was reclaimed is ours now; hand it out and report later. */
        return *n ? 0 : rc;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *s = r->element[0];
        const redisReply *es = s->type == REDIS_REPLY_ARRAY && s->elements == 2 ? s->element[1] : NULL;
        for (size_t i = 0; es && es->type == REDIS_REPLY_ARRAY && i < es->elements && *n < max; i++)
            if (sf_redis_is_entry(es->element[i])) sf_redis_entry_to_delivery(es->element[i]->element[0], es->element[i]->element[1], &out[(*n)++], false, 0);
    }
    freeReplyObject(r);
    return 0;
}

static int r_renew(struct sf_broker *b, const char *const *handles, size_t n, bool *lost,
                   char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    const char **ka = sf_xcalloc(3 * n + 4, sizeof(char *));
    char lease[24], *prefix = sf_xasprintf("%s/", b->cfg.queue);
    redisReply *r;
    snprintf(lease, sizeof(lease), "%lld", (long long)rb->lease_ms);
    ka[0] = rb->k_held;
    ka[n + 1] = consumer(rb);
    ka[n + 2] = lease;
    ka[n + 3] = prefix;
    for (size_t i = 0; i < n; i++) {
        ka[1 + i] = sf_redis_handle_stream(rb, handles[i], &ka[n + 4 + n + i]);
        ka[n + 4 + i] = handles[i];
        lost[i] = false;
    }
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_renew, (int)n + 1, 2 * (int)n + 3, ka, NULL);
    free(ka);
    free(prefix);
    if (rc < 0) return rc;
    for (size_t j = 0; r->type == REDIS_REPLY_ARRAY && j < r->elements; j++)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(handles[i], r->element[j]->str)) lost[i] = true;
    freeReplyObject(r);
    return 0;
}

static int r_complete(struct sf_broker *b, const char *handle, const struct sf_completion *c,
                      char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *k_res = sf_xasprintf("sf:run:%s:results", c->run_id);
    char *k_done = sf_xasprintf("sf:run:%s:done", c->run_id);
    char *k_cb = sf_xasprintf("sf:%s:callbacks", b->cfg.queue);
    char *k_cbdue = sf_xasprintf("sf:%s:callbacks:due", b->cfg.queue);
    redisReply *r;
    const char *id = "";
    const char *stream = handle ? sf_redis_handle_stream(rb, handle, &id) : rb->k_tasks;
    /* The next delivery in the same script only where the fetch would be
     * exactly the plain read of band 0: no band in use (the script checks
     * again) and no reclaim scan due (the fetch thread runs those). */
    bool chain = c->next && !atomic_load(&rb->bands) && sf_now_ms() < atomic_load(&rb->next_reclaim_ms);
    const char *ka[] = { stream, k_res, k_done, rb->k_dead, c->reply_to ? c->reply_to : k_res,
                         k_cb, k_cbdue,
                         id, c->task_id, c->result, rb->ttl_str,
                         c->reply_to ? "1" : "0", c->dead_raw ? c->dead_raw : "",
                         c->dead_reason ? c->dead_reason : "",
                         c->callback ? c->callback_id : "", c->callback ? c->callback : "",
                         rb->k_tasks, chain ? consumer(rb) : "" };
    size_t lens[NELEM(ka)];
    for (size_t i = 0; i < NELEM(ka); i++) lens[i] = strlen(ka[i]);
    lens[9] = c->result_len;
    if (c->dead_raw) lens[12] = c->dead_len;
    if (c->callback) lens[15] = c->callback_len;
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_complete, 7, 11, ka, lens);
    free(k_res);
    free(k_done);
    free(k_cb);
    free(k_cbdue);
    if (rc < 0) return rc;
    int fresh = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_INTEGER) {
        fresh = (int)r->element[0]->integer;
        /* A band stream appeared: fetch by band now (the band script then
         * learns which); none: the plain fetch. */
        if (r->element[1]->integer > 0 && !atomic_load(&rb->bands)) atomic_fetch_or(&rb->bands, SF_REDIS_BANDS_UNKNOWN);
        if (r->element[1]->integer == 0) atomic_store(&rb->bands, 0);
        if (chain && r->elements == 3 && sf_redis_is_entry(r->element[2]))
            sf_redis_entry_to_delivery(r->element[2]->element[0], r->element[2]->element[1], c->next,
                                       false, 0);
    }
    freeReplyObject(r);
    return fresh == 1 ? 0 : 1;
}

static int r_retry(struct sf_broker *b, const char *handle, const char *task, size_t len,
                   int64_t delay_ms, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char delay[24];
    redisReply *r;
    snprintf(delay, sizeof(delay), "%lld", (long long)(delay_ms > 0 ? delay_ms : 0));
    const char *id;
    const char *stream = sf_redis_handle_stream(rb, handle, &id);
    const char *ka[] = { stream, rb->k_delayed, id, consumer(rb), delay, task };
    size_t lens[] = { strlen(ka[0]), strlen(ka[1]), strlen(ka[2]), strlen(ka[3]), strlen(ka[4]), len };
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_retry, 2, 4, ka, lens);
    if (rc < 0) return rc;
    return sf_redis_int_reply(r) == 1 ? 0 : 1;
}

static int r_dead(struct sf_broker *b, const char *handle, const char *raw, size_t len,
                  const char *reason, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    redisReply *r;
    const char *id;
    const char *stream = sf_redis_handle_stream(rb, handle, &id);
    const char *ka[] = { stream, rb->k_dead, id, raw, reason };
    size_t lens[] = { strlen(ka[0]), strlen(ka[1]), strlen(id), len, strlen(reason) };
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_dead, 2, 3, ka, lens);
    if (rc == 0) freeReplyObject(r);
    return rc;
}

static int r_heartbeat(struct sf_broker *b, const struct sf_worker_info *wi, bool leaving,
                       char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:i, s:i, s:I, s:I, s:I}", "id", wi->id,
                          "host", wi->host ? wi->host : "", "pid", wi->pid,
                          "sandbox", wi->sandbox ? wi->sandbox : "", "concurrency", wi->concurrency,
                          "busy", wi->busy, "started_ms", (json_int_t)wi->started_ms,
                          "done", (json_int_t)wi->done, "failed", (json_int_t)wi->failed);
    if (wi->secrets) json_object_set(j, "secrets", wi->secrets);
    char *info = json_dumps(j, JSON_COMPACT);
    redisReply *r;
    const char *ka[] = { rb->k_workers, rb->k_winfo, rb->k_tasks, wi->id, info, leaving ? "1" : "0" };
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_heartbeat, 3, 3, ka, NULL);
    if (rc == 0) freeReplyObject(r);
    free(info);
    json_decref(j);
    return rc;
}

static int r_maintain(struct sf_broker *b, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    redisReply *r;
    char lease[24];
    int moved = 0;
    snprintf(lease, sizeof(lease), "%lld", (long long)rb->lease_ms);
    const char *ka[] = { rb->k_delayed, rb->k_tasks, "sf:gates:waiting", "100", lease,
                         sf_redis_hold(rb) ? "1" : "0" };
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_promote, 3, 3, ka, NULL);
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_INTEGER) {
        moved = (int)r->element[0]->integer;
        atomic_store(&rb->bands, (unsigned)r->element[1]->integer);
        long long in = r->element[2]->integer;
        atomic_store(&rb->due_at, in < 0 ? 0 : sf_now_ms() + in);
    }
    freeReplyObject(r);
    return moved;
}

/* --- coordinator side ----------------------------------------------------------- */

static int r_publish(struct sf_broker *b, const char *run_id, const char *task_id, int priority,
                     const char *data, size_t len, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *k_pub = sf_xasprintf("sf:run:%s:published", run_id);
    redisReply *r;
    int band = priority > 0 && priority < SF_REDIS_BANDS ? priority : 0;
    const char *ka[] = { k_pub, rb->k_band[band], task_id, data, rb->ttl_str, band ? "1" : "0" };
    size_t lens[] = { strlen(k_pub), strlen(ka[1]), strlen(task_id), len, strlen(rb->ttl_str), 1 };
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_publish, 2, 4, ka, lens);
    if (rc == 0 && band) atomic_fetch_or(&rb->bands, 1u << band);
    free(k_pub);
    if (rc < 0) return rc;
    return sf_redis_int_reply(r) == 1 ? 0 : 1;
}

static int r_results(struct sf_broker *b, const char *run_id, char *cursor, size_t cursor_len,
                     char **out, size_t *lens, size_t max, int block_ms, size_t *n,
                     char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *key = sf_xasprintf("sf:run:%s:results", run_id);
    char count[24], block[24];
    redisReply *r;
    *n = 0;
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(block, sizeof(block), "%d", block_ms > 0 ? block_ms : 1);
    const char *argv[] = { "XREAD", "COUNT", count, "BLOCK", block, "STREAMS", key,
                           cursor[0] ? cursor : "0-0" };
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    free(key);
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *s = r->element[0];
        const redisReply *es = s->type == REDIS_REPLY_ARRAY && s->elements == 2 ? s->element[1] : NULL;
        for (size_t i = 0; es && es->type == REDIS_REPLY_ARRAY && i < es->elements; i++) {
            const redisReply *e = es->element[i];
            if (!sf_redis_is_entry(e)) continue;
            sf_strlcpy(cursor, e->element[0]->str, cursor_len);
            const redisReply *f = e->element[1];
            for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
                if (strcmp(f->element[k]->str, "result") || *n >= max) continue;
                lens[*n] = f->element[k + 1]->len;
                out[(*n)++] = sf_xstrndup(f->element[k + 1]->str, f->element[k + 1]->len);
            }
        }
    }
    freeReplyObject(r);
    return 0;
}

static int r_state_get(struct sf_broker *b, const char *run_id, const char *field, char **val,
                       char *err, size_t errlen)
{
    char *key = sf_xasprintf("sf:run:%s", run_id);
    redisReply *r;
    const char *argv[] = { "HGET", key, field };
    int rc = sf_redis_cmd(RB(b)->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    free(key);
    *val = NULL;
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_STRING) *val = sf_xstrndup(r->str, r->len);
    freeReplyObject(r);
    return 0;
}

static int r_state_set(struct sf_broker *b, const char *run_id, const char *field,
                       const char *val, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *key = sf_xasprintf("sf:run:%s", run_id);
    redisReply *r;
    const char *a1[] = { "HSET", key, field, val };
    const char *a2[] = { "EXPIRE", key, rb->ttl_str };
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(a1), a1, NULL);
    if (rc == 0) {
        freeReplyObject(r);
        rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(a2), a2, NULL);
        if (rc == 0) freeReplyObject(r);
    }
    free(key);
    return rc;
}

static int r_stats(struct sf_broker *b, struct sf_queue_stats *st, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char window[24];
    redisReply *r;
    snprintf(window, sizeof(window), "%lld", (long long)(3 * rb->lease_ms));
    const char *ka[] = { rb->k_tasks, rb->k_delayed, rb->k_dead, rb->k_workers, window };
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_stats, 4, 1, ka, NULL);
    if (rc < 0) return rc;
    memset(st, 0, sizeof(*st));
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 5) {
        st->depth = r->element[0]->integer;
        st->pending = r->element[1]->integer;
        st->delayed = r->element[2]->integer;
        st->dead = r->element[3]->integer;
        st->workers = r->element[4]->integer;
    }
    freeReplyObject(r);
    return 0;
}

/* --- claim-check blobs ------------------------------------------------------------ */

static int r_blob_put(struct sf_broker *b, const char *data, size_t len, char *ref,
                      size_t reflen, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char hex[33];
    redisReply *r;
    sf_random_hex(hex, sizeof(hex), 32);
    snprintf(ref, reflen, "sf:blob:%s", hex);
    const char *argv[] = { "SET", ref, data, "EX", rb->ttl_str };
    size_t lens[] = { 3, strlen(ref), len, 2, strlen(rb->ttl_str) };
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv), argv, lens);
    if (rc == 0) freeReplyObject(r);
    return rc;
}

static int r_blob_get(struct sf_broker *b, const char *ref, char **data, size_t *len,
                      char *err, size_t errlen)
{
    redisReply *r;
    *data = NULL;
    /* Only our own blob keys: a message must not make a worker read any key. */
    if (strncmp(ref, "sf:blob:", 8)) {
        sf_errf(err, errlen, "reference '%.100s' is not a sandfleet blob (sf:blob:...)", ref);
        return -EINVAL;
    }
    const char *argv[] = { "GET", ref };
    int rc = sf_redis_cmd(RB(b)->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc < 0) return rc;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return -ENOENT;
    }
    *data = sf_xstrndup(r->str, r->len);
    *len = r->len;
    freeReplyObject(r);
    return 0;
}

static int r_check(struct sf_broker *b, char *err, size_t errlen)
{
    return ensure_group(RB(b), err, errlen);
}

static void r_free(struct sf_broker *b)
{
    struct redis_broker *rb = RB(b);
    sf_redis_pool_free(rb->pool);
    free(rb->k_tasks);
    free(rb->k_dead);
    free(rb->k_delayed);
    free(rb->k_workers);
    free(rb->k_winfo);
    free(rb->k_held);
    for (int p = 1; p < SF_REDIS_BANDS; p++) free(rb->k_band[p]);
    free((char *)b->cfg.queue);
    free((char *)b->cfg.consumer);
    free(b->url_redacted);
    free(rb);
}

struct sf_redis_pool *sf_redis_broker_pool(struct sf_broker *b) { return RB(b)->pool; }

static const struct sf_broker_ops redis_ops = {
    .scheme = "redis",
    .reply_ns = "sf:reply:",
    .own_ns = "sf:",
    .check = r_check,
    .fetch = r_fetch,
    .renew = r_renew,
    .complete = r_complete,
    .retry = r_retry,
    .dead = r_dead,
    .heartbeat = r_heartbeat,
    .maintain = r_maintain,
    .gate_enter = sf_redis_gate_enter,
    .gate_leave = sf_redis_gate_leave,
    .route = sf_redis_route,
    .gates = sf_redis_gates,
    .publish = r_publish,
    .results = r_results,
    .state_get = r_state_get,
    .state_set = r_state_set,
    .stats = r_stats,
    .run_claim = sf_redis_run_claim,
    .results_many = sf_redis_results_many,
    .blob_put = r_blob_put,
    .blob_get = r_blob_get,
    .workers = sf_redis_admin_workers,
    .runs = sf_redis_admin_runs,
    .dead_list = sf_redis_admin_dead_list,
    .dead_requeue = sf_redis_admin_dead_requeue,
    .dead_purge = sf_redis_admin_dead_purge,
    .sub_fetch = sf_redis_serve_sub_fetch,
    .sub_ack = sf_redis_serve_sub_ack,
    .run_doc_put = sf_redis_serve_doc_put,
    .run_doc_get = sf_redis_serve_doc_get,
    .cb_enqueue = sf_redis_cb_enqueue,
    .cb_claim = sf_redis_cb_claim,
    .cb_settle = sf_redis_cb_settle,
    .cb_list = sf_redis_cb_list,
    .cb_requeue = sf_redis_cb_requeue,
    .cb_purge = sf_redis_cb_purge,
    .e2b_beat = sf_redis_e2b_beat,
    .e2b_workers = sf_redis_e2b_workers,
    .e2b_put = sf_redis_e2b_put,
    .e2b_get = sf_redis_e2b_get,
    .e2b_del = sf_redis_e2b_del,
    .e2b_list = sf_redis_e2b_list,
    .e2b_owned = sf_redis_e2b_owned,
    .e2b_reap = sf_redis_e2b_reap,
    .free = r_free,
};

struct sf_broker *sf_broker_redis_new(const char *url, const struct sf_broker_cfg *cfg,
                                      char *err, size_t errlen)
{
    struct sf_redis_url u;
    if (sf_redis_url_parse(url, &u, err, errlen) < 0) return NULL;
    struct redis_broker *rb = sf_xcalloc(1, sizeof(*rb));
    const char *q = cfg->queue && *cfg->queue ? cfg->queue : "default";
    rb->base.ops = &redis_ops;
    rb->base.cfg = *cfg;
    rb->base.cfg.queue = sf_xstrdup(q);
    rb->base.cfg.consumer = sf_xstrdup(cfg->consumer);
    rb->base.url_redacted = sf_redact_url(url);
    rb->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : SF_BROKER_DEFAULT_LEASE_MS;
    rb->ttl_s = cfg->ttl_s > 0 ? cfg->ttl_s : SF_BROKER_DEFAULT_TTL_S;
    snprintf(rb->ttl_str, sizeof(rb->ttl_str), "%lld", (long long)rb->ttl_s);
    rb->k_tasks = sf_xasprintf("sf:%s:tasks", q);
    rb->k_dead = sf_xasprintf("sf:%s:dead", q);
    rb->k_delayed = sf_xasprintf("sf:%s:delayed", q);
    rb->k_workers = sf_xasprintf("sf:%s:workers", q);
    rb->k_winfo = sf_xasprintf("sf:%s:workers:info", q);
    /* Per worker, so that a dead worker's entries expire with the key. */
    rb->k_held = sf_xasprintf("sf:%s:held:%s", q, cfg->consumer ? cfg->consumer : "coordinator");
    rb->k_band[0] = rb->k_tasks;
    for (int p = 1; p < SF_REDIS_BANDS; p++) rb->k_band[p] = sf_xasprintf("sf:%s:tasks:p%d", q, p);
    rb->aging_ms = cfg->priority_aging_ms > 0 ? cfg->priority_aging_ms : 60000;
    rb->pool = sf_redis_pool_new(&u, cfg->connect_timeout_ms, cfg->log);
    sf_redis_pool_set_reconnect_hook(rb->pool, reconnected, rb);
    sf_redis_url_clear(&u);
    return &rb->base;
}
