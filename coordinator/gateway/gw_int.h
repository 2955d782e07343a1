/* coordinator/gateway/gw_int.h: the gateway's insides, shared by its modules
 * (gw.h lists them). Everything here belongs to the gateway's thread except
 * struct gw_job while a pool thread works on it.
 *
 * A client connection (struct gw_cli) reads one request head at a time.
 * Routing (gw_route.c) answers it locally, reads its body for a create
 * (gw_create.c), or finds the owner of the sandbox it names (the cache,
 * else a broker lookup on the pool) and hands it to the relay (gw_proxy.c):
 * an upstream connection to that worker gets a rewritten, signed request
 * head, then body bytes are relayed as they come, counted by the HTTP/1.1
 * framer (common/base/http1.h), never buffered whole. The response is
 * relayed the same way; a 101 turns both connections into a tunnel. When
 * both messages are done the upstream goes back to its worker's idle pool
 * and the client reads its next request. Every step is driven by one
 * function per connection kind that makes all the progress it can and then
 * sets its epoll interest (level-triggered). */
#ifndef SF_GW_INT_H
#define SF_GW_INT_H

#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "e2b_fleet.h"
#include "gw.h"
#include "http1.h"
#include "pool.h"
#include "util.h"

#define GW_HEAD_MAX (16u << 10)         /* request and response heads */
#define GW_BUF (32u << 10)              /* relay buffer per direction */
#define GW_CONNECT_TIMEOUT_MS 3000
#define GW_CREATE_TIMEOUT_MS 30000      /* a worker's answer to a create */
#define GW_UP_IDLE_MS 15000             /* pooled upstreams: under the workers' idle timeout (30 s) */
#define GW_REFRESH_MS 500               /* worker table */
#define GW_REAP_MS 5000
#define GW_CACHE_MAX 65536

/* A byte buffer with a read offset: data is d[off..len). */
struct gw_buf {
    char *d;
    size_t off, len, cap, max;
};
void gw_buf_init(struct gw_buf *b, size_t cap, size_t max);
void gw_buf_free(struct gw_buf *b);
size_t gw_buf_avail(const struct gw_buf *b);           /* unread bytes */
/* Room to read into (compacting or growing up to max first); 0 when full. */
size_t gw_buf_room(struct gw_buf *b);
void gw_buf_put(struct gw_buf *b, const void *p, size_t n);   /* grows past max if it must */
void gw_buf_drop(struct gw_buf *b, size_t n);

enum gw_kind { GW_K_LISTEN, GW_K_CLI, GW_K_UP, GW_K_POOL, GW_K_WAKE };
struct gw_ev {
    enum gw_kind kind;
};

/* A worker of the fleet as this gateway knows it. */
struct gw_worker {
    struct sf_e2b_capacity cap;
    int64_t reported_at;                /* mono ms when cap was read (age_ms from then) */
    struct sockaddr_storage sa;
    socklen_t salen;                    /* 0: the ingress did not resolve */
    bool present;                       /* in the last table read */
    int pending, unseen;                /* creates in flight / placed since the report */
    bool refused;                       /* said "full" since the report */
    int64_t down_until;                 /* mono ms: connections to it failed */
    struct gw_up *idle;                 /* pooled connections */
    int nidle, refs;
};

struct gw_cli;

struct gw_up {
    struct gw_ev ev;
    int fd;
    struct gw *gw;
    struct gw_worker *w;                /* holds a ref */
    bool connecting, reused, detached;
    bool gone;                          /* taken out of epoll after an error */
    bool dead;                          /* closed; freed at the end of the turn */
    uint32_t events;
    struct gw_buf in;                   /* from the worker */
    struct sf_buf out;                  /* to the worker: the head (create: and body) */
    size_t out_off;
    struct gw_cli *cli;                 /* the exchange, or NULL (idle / detached) */
    int64_t idle_since, deadline;
    struct gw_up *next;                 /* idle list */
};

enum gw_cst {
    C_HEAD,        /* reading a request head */
    C_BODY,        /* reading a body the gateway keeps (create) */
    C_WAIT,        /* a broker job or the first worker table */
    C_PROXY,       /* relaying one request and its response */
    C_TUNNEL,      /* after a 101: bytes both ways */
    C_REPLY,       /* writing a local answer */
    C_LINGER,      /* answered and closing: reading what the client still sends */
};

