/* common/broker/kafka/broker_kafka_worker.c: the worker side of the Kafka broker.
 *
 * Design.
 * - One consumer in group "sandfleet-workers" (classic protocol,
 *   cooperative-sticky) reads the tasks topic. A delivery's handle is
 *   "t:<partition>:<offset>:<epoch>". Offsets are stored by us
 *   (enable.auto.offset.store=false) only once the task's result (or retry,
 *   or dead letter) was delivered to the broker, and only up to the first
 *   unfinished offset of the partition (broker_kafka_track.c); librdkafka
 *   commits the stored offsets every second and on revoke/close.
 * - Long tasks: the loop does not call fetch while every slot is busy, but
 *   it keeps calling renew/heartbeat/maintain, and each of them polls the
 *   consumer too (keepalive), so max.poll.interval.ms is never tripped.
 *   Messages such a poll returns are held (up to four per slot, slots being
 *   the most fetch was ever asked for); then every assigned partition is
 *   paused until fetch is called again, i.e. until a slot is free. Pausing
 *   at one per slot was measured 2x slower: each pause drops librdkafka's
 *   prefetched messages, and each resume refetches them from the broker.
 * - Rebalance: assigned partitions get a new epoch; on revoke the stored
 *   offsets are committed and the in-flight offsets of the partitions are
 *   forgotten (their results may still be produced: results are idempotent
 *   by task id, readers keep the first).
 * - Retries: the next attempt goes to the retry topic with its due time in
 *   the "sf-due-ms" header; maintain() consumes that topic in group
 *   "sandfleet-retry", holds not-yet-due messages (pausing that partition)
 *   and produces due ones back to the tasks topic, storing the retry offset
 *   once the task is delivered.
 */
#include "broker_kafka.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct retry_entry {
    rd_kafka_message_t *m;
    struct kafka_ticket *tk;     /* non-NULL once produced back to the tasks topic */
};

struct kafka_retry_part {
    struct retry_entry *v;
    size_t n, cap;
    bool paused;
};

static int parse_handle(const char *h, int32_t *p, int64_t *off, uint32_t *epoch)
{
    int n = 0;
    if (!h || sscanf(h, "t:%" SCNd32 ":%" SCNd64 ":%" SCNu32 "%n", p, off, epoch, &n) != 3 || h[n])
        return -EINVAL;
    return 0;
}

/* --- the task consumer (cmu held) ----------------------------------------------- */

static void set_paused(struct kafka_broker *kb, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (kb->paused == pause || rd_kafka_assignment(kb->consumer, &l)) return;
    if (pause) rd_kafka_pause_partitions(kb->consumer, l);
    else rd_kafka_resume_partitions(kb->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    kb->paused = pause;
}

static void drop_held(struct kafka_broker *kb, const rd_kafka_topic_partition_list_t *parts)
{
    size_t k = 0;
    for (size_t i = 0; i < kb->n_held; i++) {
        bool gone = !parts;
        for (int j = 0; parts && j < parts->cnt && !gone; j++)
            gone = parts->elems[j].partition == kb->held[i]->partition;
        if (gone) rd_kafka_message_destroy(kb->held[i]);
        else kb->held[k++] = kb->held[i];
    }
    kb->n_held = k;
}

void sf_kafka_worker_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_broker *kb = opaque;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        pthread_mutex_lock(&kb->tmu);
        for (int i = 0; i < parts->cnt; i++) sf_kafka_track_assign(kb->track, parts->elems[i].partition);
        pthread_mutex_unlock(&kb->tmu);
        sf_kafka_rebalance_apply(rk, e, parts, kb->paused, kb->base.cfg.log, "kafka");
        SF_LOG(kb->base.cfg.log, SF_LOG_INFO, NULL, NULL, "kafka: %d partition(s) of %s assigned",
               parts->cnt, kb->t_tasks);
    } else {
        /* Revoked (or lost): what finished is committed now; the rest runs
         * again at the next owner. */
        sf_kafka_rebalance_commit(rk, e);
        pthread_mutex_lock(&kb->tmu);
        for (int i = 0; i < parts->cnt; i++) sf_kafka_track_revoke(kb->track, parts->elems[i].partition);
        pthread_mutex_unlock(&kb->tmu);
        drop_held(kb, parts);
        sf_kafka_rebalance_apply(rk, e, parts, false, kb->base.cfg.log, "kafka");
        SF_LOG(kb->base.cfg.log, SF_LOG_INFO, NULL, NULL, "kafka: %d partition(s) of %s revoked%s",
               parts->cnt, kb->t_tasks, e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? "" : " (error)");
    }
}

