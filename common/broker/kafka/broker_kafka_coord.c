/* common/broker/kafka/broker_kafka_coord.c: the coordinator side of the Kafka broker.
 *
 * Design.
 * - Results: topic "sandfleet.results", key = run_id, so a run's results
 *   share one partition (murmur2, as the Java client picks it). The reader
 *   assign()s that one partition (no consumer group, nothing committed: the
 *   cursor is the next offset, kept by the caller) and skips other runs'
 *   keys. Reading from the start replays everything a resumed coordinator
 *   needs. Duplicates (a task redone after a crash or rebalance) are dropped
 *   here by task id: the first result wins, as with Redis.
 * - Run state: compacted topic "sandfleet.runs" (cleanup.policy
 *   compact,delete; retention = ttl). Keys "<run_id>/f/<field>" hold state
 *   fields, "<run_id>/p/<task_id>" mark a published task. All keys of a run
 *   go to partition murmur2(run_id) % N, so loading a run reads one
 *   partition once; after that the run lives in a cache here until
 *   run_forget (entries are reference-counted: a forgotten one goes when
 *   its last user lets go).
 * - Claims (run ownership): Kafka has no compare-and-set, but a partition
 *   is a totally ordered log. A claimant appends "<run_id>/c/<nonce>" =
 *   {"owner","claim","workflow"} to the run's partition, then reads the
 *   partition up to its own record: the first claim record of the run in
 *   the log wins, provided no other record of the run comes before it (then
 *   the run existed before claims and nobody wins). Every reader of the log
 *   reaches the same verdict, so two serve instances claiming one id at the
 *   same moment agree on the winner. Keys are unique per attempt, so
 *   compaction keeps every claim record (and their order).
 * - Publish does not wait for the broker: the task is produced, and its
 *   delivery report writes the published marker. A coordinator killed in
 *   between publishes the task again on resume (a duplicate run of an
 *   idempotent task), never loses one.
 * - Blobs (claim-check): topic "sandfleet.blobs" (max.message.bytes 64 MiB,
 *   retention = ttl); the reference names partition and offset:
 *   "kafka:sandfleet.blobs/<partition>/<offset>/<key>".
 */
#include "broker_kafka.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kafka_run {
    char *run_id;
    json_t *fields;              /* field -> string */
    json_t *published;           /* task id -> true */
    int refs;                    /* users between get_run and put_run (kb->mu) */
    bool forgotten;              /* unlinked by run_forget: freed at refs 0 */
    struct kafka_run *next;
};

/* --- run state ----------------------------------------------------------------- */

struct load_ctx {
    const char *run_id;
    size_t idlen;
    json_t *fields, *published;
    bool any;                    /* a record of the run was seen */
    int64_t claim_off;           /* offset of the winning claim, -1: none */
};

/* The winning claim's values become the owner/claim/workflow fields. */
static void take_claim(struct load_ctx *lc, const rd_kafka_message_t *m)
{
    json_t *c = json_loadb(m->payload, m->len, 0, NULL);
    static const char *const keys[] = { "owner", "claim", "workflow" };
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(c, keys[i]));
        if (v && (i < 2 || !json_object_get(lc->fields, keys[i])))
            json_object_set_new(lc->fields, keys[i], json_string(v));
    }
    json_decref(c);
    lc->claim_off = m->offset;
}

static int load_cb(const rd_kafka_message_t *m, void *arg)
{
    struct load_ctx *lc = arg;
    const char *k = m->key;
    if (!k || m->key_len < lc->idlen + 3 || memcmp(k, lc->run_id, lc->idlen) || k[lc->idlen] != '/')
        return 0;
    char *rest = sf_xstrndup(k + lc->idlen + 1, m->key_len - lc->idlen - 1);
    json_t *into = !strncmp(rest, "f/", 2) ? lc->fields : !strncmp(rest, "p/", 2) ? lc->published : NULL;
    if (!strncmp(rest, "c/", 2)) {
        /* Only a claim that comes first counts (see the design note). */
        if (!lc->any && m->payload) take_claim(lc, m);
    } else if (into && !m->payload) {
        json_object_del(into, rest + 2);                                 /* tombstone */
    } else if (into == lc->fields) {
        json_object_set_new(into, rest + 2, json_stringn(m->payload, m->len));
    } else if (into) {
        json_object_set_new(into, rest + 2, json_true());
    }
    lc->any = true;
    free(rest);
    return 0;
}

