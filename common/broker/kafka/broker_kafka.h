/* common/broker/kafka/broker_kafka.h: internals of the Kafka broker shared by its files
 * (other modules use broker.h; docs/kafka.md and docs/protocol.md describe
 * the layout for operators and integrations).
 *   broker_kafka.c         ops table, URL, client configuration, the shared
 *                          producer with its delivery-report thread, topics
 *   broker_kafka_track.c   per-partition offset bookkeeping (pure logic)
 *   broker_kafka_worker.c  worker side: consumer group, fetch with pause,
 *                          complete/retry/dead, the retry-topic mover
 *   broker_kafka_coord.c   coordinator side: publish, results, run state and
 *                          claims, stats, claim-check blobs
 *   broker_kafka_multi.c   results_many: one reader over many runs' results
 *   broker_kafka_cb.c      HTTP callback deliveries: callbacks topics, claim,
 *                          settle, the callbacks dead list
 *   broker_kafka_admin.c   operations: workers, runs, task dead letters,
 *                          run documents
 *   broker_kafka_sub.c     serve's submissions: the submissions topic in
 *                          the coordinators' group, fetch and ack
 *
 * Threads. librdkafka runs its own threads; the only code of ours they call
 * is the log callback (sf_log_event is thread-safe). Every other callback
 * (delivery reports, errors, rebalances) is served on a thread of ours:
 * delivery reports and producer errors on the producer's poll thread
 * (kafka_broker.poller), consumer callbacks inside rd_kafka_consumer_poll on
 * whichever thread holds the consumer's mutex.
 */
#ifndef SF_BROKER_KAFKA_H
#define SF_BROKER_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* Header names on the wire (docs/protocol.md, "## Kafka"). */
#define SF_KAFKA_H_TASK_ID "sf-task-id"
#define SF_KAFKA_H_DUE "sf-due-ms"
#define SF_KAFKA_H_REASON "reason"
#define SF_KAFKA_H_SRC_TOPIC "sf-source-topic"
#define SF_KAFKA_H_SRC_PARTITION "sf-source-partition"
#define SF_KAFKA_H_SRC_OFFSET "sf-source-offset"
#define SF_KAFKA_H_FAILED_AT "sf-failed-at-ms"
#define SF_KAFKA_H_HANDLED "sf-handled"

#define SF_KAFKA_DEFAULT_PARTITIONS 12
/* Topic-level max.message.bytes: tasks/results/dlq carry claim-checked
 * messages; blobs carry up to the largest agent output (16 MiB by default)
 * once JSON-escaped. */
#define SF_KAFKA_MSG_MAX (16 << 20)
#define SF_KAFKA_BLOB_MAX (64 << 20)

/* --- offset bookkeeping (broker_kafka_track.c; not thread-safe: callers
 * hold kafka_broker.tmu) ----------------------------------------------------
 * Tasks of one partition finish out of order; only the contiguous finished
 * prefix may be committed. An assignment epoch per partition tells a
 * completion of the current assignment from a stale one (the partition was
 * revoked meanwhile, maybe assigned back). */
struct sf_kafka_track;
struct sf_kafka_track *sf_kafka_track_new(void);
void sf_kafka_track_free(struct sf_kafka_track *t);          /* NULL is a no-op */
/* The partition is ours from now on: a new epoch, returned. */
uint32_t sf_kafka_track_assign(struct sf_kafka_track *t, int32_t p);
/* The partition is no longer ours: its in-flight offsets are forgotten. */
void sf_kafka_track_revoke(struct sf_kafka_track *t, int32_t p);
/* A message was handed out: 0 and *epoch, or -ESTALE when p is not ours. */
int sf_kafka_track_deliver(struct sf_kafka_track *t, int32_t p, int64_t off, uint32_t *epoch);
/* The message at off finished. 1 with *commit = next offset to store when the
 * finished prefix grew; 0 when an earlier one is still running; -ESTALE when
 * (p, epoch) is not the current assignment or off is unknown. */
int sf_kafka_track_finish(struct sf_kafka_track *t, int32_t p, uint32_t epoch, int64_t off,
                          int64_t *commit);
bool sf_kafka_track_owned(const struct sf_kafka_track *t, int32_t p, uint32_t epoch);
size_t sf_kafka_track_inflight(const struct sf_kafka_track *t);

/* --- the backend's state -------------------------------------------------- */

/* One produced message someone waits for (or acts on) when its delivery
 * report arrives. Reference-counted: the waiter and the report each hold
 * one. 'on_report' (may be NULL) runs on the poll thread. */
struct kafka_broker;
struct kafka_ticket {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    void (*on_report)(struct kafka_broker *kb, struct kafka_ticket *tk);
    char *run_id, *task_id;      /* publish: the marker written on success */
};

