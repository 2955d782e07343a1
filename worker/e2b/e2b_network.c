/* worker/e2b/e2b_network.c: see e2b_network.h. The SDK's network option
 * becomes the same egress rules a workflow step carries (netpolicy.h), and
 * the egress path of the local sandbox enforces them (docs/security.md,
 * "Network"). */
#include "e2b_network.h"
#include "e2b_registry.h"
#include "e2b_server.h"

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
        } else if (key_is(k, "egressProxy", "egress_proxy") || key_is(k, "httpsPorts", "https_ports") ||
                   !strcmp(k, "rules")) {
            sf_errf(err, errlen, "network.%s is not supported by this server (sandfleet)", k);
            return -EINVAL;
        } else {
            sf_errf(err, errlen, "network.%.64s: unknown or malformed option", k);
            return -EINVAL;
        }
    }
    return 0;
}

int e2b_network_from_create(const json_t *body, struct e2b_net_req *out, char *err, size_t errlen)
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
    return egress_rules(json_is_object(net) ? net : NULL, out->internet, &out->policy, err, errlen);
}

void e2b_net_req_clear(struct e2b_net_req *n)
{
    sf_netpolicy_free(n->policy);
    n->policy = NULL;
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
        rc = s->killed ? -ESRCH : sf_sandbox_set_network(s->sb, n.policy);
        pthread_mutex_unlock(&s->mu);
        if (rc == 0) {
            SF_LOGI(rq->lg, "e2b: sandbox %s: network rules updated", s->id);
            ret = e2b_reply(rq, 204, NULL, "", 0);
        } else if (rc == -ESRCH) {
            ret = e2b_reply_error(rq, 404, "Sandbox \"%s\" doesn't exist or you don't have access to it", id);
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
