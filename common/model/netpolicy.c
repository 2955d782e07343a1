/* common/model/netpolicy.c: see netpolicy.h. */
#include "netpolicy.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool sf_netname_valid(const char *host)
{
    size_t n = strlen(host), label = 0;
    if (!n || n > SF_NETNAME_MAX) return false;
    for (size_t i = 0; i <= n; i++) {
        char c = host[i];
        if (c == '.' || c == '\0') {
            /* Empty labels, and labels that start or end with '-', are not
             * host names. */
            if (!label || label > 63 || host[i - 1] == '-' || host[i - label] == '-') return false;
            label = 0;
            continue;
        }
        if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) return false;
        label++;
    }
    return true;
}

/* Lower-cased copy without a trailing dot, or NULL when not a host name. */
static char *name_canon(const char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '.') n--;
    if (!n || n > SF_NETNAME_MAX) return NULL;
    char *h = sf_xstrndup(s, n);
    for (char *p = h; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (!sf_netname_valid(h)) {
        free(h);
        return NULL;
    }
    return h;
}

int sf_netpolicy_entry(const char *s, bool names_ok, struct sf_cidr *cidr, struct sf_netname *name)
{
    if (sf_cidr_parse(s, cidr) == 0) return 1;
    /* A numeric-looking entry that is not an address is a typo, never a name. */
    if (!names_ok || strchr(s, '/') || strchr(s, ':')) return -EINVAL;
    bool wild = !strncmp(s, "*.", 2);
    char *h = name_canon(wild ? s + 2 : s);
    if (!h) return -EINVAL;
    /* A last label of digits only ("10.0.0.300") is a broken address. */
    const char *last = strrchr(h, '.');
    last = last ? last + 1 : h;
    bool digits = true;
    for (const char *p = last; *p; p++)
        if (!isdigit((unsigned char)*p)) digits = false;
    if (digits) {
        free(h);
        return -EINVAL;
    }
    name->name = h;
    name->wildcard = wild;
    return 2;
}

bool sf_netname_match(const struct sf_netname *n, const char *host)
{
    size_t hl = strlen(host), nl = strlen(n->name);
    if (hl && host[hl - 1] == '.') hl--;
    if (!n->wildcard) return hl == nl && !strncasecmp(host, n->name, nl);
    /* "*.example.com" matches "a.example.com" and "a.b.example.com", not
     * "example.com" itself nor "badexample.com". */
    return hl > nl + 1 && host[hl - nl - 1] == '.' && !strncasecmp(host + hl - nl, n->name, nl);
}

void sf_netpolicy_free(struct sf_netpolicy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_names; i++) free(p->names[i].name);
    free(p->names);
    free(p->allow);
    free(p->deny);
    free(p->dns);
    free(p);
}

/* The keys of each form: a workflow's snake_case, the E2B API's camelCase
 * (which also takes snake_case: both SDK generations exist). */
enum { K_ALLOW, K_DENY, K_DNS };
static const char *const form_keys[2][3] = {
    { "allow_out", "deny_out", "dns_servers" },
    { "allowOut", "denyOut", "dnsServers" },
};

