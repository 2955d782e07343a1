/* worker/e2b/e2b_api.c: the E2B control-plane REST API (spec/openapi.yml) on
 * the registry of local sandboxes: health, create, get, list (v2 with
 * paging headers, and the legacy list), kill, set timeout, connect and
 * refreshes. Error bodies are {"code":<int>,"message":...} as E2B's. */
#include "e2b_server.h"
#include "e2b_fleet.h"
#include "e2b_member.h"
#include "e2b_registry.h"
#include "e2b_network.h"
#include "template.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <errno.h>
#include "lazy_mhd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define E2B_DEFAULT_TIMEOUT_S 15         /* the API's default when omitted */
#define E2B_MAX_TIMEOUT_S 86400

/* ---- JSON views of a sandbox -------------------------------------------------- */

/* Sandbox: what create and connect return. */
static json_t *e2b_sandbox_json(struct e2b_req *rq, const struct e2b_sbx *s)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "templateID", s->template_id,
                          "sandboxID", s->id, "alias", s->template_id, "clientID", E2B_CLIENT_ID,
                          "envdVersion", E2B_ENVD_VERSION);
    e2b_network_json(s, e2b_domain(rq->srv), j);
    if (s->token[0]) json_object_set_new(j, "envdAccessToken", json_string(s->token));
    return j;
}

/* ListedSandbox / SandboxDetail. */
static json_t *e2b_detail_json(struct e2b_registry *reg, struct e2b_sbx *s, const char *domain)
{
    bool detail = domain != NULL;
    long cpus = s->cpus > 0 ? s->cpus : sysconf(_SC_NPROCESSORS_ONLN);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:i,s:i,s:i,s:s,s:s,s:O}",
                          "templateID", s->template_id, "alias", s->template_id,
                          "sandboxID", s->id, "clientID", E2B_CLIENT_ID,
                          "startedAt", sf_e2b_time_json(s->started_wall_ms),
                          "endAt", sf_e2b_time_json(__atomic_load_n(&s->end_wall_ms, __ATOMIC_RELAXED)),
                          "cpuCount", (int)(cpus > 0 ? cpus : 1),
                          "memoryMB", s->memory_mb > 0 ? s->memory_mb : 512,
                          "diskSizeMB", s->disk_mb > 0 ? s->disk_mb : 256, "state", e2b_sbx_paused(reg, s) ? "paused" : "running",
                          "envdVersion", E2B_ENVD_VERSION,
                          "metadata", s->metadata);
    if (detail) {
        e2b_network_json(s, domain[0] ? domain : NULL, j);
        if (s->token[0]) json_object_set_new(j, "envdAccessToken", json_string(s->token));
    }
    return j;
}

/* ---- helpers ------------------------------------------------------------------ */

