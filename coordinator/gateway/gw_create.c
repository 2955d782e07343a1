/* coordinator/gateway/gw_create.c: Sandbox.create through the gateway
 * (gw_int.h). The body (at most --e2b-max-body-kb, read before anything else
 * happens) goes to the worker placement ranks first (sf_e2b_place: the most
 * free capacity by its last heartbeat, less what this gateway placed since);
 * a worker that says it is full (429), draining (503), fails (5xx) or cannot
 * be reached is left out and the next one tried, each at most once. The
 * worker's 201 becomes a record in the broker before the client sees it, so
 * any gateway can route the sandbox the moment its id is known; a record
 * that cannot be stored kills the sandbox again (a sandbox no gateway can
 * find must not live on). */
#include "gw_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_CREATE_TRIES 16

struct gw_create {
    json_t *body;                        /* the client's request (an object), or NULL */
    char tried[GW_CREATE_TRIES][128];
    int ntried;
    bool saw_full;                       /* a worker said it was full */
    char last_err[300];
    struct gw_worker *w;                 /* the attempt in flight (a ref), or NULL */
    char *resp;                          /* the worker's 201 body, until stored */
    size_t resp_len;
};


static bool tried(const struct gw_create *cr, const char *id)
{
    for (int i = 0; i < cr->ntried; i++)
        if (!strcmp(cr->tried[i], id)) return true;
    return false;
}

/* Nobody took it: 429 when the fleet is full, else why. */
static void no_worker(struct gw_cli *c)
{
    struct gw *g = c->gw;
    struct gw_create *cr = c->cr;
    int cap = 0, live = 0;
    int64_t now = sf_now_ms();
    for (size_t i = 0; i < g->nworkers; i++) {
        struct gw_worker *w = g->workers[i];
        if (!gw_worker_live(w, now) || w->cap.draining || !w->cap.ingress[0]) continue;
        live++;
        cap += w->cap.max;
    }
    if (cr->saw_full || (live && !cr->last_err[0])) {
        sf_counter_inc(g->c_full);
        gw_reply_error(c, 429, "you have reached the maximum number of concurrent E2B sandboxes (%d). "
                       "If you need more, add workers to the fleet or raise their --e2b-max-sandboxes",
                       cap);
    } else if (!live) {
        sf_counter_inc(g->c_failed);
        gw_reply_error(c, 503, "no E2B worker is live in the fleet (start sandfleet-worker "
                       "--broker ... --e2b-ingress HOST:PORT)");
    } else {
        sf_counter_inc(g->c_failed);
        gw_reply_error(c, 503, "no worker could create the sandbox: %s", cr->last_err);
    }
}

/* Place it on the best worker not tried yet. */
static void attempt(struct gw_cli *c)
{
    struct gw *g = c->gw;
    struct gw_create *cr = c->cr;
    size_t n = g->nworkers, *order = sf_xcalloc(n ? n : 1, sizeof(size_t));
    struct sf_e2b_candidate *cand = sf_xcalloc(n ? n : 1, sizeof(*cand));
    struct sf_e2b_capacity *caps = sf_xcalloc(n ? n : 1, sizeof(*caps));
    int64_t now = sf_now_ms();
    for (size_t i = 0; i < n; i++) {
        struct gw_worker *w = g->workers[i];
        caps[i] = w->cap;
        caps[i].age_ms = gw_worker_live(w, now) ? 0 : caps[i].lease_ms + 1;
        cand[i] = (struct sf_e2b_candidate){ .cap = &caps[i], .unseen = w->unseen + w->pending,
                                              .refused = w->refused || tried(cr, w->cap.id),
                                              .down = now < w->down_until || !w->salen };
    }
    size_t k = sf_e2b_place(cand, n, g->cfg.min_free_mb, g->rnd++, order);
    struct gw_worker *w = k && cr->ntried < GW_CREATE_TRIES ? g->workers[order[0]] : NULL;
    free(order);
    free(cand);
    free(caps);
    if (!w) {
        no_worker(c);
        return;
    }
    sf_strlcpy(cr->tried[cr->ntried++], w->cap.id, sizeof(cr->tried[0]));
    cr->w = w;
    gw_worker_ref(w);
    w->pending++;
    /* The request as the worker gets it: the client's path and body. */
    char sig[160];
    size_t plen = strcspn(c->target, "?");
    sf_e2b_gw_sign(g->secret, g->slen, sf_wall_ms(), "POST", c->target, plen, w->cap.ingress, NULL,
                   sig, sizeof(sig));
    sf_buf_free(&c->fwd);
    sf_buf_appendf(&c->fwd, "POST %.*s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n%s: %s\r\n\r\n", (int)plen, c->target, w->cap.ingress,
                   c->body.len, SF_E2B_GW_AUTH, sig);
    sf_buf_append(&c->fwd, c->body.data ? c->body.data : "", c->body.len);
    c->intercept = true;
    c->reqb.done = true;
    gw_proxy_start(c, w);
}

void gw_create_begin(struct gw_cli *c)
{
    struct gw *g = c->gw;
    if (!c->cr) {
        c->cr = sf_xcalloc(1, sizeof(*c->cr));
        json_t *j = c->body.len ? json_loadb(c->body.data, c->body.len, 0, NULL) : NULL;
        if (json_is_object(j)) c->cr->body = j;
        else json_decref(j);
    }
    if (!g->have_table) {                /* just started: the first worker table is on its way */
        c->st = C_WAIT;
        c->deadline = sf_now_ms() + 30000;
        return;
    }
    attempt(c);
}

