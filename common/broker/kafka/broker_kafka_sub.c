/* common/broker/kafka/broker_kafka_sub.c: serve's workflow submissions over Kafka
 * (broker.h "serve"; docs/kafka.md §9 for operators, docs/protocol.md
 * "Submissions on Kafka" for integrations).
 *
 * Design. For queue Q (plain names for "default", "-Q" appended otherwise):
 *   sandfleet.submissions    one message = one submission (the body POST
 *                            /api/runs takes); optional headers reply_to and
 *                            run_id, the twins of the Redis entry's fields
 * consumed in group "sandfleet-coordinators" by every serve instance, so
 * partitions spread the submissions over the instances. The Redis stream
 * entry becomes a delivery whose data is a JSON object of strings
 * ("workflow" = the message value), which is what serve reads on Redis too.
 * - Ack = the run's document is stored. Runs end in any order, so the
 *   offset stored for commit is the contiguous acked prefix of a partition
 *   (sf_kafka_track, as for tasks); librdkafka commits it every second and
 *   at every revocation.
 * - The handle is "<partition>-<offset>" ("Q-<partition>-<offset>" for queue
 *   Q: runs and documents are shared by all queues, so two queues' offsets
 *   must not name the same run). serve makes the run id "sub-<handle>", so
 *   a submission read again after a crash or a rebalance gets the same run
 *   id and the broker executor resumes that run instead of starting over.
 * - pending (a restarted instance's own unacked entries on Redis) needs no
 *   work here: whoever is given a partition reads it from the committed
 *   offset, which is before every unacked submission.
 * - max == 0 (serve is at --max-runs): the partitions are paused and the
 *   consumer polled without taking anything, so rebalances are served at
 *   once (an instance that joins waits for the others to give partitions
 *   up). Messages fetched before the pause are held for the next fetch.
 * - A message read again while its run is still in progress here (the
 *   partition went away and came back) is not handed out a second time:
 *   it is only tracked under the new assignment, so the run's ack commits.
 * - An ack after its partition moved away stores nothing: the new owner
 *   reads the submission again and resumes the run (at-least-once).
 * Threads: fetch on serve's reader thread (cmu: the consumer; the
 * rebalance callback runs inside its poll), ack from any thread (tmu: the
 * tracker, epochs and the running list). Lock order cmu -> tmu. */
#include "broker_kafka.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The handle and the run id ("sub-" + handle) must fit their buffers. */
#define SUB_PREFIX_MAX 60

struct sub_ref {
    int32_t p;
    int64_t off;
};

struct kafka_sub {
    pthread_mutex_t cmu, tmu;
    rd_kafka_t *consumer;
    bool paused;
    rd_kafka_message_t **held;          /* polled while paused, in order */
    size_t n_held, cap_held;
    char prefix[SUB_PREFIX_MAX + 2];    /* "" or "<queue>-" */
    struct sf_kafka_track *track;
    uint32_t *epoch;                    /* per partition; 0 = not ours */
    int32_t n_epoch;
    struct sub_ref *running;            /* handed out, not acked yet */
    size_t n_running, cap_running;
};

/* The state, created on first use (only serve fetches submissions). */
static struct kafka_sub *sub_state(struct kafka_broker *kb)
{
    pthread_mutex_lock(&kb->mu);
    if (!kb->sub) {
        struct kafka_sub *ks = sf_xcalloc(1, sizeof(*ks));
        pthread_mutex_init(&ks->cmu, NULL);
        pthread_mutex_init(&ks->tmu, NULL);
        ks->track = sf_kafka_track_new();
        if (strcmp(kb->base.cfg.queue, "default"))
            snprintf(ks->prefix, sizeof(ks->prefix), "%s-", kb->base.cfg.queue);
        kb->sub = ks;
    }
    struct kafka_sub *ks = kb->sub;
    pthread_mutex_unlock(&kb->mu);
    return ks;
}

