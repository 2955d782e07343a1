/* common/model/task.h: the task and result model and wire format v1
 * (docs/protocol.md). Encode/decode are I/O-free so they can be fuzzed.
 *
 * Task:   {"v":1,"id","run_id","step","index","attempt","max_attempts","run",
 *          "files":{path: text | {"base64": ...}},"input","timeout_s",
 *          "limits":{...},"env":{...},"network":bool|{allow_out,deny_out},"created_at","reply_to"?,"serve"?,
 *          "callback":{"url","headers"?,"secret_ref"?}?, "secrets":[NAME...]?,
 *          "concurrency":{"key","limit"}?, "rate":{"key","per_s","burst"}?,
 *          "priority"?, "secret_misses"?}
 * Result: {"v":1,"task_id","run_id","step","index","attempt","status",
 *          "exit_code","output","stderr_tail","duration_ms","worker","error"?}
 *
 * Ownership: decode returns a struct the caller frees with sf_task_free /
 * sf_result_free; strings and json_t members belong to the struct.
 * Thread: all functions are reentrant.
 */
#ifndef SF_TASK_H
#define SF_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "callback.h"
#include "netpolicy.h"
#include "resources.h"
#include "serve_mode.h"

#define SF_WIRE_VERSION 1

#define SF_TEMPLATE_NAME_MAX 64

struct sf_task {
    int v;
    char *id;             /* unique per (run, step, index); stable across attempts */
    char *run_id;
    char *step;
    int64_t index;        /* element of a map step; 0 otherwise */
    int attempt;          /* 1-based */
    int max_attempts;     /* retries + 1 */
    char *run;            /* shell command */
    json_t *files;        /* object: path -> string | {"base64": string}; may be NULL */
    json_t *input;        /* any JSON value; never NULL after decode */
    double timeout_s;     /* 0 = none */
    struct sf_limits limits; /* 0 fields = worker defaults */
    json_t *env;          /* object of strings; may be NULL */
    bool network;         /* egress on ("network": true or an object) */
    struct sf_netpolicy *net_policy; /* the object form, or NULL (default policy) */
    char *template_name;  /* optional: the root file system to run on, by name
                             (a worker's --template / imported); NULL: default */
    int64_t created_at;   /* ms since the epoch */
    char *reply_to;       /* optional: stream/topic for the result (integrations) */
    struct sf_callback *callback; /* optional: POST the final result here (callback.h) */
    json_t *workflow;     /* optional: a whole workflow run in one sandbox by one
                             worker (bundle.h); `run` may then be omitted */
    enum sf_serve serve;  /* optional "serve": "lines": a warm agent takes it (serve_mode.h) */
    json_t *inject;       /* optional: headers the egress path adds for named hosts,
                             secrets by ${secret:NAME} (inject.h); only names travel */
    json_t *secrets;      /* optional array of secret NAMEs (secrets.h): only names
                             travel; whoever runs the task resolves them into the
                             agent's environment */
    int secret_misses;    /* times a worker lacking one of them handed the task on */
    struct sf_concurrency concurrency;   /* fleet-wide gates (resources.h) */
    struct sf_rate rate;
    int priority;         /* 0..SF_PRIORITY_MAX, higher first */
    char *queue;          /* not on the wire: set by the broker that delivered it */
};

enum sf_result_status {
    SF_RESULT_OK = 0,   /* exit 0 and JSON output */
    SF_RESULT_ERROR,    /* non-zero exit, non-JSON output, output too large, exec failure */
    SF_RESULT_TIMEOUT,
    SF_RESULT_CRASHED,  /* killed by a signal / OOM, or the sandbox broke */
    SF_RESULT_REJECTED, /* the task itself was invalid (dead-lettered) */
};

struct sf_result {
    int v;
    char *task_id, *run_id, *step;
    int64_t index;
    int attempt;
    enum sf_result_status status;
    int exit_code;
    json_t *output;       /* JSON value, or NULL (encoded as null) */
    char *stderr_tail;
    int64_t duration_ms;
    char *worker;
    char *error;          /* human message when status != ok; may be NULL */
};

const char *sf_result_status_name(enum sf_result_status s);
/* -1 for an unknown name. */
int sf_result_status_parse(const char *name);

/* Decode a task from raw bytes. On failure returns NULL and a reason in errstr
 * ("malformed JSON at line 1 column 5: ...", "unsupported version 7",
 * "missing field 'run'"): the caller dead-letters the raw message with it. */
struct sf_task *sf_task_decode(const char *data, size_t len, char *errstr, size_t errlen);
/* Encode to a malloc'd compact JSON string. */
char *sf_task_encode(const struct sf_task *t);
json_t *sf_task_to_json(const struct sf_task *t);
struct sf_task *sf_task_from_json(json_t *j, char *errstr, size_t errlen);
struct sf_task *sf_task_dup(const struct sf_task *t);
void sf_task_free(struct sf_task *t);   /* NULL is a no-op */

struct sf_result *sf_result_decode(const char *data, size_t len, char *errstr, size_t errlen);
char *sf_result_encode(const struct sf_result *r);
json_t *sf_result_to_json(const struct sf_result *r);
struct sf_result *sf_result_from_json(json_t *j, char *errstr, size_t errlen);
void sf_result_free(struct sf_result *r);

/* A result for a task that could not be run, with the given status and message. */
struct sf_result *sf_result_for(const struct sf_task *t, enum sf_result_status st,
                                const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The step/task fields of issue-15 gates, shared by the task decoder and the
 * workflow parser. from_json: NULL or null leaves the output unset and
 * returns 0; otherwise it validates and returns -EINVAL with a message. */
int sf_concurrency_from_json(json_t *j, struct sf_concurrency *c, char *errstr, size_t errlen);
json_t *sf_concurrency_to_json(const struct sf_concurrency *c);
int sf_rate_from_json(json_t *j, struct sf_rate *r, char *errstr, size_t errlen);
json_t *sf_rate_to_json(const struct sf_rate *r);
int sf_priority_from_json(json_t *j, int *priority, char *errstr, size_t errlen);
/* `secrets`: an array of at most 64 distinct NAMEs, none starting with SF_
 * (sandfleet's own variables) and none also set in env (may be NULL). */
int sf_secret_names_check(json_t *names, json_t *env, char *errstr, size_t errlen);
/* Every secret name the task needs: its own, and for a bundle task those of
 * every step of its workflow. New reference (an array; empty when none). */
json_t *sf_task_secret_names(const struct sf_task *t);

/* Limits <-> JSON ({"memory_mb":..}); from_json validates (positive integers,
 * known keys) and returns -EINVAL with a message. */
json_t *sf_limits_to_json(const struct sf_limits *l);
int sf_limits_from_json(json_t *j, struct sf_limits *l, char *errstr, size_t errlen);

#endif
