/* common/broker/kafka/broker_kafka_cb.c: pending HTTP callback deliveries in Kafka
 * (broker.h "callbacks"; docs/kafka.md §8 for operators).
 *
 * Design. For queue Q (plain names for "default", "-Q" appended otherwise):
 *   sandfleet.callbacks        deliveries due now; key = delivery id
 *   sandfleet.callbacks.retry  next attempts; key = delivery id, header
 *                              sf-due-ms; partition = delay bucket (below)
 *   sandfleet.callbacks.dead   compacted, 1 partition: delivery id -> record;
 *                              a tombstone (null value) = requeued or purged
 * Every worker's dispatcher thread consumes both topics in consumer group
 * "sandfleet-callbacks" with one consumer (struct kafka_cb). A claim is a
 * message handed to the dispatcher with a lease; the group assignment is
 * the real lock: a worker killed -9 loses its partitions after the session
 * timeout (--lease-ms) and the next owner reads from the committed offset,
 * so nothing is lost and an unsettled delivery is sent again (receivers
 * de-duplicate on Sandfleet-Delivery). Settling always produces first and
 * only then lets the offset be committed (contiguous settled prefix of each
 * partition): retry = the updated record to the retry topic, dead = to the
 * dead topic, done = nothing to produce.
 * Due times: like the task retry topic, a retry partition is FIFO: when its
 * head is not due the partition is paused and the head held. Callback
 * delays reach hours, so the producer picks the partition by the delay's
 * bucket (factor 3 from 1 s; the last bucket takes the rest): within a
 * partition delays differ by less than 3x, so a long delay holds back only
 * similar ones, never a 10 s retry behind an 18 h one.
 * The token of a claim is "<topic>:<partition>:<offset>:<claim number>";
 * a revoked partition's entries are dropped, so a stale token finds
 * nothing and settle answers 1 (not ours).
 *
 * Threads: claim and settle may come from any thread (the dispatcher's in
 * practice); kafka_cb.mu guards the consumer and the entries. The rebalance
 * callback runs inside rd_kafka_consumer_poll, called only with mu held. */
#include "broker_kafka.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CB_MAIN = 0, CB_RETRY = 1 };
#define CB_HOLD_MAX 256          /* unclaimed due messages held from the main topic */

struct cb_entry {
    rd_kafka_message_t *m;
    int64_t due_ms;              /* wall clock; 0 = due now */
    int64_t lease_until;         /* monotonic; 0 = not claimed */
    uint32_t seq;                /* the claim's number, part of its token */
    bool done;                   /* settled, waiting for the entries before it */
};

struct cb_part {
    struct cb_entry *v;          /* offset order */
    size_t n, cap;
    bool paused;
};

struct kafka_cb {
    pthread_mutex_t mu;
    rd_kafka_t *consumer;
    struct cb_part *parts[2];
    int nparts[2];
    uint32_t seq;
    int n_retry_parts;           /* partitions of the retry topic (delay buckets) */
};

static const char *topic_of(const struct kafka_broker *kb, int t)
{
    return t == CB_MAIN ? kb->t_cb : kb->t_cb_retry;
}

static int topic_index(const struct kafka_broker *kb, const char *topic)
{
    return !strcmp(topic, kb->t_cb_retry) ? CB_RETRY : CB_MAIN;
}

static struct cb_part *part_get(struct kafka_cb *cb, int t, int32_t p)
{
    if (p >= cb->nparts[t]) {
        cb->parts[t] = sf_xrealloc(cb->parts[t], (size_t)(p + 1) * sizeof(struct cb_part));
        memset(cb->parts[t] + cb->nparts[t], 0, (size_t)(p + 1 - cb->nparts[t]) * sizeof(struct cb_part));
        cb->nparts[t] = p + 1;
    }
    return &cb->parts[t][p];
}

static void part_clear(struct cb_part *cp)
{
    for (size_t i = 0; i < cp->n; i++) rd_kafka_message_destroy(cp->v[i].m);
    cp->n = 0;
    cp->paused = false;
}