static int ensure_consumer(struct kafka_broker *kb, char *err, size_t errlen)
{
    int rc;
    if (kb->consumer) return 0;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    pthread_mutex_lock(&kb->tmu);
    if (!kb->track) kb->track = sf_kafka_track_new();
    pthread_mutex_unlock(&kb->tmu);
    const char *topics[] = { kb->t_tasks };
    kb->consumer = sf_kafka_consumer(kb, KAFKA_WORKER, kb->group, topics, 1, &rc, err, errlen);
    return rc;
}

/* 0: a message to hand out; -ESTALE: skip it; -errno: a consumer error. */
static int check_message(struct kafka_broker *kb, const rd_kafka_message_t *m, char *err, size_t errlen)
{
    if (!m->err) return 0;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(kb->consumer, why, sizeof(why));
        sf_errf(err, errlen, "kafka consumer failed for good: %s", why);
        return -ENOTRECOVERABLE;
    }
    /* Broker down, leader moves...: librdkafka recovers by itself. */
    SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka consumer: %s", rd_kafka_message_errstr(m));
    return -ESTALE;
}

static int to_delivery(struct kafka_broker *kb, const rd_kafka_message_t *m, struct sf_delivery *d)
{
    uint32_t epoch;
    pthread_mutex_lock(&kb->tmu);
    int rc = sf_kafka_track_deliver(kb->track, m->partition, m->offset, &epoch);
    pthread_mutex_unlock(&kb->tmu);
    if (rc < 0) return rc;                      /* the partition is no longer ours */
    memset(d, 0, sizeof(*d));
    d->data = sf_xstrndup(m->payload ? m->payload : "", m->payload ? m->len : 0);
    d->len = m->payload ? m->len : 0;
    snprintf(d->handle, sizeof(d->handle), "t:%" PRId32 ":%" PRId64 ":%" PRIu32, m->partition,
             m->offset, epoch);
    if (!m->payload)
        snprintf(d->problem, sizeof(d->problem), "message at %s[%d]@%lld has no value",
                 kb->t_tasks, (int)m->partition, (long long)m->offset);
    return 0;
}

/* Poll without waiting and hold what comes, pausing once four messages per
 * slot are held: keeps the group membership alive while every slot is busy. */
static void keepalive(struct kafka_broker *kb)
{
    if (pthread_mutex_trylock(&kb->cmu)) return;      /* someone is polling right now */
    for (int i = 0; kb->consumer && i < 100; i++) {
        char err[256];
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kb->consumer, 0);
        if (!m) break;
        if (check_message(kb, m, err, sizeof(err)) < 0) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (kb->n_held == kb->cap_held) {
            kb->cap_held = kb->cap_held ? 2 * kb->cap_held : 16;
            kb->held = sf_xrealloc(kb->held, kb->cap_held * sizeof(*kb->held));
        }
        kb->held[kb->n_held++] = m;
        if (kb->n_held >= 4 * (kb->slots_hint ? kb->slots_hint : 1)) set_paused(kb, true);
    }
    pthread_mutex_unlock(&kb->cmu);
}