/* Append one list: key's array of strings. */
static int parse_list(const json_t *obj, const char *key, bool names_ok, bool v4_only,
                      struct sf_cidr **cidrs, size_t *nc, struct sf_netname **names, size_t *nn,
                      bool *set, char *err, size_t errlen)
{
    const json_t *arr = json_object_get(obj, key);
    if (!arr || json_is_null(arr)) return 0;
    *set = true;
    if (!json_is_array(arr)) {
        sf_errf(err, errlen, "network.%s must be a list of strings", key);
        return -EINVAL;
    }
    if (json_array_size(arr) > SF_NETPOLICY_MAX_ENTRIES) {
        sf_errf(err, errlen, "network.%s: at most %d entries", key, SF_NETPOLICY_MAX_ENTRIES);
        return -EINVAL;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        struct sf_cidr c;
        struct sf_netname nm = { 0 };
        int kind = json_is_string(v) ? sf_netpolicy_entry(json_string_value(v), names_ok, &c, &nm)
                                     : -EINVAL;
        if (kind == 1 && v4_only && (c.family != AF_INET || c.bits != 32)) kind = -EINVAL;
        if (kind < 0) {
            if (!json_is_string(v))
                sf_errf(err, errlen, "network.%s[%zu] must be a string", key, i);
            else
                sf_errf(err, errlen, "network.%s[%zu]: '%.100s' is not %s", key, i,
                        json_string_value(v),
                        v4_only ? "an IPv4 address"
                        : names_ok ? "an IP, CIDR block or host name (\"*.example.com\" for a domain)"
                                   : "an IP or CIDR block (host names are allowed in allow_out only)");
            return -EINVAL;
        }
        if (kind == 1) {
            *cidrs = sf_xrealloc(*cidrs, (*nc + 1) * sizeof(**cidrs));
            (*cidrs)[(*nc)++] = c;
        } else {
            *names = sf_xrealloc(*names, (*nn + 1) * sizeof(**names));
            (*names)[(*nn)++] = nm;
        }
    }
    return 0;
}

struct sf_netpolicy *sf_netpolicy_from_json(const json_t *obj, enum sf_netpolicy_form form,
                                            char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        sf_errf(err, errlen, "network must be true, false or an object");
        return NULL;
    }
    const char *k, *key[3];
    const json_t *v;
    bool e2b = form == SF_NETPOLICY_E2B;
    for (int i = 0; i < 3; i++)
        key[i] = e2b && json_object_get(obj, form_keys[1][i]) ? form_keys[1][i] : form_keys[0][i];
    json_object_foreach((json_t *)obj, k, v) {
        bool known = false;
        for (int i = 0; i < (e2b ? 3 : 2); i++)
            known |= !strcmp(k, form_keys[0][i]) || (e2b && !strcmp(k, form_keys[1][i]));
        if (known) continue;
        sf_errf(err, errlen, "network: unknown key '%.64s' (known: %s)", k,
                e2b ? "allowOut, denyOut, dnsServers" : "allow_out, deny_out");
        return NULL;
    }
    struct sf_netpolicy *p = sf_xcalloc(1, sizeof(*p));
    struct sf_netname *none = NULL;
    size_t nnone = 0;
    if (parse_list(obj, key[K_ALLOW], true, false, &p->allow, &p->n_allow, &p->names, &p->n_names,
                   &p->allow_set, err, errlen) < 0 ||
        parse_list(obj, key[K_DENY], false, false, &p->deny, &p->n_deny, &none, &nnone,
                   &p->deny_set, err, errlen) < 0 ||
        (e2b && parse_list(obj, key[K_DNS], false, true, &p->dns, &p->n_dns, &none, &nnone,
                           &p->dns_set, err, errlen) < 0)) {
        sf_netpolicy_free(p);
        return NULL;
    }
    return p;
}

int sf_netpolicy_step(const json_t *v, bool *on, struct sf_netpolicy **out, char *err,
                      size_t errlen)
{
    *on = false;
    *out = NULL;
    if (!v || json_is_null(v) || json_is_false(v)) return 0;
    if (json_is_true(v)) {
        *on = true;
        return 0;
    }
    if (!(*out = sf_netpolicy_from_json(v, SF_NETPOLICY_STEP, err, errlen))) return -EINVAL;
    *on = true;
    return 0;
}

