/* common/model/workflow.c: parse and validate a workflow file (see workflow.h).
 *
 * Design: one pass over the JSON collects every problem into 'errs' (so a
 * user fixes them all at once); only when the pass is clean are needs
 * resolved to indexes and the DAG ordered (Kahn's algorithm), which also
 * finds cycles. Nothing here runs anything. */
#include "workflow.h"
#include "inject.h"
#include "task.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
    const char *name;       /* file name for messages */
    const char *base_dir;   /* NULL: do not read `files` */
    struct sf_buf *errs;
    int n_errs;
};

static void problem(struct ctx *c, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct ctx *c, const char *step, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (step)
        sf_buf_appendf(c->errs, "%s: step '%s': %s\n", c->name, step, msg);
    else
        sf_buf_appendf(c->errs, "%s: %s\n", c->name, msg);
    c->n_errs++;
}

/* A `files` key is a relative path inside /workspace: no "..", not absolute. */
static bool valid_rel_path(const char *p)
{
    if (!*p || p[0] == '/') return false;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
        s += n + (e ? 1 : 0);
        if (e && !*s) return false;
    }
    return true;
}

json_t *sf_file_content_json(const char *data, size_t len)
{
    json_t *s = memchr(data, '\0', len) ? NULL : json_stringn(data, len);
    if (s) return s;                       /* NULL when not valid UTF-8 */
    char *enc = sf_base64_encode(data, len);
    json_t *o = json_pack("{s:s}", "base64", enc);
    free(enc);
    return o;
}

static json_t *load_files(struct ctx *c, const char *step, json_t *files)
{
    const char *path;
    json_t *v, *out = json_object();
    json_object_foreach(files, path, v) {
        if (!valid_rel_path(path)) {
            problem(c, step, "files: '%s' must be a relative path inside /workspace "
                             "(no leading '/', no '..')", path);
            continue;
        }
        if (!c->base_dir && json_is_object(v) && json_is_string(json_object_get(v, "base64")) &&
            json_object_size(v) == 1) {
            json_object_set(out, path, v);   /* inline binary contents */
            continue;
        }
        if (!json_is_string(v)) {
            problem(c, step, "files: '%s' must map to a file name (string)", path);
            continue;
        }
        if (!c->base_dir) {                /* inline contents */
            json_object_set(out, path, v);
            continue;
        }
        const char *src = json_string_value(v);
        char *full = src[0] == '/' ? sf_xstrdup(src) : sf_xasprintf("%s/%s", c->base_dir, src);
        char *data = NULL;
        size_t len = 0;
        int rc = sf_read_file(full, SF_AGENT_FILE_MAX_BYTES, &data, &len);
        if (rc == -EFBIG)
            problem(c, step, "files: '%s' is larger than %u MiB", full, SF_AGENT_FILE_MAX_BYTES >> 20);
        else if (rc < 0)
            problem(c, step, "files: cannot read '%s': %s", full, strerror(-rc));
        else
            json_object_set_new(out, path, sf_file_content_json(data, len));
        free(data);
        free(full);
    }
    return out;
}

static bool known_key(const char *k, const char *const *keys)
{
    for (; *keys; keys++)
        if (!strcmp(k, *keys)) return true;
    return false;
}

/* secrets, concurrency, rate, priority: the same rules as the task fields. */
static void parse_gates(struct ctx *c, json_t *js, const char *label, struct sf_step *st)
{
    char err[256];
    json_t *v;
    st->priority = -1;
    if ((v = json_object_get(js, "secrets"))) {
        if (sf_secret_names_check(v, st->env, err, sizeof(err)) < 0) problem(c, label, "%s", err);
        else st->secrets = json_incref(v);
    }
    if ((v = json_object_get(js, "inject"))) {
        if (sf_inject_check(v, err, sizeof(err)) < 0) problem(c, label, "%s", err);
        else if (!st->network) problem(c, label, "'inject' needs \"network\" (true or rules)");
        else st->inject = json_incref(v);
    }
    if (sf_concurrency_from_json(json_object_get(js, "concurrency"), &st->concurrency, err, sizeof(err)) < 0)
        problem(c, label, "%s", err);
    if (sf_rate_from_json(json_object_get(js, "rate"), &st->rate, err, sizeof(err)) < 0)
        problem(c, label, "%s", err);
    if (sf_priority_from_json(json_object_get(js, "priority"), &st->priority, err, sizeof(err)) < 0)
        problem(c, label, "%s", err);
}