int sf_kafka_fetch(struct sf_broker *b, struct sf_delivery *out, size_t max, int block_ms,
                   size_t *n, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc = 0;
    *n = 0;
    if (!max) return 0;
    pthread_mutex_lock(&kb->cmu);
    if ((rc = ensure_consumer(kb, err, errlen)) < 0) goto out;
    if (max > kb->slots_hint) kb->slots_hint = max;
    set_paused(kb, false);                      /* a slot is free */
    size_t used = 0;
    for (; used < kb->n_held && *n < max; used++)
        if (to_delivery(kb, kb->held[used], &out[*n]) == 0) (*n)++;
    for (size_t i = 0; i < used; i++) rd_kafka_message_destroy(kb->held[i]);
    if (used) {
        memmove(kb->held, kb->held + used, (kb->n_held - used) * sizeof(*kb->held));
        kb->n_held -= used;
    }
    int64_t deadline = sf_now_ms() + (block_ms > 0 ? block_ms : 0);
    while (*n < max) {
        int64_t left = deadline - sf_now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kb->consumer, *n || left <= 0 ? 0 : (int)left);
        if (!m) break;
        int mrc = check_message(kb, m, err, errlen);
        if (mrc == 0 && to_delivery(kb, m, &out[*n]) == 0) (*n)++;
        rd_kafka_message_destroy(m);
        if (mrc < 0 && mrc != -ESTALE) {
            rc = *n ? 0 : mrc;
            break;
        }
    }
out:
    pthread_mutex_unlock(&kb->cmu);
    return rc;
}

int sf_kafka_renew(struct sf_broker *b, const char *const *handles, size_t n, bool *lost,
                   char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    (void)err;
    (void)errlen;
    keepalive(kb);
    pthread_mutex_lock(&kb->tmu);
    for (size_t i = 0; i < n; i++) {
        int32_t p;
        int64_t off;
        uint32_t epoch;
        lost[i] = !kb->track || parse_handle(handles[i], &p, &off, &epoch) < 0 ||
                  !sf_kafka_track_owned(kb->track, p, epoch);
    }
    pthread_mutex_unlock(&kb->tmu);
    return 0;
}

/* The delivery is settled: let the contiguous finished prefix be committed. */
static void ack(struct kafka_broker *kb, const char *handle)
{
    int32_t p;
    int64_t off, commit;
    uint32_t epoch;
    if (parse_handle(handle, &p, &off, &epoch) < 0) return;
    pthread_mutex_lock(&kb->tmu);
    int rc = kb->track ? sf_kafka_track_finish(kb->track, p, epoch, off, &commit) : -ESTALE;
    if (rc == 1) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, kb->t_tasks, p)->offset = commit;
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(kb->consumer, l);
        if (e)
            SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka: storing offset %s[%d]@%lld: %s",
                   kb->t_tasks, (int)p, (long long)commit, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
    } else if (rc < 0) {
        SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL,
               "kafka: %s finished after its partition moved; the new owner runs it again", handle);
    }
    pthread_mutex_unlock(&kb->tmu);
}

static bool owned(struct kafka_broker *kb, const char *handle)
{
    int32_t p;
    int64_t off;
    uint32_t epoch;
    if (parse_handle(handle, &p, &off, &epoch) < 0) return false;
    pthread_mutex_lock(&kb->tmu);
    bool mine = kb->track && sf_kafka_track_owned(kb->track, p, epoch);
    pthread_mutex_unlock(&kb->tmu);
    return mine;
}

