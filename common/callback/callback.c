/* common/callback/callback.c: see callback.h. Everything here is pure except the
 * secret loader, so the parsers can be unit-tested and fuzzed. The spec is
 * validated strictly when a task is decoded: a callback that cannot be
 * delivered should reject the task up front (dead letter with the reason),
 * not fail a day later. */
#include "callback.h"
#include "hmac.h"
#include "secrets.h"
#include "util.h"

#include <ctype.h>
#include "lazy_curl.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* --- the spec ------------------------------------------------------------------ */

/* RFC 9110 token characters. */
static bool header_name_ok(const char *s)
{
    if (!*s || strlen(s) > 128) return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s))) return false;
    return true;
}

static bool header_reserved(const char *s)
{
    static const char *const reserved[] = { "content-type", "content-length", "host",
                                            "transfer-encoding", "connection", "expect" };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (!strcasecmp(s, reserved[i])) return true;
    return !strncasecmp(s, "sandfleet-", 10);
}

int sf_callback_url_host(const char *url, char *host, size_t hostlen, int *port, bool *https)
{
    char *scheme = NULL, *h = NULL, *p = NULL, *user = NULL, *pass = NULL;
    int rc = sf_curl_load(NULL, 0);
    if (rc < 0) return rc;                      /* no libcurl to parse with */
    CURLU *u = sf_curl_url();
    rc = -EINVAL;
    if (!u || sf_curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) goto out;
    if (sf_curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) goto out;
    if (sf_curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !*h) goto out;
    /* Credentials in a URL end up in logs and dead lists: refuse them. */
    if (sf_curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        sf_curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK)
        goto out;
    if (sf_curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK) goto out;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        memmove(h, h + 1, hl - 2);
        h[hl - 2] = '\0';
    }
    if (host) sf_strlcpy(host, h, hostlen);
    if (port) *port = atoi(p);
    if (https) *https = !strcasecmp(scheme, "https");
    rc = 0;
out:
    sf_curl_free(scheme);
    sf_curl_free(h);
    sf_curl_free(p);
    sf_curl_free(user);
    sf_curl_free(pass);
    sf_curl_url_cleanup(u);
    return rc;
}

static int check_headers(json_t *h, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    if (!json_is_object(h)) {
        sf_errf(err, errlen, "callback: 'headers' must be an object of strings");
        return -EINVAL;
    }
    if (json_object_size(h) > SF_CALLBACK_HEADERS_MAX) {
        sf_errf(err, errlen, "callback: at most %d headers", SF_CALLBACK_HEADERS_MAX);
        return -EINVAL;
    }
    json_object_foreach(h, k, v) {
        if (!header_name_ok(k)) {
            sf_errf(err, errlen, "callback: header name '%.60s' is not an HTTP token", k);
            return -EINVAL;
        }
        if (header_reserved(k)) {
            sf_errf(err, errlen, "callback: header '%.60s' is set by sandfleet and cannot be given", k);
            return -EINVAL;
        }
        if (!json_is_string(v) || json_string_length(v) > 4096 ||
            strpbrk(json_string_value(v), "\r\n") || strlen(json_string_value(v)) != json_string_length(v)) {
            /* The value is not shown: headers often carry tokens. */
            sf_errf(err, errlen, "callback: header '%.60s' must be a string of at most 4096 bytes without CR, LF or NUL", k);
            return -EINVAL;
        }
    }
    return 0;
}

struct sf_callback *sf_callback_from_json(json_t *j, char *err, size_t errlen)
{
    struct sf_callback *cb = sf_xcalloc(1, sizeof(*cb));
    json_t *url, *h, *sr;
    if (!json_is_object(j)) {
        sf_errf(err, errlen, "callback must be an object {\"url\", \"headers\"?, \"secret_ref\"?}");
        goto fail;
    }
    url = json_object_get(j, "url");
    if (!json_is_string(url)) {
        sf_errf(err, errlen, "callback: missing string field 'url'");
        goto fail;
    }
    if (json_string_length(url) > SF_CALLBACK_URL_MAX ||
        strlen(json_string_value(url)) != json_string_length(url)) {
        sf_errf(err, errlen, "callback: url longer than %d bytes or with NUL", SF_CALLBACK_URL_MAX);
        goto fail;
    }
    int urc = sf_callback_url_host(json_string_value(url), NULL, 0, NULL, NULL);
    if (urc == -ENOENT) {
        char why[512];
        sf_curl_load(why, sizeof(why));
        sf_errf(err, errlen, "callback: cannot check the url: %s", why);
        goto fail;
    }
    if (urc < 0) {
        sf_errf(err, errlen, "callback: url must be http:// or https:// with a host and without user:password@");
        goto fail;
    }
    cb->url = sf_xstrdup(json_string_value(url));
    if ((h = json_object_get(j, "headers")) && !json_is_null(h)) {
        if (check_headers(h, err, errlen) < 0) goto fail;
        cb->headers = json_deep_copy(h);
    }
    if ((sr = json_object_get(j, "secret_ref")) && !json_is_null(sr)) {
        if (!json_is_string(sr) || !sf_secret_name_ok(json_string_value(sr))) {
            sf_errf(err, errlen, "callback: secret_ref must be a NAME of A-Z, 0-9 and _ (the secret "
                    "itself comes from SANDFLEET_SECRET_<NAME>)");
            goto fail;
        }
        cb->secret_ref = sf_xstrdup(json_string_value(sr));
    }
    return cb;
fail:
    sf_callback_free(cb);
    return NULL;
}

