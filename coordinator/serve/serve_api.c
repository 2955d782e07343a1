/* coordinator/serve/serve_api.c: serve's HTTP surface, on libmicrohttpd's thread.
 *   POST /api/runs        a submission (serve.h) -> 202 {"run_id","state","url"}
 *                         400 with "errors" when invalid, 409 for a known
 *                         run_id, 503 while draining
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
 * Handlers copy strings out of the run table under its mutex, or call the
 * broker (thread-safe); they never wait for the loop thread. */
#include "cmd.h"
#include "serve.h"
#include "web_assets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE "application/json"

static void reply_json(struct sf_http_resp *resp, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    resp->status = status;
    resp->content_type = JSON_TYPE;
    resp->body = s;
    resp->len = strlen(s);
    json_decref(j);
}

static void reply_error(struct sf_http_resp *resp, int status, const char *msg)
{
    reply_json(resp, status, json_pack("{s:s}", "error", msg));
}

static void post_run(struct serve_ctx *sc, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct sf_buf errs = {0};
    struct serve_pending *p = sf_xcalloc(1, sizeof(*p));
    int rc;
    char why[512];
    if (serve_submission_parse(req->body, req->body_len, &p->sub, &errs) == 0 && p->sub.reply_to &&
        sf_broker_reply_to_check(sc->b, p->sub.reply_to, why, sizeof(why)) < 0) {
        sf_buf_appendf(&errs, "submission: %s\n", why);
        serve_submission_clear(&p->sub);
    }
    /* Fields the backend cannot honour (Kafka: concurrency, rate, priority)
     * are refused here, not ignored and not left to fail the run. */
    if (p->sub.wf && sf_broker_workflow_supported(sc->b, p->sub.wf, p->sub.priority, why, sizeof(why)) < 0) {
        sf_buf_appendf(&errs, "submission: %s\n", why);
        serve_submission_clear(&p->sub);
    }
    if (!p->sub.wf) {
        json_t *arr = json_array();
        char *save = NULL;
        for (char *line = strtok_r(errs.data ? errs.data : "", "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            json_array_append_new(arr, json_string(line));
        reply_json(resp, 400, json_pack("{s:s, s:o}", "error", "invalid submission", "errors", arr));
        goto out;
    }
    if (p->sub.run_id) sf_strlcpy(p->run_id, p->sub.run_id, sizeof(p->run_id));
    else serve_new_run_id(p->run_id, sizeof(p->run_id));
    serve_owner_of(req->principal, p->owner, sizeof(p->owner));
    /* Once queued, p belongs to the loop thread: answer from copies. */
    char run_id[128], *name = sf_xstrdup(p->sub.wf->name);
    sf_strlcpy(run_id, p->run_id, sizeof(run_id));
    rc = serve_table_submit(sc->tab, p);
    if (rc == 0) p = NULL;
    if (rc == -EEXIST) {
        reply_error(resp, 409, "a run with this run_id is already known");
    } else if (rc < 0) {
        reply_error(resp, 503, "draining: not accepting runs");
    } else {
        sf_counter_inc(sc->submitted);
        SF_LOG(sc->lg, SF_LOG_INFO, run_id, NULL, "accepted workflow '%s' over HTTP", name);
        char *url = sf_xasprintf("/api/runs/%s", run_id);
        reply_json(resp, 202, json_pack("{s:s, s:s, s:s}", "run_id", run_id, "state", "queued", "url", url));
        free(url);
    }
    free(name);
out:
    if (p) {
        serve_submission_clear(&p->sub);
        free(p);
    }
    sf_buf_free(&errs);
}

static void list_runs(struct serve_ctx *sc, const struct sf_principal *who, struct sf_http_resp *resp)
{
    struct sf_buf b = {0};
    struct serve_table *tab = sc->tab;
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

/* A run this instance does not hold: what the broker knows about it. */
static void broker_run(struct serve_ctx *sc, const char *id, struct sf_http_resp *resp)
{
    char err[512], *status = NULL, *wf = NULL, *doc = NULL;
    struct sf_broker *b = sc->b;
    if (b->ops->state_get(b, id, "status", &status, err, sizeof(err)) < 0 ||
        b->ops->state_get(b, id, "workflow", &wf, err, sizeof(err)) < 0 ||
        b->ops->run_doc_get(b, id, &doc, err, sizeof(err)) < 0) {
        reply_error(resp, 502, err);
    } else if (!status && !doc) {
        reply_error(resp, 404, "no such run");
    } else {
        json_t *d = doc ? json_loads(doc, 0, NULL) : NULL;
        json_t *st = json_object_get(d, "status");
        reply_json(resp, 200, json_pack("{s:s, s:s?, s:s, s:o?}", "run_id", id, "workflow", wf,
                                         "state", json_is_string(st) ? json_string_value(st) : status,
                                         "result", d));
    }
    free(status);
    free(wf);
    free(doc);
}

static void get_run(struct serve_ctx *sc, const struct sf_principal *who, const char *id,
                    struct sf_http_resp *resp)
{
    struct serve_table *tab = sc->tab;
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
        /* Runs of other instances: only an admin may look (their owner is
         * not known here). */
        if (!known && serve_is_admin(who) && sf_valid_name(id, SF_RUN_ID_MAX)) broker_run(sc, id, resp);
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
    struct serve_ctx *sc = arg;
    const struct sf_principal *who = req->principal;
    const char *rest = req->path + strlen("/api/runs");
    if (!strcmp(req->method, "POST") && (!*rest || !strcmp(rest, "/"))) post_run(sc, req, resp);
    else if (strcmp(req->method, "GET")) reply_error(resp, 405, "GET or POST");
    else if (!*rest || !strcmp(rest, "/")) list_runs(sc, who, resp);
    else get_run(sc, who, rest + 1, resp);
}

static void status_handler(void *arg, const struct sf_http_req *req, struct sf_http_resp *resp)
{
    struct serve_ctx *sc = arg;
    char err[512];
    json_t *doc;
    if (!serve_is_admin(req->principal)) {
        reply_error(resp, 403, "the queue status needs an admin token");
        return;
    }
    if (coord_status_collect(sc->b, sc->lease_ms, 10, &doc, err, sizeof(err)) < 0) reply_error(resp, 502, err);
    else reply_json(resp, 200, doc);
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

void serve_api_routes(struct sf_http *http, struct serve_ctx *sc)
{
    sf_health_routes(http, sc->health, sc->m);
    sf_http_route(http, NULL, "/api/runs", runs_handler, sc);
    sf_http_route(http, NULL, "/api/runs/", runs_handler, sc);
    sf_http_route(http, "GET", "/api/status", status_handler, sc);
    sf_http_route(http, NULL, "/api/", api_404, sc);       /* unknown API paths: 401 before 404 */
    sf_http_route_open(http, "GET", "/", web_handler, sc);
}
