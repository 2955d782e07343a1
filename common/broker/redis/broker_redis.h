/* common/broker/redis/broker_redis.h: internals of the Redis broker shared by its files
 * (not for other modules; they use broker.h).
 *   broker_redis_conn.c  URL parsing, a mutex-guarded pool of hiredis
 *                        connections, command helpers with error mapping
 *   broker_redis_lua.c   the Lua scripts that make each transition atomic
 *   broker_redis.c       the sf_broker_ops over those two
 *   broker_redis_admin.c the operations ops: workers, runs, dead letters,
 *                        and serve's submissions and run documents
 *   broker_redis_gate.c  concurrency keys, rate limits (gate_enter/leave) and
 *                        priority bands (route, the band fetch)
 *   broker_redis_runs.c  run ownership (claims) and many runs' results at once
 */
#ifndef SF_BROKER_REDIS_H
#define SF_BROKER_REDIS_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "log.h"

struct sf_redis_url {
    char *host;
    int port;
    char *user, *pass;      /* NULL when absent */
    int db;
};

/* redis://[user:pass@ | :pass@ | pass@]host[:port][/db]; user and password may be
 * %-encoded. Returns 0 or -EINVAL with a message (never showing the password). */
int sf_redis_url_parse(const char *url, struct sf_redis_url *u, char *err, size_t errlen);
void sf_redis_url_clear(struct sf_redis_url *u);

/* A pool of connections. Thread-safe: each caller borrows one connection for
 * one command (or a blocking read) and gives it back; broken connections are
 * dropped and the next borrow reconnects, so a restarted Redis is picked up
 * without any other bookkeeping. */
struct sf_redis_pool;
struct sf_redis_pool *sf_redis_pool_new(const struct sf_redis_url *u, int connect_timeout_ms,
                                        const struct sf_log *lg);
void sf_redis_pool_free(struct sf_redis_pool *p);
/* Call fn(arg) whenever a connection succeeds after a failure (the moment
 * "reconnected" is logged). Set before the pool is shared between threads. */
void sf_redis_pool_set_reconnect_hook(struct sf_redis_pool *p, void (*fn)(void *arg), void *arg);
/* A call failed because Redis was unreachable, and no connection has
 * succeeded since. Any thread. */
bool sf_redis_pool_down(struct sf_redis_pool *p);

/* Run one command (binary-safe argv). On success *out is the reply (caller
 * frees with freeReplyObject) and 0 is returned. An error reply is mapped:
 * LOADING/BUSY/TRYAGAIN -> -EAGAIN, NOGROUP -> -ENOENT, NOSCRIPT -> -ENOEXEC,
 * NOAUTH/WRONGPASS/NOPERM -> -EACCES, others -EPROTO; connection failures
 * -ECONNREFUSED / -ECONNRESET / -ETIMEDOUT. The message goes to err. */
int sf_redis_cmd(struct sf_redis_pool *p, redisReply **out, char *err, size_t errlen,
                 int argc, const char **argv, const size_t *lens);
/* Run a script (a static string: its address keys the SHA1 cache) by
 * EVALSHA, falling back to EVAL when Redis does not know it: ka[0..n) are
 * nkeys keys then the arguments (binary-safe; lens NULL: all C strings).
 * Results as sf_redis_cmd. */
int sf_redis_eval_on(struct sf_redis_pool *p, redisReply **out, char *err, size_t errlen,
                  const char *script, int nkeys, const char *const *ka, const size_t *lens, size_t n);
/* The integer of a reply, which it frees; -1 for anything else. */
int sf_redis_int_reply(redisReply *r);

/* Priorities 0..9 are bands: band 0 is sf:Q:tasks, band p the stream
 * sf:Q:tasks:p<p>, each with the group "workers" (docs/protocol.md §9). */
#define SF_REDIS_BANDS (SF_PRIORITY_MAX + 1)
/* In redis_broker.bands: some band stream exists, which ones is not known
 * yet (the next band fetch finds out). */
#define SF_REDIS_BANDS_UNKNOWN (1u << 31)