json_t *sf_callback_to_json(const struct sf_callback *cb)
{
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(cb->url));
    if (cb->headers) json_object_set(o, "headers", cb->headers);
    if (cb->secret_ref) json_object_set_new(o, "secret_ref", json_string(cb->secret_ref));
    return o;
}

struct sf_callback *sf_callback_dup(const struct sf_callback *cb)
{
    if (!cb) return NULL;
    struct sf_callback *d = sf_xcalloc(1, sizeof(*d));
    d->url = sf_xstrdup(cb->url);
    d->headers = cb->headers ? json_deep_copy(cb->headers) : NULL;
    d->secret_ref = sf_xstrdup(cb->secret_ref);
    return d;
}

static void callback_clear(struct sf_callback *cb)
{
    free(cb->url);
    json_decref(cb->headers);
    free(cb->secret_ref);
    memset(cb, 0, sizeof(*cb));
}

void sf_callback_free(struct sf_callback *cb)
{
    if (!cb) return;
    callback_clear(cb);
    free(cb);
}

/* --- records ---------------------------------------------------------------------- */

char *sf_callback_task_id(const char *task_id, int attempt)
{
    return sf_xasprintf("task:%s:%d", task_id, attempt);
}

char *sf_callback_run_id(const char *run_id) { return sf_xasprintf("run:%s", run_id); }

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) abort();                        /* jansson fails only on OOM here */
    return s;
}

char *sf_callback_record_new(const struct sf_callback *cb, const char *id, const char *kind,
                             const char *run_id, const char *task_id, const char *body,
                             size_t body_len, int64_t created_ms)
{
    struct sf_callback_record rec = {
        .id = (char *)id, .kind = (char *)kind, .run_id = (char *)run_id, .task_id = (char *)task_id,
        .cb = *cb, .body = (char *)body, .body_len = body_len, .created_at = created_ms,
    };
    return sf_callback_record_encode(&rec);
}

char *sf_callback_record_encode(const struct sf_callback_record *rec)
{
    json_t *o = sf_callback_to_json(&rec->cb);
    json_object_set_new(o, "id", json_string(rec->id));
    json_object_set_new(o, "kind", json_string(rec->kind));
    json_object_set_new(o, "run_id", json_string(rec->run_id ? rec->run_id : ""));
    if (rec->task_id) json_object_set_new(o, "task_id", json_string(rec->task_id));
    json_object_set_new(o, "body", json_stringn(rec->body, rec->body_len));
    json_object_set_new(o, "attempts", json_integer(rec->attempts));
    json_object_set_new(o, "created_at", json_integer(rec->created_at));
    if (rec->last_error) json_object_set_new(o, "last_error", json_string(rec->last_error));
    if (rec->failed_at) json_object_set_new(o, "failed_at", json_integer(rec->failed_at));
    return dump(o);
}

static char *opt_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? sf_xstrndup(json_string_value(v), json_string_length(v)) : NULL;
}

