/* worker/e2b/e2b_network.c: see e2b_network.h. The SDK's network option
 * becomes the same egress rules a workflow step carries (netpolicy.h), and
 * the egress path of the local sandbox enforces them (docs/security.md,
 * "Network"). */
#include "e2b_network.h"
#include "e2b_registry.h"
#include "e2b_server.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* E2B: allow_internet_access false "works the same as deny_out 0.0.0.0/0". */
static void deny_all(struct sf_netpolicy *p)
{
    struct sf_cidr all;
    sf_cidr_parse("0.0.0.0/0", &all);
    p->deny = sf_xrealloc(p->deny, (p->n_deny + 1) * sizeof(*p->deny));
    p->deny[p->n_deny++] = all;
    p->deny_set = true;
}

/* The egress part of a network object (and allow_internet_access) into
 * rules. *out NULL: the default policy. */
/* The API spells its keys in camelCase; snake_case is taken too. */
static bool key_is(const char *k, const char *camel, const char *snake)
{
    return !strcmp(k, camel) || !strcmp(k, snake);
}

static bool egress_key(const char *k)
{
    return key_is(k, "allowOut", "allow_out") || key_is(k, "denyOut", "deny_out") ||
           key_is(k, "dnsServers", "dns_servers");
}

static int egress_rules(const json_t *net, bool internet, struct sf_netpolicy **out, char *err,
                        size_t errlen)
{
    json_t *rules = json_object();
    const char *k;
    json_t *v;
    *out = NULL;
    if (net)
        json_object_foreach((json_t *)net, k, v)
            if (egress_key(k) && !json_is_null(v)) json_object_set(rules, k, v);
    bool any = json_object_size(rules) || !internet;
    if (any && (*out = sf_netpolicy_from_json(rules, SF_NETPOLICY_E2B, err, errlen)) && !internet)
        deny_all(*out);
    json_decref(rules);
    return any && !*out ? -EINVAL : 0;
}

/* One header value of a rule in sandfleet's form (inject.h): '$' doubled,
 * E2B's ${e2b.secrets.NAME} as ${secret:NAME'} (NAME upper-cased, '-' and '.'
 * as '_'). -EINVAL for a placeholder this server cannot resolve. */
static int rule_value(const char *v, struct sf_buf *out, char *err, size_t errlen)
{
    static const char pfx[] = "${e2b.secrets.";
    while (*v) {
        if (!strncmp(v, pfx, sizeof(pfx) - 1)) {
            const char *name = v + sizeof(pfx) - 1, *end = strchr(name, '}');
            if (!end || end == name || end - name > SF_SECRET_NAME_MAX) break;
            sf_buf_append(out, "${secret:", 9);
            for (const char *p = name; p < end; p++) {
                char ch = *p == '-' || *p == '.' ? '_' : (char)toupper((unsigned char)*p);
                sf_buf_append(out, &ch, 1);
            }
            sf_buf_append(out, "}", 1);
            v = end + 1;
        } else if (!strncmp(v, "${e2b.", 6)) {
            break;
        } else {
            sf_buf_append(out, v, 1);
            if (*v++ == '$') sf_buf_append(out, "$", 1);
        }
    }
    if (!*v) return 0;
    sf_errf(err, errlen, "network.rules: '%.60s' is not a placeholder this server resolves (it "
            "knows ${e2b.secrets.NAME}, from the worker's secrets; no workload identity tokens)", v);
    return -EINVAL;
}

/* network.rules {host: [{transform: {headers}}]} → resolved injected
 * headers. The headers of a host's rules are merged in order. */