static json_t *e2b_body(struct e2b_req *rq, bool required)
{
    if (!rq->body.len) return required ? NULL : json_object();
    json_t *j = json_loadb(rq->body.data, rq->body.len, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int e2b_not_found(struct e2b_req *rq, const char *id)
{
    return e2b_reply_error(rq, 404, "Sandbox \"%s\" doesn't exist or you don't have access to it", id);
}

static int e2b_timeout_arg(json_t *body, const char *key, int def, int *out)
{
    json_t *t = json_object_get(body, key);
    if (!t) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(t)) return -EINVAL;
    json_int_t v = json_integer_value(t);
    if (v < 0 || v > E2B_MAX_TIMEOUT_S) return -ERANGE;
    *out = (int)v;
    return 0;
}

/* ---- handlers ----------------------------------------------------------------- */

/* v2 (SDK 2.x) has no "secure": envd access is always token-protected. */
static int e2b_create(struct e2b_req *rq, bool v2)
{
    json_t *body = e2b_body(rq, true), *tmpl;
    char err[SF_ERRSTR_LEN];
    int timeout, ret;
    if (!body || !json_is_string(tmpl = json_object_get(body, "templateID")) ||
        !json_string_length(tmpl)) {
        json_decref(body);
        return e2b_reply_error(rq, 400, "Error when parsing request: templateID (string) is required");
    }
    /* v1's default is the spec's 15 s; v2 clients leave it to the API,
     * whose default is the SDKs' 300 s. */
    if (e2b_timeout_arg(body, "timeout", v2 ? 300 : E2B_DEFAULT_TIMEOUT_S, &timeout) < 0 ||
        timeout <= 0) {
        json_decref(body);
        return e2b_reply_error(rq, 400, "Timeout must be greater than 0");
    }
    const char *rootfs;
    if (!sf_templates_find(e2b_templates(rq->srv), json_string_value(tmpl), &rootfs)) {
        ret = e2b_reply_error(rq, 400, "template '%s' not found: this server knows 'base' and the "
                              "templates given with --template or imported", json_string_value(tmpl));
        json_decref(body);
        return ret;
    }
    /* Separate statements: the order of side effects inside one
     * initializer list is unspecified. */
    json_t *meta = json_object_get(body, "metadata"), *envs = json_object_get(body, "envVars");
    struct e2b_create c = {
        .template_id = json_string_value(tmpl), .timeout_s = timeout,
        .metadata = json_is_object(meta) ? meta : NULL,
        .env_vars = json_is_object(envs) ? envs : NULL,
        .secure = v2 || json_is_true(json_object_get(body, "secure")),
        .rootfs = rootfs, .domain = e2b_domain(rq->srv),
    };
    struct e2b_net_req net;
    if (e2b_network_from_create(body, rq->secrets, &net, err, sizeof(err)) < 0) {
        json_decref(body);
        return e2b_reply_error(rq, 400, "Error when parsing request: %s", err);
    }
    c.network = net.internet;
    c.net = &net;
    /* The worker's caps hold for E2B sandboxes as for tasks (policy.h). */
    struct sf_policy_ask ask = { .what = "sandbox", .timeout_s = timeout, .network = c.network };
    if (sf_policy_check(rq->policy, &ask, err, sizeof(err)) < 0) {
        json_decref(body);
        e2b_net_req_clear(&net);
        return e2b_reply_error(rq, 400, "%s", err);
    }
    sf_policy_fill(rq->policy, &c.limits, NULL);
    struct e2b_sbx *s;
    int rc = e2b_registry_create(rq->reg, &c, &s, err, sizeof(err));
    if (rc == -EAGAIN) ret = e2b_reply_error(rq, 429, "%s", err);
    else if (rc < 0) ret = e2b_reply_error(rq, rc == -ESHUTDOWN ? 503 : 500, "%s", err);
    else {
        e2b_member_created(rq, s);
        ret = e2b_reply_json(rq, 201, e2b_sandbox_json(rq, s));
    }
    if (rc == 0) e2b_registry_put(rq->reg, s);
    json_decref(body);
    e2b_net_req_clear(&net);
    return ret;
}

/* Does s match a "k=v&k2=v2" metadata filter (percent-encoded)? */
static bool e2b_meta_match(const struct e2b_sbx *s, const char *filter)
{
    char *f = sf_xstrdup(filter), *save = NULL;
    bool ok = true;
    for (char *kv = strtok_r(f, "&", &save); kv && ok; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) continue;
        *eq = '\0';
        sf_mhd_http_unescape(kv);
        sf_mhd_http_unescape(eq + 1);
        json_t *v = json_object_get(s->metadata, kv);
        ok = json_is_string(v) && !strcmp(json_string_value(v), eq + 1);
    }
    free(f);
    return ok;
}

