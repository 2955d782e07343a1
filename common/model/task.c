/* common/model/task.c: wire format v1 for tasks and results (see task.h). Decoding
 * is strict about types and required fields, because whatever it rejects is
 * dead-lettered with the reason it gives here; unknown fields are ignored so
 * producers may add their own metadata. */
#include "task.h"
#include "log.h"
#include "inject.h"
#include "secrets.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
    [SF_RESULT_OK] = "ok",
    [SF_RESULT_ERROR] = "error",
    [SF_RESULT_TIMEOUT] = "timeout",
    [SF_RESULT_CRASHED] = "crashed",
    [SF_RESULT_REJECTED] = "rejected",
};

const char *sf_result_status_name(enum sf_result_status s)
{
    if ((unsigned)s < sizeof(status_names) / sizeof(status_names[0])) return status_names[s];
    return "unknown";
}

int sf_result_status_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (!strcmp(name, status_names[i])) return (int)i;
    return -1;
}

/* --- field readers: each returns 0, or -EINVAL with a message ----------- */

static int get_str(json_t *o, const char *key, bool required, char **out, char *err, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (!required) return 0;
        sf_errf(err, n, "missing field '%s'", key);
        return -EINVAL;
    }
    if (!json_is_string(v)) {
        sf_errf(err, n, "field '%s' must be a string", key);
        return -EINVAL;
    }
    *out = sf_xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

/* An id from the wire: required, and by the one rule for its kind (util.h)
 * — a run id with a newline or a 10 MB task id never gets further. */
enum id_kind { ID_NAME, ID_KEY_PART };

static int get_id(json_t *o, const char *key, enum id_kind kind, size_t max, char **out, char *err,
                  size_t n)
{
    json_t *v = json_object_get(o, key);
    if (get_str(o, key, true, out, err, n) < 0) return -EINVAL;
    bool ok = strlen(*out) == json_string_length(v) &&
              (kind == ID_NAME ? sf_valid_name(*out, max) : sf_valid_key_part(*out, max));
    if (ok) return 0;
    char shown[200];
    sf_errf(err, n, "field '%s' must be 1 to %zu letters, digits, '_', '-', '.'%s (got \"%s\")", key,
            max, kind == ID_KEY_PART ? ", ':'" : "",
            sf_log_excerpt(shown, sizeof(shown), json_string_value(v), json_string_length(v), 40));
    free(*out);
    *out = NULL;
    return -EINVAL;
}

static int get_int(json_t *o, const char *key, bool required, int64_t min, int64_t *out,
                   char *err, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (!required) return 0;
        sf_errf(err, n, "missing field '%s'", key);
        return -EINVAL;
    }
    if (!json_is_integer(v)) {
        sf_errf(err, n, "field '%s' must be an integer", key);
        return -EINVAL;
    }
    if (json_integer_value(v) < min) {
        sf_errf(err, n, "field '%s' must be >= %lld", key, (long long)min);
        return -EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_num(json_t *o, const char *key, double *out, char *err, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v))) {
        sf_errf(err, n, "field '%s' must be a non-negative number", key);
        return -EINVAL;
    }
    *out = json_number_value(v);
    return 0;
}

static int check_files(json_t *files, char *err, size_t n)
{
    const char *path;
    json_t *v;
    if (!json_is_object(files)) {
        sf_errf(err, n, "field 'files' must be an object of path -> content");
        return -EINVAL;
    }
    json_object_foreach(files, path, v) {
        if (!*path) {
            sf_errf(err, n, "field 'files' has an empty path");
            return -EINVAL;
        }
        if (json_is_string(v)) continue;
        if (json_is_object(v) && json_is_string(json_object_get(v, "base64"))) continue;
        sf_errf(err, n, "file '%s' must be a string or {\"base64\": string}", path);
        return -EINVAL;
    }
    return 0;
}