struct kafka_retry_part;         /* broker_kafka_worker.c */

struct kafka_broker {
    struct sf_broker base;
    char *bootstrap;
    char **conf;                 /* user settings "k=v": env first, then flags */
    size_t n_conf;
    int partitions;              /* for topics created here */
    int replication;             /* -1: broker default */
    int64_t ttl_ms, lease_ms;
    char *t_tasks, *t_retry, *t_dlq, *t_results, *t_runs, *t_blobs;
    char *group, *retry_group;
    /* Callbacks (broker_kafka_cb.c) and the dead letters' "handled" marks
     * (broker_kafka_admin.c): named per queue like the task topics. */
    char *t_cb, *t_cb_retry, *t_cb_dead, *t_dlq_handled, *cb_group;
    struct kafka_cb *cb;         /* the callbacks consumer; NULL until first claim */
    char *t_sub, *sub_group;     /* serve's submissions (broker_kafka_sub.c) */
    struct kafka_sub *sub;       /* its consumer; NULL until serve's first fetch */

    rd_kafka_t *producer;        /* thread-safe; shared by every caller */
    pthread_t poller;
    bool poller_started;
    atomic_int stop;
    pthread_mutex_t mu;          /* guards fatal, runs cache, topic sizes */
    char fatal[256];             /* non-empty: the producer failed for good */
    bool topics_ok;
    int n_results_parts, n_runs_parts;
    struct kafka_run *runs;      /* broker_kafka_coord.c: run state cache */

    /* Worker side (broker_kafka_worker.c). cmu: the consumer and the held
     * queue (fetch, and the keep-alive polls from renew/heartbeat/maintain);
     * tmu: the offset tracker (also taken by completing pool threads, and by
     * the rebalance callback while cmu is held: order cmu -> tmu). */
    pthread_mutex_t cmu, tmu;
    rd_kafka_t *consumer;
    struct sf_kafka_track *track;
    rd_kafka_message_t **held;   /* polled while every slot was busy */
    size_t n_held, cap_held;
    size_t slots_hint;           /* largest 'max' fetch was called with */
    bool paused;
    int64_t last_fetch_ms;
    rd_kafka_t *retry_consumer;  /* loop thread (maintain) only */
    struct kafka_retry_part *retry_parts;
    int n_retry_parts;

    /* Coordinator side: results reader (rmu: results() may be called from
     * several threads, one at a time). */
    pthread_mutex_t rmu;
    rd_kafka_t *reader;
    char reader_run[128];
    int32_t reader_part;
    int64_t reader_pos, reader_hwm;
    json_t *reader_seen;         /* task ids already returned (results dedup) */
    struct kafka_multi *multi;   /* results_many's reader (broker_kafka_multi.c) */
};

#define KB(b) ((struct kafka_broker *)(b))

/* broker_kafka.c */
enum kafka_role { KAFKA_PRODUCER, KAFKA_WORKER, KAFKA_RETRY, KAFKA_READER, KAFKA_ADMIN,
                  KAFKA_CALLBACKS, KAFKA_SUBMISSIONS };
/* A configured client of 'role'. NULL with the reason in err (never showing
 * a secret value). group may be NULL (a unique reader group is made up). */
rd_kafka_t *sf_kafka_client(struct kafka_broker *kb, enum kafka_role role, const char *group,
                            char *err, size_t errlen);
/* A client of 'role' in 'group' subscribed to topics[0..n). NULL with the
 * reason in err (the client is destroyed: a caller never keeps a consumer
 * that did not subscribe); *rc (may be NULL) gets -errno. */
rd_kafka_t *sf_kafka_consumer(struct kafka_broker *kb, enum kafka_role role, const char *group,
                              const char *const *topics, size_t n, int *rc, char *err,
                              size_t errlen);
/* The steps every consumer's rebalance callback shares (worker, retry,
 * callbacks, submissions), around its own bookkeeping:
 *   revoked: sf_kafka_rebalance_commit (what was stored is committed unless
 *            the assignment was lost, so the next owner starts right after
 *            it), forget the partitions, sf_kafka_rebalance_apply;
 *   assigned: note the partitions, sf_kafka_rebalance_apply.
 * apply assigns (cooperatively or eagerly, as the group runs) and sets the
 * pause flag to 'paused' — librdkafka keeps a partition's flag across
 * unassign and assign, so one paused before a lost assignment would come
 * back paused and never be fetched — or unassigns; an error is logged as
 * "<what> rebalance: ...". */
void sf_kafka_rebalance_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e);
void sf_kafka_rebalance_apply(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                              rd_kafka_topic_partition_list_t *parts, bool paused,
                              const struct sf_log *lg, const char *what);
