/* common/broker/redis/broker_redis_cb.c: pending callback deliveries in Redis.
 *
 * Design. For queue Q:
 *   sf:Q:callbacks        hash: delivery id -> record (JSON, callback.h)
 *   sf:Q:callbacks:due    zset: delivery id -> due time (ms, Redis clock)
 *   sf:Q:callbacks:dead   hash: delivery id -> record with last_error, failed_at
 * A record enters with its task's result (the complete script writes both,
 * see broker_redis_lua.c) or from the coordinator (a run's callback), due
 * now. A dispatcher claims due ids by moving their score to now + lease:
 * the zset is both the schedule and the lease table, so a worker killed
 * mid-delivery loses nothing — its deliveries fall due again when the lease
 * runs out and any worker (or its restarted self) takes them. The score a
 * claim wrote is its fence token: settle only acts while the score is still
 * that value, so a slow first claimer cannot undo a second claimer's work.
 * The scripts live here rather than in broker_redis_lua.c because nothing
 * else uses them. */
#include "broker_redis.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define LUA_NOW                                                                 \
    "local t = redis.call('TIME')\n"                                            \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS: callbacks, due, once marker. ARGV: id, record, use marker '0'/'1',
 * ttl s. 1 queued, 0 the marker was already set. */
static const char lua_enqueue[] =
    "if ARGV[3] == '1' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then return 0 end\n"
    LUA_NOW
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "return 1\n";

/* KEYS: callbacks, due. ARGV: max, lease ms. Returns {id, token, record}... ;
 * ids without a record (purged meanwhile) are dropped from the schedule. */
static const char lua_claim[] =
    LUA_NOW
    "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "local out = {}\n"
    "for _, id in ipairs(due) do\n"
    "  local rec = redis.call('HGET', KEYS[1], id)\n"
    "  if rec then\n"
    "    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)\n"
    "    out[#out + 1] = id\n"
    "    out[#out + 1] = redis.call('ZSCORE', KEYS[2], id)\n"
    "    out[#out + 1] = rec\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[2], id)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: callbacks, due, dead. ARGV: id, token, how (done|retry|dead|release),
 * record, delay ms. 1 settled, 0 not ours any more. */
static const char lua_settle[] =
    "local s = redis.call('ZSCORE', KEYS[2], ARGV[1])\n"
    "if not s or s ~= ARGV[2] then return 0 end\n"
    LUA_NOW
    "if ARGV[3] == 'done' then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "elseif ARGV[3] == 'retry' then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])\n"
    "  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])\n"
    "elseif ARGV[3] == 'dead' then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])\n"
    "else\n"
    "  redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "end\n"
    "return 1\n";

/* KEYS: callbacks, due, dead. ARGV: '1' dead / '0' pending, max (0 = all).
 * Returns {now, {id, due ms or '', record}...}. */
static const char lua_list[] =
    LUA_NOW
    "local out = {}\n"
    "local max = tonumber(ARGV[2])\n"
    "if ARGV[1] == '1' then\n"
    "  local all = redis.call('HGETALL', KEYS[3])\n"
    "  for i = 1, #all, 2 do\n"
    "    if max > 0 and #out >= 3 * max then break end\n"
    "    out[#out + 1] = all[i]; out[#out + 1] = ''; out[#out + 1] = all[i + 1]\n"
    "  end\n"
    "else\n"
    "  local ids = redis.call('ZRANGE', KEYS[2], 0, max - 1, 'WITHSCORES')\n"
    "  for i = 1, #ids, 2 do\n"
    "    out[#out + 1] = ids[i]; out[#out + 1] = ids[i + 1]\n"
    "    out[#out + 1] = redis.call('HGET', KEYS[1], ids[i]) or ''\n"
    "  end\n"
    "end\n"
    "return {now, out}\n";

/* KEYS: dead, callbacks, due. ARGV: id, record. 1 moved, 0 not there. */
static const char lua_requeue[] =
    "if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    LUA_NOW
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "redis.call('ZADD', KEYS[3], now, ARGV[1])\n"
    "return 1\n";