/* The retry partition for a delay: bucket k holds delays in
 * [3^(k-1), 3^k) seconds, bucket 0 those under a second. */
static int32_t delay_bucket(int64_t delay_ms, int nparts)
{
    int32_t k = 0;
    for (int64_t edge = 1000; delay_ms >= edge && k < nparts - 1; edge *= 3) k++;
    return k;
}

void sf_kafka_cb_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_broker *kb = opaque;
    struct kafka_cb *cb = kb->cb;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        sf_kafka_rebalance_apply(rk, e, parts, false, kb->base.cfg.log, "kafka callbacks");
        /* Worded apart from the task consumer's "assigned"/"revoked" lines,
         * which tests and operators count. */
        SF_LOG(kb->base.cfg.log, SF_LOG_INFO, NULL, NULL, "kafka: callbacks: taking %d more partition(s)",
               parts->cnt);
    } else {
        /* What was settled is committed now; the next owner sends the rest. */
        sf_kafka_rebalance_commit(rk, e);
        for (int i = 0; i < parts->cnt; i++) {
            int t = topic_index(kb, parts->elems[i].topic);
            if (parts->elems[i].partition < cb->nparts[t])
                part_clear(&cb->parts[t][parts->elems[i].partition]);
        }
        sf_kafka_rebalance_apply(rk, e, parts, false, kb->base.cfg.log, "kafka callbacks");
    }
}

