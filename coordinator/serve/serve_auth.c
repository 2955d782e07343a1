/* coordinator/serve/serve_auth.c: who may use serve's API (docs/security.md,
 * "Front doors").
 * - Tokens: SANDFLEET_API_TOKEN (an admin token, named "admin") and
 *   --api-token-file (base/tokens.h: named tokens, scope admin or client).
 *   Never a flag value: argv is world-readable. The variable is wiped
 *   and removed from the environment once read.
 * - With no token at all serve is open, and then only on a loopback
 *   address: every caller is the admin "local". A non-loopback --http
 *   without a token is refused at start.
 * - Every /api route checks the bearer token on the request head, before
 *   the body (http.h's auth hook); /healthz, /readyz, /metrics and the
 *   static page stay open (the page asks for a token and sends it).
 * - A client token sees and controls only runs it submitted (owner
 *   "api:<name>"); an admin token sees all of them, and the queue status. */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int serve_auth_setup(const char *token_file, const char *http, struct sf_tokens **out,
                     const struct sf_log *lg, char *err, size_t errlen)
{
    struct sf_tokens *t = sf_tokens_new();
    char warn[512], why[512];
    const char *env = getenv("SANDFLEET_API_TOKEN");
    int rc = 0;
    *out = NULL;
    if (env && *env) {
        if ((rc = sf_tokens_add(t, "admin", SF_SCOPE_ADMIN, env, why, sizeof(why))) < 0) {
            sf_errf(err, errlen, "SANDFLEET_API_TOKEN: %s", why);
            goto fail;
        }
    }
    if (env) {
        /* Out of the environment, and out of the memory /proc/PID/environ
         * shows (unsetenv alone leaves the bytes there). */
        explicit_bzero((char *)env, strlen(env));
        unsetenv("SANDFLEET_API_TOKEN");
    }
    if (token_file) {
        if ((rc = sf_tokens_load(t, token_file, warn, sizeof(warn), why, sizeof(why))) < 0) {
            sf_errf(err, errlen, "--api-token-file %s", why);
            goto fail;
        }
        if (warn[0]) SF_LOG(lg, SF_LOG_WARN, NULL, NULL, "--api-token-file: %s", warn);
    }
    if (sf_tokens_count(t) == 0) {
        if (!sf_http_is_loopback(http)) {
            sf_errf(err, errlen, "--http %s is not a loopback address: set SANDFLEET_API_TOKEN or "
                    "--api-token-file before serving the API to a network (docs/security.md)", http);
            rc = -EPERM;
            goto fail;
        }
        SF_LOG(lg, SF_LOG_WARN, NULL, NULL, "no API token: every user and process of this host may "
               "use the API on %s (set SANDFLEET_API_TOKEN or --api-token-file)", http);
        sf_tokens_free(t);
        return 0;
    }
    *out = t;
    return 0;
fail:
    sf_tokens_free(t);
    return rc;
}

int serve_auth_hook(void *arg, const struct sf_http_req *req, const void **principal,
                    struct sf_http_resp *resp)
{
    const struct sf_tokens *t = arg;
    const char *h = sf_http_header(req, "Authorization");
    const struct sf_principal *p = sf_tokens_bearer(t, h);
    if (!p) {
        sf_http_reply(resp, 401, "application/json",
                      h ? "{\"error\":\"invalid API token\"}" : "{\"error\":\"API token required: Authorization: Bearer <token>\"}");
        return 401;
    }
    *principal = p;
    return 0;
}

bool serve_is_admin(const struct sf_principal *p) { return !p || p->scope == SF_SCOPE_ADMIN; }

void serve_owner_of(const struct sf_principal *p, char *buf, size_t n)
{
    snprintf(buf, n, "api:%s", p ? p->name : "local");
}

bool serve_may_see(const struct sf_principal *p, const char *owner)
{
    char mine[96];
    if (serve_is_admin(p)) return true;
    serve_owner_of(p, mine, sizeof(mine));
    return owner && !strcmp(owner, mine);
}
