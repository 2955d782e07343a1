/* common/broker/broker.c: backend choice by URL scheme, and the task/result helpers
 * every backend shares: wire encoding plus the claim-check rewrite (large
 * "input"/"output" values move to blobs, the message carries "<field>_ref").
 * Backends only move bytes; everything about the message format is here. */
#include "broker.h"
#include "callback.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sf_delivery_clear(struct sf_delivery *d)
{
    if (!d) return;
    free(d->data);
    memset(d, 0, sizeof(*d));
}

bool sf_broker_transient(int rc)
{
    return rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -EAGAIN ||
           rc == -EPIPE || rc == -EIO;
}

static int reply_prefixes(struct sf_broker *b, const char *list, char *err, size_t errlen);

struct sf_broker *sf_broker_new(const char *url, const struct sf_broker_cfg *cfg,
                                char *err, size_t errlen)
{
    if (!url || !*url) {
        sf_errf(err, errlen, "no broker URL given (--broker redis://host:port)");
        return NULL;
    }
    struct sf_broker *b = NULL;
    if (!strncmp(url, "redis://", 8)) b = sf_broker_redis_new(url, cfg, err, errlen);
    else if (!strncmp(url, "kafka://", 8)) b = sf_broker_kafka_new(url, cfg, err, errlen);
    else goto unknown;
    if (b && cfg->reply_prefixes && reply_prefixes(b, cfg->reply_prefixes, err, errlen) < 0) {
        sf_broker_free(b);
        return NULL;
    }
    return b;
unknown:;
    char *shown = sf_redact_url(url);
    sf_errf(err, errlen, "unsupported broker URL '%s' (expected redis://[user:pass@]host:port[/db] or kafka://host:port[,host:port...])",
            shown);
    free(shown);
    return NULL;
}

void sf_broker_free(struct sf_broker *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->reply_ok.n; i++) free(b->reply_ok.v[i]);
    free(b->reply_ok.v);
    b->ops->free(b);
}

static const char *unsupported_fields(const struct sf_concurrency *c, const struct sf_rate *r,
                                      int priority)
{
    if (c->key[0]) return "concurrency";
    if (r->key[0]) return "rate";
    if (priority > 0) return "priority";
    return NULL;
}

int sf_broker_task_supported(const struct sf_broker *b, const struct sf_task *t, char *err,
                             size_t errlen)
{
    const char *f = b->ops->gate_enter ? NULL : unsupported_fields(&t->concurrency, &t->rate, t->priority);
    if (!f) return 0;
    sf_errf(err, errlen, "'%s' is not supported by the %s backend (concurrency, rate and priority "
            "need Redis: docs/kafka.md); refused rather than ignored", f, b->ops->scheme);
    return -ENOTSUP;
}

int sf_broker_workflow_supported(const struct sf_broker *b, const struct sf_workflow *wf,
                                 int priority, char *err, size_t errlen)
{
    static const struct sf_concurrency none_c;
    static const struct sf_rate none_r;
    const char *f;
    if (b->ops->gate_enter) return 0;
    if ((f = unsupported_fields(&none_c, &none_r, priority))) {
        sf_errf(err, errlen, "run priority %d is not supported by the %s backend (concurrency, rate "
                "and priority need Redis: docs/kafka.md)", priority, b->ops->scheme);
        return -ENOTSUP;
    }
    for (size_t i = 0; i < wf->n_steps; i++) {
        const struct sf_step *st = &wf->steps[i];
        if (!(f = unsupported_fields(&st->concurrency, &st->rate, st->priority))) continue;
        sf_errf(err, errlen, "step '%s': '%s' is not supported by the %s backend (concurrency, rate "
                "and priority need Redis: docs/kafka.md); nothing was published", st->id, f,
                b->ops->scheme);
        return -ENOTSUP;
    }
    return 0;
}

