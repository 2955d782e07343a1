/* common/broker/redis/broker_redis_lua.c: the Lua scripts of the Redis broker. Each
 * script is one atomic state transition (Redis runs a script without
 * interleaving other commands), which is how "the result is written and the
 * task acked in one step" holds even if the worker dies between two calls.
 * Times come from Redis' own clock (TIME), so workers with skewed clocks
 * agree on due retries and heartbeats. Acked entries are deleted (XDEL) so the
 * task stream only holds work not yet done. */
#include "broker_redis.h"

/* KEYS: run's published set, tasks stream. ARGV: task id, task json, ttl s.
 * Returns 1 published, 0 already published by an earlier coordinator. */
const char sf_redis_lua_publish[] =
    "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('XADD', KEYS[2], '*', 'task', ARGV[2])\n"
    "return 1\n";

/* KEYS: tasks, run results stream, run done hash, dead stream, reply_to,
 * callbacks hash, callbacks due zset.
 * ARGV: entry id ('' = none), task id, result json, ttl s, has reply_to
 * '0'/'1', raw task to dead-letter, dead reason ('' = none), callback id
 * ('' = none), callback record (due now: workers deliver it).
 * The done hash keeps one result per task id: a second completion of the
 * same task (a reclaimed duplicate) only acks. Returns 1 stored, 0 dup. */
const char sf_redis_lua_complete[] =
    "local fresh = redis.call('HSETNX', KEYS[3], ARGV[2], '1')\n"
    "if fresh == 1 then\n"
    "  redis.call('XADD', KEYS[2], '*', 'result', ARGV[3])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[3], ARGV[4])\n"
    "  if ARGV[5] == '1' then redis.call('XADD', KEYS[5], '*', 'result', ARGV[3]) end\n"
    "  if ARGV[7] ~= '' then\n"
    "    redis.call('XADD', KEYS[4], '*', 'task', ARGV[6], 'reason', ARGV[7])\n"
    "  end\n"
    "  if ARGV[8] ~= nil and ARGV[8] ~= '' then\n"
    "    local t = redis.call('TIME')\n"
    "    redis.call('HSET', KEYS[6], ARGV[8], ARGV[9])\n"
    "    redis.call('ZADD', KEYS[7], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[8])\n"
    "  end\n"
    "end\n"
    "if ARGV[1] ~= '' then\n"
    "  redis.call('XACK', KEYS[1], 'workers', ARGV[1])\n"
    "  redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "return fresh\n";

/* KEYS: tasks, delayed zset. ARGV: entry id, consumer, delay ms, next task.
 * Fenced: only the delivery's current owner may schedule its retry, so a
 * worker whose lease ran out cannot add a second copy. 1 stored, 0 not ours. */
const char sf_redis_lua_retry[] =
    "local p = redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])\n"
    "redis.call('XACK', KEYS[1], 'workers', ARGV[1])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "return 1\n";

/* KEYS: tasks, dead stream. ARGV: entry id, raw bytes, reason. */
const char sf_redis_lua_dead[] =
    "redis.call('XADD', KEYS[2], '*', 'task', ARGV[2], 'reason', ARGV[3])\n"
    "redis.call('XACK', KEYS[1], 'workers', ARGV[1])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "return 1\n";

/* KEYS: tasks. ARGV: consumer, entry ids... Resets the idle time of each
 * entry this consumer still owns (XCLAIM to itself, JUSTID: the delivery
 * count is not bumped); returns the ids it no longer owns. A plain XCLAIM
 * would steal back an entry another worker has rightfully reclaimed. */
const char sf_redis_lua_renew[] =
    "local lost = {}\n"
    "for i = 2, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], 'workers', ARGV[i], ARGV[i], 1)\n"
    "  if #p == 1 and p[1][2] == ARGV[1] then\n"
    "    redis.call('XCLAIM', KEYS[1], 'workers', ARGV[1], 0, ARGV[i], 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return lost\n";

/* KEYS: delayed zset, tasks. ARGV: max to move. Due retries back to the queue. */
const char sf_redis_lua_promote[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('XADD', KEYS[2], '*', 'task', m)\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

/* KEYS: workers zset, workers info hash, tasks. ARGV: worker id, info json,
 * leaving '0'/'1'. A leaving worker with nothing pending is also removed from
 * the consumer group (with pending entries it stays: they must be reclaimed).
 * Workers silent for an hour are pruned from the registry. */
const char sf_redis_lua_heartbeat[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if ARGV[3] == '1' then\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  if redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "    local ok, p = pcall(redis.call, 'XPENDING', KEYS[3], 'workers', '-', '+', 1, ARGV[1])\n"
    "    if ok and #p == 0 then\n"
    "      pcall(redis.call, 'XGROUP', 'DELCONSUMER', KEYS[3], 'workers', ARGV[1])\n"
    "    end\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)\n"
    "for _, w in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[1], w)\n"
    "  redis.call('HDEL', KEYS[2], w)\n"
    "end\n"
    "return 1\n";

/* KEYS: tasks, delayed, dead, workers. ARGV: live window ms.
 * Returns {depth, pending, delayed, dead, live workers}. */
const char sf_redis_lua_stats[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local depth, pending = 0, 0\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  depth = redis.call('XLEN', KEYS[1])\n"
    "  local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], 'workers')\n"
    "  if ok then pending = p[1] end\n"
    "end\n"
    "local dead = 0\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then dead = redis.call('XLEN', KEYS[3]) end\n"
    "return {depth, pending, redis.call('ZCARD', KEYS[2]), dead,\n"
    "        redis.call('ZCOUNT', KEYS[4], now - tonumber(ARGV[1]), '+inf')}\n";
