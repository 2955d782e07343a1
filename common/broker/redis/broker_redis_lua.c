/* common/broker/redis/broker_redis_lua.c: the Lua scripts of the Redis broker. Each
 * script is one atomic state transition (Redis runs a script without
 * interleaving other commands), which is how "the result is written and the
 * task acked in one step" holds even if the worker dies between two calls.
 * Times come from Redis' own clock (TIME), so workers with skewed clocks
 * agree on due retries and heartbeats. Acked entries are deleted (XDEL) so the
 * task stream only holds work not yet done. */
#include "broker_redis.h"

/* Lua shared by several scripts (prepended as text, so each script stays one
 * EVAL): Redis' clock, and handing free gate capacity to waiting tasks. */
#define LUA_NOW \
    "local t = redis.call('TIME')\n" \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* Gates (docs/protocol.md §9). Global, not per queue: one provider limit
 * serves every queue. sf:gates holds each key's last limit ("conc:<key>" ->
 * limit, "rate:<key>" -> "<per_s> <burst>"); sf:gates:waiting names the
 * gates with waiting tasks. A waiting member is "<stream>\n<task id>\n<raw
 * task>"; waking it XADDs the raw task back to its stream and reserves the
 * capacity for that task id ("r:<task id>", expiring after a lease), so a
 * task arriving meanwhile cannot take it.
 * Slots and reservations older than now are reaped (reap_to), except while
 * the caller holds expiry back: for a lease after it reconnected to Redis
 * (redis_broker.hold_until), when every lease looks expired because nobody
 * could renew during the outage. */
#define LUA_GATES \
    "local reap_to = now\n" \
    "local function sf_wake(m, lease, reskey)\n" \
    "  local a = string.find(m, '\\n', 1, true)\n" \
    "  local b = string.find(m, '\\n', a + 1, true)\n" \
    "  local stream = string.sub(m, 1, a - 1)\n" \
    "  pcall(redis.call, 'XGROUP', 'CREATE', stream, 'workers', '0', 'MKSTREAM')\n" \
    "  redis.call('XADD', stream, '*', 'task', string.sub(m, b + 1))\n" \
    "  redis.call('ZADD', reskey, now + lease, 'r:' .. string.sub(m, a + 1, b - 1))\n" \
    "  redis.call('EXPIRE', reskey, 86400)\n" \
    "end\n" \
    "local function sf_bucket(h, per_s, burst)\n" \
    "  local b = redis.call('HMGET', h, 'tokens', 'at')\n" \
    "  local tokens, at = tonumber(b[1]), tonumber(b[2])\n" \
    "  if not tokens or not at then tokens, at = burst, now end\n" \
    "  tokens = math.min(burst, tokens + math.max(0, now - at) * per_s / 1000)\n" \
    "  redis.call('HSET', h, 'tokens', tostring(tokens), 'at', now)\n" \
    "  redis.call('EXPIRE', h, 86400)\n" \
    "  return tokens\n" \
    "end\n" \
    "local function sf_wake_n(gate, wk, free, lease, reskey)\n" \
    "  local n = 0\n" \
    "  while free > 0 do\n" \
    "    local w = redis.call('ZPOPMIN', wk)\n" \
    "    if #w == 0 then break end\n" \
    "    sf_wake(w[1], lease, reskey)\n" \
    "    free = free - 1\n" \
    "    n = n + 1\n" \
    "  end\n" \
    "  if redis.call('ZCARD', wk) == 0 then redis.call('SREM', 'sf:gates:waiting', gate) end\n" \
    "  return n\n" \
    "end\n" \
    "local function sf_promote(gate, lease)\n" \
    "  local kind, k = string.match(gate, '^(%a+):(.*)$')\n" \
    "  local spec = redis.call('HGET', 'sf:gates', gate)\n" \
    "  if not spec then redis.call('SREM', 'sf:gates:waiting', gate) return 0, -1 end\n" \
    "  if kind == 'conc' then\n" \
    "    local hk = 'sf:gate:conc:' .. k\n" \
    "    redis.call('ZREMRANGEBYSCORE', hk, '-inf', reap_to)\n" \
    "    local free = tonumber(spec) - redis.call('ZCARD', hk)\n" \
    "    local n = sf_wake_n(gate, hk .. ':wait', free, lease, hk)\n" \
    "    local first = redis.call('ZRANGE', hk, 0, 0, 'WITHSCORES')\n" \
    "    if #first < 2 or reap_to < now or redis.call('ZCARD', hk .. ':wait') == 0 then return n, -1 end\n" \
    "    return n, math.max(0, tonumber(first[2]) - now)\n" \
    "  end\n" \
    "  local per_s, burst = string.match(spec, '^(%S+) (%S+)$')\n" \
    "  local rk = 'sf:gate:rate:' .. k\n" \
    "  local tokens = sf_bucket(rk, tonumber(per_s), tonumber(burst))\n" \
    "  redis.call('ZREMRANGEBYSCORE', rk .. ':res', '-inf', reap_to)\n" \
    "  local held = redis.call('ZCARD', rk .. ':res')\n" \
    "  local n = sf_wake_n(gate, rk .. ':wait', math.floor(tokens) - held, lease, rk .. ':res')\n" \
    "  if redis.call('ZCARD', rk .. ':wait') == 0 then return n, -1 end\n" \
    "  return n, math.max(0, math.ceil((held + n + 1 - tokens) * 1000 / tonumber(per_s)))\n" \
    "end\n"