struct sf_callback_record *sf_callback_record_decode(const char *data, size_t len,
                                                     char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(data, len, 0, &je);
    struct sf_callback_record *rec = NULL;
    struct sf_callback *cb;
    json_t *body;
    if (!o) {
        sf_errf(err, errlen, "callback record: malformed JSON: %s", je.text);
        return NULL;
    }
    /* Records are re-validated: one written by hand (or by an older version)
     * must not smuggle in what a task could not. */
    if (!(cb = sf_callback_from_json(o, err, errlen))) goto out;
    body = json_object_get(o, "body");
    if (!json_is_string(body) || !json_is_string(json_object_get(o, "id"))) {
        sf_errf(err, errlen, "callback record: missing 'id' or 'body'");
        sf_callback_free(cb);
        goto out;
    }
    rec = sf_xcalloc(1, sizeof(*rec));
    rec->cb = *cb;
    free(cb);
    rec->id = opt_str(o, "id");
    rec->kind = opt_str(o, "kind");
    if (!rec->kind) rec->kind = sf_xstrdup("task");
    rec->run_id = opt_str(o, "run_id");
    rec->task_id = opt_str(o, "task_id");
    rec->body = sf_xstrndup(json_string_value(body), json_string_length(body));
    rec->body_len = json_string_length(body);
    rec->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
    if (rec->attempts < 0) rec->attempts = 0;
    rec->created_at = json_integer_value(json_object_get(o, "created_at"));
    rec->last_error = opt_str(o, "last_error");
    rec->failed_at = json_integer_value(json_object_get(o, "failed_at"));
out:
    json_decref(o);
    return rec;
}

void sf_callback_record_free(struct sf_callback_record *rec)
{
    if (!rec) return;
    free(rec->id);
    free(rec->kind);
    free(rec->run_id);
    free(rec->task_id);
    callback_clear(&rec->cb);
    free(rec->body);
    free(rec->last_error);
    free(rec);
}

/* --- retries ------------------------------------------------------------------------ */

int64_t sf_callback_backoff_ms(int64_t base_ms, int attempt, uint32_t rnd)
{
    int64_t d = base_ms > 0 ? base_ms : SF_CALLBACK_DEFAULT_BASE_MS;
    for (int a = 1; a < attempt && d < ((int64_t)1 << 40); a++) d *= 3;
    if (d > ((int64_t)1 << 40)) d = (int64_t)1 << 40;
    /* 80..100 %: spreads a burst of failures (a receiver that was down)
     * without making the documented schedule meaningless. */
    return d - (int64_t)((double)d * 0.2 * ((double)rnd / 4294967295.0));
}

int sf_callback_retry_after_ms(const char *value, int64_t now_wall_ms, int64_t *ms)
{
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT",    /* RFC 850 */
        "%a %b %e %H:%M:%S %Y",         /* asctime */
    };
    const char *s = value;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return -EINVAL;
    if (isdigit((unsigned char)*s)) {
        char *end;
        errno = 0;
        unsigned long long sec = strtoull(s, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (*end || errno) return -EINVAL;
        *ms = sec > (unsigned long long)(SF_CALLBACK_RETRY_AFTER_MAX_MS / 1000)
                  ? SF_CALLBACK_RETRY_AFTER_MAX_MS : (int64_t)sec * 1000;
        return 0;
    }
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(s, formats[i], &tm);
        if (!end) continue;
        while (*end == ' ' || *end == '\t') end++;
        if (*end) continue;
        int64_t at = (int64_t)timegm(&tm) * 1000;
        int64_t d = at - now_wall_ms;
        *ms = d < 0 ? 0 : d > SF_CALLBACK_RETRY_AFTER_MAX_MS ? SF_CALLBACK_RETRY_AFTER_MAX_MS : d;
        return 0;
    }
    return -EINVAL;
}

enum sf_callback_verdict sf_callback_verdict_for_status(long status)
{
    if (status >= 200 && status < 300) return SF_CALLBACK_DELIVERED;
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) return SF_CALLBACK_RETRY;
    return SF_CALLBACK_GIVE_UP;
}

/* --- signing -------------------------------------------------------------------------- */

int sf_callback_sign(const char *secret, size_t secret_len, int64_t ts, const char *body,
                     size_t body_len, char *sig, size_t siglen)
{
    char prefix[32];
    uint8_t mac[SF_HMAC_SHA256_LEN];
    int pn = snprintf(prefix, sizeof(prefix), "%lld.", (long long)ts);
    const void *parts[] = { prefix, body };
    size_t lens[] = { (size_t)pn, body_len };
    if (siglen < 4 + 2 * SF_HMAC_SHA256_LEN) return -ENOSPC;
    int rc = sf_hmac_sha256(secret, secret_len, parts, lens, 2, mac);
    if (rc < 0) return rc;
    memcpy(sig, "v1=", 3);
    sf_hmac_hex(mac, sizeof(mac), sig + 3);
    explicit_bzero(mac, sizeof(mac));
    return 0;
}
