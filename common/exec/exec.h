/* common/exec/exec.h: run one task in a sandbox and turn what happened into a
 * result — the agent contract (README, "Agent contract") in one place, shared by the
 * coordinator's local pool and the worker.
 *
 * Contract: the task's files are written under /workspace, its input JSON to
 * /tmp/input.json and to stdin; `run` runs by /bin/sh -c in /workspace; exit
 * 0 with JSON on stdout is success. Non-JSON stdout fails with "output is not
 * JSON: <first 200 bytes, escaped>" (SF_EXEC_NOT_JSON: an error that quotes the
 * agent, so logs show it at debug level only), stdout over the cap fails with
 * a message naming the cap. Never a crash. A "serve": "lines" task goes to
 * a warm agent instead when cfg->warm is set (warm.h).
 * Secrets: the task's `secrets` are resolved here (cfg->secrets), set in the
 * agent's environment only (a warm agent's too), and every value is masked
 * ("***") wherever the agent may have echoed it into the result (output
 * strings and keys, stderr_tail, error). A secret that cannot be resolved
 * fails the task before a sandbox is made (status error, naming the secret
 * and the worker).
 * Thread: any; a shared sandbox must not be used by two threads at once.
 */
#ifndef SF_EXEC_H
#define SF_EXEC_H

#include "policy.h"
#include "sandbox.h"
#include "secrets.h"
#include "task.h"
#include "template.h"

#define SF_EXEC_NOT_JSON "output is not JSON"

struct sf_warm_pool;
struct sf_exec_cfg {
    const char *worker;     /* name put in results */
    size_t output_cap;      /* stdout bytes; 0 = 16 MiB */
    /* The operator's caps (policy.h), NULL for none: a task over a cap gets
     * a `rejected` result naming it; what it leaves unset is filled under
     * the caps. */
    const struct sf_policy *policy;
    /* The templates a task may name (template.h); NULL: only the default. */
    const struct sf_templates *templates;
    sf_output_cb on_stderr; /* optional live stderr (e.g. logs) */
    void *cb_arg;
    /* Warm agents for "serve": "lines" tasks (warm.h); NULL: such a task
     * runs cold, its input as one line followed by end of file. */
    struct sf_warm_pool *warm;
    const struct sf_secrets *secrets;  /* where a task's `secrets` come from; NULL =
                                          the environment only (secrets.h) */
};

/* Run 't'. With 'shared' NULL a sandbox is created from 'p' and destroyed
 * afterwards; otherwise 't' runs in 'shared' (workflow "sandbox": "shared").
 * A bundle task (t->workflow set) is not for this: see sf_bundle_exec.
 * Always returns a result (owned by the caller). *sandbox_create_ms, when not
 * NULL, receives the time spent creating the sandbox. */
struct sf_result *sf_exec_task(struct sf_sandbox_provider *p, struct sf_sandbox *shared,
                               const struct sf_task *t, const struct sf_exec_cfg *cfg,
                               int64_t *sandbox_create_ms);

/* Helpers shared with warm.c. Write each entry of t->files under
 * /workspace: 0, or -errno with the reason in err. */
int sf_exec_write_files(struct sf_sandbox *sb, const struct sf_task *t, char *err, size_t n);
/* The agent's environment ("K=V", NULL-terminated, owned): SF_RUN_ID,
 * SF_STEP, then SF_TASK_ID and SF_ATTEMPT (per_task) or SF_SERVE=lines,
 * then t->env, then the resolved secrets sv (may be NULL) as NAME=value. Free
 * with sf_exec_env_free (NULL ok; it wipes the strings). */
char **sf_exec_env(const struct sf_task *t, bool per_task, const struct sf_secret_values *sv);
void sf_exec_env_free(char **env);

/* The resolved rules of a step's "inject" (inject.h): the secrets its values
 * name are read here (cfg->secrets) into *isv (the caller masks results with
 * them and clears it), and substituted. *out is NULL without inject. 0, or
 * -errno with the reason, naming a missing secret and this worker. */
int sf_exec_inject(const json_t *inject, const struct sf_exec_cfg *cfg, struct sf_inject **out,
                   struct sf_secret_values *isv, char *err, size_t errlen);

/* Parse agent stdout as one JSON document; NULL with a message otherwise.
 * The message quotes the start of the output, escaped: with sv (the
 * secrets the agent holds; NULL: none) masked before it is escaped and
 * cut, since the escaped form of a value (a tab, a UTF-8 letter) or the
 * part before the cut would pass the masking of the finished result. */
json_t *sf_exec_parse_output(const char *out, size_t len, const struct sf_secret_values *sv,
                             char *errstr, size_t errlen);
/* Mask every value of sv wherever the agent may have echoed it into r
 * (output strings and keys, stderr_tail, error). */
void sf_exec_mask_result(const struct sf_secret_values *sv, struct sf_result *r);

#endif
