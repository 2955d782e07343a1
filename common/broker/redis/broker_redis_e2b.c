/* common/broker/redis/broker_redis_e2b.c: the E2B fleet's state in Redis
 * (docs/protocol.md "E2B fleet"):
 *   sf:e2b:workers         zset: E2B worker id by last heartbeat (ms, Redis clock)
 *   sf:e2b:workers:info    hash: worker id -> capacity JSON (e2b_fleet.h)
 *   sf:e2b:sbx:<id>        hash: w = owner worker id, r = record JSON
 *   sf:e2b:sandboxes       zset: sandbox id by start time (ms): the list, newest first
 *   sf:e2b:w:<worker>      set: the sandbox ids a worker owns
 * Every change is one script, so a record never exists without its index
 * entries, and liveness (a heartbeat younger than the worker's own lease) is
 * judged against Redis' clock, the same for every gateway. The scripts build
 * per-worker and per-sandbox key names from prefixes: one Redis, not a
 * Cluster (like the rest of the Redis backend). */
#include "broker_redis.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define K_WORKERS "sf:e2b:workers"
#define K_INFO "sf:e2b:workers:info"
#define K_INDEX "sf:e2b:sandboxes"
#define P_SBX "sf:e2b:sbx:"
#define P_WSET "sf:e2b:w:"

#define LUA_NOW \
    "local t = redis.call('TIME')\n" \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* Drop every record owned by worker w (ARGV-independent helper). */
#define LUA_PURGE \
    "local function purge(w)\n" \
    "  local set = '" P_WSET "' .. w\n" \
    "  local ids = redis.call('SMEMBERS', set)\n" \
    "  for _, id in ipairs(ids) do\n" \
    "    local k = '" P_SBX "' .. id\n" \
    "    if redis.call('HGET', k, 'w') == w then\n" \
    "      redis.call('DEL', k)\n" \
    "      redis.call('ZREM', KEYS[3], id)\n" \
    "    end\n" \
    "  end\n" \
    "  redis.call('DEL', set)\n" \
    "  return #ids\n" \
    "end\n" \
    "local function lease(info)\n" \
    "  local ok, j = pcall(cjson.decode, info or '')\n" \
    "  if ok and type(j) == 'table' and tonumber(j.lease_ms) then return tonumber(j.lease_ms) end\n" \
    "  return 30000\n" \
    "end\n"

/* KEYS: workers, info, index. ARGV: worker id, info JSON, mode (0 beat,
 * 1 first, 2 leaving). Returns 1 when the worker was registered before. */
static const char lua_beat[] =
    LUA_PURGE
    "local known = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if ARGV[3] == '2' then\n"
    "  purge(ARGV[1])\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  return 0\n"
    "end\n"
    "if ARGV[3] == '1' then purge(ARGV[1]) end\n"
    LUA_NOW
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "if known then return 1 end\n"
    "return 0\n";

/* KEYS: workers, info. Returns {id, info, age ms, ...}. */
static const char lua_workers[] =
    LUA_NOW
    "local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "local out = {}\n"
    "for i = 1, #z, 2 do\n"
    "  local info = redis.call('HGET', KEYS[2], z[i])\n"
    "  if info then\n"
    "    out[#out + 1] = z[i]\n"
    "    out[#out + 1] = info\n"
    "    out[#out + 1] = now - tonumber(z[i + 1])\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: record, index, workers, worker's set. ARGV: id, worker, record,
 * started ms, '1' = only when absent. -1 when the worker is not registered. */
static const char lua_put[] =
    "if not redis.call('ZSCORE', KEYS[3], ARGV[2]) then return -1 end\n"
    "if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 1 end\n"
    "redis.call('HSET', KEYS[1], 'w', ARGV[2], 'r', ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])\n"
    "redis.call('SADD', KEYS[4], ARGV[1])\n"
    "return 1\n";

/* KEYS: record, workers, info. Returns {} or {record, owner info ('' when
 * unregistered), owner's heartbeat age (-1 when unregistered)}. */