static int32_t runs_partition(struct kafka_broker *kb, const char *run_id)
{
    pthread_mutex_lock(&kb->mu);
    int n = kb->n_runs_parts;
    pthread_mutex_unlock(&kb->mu);
    return sf_kafka_partition_for(run_id, n > 0 ? n : 1);
}

int32_t sf_kafka_runs_partition(struct kafka_broker *kb, const char *run_id)
{
    return runs_partition(kb, run_id);
}

static void run_free(struct kafka_run *r)
{
    free(r->run_id);
    json_decref(r->fields);
    json_decref(r->published);
    free(r);
}

/* Holds kb->mu. */
static struct kafka_run *cached(struct kafka_broker *kb, const char *run_id)
{
    struct kafka_run *r;
    for (r = kb->runs; r && strcmp(r->run_id, run_id); r = r->next) {}
    return r;
}

/* What a scan loaded becomes the cached run, unless another thread cached
 * it meanwhile. Returns it with a reference. Takes lc's objects. */
static struct kafka_run *cache_install(struct kafka_broker *kb, struct load_ctx *lc)
{
    pthread_mutex_lock(&kb->mu);
    struct kafka_run *r = cached(kb, lc->run_id);
    if (!r) {
        r = sf_xcalloc(1, sizeof(*r));
        r->run_id = sf_xstrdup(lc->run_id);
        r->fields = lc->fields;
        r->published = lc->published;
        lc->fields = lc->published = NULL;
        r->next = kb->runs;
        kb->runs = r;
    }
    r->refs++;
    pthread_mutex_unlock(&kb->mu);
    json_decref(lc->fields);
    json_decref(lc->published);
    lc->fields = lc->published = NULL;
    return r;
}

static void put_run(struct kafka_broker *kb, struct kafka_run *r)
{
    pthread_mutex_lock(&kb->mu);
    if (--r->refs == 0 && r->forgotten) run_free(r);
    pthread_mutex_unlock(&kb->mu);
}

/* The cached run (loaded from the topic on first use), with a reference:
 * give it back with put_run. kb->mu is NOT held on return. */
static int get_run(struct kafka_broker *kb, const char *run_id, struct kafka_run **out,
                   char *err, size_t errlen)
{
    struct kafka_run *r;
    int rc;
    pthread_mutex_lock(&kb->mu);
    if ((r = cached(kb, run_id))) r->refs++;
    pthread_mutex_unlock(&kb->mu);
    if (r) { *out = r; return 0; }
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    struct load_ctx lc = { run_id, strlen(run_id), json_object(), json_object(), false, -1 };
    rc = sf_kafka_scan(kb, kb->t_runs, runs_partition(kb, run_id), 0, load_cb, &lc, err, errlen);
    if (rc < 0) {
        json_decref(lc.fields);
        json_decref(lc.published);
        return rc;
    }
    *out = cache_install(kb, &lc);
    return 0;
}

/* Holds kb->mu. */
static void forget_locked(struct kafka_broker *kb, const char *run_id)
{
    for (struct kafka_run **pp = &kb->runs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->run_id, run_id)) continue;
        struct kafka_run *r = *pp;
        *pp = r->next;
        r->forgotten = true;
        if (r->refs == 0) run_free(r);
        return;
    }
}

void sf_kafka_run_forget(struct sf_broker *b, const char *run_id)
{
    struct kafka_broker *kb = KB(b);
    pthread_mutex_lock(&kb->mu);
    forget_locked(kb, run_id);
    pthread_mutex_unlock(&kb->mu);
}

