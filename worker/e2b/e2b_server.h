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

#include "http_guard.h"
#include "log.h"
#include "policy.h"
#include "sandbox.h"
#include "util.h"

struct sf_e2b_server_cfg {
    const char *listen;                  /* "HOST:PORT"; port 0 picks a free one */
    const char *api_key;                 /* X-API-Key to require; NULL: any key */
    struct sf_sandbox_provider *prov;    /* borrowed; must be "local" */
    const struct sf_log *lg;             /* borrowed */
    int max_sandboxes;                   /* running at once; 429 beyond */
    int max_paused;                      /* paused at once (0: max_sandboxes); 429 beyond */
    const struct sf_policy *policy;      /* the worker's caps (policy.h); NULL: none */
    const struct sf_templates *templates;  /* borrowed (template.h); NULL: only "base" */
    const char *domain;                  /* --e2b-domain: the "domain" sandboxes report, so
                                            get_host(port) names this server; NULL: none */
    const struct sf_secrets *secrets;    /* the worker's (secrets.h), for network.rules'
                                            ${e2b.secrets.NAME}; NULL: none */
    struct sf_http_limits limits;        /* connections, deadlines, bodies (http_guard.h);
                                            0 fields: defaults */
    /* Behind the fleet's gateway (--e2b-ingress, e2b_member.h): every
     * request must be the gateway's. NULL: a standalone server. Borrowed. */
    struct e2b_member *member;
};

struct sf_e2b_server;

/* Listen and serve. 0, or -errno with a message (bad address, port in use,
 * a provider that is not local). */
int sf_e2b_server_start(const struct sf_e2b_server_cfg *cfg, struct sf_e2b_server **out,
                        char *err, size_t errlen);
/* The port actually bound. */
uint16_t sf_e2b_server_port(const struct sf_e2b_server *s);
/* Take no new sandboxes (SIGTERM); the live ones are served on. */
void sf_e2b_server_drain(struct sf_e2b_server *s);
/* Sandboxes alive now. */
size_t sf_e2b_server_alive(struct sf_e2b_server *s);
/* Stop accepting, kill every sandbox, free. NULL is a no-op. */
void sf_e2b_server_stop(struct sf_e2b_server *s);

/* ---- internal: shared by e2b_server.c, e2b_api.c, e2b_envd.c ------------ */

struct MHD_Connection;
struct MHD_PostProcessor;
struct e2b_registry;

#define E2B_ENVD_VERSION "0.5.7"         /* what we implement: see docs/e2b.md */
#define E2B_CLIENT_ID "6532622b"

struct e2b_sbx;
struct e2b_req;

/* A body taken as it arrives instead of buffered (uploads, client
 * streams): data for each chunk, end once it is all in (queues the
 * reply), free at completion. */
struct e2b_sink {
    void (*data)(struct e2b_req *rq, const char *data, size_t len);
    int (*end)(struct e2b_req *rq);
    void (*free)(void *state);
    void *state;
};

/* One request, from its headers to its completion. */
struct e2b_req {
    struct sf_e2b_server *srv;
    struct e2b_registry *reg;
    const struct sf_log *lg;
    const char *api_key;
    const struct sf_policy *policy;      /* borrowed from the server's cfg */
    const struct sf_secrets *secrets;    /* borrowed from the server's cfg */
    struct MHD_Connection *conn;
    const char *method, *url;
    char sandbox_id[64];                 /* envd: the sandbox addressed */
    bool envd;
    int port;                            /* get_host: a port of the sandbox, not envd
                                            (e2b_ingress.c); 0 otherwise */
    struct e2b_sbx *sbx;                 /* envd: a reference, from the first callback */
    bool answered;                       /* a reply was queued before the body */
    struct sf_http_guard_req guard;      /* its bounds (http_guard.h) */
    struct sf_buf body;
    size_t body_max;                     /* a kept body's limit */
    struct e2b_sink sink;                /* .data set: the body is streamed */
    struct e2b_member *member;           /* the fleet's, or NULL */
    char xhdr[2][2][64];                 /* extra response headers (name, value) */
    int nxhdr;
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

/* Seconds between keepalives of a stream: what the client asks (90 when
 * it does not), at most half the idle timeout so that the connection is
 * never idle long enough to be closed. */
int e2b_keepalive_s(struct e2b_req *rq);
/* The worker's templates (template.h). */
const struct sf_templates *e2b_templates(const struct sf_e2b_server *s);
/* --e2b-domain, or NULL. */
const char *e2b_domain(const struct sf_e2b_server *s);

/* Handlers, called once the body is in. */
int e2b_api_handle(struct e2b_req *rq);
int e2b_envd_handle(struct e2b_req *rq);
/* envd before the body: port, token (files: token or signature);
 * false: an error was queued. */
bool e2b_envd_admit(struct e2b_req *rq);
/* The REST API's check of X-API-Key; false: a 401 was queued. */
bool e2b_api_key_ok(struct e2b_req *rq);

/* ---- envd pieces (e2b_envd.c, e2b_files.c, e2b_fs.c) -------------------- */

#define E2B_HOME "/home/user"
/* The 502 E2B's proxy answers for a sandbox that is not there. */
int e2b_gone(struct e2b_req *rq);
/* Absolute path of an envd path ("", "~", relative: under /home/user). */
char *e2b_resolve(const char *path);
/* The request message of a streaming call (one envelope), or NULL. */
json_t *e2b_stream_request(struct e2b_req *rq);
/* A streaming call's answer that is only an end-of-stream error. */
int e2b_stream_error(struct e2b_req *rq, const char *code, const char *msg);
/* uid of an envd user name (NULL or "": "user"); false when unknown. */
bool e2b_user_uid(const char *user, uint32_t *uid);

/* /files: before the body (first callback), an auth check (token or
 * signature: false when a 401 was queued), and a signed URL's sandbox
 * found by its signature (no E2b-Sandbox-Id: the URL is all it has). */
bool e2b_files_auth(struct e2b_req *rq);
struct e2b_sbx *e2b_files_signed_sandbox(struct e2b_req *rq);
/* POST /files: set up the upload as rq->sink (false: an error was queued). */
bool e2b_files_upload_begin(struct e2b_req *rq);
int e2b_files_get(struct e2b_req *rq);
/* process.Process/StreamInput: input handed on as each message arrives. */
bool e2b_stream_input_begin(struct e2b_req *rq);

/* filesystem.Filesystem/<method> (e2b_fs.c). */
int e2b_fs_handle(struct e2b_req *rq, const char *method, uint32_t uid);

#endif