static int e2b_list(struct e2b_req *rq, bool v2)
{
    struct e2b_sbx **all;
    size_t n = e2b_registry_snapshot(rq->reg, &all), start = 0;
    const char *state = e2b_query(rq, "state"), *meta = e2b_query(rq, "metadata");
    const char *next = v2 ? e2b_query(rq, "nextToken") : NULL, *lim = v2 ? e2b_query(rq, "limit") : NULL;
    long limit = lim ? strtol(lim, NULL, 10) : 100;
    if (limit < 1 || limit > 100) {
        for (size_t i = 0; i < n; i++) e2b_registry_put(rq->reg, all[i]);
        free(all);
        return e2b_reply_error(rq, 400, "limit must be between 1 and 100");
    }
    /* state=running,paused (comma-separated); none: both. */
    bool want_running = !state || strstr(state, "running"), want_paused = !state || strstr(state, "paused");
    if (next)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(all[i]->id, next)) start = i;
    json_t *arr = json_array();
    const char *more = NULL;
    size_t running = 0;
    for (size_t i = 0; i < n; i++) running += !e2b_sbx_paused(rq->reg, all[i]);
    for (size_t i = next ? start : 0; i < n; i++) {
        bool paused = e2b_sbx_paused(rq->reg, all[i]);
        if (paused ? !want_paused : !want_running) continue;
        if (meta && meta[0] && !e2b_meta_match(all[i], meta)) continue;
        if ((long)json_array_size(arr) == limit) {
            more = all[i]->id;
            break;
        }
        json_array_append_new(arr, e2b_detail_json(rq->reg, all[i], NULL));
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    struct MHD_Response *r = sf_mhd_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    sf_mhd_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    char totalbuf[32];
    snprintf(totalbuf, sizeof(totalbuf), "%zu", running);
    sf_mhd_add_response_header(r, "X-Total-Running", totalbuf);
    if (more) sf_mhd_add_response_header(r, "X-Next-Token", more);
    int ret = sf_mhd_queue_response(rq->conn, 200, r);
    sf_mhd_destroy_response(r);
    json_decref(arr);
    for (size_t i = 0; i < n; i++) e2b_registry_put(rq->reg, all[i]);
    free(all);
    return ret;
}

static int e2b_get(struct e2b_req *rq, const char *id)
{
    struct e2b_sbx *s = e2b_registry_get(rq->reg, id);
    if (!s) return e2b_not_found(rq, id);
    int ret = e2b_reply_json(rq, 200, e2b_detail_json(rq->reg, s, e2b_domain(rq->srv) ? e2b_domain(rq->srv) : ""));
    e2b_registry_put(rq->reg, s);
    return ret;
}

/* The worker's cap on timeouts (policy.h); false: a 400 was queued. */
static bool e2b_timeout_allowed(struct e2b_req *rq, int timeout)
{
    char err[SF_ERRSTR_LEN];
    if (sf_policy_check(rq->policy, &(struct sf_policy_ask){ .what = "sandbox", .timeout_s = timeout },
                        err, sizeof(err)) == 0)
        return true;
    e2b_reply_error(rq, 400, "%s", err);
    return false;
}

static int e2b_set_timeout(struct e2b_req *rq, const char *id, const char *key, bool extend_only)
{
    json_t *body = e2b_body(rq, true);
    int timeout;
    if (!body || e2b_timeout_arg(body, key, -1, &timeout) < 0 || timeout < 0) {
        json_decref(body);
        return e2b_reply_error(rq, 400, "Error when parsing request: %s must be an integer "
                               "between 0 and %d", key, E2B_MAX_TIMEOUT_S);
    }
    json_decref(body);
    if (!strcmp(key, "duration") && timeout < 15) timeout = 15;   /* as E2B's refreshes */
    if (!e2b_timeout_allowed(rq, timeout)) return MHD_YES;
    if (e2b_registry_set_timeout(rq->reg, id, timeout, extend_only) < 0) return e2b_not_found(rq, id);
    return e2b_reply(rq, 204, NULL, "", 0);
}

/* connect (200, or 201 when it resumed a paused sandbox) and the older
 * resume (201; 409 when it was running). */
static int e2b_connect_api(struct e2b_req *rq, const char *id, bool resume_only)
{
    json_t *body = e2b_body(rq, false);
    char err[SF_ERRSTR_LEN] = "";
    int timeout, ret;
    if (!body || e2b_timeout_arg(body, "timeout", resume_only ? 15 : 300, &timeout) < 0 || timeout < 0) {
        json_decref(body);
        return e2b_reply_error(rq, 400, "Error when parsing request: timeout must be an integer "
                               "between 0 and %d", E2B_MAX_TIMEOUT_S);
    }
    json_decref(body);
    if (!e2b_timeout_allowed(rq, timeout)) return MHD_YES;
    int rc = e2b_registry_resume(rq->reg, id, timeout, err, sizeof(err));
    if (rc == -ENOENT) return e2b_not_found(rq, id);
    if (rc == -EAGAIN) return e2b_reply_error(rq, 429, "%s", err);
    if (rc < 0) return e2b_reply_error(rq, 500, "resuming sandbox %s: %s", id, err);
    if (rc == 0 && resume_only) return e2b_reply_error(rq, 409, "Sandbox %s is already running", id);
    if (rc == 0 && e2b_registry_set_timeout(rq->reg, id, timeout, true) < 0) return e2b_not_found(rq, id);
    struct e2b_sbx *s = e2b_registry_get(rq->reg, id);
    if (!s) return e2b_not_found(rq, id);
    ret = e2b_reply_json(rq, rc == 1 ? 201 : 200, e2b_sandbox_json(rq, s));
    e2b_registry_put(rq->reg, s);
    return ret;
}