/* KEYS: run's published set, tasks stream (of the task's band). ARGV: task
 * id, task json, ttl s, '1' when the band stream may need its group.
 * Returns 1 published, 0 already published by an earlier coordinator. */
const char sf_redis_lua_publish[] =
    "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "if ARGV[4] == '1' then pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM') end\n"
    "redis.call('XADD', KEYS[2], '*', 'task', ARGV[2])\n"
    "return 1\n";

/* KEYS: tasks (the delivery's band stream), run results stream, run done
 * hash, dead stream, reply_to, callbacks hash, callbacks due zset.
 * ARGV: entry id ('' = none), task id, result json, ttl s, has reply_to
 * '0'/'1', raw task to dead-letter, dead reason ('' = none), callback id
 * ('' = none), callback record (due now: workers deliver it), the band-0
 * stream name, the consumer that takes its next task here ('' = none).
 * The done hash keeps one result per task id: a second completion of the
 * same task (a reclaimed duplicate) only acks. Returns {1 stored / 0 dup,
 * how many band streams p >= 1 exist[, next entry]} - so a worker whose
 * slot just freed knows whether to fetch by band before its next fetch,
 * not a housekeeping later (one EXISTS of nine keys). With a consumer and
 * no band stream, the slot's next task comes with the reply: the
 * XREADGROUP COUNT 1 of band 0 the worker would send next (one round trip
 * per task instead of two); pcall, because the writes above are done and
 * a missing group must not fail them (the fetch recreates it). */
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
    "local b = ARGV[10]\n"
    "local bands = redis.call('EXISTS', b .. ':p1', b .. ':p2', b .. ':p3', b .. ':p4', b .. ':p5',\n"
    "                         b .. ':p6', b .. ':p7', b .. ':p8', b .. ':p9')\n"
    "if ARGV[11] and ARGV[11] ~= '' and bands == 0 then\n"
    "  local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', 'workers', ARGV[11], 'COUNT', 1,\n"
    "                      'STREAMS', b, '>')\n"
    "  if ok and r then return {fresh, bands, r[1][2][1]} end\n"
    "end\n"
    "return {fresh, bands}\n";

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

