/* common/exec/exec.c: the agent contract (see exec.h). */
#include "exec.h"
#include "log.h"
#include "warm.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SF_DEFAULT_OUTPUT_CAP (16u << 20)

json_t *sf_exec_parse_output(const char *out, size_t len, const struct sf_secret_values *sv,
                             char *errstr, size_t errlen)
{
    json_error_t je;
    json_t *j = len ? json_loadb(out, len, JSON_DECODE_ANY, &je) : NULL;
    if (j) return j;
    /* Show the start of what the agent printed, masked, then escaped. */
    char shown[4 * SF_LOG_EXCERPT_MAX + 32];
    size_t mlen = 0;
    char *masked = sf_secrets_mask(sv, out, len, &mlen);
    sf_log_excerpt(shown, sizeof(shown), masked ? masked : out, masked ? mlen : len,
                   SF_LOG_EXCERPT_MAX);
    free(masked);
    sf_errf(errstr, errlen, SF_EXEC_NOT_JSON ": %s", len ? shown : "(empty)");
    return NULL;
}

int sf_exec_write_files(struct sf_sandbox *sb, const struct sf_task *t, char *err, size_t n)
{
    const char *path;
    json_t *v;
    if (!t->files) return 0;
    json_object_foreach(t->files, path, v) {
        char *data = NULL, *full;
        size_t len = 0;
        int rc;
        if (path[0] == '/' || strstr(path, "..")) {
            sf_errf(err, n, "file path '%s' must be relative to /workspace without '..'", path);
            return -EINVAL;
        }
        if (json_is_string(v)) {
            data = sf_xstrndup(json_string_value(v), json_string_length(v));
            len = json_string_length(v);
        } else {
            json_t *b = json_object_get(v, "base64");
            if (!json_is_string(b) ||
                sf_base64_decode(json_string_value(b), json_string_length(b), &data, &len) < 0) {
                sf_errf(err, n, "file '%s': invalid base64", path);
                return -EINVAL;
            }
        }
        full = sf_xasprintf("/workspace/%s", path);
        rc = sf_sandbox_write_file(sb, full, data, len, 0644);
        free(full);
        free(data);
        if (rc < 0) {
            sf_errf(err, n, "writing %s: %s", path, sb->errstr);
            return rc;
        }
    }
    return 0;
}

char **sf_exec_env(const struct sf_task *t, bool per_task, const struct sf_secret_values *sv)
{
    size_t n = (t->env ? json_object_size(t->env) : 0) + (sv ? sv->n : 0), k = 0;
    char **env = sf_xcalloc(n + 5, sizeof(char *));
    const char *key;
    json_t *v;
    env[k++] = sf_xasprintf("SF_RUN_ID=%s", t->run_id);
    env[k++] = sf_xasprintf("SF_STEP=%s", t->step);
    if (per_task) {
        env[k++] = sf_xasprintf("SF_TASK_ID=%s", t->id);
        env[k++] = sf_xasprintf("SF_ATTEMPT=%d", t->attempt);
    } else {
        env[k++] = sf_xstrdup("SF_SERVE=lines");
    }
    if (t->env)
        json_object_foreach(t->env, key, v) env[k++] = sf_xasprintf("%s=%s", key, json_string_value(v));
    for (size_t i = 0; sv && i < sv->n; i++) env[k++] = sf_xasprintf("%s=%s", sv->v[i].name, sv->v[i].value);
    env[k] = NULL;
    return env;
}

void sf_exec_env_free(char **env)
{
    if (!env) return;
    for (char **e = env; *e; e++) {
        explicit_bzero(*e, strlen(*e));          /* may hold a secret */
        free(*e);
    }
    free(env);
}

/* A copy of j with every secret value masked in strings and object keys;
 * NULL when nothing needed masking. */
static json_t *mask_json(const struct sf_secret_values *sv, json_t *j)
{
    size_t n, i;
    char *m;
    const char *k;
    json_t *v, *out = NULL;
    switch (json_typeof(j)) {
    case JSON_STRING:
        m = sf_secrets_mask(sv, json_string_value(j), json_string_length(j), &n);
        if (!m) return NULL;
        out = json_stringn_nocheck(m, n);
        free(m);
        return out;
    case JSON_ARRAY:
        json_array_foreach(j, i, v) {
            json_t *mv = mask_json(sv, v);
            if (!mv) continue;
            if (!out) out = json_copy(j);
            json_array_set_new(out, i, mv);
        }
        return out;
    case JSON_OBJECT: {
        bool changed = false;
        json_t *o = json_object();
        json_object_foreach(j, k, v) {
            json_t *mv = mask_json(sv, v);
            char *mk = sf_secrets_mask(sv, k, strlen(k), &n);
            changed = changed || mv || mk;
            json_object_set_nocheck(o, mk ? mk : k, mv ? mv : v);
            json_decref(mv);
            free(mk);
        }
        if (changed) return o;
        json_decref(o);
        return NULL;
    }
    default:
        return NULL;
    }
}

