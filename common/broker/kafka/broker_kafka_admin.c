/* common/broker/kafka/broker_kafka_admin.c: the operations side of the Kafka broker
 * (broker.h "operations"; docs/kafka.md §8 for operators).
 *
 * Design. These serve people (status, dead) and are read-mostly, so they
 * read topics from the start with short-lived readers rather than keep
 * state of their own:
 * - workers: the members of the worker consumer group (ListGroups): the
 *   group is the registry, its session timeout the liveness. Slots, busy
 *   and done counts are not known to the group and are left out.
 * - runs: the "<run_id>/f/<field>" keys of the compacted runs topic, every
 *   partition, the last value per key.
 * - dead letters: sandfleet.tasks.dlq is append-only (one partition, kept
 *   forever), so an operator's replay or purge is recorded beside it, in the
 *   compacted sandfleet.tasks.dlq.handled (key = the dead letter's offset,
 *   value "requeued" or "purged"). Listing and counting skip handled
 *   offsets. A replay produces the rewritten task to the tasks topic first
 *   and marks it handled after: a crash between leaves it listed (a second
 *   replay runs it twice), never lost. Two operators replaying the same id
 *   at the same moment both move it: Kafka has no compare-and-set.
 * - run documents: key "<run_id>/doc" in the runs topic (ttl as the run).
 * Threads: every function may be called from any thread (the producer is
 * thread-safe; readers are per call). */
#include "broker_kafka.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* --- a compacted topic as a table --------------------------------------------------- */

static int table_cb(const rd_kafka_message_t *m, void *arg)
{
    json_t *t = arg;
    if (!m->key) return 0;
    char *k = sf_xstrndup(m->key, m->key_len);
    if (!m->payload) {
        json_object_del(t, k);
    } else {
        json_t *v = json_stringn(m->payload, m->len);
        json_object_set_new(t, k, v ? v : json_string("(not UTF-8)"));
    }
    free(k);
    return 0;
}

int sf_kafka_read_table(struct kafka_broker *kb, const char *topic, int32_t part, json_t **out,
                        char *err, size_t errlen)
{
    json_t *t = json_object();
    int rc = sf_kafka_scan(kb, topic, part, 0, table_cb, t, err, errlen);
    if (rc < 0) {
        json_decref(t);
        t = NULL;
    }
    *out = t;
    return rc;
}

/* --- workers ------------------------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

/* A JSON array sorted by cmp (elements kept). */
static json_t *sorted(json_t *arr, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(arr);
    json_t **v = sf_xcalloc(n ? n : 1, sizeof(*v)), *out = json_array();
    for (size_t i = 0; i < n; i++) v[i] = json_array_get(arr, i);
    qsort(v, n, sizeof(*v), cmp);
    for (size_t i = 0; i < n; i++) json_array_append(out, v[i]);
    free(v);
    json_decref(arr);
    return out;
}

int sf_kafka_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    const struct rd_kafka_group_list *gl = NULL;
    int rc;
    *out = NULL;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(kb->producer, kb->group, &gl, 10000);
    if (e) {
        sf_errf(err, errlen, "describing group %s: %s", kb->group, rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
    json_t *arr = json_array();
    for (int i = 0; i < gl->group_cnt; i++) {
        for (int j = 0; j < gl->groups[i].member_cnt; j++) {
            const struct rd_kafka_group_member_info *mi = &gl->groups[i].members[j];
            /* client.id is "sandfleet-<worker id>" (broker_kafka.c). */
            const char *id = mi->client_id ? mi->client_id : "";
            if (!strncmp(id, "sandfleet-", 10)) id += 10;
            const char *host = mi->client_host ? mi->client_host : "";
            if (*host == '/') host++;
            /* A member is live by definition: the group drops it after its
             * session timeout. */
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I}", "id", id, "host", host,
                                                 "member_id", mi->member_id ? mi->member_id : "",
                                                 "heartbeat_age_ms", (json_int_t)0));
        }
    }
    rd_kafka_group_list_destroy(gl);
    *out = sorted(arr, cmp_id);
    return 0;
}

/* --- runs ---------------------------------------------------------------------------- */

