/* coordinator/gateway/gw_fleet.c: what the gateway knows of the fleet
 * (gw_int.h): the worker table, read from the broker every GW_REFRESH_MS
 * (capacity and liveness from the workers' E2B heartbeats); the cache of
 * sandbox -> owner (ids are never reused and a sandbox never moves, so an
 * entry is only ever wrong by being gone, which the owner then says); and
 * the broker jobs, run on the gateway's pool so its thread never waits for
 * Redis. Liveness: a worker is live while its last heartbeat, as of the
 * last table this gateway could read, is younger than its lease; a gateway
 * that cannot read the broker does not declare anyone dead (the connection
 * to the worker decides then). */
#include "gw_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the worker table ------------------------------------------------------------- */

struct gw_worker *gw_worker_find(struct gw *g, const char *id)
{
    for (size_t i = 0; i < g->nworkers; i++)
        if (!strcmp(g->workers[i]->cap.id, id)) return g->workers[i];
    return NULL;
}

bool gw_worker_live(const struct gw_worker *w, int64_t now)
{
    (void)now;
    return w->present && w->cap.age_ms <= w->cap.lease_ms;
}

void gw_worker_ref(struct gw_worker *w)
{
    w->refs++;
}

static void worker_drop(struct gw *g, size_t i)
{
    struct gw_worker *w = g->workers[i];
    g->workers[i] = g->workers[--g->nworkers];
    free(w);
}

void gw_worker_unref(struct gw *g, struct gw_worker *w)
{
    if (--w->refs > 0 || w->present || w->idle) return;
    for (size_t i = 0; i < g->nworkers; i++)
        if (g->workers[i] == w) {
            worker_drop(g, i);
            return;
        }
}

static void worker_set(struct gw_worker *w, const struct sf_e2b_capacity *cap,
                       const struct sockaddr_storage *sa, socklen_t salen)
{
    /* A newer heartbeat counts what this gateway placed before it. */
    bool newer = cap->age_ms < w->cap.age_ms + (sf_now_ms() - w->reported_at) - 50;
    if (newer || !w->reported_at) {
        w->unseen = 0;
        w->refused = false;
    }
    w->cap = *cap;
    w->reported_at = sf_now_ms();
    w->present = true;
    if (salen) {
        w->sa = *sa;
        w->salen = salen;
    }
}

struct gw_worker *gw_worker_upsert(struct gw *g, const struct sf_e2b_capacity *cap,
                                   const struct sockaddr_storage *sa, socklen_t salen)
{
    struct gw_worker *w = gw_worker_find(g, cap->id);
    if (!w) {
        w = sf_xcalloc(1, sizeof(*w));
        g->workers = sf_xrealloc(g->workers, (g->nworkers + 1) * sizeof(*g->workers));
        g->workers[g->nworkers++] = w;
    }
    worker_set(w, cap, sa, salen);
    return w;
}

static void table_update(struct gw *g, struct gw_job *j)
{
    int64_t live = 0, draining = 0, cap = 0, running = 0;
    for (size_t i = 0; i < g->nworkers; i++) g->workers[i]->present = false;
    for (size_t i = 0; i < j->ncaps; i++) {
        struct gw_worker *w = gw_worker_upsert(g, &j->caps[i], &j->sas[i], j->salens[i]);
        if (!gw_worker_live(w, 0)) continue;
        live++;
        draining += w->cap.draining;
        if (!w->cap.draining) cap += w->cap.max;
        running += w->cap.running;
    }
    sf_gauge_set(g->g_live, live);
    sf_gauge_set(g->g_draining, draining);
    sf_gauge_set(g->g_capacity, cap);
    sf_gauge_set(g->g_running, running);
    for (size_t i = 0; i < g->nworkers;) {
        struct gw_worker *w = g->workers[i];
        if (w->present || w->refs || w->idle) {
            i++;
            continue;
        }
        worker_drop(g, i);
    }
}

void gw_fleet_free(struct gw *g)
{
    gw_up_close_all(g);
    gw_up_graves_free(g);
    for (size_t i = 0; i < g->nworkers; i++) free(g->workers[i]);
    free(g->workers);
    g->workers = NULL;
    g->nworkers = 0;
}

/* ---- the sandbox cache ----------------------------------------------------------- */

#define GW_CACHE_BUCKETS 8192

struct gw_centry {
    char id[SF_E2B_ID_MAX], worker[128];
    struct gw_centry *next;
};

struct gw_cache {
    struct gw_centry *b[GW_CACHE_BUCKETS];
    size_t n;
};

static unsigned chash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % GW_CACHE_BUCKETS;
}

struct gw_cache *gw_cache_new(void)
{
    return sf_xcalloc(1, sizeof(struct gw_cache));
}