/* tmu held. */
static void epoch_set(struct kafka_sub *ks, int32_t p, uint32_t epoch)
{
    if (p < 0) return;
    if (p >= ks->n_epoch) {
        ks->epoch = sf_xrealloc(ks->epoch, (size_t)(p + 1) * sizeof(*ks->epoch));
        memset(ks->epoch + ks->n_epoch, 0, (size_t)(p + 1 - ks->n_epoch) * sizeof(*ks->epoch));
        ks->n_epoch = p + 1;
    }
    ks->epoch[p] = epoch;
}

/* tmu held. Index in ks->running or -1. */
static ssize_t running_find(const struct kafka_sub *ks, int32_t p, int64_t off)
{
    for (size_t i = 0; i < ks->n_running; i++)
        if (ks->running[i].p == p && ks->running[i].off == off) return (ssize_t)i;
    return -1;
}

/* cmu held. */
static void pause_all(struct kafka_sub *ks, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(ks->consumer, &l)) return;
    if (pause) rd_kafka_pause_partitions(ks->consumer, l);
    else rd_kafka_resume_partitions(ks->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    ks->paused = pause;
}

/* Held messages of revoked partitions go: the next owner reads them. cmu held. */
static void drop_held(struct kafka_sub *ks, const rd_kafka_topic_partition_list_t *parts)
{
    size_t k = 0;
    for (size_t i = 0; i < ks->n_held; i++) {
        bool gone = false;
        for (int j = 0; j < parts->cnt && !gone; j++)
            gone = parts->elems[j].partition == ks->held[i]->partition;
        if (gone) rd_kafka_message_destroy(ks->held[i]);
        else ks->held[k++] = ks->held[i];
    }
    ks->n_held = k;
}

void sf_kafka_sub_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_broker *kb = opaque;
    struct kafka_sub *ks = kb->sub;
    bool assign = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    /* Going away: what was acked is committed now. */
    sf_kafka_rebalance_commit(rk, e);
    pthread_mutex_lock(&ks->tmu);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (assign) {
            epoch_set(ks, p, sf_kafka_track_assign(ks->track, p));
        } else {
            sf_kafka_track_revoke(ks->track, p);
            epoch_set(ks, p, 0);
        }
    }
    pthread_mutex_unlock(&ks->tmu);
    sf_kafka_rebalance_apply(rk, e, parts, ks->paused, kb->base.cfg.log, "kafka submissions");
    if (!assign) drop_held(ks, parts);
    /* Worded apart from the task consumer's "assigned"/"revoked" lines,
     * which tests and operators count. */
    SF_LOG(kb->base.cfg.log, SF_LOG_INFO, NULL, NULL, "kafka: submissions: %s %d partition(s) of %s",
           assign ? "taking" : "giving up", parts->cnt, kb->t_sub);
}

/* cmu held. */
static int ensure_consumer(struct kafka_broker *kb, struct kafka_sub *ks, char *err, size_t errlen)
{
    rd_kafka_t *rk;
    int rc;
    if (ks->consumer) return 0;
    if (strlen(kb->base.cfg.queue) > SUB_PREFIX_MAX - 1) {
        sf_errf(err, errlen, "queue '%.40s...': serve on Kafka takes queue names of up to %d characters "
                "(they are part of the submissions' run ids)", kb->base.cfg.queue, SUB_PREFIX_MAX - 1);
        return -ENAMETOOLONG;
    }
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    const char *topics[] = { kb->t_sub };
    if (!(rk = sf_kafka_consumer(kb, KAFKA_SUBMISSIONS, kb->sub_group, topics, 1, &rc, err, errlen)))
        return rc;
    /* ack reads the consumer under tmu only. */
    pthread_mutex_lock(&ks->tmu);
    ks->consumer = rk;
    pthread_mutex_unlock(&ks->tmu);
    return 0;
}

/* A header as a JSON string, or NULL (absent, or not UTF-8). */
static json_t *header_string(const rd_kafka_message_t *m, const char *name)
{
    char *v = sf_kafka_header(m, name);
    json_t *s = v ? json_string(v) : NULL;
    free(v);
    return s;
}

/* The message as serve reads a Redis stream entry: a JSON object of strings
 * with "workflow" = the value. reply_to and run_id come from headers of
 * those names, else from the value when it is a JSON object, so a
 * submission that fails validation is still answered on its reply topic
 * under the run id it chose. */
