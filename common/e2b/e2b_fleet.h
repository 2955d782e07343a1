/* common/e2b/e2b_fleet.h: what the E2B gateway (`sandfleet-coordinator serve
 * --e2b-listen`, coordinator/gateway/) and the workers behind it
 * (`sandfleet-worker --e2b-ingress`, worker/e2b/) agree on:
 *   - how a request names its sandbox (E2b-Sandbox-Id, the
 *     "<port>-<id>.<domain>" Host form, /sandboxes/{id} paths) and which ids
 *     are valid;
 *   - how the gateway authenticates itself to a worker's ingress port
 *     (Sandfleet-Gateway-Auth: an HMAC of the request under a shared secret);
 *   - the sandbox record kept in the broker (docs/protocol.md, "E2B fleet")
 *     and the views of it the E2B API returns;
 *   - a worker's capacity as its heartbeat reports it, and placement.
 * Thread: no shared state; everything is reentrant. */
#ifndef SF_E2B_FLEET_H
#define SF_E2B_FLEET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_E2B_ENVD_PORT 49983
#define SF_E2B_ID_MAX 64                       /* buffer for a sandbox id */
#define SF_E2B_GW_AUTH "Sandfleet-Gateway-Auth"
#define SF_E2B_GW_SKEW_MS 60000                /* accepted clock difference */
#define SF_E2B_HDR_START "Sandfleet-Sandbox-Start"   /* create: wall ms, worker -> gateway */
#define SF_E2B_HDR_END "Sandfleet-Sandbox-End"

/* ---- naming a sandbox ------------------------------------------------------ */

/* "<port>-<id>[-<clientID>].<domain>[:port]" -> port and id. False when the
 * Host is not of that form. */
bool sf_e2b_host_route(const char *host, unsigned *port, char *id, size_t size);
/* ^[a-z0-9]+(-[a-z0-9]+)?$, the "-<clientID>" suffix dropped, into out. */
bool sf_e2b_valid_id(const char *in, char *out, size_t size);
/* A REST path "/sandboxes/{id}[/action]" or "/v2/sandboxes/{id}[/...]":
 * 1 with the raw id segment copied (not yet validated), 0 when the path
 * names no sandbox, -EINVAL when the segment is too long. */
int sf_e2b_path_sandbox(const char *path, size_t len, char *raw, size_t size);

/* E2B's error body {"code":status,"message":msg} (new reference). */
json_t *sf_e2b_error_json(int status, const char *msg);
/* What E2B's proxy answers (502) for a sandbox that is not there. */
json_t *sf_e2b_gone_json(const char *sandbox_id);

/* ---- gateway -> worker authentication ------------------------------------ */

/* The header value "v1 <wall ms> <hex HMAC-SHA256>" signing method, path
 * (percent-decoded, without the query), Host and E2b-Sandbox-Id (NULL = "")
 * at time now_ms. out >= 96 bytes. 0 or -EIO. */
int sf_e2b_gw_sign(const void *secret, size_t slen, int64_t now_ms, const char *method,
                   const char *path, size_t path_len, const char *host, const char *sandbox_id,
                   char *out, size_t outlen);
/* Check a header value (NULL = absent) the same way: 0, or -EACCES with the
 * reason in why (absent, malformed, stale or from the future, wrong). */
int sf_e2b_gw_verify(const void *secret, size_t slen, const char *value, int64_t now_ms,
                     const char *method, const char *path, const char *host,
                     const char *sandbox_id, char *why, size_t whylen);
/* A shared secret is set and long enough (16 bytes); -EINVAL with a message
 * naming the flag (what) otherwise. */
int sf_e2b_secret_check(const char *secret, const char *what, char *err, size_t errlen);
/* Constant-time comparison of two byte strings. */
bool sf_e2b_secret_eq(const void *a, size_t alen, const void *b, size_t blen);

/* ---- the sandbox record (broker) ------------------------------------------ */

struct sf_e2b_record {
    char id[SF_E2B_ID_MAX];
    char worker[128];                   /* owner's worker id */
    char template_id[128], alias[128];
    char token[96];                     /* envd access token; "" without one */
    char state[12];                     /* "running" | "paused" */
    json_t *metadata;                   /* object, owned (never NULL once parsed) */
    int64_t started_ms, end_ms;         /* wall clock */
    int cpu_count, memory_mb, disk_mb;
};

/* JSON text of the record (malloc'd). */
char *sf_e2b_record_dump(const struct sf_e2b_record *r);
/* Parse a record; 0 or -EINVAL with a message. r->metadata is new. */
int sf_e2b_record_parse(const char *text, size_t len, struct sf_e2b_record *r, char *err,
                        size_t errlen);
void sf_e2b_record_clear(struct sf_e2b_record *r);
/* ListedSandbox (GET /v2/sandboxes) of the record (new reference). */
json_t *sf_e2b_record_listed(const struct sf_e2b_record *r);
/* ISO 8601 UTC with milliseconds, as E2B writes times. */
json_t *sf_e2b_time_json(int64_t wall_ms);

/* ---- worker capacity (heartbeat) and placement ---------------------------- */

struct sf_e2b_capacity {
    char id[128];
    char ingress[256];                  /* HOST:PORT the gateway connects to */
    int max, running, paused;           /* sandboxes: cap, alive and running, paused */
    bool draining;                      /* SIGTERM seen: takes no new sandboxes */
    int64_t lease_ms;                   /* dead when its heartbeat is older */
    int64_t mem_total_mb, mem_avail_mb; /* of the worker's host or cgroup, whichever is smaller */
    int cpus;
    double load1;
    int64_t age_ms;                     /* of its last heartbeat, when read back */
};

/* Memory and CPU of this machine (or the cgroup the process is in). */
void sf_e2b_capacity_probe(struct sf_e2b_capacity *c);
json_t *sf_e2b_capacity_json(const struct sf_e2b_capacity *c);
int sf_e2b_capacity_parse(const json_t *j, struct sf_e2b_capacity *c, char *err, size_t errlen);
/* Live: heard from within its lease. */
bool sf_e2b_capacity_live(const struct sf_e2b_capacity *c);

/* One placement candidate: its last reported capacity plus what the
 * caller knows that the report does not include yet. */
struct sf_e2b_candidate {
    const struct sf_e2b_capacity *cap;
    int unseen;                         /* creates placed here since the report */
    bool refused;                       /* refused (full) since the report */
    bool down;                          /* a connection to it failed recently */
};

/* Order candidate indices best first into order[] and return how many may
 * take a sandbox (live, not draining, not down, an ingress, at least
 * min_free_mb of memory, not refused). Spread: the most free capacity first
 * (the smaller of the free-slot and free-memory fractions, less a CPU-load
 * term); those that look full by the report come last but are still tried
 * (the worker's own cap decides). rnd breaks ties. */
size_t sf_e2b_place(const struct sf_e2b_candidate *v, size_t n, int64_t min_free_mb,
                    uint32_t rnd, size_t *order);

#endif