static int retry_partitions(struct kafka_broker *kb, int *n, char *err, size_t errlen)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(kb->producer, kb->t_cb_retry, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(kb->producer, 0, rkt, &md, 10000);
    int rc = 0;
    if (e) {
        sf_errf(err, errlen, "metadata of %s: %s", kb->t_cb_retry, rd_kafka_err2str(e));
        rc = sf_kafka_errno(e);
    } else {
        *n = md->topic_cnt == 1 && md->topics[0].partition_cnt > 0 ? md->topics[0].partition_cnt : 1;
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* The state, created on first use (a coordinator never claims). */
static struct kafka_cb *cb_state(struct kafka_broker *kb)
{
    pthread_mutex_lock(&kb->mu);
    if (!kb->cb) {
        kb->cb = sf_xcalloc(1, sizeof(*kb->cb));
        pthread_mutex_init(&kb->cb->mu, NULL);
    }
    struct kafka_cb *cb = kb->cb;
    pthread_mutex_unlock(&kb->mu);
    return cb;
}

/* cb->mu held. */
static int ensure_consumer(struct kafka_broker *kb, struct kafka_cb *cb, char *err, size_t errlen)
{
    int rc;
    if (cb->consumer) return 0;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    if (!cb->n_retry_parts && (rc = retry_partitions(kb, &cb->n_retry_parts, err, errlen)) < 0) return rc;
    const char *topics[] = { kb->t_cb, kb->t_cb_retry };
    cb->consumer = sf_kafka_consumer(kb, KAFKA_CALLBACKS, kb->cb_group, topics, 2, &rc, err, errlen);
    return rc;
}

static void pause_part(struct kafka_broker *kb, struct cb_part *cp, int t, int32_t p, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic_of(kb, t), p);
    if (pause) rd_kafka_pause_partitions(kb->cb->consumer, l);
    else rd_kafka_resume_partitions(kb->cb->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    cp->paused = pause;
}

static size_t unclaimed_main(const struct kafka_cb *cb)
{
    size_t k = 0;
    for (int32_t p = 0; p < cb->nparts[CB_MAIN]; p++)
        for (size_t i = 0; i < cb->parts[CB_MAIN][p].n; i++)
            k += !cb->parts[CB_MAIN][p].v[i].lease_until && !cb->parts[CB_MAIN][p].v[i].done;
    return k;
}

/* Take what the consumer has (no waiting), keeping the group membership
 * alive. Main-topic messages stop being taken once CB_HOLD_MAX wait
 * unclaimed, so one worker does not hoard a backlog. cb->mu held. */
static void poll_in(struct kafka_broker *kb, struct kafka_cb *cb)
{
    for (int i = 0; i < 500 && unclaimed_main(cb) < CB_HOLD_MAX; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cb->consumer, 0);
        if (!m) break;
        if (m->err) {
            SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka callbacks consumer: %s",
                   rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int t = topic_index(kb, rd_kafka_topic_name(m->rkt));
        struct cb_part *cp = part_get(cb, t, m->partition);
        if (cp->n == cp->cap) {
            cp->cap = cp->cap ? 2 * cp->cap : 16;
            cp->v = sf_xrealloc(cp->v, cp->cap * sizeof(*cp->v));
        }
        char *due = t == CB_RETRY ? sf_kafka_header(m, SF_KAFKA_H_DUE) : NULL;
        cp->v[cp->n++] = (struct cb_entry){ .m = m, .due_ms = due ? strtoll(due, NULL, 10) : 0 };
        free(due);
    }
}

static void make_claim(struct kafka_cb *cb, int t, struct cb_entry *e, int64_t lease_until,
                       struct sf_callback_claim *c)
{
    const rd_kafka_message_t *m = e->m;
    e->seq = ++cb->seq;
    e->lease_until = lease_until;
    memset(c, 0, sizeof(*c));
    c->id = m->key ? sf_xstrndup(m->key, m->key_len)
                   : sf_xasprintf("kafka:%d:%" PRId32 ":%" PRId64, t, m->partition, m->offset);
    c->record = sf_xstrndup(m->payload ? m->payload : "", m->payload ? m->len : 0);
    c->len = m->payload ? m->len : 0;
    snprintf(c->token, sizeof(c->token), "%d:%" PRId32 ":%" PRId64 ":%" PRIu32, t, m->partition,
             m->offset, e->seq);
}

int sf_kafka_cb_claim(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                      size_t max, size_t *n, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_cb *cb = cb_state(kb);
    int64_t now = sf_now_ms(), wall = sf_wall_ms();
    int rc;
    *n = 0;
    pthread_mutex_lock(&cb->mu);
    if ((rc = ensure_consumer(kb, cb, err, errlen)) < 0) goto out;
    poll_in(kb, cb);
    for (int t = 0; t < 2; t++) {
        for (int32_t p = 0; p < cb->nparts[t]; p++) {
            struct cb_part *cp = &cb->parts[t][p];
            bool blocked = false;
            for (size_t i = 0; i < cp->n && *n < max && !blocked; i++) {
                struct cb_entry *e = &cp->v[i];
                if (e->done || (e->lease_until && e->lease_until > now)) continue;
                if (t == CB_RETRY && e->due_ms > wall) {
                    blocked = true;             /* FIFO: the head waits for its time */
                    break;
                }
                make_claim(cb, t, e, now + (lease_ms > 0 ? lease_ms : 1), &out[(*n)++]);
            }
            if (t == CB_RETRY && blocked != cp->paused) pause_part(kb, cp, t, p, blocked);
        }
    }
out:
    pthread_mutex_unlock(&cb->mu);
    return rc;
}

static int parse_token(const char *tok, int *t, int32_t *p, int64_t *off, uint32_t *seq)
{
    int k = 0;
    if (!tok || sscanf(tok, "%d:%" SCNd32 ":%" SCNd64 ":%" SCNu32 "%n", t, p, off, seq, &k) != 4 ||
        tok[k] || (*t != CB_MAIN && *t != CB_RETRY) || *p < 0)
        return -EINVAL;
    return 0;
}

/* The entry a token names, if it is still this claim's. cb->mu held. */
static struct cb_entry *find(struct kafka_cb *cb, const char *token, struct cb_part **cpo)
{
    int t;
    int32_t p;
    int64_t off;
    uint32_t seq;
    if (parse_token(token, &t, &p, &off, &seq) < 0 || p >= cb->nparts[t]) return NULL;
    struct cb_part *cp = &cb->parts[t][p];
    for (size_t i = 0; i < cp->n; i++) {
        struct cb_entry *e = &cp->v[i];
        if (e->m->offset != off) continue;
        if (e->seq != seq || !e->lease_until || e->done) return NULL;
        *cpo = cp;
        return e;
    }
    return NULL;
}

/* Settled: drop the settled prefix and let its offsets be committed. cb->mu held. */
static void finish(struct kafka_broker *kb, struct kafka_cb *cb, struct cb_part *cp, struct cb_entry *e)
{
    size_t k = 0;
    e->done = true;
    while (k < cp->n && cp->v[k].done) k++;
    if (!k) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(cp->v[k - 1].m->rkt),
                                      cp->v[k - 1].m->partition)->offset = cp->v[k - 1].m->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(cb->consumer, l);
    if (err)
        SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka: storing a callback offset: %s",
               rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
    for (size_t i = 0; i < k; i++) rd_kafka_message_destroy(cp->v[i].m);
    memmove(cp->v, cp->v + k, (cp->n - k) * sizeof(*cp->v));
    cp->n -= k;
}

int sf_kafka_cb_produce(struct kafka_broker *kb, const char *id, const char *rec, size_t len,
                        struct kafka_ticket *tk, char *err, size_t errlen)
{
    return sf_kafka_produce(kb, kb->t_cb, RD_KAFKA_PARTITION_UA, id, strlen(id), rec, len, NULL, tk,
                            err, errlen);
}

static int produce_retry(struct kafka_broker *kb, struct kafka_cb *cb, const char *id, const char *rec,
                         size_t len, int64_t delay_ms, char *err, size_t errlen)
{
    char due[24];
    snprintf(due, sizeof(due), "%lld", (long long)(sf_wall_ms() + delay_ms));
    const char *hdrs[] = { SF_KAFKA_H_DUE, due, NULL };
    return sf_kafka_produce_sync(kb, kb->t_cb_retry, delay_bucket(delay_ms, cb->n_retry_parts), id,
                                 strlen(id), rec, len, hdrs, NULL, NULL, err, errlen);
}

static int produce_dead(struct kafka_broker *kb, const char *id, const char *rec, size_t len,
                        char *err, size_t errlen)
{
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)sf_wall_ms());
    const char *hdrs[] = { SF_KAFKA_H_FAILED_AT, at, NULL };
    return sf_kafka_produce_sync(kb, kb->t_cb_dead, 0, id, strlen(id), rec, len, hdrs, NULL, NULL,
                                 err, errlen);
}

