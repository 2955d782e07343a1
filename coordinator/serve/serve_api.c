/* coordinator/serve/serve_api.c: serve's HTTP surface, on libmicrohttpd's thread.
 *   POST /api/runs        a submission (serve.h) -> 202 {"run_id","state","url"}
 *                         once its run id is claimed in the broker; 400 with
 *                         "errors" when invalid, 409 for a run id that is
 *                         taken (whoever sent it), 429 when the intake is
 *                         full (--max-queued), 503 while draining
 *   GET  /api/runs        the runs this instance knows, newest first
 *   GET  /api/runs/{id}   one run; "result" is the result document once it
 *                         is finished. Runs of other instances are looked up
 *                         in the broker (state hash + stored document).
 *   GET  /api/status      the queue's status document (cmd.h)
 *   GET  /, /app.js, /style.css   the status page (embedded at build time)
 *   /metrics /healthz /readyz     health.h
 * Every /api route needs a token when serve has any (serve_auth.c): a
 * client token sees only the runs it submitted (others are 404, as if they
 * did not exist) and not /api/status (403); an admin token sees everything.
 * Handlers never wait: they answer from the run table, or park the request
 * (sf_http_defer) and hand it to the loop, whose pool job answers it. */
#include "serve.h"
#include "web_assets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE "application/json"
#define STATUS_FRESH_MS 1000

void serve_json_resp(struct sf_http_resp *resp, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    resp->status = status;
    resp->content_type = JSON_TYPE;
    resp->body = s;
    resp->len = strlen(s);
    if (status == 429 || status == 503) {
        resp->headers[0] = "Retry-After";
        resp->headers[1] = "1";
    }
    json_decref(j);
}

void serve_answer(struct serve_req *r, int status, json_t *j)
{
    if (!r->later) {
        json_decref(j);
        return;
    }
    struct sf_http_resp resp = { 0 };
    serve_json_resp(&resp, status, j);
    sf_http_later_reply(r->later, &resp);
    r->later = NULL;
}

static void reply_error(struct sf_http_resp *resp, int status, const char *msg)
{
    serve_json_resp(resp, status, json_pack("{s:s}", "error", msg));
}

/* Only what costs nothing here: the body is parsed on serve's pool
 * (serve_jobs.c), a 16 MiB one takes a second the HTTP thread has not. */
static void post_run(struct serve *sv, const struct sf_http_req *req)
{
    struct serve_req *r = sf_xcalloc(1, sizeof(*r));
    r->kind = SERVE_POST;
    r->who = req->principal;
    r->body = req->body;
    r->body_len = req->body_len;
    /* Parked before it is queued: the loop may answer it at once. */
    r->later = sf_http_defer(req);
    struct sf_http_later *later = r->later;
    int rc = serve_table_reserve(&sv->tab, r);
    if (rc < 0) {
        struct sf_http_resp now = { 0 };
        if (rc == -EAGAIN) reply_error(&now, 429, "too many submissions waiting; try again later");
        else reply_error(&now, 503, "draining: not accepting runs");
        sf_http_later_reply(later, &now);
        serve_req_free(r);
    }
}

static void list_runs(struct serve *sv, const struct sf_principal *who, struct sf_http_resp *resp)
{
    struct sf_buf b = {0};
    struct serve_table *tab = &sv->tab;
    bool first = true;
    sf_buf_append(&b, "[", 1);
    pthread_mutex_lock(&tab->mu);
    for (size_t i = tab->n; i-- > 0;) {
        if (!serve_may_see(who, tab->v[i].owner)) continue;
        sf_buf_appendf(&b, "%s%s", first ? "" : ",", tab->v[i].summary);
        first = false;
    }
    pthread_mutex_unlock(&tab->mu);
    sf_buf_append(&b, "]", 1);
    resp->status = 200;
    resp->content_type = JSON_TYPE;
    resp->body = sf_buf_steal(&b, &resp->len);
}

/* The loop answers it from a pool job (lookup, status). */
static void ask(struct serve *sv, const struct sf_http_req *req, enum serve_req_kind kind, const char *id,
                struct sf_http_resp *resp)
{
    struct serve_req *r = sf_xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->who = req->principal;
    sf_strlcpy(r->run_id, id ? id : "", sizeof(r->run_id));
    r->later = sf_http_defer(req);
    struct sf_http_later *later = r->later;
    int rc = serve_table_ask(&sv->tab, r);
    if (rc < 0) {
        struct sf_http_resp now = { 0 };
        if (rc == -EAGAIN) reply_error(&now, 429, "too many requests waiting for the broker; try again later");
        else reply_error(&now, 503, "the coordinator is stopping");
        sf_http_later_reply(later, &now);
        serve_req_free(r);
    }
    (void)resp;
}