int sf_broker_check(struct sf_broker *b, int64_t wait_ms, bool (*stop)(void *), void *stop_arg,
                    char *err, size_t errlen)
{
    char what[300];
    snprintf(what, sizeof(what), "broker %s not reachable", b->url_redacted);
    struct sf_retry rt = SF_RETRY(b->cfg.log, what, wait_ms);
    rt.stop = stop;
    rt.stop_arg = stop_arg;
    int rc;
    while ((rc = b->ops->check(b, err, errlen)) < 0 && sf_broker_transient(rc) &&
           sf_retry_wait(&rt, err)) {}
    return rc;
}

int sf_broker_open(const struct sf_broker_flags *f, const struct sf_broker_cfg *cfg,
                   int64_t wait_ms, bool (*stop)(void *), void *stop_arg, struct sf_broker **out,
                   char *err, size_t errlen)
{
    struct sf_broker_cfg bcfg = cfg ? *cfg : (struct sf_broker_cfg){0};
    struct sf_broker *b;
    char msg[600];
    int rc;
    *out = NULL;
    if (f->queue && !sf_valid_key_part(f->queue, SF_QUEUE_MAX)) {
        sf_errf(err, errlen, "--queue '%.100s': use 1 to %d letters, digits, '_', '-', '.', ':'",
                f->queue, SF_QUEUE_MAX);
        return -EINVAL;
    }
    bcfg.queue = f->queue;
    bcfg.kafka_config = f->kafka_config.v;
    bcfg.n_kafka_config = f->kafka_config.n;
    bcfg.reply_prefixes = f->reply_prefixes;
    if (!(b = sf_broker_new(f->url, &bcfg, err, errlen))) return -EINVAL;
    if ((rc = sf_broker_check(b, wait_ms, stop, stop_arg, err, errlen)) < 0) {
        snprintf(msg, sizeof(msg), "broker %s: %s", b->url_redacted, err);
        sf_strlcpy(err, msg, errlen);
        sf_broker_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

static size_t threshold(const struct sf_broker *b)
{
    return b->cfg.claim_check_bytes ? b->cfg.claim_check_bytes : SF_BROKER_DEFAULT_CLAIM_CHECK;
}

int sf_broker_claim_check(struct sf_broker *b, json_t *obj, const char *field,
                          char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, field);
    char ref[256], key[64];
    int rc;
    if (!v || json_is_null(v)) return 0;
    /* Cheap size probe first: only values that might be large are dumped. */
    size_t sz = json_dumpb(v, NULL, 0, JSON_ENCODE_ANY | JSON_COMPACT);
    if (sz <= threshold(b)) return 0;
    char *buf = sf_xmalloc(sz + 1);
    json_dumpb(v, buf, sz, JSON_ENCODE_ANY | JSON_COMPACT);
    rc = b->ops->blob_put(b, buf, sz, ref, sizeof(ref), err, errlen);
    free(buf);
    if (rc < 0) return rc;
    snprintf(key, sizeof(key), "%s_ref", field);
    json_object_set_new(obj, field, json_null());
    json_object_set_new(obj, key, json_string(ref));
    return 1;
}

int sf_broker_claim_resolve(struct sf_broker *b, json_t *obj, const char *field,
                            char *err, size_t errlen)
{
    char key[64];
    snprintf(key, sizeof(key), "%s_ref", field);
    json_t *ref = json_object_get(obj, key);
    char *data = NULL;
    size_t len = 0;
    json_error_t je;
    int rc;
    if (!ref || json_is_null(ref)) return 0;
    if (!json_is_string(ref)) {
        sf_errf(err, errlen, "field '%s' must be a string", key);
        return -EINVAL;
    }
    rc = b->ops->blob_get(b, json_string_value(ref), &data, &len, err, errlen);
    if (rc == -ENOENT) {
        sf_errf(err, errlen, "%s '%s' not found (expired or never stored)", key,
                json_string_value(ref));
        return -EINVAL;
    }
    if (rc < 0) return rc;
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &je);
    free(data);
    if (!v) {
        sf_errf(err, errlen, "%s: stored value is not JSON: %s", key, je.text);
        return -EINVAL;
    }
    json_object_set_new(obj, field, v);
    json_object_del(obj, key);
    return 1;
}

