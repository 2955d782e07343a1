/* worker/e2b/e2b_network.h: the E2B API's network options on local sandboxes
 * (e2b_network.c) and the way in to a sandbox's ports (e2b_ingress.c).
 *
 *   create: allow_internet_access + network {allow_out, deny_out, dns_servers,
 *           rules, allow_public_traffic, mask_request_host} → the sandbox's
 *           egress rules (netpolicy.h), injected headers (inject.h) and its
 *           ingress settings
 *   PUT /sandboxes/{id}/network (update_network)     → new egress rules and headers
 *   get_host(port): Host "<port>-<id>.<domain>"      → that port inside it
 *
 * allow_internet_access false is deny_out 0.0.0.0/0 (as E2B documents it),
 * on an egress namespace so that update_network can open it later; a worker
 * without egress (no CAP_NET_ADMIN) gives such a sandbox a plain namespace
 * instead, which update_network then cannot open (409). rules[host] =
 * [{transform: {headers}}] become injected headers: values literal, or
 * ${e2b.secrets.NAME} from the worker's secrets (NAME upper-cased, '-' and
 * '.' as '_'). Options sandfleet does not implement (egress_proxy,
 * https_ports, workload identity tokens) are refused with 400, never ignored.
 * Thread: any; the sandbox's fields used here are set at create. */
#ifndef SF_E2B_NETWORK_H
#define SF_E2B_NETWORK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "inject.h"
#include "netpolicy.h"

struct e2b_sbx;
struct e2b_req;

/* What a create asks for. */
struct e2b_net_req {
    bool internet;                   /* allow_internet_access (default true) */
    struct sf_netpolicy *policy;     /* the egress rules (owned); NULL: the default policy */
    struct sf_inject *inject;        /* network.rules, resolved (owned); NULL: none */
    bool public_traffic;             /* allow_public_traffic (default true) */
    char host_mask[256];             /* mask_request_host, "" for none */
};

/* From a create body; 'secrets' resolves ${e2b.secrets.NAME} (NULL: none).
 * 0, or -EINVAL with the reason (a 400). */
int e2b_network_from_create(const json_t *body, const struct sf_secrets *secrets,
                            struct e2b_net_req *out, char *err, size_t errlen);
void e2b_net_req_clear(struct e2b_net_req *n);
/* Set a new sandbox's ingress fields (token, mask) from the request. */
void e2b_network_init_sbx(struct e2b_sbx *s, const struct e2b_net_req *n);
/* The create/connect response's extras: trafficAccessToken, domain. */
void e2b_network_json(const struct e2b_sbx *s, const char *domain, json_t *sandbox);

/* PUT /sandboxes/{id}/network. */
int e2b_network_update(struct e2b_req *rq, const char *id);

/* Ingress (e2b_ingress.c). */
/* Does this request go to a sandbox's port (not envd)? Sets rq->port. */
bool e2b_ingress_route(struct e2b_req *rq, const char *host_port, const char *header_port);
/* First callback: find the sandbox, check its traffic token, connect to the
 * port, send the head, take the body as a stream. false: a reply (401-502)
 * is queued. */
bool e2b_ingress_admit(struct e2b_req *rq);
bool e2b_network_traffic_ok(const struct e2b_sbx *s, const char *token);
/* The Host the sandbox's server sees with mask_request_host; false: keep
 * the client's. */
bool e2b_network_host_mask(const struct e2b_sbx *s, int port, char *out, size_t len);
/* Connect to 127.0.0.1:port inside the sandbox (non-blocking, started).
 * -ESRCH when it is killed or paused. */
struct e2b_registry;
int e2b_network_connect(struct e2b_registry *r, struct e2b_sbx *s, uint16_t port, int *fd);

#endif
