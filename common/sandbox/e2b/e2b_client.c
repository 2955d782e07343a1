/* common/sandbox/e2b/e2b_client.c: see e2b_client.h. One curl easy handle per call:
 * calls are few per task (create, a few file transfers, run, kill), and a
 * handle per call keeps the connection object free of locks. */
#include "e2b_client.h"

#include "lazy_curl.h"
#include "retry.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define E2B_MAX_RESPONSE (64u << 20)

/* ---- configuration ---------------------------------------------------------- */

static char *e2b_setting(const char *explicit_value, const char *env)
{
    const char *v = explicit_value && explicit_value[0] ? explicit_value : getenv(env);
    return v && v[0] ? sf_xstrdup(v) : NULL;
}

/* Trailing slashes would double up in "<url>/sandboxes". */
static void e2b_trim_slash(char *s)
{
    size_t n = s ? strlen(s) : 0;
    while (n > 0 && s[n - 1] == '/') s[--n] = '\0';
}

int sf_e2b_conn_init(struct sf_e2b_conn *c, const struct sf_provider_config *cfg, char *err,
                     size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->api_key = e2b_setting(cfg ? cfg->e2b_api_key : NULL, "E2B_API_KEY");
    c->domain = e2b_setting(cfg ? cfg->e2b_domain : NULL, "E2B_DOMAIN");
    if (!c->domain) c->domain = sf_xstrdup("e2b.app");
    c->api_url = e2b_setting(cfg ? cfg->e2b_api_url : NULL, "E2B_API_URL");
    if (!c->api_url) c->api_url = sf_xasprintf("https://api.%s", c->domain);
    c->sandbox_url = e2b_setting(cfg ? cfg->e2b_sandbox_url : NULL, "E2B_SANDBOX_URL");
    c->template_id = sf_xstrdup(cfg && cfg->e2b_template && cfg->e2b_template[0]
                                ? cfg->e2b_template : "base");
    e2b_trim_slash(c->api_url);
    e2b_trim_slash(c->sandbox_url);
    c->request_timeout_ms = 60000;
    c->create_attempts = 4;
    c->backoff_ms = 500;
    if (!c->api_key) {
        sf_errf(err, errlen, "e2b: no API key: set E2B_API_KEY (from https://e2b.dev/dashboard)");
        sf_e2b_conn_free(c);
        return -EINVAL;
    }
    return 0;
}

void sf_e2b_conn_free(struct sf_e2b_conn *c)
{
    if (!c) return;
    free(c->api_key);
    free(c->domain);
    free(c->api_url);
    free(c->sandbox_url);
    free(c->template_id);
    memset(c, 0, sizeof(*c));
}

void sf_e2b_envd_url(const struct sf_e2b_conn *c, const char *id, const char *sandbox_domain,
                     char *dst, size_t size)
{
    static const char *const shared_host[] = { "e2b.app", "e2b.dev", "e2b.pro", "e2b-staging.dev" };
    const char *dom = sandbox_domain && sandbox_domain[0] ? sandbox_domain : c->domain;
    if (c->sandbox_url) {
        sf_strlcpy(dst, c->sandbox_url, size);
        return;
    }
    for (size_t i = 0; i < sizeof(shared_host) / sizeof(shared_host[0]); i++)
        if (!strcmp(dom, shared_host[i])) {
            snprintf(dst, size, "https://sandbox.%s", dom);
            return;
        }
    snprintf(dst, size, "https://%d-%s.%s", SF_E2B_ENVD_PORT, id, dom);
}

/* ---- HTTP ------------------------------------------------------------------- */

struct e2b_sink {
    struct sf_e2b_http *h;
    size_t max;
    bool too_big;
};

static size_t e2b_write_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct e2b_sink *s = arg;
    if (s->h->resp.len + sz * n > s->max) {
        s->too_big = true;
        return 0;
    }
    sf_buf_append(&s->h->resp, p, sz * n);
    return sz * n;
}

static size_t e2b_header_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct sf_e2b_http *h = arg;
    size_t len = sz * n;
    static const char key[] = "retry-after:";
    if (len > sizeof(key) - 1 && !strncasecmp(p, key, sizeof(key) - 1)) {
        long s = strtol(p + sizeof(key) - 1, NULL, 10);
        if (s >= 0 && s < 3600) h->retry_after_ms = s * 1000;
    }
    return len;
}

