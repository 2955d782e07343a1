/* common/model/inject.c: see inject.h. */
#include "inject.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool token(const char *s)
{
    if (!*s || strlen(s) > 128) return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s))) return false;
    return true;
}

/* Walk a value: literal runs and ${secret:NAME} references. Calls 'lit' and
 * 'ref' (either may be NULL); -EINVAL for a malformed reference. */
static int walk(const char *v, void (*lit)(void *, const char *, size_t),
                int (*ref)(void *, const char *), void *arg)
{
    while (*v) {
        const char *d = strchr(v, '$');
        if (!d) {
            if (lit) lit(arg, v, strlen(v));
            return 0;
        }
        if (lit && d > v) lit(arg, v, (size_t)(d - v));
        if (d[1] == '$') {
            if (lit) lit(arg, "$", 1);
            v = d + 2;
            continue;
        }
        if (strncmp(d, "${secret:", 9)) return -EINVAL;
        const char *end = strchr(d + 9, '}');
        char name[SF_SECRET_NAME_MAX + 1];
        size_t n = end ? (size_t)(end - d - 9) : 0;
        if (!end || !n || n > SF_SECRET_NAME_MAX) return -EINVAL;
        memcpy(name, d + 9, n);
        name[n] = '\0';
        if (!sf_secret_name_ok(name)) return -EINVAL;
        if (ref && ref(arg, name) < 0) return -EINVAL;
        v = end + 1;
    }
    return 0;
}

static int each_header(const json_t *v, char *err, size_t errlen,
                       int (*fn)(void *arg, const char *host, const char *name, const char *value),
                       void *arg)
{
    if (!json_is_object(v)) {
        sf_errf(err, errlen, "inject must be an object of HOST: {\"headers\": {...}}");
        return -EINVAL;
    }
    if (json_object_size(v) > SF_INJECT_MAX_HOSTS) {
        sf_errf(err, errlen, "inject: at most %d hosts", SF_INJECT_MAX_HOSTS);
        return -EINVAL;
    }
    const char *host, *name;
    json_t *rule, *val;
    json_object_foreach((json_t *)v, host, rule) {
        json_t *hs = json_is_object(rule) ? json_object_get(rule, "headers") : NULL;
        if (!json_is_object(hs) || json_object_size(rule) != 1 || !json_object_size(hs) ||
            json_object_size(hs) > SF_INJECT_MAX_HEADERS) {
            sf_errf(err, errlen, "inject.%.100s must be {\"headers\": {NAME: VALUE, ...}} (1 to %d headers)",
                    host, SF_INJECT_MAX_HEADERS);
            return -EINVAL;
        }
        json_object_foreach(hs, name, val) {
            int rc = fn(arg, host, name, json_string_value(val));
            if (rc < 0) return rc;
        }
    }
    return 0;
}

struct check_ctx {
    char *err;
    size_t errlen;
};

static int check_one(void *arg, const char *host, const char *name, const char *value)
{
    struct check_ctx *c = arg;
    struct sf_cidr cidr;
    struct sf_netname nm = { 0 };
    int kind = sf_netpolicy_entry(host, true, &cidr, &nm);
    free(nm.name);
    if (kind != 2) {
        sf_errf(c->err, c->errlen, "inject: '%.100s' is not a host name (\"*.example.com\" for a "
                "domain)", host);
        return -EINVAL;
    }
    if (!token(name)) {
        sf_errf(c->err, c->errlen, "inject.%.100s: '%.100s' is not a header name", host, name);
        return -EINVAL;
    }
    /* Headers that frame the message or route it are the client's. */
    static const char *const framing[] = { "Host", "Content-Length", "Transfer-Encoding", "Connection",
                                           "Keep-Alive", "Proxy-Connection", "Upgrade", "TE", "Trailer" };
    for (size_t i = 0; i < sizeof(framing) / sizeof(*framing); i++)
        if (!strcasecmp(name, framing[i])) {
            sf_errf(c->err, c->errlen, "inject.%.100s: %s cannot be injected (it frames or routes "
                    "the request)", host, framing[i]);
            return -EINVAL;
        }
    if (!value || strlen(value) > SF_INJECT_MAX_VALUE || strpbrk(value, "\r\n") ||
        walk(value, NULL, NULL, NULL) < 0) {
        sf_errf(c->err, c->errlen, "inject.%.100s.%.100s: the value must be a string of at most %d "
                "bytes without line breaks, secrets as ${secret:NAME}", host, name, SF_INJECT_MAX_VALUE);
        return -EINVAL;
    }
    return 0;
}

int sf_inject_check(const json_t *v, char *err, size_t errlen)
{
    struct check_ctx c = { err, errlen };
    return each_header(v, err, errlen, check_one, &c);
}

static int add_name(void *arg, const char *name)
{
    json_t *a = arg;
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
        if (!strcmp(json_string_value(x), name)) return 0;
    json_array_append_new(a, json_string(name));
    return 0;
}

static int names_one(void *arg, const char *host, const char *name, const char *value)
{
    (void)host; (void)name;
    walk(value, NULL, add_name, arg);                 /* checked already */
    return 0;
}

json_t *sf_inject_secret_names(const json_t *v)
{
    json_t *a = json_array();
    char err[8];
    each_header(v, err, sizeof(err), names_one, a);
    return a;
}