int sf_broker_publish_task(struct sf_broker *b, const struct sf_task *t, char *err, size_t errlen)
{
    json_t *j;
    char *s = NULL;
    int rc = sf_broker_task_supported(b, t, err, errlen);
    if (rc < 0) return rc;
    j = sf_task_to_json(t);
    rc = sf_broker_claim_check(b, j, "input", err, errlen);
    if (rc < 0) goto out;
    s = json_dumps(j, JSON_COMPACT);
    rc = b->ops->publish(b, t->run_id, t->id, t->priority, s, strlen(s), err, errlen);
out:
    free(s);
    json_decref(j);
    return rc;
}

static struct sf_task *decode_task(struct sf_broker *b, const char *data, size_t len,
                                   bool *transient, char *err, size_t errlen)
{
    struct sf_task *t = NULL;
    json_error_t je;
    json_t *j;
    /* Only messages that carry a reference are parsed twice. */
    if (!memmem(data, len, "\"input_ref\"", 11)) return sf_task_decode(data, len, err, errlen);
    j = json_loadb(data, len, JSON_DECODE_ANY, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return sf_task_decode(data, len, err, errlen);     /* for its message */
    }
    int rc = sf_broker_claim_resolve(b, j, "input", err, errlen);
    if (rc < 0) {
        *transient = sf_broker_transient(rc);
        goto out;
    }
    t = sf_task_from_json(j, err, errlen);
out:
    json_decref(j);
    return t;
}

struct sf_task *sf_broker_decode_task(struct sf_broker *b, const char *data, size_t len,
                                      bool *transient, char *err, size_t errlen)
{
    *transient = false;
    struct sf_task *t = decode_task(b, data, len, transient, err, errlen);
    if (t && t->reply_to && sf_broker_reply_to_check(b, t->reply_to, err, errlen) < 0) {
        sf_task_free(t);
        return NULL;
    }
    return t;
}

/* --- reply_to ------------------------------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

int sf_broker_reply_to_check(const struct sf_broker *b, const char *reply_to, char *err,
                             size_t errlen)
{
    const char *ns = b->ops->reply_ns ? b->ops->reply_ns : "";
    size_t n = strlen(reply_to);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)reply_to[i] <= ' ' || reply_to[i] == 0x7f) {
            sf_errf(err, errlen, "reply_to must not contain spaces or control characters");
            return -EPERM;
        }
    if (n > 256) {
        sf_errf(err, errlen, "reply_to is longer than 256 bytes");
        return -EPERM;
    }
    if (*ns && starts_with(reply_to, ns) && n > strlen(ns)) return 0;
    for (size_t i = 0; i < b->reply_ok.n; i++)
        if (starts_with(reply_to, b->reply_ok.v[i]) && n > strlen(b->reply_ok.v[i])) return 0;
    sf_errf(err, errlen, "reply_to '%.100s' is outside the reply namespace '%s*'%s (the operator may "
            "allow more with --reply-prefixes)", reply_to, ns, b->reply_ok.n ? " and the allowed prefixes" : "");
    return -EPERM;
}

/* The operator's prefixes: each must stay clear of the backend's own names,
 * or a reply could overwrite a task queue or a result stream. */
static int reply_prefixes(struct sf_broker *b, const char *list, char *err, size_t errlen)
{
    const char *own = b->ops->own_ns ? b->ops->own_ns : "", *ns = b->ops->reply_ns ? b->ops->reply_ns : "";
    char *copy = sf_xstrdup(list), *save = NULL;
    int rc = 0;
    for (char *p = strtok_r(copy, ", ", &save); p && rc == 0; p = strtok_r(NULL, ", ", &save)) {
        bool overlaps = *own && (starts_with(p, own) || starts_with(own, p));
        if (overlaps && !starts_with(p, ns)) {
            sf_errf(err, errlen, "--reply-prefixes: '%s' would let a reply_to reach sandfleet's own %s "
                    "names ('%s*'); pick a prefix outside them", p, b->ops->scheme, own);
            rc = -EINVAL;
            break;
        }
        b->reply_ok.v = sf_xrealloc(b->reply_ok.v, (b->reply_ok.n + 2) * sizeof(char *));
        b->reply_ok.v[b->reply_ok.n++] = sf_xstrdup(p);
        b->reply_ok.v[b->reply_ok.n] = NULL;
    }
    free(copy);
    return rc;
}