int sf_e2b_http_do(struct sf_e2b_http *h, char *err, size_t errlen)
{
    CURL *curl = sf_curl_easy_init();
    struct e2b_sink sink = { h, h->max_response ? h->max_response : E2B_MAX_RESPONSE, false };
    int rc = 0;

    h->status = 0;
    h->retry_after_ms = -1;
    if (!curl) {
        sf_errf(err, errlen, "curl_easy_init failed");
        return -ENOMEM;
    }
    sf_curl_easy_setopt(curl, CURLOPT_URL, h->url);
    sf_curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, h->method);
    sf_curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h->headers);
    sf_curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    sf_curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    sf_curl_easy_setopt(curl, CURLOPT_USERAGENT, "sandfleet/" SF_VERSION);
    sf_curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, e2b_write_cb);
    sf_curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    sf_curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, e2b_header_cb);
    sf_curl_easy_setopt(curl, CURLOPT_HEADERDATA, h);
    sf_curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (h->timeout_ms > 0) sf_curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    if (h->mime) {
        sf_curl_easy_setopt(curl, CURLOPT_MIMEPOST, h->mime);
    } else if (h->body) {
        sf_curl_easy_setopt(curl, CURLOPT_POSTFIELDS, h->body);
        sf_curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
    } else if (!strcmp(h->method, "POST")) {
        sf_curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    }
    CURLcode cc = sf_curl_easy_perform(curl);
    if (cc == CURLE_OK) {
        sf_curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &h->status);
    } else if (sink.too_big) {
        rc = -EFBIG;
        sf_errf(err, errlen, "%s %s: response larger than %zu bytes", h->method, h->url, sink.max);
    } else {
        rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
           : cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ? -ECONNREFUSED : -EIO;
        sf_errf(err, errlen, "%s %s: %s", h->method, h->url, sf_curl_easy_strerror(cc));
    }
    sf_curl_easy_cleanup(curl);
    return rc;
}

int sf_e2b_http_error(const struct sf_e2b_http *h, const char *what, char *err, size_t errlen)
{
    char msg[300] = "";
    json_t *j = h->resp.len ? json_loadb(h->resp.data, h->resp.len, 0, NULL) : NULL;
    json_t *m = json_object_get(j, "message");
    if (json_is_string(m)) sf_strlcpy(msg, json_string_value(m), sizeof(msg));
    else if (h->resp.len) snprintf(msg, sizeof(msg), "%.200s", h->resp.data);
    json_decref(j);
    switch (h->status) {
    case 401:
        sf_errf(err, errlen, "%s: 401 unauthorized (%s): check E2B_API_KEY", what, msg);
        return -EACCES;
    case 403:
        sf_errf(err, errlen, "%s: 403 forbidden (%s)", what, msg);
        return -EACCES;
    case 404:
        sf_errf(err, errlen, "%s: 404 not found (%s)", what, msg);
        return -ENOENT;
    case 429:
        sf_errf(err, errlen, "%s: 429 rate or concurrency limit reached (%s); lower the "
                "concurrency or raise the E2B plan's limits", what, msg);
        return -EAGAIN;
    case 502:
        sf_errf(err, errlen, "%s: 502 the sandbox is not running: it timed out, was killed, "
                "or never existed (%s)", what, msg);
        return -EHOSTDOWN;
    default:
        if (h->status >= 500)
            sf_errf(err, errlen, "%s: %ld server error on the E2B side (%s); try again later",
                    what, h->status, msg);
        else
            sf_errf(err, errlen, "%s: HTTP %ld (%s)", what, h->status, msg);
        return -EIO;
    }
}

/* ---- REST calls ------------------------------------------------------------- */

static struct curl_slist *e2b_api_headers(const struct sf_e2b_conn *c, bool json_body)
{
    char *key = sf_xasprintf("X-API-Key: %s", c->api_key);
    struct curl_slist *hl = sf_curl_slist_append(NULL, key);
    free(key);
    if (json_body) hl = sf_curl_slist_append(hl, "Content-Type: application/json");
    return hl;
}

