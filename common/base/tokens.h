/* common/base/tokens.h: bearer tokens for an HTTP API (serve's), each with a
 * name and a scope, and the constant-time check of a presented one.
 *
 * A token file (--api-token-file) has one token per line:
 *     # name   scope    token
 *     ci       client   2b7e1516...
 *     ops      admin    9f86d081...
 * name: 1-64 of [A-Za-z0-9_.-]; scope: "admin" (everything) or "client"
 * (only what it submitted itself); token: 16-512 visible ASCII characters
 * (no spaces). Blank lines and lines starting with '#' are skipped; a line
 * holding only a token is an admin token named "admin" (a file that holds
 * just the secret, as mounted secrets often are). Names and tokens are
 * unique. Errors name the line, never the token.
 *
 * Tokens are kept only as keyed SHA-256 digests (a random key per process):
 * a presented token is hashed once and compared with every entry with
 * CRYPTO_memcmp, so neither its length nor the position of a match shows
 * in the time taken.
 * Thread: build (new/add/parse/load) on one thread; check from any thread
 * afterwards (read-only). */
#ifndef SF_TOKENS_H
#define SF_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#define SF_TOKEN_NAME_MAX 64
#define SF_TOKEN_MIN 16
#define SF_TOKEN_MAX 512

enum sf_scope { SF_SCOPE_CLIENT = 0, SF_SCOPE_ADMIN = 1 };

struct sf_principal {
    char name[SF_TOKEN_NAME_MAX + 1];
    enum sf_scope scope;
};

struct sf_tokens;
struct sf_tokens *sf_tokens_new(void);
void sf_tokens_free(struct sf_tokens *t);          /* NULL is a no-op */
/* 0, or -EINVAL (bad name/token, duplicate) with the reason in err. */
int sf_tokens_add(struct sf_tokens *t, const char *name, enum sf_scope scope, const char *token,
                  char *err, size_t errlen);
/* Every line of a token file's text; 0 or -EINVAL with "line N: why". */
int sf_tokens_parse(struct sf_tokens *t, const char *text, size_t len, char *err, size_t errlen);
/* Read and parse a file (at most 1 MiB); a file others may read is
 * accepted with a warning in warn (warn[0] = 0 when none). */
int sf_tokens_load(struct sf_tokens *t, const char *path, char *warn, size_t warnlen,
                   char *err, size_t errlen);
size_t sf_tokens_count(const struct sf_tokens *t);
/* The principal of a presented token, or NULL. */
const struct sf_principal *sf_tokens_check(const struct sf_tokens *t, const char *token, size_t len);
/* The same for an Authorization header value "Bearer <token>" (NULL-safe). */
const struct sf_principal *sf_tokens_bearer(const struct sf_tokens *t, const char *authorization);
/* Case-sensitive name check shared with the parser: [A-Za-z0-9_.-]{1,64}. */
bool sf_token_name_ok(const char *name);

#endif