struct redis_broker {
    struct sf_broker base;
    struct sf_redis_pool *pool;
    char *k_tasks, *k_dead, *k_delayed, *k_workers, *k_winfo, *k_held;
    char *k_band[SF_REDIS_BANDS];   /* [0] is k_tasks */
    int64_t lease_ms, ttl_s, aging_ms;
    char ttl_str[24];
    /* Bit p set: the stream of band p >= 1 existed when last looked at
     * (maintain, the band fetch, a publish or route). 0: fetch reads band 0
     * alone, exactly as without priorities. Band streams stay once made
     * (they are the wake-up channel of idle workers), so a queue that used
     * priorities once fetches by band until an operator deletes them. Any
     * thread writes, the fetch thread reads. */
    atomic_uint bands;
    /* When maintain() will next have something to move (CLOCK_MONOTONIC ms;
     * 0 = nothing known): fetch blocks no longer than that. */
    atomic_llong due_at;
    /* No lease is taken as run out before this time (CLOCK_MONOTONIC ms):
     * set to a lease after every reconnection. While Redis was away no owner
     * could renew, so every entry looks idle once it is back (its delivery
     * time is kept) and every concurrency slot expired; reclaiming or
     * reaping then would run live workers' tasks a second time, or start
     * more tasks than a key's limit beside them. A lease of renewals lets
     * the owners speak first (sf_redis_hold). Any thread. */
    atomic_llong hold_until;
    /* When the next XAUTOCLAIM scan is due (CLOCK_MONOTONIC ms; 0: now or
     * under way). The fetch thread writes; a completion reads it, to leave
     * the next fetch to the fetch thread (which reclaims) once it is due. */
    atomic_llong next_reclaim_ms;
    /* fetch thread only */
    int reclaim_band;               /* band whose XAUTOCLAIM scan is under way */
    char reclaim_cursor[64];
};
#define RB(b) ((struct redis_broker *)(b))

/* Whether leases must not be taken as run out now: Redis is unreachable,
 * or was until less than a lease ago (hold_until). */
bool sf_redis_hold(struct redis_broker *rb);

/* A delivery's handle is its entry id in band 0 and "p<band>/<entry id>" in
 * the others. The stream a handle belongs to, with *id set to the entry id
 * inside it. */
const char *sf_redis_handle_stream(const struct redis_broker *rb, const char *handle,
                                   const char **id);
void sf_redis_handle_make(char *dst, size_t n, int band, const char *id);

/* broker_redis_admin.c: the optional ops of broker.h (same contracts). */
int sf_redis_admin_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen);
int sf_redis_admin_runs(struct sf_broker *b, json_t **out, char *err, size_t errlen);
int sf_redis_admin_dead_list(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen);
int sf_redis_admin_dead_requeue(struct sf_broker *b, const char *id, const char *task, size_t len,
                                const char *run_id, const char *task_id, char *err, size_t errlen);
int sf_redis_admin_dead_purge(struct sf_broker *b, const char *const *ids, size_t n, char *err,
                              size_t errlen);
int sf_redis_serve_sub_fetch(struct sf_broker *b, const char *consumer, bool pending,
                             struct sf_delivery *out, size_t max, int block_ms, size_t *n,
                             char *err, size_t errlen);
int sf_redis_serve_sub_ack(struct sf_broker *b, const char *handle, char *err, size_t errlen);
int sf_redis_serve_doc_put(struct sf_broker *b, const char *run_id, const char *doc, size_t len,
                           const char *reply_to, char *err, size_t errlen);
int sf_redis_serve_doc_get(struct sf_broker *b, const char *run_id, char **doc, char *err,
                           size_t errlen);

/* broker_redis_runs.c (same contracts as the ops). */
int sf_redis_run_claim(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                       struct sf_run_owner *found, char *err, size_t errlen);
int sf_redis_results_many(struct sf_broker *b, struct sf_run_cursor *runs, size_t nruns, char **out,
                          size_t *lens, size_t *which, size_t max, int block_ms, size_t *n,
                          char *err, size_t errlen);
