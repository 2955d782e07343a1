/* common/sandbox/local/sbx_egress_cfg.c: the provider's side of the egress
 * path (sbx_egress.h): the operator's flags (--egress-allow, --egress-deny,
 * --egress-dns) into the proxy's configuration, the proxy and its pool of
 * egress namespaces, or why there are none. */
#include "sbx_egress.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The entries of a repeatable flag; each may be a comma-separated list
 * (the SANDFLEET_* form). 'fn' returns 0 or -EINVAL. */
static int local_each(const char *const *list, int (*fn)(void *arg, const char *entry), void *arg)
{
    for (size_t i = 0; list && list[i]; i++) {
        char *copy = sf_xstrdup(list[i]), *save = NULL;
        int rc = 0;
        for (char *e = strtok_r(copy, ", \t", &save); e && !rc; e = strtok_r(NULL, ", \t", &save))
            rc = fn(arg, e);
        free(copy);
        if (rc < 0) return rc;
    }
    return 0;
}

struct local_rules {
    struct sf_netpolicy *op;
    bool deny;
    char *errstr;
    size_t errlen;
};

static int local_rule(void *arg, const char *e)
{
    struct local_rules *r = arg;
    struct sf_cidr c;
    struct sf_netname nm;
    int kind = sf_netpolicy_entry(e, !r->deny, &c, &nm);
    if (kind < 0) {
        sf_errf(r->errstr, r->errlen, "--egress-%s '%s': not %s", r->deny ? "deny" : "allow", e,
                r->deny ? "an IP or CIDR block" : "an IP, CIDR block or host name");
        return -EINVAL;
    }
    struct sf_cidr **arr = r->deny ? &r->op->deny : &r->op->allow;
    size_t *n = r->deny ? &r->op->n_deny : &r->op->n_allow;
    if (kind == 1) {
        *arr = sf_xrealloc(*arr, (*n + 1) * sizeof(**arr));
        (*arr)[(*n)++] = c;
    } else {
        r->op->names = sf_xrealloc(r->op->names, (r->op->n_names + 1) * sizeof(*r->op->names));
        r->op->names[r->op->n_names++] = nm;
    }
    return 0;
}

struct local_dns {
    struct sf_sbx_egress_cfg *ecfg;
    char *errstr;
    size_t errlen;
};

static int local_dns_entry(void *arg, const char *s)
{
    struct local_dns *d = arg;
    char ip[64];
    const char *colon = strrchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    long port = 53;
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char *end = NULL;
    if (colon) port = strtol(colon + 1, &end, 10);
    if (n >= sizeof(ip) || (colon && (*end || port < 1 || port > 65535)) ||
        d->ecfg->ndns == SF_SBX_EGRESS_MAX_DNS) {
        sf_errf(d->errstr, d->errlen, "--egress-dns '%s': expected IPV4[:PORT], at most %d", s,
                SF_SBX_EGRESS_MAX_DNS);
        return -EINVAL;
    }
    memcpy(ip, s, n);
    ip[n] = '\0';
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        sf_errf(d->errstr, d->errlen, "--egress-dns '%s': expected IPV4[:PORT]", s);
        return -EINVAL;
    }
    d->ecfg->dns[d->ecfg->ndns++] = sa;
    return 0;
}

int sf_sbx_egress_cfg_parse(const char *const *allow, const char *const *deny,
                            const char *const *dns, struct sf_sbx_egress_cfg *out,
                            struct sf_netpolicy **op, char *errstr, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    *op = sf_xcalloc(1, sizeof(**op));
    struct local_rules a = { *op, false, errstr, errlen }, d = { *op, true, errstr, errlen };
    struct local_dns r = { out, errstr, errlen };
    if (local_each(allow, local_rule, &a) < 0 || local_each(deny, local_rule, &d) < 0 ||
        local_each(dns, local_dns_entry, &r) < 0) {
        sf_netpolicy_free(*op);
        *op = NULL;
        return -EINVAL;
    }
    out->op = *op;
    return 0;
}

int sf_sbx_egress_kit_start(struct sf_sbx_egress_kit *k, int pool_size, const char *const *allow,
                            const char *const *deny, const char *const *dns,
                            const struct sf_log *log, char *errstr, size_t errlen)
{
    struct sf_sbx_egress_cfg ecfg;
    struct sf_netpolicy *op;
    memset(k, 0, sizeof(*k));
    if (sf_sbx_egress_cfg_parse(allow, deny, dns, &ecfg, &op, errstr, errlen) < 0) return -EINVAL;
    ecfg.log = log;
    int err = 0;
    k->pool = sf_sbx_netns_pool_new(pool_size, SF_SBX_NS_EGRESS, log, &err);
    if (!k->pool) {
        sf_errf(k->why, sizeof(k->why), "making an egress network namespace failed (%s): it needs "
                "root with CAP_SYS_ADMIN and CAP_NET_ADMIN (docs/deploy.md)", strerror(err));
    } else if (!(k->eg = sf_sbx_egress_new(&ecfg, k->why, sizeof(k->why)))) {
        sf_sbx_netns_pool_free(k->pool);
        k->pool = NULL;
    }
    sf_netpolicy_free(op);
    return 0;
}

void sf_sbx_egress_kit_stop(struct sf_sbx_egress_kit *k)
{
    sf_sbx_netns_pool_free(k->pool);
    sf_sbx_egress_free(k->eg);
    k->pool = NULL;
    k->eg = NULL;
}

int sf_sbx_egress_kit_take(struct sf_sbx_egress_kit *k, struct sf_sbx_ns *ns, char *errstr,
                           size_t errlen)
{
    if (!k->eg) {
        sf_errf(errstr, errlen, "local sandbox: network steps cannot run on this worker: %s", k->why);
        return -EPERM;
    }
    if (sf_sbx_netns_pool_take(k->pool, ns) == 0) return 0;
    int rc = sf_sbx_ns_make(SF_SBX_NS_EGRESS, ns);
    if (rc < 0)
        sf_errf(errstr, errlen, "local sandbox: making its network namespace: %s", strerror(-rc));
    return rc;
}