static int e2b_pause(struct e2b_req *rq, const char *id)
{
    char err[SF_ERRSTR_LEN] = "";
    int rc = e2b_registry_pause(rq->reg, id, err, sizeof(err));
    if (rc == -ENOENT) return e2b_not_found(rq, id);
    if (rc == -EALREADY) return e2b_reply_error(rq, 409, "Sandbox %s is already paused", id);
    if (rc == -EUSERS) return e2b_reply_error(rq, 429, "%s", err);
    if (rc == -ENOTSUP)
        return e2b_reply_error(rq, 501, "pause is not supported by this server here: %s", err);
    if (rc < 0) return e2b_reply_error(rq, 500, "pausing sandbox %s: %s", id, err);
    return e2b_reply(rq, 204, NULL, "", 0);
}

/* One SandboxMetric now, from the sandbox's cgroup; CPU % since the
 * previous sample (or since it started). */
static json_t *e2b_metric_json(struct e2b_sbx *s)
{
    struct sf_sandbox_stats st = { 0 };
    int64_t now = sf_wall_ms();
    pthread_mutex_lock(&s->mu);
    if (s->killed || sf_sandbox_stats(s->sb, &st) < 0) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    int64_t d_cpu = st.cpu_usage_us >= 0 ? st.cpu_usage_us - s->sample_cpu_us : 0;
    int64_t d_ms = now - (s->sample_ms ? s->sample_ms : s->started_wall_ms);
    s->sample_cpu_us = st.cpu_usage_us >= 0 ? st.cpu_usage_us : s->sample_cpu_us;
    s->sample_ms = now;
    pthread_mutex_unlock(&s->mu);
    double pct = d_ms > 0 && st.cpus > 0 ? 100.0 * (double)d_cpu / 1000.0 / (double)d_ms / st.cpus : 0;
    if (pct < 0) pct = 0;
    json_t *ts = sf_e2b_time_json(now);
    json_t *j = json_pack("{s:o,s:I,s:i,s:f,s:I,s:I,s:I,s:I,s:I}", "timestamp", ts,
                          "timestampUnix", (json_int_t)(now / 1000), "cpuCount", st.cpus,
                          "cpuUsedPct", pct, "memUsed", (json_int_t)(st.mem_bytes > 0 ? st.mem_bytes : 0),
                          "memTotal", (json_int_t)st.mem_limit_bytes, "memCache", (json_int_t)0,
                          "diskUsed", (json_int_t)(st.disk_bytes > 0 ? st.disk_bytes : 0),
                          "diskTotal", (json_int_t)st.disk_limit_bytes);
    return j;
}

static int e2b_metrics(struct e2b_req *rq, const char *id)
{
    struct e2b_sbx *s = e2b_registry_get(rq->reg, id);
    if (!s) return e2b_not_found(rq, id);
    json_t *m = e2b_metric_json(s), *arr = json_array();
    if (m) json_array_append_new(arr, m);
    e2b_registry_put(rq->reg, s);
    return e2b_reply_json(rq, 200, arr);
}

/* GET /sandboxes/metrics?sandbox_ids=a,b: {"sandboxes": {id: metric}}. */
static int e2b_metrics_many(struct e2b_req *rq)
{
    const char *ids = e2b_query(rq, "sandbox_ids");
    json_t *out = json_object();
    char *list = sf_xstrdup(ids ? ids : ""), *save = NULL;
    for (char *id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
        struct e2b_sbx *s = e2b_registry_get(rq->reg, id);
        json_t *m = s ? e2b_metric_json(s) : NULL;
        if (m) json_object_set_new(out, id, m);
        e2b_registry_put(rq->reg, s);
    }
    free(list);
    return e2b_reply_json(rq, 200, json_pack("{s:o}", "sandboxes", out));
}

/* What E2B's API has and this server does not: said plainly, never as a
 * missing sandbox. */
