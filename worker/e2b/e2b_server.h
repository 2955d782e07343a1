/* worker/e2b/e2b_server.h: an E2B-compatible server on top of local sandboxes
 * (`sandfleet-worker --e2b-listen HOST:PORT`), so code written for the
 * official E2B SDKs runs unchanged against this machine.
 *
 * One port serves both the control-plane REST API (e2b_api.c) and envd
 * (e2b_envd.c). A request is for envd when it names a sandbox: the
 * E2b-Sandbox-Id header (what the SDKs always send), or a Host of the form
 * "<port>-<sandboxID>.<domain>" (E2B's direct URL form, when a TLS proxy
 * forwards such names here). Everything else is the REST API.
 * libmicrohttpd runs a thread per connection, so a process stream can block
 * in its content callback until output comes (e2b_proc.c).
 * Thread: start and stop from one thread; handlers run on MHD's threads. */
#ifndef SF_E2B_SERVER_H
#define SF_E2B_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "log.h"
#include "policy.h"
#include "sandbox.h"
#include "util.h"

struct sf_e2b_server_cfg {
    const char *listen;                  /* "HOST:PORT"; port 0 picks a free one */
    const char *api_key;                 /* X-API-Key to require; NULL: any key */
    struct sf_sandbox_provider *prov;    /* borrowed; must be "local" */
    const struct sf_log *lg;             /* borrowed */
    int max_sandboxes;                   /* alive at once; 429 beyond */
    const struct sf_policy *policy;      /* the worker's caps (policy.h); NULL: none */
};

struct sf_e2b_server;

/* Listen and serve. 0, or -errno with a message (bad address, port in use,
 * a provider that is not local). */
int sf_e2b_server_start(const struct sf_e2b_server_cfg *cfg, struct sf_e2b_server **out,
                        char *err, size_t errlen);
/* The port actually bound. */
uint16_t sf_e2b_server_port(const struct sf_e2b_server *s);
/* Stop accepting, kill every sandbox, free. NULL is a no-op. */
void sf_e2b_server_stop(struct sf_e2b_server *s);

/* ---- internal: shared by e2b_server.c, e2b_api.c, e2b_envd.c ------------ */

struct MHD_Connection;
struct MHD_PostProcessor;
struct e2b_registry;

#define E2B_ENVD_VERSION "0.5.7"         /* what we implement: see docs/e2b.md */
#define E2B_CLIENT_ID "6532622b"

struct e2b_upload {
    char *path;                          /* as named by the part's filename */
    struct sf_buf data;
};

/* One request, from its headers to its completion. */
struct e2b_req {
    struct sf_e2b_server *srv;
    struct e2b_registry *reg;
    const struct sf_log *lg;
    const char *api_key;
    const struct sf_policy *policy;      /* borrowed from the server's cfg */
    struct MHD_Connection *conn;
    const char *method, *url;
    char sandbox_id[64];                 /* envd: the sandbox addressed */
    bool envd;
    struct sf_buf body;
    size_t body_max;
    bool too_big, bad_body;
    struct MHD_PostProcessor *pp;        /* multipart uploads */
    struct e2b_upload *files;
    size_t nfiles;
};

/* Replies; each queues a response and returns MHD's result. */
int e2b_reply(struct e2b_req *rq, unsigned status, const char *ctype, const void *body, size_t len);
/* Steals j. */
int e2b_reply_json(struct e2b_req *rq, unsigned status, json_t *j);
/* {"code":status,"message":...}, as the API and envd's HTTP layer do. */
int e2b_reply_error(struct e2b_req *rq, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Connect unary error: {"code":"not_found","message":...} with its status. */
int e2b_reply_connect_error(struct e2b_req *rq, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *e2b_header(struct e2b_req *rq, const char *name);
const char *e2b_query(struct e2b_req *rq, const char *name);

/* Handlers, called once the body is in. */
int e2b_api_handle(struct e2b_req *rq);
int e2b_envd_handle(struct e2b_req *rq);

#endif