int sf_kafka_cb_settle(struct sf_broker *b, const char *id, const char *token,
                       enum sf_callback_settle how, const char *rec, size_t len, int64_t delay_ms,
                       char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_cb *cb = cb_state(kb);
    struct cb_part *cp = NULL;
    struct cb_entry *e;
    int rc = 0;
    if ((how == SF_CALLBACK_SETTLE_RETRY || how == SF_CALLBACK_SETTLE_DEAD) && !rec) return -EINVAL;
    pthread_mutex_lock(&cb->mu);
    e = find(cb, token, &cp);
    if (e && how == SF_CALLBACK_SETTLE_RELEASE) {
        e->lease_until = 0;                     /* due again at once (its due time has passed) */
        e->seq = 0;
    }
    pthread_mutex_unlock(&cb->mu);
    if (!e) return 1;
    if (how == SF_CALLBACK_SETTLE_RELEASE) return 0;
    /* Produce outside the lock (it waits for the broker), then commit. */
    if (how == SF_CALLBACK_SETTLE_RETRY)
        rc = produce_retry(kb, cb, id, rec, len, delay_ms > 0 ? delay_ms : 0, err, errlen);
    else if (how == SF_CALLBACK_SETTLE_DEAD)
        rc = produce_dead(kb, id, rec, len, err, errlen);
    if (rc < 0) return rc;
    pthread_mutex_lock(&cb->mu);
    /* Revoked meanwhile: what we produced stands, the next owner sends the
     * old message once more (at-least-once). */
    if ((e = find(cb, token, &cp))) finish(kb, cb, cp, e);
    pthread_mutex_unlock(&cb->mu);
    return 0;
}

/* --- enqueue, and the run callback's once-marker ------------------------------- */