static void parse_step(struct ctx *c, json_t *js, size_t idx, struct sf_step *st)
{
    static const char *const keys[] = { "id", "run", "files", "input", "needs", "map",
        "timeout_s", "retries", "env", "network", "limits", "template", "serve", "secrets",
        "inject", "concurrency", "rate", "priority", NULL };
    char label[160];
    const char *k;
    json_t *v;

    if (!json_is_object(js)) {
        snprintf(label, sizeof(label), "#%zu", idx + 1);
        problem(c, label, "must be an object");
        return;
    }
    v = json_object_get(js, "id");
    if (json_is_string(v) && sf_valid_name(json_string_value(v), SF_STEP_ID_MAX)) {
        st->id = sf_xstrdup(json_string_value(v));
        snprintf(label, sizeof(label), "%s", st->id);
    } else {
        snprintf(label, sizeof(label), "#%zu", idx + 1);
        if (!v)
            problem(c, label, "missing 'id'");
        else
            problem(c, label, "'id' must be a string of letters, digits, '_', '-', '.' "
                              "(at most 128)");
    }
    json_object_foreach(js, k, v) {
        if (!known_key(k, keys))
            problem(c, label, "unknown field '%s' (known: id, run, files, input, needs, map, "
                              "timeout_s, retries, env, network, limits, template, serve, "
                              "secrets, inject, concurrency, rate, priority)", k);
    }
    v = json_object_get(js, "run");
    if (json_is_string(v) && json_string_length(v) > 0)
        st->run = sf_xstrdup(json_string_value(v));
    else
        problem(c, label, v ? "'run' must be a non-empty string" : "missing 'run'");

    if ((v = json_object_get(js, "files"))) {
        if (json_is_object(v))
            st->files = load_files(c, label, v);
        else
            problem(c, label, "'files' must be an object mapping a path in /workspace to a file");
    }
    if ((v = json_object_get(js, "input"))) st->input = json_incref(v);

    if ((v = json_object_get(js, "needs"))) {
        if (!json_is_array(v)) {
            problem(c, label, "'needs' must be an array of step ids");
        } else {
            size_t i;
            json_t *e;
            st->needs = sf_xcalloc(json_array_size(v) + 1, sizeof(char *));
            st->need_idx = sf_xcalloc(json_array_size(v) + 1, sizeof(size_t));
            json_array_foreach(v, i, e) {
                if (!json_is_string(e)) {
                    problem(c, label, "'needs' must contain step ids (strings)");
                    continue;
                }
                bool dup = false;
                for (size_t j = 0; j < st->n_needs; j++)
                    if (!strcmp(st->needs[j], json_string_value(e))) dup = true;
                if (dup) {
                    problem(c, label, "'needs' lists '%s' twice", json_string_value(e));
                    continue;
                }
                st->needs[st->n_needs++] = sf_xstrdup(json_string_value(e));
            }
        }
    }
    if ((v = json_object_get(js, "map"))) {
        if (json_is_boolean(v)) st->map = json_is_true(v);
        else problem(c, label, "'map' must be true or false");
    }
    if (st->map && st->input && st->n_needs == 0 && !json_is_array(st->input))
        problem(c, label, "a map step's 'input' must be an array (one task per element)");
    if (st->map && !st->input && st->n_needs == 0 && !json_object_get(js, "needs"))
        problem(c, label, "a map step needs an array: give 'input' or 'needs'");

    if ((v = json_object_get(js, "timeout_s"))) {
        if (json_is_number(v) && json_number_value(v) > 0 && isfinite(json_number_value(v)) &&
            json_number_value(v) <= SF_TIMEOUT_MAX_S)
            st->timeout_s = json_number_value(v);
        else
            problem(c, label, "'timeout_s' must be a number of seconds > 0 (at most a week)");
    }
    if ((v = json_object_get(js, "retries"))) {
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 100)
            st->retries = (int)json_integer_value(v);
        else
            problem(c, label, "'retries' must be an integer from 0 to 100");
    }
    if ((v = json_object_get(js, "env"))) {
        const char *ek;
        json_t *ev;
        bool ok = json_is_object(v);
        if (ok)
            json_object_foreach(v, ek, ev)
                if (!json_is_string(ev) || !*ek || strchr(ek, '=')) ok = false;
        if (ok) st->env = json_incref(v);
        else problem(c, label, "'env' must be an object of NAME: \"string\"");
    }
    if ((v = json_object_get(js, "network"))) {
        char err[300];
        if (sf_netpolicy_step(v, &st->network, &st->net_policy, err, sizeof(err)) < 0)
            problem(c, label, "'network': %s", err);
    }
    if ((v = json_object_get(js, "template"))) {
        if (json_is_string(v) && sf_valid_name(json_string_value(v), SF_TEMPLATE_NAME_MAX))
            st->template_name = sf_xstrdup(json_string_value(v));
        else
            problem(c, label, "'template' must be a template name (letters, digits, '_', '-', "
                              "'.', at most %d)", SF_TEMPLATE_NAME_MAX);
    }
    if ((v = json_object_get(js, "limits"))) {
        char err[256];
        if (sf_limits_from_json(v, &st->limits, err, sizeof(err)) < 0)
            problem(c, label, "%s", err);
    }
    if ((v = json_object_get(js, "serve"))) {
        int s = json_is_string(v) ? sf_serve_parse(json_string_value(v)) : -1;
        if (s < 0) problem(c, label, "'serve' must be \"lines\" (one JSON input per line on stdin, "
                                     "one JSON output per line on stdout)");
        else st->serve = (enum sf_serve)s;
    }
    parse_gates(c, js, label, st);
}

