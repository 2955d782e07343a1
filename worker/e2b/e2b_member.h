/* worker/e2b/e2b_member.h: a worker as a member of the E2B fleet behind the
 * gateway (`sandfleet-worker --broker URL --e2b-ingress HOST:PORT`,
 * docs/e2b.md "Gateway").
 *
 * - Door: every request on the ingress port must carry the gateway's
 *   Sandfleet-Gateway-Auth (e2b_fleet.h); anything else is refused before
 *   its body is read, so the port is useless without the shared secret.
 * - State: the worker is the authority on its sandboxes. The registry
 *   tells the member which ones changed (created, killed, timeout moved);
 *   the worker's loop thread writes those records to the broker
 *   (e2b_member_flush) and its capacity with every heartbeat
 *   (e2b_member_beat). HTTP threads never wait for the broker.
 * Thread: auth and changed() from any thread (HTTP threads, the reaper);
 * beat/flush from the worker's loop thread only; new/free from main. */
#ifndef SF_E2B_MEMBER_H
#define SF_E2B_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "log.h"

struct e2b_member;
struct e2b_registry;

/* secret is copied (and wiped on free). NULL with errno when the eventfd
 * cannot be made. */
struct e2b_member *e2b_member_new(const char *worker_id, const char *ingress, int64_t lease_ms,
                                  const void *secret, size_t slen, const struct sf_log *lg);
void e2b_member_free(struct e2b_member *m);
/* The address advertised, when known only once the port is bound (":0"). */
void e2b_member_set_ingress(struct e2b_member *m, const char *ingress);
const char *e2b_member_ingress(const struct e2b_member *m);
/* ":PORT" (no host): this machine's address the gateways can reach — the
 * first IPv4 address of an interface that is up and not loopback (a pod's
 * or a container's own address) — into out as "ADDR:PORT". -ENOENT when
 * there is none. */
int e2b_member_own_ingress(const char *port, char *out, size_t size);
/* The registry whose sandboxes the member reports (set once, at start). */
void e2b_member_attach(struct e2b_member *m, struct e2b_registry *reg);

/* Is this request from the gateway? host / sandbox_id: its Host and
 * E2b-Sandbox-Id headers (NULL when absent). false with the reason. */
bool e2b_member_auth(struct e2b_member *m, const char *value, const char *method,
                     const char *path, const char *host, const char *sandbox_id, char *why,
                     size_t whylen);

/* Registry observer: sandbox id changed (any thread). */
void e2b_member_changed(void *member, const char *id);
/* Readable when changes wait for e2b_member_flush. */
int e2b_member_fd(const struct e2b_member *m);

/* Loop thread. Heartbeat with the current capacity (draining: take no new
 * sandboxes; leaving: deregister, dropping every record); a first beat
 * drops what an earlier process under this id left, and a beat that finds
 * the worker forgotten (reaped while unreachable) stores every record
 * again. 0 or -errno with err. */
int e2b_member_beat(struct e2b_member *m, struct sf_broker *b, bool draining, bool leaving,
                    char *err, size_t errlen);
/* Write the records of changed sandboxes (or drop them). 0 or -errno; what
 * failed is kept for the next call. */
int e2b_member_flush(struct e2b_member *m, struct sf_broker *b, char *err, size_t errlen);

/* A create succeeded: put the fleet's headers (start and end time,
 * SF_E2B_HDR_*) on its response; a no-op without a member. */
struct e2b_req;
struct e2b_sbx;
void e2b_member_created(struct e2b_req *rq, const struct e2b_sbx *s);

#endif
