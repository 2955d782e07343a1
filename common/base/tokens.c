/* common/base/tokens.c: see tokens.h. */
#include "tokens.h"
#include "hmac.h"
#include "util.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>

struct entry {
    struct sf_principal who;
    uint8_t digest[SF_HMAC_SHA256_LEN];
};

struct sf_tokens {
    uint8_t key[32];
    struct entry *v;
    size_t n;
};

struct sf_tokens *sf_tokens_new(void)
{
    struct sf_tokens *t = sf_xcalloc(1, sizeof(*t));
    size_t got = 0;
    while (got < sizeof(t->key)) {
        ssize_t n = getrandom(t->key + got, sizeof(t->key) - got, 0);
        if (n > 0) got += (size_t)n;
        else if (errno != EINTR) abort();      /* no kernel randomness: nothing safe to do */
    }
    return t;
}

void sf_tokens_free(struct sf_tokens *t)
{
    if (!t) return;
    if (t->v) OPENSSL_cleanse(t->v, t->n * sizeof(*t->v));
    free(t->v);                  /* before the struct is wiped: it holds the pointer */
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

static void digest(const struct sf_tokens *t, const char *token, size_t len, uint8_t out[SF_HMAC_SHA256_LEN])
{
    const void *parts[] = { token };
    size_t lens[] = { len };
    if (sf_hmac_sha256(t->key, sizeof(t->key), parts, lens, 1, out) < 0) memset(out, 0, SF_HMAC_SHA256_LEN);
}

bool sf_token_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > SF_TOKEN_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool token_ok(const char *tok, size_t n)
{
    if (n < SF_TOKEN_MIN || n > SF_TOKEN_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f) return false;
    return true;
}

static const struct sf_principal *lookup(const struct sf_tokens *t, const uint8_t d[SF_HMAC_SHA256_LEN])
{
    const struct sf_principal *found = NULL;
    for (size_t i = 0; i < t->n; i++) {
        /* Every entry is compared, whatever matched before. */
        int differ = CRYPTO_memcmp(t->v[i].digest, d, SF_HMAC_SHA256_LEN);
        uintptr_t mask = (uintptr_t)0 - (uintptr_t)(differ == 0);
        found = (const struct sf_principal *)(((uintptr_t)&t->v[i].who & mask) | ((uintptr_t)found & ~mask));
    }
    return found;
}

int sf_tokens_add(struct sf_tokens *t, const char *name, enum sf_scope scope, const char *token,
                  char *err, size_t errlen)
{
    uint8_t d[SF_HMAC_SHA256_LEN];
    if (!sf_token_name_ok(name)) {
        sf_errf(err, errlen, "token name '%.64s' must be 1-%d of letters, digits, '_', '.', '-'", name,
                SF_TOKEN_NAME_MAX);
        return -EINVAL;
    }
    if (!token_ok(token, strlen(token))) {
        sf_errf(err, errlen, "token '%s' must be %d-%d visible ASCII characters without spaces", name,
                SF_TOKEN_MIN, SF_TOKEN_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].who.name, name)) {
            sf_errf(err, errlen, "token name '%s' is given twice", name);
            return -EINVAL;
        }
    digest(t, token, strlen(token), d);
    if (lookup(t, d)) {
        sf_errf(err, errlen, "token '%s' has the same secret as another token", name);
        return -EINVAL;
    }
    t->v = sf_xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
    struct entry *e = &t->v[t->n++];
    memset(e, 0, sizeof(*e));
    sf_strlcpy(e->who.name, name, sizeof(e->who.name));
    e->who.scope = scope;
    memcpy(e->digest, d, sizeof(d));
    return 0;
}

/* Split a line into up to 4 space/tab separated fields, in place. */
static size_t fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    for (char *p = line; *p;) {
        while (*p == ' ' || *p == '\t') *p++ = '\0';
        if (!*p) break;
        if (n == max) return max + 1;
        f[n++] = p;
        while (*p && *p != ' ' && *p != '\t') p++;
    }
    return n;
}

static int parse_line(struct sf_tokens *t, char *line, size_t lineno, char *err, size_t errlen)
{
    char *f[3], why[256];
    size_t n = fields(line, f, 3);
    int rc = 0;
    enum sf_scope scope = SF_SCOPE_ADMIN;
    if (n == 0 || f[0][0] == '#') return 0;
    if (n == 1) {
        rc = sf_tokens_add(t, "admin", SF_SCOPE_ADMIN, f[0], why, sizeof(why));
    } else if (n == 3) {
        if (!strcmp(f[1], "client")) scope = SF_SCOPE_CLIENT;
        else if (strcmp(f[1], "admin")) {
            sf_errf(err, errlen, "line %zu: scope must be 'admin' or 'client'", lineno);
            return -EINVAL;
        }
        rc = sf_tokens_add(t, f[0], scope, f[2], why, sizeof(why));
    } else {
        sf_errf(err, errlen, "line %zu: expected 'NAME SCOPE TOKEN' (or a token alone)", lineno);
        return -EINVAL;
    }
    if (rc < 0) sf_errf(err, errlen, "line %zu: %s", lineno, why);
    return rc;
}

int sf_tokens_parse(struct sf_tokens *t, const char *text, size_t len, char *err, size_t errlen)
{
    size_t lineno = 0;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        lineno++;
        if (memchr(text + pos, '\0', n)) {
            sf_errf(err, errlen, "line %zu: contains a NUL byte", lineno);
            return -EINVAL;
        }
        char *line = sf_xstrndup(text + pos, n);
        if (n && line[n - 1] == '\r') line[n - 1] = '\0';
        rc = parse_line(t, line, lineno, err, errlen);
        OPENSSL_cleanse(line, n);
        free(line);
        pos = end + 1;
    }
    return rc;
}

int sf_tokens_load(struct sf_tokens *t, const char *path, char *warn, size_t warnlen,
                   char *err, size_t errlen)
{
    char *data = NULL, why[512];
    size_t len = 0;
    struct stat st;
    int rc = sf_read_file(path, 1u << 20, &data, &len);
    if (warn && warnlen) warn[0] = '\0';
    if (rc < 0) {
        sf_errf(err, errlen, "%s: %s", path, rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
        return rc;
    }
    if (stat(path, &st) == 0 && (st.st_mode & S_IROTH) && warn)
        sf_errf(warn, warnlen, "%s is readable by every user of this host (chmod o-r)", path);
    rc = sf_tokens_parse(t, data, len, why, sizeof(why));
    if (rc < 0) sf_errf(err, errlen, "%s: %s", path, why);
    else if (t->n == 0) {
        sf_errf(err, errlen, "%s: no tokens in it", path);
        rc = -EINVAL;
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

size_t sf_tokens_count(const struct sf_tokens *t) { return t ? t->n : 0; }

const struct sf_principal *sf_tokens_check(const struct sf_tokens *t, const char *token, size_t len)
{
    uint8_t d[SF_HMAC_SHA256_LEN];
    if (!t || !token || len > SF_TOKEN_MAX) return NULL;
    digest(t, token, len, d);
    return lookup(t, d);
}

const struct sf_principal *sf_tokens_bearer(const struct sf_tokens *t, const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7)) return NULL;
    const char *tok = authorization + 7;
    while (*tok == ' ') tok++;
    size_t n = strlen(tok);
    while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) n--;
    return sf_tokens_check(t, tok, n);
}
