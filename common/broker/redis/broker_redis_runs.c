/* common/broker/redis/broker_redis_runs.c: run ownership and the results of
 * many runs at once (serve), on Redis.
 * - run_claim: one Lua script: the run is known when its state hash, its
 *   results stream or its document exists; otherwise owner, claim and
 *   workflow are written into the state hash (sf:run:{id}) in the same
 *   step, so two submissions of one id cannot both win.
 * - results_many: one XREAD over every run's results stream, each from its
 *   own cursor; blocks until any of them has something. */
#include "broker_redis.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* KEYS: run state hash, run results stream, run document. ARGV: owner,
 * claim, workflow, ttl s. Returns {1} claimed, or {0, owner, claim,
 * workflow} with false for what is not recorded. */
static const char lua_claim[] =
    "if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) > 0 then\n"
    "  return {0, redis.call('HGET', KEYS[1], 'owner'), redis.call('HGET', KEYS[1], 'claim'),\n"
    "          redis.call('HGET', KEYS[1], 'workflow')}\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'claim', ARGV[2], 'workflow', ARGV[3],\n"
    "           'claimed_at', tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return {1}\n";

static char *str_or_null(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? sf_xstrndup(r->str, r->len) : NULL;
}

int sf_redis_run_claim(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                       struct sf_run_owner *found, char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    char *k_state = sf_xasprintf("sf:run:%s", run_id), *k_res = sf_xasprintf("sf:run:%s:results", run_id),
         *k_doc = sf_xasprintf("sf:run:%s:doc", run_id);
    const char *ka[] = { k_state, k_res, k_doc, mine->owner, mine->claim, mine->workflow ? mine->workflow : "",
                         rb->ttl_str };
    redisReply *r = NULL;
    memset(found, 0, sizeof(*found));
    int rc = sf_redis_eval(rb, &r, err, errlen, lua_claim, 3, (int)NELEM(ka) - 3, ka, NULL);
    free(k_state);
    free(k_res);
    free(k_doc);
    if (rc < 0) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        sf_errf(err, errlen, "claiming run '%s': unexpected reply", run_id);
        rc = -EPROTO;
    } else if (r->element[0]->integer == 1) {
        rc = 0;
    } else {
        found->owner = str_or_null(r->elements > 1 ? r->element[1] : NULL);
        found->claim = str_or_null(r->elements > 2 ? r->element[2] : NULL);
        found->workflow = str_or_null(r->elements > 3 ? r->element[3] : NULL);
        rc = 1;
    }
    freeReplyObject(r);
    return rc;
}

int sf_redis_results_many(struct sf_broker *b, struct sf_run_cursor *runs, size_t nruns, char **out,
                          size_t *lens, size_t *which, size_t max, int block_ms, size_t *n,
                          char *err, size_t errlen)
{
    struct redis_broker *rb = RB(b);
    size_t argc = 6 + 2 * nruns;
    const char **argv = sf_xcalloc(argc, sizeof(char *));
    char **keys = sf_xcalloc(nruns, sizeof(char *));
    char count[24], block[24];
    redisReply *r = NULL;
    int rc;
    *n = 0;
    if (!nruns) {
        sf_sleep_ms(block_ms > 0 ? block_ms : 0);
        rc = 0;
        goto out;
    }
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(block, sizeof(block), "%d", block_ms > 0 ? block_ms : 1);
    argv[0] = "XREAD"; argv[1] = "COUNT"; argv[2] = count; argv[3] = "BLOCK"; argv[4] = block;
    argv[5] = "STREAMS";
    for (size_t i = 0; i < nruns; i++) {
        keys[i] = sf_xasprintf("sf:run:%s:results", runs[i].run_id);
        argv[6 + i] = keys[i];
        argv[6 + nruns + i] = runs[i].cursor[0] ? runs[i].cursor : "0-0";
    }
    if ((rc = sf_redis_cmd(rb->pool, &r, err, errlen, (int)argc, argv, NULL)) < 0) goto out;
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
        const redisReply *st = r->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || st->element[0]->type != REDIS_REPLY_STRING)
            continue;
        size_t i = 0;
        while (i < nruns && strcmp(keys[i], st->element[0]->str)) i++;
        const redisReply *es = st->element[1];
        for (size_t e = 0; i < nruns && es->type == REDIS_REPLY_ARRAY && e < es->elements && *n < max; e++) {
            const redisReply *en = es->element[e];
            if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 || en->element[0]->type != REDIS_REPLY_STRING)
                continue;
            sf_strlcpy(runs[i].cursor, en->element[0]->str, sizeof(runs[i].cursor));
            const redisReply *f = en->element[1];
            for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
                if (strcmp(f->element[k]->str, "result") || *n >= max) continue;
                which[*n] = i;
                lens[*n] = f->element[k + 1]->len;
                out[(*n)++] = sf_xstrndup(f->element[k + 1]->str, f->element[k + 1]->len);
            }
        }
    }
out:
    if (r) freeReplyObject(r);
    for (size_t i = 0; i < nruns; i++) free(keys[i]);
    free(keys);
    free(argv);
    return rc;
}