/* One sandbox has one network: the steps that ask for one must ask for the
 * same (a shared sandbox cannot follow two sets of egress rules). */
static void shared_network(struct ctx *c, const struct sf_workflow *wf)
{
    const struct sf_step *first = NULL;
    for (size_t i = 0; i < wf->n_steps; i++) {
        const struct sf_step *st = &wf->steps[i];
        if (!st->network) continue;
        if (!first) first = st;
        else if (!sf_netpolicy_equal(first->net_policy, st->net_policy))
            problem(c, st->id, "'network' differs from step '%s': the steps of a shared sandbox "
                    "that use the network must ask for the same rules", first->id);
        else if (!(first->inject ? st->inject && json_equal(first->inject, st->inject) : !st->inject))
            problem(c, st->id, "'inject' differs from step '%s': the steps of a shared sandbox "
                    "that use the network must inject the same headers", first->id);
    }
}

/* Resolve needs and order the DAG; reports unknown needs and cycles. */
static void resolve(struct ctx *c, struct sf_workflow *wf)
{
    size_t n = wf->n_steps;
    size_t *indeg = sf_xcalloc(n, sizeof(size_t)), *queue = sf_xcalloc(n, sizeof(size_t));
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        struct sf_step *st = &wf->steps[i];
        for (size_t j = 0; j < st->n_needs; j++) {
            long k = sf_workflow_find(wf, st->needs[j]);
            if (k < 0) {
                problem(c, st->id, "unknown need '%s'", st->needs[j]);
                bad = true;
            } else if ((size_t)k == i) {
                problem(c, st->id, "needs itself");
                bad = true;
            } else {
                st->need_idx[j] = (size_t)k;
                indeg[i]++;
            }
        }
    }
    if (bad || c->n_errs) goto out;      /* order only a workflow that is otherwise valid */
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (!indeg[i]) queue[tail++] = i;
    while (head < tail) {
        size_t u = queue[head++];
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < wf->steps[i].n_needs; j++)
                if (wf->steps[i].need_idx[j] == u && --indeg[i] == 0) queue[tail++] = i;
    }
    if (tail < n) {
        struct sf_buf names = {0};
        for (size_t i = 0; i < n; i++)
            if (indeg[i]) sf_buf_appendf(&names, "%s'%s'", names.len ? ", " : "", wf->steps[i].id);
        problem(c, NULL, "the needs form a cycle through %s", names.data);
        sf_buf_free(&names);
        goto out;
    }
    wf->order = queue;
    queue = NULL;
