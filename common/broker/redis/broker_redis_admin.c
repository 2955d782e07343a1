/* common/broker/redis/broker_redis_admin.c: the operations side of the Redis broker.
 *
 * Design. These ops serve people and the long-running coordinator, not the
 * task path, so they favour plain commands over cleverness:
 * - workers: one script reads the heartbeat ZSET, the info hash and Redis'
 *   clock together, so every heartbeat age is measured against one "now".
 * - runs: SCAN for the run state hashes (sf:run:<id>, no further ':'); there
 *   is no run registry to keep in step, and a status call can afford a scan.
 * - dead letters: read with XREVRANGE; a replay is one script that checks
 *   the entry is still there, XADDs the rewritten task, XDELs the entry and
 *   drops the run's completion marker for that task id (otherwise the
 *   replayed task's result would be taken for a duplicate and not stored).
 *   Two operators replaying the same id at once move it once.
 * - submissions (serve): stream sf:submissions, group "coordinators"; an
 *   entry is acked by the serve instance once its run's document is stored,
 *   so a restarted instance (same consumer name) resumes what it held.
 */
#include "broker_redis.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SUB_STREAM "sf:submissions"
#define SUB_GROUP "coordinators"

/* KEYS: workers zset, workers info hash. Returns {now ms, zset with scores,
 * hash as a flat list}. */
static const char lua_workers[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "return {now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), redis.call('HGETALL', KEYS[2])}\n";

/* KEYS: dead stream, tasks stream, run done hash. ARGV: entry id, task,
 * task id ('' = no marker to drop). 1 moved, 0 the entry is gone. */
static const char lua_requeue[] =
    "if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('XADD', KEYS[2], '*', 'task', ARGV[2])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "if ARGV[3] ~= '' then redis.call('HDEL', KEYS[3], ARGV[3]) end\n"
    "return 1\n";

static int eval_script(struct redis_broker *rb, redisReply **r, char *err, size_t errlen,
                       const char *script, int nkeys, const char **ka, const size_t *lens, int nka)
{
    return sf_redis_eval_on(rb->pool, r, err, errlen, script, nkeys, ka, lens, (size_t)nka);
}

static const char *str_el(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str : "";
}

/* --- workers and runs ------------------------------------------------------- */

int sf_redis_admin_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    const char *ka[] = { rb->k_workers, rb->k_winfo };
    redisReply *r;
    int rc = eval_script(rb, &r, err, errlen, lua_workers, 2, ka, NULL, 2);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        long long now = r->element[0]->integer;
        const redisReply *z = r->element[1], *h = r->element[2];
        for (size_t i = 0; z->type == REDIS_REPLY_ARRAY && i + 1 < z->elements; i += 2) {
            const char *id = str_el(z->element[i]);
            json_t *w = NULL;
            for (size_t k = 0; h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2)
                if (!strcmp(str_el(h->element[k]), id))
                    w = json_loads(str_el(h->element[k + 1]), 0, NULL);
            if (!json_is_object(w)) {
                json_decref(w);
                w = json_pack("{s:s}", "id", id);
            }
            long long seen = strtoll(str_el(z->element[i + 1]), NULL, 10);
            json_object_set_new(w, "heartbeat_age_ms", json_integer(now - seen));
            json_array_append_new(arr, w);
        }
    }
    freeReplyObject(r);
    *out = arr;
    return 0;
}

static json_t *hash_to_json(const redisReply *h)
{
    json_t *o = json_object();
    for (size_t k = 0; h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2)
        json_object_set_new(o, str_el(h->element[k]), json_string(str_el(h->element[k + 1])));
    return o;
}

int sf_redis_admin_runs(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char cursor[64] = "0";
    json_t **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    do {
        redisReply *r;
        const char *argv[] = { "SCAN", cursor, "MATCH", "sf:run:*", "TYPE", "hash", "COUNT", "1000" };
        if ((rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv), argv, NULL)) < 0) goto out;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            break;
        }
        sf_strlcpy(cursor, str_el(r->element[0]), sizeof(cursor));
        const redisReply *keys = r->element[1];
        for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
            const char *key = str_el(keys->element[i]), *id = key + 7;
            redisReply *h;
            if (strchr(id, ':') || !*id) continue;        /* sf:run:R:done is a hash too */
            const char *a2[] = { "HGETALL", key };
            if ((rc = sf_redis_cmd(rb->pool, &h, err, errlen, NELEM(a2), a2, NULL)) < 0) {
                freeReplyObject(r);
                goto out;
            }
            json_t *run = hash_to_json(h);
            freeReplyObject(h);
            json_object_set_new(run, "run_id", json_string(id));
            if (n == cap) v = sf_xrealloc(v, (cap = cap ? 2 * cap : 32) * sizeof(*v));
            v[n++] = run;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