int sf_kafka_run_claim(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                       struct sf_run_owner *found, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    char nonce[33];
    int32_t part = 0;
    int64_t off = -1;
    int rc;
    memset(found, 0, sizeof(*found));
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    sf_random_hex(nonce, sizeof(nonce), 32);
    char *key = sf_xasprintf("%s/c/%s", run_id, nonce);
    json_t *v = json_pack("{s:s, s:s, s:s}", "owner", mine->owner, "claim", mine->claim, "workflow",
                          mine->workflow ? mine->workflow : "");
    char *val = json_dumps(v, JSON_COMPACT);
    rc = sf_kafka_produce_sync(kb, kb->t_runs, runs_partition(kb, run_id), key, strlen(key), val,
                               strlen(val), NULL, &part, &off, err, errlen);
    free(key);
    free(val);
    json_decref(v);
    if (rc < 0) return rc;
    /* Read the run's records up to ours: the first claim wins. */
    struct load_ctx lc = { run_id, strlen(run_id), json_object(), json_object(), false, -1 };
    if ((rc = sf_kafka_scan(kb, kb->t_runs, part, 0, load_cb, &lc, err, errlen)) < 0) {
        json_decref(lc.fields);
        json_decref(lc.published);
        return rc;
    }
    bool won = lc.claim_off == off;
    if (!won) {
        found->owner = sf_xstrdup(json_string_value(json_object_get(lc.fields, "owner")));
        found->claim = sf_xstrdup(json_string_value(json_object_get(lc.fields, "claim")));
        found->workflow = sf_xstrdup(json_string_value(json_object_get(lc.fields, "workflow")));
    }
    pthread_mutex_lock(&kb->mu);               /* what we read is newer than any cached copy */
    forget_locked(kb, run_id);
    pthread_mutex_unlock(&kb->mu);
    put_run(kb, cache_install(kb, &lc));
    return won ? 0 : 1;
}

int sf_kafka_state_get(struct sf_broker *b, const char *run_id, const char *field, char **val,
                       char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_run *r;
    *val = NULL;
    int rc = get_run(kb, run_id, &r, err, errlen);
    if (rc < 0) return rc;
    pthread_mutex_lock(&kb->mu);
    const char *v = json_string_value(json_object_get(r->fields, field));
    *val = sf_xstrdup(v);
    pthread_mutex_unlock(&kb->mu);
    put_run(kb, r);
    return 0;
}

/* A write needs no copy of the run here: it is produced, and a cached copy
 * (if any) is updated; an uncached run is read from the log when needed,
 * this record included. (A run already forgotten, such as a finished one a
 * late keep-alive touches, is not loaded back for nothing.) */
int sf_kafka_state_set(struct sf_broker *b, const char *run_id, const char *field,
                       const char *val, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc = sf_kafka_ensure_topics(kb, err, errlen);
    if (rc < 0) return rc;
    char *key = sf_xasprintf("%s/f/%s", run_id, field);
    rc = sf_kafka_produce_sync(kb, kb->t_runs, runs_partition(kb, run_id), key, strlen(key), val,
                               strlen(val), NULL, NULL, NULL, err, errlen);
    free(key);
    if (rc < 0) return rc;
    pthread_mutex_lock(&kb->mu);
    struct kafka_run *r = cached(kb, run_id);
    if (r) json_object_set_new(r->fields, field, json_string(val));
    pthread_mutex_unlock(&kb->mu);
    return 0;
}

/* --- publish --------------------------------------------------------------------- */