static void cache_clear(struct gw_cache *c)
{
    for (size_t i = 0; i < GW_CACHE_BUCKETS; i++) {
        for (struct gw_centry *e = c->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
        c->b[i] = NULL;
    }
    c->n = 0;
}

void gw_cache_free(struct gw_cache *c)
{
    if (!c) return;
    cache_clear(c);
    free(c);
}

const char *gw_cache_get(struct gw_cache *c, const char *id)
{
    for (struct gw_centry *e = c->b[chash(id)]; e; e = e->next)
        if (!strcmp(e->id, id)) return e->worker;
    return NULL;
}

void gw_cache_put(struct gw_cache *c, const char *id, const char *worker)
{
    if (gw_cache_get(c, id)) return;
    if (c->n >= GW_CACHE_MAX) cache_clear(c);    /* a miss costs one lookup: no LRU needed */
    struct gw_centry *e = sf_xcalloc(1, sizeof(*e));
    sf_strlcpy(e->id, id, sizeof(e->id));
    sf_strlcpy(e->worker, worker, sizeof(e->worker));
    unsigned h = chash(id);
    e->next = c->b[h];
    c->b[h] = e;
    c->n++;
}

void gw_cache_del(struct gw_cache *c, const char *id)
{
    for (struct gw_centry **pp = &c->b[chash(id)]; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id)) {
            struct gw_centry *e = *pp;
            *pp = e->next;
            free(e);
            c->n--;
            return;
        }
}

/* ---- the tick and fleet jobs ---------------------------------------------------- */

void gw_fleet_tick(struct gw *g, int64_t now)
{
    if (!g->refreshing && now >= g->next_refresh) {
        struct gw_job *j = sf_xcalloc(1, sizeof(*j));
        j->kind = J_WORKERS;
        g->refreshing = true;
        gw_submit(g, j);
    }
    if (now >= g->next_reap) {
        struct gw_job *j = sf_xcalloc(1, sizeof(*j));
        j->kind = J_REAP;
        g->next_reap = now + GW_REAP_MS;
        gw_submit(g, j);
    }
}

void gw_fleet_job_done(struct gw_job *j)
{
    struct gw *g = j->gw;
    if (j->kind == J_WORKERS) {
        g->refreshing = false;
        g->next_refresh = sf_now_ms() + GW_REFRESH_MS;
        if (j->rc < 0) {
            SF_LOG(g->cfg.lg, SF_LOG_WARN, NULL, NULL, "e2b gateway: reading the worker table: %s", j->err);
        } else {
            bool first = !g->have_table;
            table_update(g, j);
            g->have_table = true;
            if (first) gw_route_table_ready(g);
        }
    } else if (j->kind == J_REAP && j->rc > 0) {
        SF_LOGI(g->cfg.lg, "e2b gateway: %d sandbox record(s) of dead workers removed", j->rc);
    } else if (j->rc < 0) {
        SF_LOG(g->cfg.lg, SF_LOG_WARN, NULL, NULL, "e2b gateway: %s", j->err);
    }
    gw_job_free(j);
}

void gw_job_free(struct gw_job *j)
{
    if (!j) return;
    free(j->text);
    free(j->rec);
    free(j->caps);
    free(j->sas);
    free(j->salens);
    sf_buf_free(&j->reply);
    free(j);
}

/* ---- on the pool ---------------------------------------------------------------- */

/* HOST:PORT (or [V6]:PORT) to an address; names through the resolver. */
static socklen_t resolve(const char *hostport, struct sockaddr_storage *sa)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host)) return 0;
    const char *h = hostport;
    size_t hl = (size_t)(colon - hostport);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535) return 0;
    memset(sa, 0, sizeof(*sa));
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        return sizeof(*s4);
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        return sizeof(*s6);
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) return 0;
    socklen_t l = res->ai_addrlen <= sizeof(*sa) ? res->ai_addrlen : 0;
    if (l) memcpy(sa, res->ai_addr, l);
    freeaddrinfo(res);
    return l;
}

static void work_workers(struct sf_broker *b, struct gw_job *j)
{
    json_t *arr;
    char err[160];
    if ((j->rc = b->ops->e2b_workers(b, &arr, j->err, sizeof(j->err))) < 0) return;
    size_t n = json_array_size(arr);
    j->caps = sf_xcalloc(n ? n : 1, sizeof(*j->caps));
    j->sas = sf_xcalloc(n ? n : 1, sizeof(*j->sas));
    j->salens = sf_xcalloc(n ? n : 1, sizeof(*j->salens));
    for (size_t i = 0; i < n; i++) {
        if (sf_e2b_capacity_parse(json_array_get(arr, i), &j->caps[j->ncaps], err, sizeof(err)) < 0)
            continue;
        j->salens[j->ncaps] = resolve(j->caps[j->ncaps].ingress, &j->sas[j->ncaps]);
        j->ncaps++;
    }
    json_decref(arr);
}