out:
    if (rc == 0) *out = json_array();
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) json_array_append(*out, v[i]);
        json_decref(v[i]);
    }
    free(v);
    return rc;
}

/* --- dead letters ------------------------------------------------------------ */

int sf_redis_admin_dead_list(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char count[24];
    redisReply *r;
    snprintf(count, sizeof(count), "%zu", max);
    const char *argv[] = { "XREVRANGE", rb->k_dead, "+", "-", "COUNT", count };
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, max ? 6 : 4, argv, NULL);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
        const char *id = str_el(e->element[0]);
        json_t *d = json_pack("{s:s, s:I, s:s, s:s}", "id", id, "time_ms",
                              (json_int_t)strtoll(id, NULL, 10), "reason", "", "task", "");
        const redisReply *f = e->element[1];
        for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
            const char *name = str_el(f->element[k]);
            const redisReply *val = f->element[k + 1];
            if (strcmp(name, "task") && strcmp(name, "reason")) continue;
            /* Raw bytes may not be UTF-8; jansson refuses those, so say so. */
            json_t *s = json_stringn(val->str ? val->str : "", val->len);
            json_object_set_new(d, name, s ? s : json_string("(not UTF-8)"));
        }
        json_array_append_new(arr, d);
    }
    freeReplyObject(r);
    *out = arr;
    return 0;
}

int sf_redis_admin_dead_requeue(struct sf_broker *b, const char *id, const char *task, size_t len,
                                const char *run_id, const char *task_id, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *k_done = sf_xasprintf("sf:run:%s:done", run_id && task_id ? run_id : "");
    const char *ka[] = { rb->k_dead, rb->k_tasks, k_done, id, task, run_id && task_id ? task_id : "" };
    size_t lens[] = { strlen(ka[0]), strlen(ka[1]), strlen(ka[2]), strlen(id), len, strlen(ka[5]) };
    redisReply *r;
    int rc = eval_script(rb, &r, err, errlen, lua_requeue, 3, ka, lens, 6);
    free(k_done);
    if (rc < 0) return rc;
    rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 1 : 0;
    freeReplyObject(r);
    return rc;
}

int sf_redis_admin_dead_purge(struct sf_broker *b, const char *const *ids, size_t n, char *err,
                              size_t errlen)
{
    struct redis_broker *rb = RB(b);
    redisReply *r;
    int rc;
    if (n == 0) {
        const char *a1[] = { "XLEN", rb->k_dead };
        const char *a2[] = { "DEL", rb->k_dead };
        long long had;
        if ((rc = sf_redis_cmd(rb->pool, &r, err, errlen, 2, a1, NULL)) < 0) return rc;
        had = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if ((rc = sf_redis_cmd(rb->pool, &r, err, errlen, 2, a2, NULL)) < 0) return rc;
        freeReplyObject(r);
        return (int)had;
    }
    const char **argv = sf_xcalloc(n + 2, sizeof(char *));
    argv[0] = "XDEL";
    argv[1] = rb->k_dead;
    for (size_t i = 0; i < n; i++) argv[2 + i] = ids[i];
    rc = sf_redis_cmd(rb->pool, &r, err, errlen, (int)n + 2, argv, NULL);
    free(argv);
    if (rc < 0) return rc;
    rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
    freeReplyObject(r);
    return rc;
}

/* --- serve: submissions and run documents ----------------------------------- */

static int sub_group(struct redis_broker *rb, char *err, size_t errlen)
{
    const char *argv[] = { "XGROUP", "CREATE", SUB_STREAM, SUB_GROUP, "0", "MKSTREAM" };
    redisReply *r;
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc == -EPROTO && strstr(err, "BUSYGROUP")) return 0;
    if (rc == 0) freeReplyObject(r);
    return rc;
}