int sf_broker_complete_task(struct sf_broker *b, const char *handle, const struct sf_task *t,
                            const struct sf_result *r, const char *raw, size_t raw_len,
                            const char *dead_reason, struct sf_delivery *next, char *err,
                            size_t errlen)
{
    json_t *j = sf_result_to_json(r);
    char *s = NULL, *cb_id = NULL, *cb_rec = NULL;
    int rc = sf_broker_claim_check(b, j, "output", err, errlen);
    if (rc < 0) goto out;
    s = json_dumps(j, JSON_COMPACT);
    struct sf_completion c = {
        .task_id = t->id, .run_id = t->run_id, .reply_to = t->reply_to,
        .result = s, .result_len = strlen(s),
        .dead_raw = dead_reason ? raw : NULL, .dead_len = raw_len, .dead_reason = dead_reason,
        .next = next,
    };
    /* The callback is queued in the step that stores the result, so a crash
     * cannot store one without the other (docs/protocol.md §8). */
    if (t->callback && sf_broker_has_callbacks(b)) {
        cb_id = sf_callback_task_id(t->id, r->attempt);
        cb_rec = sf_callback_record_new(t->callback, cb_id, "task", t->run_id, t->id, s, strlen(s),
                                        sf_wall_ms());
        c.callback_id = cb_id;
        c.callback = cb_rec;
        c.callback_len = strlen(cb_rec);
    } else if (t->callback) {
        SF_LOG(b->cfg.log, SF_LOG_WARN, t->run_id, t->id,
               "callback not queued: the %s backend does not support callbacks yet", b->ops->scheme);
    }
    rc = b->ops->complete(b, handle, &c, err, errlen);
out:
    free(cb_id);
    free(cb_rec);
    free(s);
    json_decref(j);
    return rc;
}

struct sf_result *sf_broker_decode_result(struct sf_broker *b, const char *data, size_t len,
                                          char *err, size_t errlen)
{
    struct sf_result *r = NULL;
    json_error_t je;
    json_t *j;
    if (!memmem(data, len, "\"output_ref\"", 12)) return sf_result_decode(data, len, err, errlen);
    j = json_loadb(data, len, JSON_DECODE_ANY, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return sf_result_decode(data, len, err, errlen);
    }
    if (sf_broker_claim_resolve(b, j, "output", err, errlen) >= 0)
        r = sf_result_from_json(j, err, errlen);
    json_decref(j);
    return r;
}

/* --- run ownership ---------------------------------------------------------------- */

void sf_run_owner_clear(struct sf_run_owner *o)
{
    if (!o) return;
    free(o->owner);
    free(o->claim);
    free(o->workflow);
    memset(o, 0, sizeof(*o));
}

int sf_broker_claim_run(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                        bool legacy_ok, char *err, size_t errlen)
{
    struct sf_run_owner found = {0};
    if (!b->ops->run_claim) {
        sf_errf(err, errlen, "run ownership is not supported by the %s backend", b->ops->scheme);
        return -ENOTSUP;
    }
    int rc = b->ops->run_claim(b, run_id, mine, &found, err, errlen);
    if (rc <= 0) goto out;
    if (found.claim ? strcmp(found.claim, mine->claim) : !legacy_ok) {
        sf_errf(err, errlen, "run '%s' exists already%s%s%s", run_id, found.owner ? " (owner " : "",
                found.owner ? found.owner : "", found.owner ? ")" : " (started before runs had owners)");
        rc = -EEXIST;
    } else if (found.workflow && mine->workflow && strcmp(found.workflow, mine->workflow)) {
        sf_errf(err, errlen, "run '%s' belongs to workflow '%s', not '%s'", run_id, found.workflow,
                mine->workflow);
        rc = -EINVAL;
    } else {
        rc = 1;
    }
out:
    sf_run_owner_clear(&found);
    return rc;
}