static int runs_cb(const rd_kafka_message_t *m, void *arg)
{
    json_t *runs = arg;
    if (!m->key) return 0;
    char *k = sf_xstrndup(m->key, m->key_len), *f = NULL;
    for (char *s = strstr(k, "/f/"); s; s = strstr(s + 1, "/f/")) f = s;
    if (f && f != k && f[3]) {
        *f = '\0';
        json_t *run = json_object_get(runs, k);
        if (!run && m->payload) {
            run = json_pack("{s:s}", "run_id", k);
            json_object_set_new(runs, k, run);
        }
        json_t *v = m->payload ? json_stringn(m->payload, m->len) : NULL;
        if (!run) {}
        else if (v) json_object_set_new(run, f + 3, v);
        else json_object_del(run, f + 3);
    }
    free(k);
    return 0;
}

int sf_kafka_runs(struct sf_broker *b, json_t **out, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    json_t *runs = json_object(), *arr = json_array(), *v;
    const char *k;
    int rc;
    *out = NULL;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) goto out;
    pthread_mutex_lock(&kb->mu);
    int n = kb->n_runs_parts;
    pthread_mutex_unlock(&kb->mu);
    for (int p = 0; p < n && rc == 0; p++)
        rc = sf_kafka_scan(kb, kb->t_runs, p, 0, runs_cb, runs, err, errlen);
    json_object_foreach(runs, k, v) json_array_append(arr, v);
out:
    json_decref(runs);
    if (rc < 0) json_decref(arr);
    else *out = arr;
    return rc;
}

/* --- task dead letters ------------------------------------------------------------------ */

struct dlq_ctx {
    json_t *handled;             /* offset text -> "requeued" | "purged" */
    json_t *list;                /* unhandled dead letters, oldest first */
};

static int dlq_cb(const rd_kafka_message_t *m, void *arg)
{
    struct dlq_ctx *dc = arg;
    char id[24], *reason = sf_kafka_header(m, SF_KAFKA_H_REASON);
    char *at = sf_kafka_header(m, SF_KAFKA_H_FAILED_AT);
    snprintf(id, sizeof(id), "%" PRId64, m->offset);
    if (!json_object_get(dc->handled, id)) {
        json_t *task = json_stringn(m->payload ? m->payload : "", m->payload ? m->len : 0);
        json_t *why = json_string(reason ? reason : "");
        int64_t t = at ? strtoll(at, NULL, 10) : rd_kafka_message_timestamp(m, NULL);
        json_array_append_new(dc->list, json_pack("{s:s, s:I, s:o, s:o}", "id", id, "time_ms",
                                                  (json_int_t)t, "reason", why ? why : json_string(""),
                                                  "task", task ? task : json_string("(not UTF-8)")));
    }
    free(reason);
    free(at);
    return 0;
}

/* Unhandled dead letters, oldest first. */
static int dlq_read(struct kafka_broker *kb, json_t **list, char *err, size_t errlen)
{
    struct dlq_ctx dc = { NULL, json_array() };
    int rc;
    *list = NULL;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0 ||
        (rc = sf_kafka_read_table(kb, kb->t_dlq_handled, 0, &dc.handled, err, errlen)) < 0 ||
        (rc = sf_kafka_scan(kb, kb->t_dlq, 0, 0, dlq_cb, &dc, err, errlen)) < 0) {
        json_decref(dc.handled);
        json_decref(dc.list);
        return rc;
    }
    json_decref(dc.handled);
    *list = dc.list;
    return 0;
}

int sf_kafka_dead_list(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen)
{
    json_t *all;
    int rc = dlq_read(KB(b), &all, err, errlen);
    *out = NULL;
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (size_t i = json_array_size(all); i-- > 0 && (!max || json_array_size(arr) < max);)
        json_array_append(arr, json_array_get(all, i));
    json_decref(all);
    *out = arr;
    return 0;
}

static bool listed(json_t *list, const char *id)
{
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
        if (!strcmp(json_string_value(json_object_get(d, "id")), id)) return true;
    return false;
}

static int mark_handled(struct kafka_broker *kb, const char *id, const char *how, char *err, size_t errlen)
{
    return sf_kafka_produce_sync(kb, kb->t_dlq_handled, 0, id, strlen(id), how, strlen(how), NULL,
                                 NULL, NULL, err, errlen);
}

/* run_id/task_id: Kafka keeps no completion marker (readers keep the first
 * result per task id), so there is nothing to forget. */
