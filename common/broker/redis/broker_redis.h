/* common/broker/redis/broker_redis.h: internals of the Redis broker shared by its files
 * (not for other modules; they use broker.h).
 *   broker_redis_conn.c  URL parsing, a mutex-guarded pool of hiredis
 *                        connections, command helpers with error mapping
 *   broker_redis_lua.c   the Lua scripts that make each transition atomic
 *   broker_redis.c       the sf_broker_ops over those two
 *   broker_redis_admin.c the operations ops: workers, runs, dead letters,
 *                        and serve's submissions and run documents
 */
#ifndef SF_BROKER_REDIS_H
#define SF_BROKER_REDIS_H

#include <hiredis/hiredis.h>
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

/* Run one command (binary-safe argv). On success *out is the reply (caller
 * frees with freeReplyObject) and 0 is returned. An error reply is mapped:
 * LOADING/BUSY/TRYAGAIN -> -EAGAIN, NOGROUP -> -ENOENT, NOSCRIPT -> -ENOEXEC,
 * NOAUTH/WRONGPASS/NOPERM -> -EACCES, others -EPROTO; connection failures
 * -ECONNREFUSED / -ECONNRESET / -ETIMEDOUT. The message goes to err. */
int sf_redis_cmd(struct sf_redis_pool *p, redisReply **out, char *err, size_t errlen,
                 int argc, const char **argv, const size_t *lens);

struct redis_broker {
    struct sf_broker base;
    struct sf_redis_pool *pool;
    char *k_tasks, *k_dead, *k_delayed, *k_workers, *k_winfo;
    int64_t lease_ms, ttl_s;
    char ttl_str[24];
    /* fetch thread only */
    int64_t next_reclaim_ms;
    char reclaim_cursor[64];
};
#define RB(b) ((struct redis_broker *)(b))

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

/* Lua sources (broker_redis_lua.c); see there for KEYS/ARGV. */
extern const char sf_redis_lua_publish[];
extern const char sf_redis_lua_complete[];
extern const char sf_redis_lua_retry[];
extern const char sf_redis_lua_dead[];
extern const char sf_redis_lua_renew[];
extern const char sf_redis_lua_promote[];
extern const char sf_redis_lua_heartbeat[];
extern const char sf_redis_lua_stats[];

#endif