static int check_env(json_t *env, char *err, size_t n)
{
    const char *k;
    json_t *v;
    if (!json_is_object(env)) {
        sf_errf(err, n, "field 'env' must be an object of strings");
        return -EINVAL;
    }
    json_object_foreach(env, k, v) {
        if (!*k || strchr(k, '=') || !json_is_string(v)) {
            sf_errf(err, n, "env '%s' must be a NAME without '=' with a string value", k);
            return -EINVAL;
        }
    }
    return 0;
}

int sf_limits_from_json(json_t *j, struct sf_limits *l, char *err, size_t n)
{
    static const char *const keys[] = { "memory_mb", "pids", "disk_mb", "cpu_s", "nofile" };
    int64_t *dst[] = { &l->memory_mb, &l->pids, &l->disk_mb, &l->cpu_s, &l->nofile };
    const char *k;
    json_t *v;
    if (!j || json_is_null(j)) return 0;
    if (!json_is_object(j)) {
        sf_errf(err, n, "'limits' must be an object");
        return -EINVAL;
    }
    json_object_foreach(j, k, v) {
        size_t i;
        for (i = 0; i < 5; i++) if (!strcmp(k, keys[i])) break;
        if (i == 5) {
            sf_errf(err, n, "unknown limit '%s' (known: memory_mb, pids, disk_mb, cpu_s, nofile)", k);
            return -EINVAL;
        }
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            json_integer_value(v) > (int64_t)1 << 40) {
            sf_errf(err, n, "limit '%s' must be a positive integer", k);
            return -EINVAL;
        }
        *dst[i] = json_integer_value(v);
    }
    return 0;
}

json_t *sf_limits_to_json(const struct sf_limits *l)
{
    json_t *o = json_object();
    if (l->memory_mb) json_object_set_new(o, "memory_mb", json_integer(l->memory_mb));
    if (l->pids) json_object_set_new(o, "pids", json_integer(l->pids));
    if (l->disk_mb) json_object_set_new(o, "disk_mb", json_integer(l->disk_mb));
    if (l->cpu_s) json_object_set_new(o, "cpu_s", json_integer(l->cpu_s));
    if (l->nofile) json_object_set_new(o, "nofile", json_integer(l->nofile));
    return o;
}

/* A gate key: 1..100 letters, digits, '_', '-', '.' (it becomes part of a
 * Redis key name). */
static int get_gate_key(json_t *j, const char *what, char *key, char *err, size_t n)
{
    json_t *k = json_object_get(j, "key");
    if (!json_is_string(k) || !sf_valid_name(json_string_value(k), SF_GATE_KEY_MAX)) {
        sf_errf(err, n, "'%s' needs a \"key\" of 1..%d letters, digits, '_', '-', '.'", what,
                SF_GATE_KEY_MAX);
        return -EINVAL;
    }
    sf_strlcpy(key, json_string_value(k), SF_GATE_KEY_MAX + 1);
    return 0;
}

static bool only_keys(json_t *j, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        const char *const *p = keys;
        while (*p && strcmp(*p, k)) p++;
        if (!*p) return false;
    }
    return true;
}

int sf_concurrency_from_json(json_t *j, struct sf_concurrency *c, char *err, size_t n)
{
    static const char *const keys[] = { "key", "limit", NULL };
    if (!j || json_is_null(j)) return 0;
    if (!json_is_object(j) || !only_keys(j, keys)) {
        sf_errf(err, n, "'concurrency' must be {\"key\": NAME, \"limit\": N}");
        return -EINVAL;
    }
    if (get_gate_key(j, "concurrency", c->key, err, n) < 0) return -EINVAL;
    json_t *l = json_object_get(j, "limit");
    if (!json_is_integer(l) || json_integer_value(l) < 1 || json_integer_value(l) > 1000000) {
        sf_errf(err, n, "'concurrency' needs a \"limit\": an integer from 1 to 1000000");
        c->key[0] = '\0';
        return -EINVAL;
    }
    c->limit = json_integer_value(l);
    return 0;
}

