/* common/broker/redis/broker_redis_conn.c: how the Redis broker talks to Redis.
 *
 * Design. hiredis' synchronous API with a small pool of connections instead
 * of one shared context: a worker's pool threads complete tasks on their own
 * connection while its loop thread blocks in XREADGROUP on another, and a
 * coordinator's result reader blocks in XREAD while the loop publishes. A
 * connection that fails is freed, never repaired; the next borrow connects
 * afresh (AUTH, SELECT), which is the whole reconnect logic. Callers decide
 * on backoff, because only they know whether to wait (a worker holding a
 * finished result) or to give up (a CLI call). */
#include "broker_redis.h"
#include "broker.h"
#include "util.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define SF_REDIS_CMD_TIMEOUT_MS 15000   /* > the longest BLOCK we issue */
#define SF_REDIS_POOL_KEEP 64           /* idle connections kept */

struct sf_redis_pool {
    struct sf_redis_url url;
    int connect_timeout_ms;
    const struct sf_log *lg;
    pthread_mutex_t mu;
    redisContext *idle[SF_REDIS_POOL_KEEP];
    size_t n_idle;
    int64_t last_down_log;   /* ms; reconnect notices once per 5 s */
    int was_down;
    void (*on_reconnect)(void *arg);   /* optional counter hook; set before use */
    void *hook_arg;
};

/* --- URL -------------------------------------------------------------------- */

static char *pct_decode(const char *s, size_t n)
{
    char *out = sf_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            out[k++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

int sf_redis_url_parse(const char *url, struct sf_redis_url *u, char *err, size_t errlen)
{
    const char *p, *at, *slash, *colon, *hostend;
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(url, "redis://", 8)) {
        sf_errf(err, errlen, "broker URL must start with redis://");
        return -EINVAL;
    }
    p = url + 8;
    slash = strchr(p, '/');
    at = memrchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            u->pass = pct_decode(p, (size_t)(at - p));   /* bare userinfo: a password */
        } else {
            if (colon > p) u->user = pct_decode(p, (size_t)(colon - p));
            u->pass = pct_decode(colon + 1, (size_t)(at - colon - 1));
        }
        p = at + 1;
    }
    hostend = slash ? slash : p + strlen(p);
    colon = memchr(p, ':', (size_t)(hostend - p));
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port <= 0 || port > 65535) {
            sf_errf(err, errlen, "redis URL: bad port");
            goto fail;
        }
        u->port = (int)port;
    } else {
        colon = hostend;
    }
    if (colon == p) {
        sf_errf(err, errlen, "redis URL: missing host");
        goto fail;
    }
    u->host = sf_xstrndup(p, (size_t)(colon - p));
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) {
            sf_errf(err, errlen, "redis URL: the path must be a database number (/0)");
            goto fail;
        }
        u->db = (int)db;
    }
    return 0;
fail:
    sf_redis_url_clear(u);
    return -EINVAL;
}

void sf_redis_url_clear(struct sf_redis_url *u)
{
    free(u->host);
    free(u->user);
    if (u->pass) explicit_bzero(u->pass, strlen(u->pass));
    free(u->pass);
    memset(u, 0, sizeof(*u));
}

/* --- pool ------------------------------------------------------------------- */