static void mask_str(const struct sf_secret_values *sv, char **s)
{
    size_t n;
    char *m = *s ? sf_secrets_mask(sv, *s, strlen(*s), &n) : NULL;
    if (!m) return;
    free(*s);
    *s = m;
}

/* Whatever the agent printed may contain a secret it was given. */
void sf_exec_mask_result(const struct sf_secret_values *sv, struct sf_result *r)
{
    if (!sv || !sv->n) return;
    mask_str(sv, &r->stderr_tail);
    mask_str(sv, &r->error);
    json_t *m = r->output ? mask_json(sv, r->output) : NULL;
    if (m) {
        json_decref(r->output);
        r->output = m;
    }
}

int sf_exec_inject(const json_t *inject, const struct sf_exec_cfg *cfg, struct sf_inject **out,
                   struct sf_secret_values *isv, char *err, size_t errlen)
{
    *out = NULL;
    if (!inject) return 0;
    json_t *names = sf_inject_secret_names(inject);
    const char *missing = NULL;
    char why[SF_ERRSTR_LEN];
    int rc = sf_secrets_resolve(cfg->secrets, names, isv, &missing, why, sizeof(why));
    if (rc < 0)
        sf_errf(err, errlen, "secret '%s' (inject) is not available on %s: %s", missing ? missing : "?",
                cfg->worker ? cfg->worker : "this worker", why);
    else if (!(*out = sf_inject_build(inject, isv, err, errlen)))
        rc = -EINVAL;
    json_decref(names);
    return rc;
}

