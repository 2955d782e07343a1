/* common/broker/redis/broker_redis_gate.c: concurrency keys, rate limits and
 * priority bands on Redis (docs/protocol.md §9 has the layout and the
 * trade-offs).
 *
 * DESIGN.
 * - Gates are checked by the worker that holds the delivery, just before
 *   it would start the task, in one script (sf_redis_lua_gate_enter): slot
 *   and token are taken together, or the task WAITS — it leaves the stream
 *   for the gate's waiting set, so it holds no worker slot and blocks no
 *   other key. When capacity frees (a slot given back by gate_leave, an
 *   expired slot, a new token), the oldest waiters go back to their stream
 *   with a reservation for exactly that task (maintain does it for expiry
 *   and tokens every 250 ms). Slots are leases: a holder renews with its
 *   delivery (the renew script), a worker killed -9 stops renewing and its
 *   slot expires with its lease.
 * - Priorities are bands, one stream each (band 0 = sf:Q:tasks). While no
 *   band p >= 1 holds entries (the worker learns it from the maintain call
 *   it makes anyway) fetch is the plain XREADGROUP BLOCK of band 0: unused
 *   priorities cost no round trip. Otherwise one script delivers in priority
 *   order with linear aging, and when nothing is undelivered anywhere the
 *   worker blocks in XREAD on every band from the groups' last-delivered
 *   ids: woken by anything new, without taking it.
 * - A task XADDed to band 0 with a priority (an integration, a retry, a
 *   replayed dead letter) is moved to its band by the worker that gets it
 *   (route), then delivered by priority like any other.
 */
#include "broker.h"
#include "broker_redis.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))


int sf_redis_gate_enter(struct sf_broker *b, const char *handle, const struct sf_task *t,
                        const char *raw, size_t len, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    const struct sf_concurrency *c = &t->concurrency;
    const struct sf_rate *r = &t->rate;
    const char *id;
    const char *stream = sf_redis_handle_stream(rb, handle, &id);
    char *k_conc = sf_xasprintf("sf:gate:conc:%s", c->key);
    char *k_cwait = sf_xasprintf("sf:gate:conc:%s:wait", c->key);
    char *k_rate = sf_xasprintf("sf:gate:rate:%s", r->key);
    char *k_res = sf_xasprintf("sf:gate:rate:%s:res", r->key);
    char *k_rwait = sf_xasprintf("sf:gate:rate:%s:wait", r->key);
    const char *me = b->cfg.consumer ? b->cfg.consumer : "";
    char *holder = sf_xasprintf("%s/%s@%s", b->cfg.queue, handle, me);
    char limit[24], per_s[40], burst[24], lease[24], score[32];
    /* Waiting order: older first, a priority level worth aging_ms of age
     * (the rule the band fetch applies too). */
    int64_t created = t->created_at > 0 ? t->created_at : sf_wall_ms();
    snprintf(limit, sizeof(limit), "%lld", (long long)c->limit);
    snprintf(per_s, sizeof(per_s), "%.17g", r->per_s);
    snprintf(burst, sizeof(burst), "%lld", (long long)r->burst);
    snprintf(lease, sizeof(lease), "%lld", (long long)rb->lease_ms);
    snprintf(score, sizeof(score), "%lld", (long long)(created - (int64_t)t->priority * rb->aging_ms));
    const char *ka[] = { stream, k_conc, k_cwait, k_rate, k_res, k_rwait, "sf:gates", "sf:gates:waiting",
                         rb->k_held,
                         id, me, holder, t->id, c->key, limit,
                         r->key, per_s, burst, lease, raw, score, handle,
                         sf_redis_hold(rb) ? "1" : "0" };
    size_t lens[NELEM(ka)];
    for (size_t i = 0; i < NELEM(ka); i++) lens[i] = strlen(ka[i]);
    lens[19] = len;
    redisReply *rep;
    int rc = sf_redis_eval(rb, &rep, err, errlen, sf_redis_lua_gate_enter, 9, 14, ka, lens);
    if (rc == 0) rc = sf_redis_int_reply(rep);
    if (rc > 2) rc = -EPROTO;
    free(k_conc);
    free(k_cwait);
    free(k_rate);
    free(k_res);
    free(k_rwait);
    free(holder);
    return rc;
}