static json_t *cidr_array(const struct sf_cidr *c, size_t n)
{
    json_t *a = json_array();
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        sf_cidr_format(&c[i], buf, sizeof(buf));
        /* A single address is written as the address. */
        if ((c[i].family == AF_INET && c[i].bits == 32) || (c[i].family == AF_INET6 && c[i].bits == 128))
            *strrchr(buf, '/') = '\0';
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

json_t *sf_netpolicy_to_json(const struct sf_netpolicy *p)
{
    return sf_netpolicy_to_json_form(p, SF_NETPOLICY_STEP);
}

json_t *sf_netpolicy_to_json_form(const struct sf_netpolicy *p, enum sf_netpolicy_form form)
{
    const char *const *key = form_keys[form == SF_NETPOLICY_E2B];
    json_t *o = json_object();
    if (p->allow_set) {
        json_t *a = cidr_array(p->allow, p->n_allow);
        for (size_t i = 0; i < p->n_names; i++)
            json_array_append_new(a, p->names[i].wildcard ? json_sprintf("*.%s", p->names[i].name)
                                                          : json_string(p->names[i].name));
        json_object_set_new(o, key[K_ALLOW], a);
    }
    if (p->deny_set) json_object_set_new(o, key[K_DENY], cidr_array(p->deny, p->n_deny));
    if (p->dns_set) json_object_set_new(o, key[K_DNS], cidr_array(p->dns, p->n_dns));
    return o;
}

struct sf_netpolicy *sf_netpolicy_dup(const struct sf_netpolicy *p)
{
    if (!p) return NULL;
    struct sf_netpolicy *d = sf_xcalloc(1, sizeof(*d));
    *d = *p;
    d->allow = p->n_allow ? sf_xmalloc(p->n_allow * sizeof(*d->allow)) : NULL;
    if (p->n_allow) memcpy(d->allow, p->allow, p->n_allow * sizeof(*d->allow));
    d->deny = p->n_deny ? sf_xmalloc(p->n_deny * sizeof(*d->deny)) : NULL;
    if (p->n_deny) memcpy(d->deny, p->deny, p->n_deny * sizeof(*d->deny));
    d->dns = p->n_dns ? sf_xmalloc(p->n_dns * sizeof(*d->dns)) : NULL;
    if (p->n_dns) memcpy(d->dns, p->dns, p->n_dns * sizeof(*d->dns));
    d->names = p->n_names ? sf_xcalloc(p->n_names, sizeof(*d->names)) : NULL;
    for (size_t i = 0; i < p->n_names; i++)
        d->names[i] = (struct sf_netname){ sf_xstrdup(p->names[i].name), p->names[i].wildcard };
    return d;
}

bool sf_netpolicy_equal(const struct sf_netpolicy *a, const struct sf_netpolicy *b)
{
    if (!a || !b) return a == b;
    json_t *ja = sf_netpolicy_to_json(a), *jb = sf_netpolicy_to_json(b);
    bool eq = json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static bool in_list(const struct sf_cidr *c, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; i < n; i++)
        if (sf_cidr_match(&c[i], sa)) return true;
    return false;
}

enum sf_netverdict sf_netpolicy_addr(const struct sf_netpolicy *p, const struct sockaddr *sa)
{
    if (!p) return SF_NET_ALLOW;
    if (in_list(p->allow, p->n_allow, sa)) return SF_NET_ALLOW;
    /* allow_out alone means "only those". */
    bool closed = in_list(p->deny, p->n_deny, sa) || (p->allow_set && !p->deny_set);
    if (!closed) return SF_NET_ALLOW;
    return p->n_names ? SF_NET_BY_NAME : SF_NET_DENY;
}

bool sf_netpolicy_name(const struct sf_netpolicy *p, const char *name)
{
    for (size_t i = 0; p && i < p->n_names; i++)
        if (sf_netname_match(&p->names[i], name)) return true;
    return false;
}

enum sf_netverdict sf_netpolicy_house(const struct sf_netpolicy *op, const struct sockaddr *sa,
                                      bool host_local)
{
    if (op && in_list(op->deny, op->n_deny, sa)) return SF_NET_DENY;
    if (op && in_list(op->allow, op->n_allow, sa)) return SF_NET_ALLOW;
    enum sf_netaddr_class c = sf_netaddr_classify(sa);
    if ((c == SF_NETADDR_PUBLIC || c == SF_NETADDR_DOCUMENTATION) && !host_local) return SF_NET_ALLOW;
    return op && op->n_names ? SF_NET_BY_NAME : SF_NET_DENY;
}

bool sf_netpolicy_closed(const struct sf_netpolicy *p)
{
    if (!p) return false;
    if (p->allow_set && !p->deny_set) return true;
    for (size_t i = 0; i < p->n_deny; i++)
        if (p->deny[i].bits == 0) return true;
    return false;
}