static void get_run(struct serve *sv, const struct sf_http_req *req, const char *id,
                    struct sf_http_resp *resp)
{
    struct serve_table *tab = &sv->tab;
    const struct sf_principal *who = req->principal;
    char *summary = NULL, *doc = NULL;
    bool known = false;
    pthread_mutex_lock(&tab->mu);
    for (size_t i = 0; i < tab->n; i++)
        if (!strcmp(tab->v[i].run_id, id)) {
            known = true;
            if (!serve_may_see(who, tab->v[i].owner)) break;
            summary = sf_xstrdup(tab->v[i].summary);
            doc = sf_xstrdup(tab->v[i].doc);
        }
    pthread_mutex_unlock(&tab->mu);
    if (!summary) {
        if (!known && sf_valid_name(id, SF_RUN_ID_MAX)) ask(sv, req, SERVE_LOOKUP, id, resp);
        else reply_error(resp, 404, "no such run");
        return;
    }
    /* The summary is a JSON object: splice the document in before its '}'. */
    struct sf_buf b = {0};
    sf_buf_append(&b, summary, strlen(summary) - 1);
    if (doc) sf_buf_appendf(&b, ",\"result\":%s", doc);
    sf_buf_append(&b, "}", 1);
    resp->status = 200;
    resp->content_type = JSON_TYPE;
    resp->body = sf_buf_steal(&b, &resp->len);
    free(summary);
    free(doc);
}

static void runs_handler(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct serve *sv = arg;
    const char *rest = req->path + strlen("/api/runs");
    if (!strcmp(req->method, "POST") && (!*rest || !strcmp(rest, "/"))) post_run(sv, req);
    else if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) reply_error(resp, 405, "GET or POST");
    else if (!*rest || !strcmp(rest, "/")) list_runs(sv, req->principal, resp);
    else get_run(sv, req, rest + 1, resp);
}

static void status_handler(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct serve *sv = arg;
    char *cached = NULL;
    if (!serve_is_admin(req->principal)) {
        reply_error(resp, 403, "the queue status needs an admin token");
        return;
    }
    pthread_mutex_lock(&sv->tab.mu);
    if (sv->tab.status_doc && sf_now_ms() - sv->tab.status_ms < STATUS_FRESH_MS)
        cached = sf_xstrdup(sv->tab.status_doc);
    pthread_mutex_unlock(&sv->tab.mu);
    if (!cached) {
        ask(sv, req, SERVE_STATUS, NULL, resp);
        return;
    }
    resp->status = 200;
    resp->content_type = JSON_TYPE;
    resp->len = strlen(cached);
    resp->body = cached;
}

static void web_handler(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    const char *name = !strcmp(req->path, "/") ? "index.html" : req->path + 1;
    (void)arg;
    for (size_t i = 0; i < coord_web_n_files; i++) {
        const struct coord_web_file *f = &coord_web_files[i];
        if (strcmp(f->name, name)) continue;
        const char *dot = strrchr(name, '.') ? strrchr(name, '.') : "";
        resp->status = 200;
        resp->content_type = !strcmp(dot, ".html") ? "text/html; charset=utf-8"
                           : !strcmp(dot, ".js")   ? "text/javascript; charset=utf-8"
                           : !strcmp(dot, ".css")  ? "text/css; charset=utf-8"
                                                   : "application/octet-stream";
        resp->body = sf_xmalloc(f->len + 1);
        memcpy(resp->body, f->data, f->len);
        resp->len = f->len;
        /* The page keeps an API token in sessionStorage: no script but its
         * own may run in it, and no other site may frame it. */
        resp->headers[0] = "Content-Security-Policy";
        resp->headers[1] = "default-src 'self'; frame-ancestors 'none'";
        resp->headers[2] = "X-Content-Type-Options";
        resp->headers[3] = "nosniff";
        return;
    }
    sf_http_reply(resp, 404, NULL, "not found\n");
}

static void api_404(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    (void)arg;
    (void)req;
    reply_error(resp, 404, "no such API route");
}

void serve_api_routes(struct sf_http *http, struct serve *sv)
{
    sf_health_routes(http, &sv->health, sv->m);
    sf_http_route(http, NULL, "/api/runs", runs_handler, sv);
    sf_http_route(http, NULL, "/api/runs/", runs_handler, sv);
    sf_http_route(http, "GET", "/api/status", status_handler, sv);
    sf_http_route(http, NULL, "/api/", api_404, sv);       /* unknown API paths: 401 before 404 */
    sf_http_route_open(http, "GET", "/", web_handler, sv);
}