struct once_ctx {
    const char *key;
    bool set;
};

static int once_cb(const rd_kafka_message_t *m, void *arg)
{
    struct once_ctx *oc = arg;
    if (m->key && m->key_len == strlen(oc->key) && !memcmp(m->key, oc->key, m->key_len))
        oc->set = m->payload != NULL;           /* the last word wins (tombstone: unset) */
    return 0;
}

/* once_key names a marker in the compacted runs topic (partition of the key
 * itself). Written after the record: a crash between the two queues the
 * callback again on resume, never loses it. */
int sf_kafka_cb_enqueue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        const char *once_key, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    int32_t mp = once_key ? sf_kafka_runs_partition(kb, once_key) : 0;
    if (once_key) {
        struct once_ctx oc = { once_key, false };
        if ((rc = sf_kafka_scan(kb, kb->t_runs, mp, 0, once_cb, &oc, err, errlen)) < 0) return rc;
        if (oc.set) return 1;
    }
    struct kafka_ticket *tk = sf_kafka_ticket_new();
    rc = sf_kafka_cb_produce(kb, id, rec, len, tk, err, errlen);
    if (rc == 0) rc = sf_kafka_ticket_wait(tk, 30000, err, errlen);
    sf_kafka_ticket_unref(tk);
    if (rc == 0 && once_key)
        rc = sf_kafka_produce_sync(kb, kb->t_runs, mp, once_key, strlen(once_key), "1", 1, NULL, NULL,
                                   NULL, err, errlen);
    return rc;
}

void sf_kafka_cb_close(struct kafka_broker *kb)
{
    struct kafka_cb *cb = kb->cb;
    if (!cb) return;
    pthread_mutex_lock(&cb->mu);
    if (cb->consumer) {
        /* close: revoke (our callback commits what is settled), leave the group. */
        rd_kafka_consumer_close(cb->consumer);
        rd_kafka_destroy(cb->consumer);
    }
    for (int t = 0; t < 2; t++) {
        for (int32_t p = 0; p < cb->nparts[t]; p++) {
            part_clear(&cb->parts[t][p]);
            free(cb->parts[t][p].v);
        }
        free(cb->parts[t]);
    }
    pthread_mutex_unlock(&cb->mu);
    pthread_mutex_destroy(&cb->mu);
    free(cb);
    kb->cb = NULL;
}

/* --- the operator's view: list, requeue, purge ----------------------------------- */

/* Committed offsets of the callbacks group on one topic: offs[p] (-1: none). */
static int committed(struct kafka_broker *kb, const char *topic, int64_t **offs, int *n,
                     char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_t *rk = sf_kafka_client(kb, KAFKA_READER, kb->cb_group, err, errlen);
    *offs = NULL;
    *n = 0;
    if (!rk) return -EINVAL;
    int rc = sf_kafka_partitions(rk, topic, true, &l, err, errlen);
    if (rc == 0) {
        *n = l->cnt;
        *offs = sf_xcalloc((size_t)(*n > 0 ? *n : 1), sizeof(int64_t));
        for (int p = 0; p < *n; p++) (*offs)[p] = l->elems[p].offset;
        rd_kafka_topic_partition_list_destroy(l);
    }
    rd_kafka_destroy(rk);
    return rc;
}

struct pending_ctx {
    json_t *by_id;               /* id -> {"id","due_in_ms","record"} */
    int64_t wall;
};

static int pending_cb(const rd_kafka_message_t *m, void *arg)
{
    struct pending_ctx *pc = arg;
    if (!m->key) return 0;
    char *id = sf_xstrndup(m->key, m->key_len), *due = sf_kafka_header(m, SF_KAFKA_H_DUE);
    int64_t in = due ? strtoll(due, NULL, 10) - pc->wall : 0;
    json_t *rec = json_stringn(m->payload ? m->payload : "", m->payload ? m->len : 0);
    json_object_set_new(pc->by_id, id, json_pack("{s:s, s:I, s:o}", "id", id, "due_in_ms",
                                                 (json_int_t)(in > 0 ? in : 0),
                                                 "record", rec ? rec : json_string("")));
    free(id);
    free(due);
    return 0;
}