/* Dead-letter headers: the reason and where the message came from. */
static int produce_dead(struct kafka_broker *kb, const char *handle, const char *raw, size_t len,
                        const char *reason, struct kafka_ticket *tk, char *err, size_t errlen)
{
    char part[16] = "", off[24] = "", at[24];
    int32_t p;
    int64_t o;
    uint32_t epoch;
    if (handle && parse_handle(handle, &p, &o, &epoch) == 0) {
        snprintf(part, sizeof(part), "%" PRId32, p);
        snprintf(off, sizeof(off), "%" PRId64, o);
    }
    snprintf(at, sizeof(at), "%lld", (long long)sf_wall_ms());
    const char *hdrs[] = { SF_KAFKA_H_REASON, reason, SF_KAFKA_H_SRC_TOPIC, kb->t_tasks,
                           SF_KAFKA_H_SRC_PARTITION, part, SF_KAFKA_H_SRC_OFFSET, off,
                           SF_KAFKA_H_FAILED_AT, at, NULL };
    return sf_kafka_produce(kb, kb->t_dlq, RD_KAFKA_PARTITION_UA, NULL, 0, raw, len, hdrs, tk,
                            err, errlen);
}

int sf_kafka_complete(struct sf_broker *b, const char *handle, const struct sf_completion *c,
                      char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_ticket *tr = sf_kafka_ticket_new(), *td = NULL, *tx = NULL, *tc = NULL;
    const char *hdrs[] = { SF_KAFKA_H_TASK_ID, c->task_id, NULL };
    char xerr[256];
    int rc = sf_kafka_produce(kb, kb->t_results, RD_KAFKA_PARTITION_UA, c->run_id, strlen(c->run_id),
                              c->result, c->result_len, hdrs, tr, err, errlen);
    if (rc == 0 && c->dead_raw) {
        td = sf_kafka_ticket_new();
        rc = produce_dead(kb, handle, c->dead_raw, c->dead_len, c->dead_reason, td, err, errlen);
    }
    /* The callback goes out with the result, before the offset is stored:
     * not atomic (no transactions), so a task that runs twice queues its
     * callback twice under the same delivery id (docs/kafka.md §8). */
    if (rc == 0 && c->callback) {
        tc = sf_kafka_ticket_new();
        rc = sf_kafka_cb_produce(kb, c->callback_id, c->callback, c->callback_len, tc, err, errlen);
    }
    /* reply_to is an extra copy for an integration; the results topic is
     * the record, so a bad reply_to topic is reported but does not hold the
     * task back. */
    if (rc == 0 && c->reply_to && *c->reply_to) {
        tx = sf_kafka_ticket_new();
        if (sf_kafka_produce(kb, c->reply_to, RD_KAFKA_PARTITION_UA, c->run_id, strlen(c->run_id),
                             c->result, c->result_len, hdrs, tx, xerr, sizeof(xerr)) < 0) {
            SF_LOG(b->cfg.log, SF_LOG_WARN, c->run_id, c->task_id, "reply_to %s: %s", c->reply_to, xerr);
            sf_kafka_ticket_unref(tx);
            tx = NULL;
        }
    }
    if (rc == 0) rc = sf_kafka_ticket_wait(tr, 30000, err, errlen);
    if (rc == 0 && td) rc = sf_kafka_ticket_wait(td, 30000, err, errlen);
    if (rc == 0 && tc) rc = sf_kafka_ticket_wait(tc, 30000, err, errlen);
    if (tx && sf_kafka_ticket_wait(tx, 5000, xerr, sizeof(xerr)) < 0)
        SF_LOG(b->cfg.log, SF_LOG_WARN, c->run_id, c->task_id, "reply_to %s: %s", c->reply_to, xerr);
    if (rc == 0 && handle) ack(kb, handle);
    sf_kafka_ticket_unref(tr);
    sf_kafka_ticket_unref(td);
    sf_kafka_ticket_unref(tx);
    sf_kafka_ticket_unref(tc);
    return rc;
}

int sf_kafka_retry(struct sf_broker *b, const char *handle, const char *task, size_t len,
                   int64_t delay_ms, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    char due[24];
    /* Not ours any more: the new owner runs this attempt again and decides. */
    if (!owned(kb, handle)) return 1;
    snprintf(due, sizeof(due), "%lld", (long long)(sf_wall_ms() + (delay_ms > 0 ? delay_ms : 0)));
    const char *hdrs[] = { SF_KAFKA_H_DUE, due, NULL };
    int rc = sf_kafka_produce_sync(kb, kb->t_retry, RD_KAFKA_PARTITION_UA, NULL, 0, task, len, hdrs,
                                   NULL, NULL, err, errlen);
    if (rc == 0) ack(kb, handle);
    return rc;
}