/* broker_redis_e2b.c: the E2B fleet ops of broker.h (same contracts). */
int sf_redis_e2b_beat(struct sf_broker *b, const char *worker, const char *info,
                      enum sf_e2b_beat mode, char *err, size_t errlen);
int sf_redis_e2b_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen);
int sf_redis_e2b_put(struct sf_broker *b, const char *id, const char *worker, const char *rec,
                     size_t len, int64_t started_ms, bool if_absent, char *err, size_t errlen);
int sf_redis_e2b_get(struct sf_broker *b, const char *id, char **rec, json_t **owner, char *err,
                     size_t errlen);
int sf_redis_e2b_del(struct sf_broker *b, const char *id, char *err, size_t errlen);
int sf_redis_e2b_list(struct sf_broker *b, char ***recs, size_t *n, char *err, size_t errlen);
int sf_redis_e2b_owned(struct sf_broker *b, const char *worker, char ***ids, size_t *n, char *err,
                       size_t errlen);
int sf_redis_e2b_reap(struct sf_broker *b, char *err, size_t errlen);

/* The broker's connection pool (broker_redis.c), for the ops in other files. */
struct sf_redis_pool *sf_redis_broker_pool(struct sf_broker *b);

/* broker_redis_cb.c: the callback ops of broker.h (same contracts). */
int sf_redis_cb_enqueue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        const char *once_key, char *err, size_t errlen);
int sf_redis_cb_claim(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                      size_t max, size_t *n, char *err, size_t errlen);
int sf_redis_cb_settle(struct sf_broker *b, const char *id, const char *token,
                       enum sf_callback_settle how, const char *rec, size_t len, int64_t delay_ms,
                       char *err, size_t errlen);
int sf_redis_cb_list(struct sf_broker *b, bool dead, size_t max, json_t **out, char *err,
                     size_t errlen);
int sf_redis_cb_requeue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        char *err, size_t errlen);
int sf_redis_cb_purge(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                      char *err, size_t errlen);

/* broker_redis_gate.c: gates and bands (broker.h contracts). */
int sf_redis_gate_enter(struct sf_broker *b, const char *handle, const struct sf_task *t,
                        const char *raw, size_t len, char *err, size_t errlen);
int sf_redis_gate_leave(struct sf_broker *b, const char *handle, const struct sf_task *t,
                        char *err, size_t errlen);
int sf_redis_gates(struct sf_broker *b, json_t **out, char *err, size_t errlen);
int sf_redis_route(struct sf_broker *b, const char *handle, int priority, const char *raw,
                   size_t len, char *err, size_t errlen);
/* The fetch when some band p >= 1 is in use: up to max deliveries in
 * priority order with aging, then (when none and block_ms > 0) a blocking
 * wait for any band. */
int sf_redis_band_fetch(struct redis_broker *rb, struct sf_delivery *out, size_t max,
                        int block_ms, size_t *n, char *err, size_t errlen);

/* broker_redis.c: EVAL with keys then args (lens NULL: all C strings), a
 * missing group recreated once; a stream entry (id, fields) as a delivery. */
int sf_redis_eval(struct redis_broker *rb, redisReply **out, char *err, size_t errlen,
                  const char *script, int nkeys, int nargs, const char **ka, const size_t *lens);
void sf_redis_entry_to_delivery(const redisReply *id, const redisReply *fields, struct sf_delivery *d,
                                bool reclaimed, int band);
bool sf_redis_is_entry(const redisReply *e);

/* Lua sources (broker_redis_lua.c); see there for KEYS/ARGV. */
extern const char sf_redis_lua_publish[];
extern const char sf_redis_lua_complete[];
extern const char sf_redis_lua_retry[];
extern const char sf_redis_lua_dead[];
extern const char sf_redis_lua_renew[];
extern const char sf_redis_lua_promote[];
extern const char sf_redis_lua_heartbeat[];
extern const char sf_redis_lua_stats[];
extern const char sf_redis_lua_gate_enter[];
extern const char sf_redis_lua_gate_leave[];
extern const char sf_redis_lua_route[];
extern const char sf_redis_lua_band_fetch[];
extern const char sf_redis_lua_gates[];

#endif