int sf_redis_gate_leave(struct sf_broker *b, const char *handle, const struct sf_task *t,
                        char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    redisReply *rep;
    char lease[24];
    if (!t->concurrency.key[0]) return 0;            /* a token is spent, nothing to give back */
    char *k_conc = sf_xasprintf("sf:gate:conc:%s", t->concurrency.key);
    char *gate = sf_xasprintf("conc:%s", t->concurrency.key);
    char *holder = sf_xasprintf("%s/%s@%s", b->cfg.queue, handle, b->cfg.consumer ? b->cfg.consumer : "");
    snprintf(lease, sizeof(lease), "%lld", (long long)rb->lease_ms);
    const char *ka[] = { k_conc, rb->k_held, holder, handle, gate, lease, sf_redis_hold(rb) ? "1" : "0" };
    int rc = sf_redis_eval(rb, &rep, err, errlen, sf_redis_lua_gate_leave, 2, 5, ka, NULL);
    if (rc == 0) freeReplyObject(rep);
    free(k_conc);
    free(gate);
    free(holder);
    return rc;
}

int sf_redis_route(struct sf_broker *b, const char *handle, int priority, const char *raw,
                   size_t len, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    const char *id;
    const char *stream = sf_redis_handle_stream(rb, handle, &id);
    redisReply *rep;
    if (priority < 1 || priority >= SF_REDIS_BANDS) {
        sf_errf(err, errlen, "priority %d has no band", priority);
        return -EINVAL;
    }
    const char *ka[] = { stream, rb->k_band[priority], id, b->cfg.consumer ? b->cfg.consumer : "", raw };
    size_t lens[] = { strlen(ka[0]), strlen(ka[1]), strlen(id), strlen(ka[3]), len };
    int rc = sf_redis_eval(rb, &rep, err, errlen, sf_redis_lua_route, 2, 3, ka, lens);
    if (rc < 0) return rc;
    rc = sf_redis_int_reply(rep);
    if (rc == 1) atomic_fetch_or(&rb->bands, 1u << priority);
    return rc == 1 ? 0 : 1;
}

int sf_redis_gates(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    redisReply *r;
    const char *ka[] = { "100" };
    int rc = sf_redis_eval(RB(b), &r, err, errlen, sf_redis_lua_gates, 0, 1, ka, NULL);
    if (rc < 0) return rc;
    json_t *a = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_ARRAY || g->elements != 4 || g->element[0]->type != REDIS_REPLY_STRING ||
            g->element[1]->type != REDIS_REPLY_STRING)
            continue;
        const char *name = g->element[0]->str, *spec = g->element[1]->str;
        long long v = g->element[2]->integer, waiting = g->element[3]->integer;
        if (!strncmp(name, "conc:", 5)) {
            json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I}", "gate", name, "limit",
                                               (json_int_t)atoll(spec), "running", (json_int_t)v,
                                               "waiting", (json_int_t)waiting));
        } else {
            double per_s = 0;
            long long burst = 0;
            if (sscanf(spec, "%lf %lld", &per_s, &burst) != 2) continue;
            json_array_append_new(a, json_pack("{s:s, s:f, s:I, s:f, s:I}", "gate", name, "per_s", per_s,
                                               "burst", (json_int_t)burst, "tokens", (double)v / 1000.0,
                                               "waiting", (json_int_t)waiting));
        }
    }
    freeReplyObject(r);
    *out = a;
    return 0;
}

/* One run of the band fetch script over band 0 and the bands believed to
 * exist (all ten while that is not known). lasts[b] gets band b's
 * last-delivered id ("" when its stream does not exist or was not asked). */