json_t *sf_concurrency_to_json(const struct sf_concurrency *c)
{
    return json_pack("{s:s, s:I}", "key", c->key, "limit", (json_int_t)c->limit);
}

int sf_rate_from_json(json_t *j, struct sf_rate *r, char *err, size_t n)
{
    static const char *const keys[] = { "key", "per_s", "burst", NULL };
    if (!j || json_is_null(j)) return 0;
    if (!json_is_object(j) || !only_keys(j, keys)) {
        sf_errf(err, n, "'rate' must be {\"key\": NAME, \"per_s\": N, \"burst\"?: N}");
        return -EINVAL;
    }
    if (get_gate_key(j, "rate", r->key, err, n) < 0) return -EINVAL;
    json_t *p = json_object_get(j, "per_s"), *b = json_object_get(j, "burst");
    if (!json_is_number(p) || !(json_number_value(p) >= SF_RATE_MIN_PER_S) || json_number_value(p) > 1e6) {
        sf_errf(err, n, "'rate' needs \"per_s\": a number of task starts per second, from 0.000001 to 1000000");
        r->key[0] = '\0';
        return -EINVAL;
    }
    r->per_s = json_number_value(p);
    r->burst = (int64_t)ceil(r->per_s);
    if (b && !json_is_null(b)) {
        if (!json_is_integer(b) || json_integer_value(b) < 1 || json_integer_value(b) > 1000000) {
            sf_errf(err, n, "'rate': \"burst\" must be an integer from 1 to 1000000");
            r->key[0] = '\0';
            return -EINVAL;
        }
        r->burst = json_integer_value(b);
    }
    return 0;
}

json_t *sf_rate_to_json(const struct sf_rate *r)
{
    return json_pack("{s:s, s:f, s:I}", "key", r->key, "per_s", r->per_s, "burst",
                     (json_int_t)r->burst);
}

int sf_priority_from_json(json_t *j, int *priority, char *err, size_t n)
{
    if (!j || json_is_null(j)) return 0;
    if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > SF_PRIORITY_MAX) {
        sf_errf(err, n, "'priority' must be an integer from 0 to %d (higher first)", SF_PRIORITY_MAX);
        return -EINVAL;
    }
    *priority = (int)json_integer_value(j);
    return 0;
}

int sf_secret_names_check(json_t *names, json_t *env, char *err, size_t n)
{
    size_t i;
    json_t *e;
    if (!json_is_array(names) || json_array_size(names) > 64) {
        sf_errf(err, n, "'secrets' must be an array of at most 64 secret NAMEs");
        return -EINVAL;
    }
    json_array_foreach(names, i, e) {
        const char *name = json_string_value(e);
        if (!name || !sf_secret_name_ok(name)) {
            sf_errf(err, n, "'secrets' must hold NAMEs of A-Z, 0-9 and _ starting with a letter "
                            "(at most %d)", SF_SECRET_NAME_MAX);
            return -EINVAL;
        }
        if (!strncmp(name, "SF_", 3)) {
            sf_errf(err, n, "secret '%s': names starting with SF_ are sandfleet's own variables", name);
            return -EINVAL;
        }
        if (env && json_object_get(env, name)) {
            sf_errf(err, n, "secret '%s' is also set in 'env'", name);
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(name, json_string_value(json_array_get(names, k)))) {
                sf_errf(err, n, "'secrets' lists '%s' twice", name);
                return -EINVAL;
            }
    }
    return 0;
}

static void add_names(json_t *out, json_t *names)
{
    size_t i, k;
    json_t *e, *o;
    json_array_foreach(names, i, e) {
        bool seen = false;
        if (!json_is_string(e)) continue;
        json_array_foreach(out, k, o) seen = seen || json_equal(o, e);
        if (!seen) json_array_append(out, e);
    }
}

