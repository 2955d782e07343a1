/* common/model/workflow.h: the workflow file (docs/workflows.md): parse, validate,
 * resolve `files` against the workflow's folder, order the DAG.
 *
 * Validation collects every problem before anything runs, one line each,
 * naming the file and the step: "wf.json: step 'b': unknown need 'x'".
 * Ownership: sf_workflow_load returns a workflow the caller frees with
 * sf_workflow_free. Thread: reentrant; a loaded workflow is read-only and may
 * be shared between threads.
 */
#ifndef SF_WORKFLOW_H
#define SF_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "netpolicy.h"
#include "resources.h"
#include "serve_mode.h"
#include "util.h"

enum sf_sandbox_mode {
    SF_SANDBOX_PER_STEP = 0,  /* a fresh sandbox per task (default) */
    SF_SANDBOX_SHARED,        /* every step in one sandbox; /tmp/shared persists */
};

struct sf_step {
    char *id;
    char *run;
    json_t *files;        /* path in /workspace -> content (string or {"base64"}) */
    json_t *input;        /* literal input, or NULL when absent */
    char **needs;         /* ids */
    size_t *need_idx;     /* indexes into wf->steps, parallel to needs */
    size_t n_needs;
    bool map;
    double timeout_s;     /* 0 = none */
    int retries;
    json_t *env;          /* object of strings, or NULL */
    bool network;         /* egress on: "network": true or an object */
    struct sf_netpolicy *net_policy; /* the object form, or NULL */
    char *template_name;  /* "template": a root file system by name; NULL: default */
    struct sf_limits limits; /* 0 fields = defaults */
    enum sf_serve serve;  /* how the agent takes its inputs (serve_mode.h) */
    json_t *secrets;      /* array of secret NAMEs, or NULL (secrets.h) */
    json_t *inject;       /* headers added on the egress path, or NULL (inject.h) */
    struct sf_concurrency concurrency;   /* fleet-wide gates; key "" = none */
    struct sf_rate rate;
    int priority;         /* 0..9, or -1: the run's priority (default 0) */
};

struct sf_workflow {
    char *name;
    char *path;           /* as given, for messages */
    enum sf_sandbox_mode sandbox;
    struct sf_step *steps;
    size_t n_steps;
    size_t *order;        /* a topological order of step indexes */
};

/* Per-file caps: workflow files are small; agent files may be larger. */
#define SF_WORKFLOW_MAX_BYTES (16u << 20)
#define SF_AGENT_FILE_MAX_BYTES (64u << 20)

/* Load and validate 'path'. `files` are read relative to its folder.
 * Returns 0, or -EINVAL with one line per problem appended to 'errs'
 * (and -errno when the file itself cannot be read). */
int sf_workflow_load(const char *path, struct sf_workflow **out, struct sf_buf *errs);

/* Parse from memory. base_dir: folder for `files`; NULL means do not read
 * them (the values must then already be contents — used by the fuzzer and by
 * submissions that carry their files inline). */
int sf_workflow_parse(const char *data, size_t len, const char *name_for_msgs,
                      const char *base_dir, struct sf_workflow **out, struct sf_buf *errs);

void sf_workflow_free(struct sf_workflow *wf);   /* NULL is a no-op */

/* The workflow as a document that sf_workflow_parse(…, base_dir NULL, …)
 * reads back: `files` carry their contents inline. New reference. Used to
 * ship a "shared"-sandbox workflow to one worker as a single task. */
json_t *sf_workflow_to_json(const struct sf_workflow *wf);


/* Index of the step with this id, or -1. */
long sf_workflow_find(const struct sf_workflow *wf, const char *id);

/* Content for a task's "files" from raw bytes: a JSON string when the bytes
 * are valid UTF-8 without NUL, else {"base64": ...}. New reference. */
json_t *sf_file_content_json(const char *data, size_t len);

#endif