int sf_kafka_dead(struct sf_broker *b, const char *handle, const char *raw, size_t len,
                  const char *reason, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_ticket *tk = sf_kafka_ticket_new();
    int rc = produce_dead(kb, handle, raw, len, reason, tk, err, errlen);
    if (rc == 0) rc = sf_kafka_ticket_wait(tk, 30000, err, errlen);
    if (rc == 0) ack(kb, handle);
    sf_kafka_ticket_unref(tk);
    return rc;
}

/* The consumer group is the worker registry (stats counts its members);
 * a heartbeat only keeps the consumer polled. */
int sf_kafka_heartbeat(struct sf_broker *b, const struct sf_worker_info *wi, bool leaving,
                       char *err, size_t errlen)
{
    (void)wi;
    (void)leaving;
    (void)err;
    (void)errlen;
    keepalive(KB(b));
    return 0;
}

/* --- the retry mover (maintain: the worker's loop thread) -------------------------- */

static struct kafka_retry_part *retry_part(struct kafka_broker *kb, int32_t p)
{
    if (p >= kb->n_retry_parts) {
        kb->retry_parts = sf_xrealloc(kb->retry_parts, (size_t)(p + 1) * sizeof(*kb->retry_parts));
        memset(kb->retry_parts + kb->n_retry_parts, 0,
               (size_t)(p + 1 - kb->n_retry_parts) * sizeof(*kb->retry_parts));
        kb->n_retry_parts = p + 1;
    }
    return &kb->retry_parts[p];
}

static void retry_part_clear(struct kafka_retry_part *rp)
{
    for (size_t i = 0; i < rp->n; i++) {
        rd_kafka_message_destroy(rp->v[i].m);
        sf_kafka_ticket_unref(rp->v[i].tk);
    }
    rp->n = 0;
    rp->paused = false;
}

void sf_kafka_retry_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                              rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_broker *kb = opaque;
    if (e != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        sf_kafka_rebalance_commit(rk, e);
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].partition < kb->n_retry_parts)
                retry_part_clear(&kb->retry_parts[parts->elems[i].partition]);
    }
    sf_kafka_rebalance_apply(rk, e, parts, false, kb->base.cfg.log, "kafka retry");
}

static void retry_pause(struct kafka_broker *kb, int32_t p, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, kb->t_retry, p);
    if (pause) rd_kafka_pause_partitions(kb->retry_consumer, l);
    else rd_kafka_resume_partitions(kb->retry_consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    retry_part(kb, p)->paused = pause;
}

static int retry_consumer(struct kafka_broker *kb, char *err, size_t errlen)
{
    int rc;
    if (kb->retry_consumer) return 0;
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    const char *topics[] = { kb->t_retry };
    kb->retry_consumer = sf_kafka_consumer(kb, KAFKA_RETRY, kb->retry_group, topics, 1, &rc, err,
                                           errlen);
    return rc;
}

/* Move the due head entries of one partition; returns how many were
 * delivered (and their offsets stored) this round. */