json_t *sf_task_secret_names(const struct sf_task *t)
{
    json_t *out = json_array(), *steps, *st;
    size_t i;
    if (json_is_array(t->secrets)) add_names(out, t->secrets);
    if (t->inject) {
        json_t *names = sf_inject_secret_names(t->inject);
        add_names(out, names);
        json_decref(names);
    }
    if (t->workflow && json_is_array(steps = json_object_get(t->workflow, "steps")))
        json_array_foreach(steps, i, st) {
            json_t *names = json_object_get(st, "secrets"), *inj = json_object_get(st, "inject");
            if (json_is_array(names)) add_names(out, names);
            if (json_is_object(inj)) {
                json_t *in = sf_inject_secret_names(inj);
                add_names(out, in);
                json_decref(in);
            }
        }
    return out;
}

static json_t *parse(const char *data, size_t len, char *err, size_t n)
{
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j) {
        sf_errf(err, n, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        sf_errf(err, n, "message must be a JSON object");
        json_decref(j);
        return NULL;
    }
    return j;
}

static int check_version(json_t *j, int *v, char *err, size_t n)
{
    json_t *jv = json_object_get(j, "v");
    if (!jv) {
        sf_errf(err, n, "missing field 'v' (wire format version)");
        return -EINVAL;
    }
    if (!json_is_integer(jv) || json_integer_value(jv) != SF_WIRE_VERSION) {
        char *s = json_dumps(jv, JSON_ENCODE_ANY);
        sf_errf(err, n, "unsupported version %s (this worker speaks v%d)", s ? s : "?",
                SF_WIRE_VERSION);
        free(s);
        return -EINVAL;
    }
    *v = SF_WIRE_VERSION;
    return 0;
}

/* --- tasks ---------------------------------------------------------------- */