/* KEYS: held hash, then the stream of each delivery. ARGV: consumer, lease
 * ms, holder prefix ("<queue>/"), the n handles, the n entry ids. Resets the
 * idle time of each entry this consumer still owns (XCLAIM to itself,
 * JUSTID: the delivery count is not bumped) and returns the handles it no
 * longer owns; a plain XCLAIM would steal back an entry another worker has
 * rightfully reclaimed. Extends the concurrency slot each delivery holds
 * (this worker's held hash maps the handle to the key; the slot is
 * "<queue>/<handle>@<consumer>"), and the key's TTL with it, whether or not the
 * entry is still its own: the copy that runs here counts until it is given
 * back, even when another worker took the delivery over and settled it
 * first. A slot that expired (this worker stalled past its lease) is not
 * brought back (XX). */
const char sf_redis_lua_renew[] =
    LUA_NOW
    "local n = #KEYS - 1\n"
    "local lost = {}\n"
    "for i = 1, n do\n"
    "  local s, h, id = KEYS[i + 1], ARGV[3 + i], ARGV[3 + n + i]\n"
    "  local p = redis.call('XPENDING', s, 'workers', id, id, 1)\n"
    "  if #p == 1 and p[1][2] == ARGV[1] then\n"
    "    redis.call('XCLAIM', s, 'workers', ARGV[1], 0, id, 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = h\n"
    "  end\n"
    "  local k = redis.call('HGET', KEYS[1], h)\n"
    "  if k and redis.call('ZADD', 'sf:gate:conc:' .. k, 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[3] .. h .. '@' .. ARGV[1]) == 1 then\n"
    "    redis.call('EXPIRE', 'sf:gate:conc:' .. k, 86400)\n"
    "  end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], 86400) end\n"
    "return lost\n";

/* KEYS: delayed zset, tasks, sf:gates:waiting. ARGV: max to move, lease ms,
 * '1' to hold expiry back (see SF_REDIS_HOLD below).
 * Due retries back to the queue; free gate capacity to waiting tasks (a few
 * gates per call); which bands p >= 1 exist; in how many ms something will
 * be due to move (the next retry, token or expiring slot; -1 none), so an
 * idle worker comes back in time instead of at the end of its block.
 * Returns {moved, bands bitmask, due in ms}. Unused gates and bands cost one
 * SCARD and nine EXISTS here, in the call every worker makes anyway. */
const char sf_redis_lua_promote[] =
    LUA_NOW LUA_GATES
    "if ARGV[3] == '1' then reap_to = 0 end\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('XADD', KEYS[2], '*', 'task', m)\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "local moved, next_ms = #due, -1\n"
    "local function sooner(ms) if ms >= 0 and (next_ms < 0 or ms < next_ms) then next_ms = ms end end\n"
    "local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "if #first == 2 then sooner(math.max(0, tonumber(first[2]) - now)) end\n"
    "if redis.call('SCARD', KEYS[3]) > 0 then\n"
    "  for _, g in ipairs(redis.call('SRANDMEMBER', KEYS[3], 16)) do\n"
    "    local n, ms = sf_promote(g, tonumber(ARGV[2]))\n"
    "    moved = moved + n\n"
    "    sooner(ms)\n"
    "  end\n"
    "end\n"
    "local bands = 0\n"
    "for p = 1, 9 do\n"
    "  if redis.call('EXISTS', KEYS[2] .. ':p' .. p) == 1 then bands = bands + 2 ^ p end\n"
    "end\n"
    "return {moved, bands, next_ms}\n";

/* KEYS: workers zset, workers info hash, tasks. ARGV: worker id, info json,
 * leaving '0'/'1'. A leaving worker with nothing pending is also removed from
 * the consumer group (with pending entries it stays: they must be reclaimed).
 * Workers silent for an hour are pruned from the registry. */
const char sf_redis_lua_heartbeat[] =
    LUA_NOW
    "if ARGV[3] == '1' then\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  for p = 0, 9 do\n"
    "    local s = KEYS[3]\n"
    "    if p > 0 then s = s .. ':p' .. p end\n"
    "    if redis.call('EXISTS', s) == 1 then\n"
    "      local ok, pe = pcall(redis.call, 'XPENDING', s, 'workers', '-', '+', 1, ARGV[1])\n"
    "      if ok and #pe == 0 then\n"
    "        pcall(redis.call, 'XGROUP', 'DELCONSUMER', s, 'workers', ARGV[1])\n"
    "      end\n"
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
 * Returns {depth, pending, delayed, dead, live workers}; depth and pending
 * count every priority band. */