static const char lua_get[] =
    "local v = redis.call('HMGET', KEYS[1], 'w', 'r')\n"
    "if not v[1] or not v[2] then return {} end\n"
    LUA_NOW
    "local s = redis.call('ZSCORE', KEYS[2], v[1])\n"
    "local info = redis.call('HGET', KEYS[3], v[1])\n"
    "if not s or not info then return {v[2], '', -1} end\n"
    "return {v[2], info, now - tonumber(s)}\n";

/* KEYS: record, index. ARGV: id. */
static const char lua_del[] =
    "local w = redis.call('HGET', KEYS[1], 'w')\n"
    "if not w then redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end\n"
    "redis.call('SREM', '" P_WSET "' .. w, ARGV[1])\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "return 1\n";

/* KEYS: workers, info, index. Records of live owners, newest first. */
static const char lua_list[] =
    LUA_PURGE LUA_NOW
    "local live, out = {}, {}\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, -1)) do\n"
    "  local v = redis.call('HMGET', '" P_SBX "' .. id, 'w', 'r')\n"
    "  if v[1] and v[2] then\n"
    "    local ok = live[v[1]]\n"
    "    if ok == nil then\n"
    "      local s = redis.call('ZSCORE', KEYS[1], v[1])\n"
    "      local info = redis.call('HGET', KEYS[2], v[1])\n"
    "      ok = s ~= false and info ~= false and now - tonumber(s) <= lease(info)\n"
    "      live[v[1]] = ok\n"
    "    end\n"
    "    if ok then out[#out + 1] = v[2] end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: workers, info, index. Reaps workers older than their lease. */
static const char lua_reap[] =
    LUA_PURGE LUA_NOW
    "local n = 0\n"
    "local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "for i = 1, #z, 2 do\n"
    "  local info = redis.call('HGET', KEYS[2], z[i])\n"
    "  if now - tonumber(z[i + 1]) > lease(info) then\n"
    "    n = n + purge(z[i])\n"
    "    redis.call('ZREM', KEYS[1], z[i])\n"
    "    redis.call('HDEL', KEYS[2], z[i])\n"
    "  end\n"
    "end\n"
    "return n\n";

static int eval(struct sf_broker *b, redisReply **r, char *err, size_t errlen, const char *script,
                int nkeys, const char **ka, const size_t *lens, size_t nka)
{
    return sf_redis_eval(RB(b), r, err, errlen, script, nkeys, (int)nka - nkeys, ka, lens);
}

static int64_t reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return -1;
}

/* A worker's capacity JSON with "age_ms" added, or NULL when it is not an
 * object (not ours to judge: left out). */
static json_t *info_aged(const redisReply *info, const redisReply *age)
{
    json_t *j = info->type == REDIS_REPLY_STRING && info->len ? json_loadb(info->str, info->len, 0, NULL)
                                                              : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    json_object_set_new(j, "age_ms", json_integer(reply_int(age)));
    return j;
}

int sf_redis_e2b_beat(struct sf_broker *b, const char *worker, const char *info,
                      enum sf_e2b_beat mode, char *err, size_t errlen)
{
    redisReply *r;
    const char *m = mode == SF_E2B_BEAT_LEAVING ? "2" : mode == SF_E2B_BEAT_FIRST ? "1" : "0";
    const char *ka[] = { K_WORKERS, K_INFO, K_INDEX, worker, info, m };
    int rc = eval(b, &r, err, errlen, lua_beat, 3, ka, NULL, NELEM(ka));
    if (rc < 0) return rc;
    rc = reply_int(r) == 1;
    freeReplyObject(r);
    return rc;
}

int sf_redis_e2b_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    redisReply *r;
    const char *ka[] = { K_WORKERS, K_INFO };
    int rc = eval(b, &r, err, errlen, lua_workers, 2, ka, NULL, NELEM(ka));
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 3 <= r->elements; i += 3) {
        json_t *j = info_aged(r->element[i + 1], r->element[i + 2]);
        if (j) json_array_append_new(arr, j);
    }
    freeReplyObject(r);
    *out = arr;
    return 0;
}