/* Every partition of topic in *out (the caller destroys it), with the
 * offsets rk's group has committed when 'committed' (else left invalid).
 * 0, or -errno with "topic: reason". */
int sf_kafka_partitions(rd_kafka_t *rk, const char *topic, bool committed,
                        rd_kafka_topic_partition_list_t **out, char *err, size_t errlen);
/* librdkafka error -> -errno (transient ones as broker.h lists them). */
int sf_kafka_errno(rd_kafka_resp_err_t e);
/* Topics exist (created on first use); idempotent, cached. */
int sf_kafka_ensure_topics(struct kafka_broker *kb, char *err, size_t errlen);

struct kafka_ticket *sf_kafka_ticket_new(void);
void sf_kafka_ticket_unref(struct kafka_ticket *tk);
/* Produce one message; the ticket (may be NULL) gets the delivery report.
 * hdrs: NULL-terminated name/value pairs (values are C strings). */
int sf_kafka_produce(struct kafka_broker *kb, const char *topic, int32_t partition,
                     const char *key, size_t keylen, const void *val, size_t len,
                     const char *const *hdrs, struct kafka_ticket *tk, char *err, size_t errlen);
/* Wait for the report: 0, or -errno with the reason; -ETIMEDOUT after wait_ms. */
int sf_kafka_ticket_wait(struct kafka_ticket *tk, int64_t wait_ms, char *err, size_t errlen);
/* Produce and wait for the delivery: the common synchronous case. */
int sf_kafka_produce_sync(struct kafka_broker *kb, const char *topic, int32_t partition,
                          const char *key, size_t keylen, const void *val, size_t len,
                          const char *const *hdrs, int32_t *part_out, int64_t *off_out,
                          char *err, size_t errlen);
/* The partition librdkafka's murmur2 partitioner (the Java client's
 * default) picks for 'key' among n partitions. */
int32_t sf_kafka_partition_for(const char *key, int32_t n);
/* A header value as a NUL-terminated copy (malloc'd) or NULL. */
char *sf_kafka_header(const rd_kafka_message_t *m, const char *name);
/* Low and high watermarks of one partition. A leader just elected or
 * moving answers "not leader" (and a topic just created "unknown
 * partition") for a moment: transient answers are asked again for up to
 * 30 s. 0, or -errno with "watermarks of topic[part]: reason". */
int sf_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t part, int64_t *lo, int64_t *hi,
                        char *err, size_t errlen);
/* Read the messages of one partition in [from, hwm-at-start) through a
 * short-lived reader; cb returns 1 to stop early. 0 or -errno. */
int sf_kafka_scan(struct kafka_broker *kb, const char *topic, int32_t part, int64_t from,
                  int (*cb)(const rd_kafka_message_t *m, void *arg), void *arg,
                  char *err, size_t errlen);

/* broker_kafka_worker.c (the ops) */
int sf_kafka_fetch(struct sf_broker *b, struct sf_delivery *out, size_t max, int block_ms,
                   size_t *n, char *err, size_t errlen);
int sf_kafka_renew(struct sf_broker *b, const char *const *handles, size_t n, bool *lost,
                   char *err, size_t errlen);
int sf_kafka_complete(struct sf_broker *b, const char *handle, const struct sf_completion *c,
                      char *err, size_t errlen);
int sf_kafka_retry(struct sf_broker *b, const char *handle, const char *task, size_t len,
                   int64_t delay_ms, char *err, size_t errlen);
int sf_kafka_dead(struct sf_broker *b, const char *handle, const char *raw, size_t len,
                  const char *reason, char *err, size_t errlen);
int sf_kafka_heartbeat(struct sf_broker *b, const struct sf_worker_info *wi, bool leaving,
                       char *err, size_t errlen);
int sf_kafka_maintain(struct sf_broker *b, char *err, size_t errlen);
void sf_kafka_worker_close(struct kafka_broker *kb);
/* The consumers' rebalance callbacks (run inside rd_kafka_consumer_poll). */
void sf_kafka_worker_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                               rd_kafka_topic_partition_list_t *parts, void *opaque);
void sf_kafka_retry_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                              rd_kafka_topic_partition_list_t *parts, void *opaque);

/* broker_kafka_coord.c (the ops) */
int sf_kafka_publish(struct sf_broker *b, const char *run_id, const char *task_id, int priority,
                     const char *data, size_t len, char *err, size_t errlen);
int sf_kafka_results(struct sf_broker *b, const char *run_id, char *cursor, size_t cursor_len,
                     char **out, size_t *lens, size_t max, int block_ms, size_t *n,
                     char *err, size_t errlen);