static void sub_entry(const struct kafka_sub *ks, const rd_kafka_message_t *m, struct sf_delivery *d)
{
    static const char *const lifted[] = { "reply_to", "run_id" };
    json_t *o = json_object(), *doc = NULL;
    memset(d, 0, sizeof(*d));
    snprintf(d->handle, sizeof(d->handle), "%s%" PRId32 "-%" PRId64, ks->prefix, m->partition, m->offset);
    json_t *wf = m->payload && m->len ? json_stringn(m->payload, m->len) : NULL;
    if (!m->payload || !m->len)
        snprintf(d->problem, sizeof(d->problem), "the message has no value (expected a submission)");
    else if (!wf)
        snprintf(d->problem, sizeof(d->problem), "the message value is not UTF-8");
    else
        doc = json_loadb(m->payload, m->len, 0, NULL);
    if (wf) json_object_set_new(o, "workflow", wf);
    for (size_t i = 0; i < sizeof(lifted) / sizeof(lifted[0]); i++) {
        json_t *v = header_string(m, lifted[i]), *in = json_object_get(doc, lifted[i]);
        if (!v && json_is_string(in)) v = json_incref(in);
        if (v) json_object_set_new(o, lifted[i], v);
    }
    d->data = json_dumps(o, JSON_COMPACT);
    d->len = strlen(d->data);
    json_decref(doc);
    json_decref(o);
}

/* Hand m out into d unless its run is already in progress here. 1 handed
 * out, 0 not. Takes m. cmu held. */
static int take(struct kafka_broker *kb, struct kafka_sub *ks, rd_kafka_message_t *m,
                struct sf_delivery *d)
{
    uint32_t epoch;
    pthread_mutex_lock(&ks->tmu);
    int rc = sf_kafka_track_deliver(ks->track, m->partition, m->offset, &epoch);
    bool again = rc == 0 && running_find(ks, m->partition, m->offset) >= 0;
    if (rc == 0 && !again) {
        if (ks->n_running == ks->cap_running) {
            ks->cap_running = ks->cap_running ? 2 * ks->cap_running : 16;
            ks->running = sf_xrealloc(ks->running, ks->cap_running * sizeof(*ks->running));
        }
        ks->running[ks->n_running++] = (struct sub_ref){ m->partition, m->offset };
    }
    pthread_mutex_unlock(&ks->tmu);
    if (rc == 0 && !again) sub_entry(ks, m, d);
    else
        SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka: submission %" PRId32 "-%" PRId64 " %s",
               m->partition, m->offset, again ? "read again while its run is in progress here"
                                              : "of a partition that is not ours");
    rd_kafka_message_destroy(m);
    return rc == 0 && !again;
}