/* KEYS: callbacks, due, dead. ARGV: '1' dead / '0' pending, ids... (none:
 * all). Returns how many records went. */
static const char lua_purge[] =
    "local n = 0\n"
    "if ARGV[1] == '1' then\n"
    "  if #ARGV == 1 then n = redis.call('HLEN', KEYS[3]); redis.call('DEL', KEYS[3]); return n end\n"
    "  for i = 2, #ARGV do n = n + redis.call('HDEL', KEYS[3], ARGV[i]) end\n"
    "  return n\n"
    "end\n"
    "if #ARGV == 1 then n = redis.call('HLEN', KEYS[1]); redis.call('DEL', KEYS[1], KEYS[2]); return n end\n"
    "for i = 2, #ARGV do\n"
    "  n = n + redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[i])\n"
    "end\n"
    "return n\n";

struct cb_keys {
    char *cb, *due, *dead;
};

static void keys_init(struct cb_keys *k, const struct sf_broker *b)
{
    k->cb = sf_xasprintf("sf:%s:callbacks", b->cfg.queue);
    k->due = sf_xasprintf("sf:%s:callbacks:due", b->cfg.queue);
    k->dead = sf_xasprintf("sf:%s:callbacks:dead", b->cfg.queue);
}

static void keys_clear(struct cb_keys *k)
{
    free(k->cb);
    free(k->due);
    free(k->dead);
}


int sf_redis_cb_enqueue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        const char *once_key, char *err, size_t errlen)
{
    struct cb_keys k;
    char ttl[24];
    redisReply *r;
    keys_init(&k, b);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(b->cfg.ttl_s > 0 ? b->cfg.ttl_s : SF_BROKER_DEFAULT_TTL_S));
    const char *ka[] = { k.cb, k.due, once_key ? once_key : k.cb, id, rec, once_key ? "1" : "0", ttl };
    size_t lens[NELEM(ka)];
    for (size_t i = 0; i < NELEM(ka); i++) lens[i] = strlen(ka[i]);
    lens[4] = len;
    int rc = sf_redis_eval(RB(b), &r, err, errlen, lua_enqueue, 3, (int)(NELEM(ka)) - 3, ka, lens);
    keys_clear(&k);
    if (rc < 0) return rc;
    return sf_redis_int_reply(r) == 1 ? 0 : 1;
}

int sf_redis_cb_claim(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                      size_t max, size_t *n, char *err, size_t errlen)
{
    struct cb_keys k;
    char smax[24], slease[24];
    redisReply *r;
    *n = 0;
    if (!max) return 0;
    keys_init(&k, b);
    snprintf(smax, sizeof(smax), "%zu", max);
    snprintf(slease, sizeof(slease), "%lld", (long long)(lease_ms > 0 ? lease_ms : 1));
    const char *ka[] = { k.cb, k.due, smax, slease };
    int rc = sf_redis_eval(RB(b), &r, err, errlen, lua_claim, 2, (int)(NELEM(ka)) - 2, ka, NULL);
    keys_clear(&k);
    if (rc < 0) return rc;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 2 < r->elements && *n < max; i += 3) {
        const redisReply *id = r->element[i], *tok = r->element[i + 1], *rec = r->element[i + 2];
        if (id->type != REDIS_REPLY_STRING || tok->type != REDIS_REPLY_STRING ||
            rec->type != REDIS_REPLY_STRING)
            continue;
        struct sf_callback_claim *c = &out[(*n)++];
        c->id = sf_xstrndup(id->str, id->len);
        c->record = sf_xstrndup(rec->str, rec->len);
        c->len = rec->len;
        sf_strlcpy(c->token, tok->str, sizeof(c->token));
    }
    freeReplyObject(r);
    return 0;
}