const char sf_redis_lua_stats[] =
    LUA_NOW
    "local depth, pending = 0, 0\n"
    "for p = 0, 9 do\n"
    "  local s = KEYS[1]\n"
    "  if p > 0 then s = s .. ':p' .. p end\n"
    "  if redis.call('EXISTS', s) == 1 then\n"
    "    depth = depth + redis.call('XLEN', s)\n"
    "    local ok, pe = pcall(redis.call, 'XPENDING', s, 'workers')\n"
    "    if ok then pending = pending + pe[1] end\n"
    "  end\n"
    "end\n"
    "local dead = 0\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then dead = redis.call('XLEN', KEYS[3]) end\n"
    "return {depth, pending, redis.call('ZCARD', KEYS[2]), dead,\n"
    "        redis.call('ZCOUNT', KEYS[4], now - tonumber(ARGV[1]), '+inf')}\n";

/* KEYS: stream, conc holders, conc waiting, rate bucket, rate reservations,
 * rate waiting, sf:gates, sf:gates:waiting, held hash.
 * ARGV: entry id, consumer, holder id ("<queue>/<handle>@<consumer>"), task
 * id, conc key ('' = none), limit, rate key ('' = none), per_s, burst, lease
 * ms, raw task, waiting score, handle, '1' to hold expiry back. The held
 * hash is this worker's (it expires a day after its last renewal: a dead
 * worker's entries go with it).
 * A slot belongs to one delivery of one worker: a worker that stalled past
 * its lease and wakes up to finish gives back only its own (expired) slot,
 * never the one the delivery's reclaimer took.
 * Fenced like retry (only the delivery's owner). A task may start when its
 * concurrency key has a free slot and its rate key a token; a task that
 * arrives while others wait for the same gate waits behind them (a slot that
 * frees goes to the oldest waiter, not to whoever asks first), unless it was
 * woken for it (its reservation "r:<task id>"). Otherwise it waits: the raw
 * task goes to the gate's waiting set, the entry is acked and deleted, and
 * its reservations go back. Returns 0 start, 1 waiting, 2 not ours. */
const char sf_redis_lua_gate_enter[] =
    LUA_NOW LUA_GATES
    "if ARGV[14] == '1' then reap_to = 0 end\n"
    "local p = redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[2] then return 2 end\n"
    "local lease = tonumber(ARGV[10])\n"
    "local res = 'r:' .. ARGV[4]\n"
    "local conc, rate = ARGV[5] ~= '', ARGV[7] ~= ''\n"
    "local function wait(wk, gate)\n"
    "  if conc then redis.call('ZREM', KEYS[2], res) end\n"
    "  if rate then redis.call('ZREM', KEYS[5], res) end\n"
    "  redis.call('ZADD', wk, ARGV[12], KEYS[1] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[11])\n"
    "  redis.call('PERSIST', wk)\n"
    "  redis.call('SADD', KEYS[8], gate)\n"
    "  redis.call('XACK', KEYS[1], 'workers', ARGV[1])\n"
    "  redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "if conc then\n"
    "  redis.call('HSET', KEYS[7], 'conc:' .. ARGV[5], ARGV[6])\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', reap_to)\n"
    "  local mine = redis.call('ZSCORE', KEYS[2], ARGV[3]) or redis.call('ZSCORE', KEYS[2], res)\n"
    "  if not mine and (redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) or\n"
    "                   redis.call('ZCARD', KEYS[3]) > 0) then\n"
    "    return wait(KEYS[3], 'conc:' .. ARGV[5])\n"
    "  end\n"
    "end\n"
    "if rate then\n"
    "  redis.call('HSET', KEYS[7], 'rate:' .. ARGV[7], ARGV[8] .. ' ' .. ARGV[9])\n"
    "  local tokens = sf_bucket(KEYS[4], tonumber(ARGV[8]), tonumber(ARGV[9]))\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', reap_to)\n"
    "  local mine = redis.call('ZSCORE', KEYS[5], res)\n"
    "  local others = redis.call('ZCARD', KEYS[5]) - (mine and 1 or 0)\n"
    "  if tokens - others < 1 or (not mine and redis.call('ZCARD', KEYS[6]) > 0) then\n"
    "    return wait(KEYS[6], 'rate:' .. ARGV[7])\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[5], res)\n"
    "  redis.call('HSET', KEYS[4], 'tokens', tostring(tokens - 1))\n"
    "end\n"
    "if conc then\n"
    "  redis.call('ZREM', KEYS[2], res)\n"
    "  redis.call('ZADD', KEYS[2], now + lease, ARGV[3])\n"
    "  redis.call('EXPIRE', KEYS[2], 86400)\n"
    "  redis.call('HSET', KEYS[9], ARGV[13], ARGV[5])\n"
    "  redis.call('EXPIRE', KEYS[9], 86400)\n"
    "end\n"
    "return 0\n";

