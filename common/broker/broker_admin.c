/* common/broker/broker_admin.c: the backend-neutral half of the operations ops
 * (broker.h "operations"): a clear "not supported" for backends without
 * them, the task id next to each dead letter, and the replay rewrite
 * (attempt back to 1) done here once instead of in every backend. */
#include "broker.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int unsupported(const struct sf_broker *b, const char *what, char *err, size_t errlen)
{
    sf_errf(err, errlen, "%s is not supported by the %s backend yet", what, b->ops->scheme);
    return -ENOTSUP;
}

int sf_broker_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!b->ops->workers) return unsupported(b, "listing workers", err, errlen);
    return b->ops->workers(b, out, err, errlen);
}

int sf_broker_gates(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    if (!b->ops->gates) {
        *out = json_array();
        return 0;
    }
    *out = NULL;
    return b->ops->gates(b, out, err, errlen);
}

#define SF_BROKER_RUNS_MAX 200

static json_int_t run_time(json_t *run)
{
    const char *u = json_string_value(json_object_get(run, "updated_at"));
    const char *s = json_string_value(json_object_get(run, "started_at"));
    json_int_t a = u ? strtoll(u, NULL, 10) : 0, c = s ? strtoll(s, NULL, 10) : 0;
    return a > c ? a : c;
}

static int cmp_newest(const void *x, const void *y)
{
    json_int_t a = run_time(*(json_t *const *)x), c = run_time(*(json_t *const *)y);
    return a < c ? 1 : a > c ? -1 : 0;
}

/* Backends return every run they know, in any order; the order and the cap
 * are the same for all of them, so they live here. */
int sf_broker_runs(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!b->ops->runs) return unsupported(b, "listing runs", err, errlen);
    int rc = b->ops->runs(b, out, err, errlen);
    if (rc < 0 || !*out) return rc;
    size_t n = json_array_size(*out);
    json_t **v = sf_xcalloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(*out, i));
    qsort(v, n, sizeof(*v), cmp_newest);
    json_array_clear(*out);
    for (size_t i = 0; i < n; i++) {
        if (i < SF_BROKER_RUNS_MAX) json_array_append(*out, v[i]);
        json_decref(v[i]);
    }
    free(v);
    return rc;
}

/* The raw message as a JSON object, or NULL when it is not one. */
static json_t *task_object(const char *raw)
{
    json_t *j = json_loads(raw, 0, NULL);
    if (json_is_object(j)) return j;
    json_decref(j);
    return NULL;
}

int sf_broker_dead_list(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen)
{
    size_t i;
    json_t *d;
    *out = NULL;
    if (!b->ops->dead_list) return unsupported(b, "listing dead letters", err, errlen);
    int rc = b->ops->dead_list(b, max, out, err, errlen);
    if (rc < 0) return rc;
    json_array_foreach(*out, i, d) {
        json_t *t = task_object(json_string_value(json_object_get(d, "task")));
        json_t *id = json_object_get(t, "id");
        json_object_set(d, "task_id", json_is_string(id) ? id : json_null());
        json_decref(t);
    }
    return 0;
}

/* Replay one dead letter: "attempt" back to 1 when the message is a JSON
 * object (a task that failed for good gets its full set of attempts again)
 * and its "secret_misses" dropped (it failed for want of a secret: the
 * operator has presumably given it to a worker); anything else goes back
 * byte for byte. 1 moved, 0 gone. */
static int replay(struct sf_broker *b, json_t *d, char *err, size_t errlen)
{
    const char *raw = json_string_value(json_object_get(d, "task"));
    json_t *t = task_object(raw);
    char *s = NULL;
    const char *run_id = NULL, *task_id = NULL;
    int rc;
    if (t) {
        json_object_set_new(t, "attempt", json_integer(1));
        json_object_del(t, "secret_misses");
        s = json_dumps(t, JSON_COMPACT);
        run_id = json_string_value(json_object_get(t, "run_id"));
        task_id = json_string_value(json_object_get(t, "id"));
    }
    rc = b->ops->dead_requeue(b, json_string_value(json_object_get(d, "id")), s ? s : raw,
                              strlen(s ? s : raw), run_id, task_id, err, errlen);
    free(s);
    json_decref(t);
    return rc;
}

static bool wanted(const char *id, const char *const *ids, size_t n)
{
    if (n == 0) return true;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ids[i], id)) return true;
    return false;
}

int sf_broker_dead_retry(struct sf_broker *b, const char *const *ids, size_t n, size_t *moved,
                         char *err, size_t errlen)
{
    json_t *all = NULL, *d;
    size_t i, found = 0;
    int rc;
    *moved = 0;
    if (!b->ops->dead_requeue) return unsupported(b, "replaying dead letters", err, errlen);
    if ((rc = sf_broker_dead_list(b, 0, &all, err, errlen)) < 0) return rc;
    /* Oldest first, so replayed tasks queue in the order they failed. */
    for (i = json_array_size(all); i-- > 0;) {
        d = json_array_get(all, i);
        if (!wanted(json_string_value(json_object_get(d, "id")), ids, n)) continue;
        found++;
        if ((rc = replay(b, d, err, errlen)) < 0) goto out;
        *moved += (size_t)rc;
    }
    rc = 0;
    if (n && found < n) {
        sf_errf(err, errlen, "%zu of the %zu id(s) given are not dead letters of queue '%s'",
                n - found, n, b->cfg.queue);
        rc = -ENOENT;
    }
out:
    json_decref(all);
    return rc;
}

int sf_broker_dead_purge(struct sf_broker *b, const char *const *ids, size_t n, size_t *removed,
                         char *err, size_t errlen)
{
    *removed = 0;
    if (!b->ops->dead_purge) return unsupported(b, "purging dead letters", err, errlen);
    int rc = b->ops->dead_purge(b, ids, n, err, errlen);
    if (rc < 0) return rc;
    *removed = (size_t)rc;
    if (n && (size_t)rc < n) {
        sf_errf(err, errlen, "%zu of the %zu id(s) given are not dead letters of queue '%s'",
                n - (size_t)rc, n, b->cfg.queue);
        return -ENOENT;
    }
    return 0;
}

bool sf_broker_can_serve(const struct sf_broker *b)
{
    return b->ops->sub_fetch && b->ops->sub_ack && b->ops->run_doc_put && b->ops->run_doc_get;
}
