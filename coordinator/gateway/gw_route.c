/* coordinator/gateway/gw_route.c: what the gateway does with a request head
 * (gw_int.h). A request that names a sandbox — E2b-Sandbox-Id, a Host of
 * the form <port>-<id>.<domain> (envd and get_host), or a /sandboxes/{id}
 * path — goes to the worker that owns it; health, create and list are the
 * gateway's own. The API key is checked here, at the head, before any body
 * byte is read; envd's access token is the owning worker's to check (it
 * holds the sandbox). */
#include "gw_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool key_ok(struct gw *g, const struct sf_h1_head *h)
{
    if (!g->nkeys) return true;
    const struct sf_h1_header *k = sf_h1_find(h, "X-API-Key");
    bool ok = false;
    for (size_t i = 0; k && i < g->nkeys; i++)
        ok |= sf_e2b_secret_eq(k->value, k->vlen, g->keys[i], strlen(g->keys[i]));
    return ok;
}

/* Answer now; a body the client may still send is not read: close after. */
static void early_error(struct gw_cli *c, int status, const char *msg)
{
    if (!c->reqb.done) c->close_after = true;
    gw_reply_error(c, status, "%s", msg);
}

static void not_found(struct gw_cli *c)
{
    if (c->route == R_ENVD) {
        gw_reply_no_sandbox(c);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "Sandbox \"%s\" doesn't exist or you don't have access to it", c->sid);
    early_error(c, 404, msg);
}

/* The owner is known: relay, or say the sandbox is gone. */
static void to_owner(struct gw_cli *c, struct gw_worker *w)
{
    if (!w || !gw_worker_live(w, sf_now_ms())) {
        gw_cache_del(c->gw->cache, c->sid);
        not_found(c);
        return;
    }
    sf_counter_inc(c->gw->c_proxied);
    gw_proxy_start(c, w);
}

static void route_sandbox(struct gw_cli *c)
{
    struct gw *g = c->gw;
    const char *owner = gw_cache_get(g->cache, c->sid);
    if (owner) {
        to_owner(c, gw_worker_find(g, owner));
        return;
    }
    struct gw_job *j = sf_xcalloc(1, sizeof(*j));
    j->kind = J_LOOKUP;
    j->cli = c;
    sf_strlcpy(j->id, c->sid, sizeof(j->id));
    c->st = C_WAIT;
    c->deadline = sf_now_ms() + 30000;
    gw_submit(g, j);
}

/* Which route, from the parsed head. 0, or an answer was queued. */
static int classify(struct gw_cli *c, const struct sf_h1_head *h, const char *path, size_t plen,
                    const char *host)
{
    char raw[SF_E2B_ID_MAX + 8];
    unsigned port;
    if (sf_h1_get(h, "E2b-Sandbox-Id", raw, sizeof(raw)) && raw[0]) {
        if (!sf_e2b_valid_id(raw, c->sid, sizeof(c->sid))) {
            early_error(c, 400, "Invalid sandbox ID");
            return -1;
        }
        c->route = R_ENVD;
        return 0;
    }
    if (sf_e2b_host_route(host, &port, c->sid, sizeof(c->sid))) {
        c->route = R_ENVD;
        return 0;
    }
    if (plen == 7 && !memcmp(path, "/health", 7)) {
        c->route = R_HEALTH;
        return 0;
    }
    if (!key_ok(c->gw, h)) {
        early_error(c, 401, "Invalid API key, please visit https://e2b.dev/docs/api-key for more information.");
        return -1;
    }
    bool v2 = plen >= 4 && !memcmp(path, "/v2/", 4);
    const char *p = v2 ? path + 3 : path;
    size_t pl = v2 ? plen - 3 : plen;
    c->v2 = v2;
    if (pl == 10 && !memcmp(p, "/sandboxes", 10)) {
        if (!strcmp(c->method, "POST")) c->route = R_CREATE;
        else if (!strcmp(c->method, "GET") || !strcmp(c->method, "HEAD")) c->route = R_LIST;
        else {
            early_error(c, 405, "method not allowed on /sandboxes");
            return -1;
        }
        return 0;
    }
    int r = sf_e2b_path_sandbox(path, plen, raw, sizeof(raw));
    if (r > 0 && sf_e2b_valid_id(raw, c->sid, sizeof(c->sid))) {
        c->route = R_SANDBOX;
        return 0;
    }
    if (r != 0) {
        early_error(c, 400, "Invalid sandbox ID");
        return -1;
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "no route %s %.*s on the sandfleet E2B gateway", c->method,
             (int)(plen > 100 ? 100 : plen), path);
    early_error(c, 404, msg);
    return -1;
}

/* A create: read its body here (bounded before a byte is read). */
static void begin_create_body(struct gw_cli *c, const struct sf_h1_head *h)
{
    if (h->content_length > (int64_t)c->gw->max_body) {
        early_error(c, 413, "request body too large");
        return;
    }
    c->st = C_BODY;
    c->deadline = sf_now_ms() + c->gw->body_ms;
    if (c->expect) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!write(c->fd, cont, sizeof(cont) - 1);    /* a few bytes on an idle socket */
    }
    if (c->reqb.done) gw_create_begin(c);
}

static void begin_list(struct gw_cli *c)
{
    if (!c->reqb.done) c->close_after = true;
    struct gw_job *j = sf_xcalloc(1, sizeof(*j));
    j->kind = J_LIST;
    j->cli = c;
    j->v2 = c->v2;
    j->text = sf_xstrdup(c->target);
    c->st = C_WAIT;
    c->deadline = sf_now_ms() + 30000;
    gw_submit(c->gw, j);
}