static int inject_rules(const json_t *rules, const struct sf_secrets *secrets,
                        struct sf_inject **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!rules || json_is_null(rules)) return 0;
    if (!json_is_object(rules)) {
        sf_errf(err, errlen, "network.rules must be an object of HOST: [rule, ...]");
        return -EINVAL;
    }
    json_t *form = json_object(), *list, *rule;
    const char *host;
    struct sf_buf val = { 0 };
    struct sf_secret_values sv = { 0 };
    int rc = 0;
    json_object_foreach((json_t *)rules, host, list) {
        json_t *hs = json_object();
        size_t i;
        bool shape = !json_is_array(list);
        json_array_foreach(list, i, rule) {
            json_t *tr = json_object_get(rule, "transform"), *h = json_object_get(tr, "headers");
            const char *name;
            json_t *v;
            if (!json_is_object(rule) || json_object_size(rule) > (tr ? 1u : 0u) ||
                (tr && (!json_is_object(tr) || json_object_size(tr) > (h ? 1u : 0u))) ||
                (h && !json_is_object(h))) {
                shape = true;
                break;
            }
            json_object_foreach(h, name, v) {
                val.len = 0;
                if (!json_is_string(v)) shape = true;
                else if ((rc = rule_value(json_string_value(v), &val, err, errlen)) == 0)
                    json_object_set_new(hs, name, json_stringn(val.data ? val.data : "", val.len));
                if (rc < 0 || shape) break;
            }
            if (rc < 0 || shape) break;
        }
        if (shape) {
            sf_errf(err, errlen, "network.rules.%.100s must be a list of {\"transform\": "
                    "{\"headers\": {NAME: \"VALUE\"}}}", host);
            rc = -EINVAL;
        }
        if (rc == 0 && json_object_size(hs)) {
            char lower[256];
            sf_strlcpy(lower, host, sizeof(lower));
            for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
            json_object_set_new(form, lower, json_pack("{s:o}", "headers", hs));
        } else {
            json_decref(hs);
        }
        if (rc < 0) break;
    }
    if (val.data) explicit_bzero(val.data, val.cap);
    sf_buf_free(&val);
    json_t *names = NULL;
    const char *missing = NULL;
    char why[300];
    if (rc == 0 && json_object_size(form) && (rc = sf_inject_check(form, err, errlen)) == 0) {
        names = sf_inject_secret_names(form);
        if (json_array_size(names) &&
            (!secrets || sf_secrets_resolve(secrets, names, &sv, &missing, why, sizeof(why)) < 0)) {
            sf_errf(err, errlen, "network.rules: secret '%s' is not configured on this worker",
                    missing ? missing : json_string_value(json_array_get(names, 0)));
            rc = -EINVAL;
        } else if (!(*out = sf_inject_build(form, &sv, err, errlen))) {
            rc = -EINVAL;
        }
    }
    json_decref(names);
    sf_secret_values_clear(&sv);
    json_decref(form);              /* holds no secret: only names */
    return rc < 0 ? -EINVAL : 0;
}

/* Keys of the network object that are not egress rules. */
static int other_keys(const json_t *net, bool update, struct e2b_net_req *out, char *err,
                      size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)net, k, v) {
        if (egress_key(k) || json_is_null(v)) continue;
        if (!update && key_is(k, "allowPublicTraffic", "allow_public_traffic") && json_is_boolean(v)) {
            out->public_traffic = json_is_true(v);
        } else if (!update && key_is(k, "maskRequestHost", "mask_request_host") && json_is_string(v) &&
                   json_string_length(v) < sizeof(out->host_mask)) {
            sf_strlcpy(out->host_mask, json_string_value(v), sizeof(out->host_mask));
            for (const char *p = out->host_mask; *p; p++)
                if ((unsigned char)*p < 0x21 || *p == 0x7f) {
                    sf_errf(err, errlen, "network.mask_request_host must be a host name");
                    return -EINVAL;
                }
        } else if (!update && key_is(k, "httpsPorts", "https_ports") && json_is_array(v) &&
                   !json_array_size(v)) {
            /* none: nothing to do */
        } else if (!strcmp(k, "rules")) {
            /* inject_rules */
        } else if (key_is(k, "egressProxy", "egress_proxy") || key_is(k, "httpsPorts", "https_ports")) {
            sf_errf(err, errlen, "network.%s is not supported by this server (sandfleet)", k);
            return -EINVAL;
        } else {
            sf_errf(err, errlen, "network.%.64s: unknown or malformed option", k);
            return -EINVAL;
        }
    }
    return 0;
}

int e2b_network_from_create(const json_t *body, const struct sf_secrets *secrets,
                            struct e2b_net_req *out, char *err, size_t errlen)
{
    const json_t *net = json_object_get(body, "network"), *inet = json_object_get(body, "allow_internet_access");
    memset(out, 0, sizeof(*out));
    out->internet = !json_is_false(inet);
    out->public_traffic = true;
    if (net && !json_is_null(net) && !json_is_object(net)) {
        sf_errf(err, errlen, "network must be an object");
        return -EINVAL;
    }
    if (net && json_is_object(net) && other_keys(net, false, out, err, errlen) < 0) return -EINVAL;
    if (net && json_is_object(net) &&
        inject_rules(json_object_get(net, "rules"), secrets, &out->inject, err, errlen) < 0)
        return -EINVAL;
    if (egress_rules(json_is_object(net) ? net : NULL, out->internet, &out->policy, err, errlen) < 0) {
        e2b_net_req_clear(out);
        return -EINVAL;
    }
    return 0;
}