int sf_kafka_state_get(struct sf_broker *b, const char *run_id, const char *field, char **val,
                       char *err, size_t errlen);
int sf_kafka_state_set(struct sf_broker *b, const char *run_id, const char *field,
                       const char *val, char *err, size_t errlen);
int sf_kafka_stats(struct sf_broker *b, struct sf_queue_stats *st, char *err, size_t errlen);
int sf_kafka_blob_put(struct sf_broker *b, const char *data, size_t len, char *ref,
                      size_t reflen, char *err, size_t errlen);
int sf_kafka_blob_get(struct sf_broker *b, const char *ref, char **data, size_t *len,
                      char *err, size_t errlen);
void sf_kafka_coord_close(struct kafka_broker *kb);
int sf_kafka_run_claim(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                       struct sf_run_owner *found, char *err, size_t errlen);
void sf_kafka_run_forget(struct sf_broker *b, const char *run_id);
/* broker_kafka_multi.c */
int sf_kafka_results_many(struct sf_broker *b, struct sf_run_cursor *runs, size_t nruns, char **out,
                          size_t *lens, size_t *which, size_t max, int block_ms, size_t *n,
                          char *err, size_t errlen);
void sf_kafka_multi_close(struct kafka_broker *kb);
/* Called on the poll thread when a published task was delivered. */
void sf_kafka_publish_report(struct kafka_broker *kb, struct kafka_ticket *tk);
/* The partition of sandfleet.runs that holds keys of run_id. */
int32_t sf_kafka_runs_partition(struct kafka_broker *kb, const char *run_id);

/* broker_kafka_cb.c (the ops, plus what complete() and the client use) */
int sf_kafka_cb_enqueue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        const char *once_key, char *err, size_t errlen);
int sf_kafka_cb_claim(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                      size_t max, size_t *n, char *err, size_t errlen);
int sf_kafka_cb_settle(struct sf_broker *b, const char *id, const char *token,
                       enum sf_callback_settle how, const char *rec, size_t len, int64_t delay_ms,
                       char *err, size_t errlen);
int sf_kafka_cb_list(struct sf_broker *b, bool dead, size_t max, json_t **out, char *err,
                     size_t errlen);
int sf_kafka_cb_requeue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                        char *err, size_t errlen);
int sf_kafka_cb_purge(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                      char *err, size_t errlen);
/* Produce a delivery record to the callbacks topic, due now (tk: as
 * sf_kafka_produce). complete() calls it before it stores the offset. */
int sf_kafka_cb_produce(struct kafka_broker *kb, const char *id, const char *rec, size_t len,
                        struct kafka_ticket *tk, char *err, size_t errlen);
void sf_kafka_cb_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                           rd_kafka_topic_partition_list_t *parts, void *opaque);
void sf_kafka_cb_close(struct kafka_broker *kb);

/* broker_kafka_sub.c (the ops; fetch from serve's reader thread, ack from
 * any thread) */
int sf_kafka_sub_fetch(struct sf_broker *b, const char *consumer, bool pending,
                       struct sf_delivery *out, size_t max, int block_ms, size_t *n,
                       char *err, size_t errlen);
int sf_kafka_sub_ack(struct sf_broker *b, const char *handle, char *err, size_t errlen);
void sf_kafka_sub_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                            rd_kafka_topic_partition_list_t *parts, void *opaque);
void sf_kafka_sub_close(struct kafka_broker *kb);

/* broker_kafka_admin.c (the ops) */
int sf_kafka_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen);
int sf_kafka_runs(struct sf_broker *b, json_t **out, char *err, size_t errlen);
int sf_kafka_dead_list(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen);
int sf_kafka_dead_requeue(struct sf_broker *b, const char *id, const char *task, size_t len,
                          const char *run_id, const char *task_id, char *err, size_t errlen);
int sf_kafka_dead_purge(struct sf_broker *b, const char *const *ids, size_t n, char *err,
                        size_t errlen);
int sf_kafka_run_doc_put(struct sf_broker *b, const char *run_id, const char *doc, size_t len,
                         const char *reply_to, char *err, size_t errlen);
int sf_kafka_run_doc_get(struct sf_broker *b, const char *run_id, char **doc, char *err,
                         size_t errlen);
/* Dead letters an operator has not replayed or purged yet (stats). */
int sf_kafka_dead_count(struct kafka_broker *kb, int64_t *count, char *err, size_t errlen);
/* The last value per key of a (compacted) single-partition topic, as a JSON
 * object key -> value (strings; tombstones remove the key). */
int sf_kafka_read_table(struct kafka_broker *kb, const char *topic, int32_t part, json_t **out,
                        char *err, size_t errlen);

#endif