int sf_redis_e2b_put(struct sf_broker *b, const char *id, const char *worker, const char *rec,
                     size_t len, int64_t started_ms, bool if_absent, char *err, size_t errlen)
{
    redisReply *r;
    char key[128], wset[192], started[24];
    snprintf(key, sizeof(key), P_SBX "%s", id);
    snprintf(wset, sizeof(wset), P_WSET "%s", worker);
    snprintf(started, sizeof(started), "%lld", (long long)started_ms);
    const char *ka[] = { key, K_INDEX, K_WORKERS, wset, id, worker, rec, started, if_absent ? "1" : "0" };
    size_t lens[] = { strlen(key), strlen(K_INDEX), strlen(K_WORKERS), strlen(wset), strlen(id),
                      strlen(worker), len, strlen(started), 1 };
    int rc = eval(b, &r, err, errlen, lua_put, 4, ka, lens, NELEM(ka));
    if (rc < 0) return rc;
    rc = reply_int(r) == 1 ? 0 : -ENOENT;
    freeReplyObject(r);
    if (rc < 0) sf_errf(err, errlen, "E2B worker %s is not registered (dead or gone)", worker);
    return rc;
}

int sf_redis_e2b_get(struct sf_broker *b, const char *id, char **rec, json_t **owner, char *err,
                     size_t errlen)
{
    redisReply *r;
    char key[128];
    *rec = NULL;
    *owner = NULL;
    snprintf(key, sizeof(key), P_SBX "%s", id);
    const char *ka[] = { key, K_WORKERS, K_INFO };
    int rc = eval(b, &r, err, errlen, lua_get, 3, ka, NULL, NELEM(ka));
    if (rc < 0) return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING) {
        *rec = sf_xstrndup(r->element[0]->str, r->element[0]->len);
        *owner = info_aged(r->element[1], r->element[2]);
    }
    freeReplyObject(r);
    return 0;
}

int sf_redis_e2b_del(struct sf_broker *b, const char *id, char *err, size_t errlen)
{
    redisReply *r;
    char key[128];
    snprintf(key, sizeof(key), P_SBX "%s", id);
    const char *ka[] = { key, K_INDEX, id };
    int rc = eval(b, &r, err, errlen, lua_del, 2, ka, NULL, NELEM(ka));
    if (rc < 0) return rc;
    rc = reply_int(r) == 1;
    freeReplyObject(r);
    return rc;
}

/* Strings of an array reply, copied. */
static void strv_from(const redisReply *r, char ***out, size_t *n)
{
    size_t k = 0, cap = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    char **v = sf_xcalloc(cap ? cap : 1, sizeof(char *));
    for (size_t i = 0; i < cap; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            v[k++] = sf_xstrndup(r->element[i]->str, r->element[i]->len);
    *out = v;
    *n = k;
}

int sf_redis_e2b_list(struct sf_broker *b, char ***recs, size_t *n, char *err, size_t errlen)
{
    redisReply *r;
    const char *ka[] = { K_WORKERS, K_INFO, K_INDEX };
    int rc = eval(b, &r, err, errlen, lua_list, 3, ka, NULL, NELEM(ka));
    if (rc < 0) return rc;
    strv_from(r, recs, n);
    freeReplyObject(r);
    return 0;
}

int sf_redis_e2b_owned(struct sf_broker *b, const char *worker, char ***ids, size_t *n, char *err,
                       size_t errlen)
{
    redisReply *r;
    char wset[192];
    snprintf(wset, sizeof(wset), P_WSET "%s", worker);
    const char *argv[] = { "SMEMBERS", wset };
    int rc = sf_redis_cmd(sf_redis_broker_pool(b), &r, err, errlen, NELEM(argv), argv, NULL);
    if (rc < 0) return rc;
    strv_from(r, ids, n);
    freeReplyObject(r);
    return 0;
}

int sf_redis_e2b_reap(struct sf_broker *b, char *err, size_t errlen)
{
    redisReply *r;
    const char *ka[] = { K_WORKERS, K_INFO, K_INDEX };
    int rc = eval(b, &r, err, errlen, lua_reap, 3, ka, NULL, NELEM(ka));
    if (rc < 0) return rc;
    rc = (int)reply_int(r);
    freeReplyObject(r);
    return rc;
}