enum gw_route { R_NONE, R_HEALTH, R_CREATE, R_LIST, R_SANDBOX, R_ENVD };

struct gw_create;

struct gw_cli {
    struct gw_ev ev;
    int fd;
    struct gw *gw;
    struct gw_cli *prev, *next;         /* every client, for the timeout sweep */
    char ip[48];
    enum gw_cst st;
    uint32_t events;
    int64_t deadline;                   /* mono ms; 0: none */
    struct gw_buf in;                   /* from the client */
    struct sf_buf out;                  /* local answers */
    size_t out_off;
    bool close_after, dead;
    int jobs;                           /* broker jobs that will come back to us */
    /* the current request */
    enum gw_route route;
    bool v2, head_req, upgrade, expect, http10;
    char method[16];
    char sid[SF_E2B_ID_MAX];
    char *target;                       /* request target, copied */
    struct sf_buf fwd;                  /* the head for the worker */
    struct sf_h1_body reqb, respb;
    enum { RP_HEAD, RP_BODY, RP_DONE } rp;   /* where the response is */
    size_t rp_pend;                     /* head bytes at the front of up->in to relay as they are */
    size_t rp_head, rp_seen;            /* intercept: head length, bytes framed so far */
    bool up_close;                      /* the worker will close after this response */
    bool up_eof;                        /* ... and has */
    bool resp_bytes;                    /* answer bytes came in this exchange */
    bool body_sent;                     /* request body bytes went to the worker */
    bool resp_started;                  /* a final (non-1xx) response head came */
    bool intercept;                     /* the gateway reads the response (create) */
    bool hold;                          /* relaying paused until a broker job ends */
    bool retried;
    int resp_status;
    struct gw_up *up;
    struct gw_create *cr;               /* R_CREATE */
    struct sf_buf body;                 /* C_BODY */
    size_t body_held;                   /* of it, counted in gw->buffered */
};

enum gw_jkind { J_LOOKUP, J_PUT, J_DEL, J_LIST, J_WORKERS, J_REAP };

/* Work for the pool: the thread fills the results. */
struct gw_job {
    enum gw_jkind kind;
    struct gw *gw;
    struct gw_cli *cli;                 /* NULL: the fleet's own */
    char id[SF_E2B_ID_MAX], worker[128];
    char *text;                         /* PUT: record; LIST: request target */
    bool v2;
    int64_t started_ms;
    int rc;
    char err[256];
    char *rec;                          /* LOOKUP */
    struct sf_e2b_capacity owner;       /* LOOKUP: owner_ok when found */
    bool owner_ok;
    struct sf_e2b_capacity *caps;       /* WORKERS, resolved below */
    struct sockaddr_storage *sas;
    socklen_t *salens;
    size_t ncaps;
    struct sf_buf reply;                /* LIST: the body */
    char extra[200];                    /* LIST: header lines of the answer */
};

struct gw_ipcount;
struct gw_cache;

struct gw {
    struct sf_gw_cfg cfg;               /* strings below are our copies */
    char **keys;
    size_t nkeys;
    char *secret;
    size_t slen;
    int64_t head_ms, body_ms, idle_ms, xch_ms;   /* from cfg.limits */
    long max_conns, max_per_ip;
    size_t max_body, max_body_total, buffered;   /* create bodies being read */
    int ep, lfd, wake, port;
    struct gw_ev lev, wev, pev;
    pthread_t th;
    bool started;
    struct sf_pool *pool;
    struct gw_cli *clis;
    int ncli;
    struct gw_ipcount *ips;
    struct gw_worker **workers;
    size_t nworkers;
    bool have_table, refreshing;
    struct gw_cache *cache;
    struct gw_up *detached;             /* fire-and-forget requests in flight */
    /* Closed this turn, freed at its end: an event already fetched for
     * them in the same epoll batch must find them still there (dead). */
    struct gw_cli *grave_cli;
    struct gw_up *grave_up;
    int64_t next_refresh, next_reap;
    uint32_t rnd;
    struct sf_counter *c_created, *c_full, *c_failed, *c_proxied, *c_refused_conn;
    struct sf_gauge *g_conns, *g_live, *g_draining, *g_capacity, *g_running;
    struct sf_metrics *own_m;           /* when the owner gave none */
};