void e2b_net_req_clear(struct e2b_net_req *n)
{
    sf_netpolicy_free(n->policy);
    n->policy = NULL;
    sf_inject_free(n->inject);
    n->inject = NULL;
}

void e2b_network_init_sbx(struct e2b_sbx *s, const struct e2b_net_req *n)
{
    if (!n->public_traffic) {
        memcpy(s->traffic_token, "e2b_tat_", 8);
        sf_random_hex(s->traffic_token + 8, sizeof(s->traffic_token) - 8, 32);
    }
    sf_strlcpy(s->host_mask, n->host_mask, sizeof(s->host_mask));
}

void e2b_network_json(const struct e2b_sbx *s, const char *domain, json_t *j)
{
    json_object_set_new(j, "domain", domain ? json_string(domain) : json_null());
    if (s->traffic_token[0]) json_object_set_new(j, "trafficAccessToken", json_string(s->traffic_token));
}

int e2b_network_update(struct e2b_req *rq, const char *id)
{
    char err[600];
    json_t *body = rq->body.len ? json_loadb(rq->body.data, rq->body.len, 0, NULL) : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        return e2b_reply_error(rq, 400, "Error when parsing request: a JSON object is expected");
    }
    struct e2b_net_req n = { .internet = !json_is_false(json_object_get(body, "allow_internet_access")) };
    json_t *net = json_deep_copy(body);
    json_object_del(net, "allow_internet_access");
    int rc = other_keys(net, true, &n, err, sizeof(err));
    if (rc == 0) rc = inject_rules(json_object_get(net, "rules"), rq->secrets, &n.inject, err, sizeof(err));
    if (rc == 0) rc = egress_rules(net, n.internet, &n.policy, err, sizeof(err));
    json_decref(net);
    json_decref(body);
    if (rc < 0) return e2b_reply_error(rq, 400, "%s", err);
    struct e2b_sbx *s = e2b_registry_get(rq->reg, id);
    int ret;
    if (!s) {
        ret = e2b_reply_error(rq, 404, "Sandbox \"%s\" doesn't exist or you don't have access to it", id);
    } else {
        pthread_mutex_lock(&s->mu);
        rc = s->killed ? -ESRCH : sf_sandbox_set_network(s->sb, n.policy, n.inject);
        pthread_mutex_unlock(&s->mu);
        if (rc == 0) {
            SF_LOGI(rq->lg, "e2b: sandbox %s: network rules updated", s->id);
            ret = e2b_reply(rq, 204, NULL, "", 0);
        } else if (rc == -ESRCH) {
            ret = e2b_reply_error(rq, 404, "Sandbox \"%s\" doesn't exist or you don't have access to it", id);
        } else if (rc == -EPERM) {
            ret = e2b_reply_error(rq, 409, "sandbox %s cannot take network.rules: this worker's "
                                  "egress TLS is off (see its log)", id);
        } else {
            ret = e2b_reply_error(rq, 409, "sandbox %s has no egress path to change (this worker "
                                  "cannot give sandboxes network: see its log)", id);
        }
        e2b_registry_put(rq->reg, s);
    }
    e2b_net_req_clear(&n);
    return ret;
}

bool e2b_network_traffic_ok(const struct e2b_sbx *s, const char *token)
{
    return !s->traffic_token[0] || (token && !strcmp(token, s->traffic_token));
}

bool e2b_network_host_mask(const struct e2b_sbx *s, int port, char *out, size_t len)
{
    if (!s->host_mask[0]) return false;
    const char *p = strstr(s->host_mask, "${PORT}");
    if (p) snprintf(out, len, "%.*s%d%s", (int)(p - s->host_mask), s->host_mask, port, p + 7);
    else sf_strlcpy(out, s->host_mask, len);
    return true;
}

int e2b_network_connect(struct e2b_registry *r, struct e2b_sbx *s, uint16_t port, int *fd)
{
    if (e2b_sbx_paused(r, s)) return -ESRCH;
    pthread_mutex_lock(&s->mu);
    int rc = s->killed ? -ESRCH : sf_sandbox_connect_port(s->sb, port, fd);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