static int band_fetch_once(struct redis_broker *rb, struct sf_delivery *out, size_t max, size_t *n,
                           char lasts[SF_REDIS_BANDS][64], char *err, size_t errlen)
{
    char count[24], aging[24], nums[SF_REDIS_BANDS][4];
    const char *ka[2 * SF_REDIS_BANDS + 3];
    int band_of[SF_REDIS_BANDS], nk = 0;
    unsigned known = atomic_load(&rb->bands);
    redisReply *r;
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(aging, sizeof(aging), "%lld", (long long)rb->aging_ms);
    for (int p = 0; p < SF_REDIS_BANDS; p++) {
        lasts[p][0] = '\0';
        if (p > 0 && !(known & SF_REDIS_BANDS_UNKNOWN) && !(known & (1u << p))) continue;
        band_of[nk] = p;
        ka[nk++] = rb->k_band[p];
    }
    ka[nk] = rb->base.cfg.consumer ? rb->base.cfg.consumer : "coordinator";
    ka[nk + 1] = count;
    ka[nk + 2] = aging;
    for (int i = 0; i < nk; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%d", band_of[i]);
        ka[nk + 3 + i] = nums[i];
    }
    int rc = sf_redis_eval(rb, &r, err, errlen, sf_redis_lua_band_fetch, nk, nk + 3, ka, NULL);
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const redisReply *es = r->element[0], *ls = r->element[2];
        for (size_t i = 0; es->type == REDIS_REPLY_ARRAY && i < es->elements && *n < max; i++) {
            const redisReply *e = es->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 3 || e->element[1]->type != REDIS_REPLY_STRING)
                continue;
            sf_redis_entry_to_delivery(e->element[1], e->element[2], &out[(*n)++], false,
                                       (int)e->element[0]->integer);
        }
        if (r->element[1]->type == REDIS_REPLY_INTEGER) atomic_store(&rb->bands, (unsigned)r->element[1]->integer);
        for (int i = 0; i < nk && ls->type == REDIS_REPLY_ARRAY && (size_t)i < ls->elements; i++)
            if (ls->element[i]->type == REDIS_REPLY_STRING)
                sf_strlcpy(lasts[band_of[i]], ls->element[i]->str, sizeof(lasts[0]));
    }
    freeReplyObject(r);
    return 0;
}

int sf_redis_band_fetch(struct redis_broker *rb, struct sf_delivery *out, size_t max,
                        int block_ms, size_t *n, char *err, size_t errlen)
{
    char lasts[SF_REDIS_BANDS][64], block[24];
    const char *argv[6 + 2 * SF_REDIS_BANDS];
    int argc = 0, streams = 0;
    redisReply *r;
    *n = 0;
    int rc = band_fetch_once(rb, out, max, n, lasts, err, errlen);
    if (rc < 0 || *n || block_ms <= 0) return rc;
    /* Nothing undelivered in any band: block until any band gets an entry
     * newer than what its group has delivered (XREAD takes nothing), then
     * deliver by priority. */
    snprintf(block, sizeof(block), "%d", block_ms);
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = "1";
    argv[argc++] = "BLOCK";
    argv[argc++] = block;
    argv[argc++] = "STREAMS";
    for (int p = 0; p < SF_REDIS_BANDS; p++)
        if (lasts[p][0]) argv[argc + streams++] = rb->k_band[p];
    for (int p = 0, k = 0; p < SF_REDIS_BANDS; p++)
        if (lasts[p][0]) argv[argc + streams + k++] = lasts[p];
    if (!streams) return 0;
    rc = sf_redis_cmd(rb->pool, &r, err, errlen, argc + 2 * streams, argv, NULL);
    if (rc < 0) return rc;
    bool woken = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    return woken ? band_fetch_once(rb, out, max, n, lasts, err, errlen) : 0;
}