/* The entry's fields as a JSON object of strings (d->data). */
static void sub_entry(const redisReply *e, struct sf_delivery *d)
{
    json_t *o = json_object();
    memset(d, 0, sizeof(*d));
    sf_strlcpy(d->handle, str_el(e->element[0]), sizeof(d->handle));
    const redisReply *f = e->element[1];
    for (size_t k = 0; f && f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
        json_t *s = json_stringn(f->element[k + 1]->str ? f->element[k + 1]->str : "",
                                 f->element[k + 1]->len);
        if (!s) snprintf(d->problem, sizeof(d->problem), "field '%.60s' is not UTF-8",
                         str_el(f->element[k]));
        else json_object_set_new(o, str_el(f->element[k]), s);
    }
    d->data = json_dumps(o, JSON_COMPACT);
    d->len = strlen(d->data);
    json_decref(o);
}

int sf_redis_serve_sub_fetch(struct sf_broker *b, const char *consumer, bool pending,
                             struct sf_delivery *out, size_t max, int block_ms, size_t *n,
                             char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char count[24], block[24];
    redisReply *r;
    int rc;
    *n = 0;
    if (!max) return 0;                  /* COUNT 0 would mean "all" */
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(block, sizeof(block), "%d", block_ms > 0 ? block_ms : 1);
    const char *argv[] = { "XREADGROUP", "GROUP", SUB_GROUP, consumer, "COUNT", count, "BLOCK", block,
                           "STREAMS", SUB_STREAM, pending ? "0" : ">" };
    const char *argv_nb[] = { "XREADGROUP", "GROUP", SUB_GROUP, consumer, "COUNT", count,
                              "STREAMS", SUB_STREAM, pending ? "0" : ">" };
    bool nb = pending || block_ms <= 0;
    rc = nb ? sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv_nb), argv_nb, NULL)
            : sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc == -ENOENT) {                 /* first use, or the stream was deleted */
        if ((rc = sub_group(rb, err, errlen)) < 0) return rc;
        rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(argv_nb), argv_nb, NULL);
    }
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *s = r->element[0];
        const redisReply *es = s->type == REDIS_REPLY_ARRAY && s->elements == 2 ? s->element[1] : NULL;
        for (size_t i = 0; es && es->type == REDIS_REPLY_ARRAY && i < es->elements && *n < max; i++) {
            const redisReply *e = es->element[i];
            /* A pending entry that was deleted meanwhile comes back with nil fields. */
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            sub_entry(e, &out[(*n)++]);
        }
    }
    freeReplyObject(r);
    return 0;
}

int sf_redis_serve_sub_ack(struct sf_broker *b, const char *handle, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    redisReply *r;
    const char *a1[] = { "XACK", SUB_STREAM, SUB_GROUP, handle };
    const char *a2[] = { "XDEL", SUB_STREAM, handle };
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(a1), a1, NULL);
    if (rc < 0) return rc;
    freeReplyObject(r);
    if ((rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(a2), a2, NULL)) < 0) return rc;
    freeReplyObject(r);
    return 0;
}

int sf_redis_serve_doc_put(struct sf_broker *b, const char *run_id, const char *doc, size_t len,
                           const char *reply_to, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *key = sf_xasprintf("sf:run:%s:doc", run_id);
    redisReply *r;
    const char *a1[] = { "SET", key, doc, "EX", rb->ttl_str };
    size_t l1[] = { 3, strlen(key), len, 2, strlen(rb->ttl_str) };
    int rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(a1), a1, l1);
    free(key);
    if (rc < 0) return rc;
    freeReplyObject(r);
    if (!reply_to) return 0;
    const char *a2[] = { "XADD", reply_to, "*", "run_id", run_id, "doc", doc };
    size_t l2[] = { 4, strlen(reply_to), 1, 6, strlen(run_id), 3, len };
    if ((rc = sf_redis_cmd(rb->pool, &r, err, errlen, NELEM(a2), a2, l2)) < 0) return rc;
    freeReplyObject(r);
    return 0;
}

int sf_redis_serve_doc_get(struct sf_broker *b, const char *run_id, char **doc, char *err,
                           size_t errlen)
{
    char *key = sf_xasprintf("sf:run:%s:doc", run_id);
    redisReply *r;
    const char *argv[] = { "GET", key };
    int rc = sf_redis_cmd(RB(b)->pool, &r, err, errlen, NELEM(argv), argv, NULL);
    free(key);
    *doc = NULL;
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_STRING) *doc = sf_xstrndup(r->str, r->len);
    freeReplyObject(r);
    return 0;
}