void sf_kafka_publish_report(struct kafka_broker *kb, struct kafka_ticket *tk)
{
    char err[256];
    if (tk->err) {
        /* message.timeout.ms=0: only a permanent error gets here (too large,
         * not authorized). The run cannot complete without this task. */
        pthread_mutex_lock(&kb->mu);
        snprintf(kb->fatal, sizeof(kb->fatal), "publishing task %s: %s", tk->task_id,
                 rd_kafka_err2str(tk->err));
        pthread_mutex_unlock(&kb->mu);
        SF_LOG(kb->base.cfg.log, SF_LOG_ERROR, tk->run_id, tk->task_id, "publishing: %s",
               rd_kafka_err2str(tk->err));
        return;
    }
    char *key = sf_xasprintf("%s/p/%s", tk->run_id, tk->task_id);
    if (sf_kafka_produce(kb, kb->t_runs, runs_partition(kb, tk->run_id), key, strlen(key), "1", 1,
                         NULL, NULL, err, sizeof(err)) < 0)
        SF_LOG(kb->base.cfg.log, SF_LOG_WARN, tk->run_id, tk->task_id,
               "published, but the marker was not written (%s): a resume publishes it again", err);
    free(key);
}

int sf_kafka_publish(struct sf_broker *b, const char *run_id, const char *task_id, int priority,
                     const char *data, size_t len, char *err, size_t errlen)
{
    (void)priority;             /* never > 0 here: sf_broker_task_supported refuses it */
    struct kafka_broker *kb = KB(b);
    struct kafka_run *r;
    int rc = get_run(kb, run_id, &r, err, errlen);
    if (rc < 0) return rc;
    pthread_mutex_lock(&kb->mu);
    bool before = json_object_get(r->published, task_id) != NULL;
    if (!before) json_object_set_new(r->published, task_id, json_true());
    pthread_mutex_unlock(&kb->mu);
    if (before) {
        put_run(kb, r);
        return 1;
    }
    struct kafka_ticket *tk = sf_kafka_ticket_new();
    tk->run_id = sf_xstrdup(run_id);
    tk->task_id = sf_xstrdup(task_id);
    tk->on_report = sf_kafka_publish_report;
    /* Key = task id: tasks spread over the partitions. */
    rc = sf_kafka_produce(kb, kb->t_tasks, RD_KAFKA_PARTITION_UA, task_id, strlen(task_id), data, len,
                          NULL, tk, err, errlen);
    sf_kafka_ticket_unref(tk);
    if (rc < 0) {
        pthread_mutex_lock(&kb->mu);
        json_object_del(r->published, task_id);
        pthread_mutex_unlock(&kb->mu);
    }
    put_run(kb, r);
    return rc < 0 ? rc : 0;
}

/* --- results ---------------------------------------------------------------------- */

static int reader_open(struct kafka_broker *kb, const char *run_id, int64_t pos, char *err, size_t errlen)
{
    int64_t lo, hi;
    int rc;
    rd_kafka_resp_err_t e;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    if (!kb->reader && !(kb->reader = sf_kafka_client(kb, KAFKA_READER, NULL, err, errlen)))
        return -EINVAL;
    pthread_mutex_lock(&kb->mu);
    int nparts = kb->n_results_parts;
    pthread_mutex_unlock(&kb->mu);
    int32_t part = sf_kafka_partition_for(run_id, nparts > 0 ? nparts : 1);
    if ((rc = sf_kafka_watermarks(kb->reader, kb->t_results, part, &lo, &hi, err, errlen)) < 0)
        return rc;
    if (pos < lo) pos = lo;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, kb->t_results, part)->offset = pos;
    e = rd_kafka_assign(kb->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        sf_errf(err, errlen, "assign %s[%d]: %s", kb->t_results, part, rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
    if (strcmp(kb->reader_run, run_id) || pos == lo) {
        json_decref(kb->reader_seen);
        kb->reader_seen = json_object();
    }
    sf_strlcpy(kb->reader_run, run_id, sizeof(kb->reader_run));
    kb->reader_part = part;
    kb->reader_pos = pos;
    kb->reader_hwm = hi;
    return 0;
}

/* One message of the results partition; 1 when it was handed out. */
static int take_result(struct kafka_broker *kb, const rd_kafka_message_t *m, const char *run_id,
                       char **out, size_t *lens, size_t *n)
{
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) kb->reader_pos = m->offset;
        return 0;
    }
    kb->reader_pos = m->offset + 1;
    if (!m->key || m->key_len != strlen(run_id) || memcmp(m->key, run_id, m->key_len) || !m->payload)
        return 0;
    char *tid = sf_kafka_header(m, SF_KAFKA_H_TASK_ID);
    if (!tid) {                                 /* produced by someone else: read the body */
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        tid = sf_xstrdup(json_string_value(json_object_get(j, "task_id")));
        json_decref(j);
    }
    bool dup = tid && json_object_get(kb->reader_seen, tid);
    if (tid && !dup) json_object_set_new(kb->reader_seen, tid, json_true());
    free(tid);
    if (dup) return 0;
    lens[*n] = m->len;
    out[(*n)++] = sf_xstrndup(m->payload, m->len);
    return 1;
}