void gw_route_head(struct gw_cli *c)
{
    struct sf_h1_head h;
    const char *why;
    int rc = sf_h1_parse_request(c->in.d + c->in.off, gw_buf_avail(&c->in), GW_HEAD_MAX, &h, &why);
    if (rc == 0) return;
    c->reqb.done = true;
    if (rc == -E2BIG) {
        c->close_after = true;
        gw_buf_drop(&c->in, gw_buf_avail(&c->in));
        gw_reply_error(c, 431, "request head larger than %u bytes or with too many headers", GW_HEAD_MAX);
        return;
    }
    if (rc < 0) {
        c->close_after = true;
        gw_buf_drop(&c->in, gw_buf_avail(&c->in));
        gw_reply_error(c, 400, "malformed request: %s", why);
        return;
    }
    c->http10 = h.minor == 0;
    c->head_req = h.mlen == 4 && !memcmp(h.method, "HEAD", 4);
    c->close_after = h.conn_close || (c->http10 && !h.keep_alive);
    if (h.mlen >= sizeof(c->method)) {
        c->close_after = true;
        gw_buf_drop(&c->in, gw_buf_avail(&c->in));
        gw_reply_error(c, 501, "method not implemented");
        return;
    }
    memcpy(c->method, h.method, h.mlen);
    c->method[h.mlen] = '\0';
    c->target = sf_xstrndup(h.target, h.tlen);
    if ((rc = sf_h1_body_request(&c->reqb, &h, &why)) < 0) {
        c->close_after = true;
        gw_buf_drop(&c->in, gw_buf_avail(&c->in));
        gw_reply_error(c, rc == -ENOTSUP ? 501 : 400, "malformed request: %s", why);
        return;
    }
    char host[256] = "", expect[32] = "";
    sf_h1_get(&h, "Host", host, sizeof(host));
    c->expect = sf_h1_get(&h, "Expect", expect, sizeof(expect)) && !strcasecmp(expect, "100-continue");
    c->upgrade = h.upgrade && h.conn_upgrade;
    size_t plen = strcspn(c->target, "?");
    if (classify(c, &h, c->target, plen, host) < 0) {
        gw_buf_drop(&c->in, h.len);
        if (c->close_after) gw_buf_drop(&c->in, gw_buf_avail(&c->in));
        return;
    }
    if (c->http10 && (c->route == R_ENVD || c->route == R_SANDBOX)) {
        early_error(c, 505, "the gateway relays HTTP/1.1 only");
        gw_buf_drop(&c->in, gw_buf_avail(&c->in));
        return;
    }
    if (c->route == R_ENVD || c->route == R_SANDBOX) gw_fwd_head(c, &h, host);
    gw_buf_drop(&c->in, h.len);          /* h points into c->in: done with it */
    switch (c->route) {
    case R_HEALTH:
        if (!c->reqb.done) c->close_after = true;
        gw_reply(c, 200, "text/plain", "Health check successful", 23);
        break;
    case R_LIST:
        begin_list(c);
        break;
    case R_CREATE:
        begin_create_body(c, &h);
        break;
    case R_ENVD:
    case R_SANDBOX:
        route_sandbox(c);
        break;
    case R_NONE:
        break;
    }
}

/* ---- broker answers ---------------------------------------------------------------- */

static void lookup_done(struct gw_cli *c, struct gw_job *j)
{
    struct gw *g = c->gw;
    struct sf_e2b_record rec;
    char err[128];
    if (j->rc < 0) {
        early_error(c, 503, "the fleet's state is unreachable; try again");
        SF_LOG(g->cfg.lg, SF_LOG_WARN, NULL, NULL, "e2b gateway: looking up %s: %s", c->sid, j->err);
        return;
    }
    if (!j->rec || sf_e2b_record_parse(j->rec, strlen(j->rec), &rec, err, sizeof(err)) < 0 ||
        !j->owner_ok) {
        not_found(c);
        return;
    }
    struct gw_worker *w = gw_worker_upsert(g, &j->owner, j->sas, j->salens ? j->salens[0] : 0);
    gw_cache_put(g->cache, c->sid, rec.worker);
    sf_e2b_record_clear(&rec);
    to_owner(c, w);
}

void gw_route_job_done(struct gw_job *j)
{
    struct gw_cli *c = j->cli;
    switch (j->kind) {
    case J_LOOKUP:
        if (c->st == C_WAIT) lookup_done(c, j);
        break;
    case J_LIST:
        if (j->rc < 0) {
            gw_reply_error(c, 503, "the fleet's state is unreachable; try again");
            SF_LOG(c->gw->cfg.lg, SF_LOG_WARN, NULL, NULL, "e2b gateway: listing: %s", j->err);
        } else {
            gw_reply_x(c, j->rc, NULL, j->extra, j->reply.data, j->reply.len);
        }
        break;
    case J_DEL:
        /* A relayed DELETE answered 204: the record is gone, let the answer through. */
        c->hold = false;
        break;
    case J_PUT:
        gw_create_job_done(j);
        return;
    default:
        break;
    }
    gw_job_free(j);
}

void gw_route_table_ready(struct gw *g)
{
    for (struct gw_cli *c = g->clis, *next; c; c = next) {
        next = c->next;                  /* c may be closed by its step */
        if (!c->dead && c->st == C_WAIT && c->route == R_CREATE && c->jobs == 0 && !c->up) {
            gw_create_begin(c);
            gw_cli_step(c);
        }
    }
}