out:
    free(indeg);
    free(queue);
}

int sf_workflow_parse(const char *data, size_t len, const char *name, const char *base_dir,
                      struct sf_workflow **out, struct sf_buf *errs)
{
    static const char *const keys[] = { "name", "sandbox", "steps", NULL };
    struct ctx c = { .name = name ? name : "workflow", .base_dir = base_dir, .errs = errs };
    struct sf_workflow *wf = sf_xcalloc(1, sizeof(*wf));
    json_error_t je;
    const char *k;
    json_t *v, *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);

    wf->path = sf_xstrdup(c.name);
    if (!root) {
        sf_buf_appendf(errs, "%s:%d:%d: invalid JSON: %s\n", c.name, je.line, je.column, je.text);
        c.n_errs++;
        goto done;
    }
    if (!json_is_object(root)) {
        problem(&c, NULL, "the workflow must be a JSON object");
        goto done;
    }
    json_object_foreach(root, k, v)
        if (!known_key(k, keys))
            problem(&c, NULL, "unknown field '%s' (known: name, sandbox, steps)", k);
    v = json_object_get(root, "name");
    if (v && !(json_is_string(v) && json_string_length(v) > 0))
        problem(&c, NULL, "'name' must be a non-empty string");
    wf->name = sf_xstrdup(json_is_string(v) ? json_string_value(v) : c.name);
    v = json_object_get(root, "sandbox");
    if (v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "shared"))
            wf->sandbox = SF_SANDBOX_SHARED;
        else if (!(json_is_string(v) && !strcmp(json_string_value(v), "per-step")))
            problem(&c, NULL, "'sandbox' must be \"per-step\" or \"shared\"");
    }
    v = json_object_get(root, "steps");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        problem(&c, NULL, v ? "'steps' must be a non-empty array" : "missing 'steps'");
        goto done;
    }
    wf->n_steps = json_array_size(v);
    wf->steps = sf_xcalloc(wf->n_steps, sizeof(struct sf_step));
    for (size_t i = 0; i < wf->n_steps; i++) {
        parse_step(&c, json_array_get(v, i), i, &wf->steps[i]);
        for (size_t j = 0; j < i && wf->steps[i].id; j++)
            if (wf->steps[j].id && !strcmp(wf->steps[j].id, wf->steps[i].id))
                problem(&c, wf->steps[i].id, "duplicate step id (also step #%zu)", j + 1);
    }
    /* One shared sandbox has one root file system. */
    for (size_t i = 1; wf->sandbox == SF_SANDBOX_SHARED && i < wf->n_steps; i++) {
        const char *a = wf->steps[0].template_name, *b = wf->steps[i].template_name;
        if ((a || b) && (!a || !b || strcmp(a, b)))
            problem(&c, wf->steps[i].id, "'template' differs from step #1's: with \"sandbox\": "
                    "\"shared\" every step runs on the same root file system");
    }
    for (size_t i = 0; wf->sandbox == SF_SANDBOX_SHARED && i < wf->n_steps; i++)
        if (wf->steps[i].concurrency.key[0] || wf->steps[i].rate.key[0])
            problem(&c, wf->steps[i].id, "'concurrency' and 'rate' cannot be used with \"sandbox\": "
                    "\"shared\" (the run holds its one sandbox while its steps run one at a time)");
    for (size_t i = 0; i < wf->n_steps; i++)
        if (!wf->steps[i].id) goto done;     /* needs cannot be resolved without ids */
    if (wf->sandbox == SF_SANDBOX_SHARED) shared_network(&c, wf);
    resolve(&c, wf);