/* Keep m for the next fetch (error events are only logged). cmu held. */
static void hold(struct kafka_broker *kb, struct kafka_sub *ks, rd_kafka_message_t *m)
{
    if (m->err) {
        SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka submissions consumer: %s",
               rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    if (ks->n_held == ks->cap_held) {
        ks->cap_held = ks->cap_held ? 2 * ks->cap_held : 8;
        ks->held = sf_xrealloc(ks->held, ks->cap_held * sizeof(*ks->held));
    }
    ks->held[ks->n_held++] = m;
}

/* consumer: the group assigns partitions, so the name is not needed; a
 * restarted instance, or another one, reads the unacked submissions of the
 * partitions it is given. */
int sf_kafka_sub_fetch(struct sf_broker *b, const char *consumer, bool pending,
                       struct sf_delivery *out, size_t max, int block_ms, size_t *n,
                       char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_sub *ks = sub_state(kb);
    int64_t deadline = sf_now_ms() + (block_ms > 0 ? block_ms : 0);
    int rc;
    (void)consumer;
    *n = 0;
    pthread_mutex_lock(&ks->cmu);
    if ((rc = ensure_consumer(kb, ks, err, errlen)) < 0 || pending) goto out;
    if (!max) {
        if (!ks->paused) pause_all(ks, true);
        for (rd_kafka_message_t *m; (m = rd_kafka_consumer_poll(ks->consumer, 0));) hold(kb, ks, m);
        goto out;
    }
    if (ks->paused) pause_all(ks, false);
    while (*n < max && ks->n_held) {
        rd_kafka_message_t *m = ks->held[0];
        memmove(ks->held, ks->held + 1, (--ks->n_held) * sizeof(*ks->held));
        *n += (size_t)take(kb, ks, m, &out[*n]);
    }
    while (*n < max) {
        int64_t left = *n ? 0 : deadline - sf_now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ks->consumer, left > 0 ? (int)left : 0);
        if (!m) break;
        if (m->err) {
            SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka submissions consumer: %s",
                   rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        *n += (size_t)take(kb, ks, m, &out[*n]);
    }
out:
    pthread_mutex_unlock(&ks->cmu);
    return rc;
}

/* "[Q-]<partition>-<offset>": the last two numbers. */
static int parse_handle(const char *h, int32_t *p, int64_t *off)
{
    const char *d2 = strrchr(h, '-'), *d1 = NULL;
    char *end;
    for (const char *s = h; d2 && s < d2; s++)
        if (*s == '-') d1 = s;
    const char *ps = d1 ? d1 + 1 : h;
    if (!d2 || ps == d2 || !d2[1]) return -EINVAL;
    long long pv = strtoll(ps, &end, 10);
    if (end != d2 || pv < 0 || pv > INT32_MAX) return -EINVAL;
    long long ov = strtoll(d2 + 1, &end, 10);
    if (*end || ov < 0) return -EINVAL;
    *p = (int32_t)pv;
    *off = ov;
    return 0;
}

int sf_kafka_sub_ack(struct sf_broker *b, const char *handle, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_sub *ks = sub_state(kb);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    int32_t p;
    int64_t off, commit = -1;
    int rc = -ESTALE;
    if (parse_handle(handle, &p, &off) < 0) {
        sf_errf(err, errlen, "'%.60s' is not a Kafka submission handle", handle);
        return -EINVAL;
    }
    pthread_mutex_lock(&ks->tmu);
    ssize_t i = running_find(ks, p, off);
    if (i < 0) {                                 /* acked before: nothing left to do */
        pthread_mutex_unlock(&ks->tmu);
        return 0;
    }
    ks->running[i] = ks->running[--ks->n_running];
    uint32_t epoch = p < ks->n_epoch ? ks->epoch[p] : 0;
    if (epoch) rc = sf_kafka_track_finish(ks->track, p, epoch, off, &commit);
    if (rc == 1) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, kb->t_sub, p)->offset = commit;
        e = rd_kafka_offsets_store(ks->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    pthread_mutex_unlock(&ks->tmu);
    /* Neither is the caller's failure: the document is stored, and whoever
     * reads the submission again resumes the run under the same id. */
    if (rc == -ESTALE)
        SF_LOG(kb->base.cfg.log, SF_LOG_INFO, NULL, NULL, "kafka: submission %s acked after its partition "
               "moved; its new owner reads it again", handle);
    if (e)
        SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka: storing a submission offset: %s",
               rd_kafka_err2str(e));
    return 0;
}

void sf_kafka_sub_close(struct kafka_broker *kb)
{
    struct kafka_sub *ks = kb->sub;
    if (!ks) return;
    pthread_mutex_lock(&ks->cmu);
    for (size_t i = 0; i < ks->n_held; i++) rd_kafka_message_destroy(ks->held[i]);
    ks->n_held = 0;
    if (ks->consumer) {
        /* close: revoke (the callback commits what was acked), leave the group. */
        rd_kafka_consumer_close(ks->consumer);
        rd_kafka_destroy(ks->consumer);
    }
    pthread_mutex_unlock(&ks->cmu);
    free(ks->held);
    sf_kafka_track_free(ks->track);
    free(ks->epoch);
    free(ks->running);
    pthread_mutex_destroy(&ks->cmu);
    pthread_mutex_destroy(&ks->tmu);
    free(ks);
    kb->sub = NULL;
}