static int e2b_unsupported(struct e2b_req *rq, const char *what)
{
    return e2b_reply_error(rq, 501, "%s is not supported by this server (sandfleet): see "
                           "docs/e2b.md, \"What is not served\"", what);
}

bool e2b_api_key_ok(struct e2b_req *rq)
{
    if (!rq->api_key) return true;
    const char *k = e2b_header(rq, "X-API-Key");
    if (k && strlen(k) == strlen(rq->api_key) && !CRYPTO_memcmp(k, rq->api_key, strlen(k)))
        return true;
    e2b_reply_error(rq, 401, "Invalid API key, please visit https://e2b.dev/docs/api-key "
                    "for more information.");
    return false;
}

/* /sandboxes/{id}/<action>. */
static int e2b_sandbox_action(struct e2b_req *rq, const char *id, const char *action)
{
    const char *m = rq->method;
    bool post = !strcmp(m, "POST"), get = !strcmp(m, "GET");
    if (!action[0] && get) return e2b_get(rq, id);
    if (!action[0] && !strcmp(m, "DELETE")) {
        if (e2b_registry_kill(rq->reg, id) < 0) return e2b_not_found(rq, id);
        return e2b_reply(rq, 204, NULL, "", 0);
    }
    if (post && !strcmp(action, "timeout")) return e2b_set_timeout(rq, id, "timeout", false);
    if (post && !strcmp(action, "refreshes")) return e2b_set_timeout(rq, id, "duration", true);
    if (post && !strcmp(action, "connect")) return e2b_connect_api(rq, id, false);
    if (post && !strcmp(action, "resume")) return e2b_connect_api(rq, id, true);
    if (post && !strcmp(action, "pause")) return e2b_pause(rq, id);
    if (get && !strcmp(action, "metrics")) return e2b_metrics(rq, id);
    if (post && !strcmp(action, "snapshots")) return e2b_unsupported(rq, "create_snapshot");
    if (post && !strcmp(action, "fork")) return e2b_unsupported(rq, "fork");
    if (!strcmp(m, "PUT") && !strcmp(action, "network")) return e2b_network_update(rq, id);
    if (get && !strcmp(action, "logs")) return e2b_unsupported(rq, "get_logs");
    return e2b_unsupported(rq, action[0] ? action : m);
}

int e2b_api_handle(struct e2b_req *rq)
{
    const char *m = rq->method, *u = rq->url;
    char id[64];
    if (!strcmp(u, "/health"))
        return e2b_reply(rq, 200, "text/plain", "Health check successful", 23);
    if (!strcmp(u, "/sandboxes") && !strcmp(m, "POST")) return e2b_create(rq, false);
    if (!strcmp(u, "/v2/sandboxes") && !strcmp(m, "POST")) return e2b_create(rq, true);
    if (!strcmp(u, "/sandboxes") && !strcmp(m, "GET")) return e2b_list(rq, false);
    if (!strcmp(u, "/v2/sandboxes") && !strcmp(m, "GET")) return e2b_list(rq, true);
    if (!strcmp(u, "/sandboxes/metrics") && !strcmp(m, "GET")) return e2b_metrics_many(rq);
    if (!strcmp(u, "/snapshots")) return e2b_unsupported(rq, "list_snapshots");
    /* /v2/sandboxes/{id}/connect is the SDK 2.x spelling of connect. */
    if (!strncmp(u, "/v2/sandboxes/", 14)) u += 3;
    if (strncmp(u, "/sandboxes/", 11)) {
        const char *slash = strchr(u + 1, '/');
        char what[64];
        snprintf(what, sizeof(what), "%.*s", (int)(slash ? slash - u - 1 : (long)strlen(u + 1)), u + 1);
        return e2b_unsupported(rq, what[0] ? what : u);
    }
    char raw[64];
    const char *rest = u + 11, *slash = strchr(rest, '/');
    size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (idlen >= sizeof(raw)) return e2b_reply_error(rq, 400, "Invalid sandbox ID");
    memcpy(raw, rest, idlen);
    raw[idlen] = '\0';
    if (!sf_e2b_valid_id(raw, id, sizeof(id))) return e2b_reply_error(rq, 400, "Invalid sandbox ID");
    return e2b_sandbox_action(rq, id, slash ? slash + 1 : "");
}