/* Pending = what the group has not committed on either topic. A delivery
 * settled in the last second (auto-commit interval) may still show. */
static int list_pending(struct kafka_broker *kb, size_t max, json_t *arr, char *err, size_t errlen)
{
    struct pending_ctx pc = { json_object(), sf_wall_ms() };
    const char *topics[] = { kb->t_cb, kb->t_cb_retry };
    int rc = 0;
    for (int t = 0; t < 2 && rc == 0; t++) {
        int64_t *offs;
        int n;
        if ((rc = committed(kb, topics[t], &offs, &n, err, errlen)) < 0) break;
        for (int p = 0; p < n && rc == 0; p++)
            rc = sf_kafka_scan(kb, topics[t], p, offs[p] > 0 ? offs[p] : 0, pending_cb, &pc, err, errlen);
        free(offs);
    }
    const char *k;
    json_t *v;
    json_object_foreach(pc.by_id, k, v) {
        if (max && json_array_size(arr) >= max) break;
        json_array_append(arr, v);
    }
    json_decref(pc.by_id);
    return rc;
}

int sf_kafka_cb_list(struct sf_broker *b, bool dead, size_t max, json_t **out, char *err,
                     size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    json_t *table = NULL, *arr = json_array(), *v;
    const char *k;
    int rc;
    *out = NULL;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) goto out;
    if (!dead) {
        rc = list_pending(kb, max, arr, err, errlen);
        goto out;
    }
    if ((rc = sf_kafka_read_table(kb, kb->t_cb_dead, 0, &table, err, errlen)) < 0) goto out;
    json_object_foreach(table, k, v) {
        if (max && json_array_size(arr) >= max) break;
        json_array_append_new(arr, json_pack("{s:s, s:O}", "id", k, "record", v));
    }
out:
    json_decref(table);
    if (rc < 0) json_decref(arr);
    else *out = arr;
    return rc;
}

static int tombstone(struct kafka_broker *kb, const char *id, char *err, size_t errlen)
{
    return sf_kafka_produce_sync(kb, kb->t_cb_dead, 0, id, strlen(id), NULL, 0, NULL, NULL, NULL,
                                 err, errlen);
}

/* Record first, then the tombstone: a crash between leaves it both
 * pending and listed dead (a second replay sends it twice), never lost. */
int sf_kafka_cb_requeue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    json_t *table = NULL;
    int rc;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    if ((rc = sf_kafka_read_table(kb, kb->t_cb_dead, 0, &table, err, errlen)) < 0) return rc;
    bool there = json_object_get(table, id) != NULL;
    json_decref(table);
    if (!there) return 0;
    struct kafka_ticket *tk = sf_kafka_ticket_new();
    rc = sf_kafka_cb_produce(kb, id, rec, len, tk, err, errlen);
    if (rc == 0) rc = sf_kafka_ticket_wait(tk, 30000, err, errlen);
    sf_kafka_ticket_unref(tk);
    if (rc == 0) rc = tombstone(kb, id, err, errlen);
    return rc < 0 ? rc : 1;
}

int sf_kafka_cb_purge(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                      char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    json_t *table = NULL, *v;
    const char *k;
    int rc, gone = 0;
    if (!dead) {
        /* A pending delivery is a message in a topic; dropping one would
         * need every claimer to consult a cancel list first. */
        sf_errf(err, errlen, "purging pending callbacks is not supported by the kafka backend "
                "(only the dead list: --dead)");
        return -ENOTSUP;
    }
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    if ((rc = sf_kafka_read_table(kb, kb->t_cb_dead, 0, &table, err, errlen)) < 0) return rc;
    json_object_foreach(table, k, v) {
        bool want = n == 0;
        for (size_t i = 0; i < n && !want; i++) want = !strcmp(ids[i], k);
        if (!want) continue;
        if ((rc = tombstone(kb, k, err, errlen)) < 0) break;
        gone++;
    }
    json_decref(table);
    return rc < 0 ? rc : gone;
}
