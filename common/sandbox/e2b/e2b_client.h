/* common/sandbox/e2b/e2b_client.h: the E2B control-plane REST API (create, kill, set
 * timeout) over libcurl, and the HTTP helper the envd client shares.
 *
 * Configuration is resolved like the official SDKs: explicit settings
 * first, then E2B_API_KEY, E2B_DOMAIN (default e2b.app), E2B_API_URL
 * (default https://api.<domain>) and E2B_SANDBOX_URL (envd base override,
 * used against self-hosted or fake servers).
 * Errors are turned into messages that name the cause: 401 (the key), 429
 * (rate or concurrency limit), 5xx (E2B side), and envd's 502 (the sandbox
 * is gone or timed out).
 * Thread: a struct sf_e2b_conn is read-only after init and may be shared by
 * any number of threads; every call uses its own curl handle. */
#ifndef SF_E2B_CLIENT_H
#define SF_E2B_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "sandbox.h"
#include "util.h"

#define SF_E2B_ENVD_PORT 49983

struct sf_e2b_conn {
    char *api_key, *domain, *api_url, *sandbox_url, *template_id;  /* owned */
    long request_timeout_ms;   /* one REST or unary call; default 60 s as the SDK */
    int create_attempts;       /* create tries on 429/5xx/connect failure; default 4 */
    int64_t backoff_ms;        /* first retry delay, doubled each time; default 500 */
};

/* Resolve settings from cfg (strings copied; NULL fields fall back to the
 * environment). -EINVAL with a message when there is no API key. */
int sf_e2b_conn_init(struct sf_e2b_conn *c, const struct sf_provider_config *cfg, char *err,
                     size_t errlen);
void sf_e2b_conn_free(struct sf_e2b_conn *c);

/* One HTTP exchange. */
struct sf_e2b_http {
    const char *method, *url;
    struct curl_slist *headers;         /* borrowed */
    const void *body;                   /* NULL: none */
    size_t body_len;
    struct curl_mime *mime;             /* borrowed; instead of body */
    long timeout_ms;                    /* whole exchange; 0: none */
    size_t max_response;                /* 0: 64 MiB */
    /* out */
    long status;
    struct sf_buf resp;                 /* response body; caller frees */
    int64_t retry_after_ms;             /* from Retry-After, or -1 */
};

/* Perform it. 0 when a response arrived (any status), -ECONNREFUSED /
 * -ETIMEDOUT / -EFBIG / -EIO on transport failure with a message in err. */
int sf_e2b_http_do(struct sf_e2b_http *h, char *err, size_t errlen);

/* Describe a non-2xx answer ("401 Unauthorized: <server message>: check
 * E2B_API_KEY") into err; returns the -errno it maps to (-EACCES 401/403,
 * -ENOENT 404, -EAGAIN 429, -EHOSTDOWN 502, -EIO otherwise). 'what' names
 * the call. */
int sf_e2b_http_error(const struct sf_e2b_http *h, const char *what, char *err, size_t errlen);

/* What create returns, and what the envd client needs. */
struct sf_e2b_sandbox_info {
    char id[64];
    char token[256];        /* envdAccessToken, "" when not secure */
    char domain[256];       /* sandbox domain ("" means the client's) */
    char envd_version[32];
    char envd_url[512];     /* base URL for envd requests */
};

struct sf_e2b_create_req {
    const char *template_id;   /* NULL: the conn's */
    int timeout_s;             /* sandbox lifetime before E2B kills it */
    json_t *env_vars, *metadata; /* borrowed, may be NULL */
    json_t *network;           /* borrowed, may be NULL: E2B's "network" (allow_out, deny_out) */
    bool secure, allow_internet;
};

/* POST /sandboxes, retried with backoff on 429, 5xx and connection
 * failures. 0, or -errno with a message. */
int sf_e2b_api_create(const struct sf_e2b_conn *c, const struct sf_e2b_create_req *req,
                      struct sf_e2b_sandbox_info *out, char *err, size_t errlen);
/* DELETE /sandboxes/{id}: 0 when killed, -ENOENT when already gone. */
int sf_e2b_api_kill(const struct sf_e2b_conn *c, const char *id, char *err, size_t errlen);
/* POST /sandboxes/{id}/timeout: the sandbox dies timeout_s from now. */
int sf_e2b_api_set_timeout(const struct sf_e2b_conn *c, const char *id, int timeout_s, char *err,
                           size_t errlen);

/* The envd base URL for a sandbox, as the Python SDK builds it. */
void sf_e2b_envd_url(const struct sf_e2b_conn *c, const char *id, const char *sandbox_domain,
                     char *dst, size_t size);

#endif