struct sf_redis_pool *sf_redis_pool_new(const struct sf_redis_url *u, int connect_timeout_ms,
                                        const struct sf_log *lg)
{
    struct sf_redis_pool *p = sf_xcalloc(1, sizeof(*p));
    p->url.host = sf_xstrdup(u->host);
    p->url.port = u->port;
    p->url.user = sf_xstrdup(u->user);
    p->url.pass = sf_xstrdup(u->pass);
    p->url.db = u->db;
    p->connect_timeout_ms = connect_timeout_ms > 0 ? connect_timeout_ms : 2000;
    p->lg = lg;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void sf_redis_pool_set_reconnect_hook(struct sf_redis_pool *p, void (*fn)(void *arg), void *arg)
{
    p->on_reconnect = fn;
    p->hook_arg = arg;
}

bool sf_redis_pool_down(struct sf_redis_pool *p)
{
    pthread_mutex_lock(&p->mu);
    bool down = p->was_down != 0;
    pthread_mutex_unlock(&p->mu);
    return down;
}

void sf_redis_pool_free(struct sf_redis_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_idle; i++) redisFree(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    sf_redis_url_clear(&p->url);
    free(p);
}

static int map_error(const char *s)
{
    if (!strncmp(s, "LOADING", 7) || !strncmp(s, "BUSY ", 5) || !strncmp(s, "TRYAGAIN", 8) ||
        !strncmp(s, "MASTERDOWN", 10))
        return -EAGAIN;
    if (strstr(s, "NOGROUP")) return -ENOENT;
    if (!strncmp(s, "NOSCRIPT", 8)) return -ENOEXEC;
    if (!strncmp(s, "NOAUTH", 6) || !strncmp(s, "WRONGPASS", 9) || strstr(s, "NOPERM"))
        return -EACCES;
    return -EPROTO;
}

static int io_error(const redisContext *c)
{
    if (c->err == REDIS_ERR_EOF) return -ECONNRESET;
    if (c->err == REDIS_ERR_IO) {
        if (errno == EAGAIN || errno == ETIMEDOUT) return -ETIMEDOUT;
        if (errno == ECONNREFUSED) return -ECONNREFUSED;
    }
    return -ECONNRESET;
}

static void note_down(struct sf_redis_pool *p, const char *why)
{
    int64_t now = sf_now_ms();
    pthread_mutex_lock(&p->mu);
    bool log_it = now - p->last_down_log >= 5000;
    if (log_it) p->last_down_log = now;
    p->was_down = 1;
    pthread_mutex_unlock(&p->mu);
    if (log_it)
        SF_LOG(p->lg, SF_LOG_WARN, NULL, NULL, "redis %s:%d unavailable (%s); retrying with backoff",
               p->url.host, p->url.port, why);
}

/* One reply for a set-up command; 0 or -errno with err filled. */
static int setup_cmd(redisContext *c, char *err, size_t errlen, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = 0;
    if (!r) {
        sf_errf(err, errlen, "%s", c->errstr);
        return io_error(c);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = map_error(r->str);
        sf_errf(err, errlen, "%s: %s", argv[0], r->str);
    }
    freeReplyObject(r);
    return rc;
}

static int connect_one(struct sf_redis_pool *p, redisContext **out, char *err, size_t errlen)
{
    struct timeval tv = { p->connect_timeout_ms / 1000, (p->connect_timeout_ms % 1000) * 1000 };
    struct timeval ctv = { SF_REDIS_CMD_TIMEOUT_MS / 1000, 0 };
    redisContext *c = redisConnectWithTimeout(p->url.host, p->url.port, tv);
    char dbs[16];
    int rc;
    if (!c) {
        sf_errf(err, errlen, "cannot connect to redis %s:%d: out of memory", p->url.host, p->url.port);
        return -ENOMEM;
    }
    if (c->err) {
        rc = c->err == REDIS_ERR_IO && errno == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
        sf_errf(err, errlen, "cannot connect to redis %s:%d: %s", p->url.host, p->url.port, c->errstr);
        goto fail;
    }
    redisSetTimeout(c, ctv);
    if (p->url.pass) {
        const char *a3[] = { "AUTH", p->url.user ? p->url.user : p->url.pass, p->url.pass };
        if ((rc = setup_cmd(c, err, errlen, p->url.user ? 3 : 2, a3)) < 0) {
            if (rc == -EPROTO || rc == -EACCES) {
                sf_errf(err, errlen, "redis %s:%d: authentication failed (check the URL's user/password)",
                        p->url.host, p->url.port);
                rc = -EACCES;
            }
            goto fail;
        }
    }
    if (p->url.db) {
        snprintf(dbs, sizeof(dbs), "%d", p->url.db);
        const char *a2[] = { "SELECT", dbs };
        if ((rc = setup_cmd(c, err, errlen, 2, a2)) < 0) goto fail;
    }
    *out = c;
    return 0;
fail:
    redisFree(c);
    return rc;
}

static int pool_get(struct sf_redis_pool *p, redisContext **c, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    *c = p->n_idle ? p->idle[--p->n_idle] : NULL;
    pthread_mutex_unlock(&p->mu);
    if (*c) return 0;
    int rc = connect_one(p, c, err, errlen);
    if (rc < 0 && sf_broker_transient(rc)) note_down(p, err);
    if (rc == 0) {
        pthread_mutex_lock(&p->mu);
        int recovered = p->was_down;
        p->was_down = 0;
        pthread_mutex_unlock(&p->mu);
        if (recovered) {
            SF_LOG(p->lg, SF_LOG_INFO, NULL, NULL, "redis %s:%d reconnected", p->url.host, p->url.port);
            if (p->on_reconnect) p->on_reconnect(p->hook_arg);
        }
    }
    return rc;
}

static void pool_put(struct sf_redis_pool *p, redisContext *c)
{
    pthread_mutex_lock(&p->mu);
    if (!c->err && p->n_idle < SF_REDIS_POOL_KEEP) {
        p->idle[p->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (c) redisFree(c);
}

int sf_redis_cmd(struct sf_redis_pool *p, redisReply **out, char *err, size_t errlen,
                 int argc, const char **argv, const size_t *lens)
{
    redisContext *c;
    redisReply *r;
    int rc;
    *out = NULL;
    if ((rc = pool_get(p, &c, err, errlen)) < 0) return rc;
    r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        rc = io_error(c);
        sf_errf(err, errlen, "redis %s:%d: %s", p->url.host, p->url.port,
                c->errstr[0] ? c->errstr : "connection lost");
        if (!c->err) c->err = REDIS_ERR_IO;
        pool_put(p, c);
        note_down(p, err);
        return rc;
    }
    pool_put(p, c);
    if (r->type == REDIS_REPLY_ERROR) {
        rc = map_error(r->str);
        sf_errf(err, errlen, "redis %s: %.300s", argv[0], r->str);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* The SHA1 (hex) Redis knows a script by, computed once per script: the
 * scripts are static strings, so their address names them. */
#define SF_REDIS_SCRIPTS_MAX 64
static struct { const char *script; char sha[41]; } sf_redis_shas[SF_REDIS_SCRIPTS_MAX];
static size_t sf_redis_n_shas;
static pthread_mutex_t sf_redis_sha_mu = PTHREAD_MUTEX_INITIALIZER;

static bool script_sha(const char *script, char sha[41])
{
    bool found = false;
    pthread_mutex_lock(&sf_redis_sha_mu);
    for (size_t i = 0; i < sf_redis_n_shas && !found; i++)
        if (sf_redis_shas[i].script == script) {
            memcpy(sha, sf_redis_shas[i].sha, 41);
            found = true;
        }
    pthread_mutex_unlock(&sf_redis_sha_mu);
    if (found) return true;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(script, strlen(script), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return false;
    for (unsigned i = 0; i < 20; i++) snprintf(sha + 2 * i, 3, "%02x", md[i]);
    pthread_mutex_lock(&sf_redis_sha_mu);
    if (sf_redis_n_shas < SF_REDIS_SCRIPTS_MAX) {
        sf_redis_shas[sf_redis_n_shas].script = script;
        memcpy(sf_redis_shas[sf_redis_n_shas++].sha, sha, 41);
    }
    pthread_mutex_unlock(&sf_redis_sha_mu);
    return true;
}

int sf_redis_eval_on(struct sf_redis_pool *p, redisReply **out, char *err, size_t errlen,
                  const char *script, int nkeys, const char *const *ka, const size_t *lens, size_t n)
{
    const char **argv = sf_xcalloc(n + 3, sizeof(char *));
    size_t *alen = sf_xcalloc(n + 3, sizeof(size_t));
    char nk[16], sha[41];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[2] = nk;
    for (size_t i = 0; i < n; i++) {
        argv[3 + i] = ka[i];
        alen[3 + i] = lens ? lens[i] : strlen(ka[i]);
    }
    /* EVALSHA: the script's text (kilobytes, with the shared gate code)
     * crosses the wire and is hashed by Redis only when Redis does not
     * have it yet (NOSCRIPT after a restart or SCRIPT FLUSH): then EVAL,
     * which also caches it. */
    int rc = -ENOEXEC;
    if (script_sha(script, sha)) {
        argv[0] = "EVALSHA";
        argv[1] = sha;
        for (int i = 0; i < 3; i++) alen[i] = strlen(argv[i]);
        rc = sf_redis_cmd(p, out, err, errlen, (int)n + 3, argv, alen);
    }
    if (rc == -ENOEXEC) {
        argv[0] = "EVAL";
        argv[1] = script;
        for (int i = 0; i < 3; i++) alen[i] = strlen(argv[i]);
        rc = sf_redis_cmd(p, out, err, errlen, (int)n + 3, argv, alen);
    }
    free(argv);
    free(alen);
    return rc;
}

int sf_redis_int_reply(redisReply *r)
{
    int v = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
    return v;
}