static int results_one(struct kafka_broker *kb, const char *run_id, char *cursor, size_t cursor_len,
                       char **out, size_t *lens, size_t max, int block_ms, size_t *n,
                       char *err, size_t errlen)
{
    int64_t pos = cursor[0] ? strtoll(cursor, NULL, 10) : 0;
    int rc;
    *n = 0;
    if (!kb->reader || strcmp(kb->reader_run, run_id) || pos != kb->reader_pos)
        if ((rc = reader_open(kb, run_id, pos, err, errlen)) < 0) return rc;
    /* What was there when the reader started is read before returning, even
     * with block_ms = 0: a resumed run gets its stored results in one go. */
    int64_t deadline = sf_now_ms() + 30000;
    while (*n < max && kb->reader_pos < kb->reader_hwm && sf_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kb->reader, 200);
        if (!m) continue;
        take_result(kb, m, run_id, out, lens, n);
        rd_kafka_message_destroy(m);
    }
    int64_t until = sf_now_ms() + (block_ms > 0 ? block_ms : 0);
    while (*n < max) {
        int64_t left = until - sf_now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kb->reader, *n || left <= 0 ? 0 : (int)left);
        if (!m) break;
        take_result(kb, m, run_id, out, lens, n);
        rd_kafka_message_destroy(m);
    }
    snprintf(cursor, cursor_len, "%lld", (long long)kb->reader_pos);
    return 0;
}

/* One reader serves every caller, one at a time (serve catches up several
 * runs from its pool threads). */
int sf_kafka_results(struct sf_broker *b, const char *run_id, char *cursor, size_t cursor_len,
                     char **out, size_t *lens, size_t max, int block_ms, size_t *n,
                     char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    pthread_mutex_lock(&kb->rmu);
    int rc = results_one(kb, run_id, cursor, cursor_len, out, lens, max, block_ms, n, err, errlen);
    pthread_mutex_unlock(&kb->rmu);
    return rc;
}

/* --- stats --------------------------------------------------------------------------- */

/* Sum over the topic's partitions of (high watermark - committed offset of
 * group), or of (high - low) when group is NULL. */
static int lag(struct kafka_broker *kb, const char *topic, const char *group, int64_t *sum,
               char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_t *rk = sf_kafka_client(kb, KAFKA_READER, group, err, errlen);
    *sum = 0;
    if (!rk) return -EINVAL;
    int rc = sf_kafka_partitions(rk, topic, group != NULL, &l, err, errlen);
    for (int p = 0; rc == 0 && p < l->cnt; p++) {
        int64_t lo, hi;
        if ((rc = sf_kafka_watermarks(rk, topic, p, &lo, &hi, err, errlen)) < 0) break;
        int64_t from = group && l->elems[p].offset >= 0 ? l->elems[p].offset : lo;
        *sum += hi > from ? hi - from : 0;
    }
    if (l) rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return rc;
}