struct sf_task *sf_task_from_json(json_t *j, char *err, size_t n)
{
    struct sf_task *t = sf_xcalloc(1, sizeof(*t));
    int64_t i64 = 0;
    json_t *v;
    if (check_version(j, &t->v, err, n) < 0) goto fail;
    if (get_id(j, "id", ID_KEY_PART, SF_TASK_ID_MAX, &t->id, err, n) < 0) goto fail;
    if (get_id(j, "run_id", ID_NAME, SF_RUN_ID_MAX, &t->run_id, err, n) < 0) goto fail;
    if (get_id(j, "step", ID_NAME, SF_STEP_ID_MAX, &t->step, err, n) < 0) goto fail;
    /* A bundle task (a whole "shared"-sandbox workflow) carries `workflow`
     * instead of `run`. */
    if ((v = json_object_get(j, "workflow")) && !json_is_null(v)) {
        if (!json_is_object(v)) { sf_errf(err, n, "field 'workflow' must be an object"); goto fail; }
        t->workflow = json_incref(v);
    }
    if (get_str(j, "run", !t->workflow, &t->run, err, n) < 0) goto fail;
    if (!t->run) t->run = sf_xstrdup("");
    if (!*t->run && !t->workflow) { sf_errf(err, n, "field 'run' must not be empty"); goto fail; }
    if (get_int(j, "index", false, 0, &t->index, err, n) < 0) goto fail;
    i64 = 1;
    if (get_int(j, "attempt", false, 1, &i64, err, n) < 0) goto fail;
    t->attempt = (int)(i64 > 1000000 ? 1000000 : i64);
    i64 = 1;
    if (get_int(j, "max_attempts", false, 1, &i64, err, n) < 0) goto fail;
    t->max_attempts = (int)(i64 > 1000 ? 1000 : i64);
    if (get_num(j, "timeout_s", &t->timeout_s, err, n) < 0) goto fail;
    if (t->timeout_s > SF_TIMEOUT_MAX_S) {
        sf_errf(err, n, "field 'timeout_s' must be at most %d (a week)", SF_TIMEOUT_MAX_S);
        goto fail;
    }
    if (get_int(j, "created_at", false, 0, &t->created_at, err, n) < 0) goto fail;
    if (get_str(j, "reply_to", false, &t->reply_to, err, n) < 0) goto fail;
    if ((v = json_object_get(j, "callback")) && !json_is_null(v) &&
        !(t->callback = sf_callback_from_json(v, err, n)))
        goto fail;
    if ((v = json_object_get(j, "files")) && !json_is_null(v)) {
        if (check_files(v, err, n) < 0) goto fail;
        t->files = json_incref(v);
    }
    if ((v = json_object_get(j, "env")) && !json_is_null(v)) {
        if (check_env(v, err, n) < 0) goto fail;
        t->env = json_incref(v);
    }
    if (sf_limits_from_json(json_object_get(j, "limits"), &t->limits, err, n) < 0) goto fail;
    if ((v = json_object_get(j, "secrets")) && !json_is_null(v)) {
        if (sf_secret_names_check(v, t->env, err, n) < 0) goto fail;
        t->secrets = json_incref(v);
    }
    if ((v = json_object_get(j, "inject")) && !json_is_null(v)) {
        if (sf_inject_check(v, err, n) < 0) goto fail;
        t->inject = json_incref(v);
    }
    i64 = 0;
    if (get_int(j, "secret_misses", false, 0, &i64, err, n) < 0) goto fail;
    t->secret_misses = (int)(i64 > 1000000 ? 1000000 : i64);
    if (sf_concurrency_from_json(json_object_get(j, "concurrency"), &t->concurrency, err, n) < 0 ||
        sf_rate_from_json(json_object_get(j, "rate"), &t->rate, err, n) < 0 ||
        sf_priority_from_json(json_object_get(j, "priority"), &t->priority, err, n) < 0)
        goto fail;
    if (sf_netpolicy_step(json_object_get(j, "network"), &t->network, &t->net_policy, err, n) < 0)
        goto fail;
    if (t->inject && !t->network) {
        sf_errf(err, n, "field 'inject' needs 'network' (true or rules)");
        goto fail;
    }
    if (get_str(j, "template", false, &t->template_name, err, n) < 0) goto fail;
    if (t->template_name && !sf_valid_name(t->template_name, SF_TEMPLATE_NAME_MAX)) {
        sf_errf(err, n, "field 'template' must be letters, digits, '_', '-', '.' (at most %d)",
                SF_TEMPLATE_NAME_MAX);
        goto fail;
    }
    if ((v = json_object_get(j, "serve")) && !json_is_null(v)) {
        int s = json_is_string(v) ? sf_serve_parse(json_string_value(v)) : -1;
        if (s < 0) {
            sf_errf(err, n, "field 'serve' must be \"lines\"");
            goto fail;
        }
        t->serve = (enum sf_serve)s;
    }
    v = json_object_get(j, "input");
    t->input = v ? json_incref(v) : json_null();
    return t;
fail:
    sf_task_free(t);
    return NULL;
}

struct sf_task *sf_task_decode(const char *data, size_t len, char *err, size_t n)
{
    json_t *j = parse(data, len, err, n);
    if (!j) return NULL;
    struct sf_task *t = sf_task_from_json(j, err, n);
    json_decref(j);
    return t;
}