static void work_lookup(struct sf_broker *b, struct gw_job *j)
{
    json_t *owner = NULL;
    char err[160];
    if ((j->rc = b->ops->e2b_get(b, j->id, &j->rec, &owner, j->err, sizeof(j->err))) < 0) return;
    if (owner && sf_e2b_capacity_parse(owner, &j->owner, err, sizeof(err)) == 0) {
        j->owner_ok = true;
        j->sas = sf_xcalloc(1, sizeof(*j->sas));
        j->salens = sf_xcalloc(1, sizeof(*j->salens));
        j->salens[0] = resolve(j->owner.ingress, &j->sas[0]);
    }
    json_decref(owner);
}

bool gw_query(const char *target, const char *name, char *out, size_t size)
{
    const char *q = strchr(target, '?');
    size_t nl = strlen(name);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && (size_t)(eq - p) == nl && !memcmp(p, name, nl)) {
            sf_pct_decode(eq + 1, (size_t)(end - eq - 1), out, size, true, 0);
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* "k=v&k2=v2" (each part percent-encoded) against the record's metadata. */
static bool meta_match(const struct sf_e2b_record *r, const char *filter)
{
    char *f = sf_xstrdup(filter), *save = NULL, k[256], v[1024];
    bool ok = true;
    for (char *kv = strtok_r(f, "&", &save); kv && ok; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) continue;
        sf_pct_decode(kv, (size_t)(eq - kv), k, sizeof(k), true, 0);
        sf_pct_decode(eq + 1, strlen(eq + 1), v, sizeof(v), true, 0);
        json_t *m = json_object_get(r->metadata, k);
        ok = json_is_string(m) && !strcmp(json_string_value(m), v);
    }
    free(f);
    return ok;
}

/* GET /v2/sandboxes (and the legacy list) from the broker's records. */
static void work_list(struct sf_broker *b, struct gw_job *j)
{
    char **recs, state[64] = "", meta[2048] = "", next[SF_E2B_ID_MAX] = "", lim[16] = "";
    size_t n;
    if ((j->rc = b->ops->e2b_list(b, &recs, &n, j->err, sizeof(j->err))) < 0) return;
    gw_query(j->text, "state", state, sizeof(state));
    gw_query(j->text, "metadata", meta, sizeof(meta));
    if (j->v2) {
        gw_query(j->text, "nextToken", next, sizeof(next));
        gw_query(j->text, "limit", lim, sizeof(lim));
    }
    long limit = lim[0] ? strtol(lim, NULL, 10) : 100;
    json_t *arr = json_array();
    bool more = false, started = !next[0];
    size_t running = 0;
    for (size_t i = 0; i < n; i++) {
        struct sf_e2b_record r;
        char err[64];
        if (sf_e2b_record_parse(recs[i], strlen(recs[i]), &r, err, sizeof(err)) < 0) continue;
        running += !strcmp(r.state, "running");
        bool pick = (!state[0] || strstr(state, r.state)) && (!meta[0] || meta_match(&r, meta));
        if (!started && !strcmp(r.id, next)) started = true;
        if (pick && started && !more) {
            if ((long)json_array_size(arr) == limit) {
                /* the page is full: the next one starts here */
                snprintf(j->extra, sizeof(j->extra), "X-Next-Token: %s\r\n", r.id);
                more = true;
            } else {
                json_array_append_new(arr, sf_e2b_record_listed(&r));
            }
        }
        sf_e2b_record_clear(&r);
    }
    sf_broker_strv_free(recs, n);
    if (limit < 1 || limit > 100) {
        json_decref(arr);
        arr = json_pack("{s:i,s:s}", "code", 400, "message", "limit must be between 1 and 100");
        j->extra[0] = '\0';
        j->rc = 400;
    } else {
        size_t l = strlen(j->extra);
        snprintf(j->extra + l, sizeof(j->extra) - l, "X-Total-Running: %zu\r\n", running);
        j->rc = 200;
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    sf_buf_append(&j->reply, s, strlen(s));
    free(s);
    json_decref(arr);
}

void gw_pool_work(void *job, void *ctx)
{
    struct gw_job *j = job;
    struct gw *g = ctx;
    struct sf_broker *b = g->cfg.b;
    switch (j->kind) {
    case J_WORKERS:
        work_workers(b, j);
        break;
    case J_LOOKUP:
        work_lookup(b, j);
        break;
    case J_PUT:
        j->rc = b->ops->e2b_put(b, j->id, j->worker, j->text, strlen(j->text), j->started_ms, true,
                                j->err, sizeof(j->err));
        break;
    case J_DEL:
        j->rc = b->ops->e2b_del(b, j->id, j->err, sizeof(j->err));
        break;
    case J_LIST:
        work_list(b, j);
        break;
    case J_REAP:
        j->rc = b->ops->e2b_reap(b, j->err, sizeof(j->err));
        break;
    }
}