/* KEYS: conc holders, this worker's held hash. ARGV: holder id, handle, gate
 * ("conc:<key>"), lease ms, '1' to hold expiry back. The slot goes back; free slots go to the
 * oldest waiters at once. Returns how many were woken. */
const char sf_redis_lua_gate_leave[] =
    LUA_NOW LUA_GATES
    "if ARGV[5] == '1' then reap_to = 0 end\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "redis.call('HDEL', KEYS[2], ARGV[2])\n"
    "if redis.call('SISMEMBER', 'sf:gates:waiting', ARGV[3]) == 0 then return 0 end\n"
    "return sf_promote(ARGV[3], tonumber(ARGV[4]))\n";

/* KEYS: the stream it came from (band 0), its band's stream. ARGV: entry
 * id, consumer, raw task. Fenced. 1 moved, 0 not ours. */
const char sf_redis_lua_route[] =
    "local p = redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end\n"
    "pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')\n"
    "redis.call('XADD', KEYS[2], '*', 'task', ARGV[3])\n"
    "redis.call('XACK', KEYS[1], 'workers', ARGV[1])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "return 1\n";

/* KEYS: band streams (band 0 and those believed to exist). ARGV: consumer,
 * max, aging ms, then the band number of each key.
 * Delivers up to max entries from the band whose next undelivered entry has
 * the lowest "entry time - band x aging" (linear aging: a band-0 task is
 * passed only by band-p tasks queued less than p x aging after it; ties go
 * to the higher band), re-choosing after each entry; when a single band has
 * undelivered entries, the rest of the batch comes from it in one read. The
 * next undelivered entry of a band is the first after its group's
 * last-delivered-id. Returns {{band, entry id, fields}..., bands bitmask (p
 * >= 1 whose stream exists, among the keys), {last-delivered-id per key,
 * '' when the stream does not exist}} - the ids let the caller block with
 * XREAD for anything newer without taking it. */