struct sf_result *sf_exec_task(struct sf_sandbox_provider *p, struct sf_sandbox *shared,
                               const struct sf_task *t, const struct sf_exec_cfg *cfg,
                               int64_t *create_ms)
{
    struct sf_sandbox *sb = shared;
    struct sf_result *r = NULL;
    struct sf_run_result rr = {0};
    struct sf_secret_values sv = {0}, isv = {0};
    struct sf_inject *inj = NULL;
    char err[SF_ERRSTR_LEN];
    char *input = NULL, *line = NULL, **env = NULL;
    const char *missing = NULL;
    int64_t t0 = sf_now_ms();
    struct sf_limits limits = t->limits;
    double timeout_s = t->timeout_s;
    int rc;

    struct sf_policy_ask ask = { .limits = &t->limits, .timeout_s = t->timeout_s, .network = t->network };
    if (sf_policy_check(cfg->policy, &ask, err, sizeof(err)) < 0) {
        r = sf_result_for(t, SF_RESULT_REJECTED, cfg->worker, "%s", err);
        goto out;
    }
    /* A shared sandbox was made under the caps already; its steps keep
     * what they ask for on top of it. */
    sf_policy_fill(cfg->policy, shared ? NULL : &limits, &timeout_s);
    const char *rootfs = NULL;
    if (!shared && !sf_templates_find(cfg->templates, t->template_name, &rootfs)) {
        r = sf_result_for(t, SF_RESULT_REJECTED, cfg->worker, "template '%s' is not known to this "
                          "worker (--template NAME=DIR, or sandfleet-worker template import)",
                          t->template_name);
        goto out;
    }
    if (t->secrets && sf_secrets_resolve(cfg->secrets, t->secrets, &sv, &missing, err, sizeof(err)) < 0) {
        r = sf_result_for(t, SF_RESULT_ERROR, cfg->worker, "secret '%s' is not available on %s: %s",
                          missing ? missing : "?", cfg->worker ? cfg->worker : "this worker", err);
        goto out;
    }
    /* A shared sandbox got its injection when it was made (bundle.c). */
    if (!shared && sf_exec_inject(t->inject, cfg, &inj, &isv, err, sizeof(err)) < 0) {
        r = sf_result_for(t, SF_RESULT_ERROR, cfg->worker, "%s", err);
        goto out;
    }
    /* A serving agent with injected headers runs cold: the warm runner
     * would keep the resolved secrets for as long as the agent lives. */
    if (t->serve && !shared && cfg->warm && !inj &&
        (r = sf_warm_exec(cfg->warm, p, t, &limits, rootfs, timeout_s, cfg, create_ms)))
        goto out;
    if (!sb) {
        struct sf_sandbox_opts opts = { .network = t->network, .net_policy = t->net_policy,
                                        .inject = inj, .limits = limits, .label = t->id,
                                        .rootfs = rootfs };
        int64_t c0 = sf_now_ms();
        rc = sf_sandbox_create(p, &opts, &sb, err, sizeof(err));
        sf_inject_free(inj);                     /* the sandbox has its own copy */
        inj = NULL;
        if (create_ms) *create_ms = sf_now_ms() - c0;
        if (rc < 0) {
            r = sf_result_for(t, SF_RESULT_CRASHED, cfg->worker, "sandbox: %s", err);
            goto out;
        }
    }
    if (sf_exec_write_files(sb, t, err, sizeof(err)) < 0) {
        r = sf_result_for(t, SF_RESULT_ERROR, cfg->worker, "%s", err);
        goto out;
    }
    input = json_dumps(t->input ? t->input : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!input) abort();
    if (sf_sandbox_write_file(sb, "/tmp/input.json", input, strlen(input), 0644) < 0) {
        r = sf_result_for(t, SF_RESULT_CRASHED, cfg->worker, "writing /tmp/input.json: %s",
                          sb->errstr);
        goto out;
    }
    env = sf_exec_env(t, true, &sv);
    /* A serving agent run cold (a shared sandbox, a backend that cannot
     * keep it running) reads its one line, then end of file. */
    if (t->serve) line = sf_xasprintf("%s\n", input);
    struct sf_run_spec spec = {
        .cmd = t->run,
        .cwd = "/workspace",
        .env = (const char *const *)env,
        .stdin_data = line ? line : input,
        .stdin_len = strlen(line ? line : input),
        .timeout_s = timeout_s,
        .limits = &limits,
        .stdout_cap = cfg->output_cap ? cfg->output_cap : SF_DEFAULT_OUTPUT_CAP,
        .on_stderr = cfg->on_stderr,
        .cb_arg = cfg->cb_arg,
    };
    rc = sf_sandbox_run(sb, &spec, &rr);
    if (rc < 0) {
        r = sf_result_for(t, SF_RESULT_CRASHED, cfg->worker, "sandbox: %s", sb->errstr);
        goto out;
    }
    r = sf_result_for(t, SF_RESULT_OK, cfg->worker, NULL);
    r->exit_code = rr.exit_code;
    free(r->stderr_tail);
    r->stderr_tail = sf_xstrdup(rr.err_tail ? rr.err_tail : "");
    switch (rr.status) {
    case SF_RUN_EXITED:
        if (rr.exit_code != 0) {
            r->status = SF_RESULT_ERROR;
            r->error = sf_xasprintf("exit code %d", rr.exit_code);
            r->output = sf_exec_parse_output(rr.out, rr.out_len, &sv, err, sizeof(err));
        } else if (rr.out_truncated) {
            r->status = SF_RESULT_ERROR;
            r->error = sf_xasprintf("output is larger than the cap of %zu bytes", spec.stdout_cap);
        } else if (!(r->output = sf_exec_parse_output(rr.out, rr.out_len, &sv, err, sizeof(err)))) {
            r->status = SF_RESULT_ERROR;
            r->error = sf_xstrdup(err);
        }
        break;
    case SF_RUN_TIMEOUT:
        r->status = SF_RESULT_TIMEOUT;
        r->error = sf_xasprintf("timed out after %gs", timeout_s);
        break;
    case SF_RUN_OOM:
    case SF_RUN_SIGNALED:
        r->status = SF_RESULT_CRASHED;
        r->error = sf_xstrdup(rr.error[0] ? rr.error : "killed");
        break;
    case SF_RUN_EXEC_FAILED:
        r->status = SF_RESULT_ERROR;
        r->error = sf_xstrdup(rr.error[0] ? rr.error : "cannot start the command");
        break;
    }
out:
    if (r) r->duration_ms = sf_now_ms() - t0;
    if (r) sf_exec_mask_result(&sv, r);
    if (r) sf_exec_mask_result(&isv, r);
    sf_secret_values_clear(&sv);
    sf_secret_values_clear(&isv);
    sf_inject_free(inj);
    if (sb != shared) sf_sandbox_destroy(sb);
    sf_run_result_clear(&rr);
    free(input);
    free(line);
    sf_exec_env_free(env);
    return r;
}