static int e2b_parse_created(const struct sf_e2b_conn *c, const struct sf_buf *b,
                             struct sf_e2b_sandbox_info *out, char *err, size_t errlen)
{
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    json_t *id = json_object_get(j, "sandboxID"), *v;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (!json_is_string(id) || !json_string_length(id) || json_string_length(id) >= sizeof(out->id)) {
        sf_errf(err, errlen, "e2b create: the answer has no sandboxID");
        rc = -EPROTO;
        goto cleanup;
    }
    sf_strlcpy(out->id, json_string_value(id), sizeof(out->id));
    if (json_is_string(v = json_object_get(j, "envdAccessToken")))
        sf_strlcpy(out->token, json_string_value(v), sizeof(out->token));
    if (json_is_string(v = json_object_get(j, "domain")))
        sf_strlcpy(out->domain, json_string_value(v), sizeof(out->domain));
    if (json_is_string(v = json_object_get(j, "envdVersion")))
        sf_strlcpy(out->envd_version, json_string_value(v), sizeof(out->envd_version));
    sf_e2b_envd_url(c, out->id, out->domain, out->envd_url, sizeof(out->envd_url));
cleanup:
    json_decref(j);
    return rc;
}

int sf_e2b_api_create(const struct sf_e2b_conn *c, const struct sf_e2b_create_req *req,
                      struct sf_e2b_sandbox_info *out, char *err, size_t errlen)
{
    json_t *body = json_pack("{s:s,s:i,s:b,s:b}", "templateID",
                             req->template_id ? req->template_id : c->template_id,
                             "timeout", req->timeout_s > 0 ? req->timeout_s : 300,
                             "secure", req->secure, "allow_internet_access", req->allow_internet);
    json_object_set_new(body, "envVars", req->env_vars ? json_incref(req->env_vars) : json_object());
    json_object_set_new(body, "metadata", req->metadata ? json_incref(req->metadata) : json_object());
    if (req->network) json_object_set_new(body, "network", json_incref(req->network));
    char *text = json_dumps(body, JSON_COMPACT);
    char *url = sf_xasprintf("%s/sandboxes", c->api_url);
    struct curl_slist *hl = e2b_api_headers(c, true);
    int64_t delay = c->backoff_ms;
    int rc = -EIO;

    for (int attempt = 1;; attempt++) {
        struct sf_e2b_http h = { .method = "POST", .url = url, .headers = hl, .body = text,
                                 .body_len = strlen(text), .timeout_ms = c->request_timeout_ms };
        rc = sf_e2b_http_do(&h, err, errlen);
        bool retry = rc == -ECONNREFUSED;
        if (rc == 0 && (h.status == 200 || h.status == 201)) {
            rc = e2b_parse_created(c, &h.resp, out, err, errlen);
            sf_buf_free(&h.resp);
            break;
        }
        if (rc == 0) {
            rc = sf_e2b_http_error(&h, "e2b create sandbox", err, errlen);
            retry = h.status == 429 || h.status >= 500;
        }
        int64_t wait = h.retry_after_ms > delay ? h.retry_after_ms : delay;
        sf_buf_free(&h.resp);
        if (!retry || attempt >= c->create_attempts) break;
        sf_sleep_ms(wait);
        delay *= 2;
    }
    sf_curl_slist_free_all(hl);
    free(url);
    free(text);
    json_decref(body);
    return rc;
}

int sf_e2b_api_kill(const struct sf_e2b_conn *c, const char *id, char *err, size_t errlen)
{
    char *url = sf_xasprintf("%s/sandboxes/%s", c->api_url, id);
    struct curl_slist *hl = e2b_api_headers(c, false);
    struct sf_e2b_http h = { .method = "DELETE", .url = url, .headers = hl,
                             .timeout_ms = c->request_timeout_ms };
    int rc = sf_e2b_http_do(&h, err, errlen);
    if (rc == 0 && h.status != 204 && h.status != 200)
        rc = sf_e2b_http_error(&h, "e2b kill sandbox", err, errlen);
    sf_buf_free(&h.resp);
    sf_curl_slist_free_all(hl);
    free(url);
    return rc;
}

int sf_e2b_api_set_timeout(const struct sf_e2b_conn *c, const char *id, int timeout_s, char *err,
                           size_t errlen)
{
    char *url = sf_xasprintf("%s/sandboxes/%s/timeout", c->api_url, id);
    char body[64];
    snprintf(body, sizeof(body), "{\"timeout\":%d}", timeout_s);
    struct curl_slist *hl = e2b_api_headers(c, true);
    struct sf_e2b_http h = { .method = "POST", .url = url, .headers = hl, .body = body,
                             .body_len = strlen(body), .timeout_ms = c->request_timeout_ms };
    int rc = sf_e2b_http_do(&h, err, errlen);
    if (rc == 0 && h.status != 204 && h.status != 200)
        rc = sf_e2b_http_error(&h, "e2b set sandbox timeout", err, errlen);
    sf_buf_free(&h.resp);
    sf_curl_slist_free_all(hl);
    free(url);
    return rc;
}