/* gw_loop.c */
void gw_cli_close(struct gw_cli *c);
/* Free what was closed this turn (end of each loop turn, and at stop). */
void gw_graves_free(struct gw *g);
/* Local answer: status, JSON body (or text when ctype given); then the next
 * request, or close when close_after. */
void gw_reply(struct gw_cli *c, int status, const char *ctype, const char *body, size_t len);
/* The same with extra header lines ("Name: value\r\n"...; NULL: none). */
void gw_reply_x(struct gw_cli *c, int status, const char *ctype, const char *extra, const char *body,
                size_t len);
void gw_reply_error(struct gw_cli *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* envd's proxy answer for a sandbox that is not there. */
void gw_reply_no_sandbox(struct gw_cli *c);
void gw_cli_update(struct gw_cli *c);   /* epoll interest after a state change */
void gw_cli_step(struct gw_cli *c);     /* all the progress possible */
void gw_set_events(struct gw *g, struct gw_ev *ev, int fd, uint32_t *cur, uint32_t want);
void gw_submit(struct gw *g, struct gw_job *j);
const char *gw_reason(int status);

/* gw_route.c */
void gw_route_head(struct gw_cli *c);   /* a complete head is at c->in */
void gw_route_job_done(struct gw_job *j);
void gw_route_table_ready(struct gw *g);   /* creates waiting for the first table */
void gw_exchange_done(struct gw_cli *c);   /* response relayed: next request */

/* gw_proxy.c */
/* Relay c's request (c->fwd + body from c->in) to worker w. */
void gw_proxy_start(struct gw_cli *c, struct gw_worker *w);
void gw_up_step(struct gw_up *u, uint32_t events);
/* The relay's share of gw_cli_step; true when c moved on to another state. */
bool gw_proxy_step(struct gw_cli *c);
void gw_up_release(struct gw_up *u, bool reusable);
/* c's exchange passed its deadline: fail it over (creates) or answer. */
void gw_proxy_timeout(struct gw_cli *c);
void gw_up_idle_sweep(struct gw *g, int64_t now);
/* At stop: close every pooled and detached upstream (no client has one). */
void gw_up_close_all(struct gw *g);
void gw_up_graves_free(struct gw *g);
/* Send a DELETE for id to w and forget the answer (a sandbox whose record
 * could not be stored must not live on unseen). */
void gw_up_kill_detached(struct gw *g, struct gw_worker *w, const char *id);
/* Build the signed head for c's request (target, headers of the parsed head). */
void gw_fwd_head(struct gw_cli *c, const struct sf_h1_head *h, const char *host);

/* gw_create.c */
void gw_create_begin(struct gw_cli *c); /* body read: place it */
/* The worker's whole answer to a create (status, head, body). */
void gw_create_response(struct gw_cli *c, const struct sf_h1_head *h, const char *body, size_t len);
/* The worker could not be reached or broke off. */
void gw_create_failed(struct gw_cli *c, const char *why);
void gw_create_job_done(struct gw_job *j);
/* Forget c's create (an attempt in flight gives its worker back). */
void gw_create_drop(struct gw_cli *c);

/* gw_fleet.c */
void gw_fleet_tick(struct gw *g, int64_t now);
void gw_fleet_job_done(struct gw_job *j);
void gw_pool_work(void *job, void *ctx);
void gw_job_free(struct gw_job *j);
struct gw_worker *gw_worker_find(struct gw *g, const char *id);
/* Insert or refresh from a capacity read just now (lookups of new owners). */
struct gw_worker *gw_worker_upsert(struct gw *g, const struct sf_e2b_capacity *cap,
                                   const struct sockaddr_storage *sa, socklen_t salen);
bool gw_worker_live(const struct gw_worker *w, int64_t now);
void gw_worker_ref(struct gw_worker *w);
void gw_worker_unref(struct gw *g, struct gw_worker *w);
void gw_fleet_free(struct gw *g);
struct gw_cache *gw_cache_new(void);
void gw_cache_free(struct gw_cache *c);
const char *gw_cache_get(struct gw_cache *c, const char *id);
void gw_cache_put(struct gw_cache *c, const char *id, const char *worker);
void gw_cache_del(struct gw_cache *c, const char *id);
/* Percent-decoded query argument of a request target; false when absent. */
bool gw_query(const char *target, const char *name, char *out, size_t size);

#endif