int sf_kafka_stats(struct sf_broker *b, struct sf_queue_stats *st, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    const struct rd_kafka_group_list *gl = NULL;
    int rc;
    memset(st, 0, sizeof(*st));
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    /* depth: the group's lag (delivered-but-unfinished tasks included: Kafka
     * does not tell them apart, so pending stays 0). */
    if ((rc = lag(kb, kb->t_tasks, kb->group, &st->depth, err, errlen)) < 0 ||
        (rc = lag(kb, kb->t_retry, kb->retry_group, &st->delayed, err, errlen)) < 0 ||
        (rc = sf_kafka_dead_count(kb, &st->dead, err, errlen)) < 0)
        return rc;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(kb->producer, kb->group, &gl, 10000);
    if (e) {
        sf_errf(err, errlen, "describing group %s: %s", kb->group, rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
    for (int i = 0; i < gl->group_cnt; i++) st->workers += gl->groups[i].member_cnt;
    rd_kafka_group_list_destroy(gl);
    return 0;
}

/* --- blobs ---------------------------------------------------------------------------- */

int sf_kafka_blob_put(struct sf_broker *b, const char *data, size_t len, char *ref,
                      size_t reflen, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    char key[33];
    int32_t p;
    int64_t off;
    int rc = sf_kafka_ensure_topics(kb, err, errlen);
    if (rc < 0) return rc;
    sf_random_hex(key, sizeof(key), 32);
    rc = sf_kafka_produce_sync(kb, kb->t_blobs, RD_KAFKA_PARTITION_UA, key, strlen(key), data, len,
                               NULL, &p, &off, err, errlen);
    if (rc == 0) snprintf(ref, reflen, "kafka:%s/%" PRId32 "/%" PRId64 "/%s", kb->t_blobs, p, off, key);
    return rc;
}

struct blob_ctx {
    int64_t off;
    const char *key;
    char *data;
    size_t len;
    bool found;
};

static int blob_cb(const rd_kafka_message_t *m, void *arg)
{
    struct blob_ctx *bc = arg;
    if (m->offset == bc->off && m->key && m->key_len == strlen(bc->key) &&
        !memcmp(m->key, bc->key, m->key_len) && m->payload) {
        bc->data = sf_xstrndup(m->payload, m->len);
        bc->len = m->len;
        bc->found = true;
    }
    return 1;                                   /* the first message read decides */
}

int sf_kafka_blob_get(struct sf_broker *b, const char *ref, char **data, size_t *len,
                      char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    char prefix[128], key[40];
    int32_t p;
    int64_t off;
    int used = 0, rc;
    *data = NULL;
    snprintf(prefix, sizeof(prefix), "kafka:%s/", kb->t_blobs);
    /* Only our own blob topic: a message must not make a worker read any topic. */
    if (strncmp(ref, prefix, strlen(prefix)) ||
        sscanf(ref + strlen(prefix), "%" SCNd32 "/%" SCNd64 "/%32[0-9a-f]%n", &p, &off, key, &used) != 3 ||
        ref[strlen(prefix) + (size_t)used] || p < 0 || off < 0) {
        sf_errf(err, errlen, "reference '%.100s' is not a sandfleet blob (%s<partition>/<offset>/<key>)",
                ref, prefix);
        return -EINVAL;
    }
    struct blob_ctx bc = { .off = off, .key = key };
    if ((rc = sf_kafka_scan(kb, kb->t_blobs, p, off, blob_cb, &bc, err, errlen)) < 0) return rc;
    if (!bc.found) return -ENOENT;
    *data = bc.data;
    *len = bc.len;
    return 0;
}

void sf_kafka_coord_close(struct kafka_broker *kb)
{
    if (kb->reader) {
        rd_kafka_consumer_close(kb->reader);
        rd_kafka_destroy(kb->reader);
        kb->reader = NULL;
    }
    json_decref(kb->reader_seen);
    kb->reader_seen = NULL;
    while (kb->runs) {
        struct kafka_run *r = kb->runs;
        kb->runs = r->next;
        run_free(r);
    }
}