json_t *sf_task_to_json(const struct sf_task *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "v", json_integer(SF_WIRE_VERSION));
    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "run_id", json_string(t->run_id));
    json_object_set_new(o, "step", json_string(t->step));
    json_object_set_new(o, "index", json_integer(t->index));
    json_object_set_new(o, "attempt", json_integer(t->attempt));
    json_object_set_new(o, "max_attempts", json_integer(t->max_attempts));
    json_object_set_new(o, "run", json_string(t->run));
    if (t->files) json_object_set(o, "files", t->files);
    json_object_set(o, "input", t->input ? t->input : json_null());
    if (t->timeout_s > 0) json_object_set_new(o, "timeout_s", json_real(t->timeout_s));
    json_object_set_new(o, "limits", sf_limits_to_json(&t->limits));
    if (t->env) json_object_set(o, "env", t->env);
    json_object_set_new(o, "network", t->net_policy ? sf_netpolicy_to_json(t->net_policy)
                                                    : json_boolean(t->network));
    if (t->template_name) json_object_set_new(o, "template", json_string(t->template_name));
    json_object_set_new(o, "created_at", json_integer(t->created_at));
    if (t->reply_to) json_object_set_new(o, "reply_to", json_string(t->reply_to));
    if (t->serve) json_object_set_new(o, "serve", json_string(sf_serve_name(t->serve)));
    if (t->workflow) json_object_set(o, "workflow", t->workflow);
    if (t->callback) json_object_set_new(o, "callback", sf_callback_to_json(t->callback));
    /* The gates only when set: a task without them is byte for byte what it
     * was before they existed. */
    if (t->secrets) json_object_set(o, "secrets", t->secrets);
    if (t->inject) json_object_set(o, "inject", t->inject);
    if (t->secret_misses) json_object_set_new(o, "secret_misses", json_integer(t->secret_misses));
    if (t->concurrency.key[0]) json_object_set_new(o, "concurrency", sf_concurrency_to_json(&t->concurrency));
    if (t->rate.key[0]) json_object_set_new(o, "rate", sf_rate_to_json(&t->rate));
    if (t->priority) json_object_set_new(o, "priority", json_integer(t->priority));
    return o;
}

char *sf_task_encode(const struct sf_task *t)
{
    json_t *o = sf_task_to_json(t);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(o);
    if (!s) abort();                        /* jansson fails only on OOM here */
    return s;
}

struct sf_task *sf_task_dup(const struct sf_task *t)
{
    struct sf_task *d = sf_xcalloc(1, sizeof(*d));
    *d = *t;
    d->id = sf_xstrdup(t->id);
    d->run_id = sf_xstrdup(t->run_id);
    d->step = sf_xstrdup(t->step);
    d->run = sf_xstrdup(t->run);
    d->reply_to = sf_xstrdup(t->reply_to);
    d->template_name = sf_xstrdup(t->template_name);
    d->queue = sf_xstrdup(t->queue);
    d->callback = sf_callback_dup(t->callback);
    d->net_policy = sf_netpolicy_dup(t->net_policy);
    if (d->files) json_incref(d->files);
    if (d->env) json_incref(d->env);
    if (d->workflow) json_incref(d->workflow);
    if (d->input) json_incref(d->input);
    if (d->secrets) json_incref(d->secrets);
    if (d->inject) json_incref(d->inject);
    return d;
}

void sf_task_free(struct sf_task *t)
{
    if (!t) return;
    free(t->id);
    free(t->run_id);
    free(t->step);
    free(t->run);
    free(t->reply_to);
    free(t->template_name);
    free(t->queue);
    sf_callback_free(t->callback);
    sf_netpolicy_free(t->net_policy);
    json_decref(t->files);
    json_decref(t->env);
    json_decref(t->workflow);
    json_decref(t->input);
    json_decref(t->secrets);
    json_decref(t->inject);
    free(t);
}

/* --- results -------------------------------------------------------------- */