/* ---- resolved rules ------------------------------------------------------------- */

struct build_ctx {
    struct sf_inject *in;
    const struct sf_secret_values *sv;
    struct sf_buf val;
    const char *missing;
};

static void put_lit(void *arg, const char *s, size_t n)
{
    sf_buf_append(&((struct build_ctx *)arg)->val, s, n);
}

static int put_ref(void *arg, const char *name)
{
    struct build_ctx *b = arg;
    for (size_t i = 0; b->sv && i < b->sv->n; i++)
        if (!strcmp(b->sv->v[i].name, name)) {
            sf_buf_append(&b->val, b->sv->v[i].value, b->sv->v[i].len);
            return 0;
        }
    b->missing = name;
    return -ENOENT;
}

static int build_one(void *arg, const char *host, const char *name, const char *value)
{
    struct build_ctx *b = arg;
    struct sf_inject *in = b->in;
    struct sf_inject_rule *r = NULL;
    for (size_t i = 0; i < in->n && !r; i++)
        if ((in->r[i].host.wildcard ? !strncmp(host, "*.", 2) && !strcasecmp(in->r[i].host.name, host + 2)
                                    : !strcasecmp(in->r[i].host.name, host)))
            r = &in->r[i];
    if (!r) {
        struct sf_cidr cidr;
        in->r = sf_xrealloc(in->r, (in->n + 1) * sizeof(*in->r));
        r = &in->r[in->n++];
        memset(r, 0, sizeof(*r));
        sf_netpolicy_entry(host, true, &cidr, &r->host);
    }
    b->val.len = 0;
    if (walk(value, put_lit, put_ref, b) < 0) return -ENOENT;
    sf_buf_append(&b->val, "", 0);
    if (memchr(b->val.data, '\r', b->val.len) || memchr(b->val.data, '\n', b->val.len) ||
        strlen(b->val.data) != b->val.len) {
        b->missing = NULL;
        return -EINVAL;
    }
    r->h = sf_xrealloc(r->h, (r->n + 1) * sizeof(*r->h));
    r->h[r->n++] = (struct sf_inject_header){ sf_xstrdup(name), sf_xstrndup(b->val.data, b->val.len) };
    return 0;
}

struct sf_inject *sf_inject_build(const json_t *v, const struct sf_secret_values *sv, char *err,
                                  size_t errlen)
{
    struct build_ctx b = { .in = sf_xcalloc(1, sizeof(*b.in)), .sv = sv };
    int rc = each_header(v, err, errlen, build_one, &b);
    if (b.val.data) explicit_bzero(b.val.data, b.val.cap);
    sf_buf_free(&b.val);
    if (rc < 0) {
        if (rc == -ENOENT)
            sf_errf(err, errlen, "inject: secret '%s' is not resolved", b.missing ? b.missing : "?");
        else
            sf_errf(err, errlen, "inject: a header value would hold a line break or NUL once its "
                    "secret is in");
        sf_inject_free(b.in);
        return NULL;
    }
    return b.in;
}

static void rule_copy(struct sf_inject_rule *d, const struct sf_inject_rule *r)
{
    d->host = (struct sf_netname){ sf_xstrdup(r->host.name), r->host.wildcard };
    d->n = r->n;
    d->h = sf_xcalloc(r->n, sizeof(*d->h));
    for (size_t j = 0; j < r->n; j++)
        d->h[j] = (struct sf_inject_header){ sf_xstrdup(r->h[j].name), sf_xstrdup(r->h[j].value) };
}

struct sf_inject *sf_inject_dup(const struct sf_inject *in)
{
    if (!in) return NULL;
    struct sf_inject *d = sf_xcalloc(1, sizeof(*d));
    d->r = in->n ? sf_xcalloc(in->n, sizeof(*d->r)) : NULL;
    d->n = in->n;
    for (size_t i = 0; i < in->n; i++) rule_copy(&d->r[i], &in->r[i]);
    return d;
}

struct sf_inject *sf_inject_pick(const struct sf_inject *in, const char *host)
{
    const struct sf_inject_rule *r = sf_inject_match(in, host);
    if (!r) return NULL;
    struct sf_inject *d = sf_xcalloc(1, sizeof(*d));
    d->r = sf_xcalloc(1, sizeof(*d->r));
    d->n = 1;
    rule_copy(&d->r[0], r);
    return d;
}

void sf_inject_free(struct sf_inject *in)
{
    if (!in) return;
    for (size_t i = 0; i < in->n; i++) {
        for (size_t j = 0; j < in->r[i].n; j++) {
            explicit_bzero(in->r[i].h[j].value, strlen(in->r[i].h[j].value));
            free(in->r[i].h[j].value);
            free(in->r[i].h[j].name);
        }
        free(in->r[i].h);
        free(in->r[i].host.name);
    }
    free(in->r);
    free(in);
}

const struct sf_inject_rule *sf_inject_match(const struct sf_inject *in, const char *host)
{
    const struct sf_inject_rule *best = NULL;
    for (size_t i = 0; in && i < in->n; i++) {
        const struct sf_inject_rule *r = &in->r[i];
        if (!sf_netname_match(&r->host, host)) continue;
        if (!r->host.wildcard) return r;
        if (!best || strlen(r->host.name) > strlen(best->host.name)) best = r;
    }
    return best;
}