static int retry_move(struct kafka_broker *kb, int32_t p, int64_t now)
{
    struct kafka_retry_part *rp = &kb->retry_parts[p];
    int moved = 0;
    size_t done = 0;
    char err[256];
    /* Settled prefix: delivered -> store the offset after it. */
    for (; done < rp->n && rp->v[done].tk; done++) {
        struct kafka_ticket *tk = rp->v[done].tk;
        pthread_mutex_lock(&tk->mu);
        bool fin = tk->done;
        rd_kafka_resp_err_t e = tk->err;
        pthread_mutex_unlock(&tk->mu);
        if (!fin) break;
        if (e) {                                  /* try this one again below */
            sf_kafka_ticket_unref(tk);
            rp->v[done].tk = NULL;
            break;
        }
    }
    if (done) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, kb->t_retry, p)->offset = rp->v[done - 1].m->offset + 1;
        rd_kafka_offsets_store(kb->retry_consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
        for (size_t i = 0; i < done; i++) {
            rd_kafka_message_destroy(rp->v[i].m);
            sf_kafka_ticket_unref(rp->v[i].tk);
        }
        memmove(rp->v, rp->v + done, (rp->n - done) * sizeof(*rp->v));
        rp->n -= done;
        moved = (int)done;
    }
    /* Produce what is due, in order; stop at the first one that is not. */
    for (size_t i = 0; i < rp->n; i++) {
        if (rp->v[i].tk) continue;
        const rd_kafka_message_t *m = rp->v[i].m;
        char *due = sf_kafka_header(m, SF_KAFKA_H_DUE);
        int64_t at = due ? strtoll(due, NULL, 10) : 0;   /* no or bad header: due now */
        free(due);
        if (at > now) {
            if (!rp->paused) retry_pause(kb, p, true);
            return moved;
        }
        struct kafka_ticket *tk = sf_kafka_ticket_new();
        if (sf_kafka_produce(kb, kb->t_tasks, RD_KAFKA_PARTITION_UA, m->key, m->key_len, m->payload,
                             m->len, NULL, tk, err, sizeof(err)) < 0) {
            sf_kafka_ticket_unref(tk);
            SF_LOG(kb->base.cfg.log, SF_LOG_WARN, NULL, NULL, "kafka: moving a retry back: %s", err);
            return moved;
        }
        rp->v[i].tk = tk;
    }
    if (rp->paused) retry_pause(kb, p, false);
    return moved;
}

int sf_kafka_maintain(struct sf_broker *b, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc, moved = 0;
    int64_t now = sf_wall_ms();
    keepalive(kb);
    if ((rc = retry_consumer(kb, err, errlen)) < 0) return rc;
    for (int i = 0; i < 500; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kb->retry_consumer, 0);
        if (!m) break;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        struct kafka_retry_part *rp = retry_part(kb, m->partition);
        if (rp->n == rp->cap) {
            rp->cap = rp->cap ? 2 * rp->cap : 16;
            rp->v = sf_xrealloc(rp->v, rp->cap * sizeof(*rp->v));
        }
        rp->v[rp->n++] = (struct retry_entry){ .m = m, .tk = NULL };
    }
    for (int32_t p = 0; p < kb->n_retry_parts; p++)
        if (kb->retry_parts[p].n) moved += retry_move(kb, p, now);
    return moved;
}

void sf_kafka_worker_close(struct kafka_broker *kb)
{
    if (kb->consumer) {
        pthread_mutex_lock(&kb->cmu);
        drop_held(kb, NULL);
        /* close: revoke (our callback commits what is stored), leave the group. */
        rd_kafka_consumer_close(kb->consumer);
        rd_kafka_destroy(kb->consumer);
        kb->consumer = NULL;
        pthread_mutex_unlock(&kb->cmu);
    }
    free(kb->held);
    kb->held = NULL;
    if (kb->retry_consumer) {
        rd_kafka_consumer_close(kb->retry_consumer);
        for (int p = 0; p < kb->n_retry_parts; p++) retry_part_clear(&kb->retry_parts[p]);
        rd_kafka_destroy(kb->retry_consumer);
        kb->retry_consumer = NULL;
    }
    for (int p = 0; p < kb->n_retry_parts; p++) free(kb->retry_parts[p].v);
    free(kb->retry_parts);
    kb->retry_parts = NULL;
    kb->n_retry_parts = 0;
    sf_kafka_track_free(kb->track);
    kb->track = NULL;
}
