/* common/callback/callback.h: HTTP callbacks (webhooks) — the model, I/O-free.
 *
 * A task (wire field "callback") or a workflow run may carry
 *   {"url": "https://...", "headers": {"K": "V"}, "secret_ref": "NAME"}
 * and when it ends its result document is POSTed to the URL. This header
 * covers what can be decided without a network: validating the spec, the
 * delivery record kept in the broker, the retry schedule, Retry-After,
 * what an HTTP status means, and the signature. Delivery itself is in
 * callback_dispatch.h, the destination policy in callback_net.h.
 * docs/protocol.md §8 is the public description.
 *
 * Ownership: structs returned are owned by the caller and freed with the
 * matching _free (NULL is a no-op). Thread: every function is reentrant.
 */
#ifndef SF_CALLBACK_H
#define SF_CALLBACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_CALLBACK_URL_MAX 2048
#define SF_CALLBACK_HEADERS_MAX 32
#define SF_CALLBACK_DEFAULT_ATTEMPTS 10
#define SF_CALLBACK_DEFAULT_BASE_MS 10000      /* 10 s x 3^(n-1): about a day */
#define SF_CALLBACK_RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)

/* The spec as the message carries it. headers is an object of strings
 * (may be NULL); secret_ref names a secret, never holds one. */
struct sf_callback {
    char *url;
    json_t *headers;
    char *secret_ref;
};

/* Validate and copy a spec: url http(s) with a host and no user:password,
 * at most 2048 bytes; headers an object of at most 32 strings whose names
 * are HTTP tokens other than the ones sandfleet sets (Content-Type,
 * Content-Length, Host, Transfer-Encoding, Connection, Expect, Sandfleet-*)
 * and whose values have no CR/LF; secret_ref a NAME ([A-Z][A-Z0-9_]{0,63}).
 * Returns NULL with the reason in err ("callback: url must be http or https"). */
struct sf_callback *sf_callback_from_json(json_t *j, char *err, size_t errlen);
json_t *sf_callback_to_json(const struct sf_callback *cb);
struct sf_callback *sf_callback_dup(const struct sf_callback *cb);
void sf_callback_free(struct sf_callback *cb);


/* Split url into its host (brackets removed from IPv6) and port (default
 * 80/443); 0, -EINVAL, or -ENOENT when libcurl cannot be loaded (see
 * lazy_curl.h). Uses libcurl's URL parser, the one that connects, so the
 * policy check and the connection never disagree about the host. */
int sf_callback_url_host(const char *url, char *host, size_t hostlen, int *port, bool *https);

/* --- the delivery record (one per pending delivery, in the broker) ----------
 * JSON: {"id","kind":"task"|"run","run_id","task_id"?,"url","headers"?,
 *        "secret_ref"?,"body","attempts","created_at","last_error"?,
 *        "failed_at"?}
 * body is the exact text POSTed (and signed); attempts counts HTTP attempts
 * made so far. */
struct sf_callback_record {
    char *id, *kind, *run_id, *task_id;     /* task_id NULL for a run */
    struct sf_callback cb;
    char *body;
    size_t body_len;
    int attempts;
    int64_t created_at;                     /* wall ms */
    char *last_error;                       /* NULL before the first failure */
    int64_t failed_at;                      /* wall ms; dead records only */
};

/* A new record (attempts 0) as malloc'd JSON text. */
char *sf_callback_record_new(const struct sf_callback *cb, const char *id, const char *kind,
                             const char *run_id, const char *task_id, const char *body,
                             size_t body_len, int64_t created_ms);
struct sf_callback_record *sf_callback_record_decode(const char *data, size_t len,
                                                     char *err, size_t errlen);
/* Encode (malloc'd JSON text). */
char *sf_callback_record_encode(const struct sf_callback_record *rec);
void sf_callback_record_free(struct sf_callback_record *rec);

/* Delivery ids, also the Sandfleet-Delivery header: "task:<task_id>:<attempt>"
 * (the result's attempt: stable across delivery retries) and "run:<run_id>".
 * malloc'd. */
char *sf_callback_task_id(const char *task_id, int attempt);
char *sf_callback_run_id(const char *run_id);

/* --- retries ------------------------------------------------------------------ */

/* Delay before attempt n+1 after attempt n (1-based) failed: base x 3^(n-1)
 * (no cap below 2^40 ms), scaled by 80..100 % using rnd (uniform 32 bits).
 * With base 10 s: 10 s, 30 s, 1.5 min, 4.5 min, 13.5 min, 40.5 min, 2 h,
 * 6.1 h, 18.2 h — 10 attempts over 27.3 h nominal. */
int64_t sf_callback_backoff_ms(int64_t base_ms, int attempt, uint32_t rnd);

/* Retry-After: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime), relative to now_wall_ms. 0 with the wait in *ms (0 for a date
 * in the past, capped at 24 h), or -EINVAL. */
int sf_callback_retry_after_ms(const char *value, int64_t now_wall_ms, int64_t *ms);

enum sf_callback_verdict {
    SF_CALLBACK_DELIVERED = 0,  /* 2xx */
    SF_CALLBACK_RETRY,          /* 408, 429, 5xx, connection errors, timeouts */
    SF_CALLBACK_GIVE_UP,        /* every other status: 3xx (redirects are not followed), 4xx */
};
enum sf_callback_verdict sf_callback_verdict_for_status(long status);

/* --- signing ------------------------------------------------------------------- */

/* The secret of a secret_ref is loaded with sf_secret_load (secrets.h). */

/* "v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>" into sig (>= 68 bytes). */
int sf_callback_sign(const char *secret, size_t secret_len, int64_t ts, const char *body,
                     size_t body_len, char *sig, size_t siglen);

#endif