int sf_redis_cb_settle(struct sf_broker *b, const char *id, const char *token,
                       enum sf_callback_settle how, const char *rec, size_t len, int64_t delay_ms,
                       char *err, size_t errlen)
{
    static const char *const hows[] = {
        [SF_CALLBACK_SETTLE_DONE] = "done", [SF_CALLBACK_SETTLE_RETRY] = "retry",
        [SF_CALLBACK_SETTLE_DEAD] = "dead", [SF_CALLBACK_SETTLE_RELEASE] = "release",
    };
    struct cb_keys k;
    char sdelay[24];
    redisReply *r;
    if ((unsigned)how >= NELEM(hows)) return -EINVAL;
    keys_init(&k, b);
    snprintf(sdelay, sizeof(sdelay), "%lld", (long long)(delay_ms > 0 ? delay_ms : 0));
    const char *ka[] = { k.cb, k.due, k.dead, id, token, hows[how], rec ? rec : "", sdelay };
    size_t lens[NELEM(ka)];
    for (size_t i = 0; i < NELEM(ka); i++) lens[i] = strlen(ka[i]);
    if (rec) lens[6] = len;
    int rc = sf_redis_eval(RB(b), &r, err, errlen, lua_settle, 3, (int)(NELEM(ka)) - 3, ka, lens);
    keys_clear(&k);
    if (rc < 0) return rc;
    return sf_redis_int_reply(r) == 1 ? 0 : 1;
}

int sf_redis_cb_list(struct sf_broker *b, bool dead, size_t max, json_t **out, char *err,
                     size_t errlen)
{
    struct cb_keys k;
    char smax[24];
    redisReply *r;
    *out = NULL;
    keys_init(&k, b);
    snprintf(smax, sizeof(smax), "%zu", max);
    const char *ka[] = { k.cb, k.due, k.dead, dead ? "1" : "0", smax };
    int rc = sf_redis_eval(RB(b), &r, err, errlen, lua_list, 3, (int)(NELEM(ka)) - 3, ka, NULL);
    keys_clear(&k);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_ARRAY) {
        long long now = r->element[0]->integer;
        const redisReply *l = r->element[1];
        for (size_t i = 0; i + 2 < l->elements; i += 3) {
            json_t *e = json_pack("{s:s#, s:s#}", "id", l->element[i]->str, (int)l->element[i]->len,
                                  "record", l->element[i + 2]->str, (int)l->element[i + 2]->len);
            if (!dead) {
                long long due = strtoll(l->element[i + 1]->str ? l->element[i + 1]->str : "0", NULL, 10);
                json_object_set_new(e, "due_in_ms", json_integer(due - now));
            }
            json_array_append_new(arr, e);
        }
    }
    freeReplyObject(r);
    *out = arr;
    return 0;
}

int sf_redis_cb_requeue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        char *err, size_t errlen)
{
    struct cb_keys k;
    redisReply *r;
    keys_init(&k, b);
    const char *ka[] = { k.dead, k.cb, k.due, id, rec };
    size_t lens[] = { strlen(k.dead), strlen(k.cb), strlen(k.due), strlen(id), len };
    int rc = sf_redis_eval(RB(b), &r, err, errlen, lua_requeue, 3, (int)(NELEM(ka)) - 3, ka, lens);
    keys_clear(&k);
    if (rc < 0) return rc;
    return sf_redis_int_reply(r) == 1 ? 1 : 0;
}

int sf_redis_cb_purge(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                      char *err, size_t errlen)
{
    struct cb_keys k;
    redisReply *r;
    keys_init(&k, b);
    const char **ka = sf_xcalloc(n + 4, sizeof(char *));
    ka[0] = k.cb;
    ka[1] = k.due;
    ka[2] = k.dead;
    ka[3] = dead ? "1" : "0";
    for (size_t i = 0; i < n; i++) ka[4 + i] = ids[i];
    int rc = sf_redis_eval(RB(b), &r, err, errlen, lua_purge, 3, (int)(n + 4) - 3, ka, NULL);
    free(ka);
    keys_clear(&k);
    if (rc < 0) return rc;
    return sf_redis_int_reply(r);
}