/* Let go of the worker of the attempt that just ended. */
static struct gw_worker *attempt_over(struct gw_cli *c)
{
    struct gw_worker *w = c->cr->w;
    c->cr->w = NULL;
    c->intercept = false;
    if (w) {
        w->pending--;
        gw_worker_unref(c->gw, w);      /* the table holds it while it is present */
    }
    return w;
}

void gw_create_drop(struct gw_cli *c)
{
    struct gw_create *cr = c->cr;
    if (!cr) return;
    attempt_over(c);
    json_decref(cr->body);
    free(cr->resp);
    free(cr);
    c->cr = NULL;
}

void gw_create_failed(struct gw_cli *c, const char *why)
{
    struct gw_worker *w = attempt_over(c);
    snprintf(c->cr->last_err, sizeof(c->cr->last_err), "%s: %s", w ? w->cap.id : "?", why);
    SF_LOG(c->gw->cfg.lg, SF_LOG_WARN, NULL, NULL, "e2b gateway: create on %s failed: %s; trying another worker",
           w ? w->cap.id : "?", why);
    attempt(c);
}

static int64_t header_ms(const struct sf_h1_head *h, const char *name)
{
    char v[32];
    return sf_h1_get(h, name, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
}

/* The record of a sandbox the worker just made. */
static char *created_record(struct gw_cli *c, struct gw_worker *w, const struct sf_h1_head *h,
                            json_t *sbx, int64_t *started)
{
    struct sf_e2b_record r = { .metadata = json_object_get(c->cr->body, "metadata") };
    const char *v;
    sf_strlcpy(r.id, json_string_value(json_object_get(sbx, "sandboxID")), sizeof(r.id));
    sf_strlcpy(r.worker, w->cap.id, sizeof(r.worker));
    if ((v = json_string_value(json_object_get(sbx, "templateID")))) sf_strlcpy(r.template_id, v, sizeof(r.template_id));
    if ((v = json_string_value(json_object_get(sbx, "alias")))) sf_strlcpy(r.alias, v, sizeof(r.alias));
    if ((v = json_string_value(json_object_get(sbx, "envdAccessToken")))) sf_strlcpy(r.token, v, sizeof(r.token));
    sf_strlcpy(r.state, "running", sizeof(r.state));
    if (!json_is_object(r.metadata)) r.metadata = NULL;
    r.started_ms = header_ms(h, SF_E2B_HDR_START);
    r.end_ms = header_ms(h, SF_E2B_HDR_END);
    if (!r.started_ms) r.started_ms = sf_wall_ms();
    *started = r.started_ms;
    return sf_e2b_record_dump(&r);
}

void gw_create_response(struct gw_cli *c, const struct sf_h1_head *h, const char *body, size_t len)
{
    struct gw_create *cr = c->cr;
    struct gw_worker *w = attempt_over(c);
    int st = h->status;
    if (st == 429 || st == 503 || st >= 500) {
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        snprintf(cr->last_err, sizeof(cr->last_err), "%s: %d %s", w->cap.id, st, msg ? msg : "");
        json_decref(j);
        if (st == 429 || st == 503) w->refused = true;
        cr->saw_full |= st == 429;
        attempt(c);
        return;
    }
    json_t *sbx = st == 201 ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(sbx, "sandboxID"));
    char vid[SF_E2B_ID_MAX];
    if (st != 201 || !id || !sf_e2b_valid_id(id, vid, sizeof(vid))) {
        json_decref(sbx);
        /* The worker's own verdict on the request (400, ...): the client's. */
        char ct[100] = "application/json";
        sf_h1_get(h, "Content-Type", ct, sizeof(ct));
        if (st == 201) {
            sf_counter_inc(c->gw->c_failed);
            gw_reply_error(c, 502, "worker %s answered a create without a valid sandboxID", w->cap.id);
        } else {
            gw_reply(c, st, ct, body, len);
        }
        return;
    }
    w->unseen++;
    struct gw_job *j = sf_xcalloc(1, sizeof(*j));
    j->kind = J_PUT;
    j->cli = c;
    sf_strlcpy(j->id, vid, sizeof(j->id));
    sf_strlcpy(j->worker, w->cap.id, sizeof(j->worker));
    j->text = created_record(c, w, h, sbx, &j->started_ms);
    json_decref(sbx);
    cr->resp = sf_xstrndup(body, len);
    cr->resp_len = len;
    c->st = C_WAIT;
    c->deadline = sf_now_ms() + 30000;
    gw_submit(c->gw, j);
}

void gw_create_job_done(struct gw_job *j)
{
    struct gw_cli *c = j->cli;
    struct gw *g = j->gw;
    bool gone = c->dead || c->st != C_WAIT;
    if (gone && j->rc == 0) {
        /* Nobody will ever learn its id: the client left (or was answered at
         * its deadline) while the record was being stored. */
        struct gw_worker *w = gw_worker_find(g, j->worker);
        if (w) gw_up_kill_detached(g, w, j->id);
        gw_job_free(j);
        return;
    }
    if (j->rc < 0) {
        /* Nobody could ever find it: take it back. */
        struct gw_worker *w = gw_worker_find(g, j->worker);
        SF_LOG(g->cfg.lg, SF_LOG_WARN, NULL, NULL, "e2b gateway: storing sandbox %s: %s; killing it",
               j->id, j->err);
        if (w) gw_up_kill_detached(g, w, j->id);
        if (!gone) {
            sf_counter_inc(g->c_failed);
            gw_reply_error(c, 503, "the sandbox could not be recorded in the fleet's state (%s); "
                           "it was removed, try again", j->err);
        }
    } else {
        gw_cache_put(g->cache, j->id, j->worker);
        sf_counter_inc(g->c_created);
        gw_reply(c, 201, NULL, c->cr->resp, c->cr->resp_len);
    }
    gw_job_free(j);
}