const char sf_redis_lua_band_fetch[] =
    "local aging, want = tonumber(ARGV[3]), tonumber(ARGV[2])\n"
    "local heads, lasts, bands = {}, {}, 0\n"
    "local function after(key, id)\n"
    "  local e = redis.call('XRANGE', key, '(' .. id, '+', 'COUNT', 1)\n"
    "  if #e == 0 then return false end\n"
    "  return e[1][1]\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  lasts[i] = ''\n"
    "  heads[i] = false\n"
    "  if redis.call('EXISTS', KEYS[i]) == 1 then\n"
    "    local band = tonumber(ARGV[3 + i])\n"
    "    if band > 0 then bands = bands + 2 ^ band end\n"
    "    local ldi = nil\n"
    "    local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[i])\n"
    "    if ok then\n"
    "      for _, g in ipairs(groups) do\n"
    "        local name, last = nil, nil\n"
    "        for j = 1, #g - 1, 2 do\n"
    "          if g[j] == 'name' then name = g[j + 1] end\n"
    "          if g[j] == 'last-delivered-id' then last = g[j + 1] end\n"
    "        end\n"
    "        if name == 'workers' then ldi = last end\n"
    "      end\n"
    "    end\n"
    "    if not ldi then\n"
    "      pcall(redis.call, 'XGROUP', 'CREATE', KEYS[i], 'workers', '0')\n"
    "      ldi = '0-0'\n"
    "    end\n"
    "    lasts[i] = ldi\n"
    "    heads[i] = after(KEYS[i], ldi)\n"
    "  end\n"
    "end\n"
    "local out = {}\n"
    "while #out < want do\n"
    "  local best, bscore, candidates = nil, nil, 0\n"
    "  for i = 1, #KEYS do\n"
    "    if heads[i] then\n"
    "      candidates = candidates + 1\n"
    "      local score = tonumber(string.match(heads[i], '^(%d+)')) - tonumber(ARGV[3 + i]) * aging\n"
    "      if not best or score < bscore or (score == bscore and tonumber(ARGV[3 + i]) > tonumber(ARGV[3 + best])) then\n"
    "        best, bscore = i, score\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if not best then break end\n"
    "  local n = candidates == 1 and want - #out or 1\n"
    "  local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', n, 'STREAMS', KEYS[best], '>')\n"
    "  local got = r and r[1] and r[1][2] or {}\n"
    "  for _, e in ipairs(got) do\n"
    "    out[#out + 1] = {tonumber(ARGV[3 + best]), e[1], e[2]}\n"
    "    lasts[best] = e[1]\n"
    "  end\n"
    "  if #got == 0 then heads[best] = false\n"
    "  elseif candidates == 1 then break\n"
    "  else heads[best] = after(KEYS[best], lasts[best]) end\n"
    "end\n"
    "return {out, bands, lasts}\n";

/* No keys (the gate registry is global: sf:gates). ARGV: max gates.
 * Returns {gate, spec, running (live slots; tokens x 1000 for a rate gate,
 * refilled to now but not stored), waiting}... sorted by name. */
const char sf_redis_lua_gates[] =
    LUA_NOW
    "local out = {}\n"
    "local all = redis.call('HGETALL', 'sf:gates')\n"
    "local names = {}\n"
    "for i = 1, #all, 2 do names[#names + 1] = {all[i], all[i + 1]} end\n"
    "table.sort(names, function(a, b) return a[1] < b[1] end)\n"
    "for i = 1, math.min(#names, tonumber(ARGV[1])) do\n"
    "  local gate, spec = names[i][1], names[i][2]\n"
    "  local kind, k = string.match(gate, '^(%a+):(.*)$')\n"
    "  if kind == 'conc' then\n"
    "    local hk = 'sf:gate:conc:' .. k\n"
    "    out[#out + 1] = {gate, spec, redis.call('ZCOUNT', hk, '(' .. now, '+inf'),\n"
    "                     redis.call('ZCARD', hk .. ':wait')}\n"
    "  else\n"
    "    local per_s, burst = string.match(spec, '^(%S+) (%S+)$')\n"
    "    local rk = 'sf:gate:rate:' .. k\n"
    "    local b = redis.call('HMGET', rk, 'tokens', 'at')\n"
    "    local tokens = tonumber(burst)\n"
    "    if b[1] and b[2] then\n"
    "      tokens = math.min(tonumber(burst), tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * tonumber(per_s) / 1000)\n"
    "    end\n"
    "    out[#out + 1] = {gate, spec, math.floor(tokens * 1000), redis.call('ZCARD', rk .. ':wait')}\n"
    "  end\n"
    "end\n"
    "return out\n";