done:
    json_decref(root);
    if (c.n_errs) {
        sf_workflow_free(wf);
        return -EINVAL;
    }
    *out = wf;
    return 0;
}

int sf_workflow_load(const char *path, struct sf_workflow **out, struct sf_buf *errs)
{
    char *data = NULL, *dircopy = sf_xstrdup(path);
    size_t len = 0;
    int rc = sf_read_file(path, SF_WORKFLOW_MAX_BYTES, &data, &len);
    if (rc < 0) {
        sf_buf_appendf(errs, "%s: cannot read the workflow: %s\n", path,
                       rc == -EFBIG ? "larger than 16 MiB" : strerror(-rc));
    } else {
        rc = sf_workflow_parse(data, len, path, dirname(dircopy), out, errs);
    }
    free(data);
    free(dircopy);
    return rc;
}

json_t *sf_workflow_to_json(const struct sf_workflow *wf)
{
    json_t *steps = json_array();
    for (size_t i = 0; i < wf->n_steps; i++) {
        const struct sf_step *st = &wf->steps[i];
        json_t *o = json_pack("{s:s, s:s}", "id", st->id, "run", st->run);
        if (st->files) json_object_set(o, "files", st->files);
        if (st->input) json_object_set(o, "input", st->input);
        if (st->n_needs) {
            json_t *needs = json_array();
            for (size_t j = 0; j < st->n_needs; j++) json_array_append_new(needs, json_string(st->needs[j]));
            json_object_set_new(o, "needs", needs);
        }
        if (st->map) json_object_set_new(o, "map", json_true());
        if (st->timeout_s > 0) json_object_set_new(o, "timeout_s", json_real(st->timeout_s));
        if (st->retries) json_object_set_new(o, "retries", json_integer(st->retries));
        if (st->env) json_object_set(o, "env", st->env);
        if (st->net_policy) json_object_set_new(o, "network", sf_netpolicy_to_json(st->net_policy));
        else if (st->network) json_object_set_new(o, "network", json_true());
        if (st->template_name) json_object_set_new(o, "template", json_string(st->template_name));
        if (st->serve) json_object_set_new(o, "serve", json_string(sf_serve_name(st->serve)));
        json_t *lim = sf_limits_to_json(&st->limits);
        if (json_object_size(lim)) json_object_set(o, "limits", lim);
        json_decref(lim);
        if (st->secrets) json_object_set(o, "secrets", st->secrets);
        if (st->inject) json_object_set(o, "inject", st->inject);
        if (st->concurrency.key[0]) json_object_set_new(o, "concurrency", sf_concurrency_to_json(&st->concurrency));
        if (st->rate.key[0]) json_object_set_new(o, "rate", sf_rate_to_json(&st->rate));
        if (st->priority >= 0) json_object_set_new(o, "priority", json_integer(st->priority));
        json_array_append_new(steps, o);
    }
    return json_pack("{s:s, s:s, s:o}", "name", wf->name,
                     "sandbox", wf->sandbox == SF_SANDBOX_SHARED ? "shared" : "per-step", "steps", steps);
}

long sf_workflow_find(const struct sf_workflow *wf, const char *id)
{
    for (size_t i = 0; i < wf->n_steps; i++)
        if (wf->steps[i].id && !strcmp(wf->steps[i].id, id)) return (long)i;
    return -1;
}

void sf_workflow_free(struct sf_workflow *wf)
{
    if (!wf) return;
    for (size_t i = 0; i < wf->n_steps; i++) {
        struct sf_step *st = &wf->steps[i];
        free(st->id);
        free(st->run);
        free(st->template_name);
        json_decref(st->files);
        json_decref(st->input);
        for (size_t j = 0; j < st->n_needs; j++) free(st->needs[j]);
        free(st->needs);
        free(st->need_idx);
        json_decref(st->env);
        sf_netpolicy_free(st->net_policy);
        json_decref(st->secrets);
        json_decref(st->inject);
    }
    free(wf->steps);
    free(wf->order);
    free(wf->name);
    free(wf->path);
    free(wf);
}