int sf_kafka_dead_requeue(struct sf_broker *b, const char *id, const char *task, size_t len,
                          const char *run_id, const char *task_id, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    json_t *all;
    (void)run_id;
    int rc = dlq_read(kb, &all, err, errlen);
    if (rc < 0) return rc;
    bool there = listed(all, id);
    json_decref(all);
    if (!there) return 0;
    rc = sf_kafka_produce_sync(kb, kb->t_tasks, RD_KAFKA_PARTITION_UA, task_id,
                               task_id ? strlen(task_id) : 0, task, len, NULL, NULL, NULL, err, errlen);
    if (rc == 0) rc = mark_handled(kb, id, "requeued", err, errlen);
    return rc < 0 ? rc : 1;
}

int sf_kafka_dead_purge(struct sf_broker *b, const char *const *ids, size_t n, char *err,
                        size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    json_t *all, *d;
    size_t i;
    int rc = dlq_read(kb, &all, err, errlen), gone = 0;
    if (rc < 0) return rc;
    json_array_foreach(all, i, d) {
        const char *id = json_string_value(json_object_get(d, "id"));
        bool want = n == 0;
        for (size_t k = 0; k < n && !want; k++) want = !strcmp(ids[k], id);
        if (!want) continue;
        if ((rc = mark_handled(kb, id, "purged", err, errlen)) < 0) break;
        gone++;
    }
    json_decref(all);
    return rc < 0 ? rc : gone;
}

int sf_kafka_dead_count(struct kafka_broker *kb, int64_t *count, char *err, size_t errlen)
{
    int64_t lo = 0, hi = 0;
    json_t *handled, *v;
    const char *k;
    int rc;
    *count = 0;
    if ((rc = sf_kafka_watermarks(kb->producer, kb->t_dlq, 0, &lo, &hi, err, errlen)) < 0) return rc;
    if ((rc = sf_kafka_read_table(kb, kb->t_dlq_handled, 0, &handled, err, errlen)) < 0) return rc;
    *count = hi - lo;
    json_object_foreach(handled, k, v) {
        int64_t off = strtoll(k, NULL, 10);
        if (off >= lo && off < hi) (*count)--;
    }
    json_decref(handled);
    return 0;
}

/* --- run documents ------------------------------------------------------------------------ */

int sf_kafka_run_doc_put(struct sf_broker *b, const char *run_id, const char *doc, size_t len,
                         const char *reply_to, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    char *key = sf_xasprintf("%s/doc", run_id);
    rc = sf_kafka_produce_sync(kb, kb->t_runs, sf_kafka_runs_partition(kb, run_id), key, strlen(key),
                               doc, len, NULL, NULL, NULL, err, errlen);
    free(key);
    if (rc < 0 || !reply_to) return rc;
    /* On reply_to: key = run id, value = the document (as results are). The
     * runs topic is the record: a reply topic that is missing (brokers seldom
     * auto-create) or refuses the message is logged and does not hold the
     * submission unacked, as workers treat a task's reply_to. */
    struct kafka_ticket *tk = sf_kafka_ticket_new();
    char xerr[256];
    int xrc = sf_kafka_produce(kb, reply_to, RD_KAFKA_PARTITION_UA, run_id, strlen(run_id), doc, len,
                               NULL, tk, xerr, sizeof(xerr));
    if (xrc == 0) xrc = sf_kafka_ticket_wait(tk, 5000, xerr, sizeof(xerr));
    if (xrc < 0) SF_LOG(b->cfg.log, SF_LOG_WARN, run_id, NULL, "reply_to %s: %s", reply_to, xerr);
    sf_kafka_ticket_unref(tk);
    return 0;
}

struct doc_ctx {
    const char *key;
    char *doc;
};

static int doc_cb(const rd_kafka_message_t *m, void *arg)
{
    struct doc_ctx *dc = arg;
    if (!m->key || m->key_len != strlen(dc->key) || memcmp(m->key, dc->key, m->key_len)) return 0;
    free(dc->doc);
    dc->doc = m->payload ? sf_xstrndup(m->payload, m->len) : NULL;
    return 0;
}

int sf_kafka_run_doc_get(struct sf_broker *b, const char *run_id, char **doc, char *err,
                         size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc;
    *doc = NULL;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    char *key = sf_xasprintf("%s/doc", run_id);
    struct doc_ctx dc = { key, NULL };
    rc = sf_kafka_scan(kb, kb->t_runs, sf_kafka_runs_partition(kb, run_id), 0, doc_cb, &dc, err, errlen);
    free(key);
    if (rc < 0) {
        free(dc.doc);
        return rc;
    }
    *doc = dc.doc;
    return 0;
}