struct sf_result *sf_result_from_json(json_t *j, char *err, size_t n)
{
    struct sf_result *r = sf_xcalloc(1, sizeof(*r));
    char *status = NULL;
    int64_t i64 = 0;
    json_t *v;
    if (check_version(j, &r->v, err, n) < 0) goto fail;
    if (get_id(j, "task_id", ID_KEY_PART, SF_TASK_ID_MAX, &r->task_id, err, n) < 0) goto fail;
    if (get_id(j, "run_id", ID_NAME, SF_RUN_ID_MAX, &r->run_id, err, n) < 0) goto fail;
    if (get_id(j, "step", ID_NAME, SF_STEP_ID_MAX, &r->step, err, n) < 0) goto fail;
    if (get_str(j, "status", true, &status, err, n) < 0) goto fail;
    int st = sf_result_status_parse(status);
    if (st < 0) { sf_errf(err, n, "unknown status '%s'", status); goto fail; }
    r->status = (enum sf_result_status)st;
    if (get_int(j, "index", false, 0, &r->index, err, n) < 0) goto fail;
    i64 = 1;
    if (get_int(j, "attempt", false, 1, &i64, err, n) < 0) goto fail;
    r->attempt = (int)(i64 > 1000000 ? 1000000 : i64);
    i64 = 0;
    if (get_int(j, "exit_code", false, -1000000, &i64, err, n) < 0) goto fail;
    r->exit_code = (int)i64;
    if (get_int(j, "duration_ms", false, 0, &r->duration_ms, err, n) < 0) goto fail;
    if (get_str(j, "stderr_tail", false, &r->stderr_tail, err, n) < 0) goto fail;
    if (get_str(j, "worker", false, &r->worker, err, n) < 0) goto fail;
    if (get_str(j, "error", false, &r->error, err, n) < 0) goto fail;
    v = json_object_get(j, "output");
    if (v && !json_is_null(v)) r->output = json_incref(v);
    free(status);
    return r;
fail:
    free(status);
    sf_result_free(r);
    return NULL;
}

struct sf_result *sf_result_decode(const char *data, size_t len, char *err, size_t n)
{
    json_t *j = parse(data, len, err, n);
    if (!j) return NULL;
    struct sf_result *r = sf_result_from_json(j, err, n);
    json_decref(j);
    return r;
}

json_t *sf_result_to_json(const struct sf_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "v", json_integer(SF_WIRE_VERSION));
    json_object_set_new(o, "task_id", json_string(r->task_id ? r->task_id : ""));
    json_object_set_new(o, "run_id", json_string(r->run_id ? r->run_id : ""));
    json_object_set_new(o, "step", json_string(r->step ? r->step : ""));
    json_object_set_new(o, "index", json_integer(r->index));
    json_object_set_new(o, "attempt", json_integer(r->attempt));
    json_object_set_new(o, "status", json_string(sf_result_status_name(r->status)));
    json_object_set_new(o, "exit_code", json_integer(r->exit_code));
    json_object_set(o, "output", r->output ? r->output : json_null());
    json_object_set_new(o, "stderr_tail", json_string(r->stderr_tail ? r->stderr_tail : ""));
    json_object_set_new(o, "duration_ms", json_integer(r->duration_ms));
    json_object_set_new(o, "worker", json_string(r->worker ? r->worker : ""));
    if (r->error) json_object_set_new(o, "error", json_string(r->error));
    return o;
}

char *sf_result_encode(const struct sf_result *r)
{
    json_t *o = sf_result_to_json(r);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(o);
    if (!s) abort();
    return s;
}

void sf_result_free(struct sf_result *r)
{
    if (!r) return;
    free(r->task_id);
    free(r->run_id);
    free(r->step);
    free(r->stderr_tail);
    free(r->worker);
    free(r->error);
    json_decref(r->output);
    free(r);
}

struct sf_result *sf_result_for(const struct sf_task *t, enum sf_result_status st,
                                const char *worker, const char *fmt, ...)
{
    struct sf_result *r = sf_xcalloc(1, sizeof(*r));
    r->v = SF_WIRE_VERSION;
    r->task_id = sf_xstrdup(t->id);
    r->run_id = sf_xstrdup(t->run_id);
    r->step = sf_xstrdup(t->step);
    r->index = t->index;
    r->attempt = t->attempt;
    r->status = st;
    r->exit_code = -1;
    r->worker = sf_xstrdup(worker);
    r->stderr_tail = sf_xstrdup("");
    if (fmt) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        r->error = sf_xstrdup(buf);
    }
    return r;
}
