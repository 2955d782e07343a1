/* common/broker/broker.h: one broker interface between the coordinator and the
 * worker fleet (docs/protocol.md, docs/kafka.md). A backend fills a struct of
 * function pointers (like hiredis' adapters); sf_broker_new picks it by the
 * URL scheme:
 *   redis://[user:pass@]host[:port][/db]   broker_redis.c (Redis Streams)
 *   kafka://host:port[,host:port...]       broker_kafka*.c (librdkafka; docs/kafka.md)
 *
 * Model (backend-neutral):
 * - A *delivery* is one task message as the broker handed it over: the raw
 *   bytes (untouched, so they can be dead-lettered as they came) plus an
 *   opaque handle (Redis: the stream entry id; Kafka: "partition:offset").
 *   A delivery is leased to this worker until it is completed, retried or
 *   dead-lettered; the owner keeps the lease alive with renew(). Deliveries
 *   whose owner died come back through fetch() (reclaimed = true).
 * - complete(): the result is written (and dead-lettered too when the final
 *   attempt failed) and the delivery acknowledged in ONE atomic step. One
 *   result per task id is kept; a duplicate completion only acknowledges.
 * - retry(): the worker owns retries. The next attempt is stored for later
 *   (delay chosen by the caller: backoff with jitter) and the delivery is
 *   acknowledged, atomically. maintain() moves due retries back to the queue.
 * - dead(): raw bytes + reason to the dead-letter stream/topic, acknowledged.
 * - Coordinator side: publish() a task once per task id (a resumed run
 *   cannot publish twice), results() reads the run's results from a cursor,
 *   state_get/state_set keep the run's state for resume, stats() for status.
 * - Claim-check: payloads above cfg.claim_check_bytes are stored with
 *   blob_put() and the message carries "input_ref"/"output_ref" instead of
 *   "input"/"output". sf_broker_publish_task / sf_broker_complete_task /
 *   sf_broker_decode_* apply this, so backends only store and fetch bytes.
 *
 * Errors: functions return 0 (or a documented positive value) or -errno with
 * a message in the caller's err buffer. Transient failures (broker down,
 * restarting, loading) are -ECONNREFUSED, -ECONNRESET, -ETIMEDOUT or -EAGAIN:
 * callers retry with backoff (the backend reconnects on the next call).
 *
 * Threads: every function taking a struct sf_broker * is thread-safe, except
 * sf_broker_fetch (one thread: the worker's loop) and sf_broker_free. A backend
 * keeps a small pool of connections so a worker's pool threads can complete
 * or retry while the loop blocks in fetch.
 * Ownership: strings passed in are borrowed for the call; outputs are
 * malloc'd and owned by the caller.
 */
#ifndef SF_BROKER_H
#define SF_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "task.h"
#include "workflow.h"

#define SF_BROKER_DEFAULT_LEASE_MS 30000
#define SF_BROKER_DEFAULT_CLAIM_CHECK (512u << 10)
#define SF_BROKER_DEFAULT_TTL_S (7 * 24 * 3600)

struct sf_broker_cfg {
    const char *queue;          /* NULL = "default" */
    const char *consumer;       /* this worker's id (fetch/renew/heartbeat); NULL for a coordinator */
    int64_t lease_ms;           /* 0 = 30 s: an idle delivery older than this is reclaimed */
    size_t claim_check_bytes;   /* 0 = 512 KiB: larger inputs/outputs go to blobs */
    int64_t ttl_s;              /* 0 = 7 days: blobs, results and run state expire */
    int connect_timeout_ms;     /* 0 = 2000 */
    int64_t priority_aging_ms;  /* 0 = 60 s: a task is passed only by tasks one
                                   priority higher queued less than this after it
                                   (per level; docs/protocol.md §9) */
    const struct sf_log *log;   /* may be NULL; used for reconnect notices */
    /* Kafka only: "key=value" client settings (--kafka-config), handed to
     * librdkafka after SANDFLEET_KAFKA_* variables; "sandfleet.*" keys are
     * the backend's own (docs/kafka.md). Borrowed; the backend copies them. */
    char *const *kafka_config;
    size_t n_kafka_config;
    /* Optional: called (from any thread) each time the backend gets a
     * connection back after losing it, where it logs "reconnected"; the
     * daemons count these for sandfleet_broker_reconnects_total. */
    void (*on_reconnect)(void *arg);
    void *on_reconnect_arg;
    /* --reply-prefixes: comma-separated namespaces a task's or submission's
     * reply_to may name besides the backend's own reply namespace
     * (sf_broker_reply_to_check). NULL: that namespace only. */
    const char *reply_prefixes;
};

struct sf_delivery {
    char *data;                 /* raw message bytes, NUL-terminated; owned */
    size_t len;
    char handle[96];            /* opaque to callers */
    bool reclaimed;             /* taken over from a worker whose lease ran out */
    char problem[160];          /* non-empty: the envelope itself is bad (e.g. no
                                   'task' field); dead-letter 'data' with this */
    int band;                   /* priority band it came from (0 = the default
                                   stream; always 0 on a backend without bands) */
};
void sf_delivery_clear(struct sf_delivery *d);

/* What complete() writes, all borrowed. */
struct sf_completion {
    const char *task_id, *run_id;
    const char *reply_to;       /* NULL or an extra stream/topic for the result */
    const char *result;         /* encoded result (claim-check already applied) */
    size_t result_len;
    const char *dead_raw;       /* non-NULL: also dead-letter these raw bytes... */
    size_t dead_len;
    const char *dead_reason;    /* ...with this reason (the final attempt failed) */
    /* Non-NULL: enqueue this callback delivery record (callback.h) under
     * callback_id in the same atomic step, only when the result is new. */
    const char *callback_id;
    const char *callback;
    size_t callback_len;
    /* Non-NULL (zeroed by the caller): the slot this completion frees may
     * take its next delivery in the same round trip, into *next (next->data
     * stays NULL when none was taken: the queue was empty, priority bands
     * or a reclaim scan want the full fetch, or the backend cannot). One
     * delivery for the one slot: a worker never holds more than its slots. */
    struct sf_delivery *next;
};

/* A callback delivery taken by cb_claim: the record text and the fence
 * token that cb_settle must show (a delivery whose lease ran out and was
 * claimed again cannot be settled by its first claimer). */
struct sf_callback_claim {
    char *id, *record;          /* owned */
    size_t len;
    char token[40];
};

enum sf_callback_settle {
    SF_CALLBACK_SETTLE_DONE = 0,    /* delivered: forget it */
    SF_CALLBACK_SETTLE_RETRY,       /* store the updated record, due after delay_ms */
    SF_CALLBACK_SETTLE_DEAD,        /* move the updated record to the dead list */
    SF_CALLBACK_SETTLE_RELEASE,     /* give the lease back: due now (clean shutdown) */
};

struct sf_queue_stats {
    int64_t depth;              /* tasks in the queue, delivered or not, unacked */
    int64_t pending;            /* delivered to a worker, not yet acked */
    int64_t delayed;            /* retries waiting for their time */
    int64_t dead;               /* dead letters */
    int64_t workers;            /* workers with a heartbeat within 3 leases */
};

struct sf_worker_info {
    const char *id, *host, *sandbox;
    int pid;
    int concurrency, busy;
    int64_t started_ms;         /* wall clock */
    int64_t done, failed;       /* tasks finished since start */
    json_t *secrets;            /* names of the secrets it holds (never values); may be NULL */
};

/* Who a run belongs to (docs/security.md, "Front doors"). */
struct sf_run_owner {
    char *owner;                /* who may see it: "api:<token name>", "stream", "cli:<name>" */
    char *claim;                /* who may resume it: the same claim again resumes it */
    char *workflow;
};
void sf_run_owner_clear(struct sf_run_owner *o);

/* One run's place in its results, for results_many. */
struct sf_run_cursor {
    const char *run_id;         /* borrowed */
    char cursor[64];            /* as results()'s: "" = from the start; updated in place */
};

enum sf_e2b_beat {
    SF_E2B_BEAT = 0,            /* refresh */
    SF_E2B_BEAT_FIRST,          /* a new process: drop what an old one under this id left */
    SF_E2B_BEAT_LEAVING,        /* deregister */
};

struct sf_broker;
struct sf_broker_ops {
    const char *scheme;
    /* Names: reply_ns is where reply_to may point by default ("sf:reply:",
     * "sandfleet.reply."); own_ns covers the backend's own keys or topics,
     * which no operator prefix may reach ("sf:", "sandfleet."). */
    const char *reply_ns, *own_ns;
    /* Connect and prepare (e.g. create the consumer group). Call once after
     * sf_broker_new; retry with backoff while it returns a transient error
     * (the broker is not up yet). -EACCES: bad credentials. */
    int (*check)(struct sf_broker *b, char *err, size_t errlen);
    /* --- worker side ---------------------------------------------------- */
    /* Up to 'max' deliveries into out[0..*n), reclaimed ones first; blocks up
     * to block_ms when none is there (0: do not block). Loop thread only. */
    int (*fetch)(struct sf_broker *b, struct sf_delivery *out, size_t max, int block_ms,
                 size_t *n, char *err, size_t errlen);
    /* Extend the leases of these deliveries. lost[i] is set when handle i is
     * no longer ours (it was reclaimed, or already finished). */
    int (*renew)(struct sf_broker *b, const char *const *handles, size_t n, bool *lost,
                 char *err, size_t errlen);
    /* Write the result (+ dead letter) and ack, atomically. Returns 0 when
     * the result was stored, 1 when one for this task id existed (only acked). */
    int (*complete)(struct sf_broker *b, const char *handle, const struct sf_completion *c,
                    char *err, size_t errlen);
    /* Store 'task' (the next attempt, encoded) to be queued again after
     * delay_ms and ack the delivery, atomically. 1 when the delivery was no
     * longer ours (nothing stored: its new owner decides). */
    int (*retry)(struct sf_broker *b, const char *handle, const char *task, size_t len,
                 int64_t delay_ms, char *err, size_t errlen);
    /* Dead-letter raw bytes with a reason and ack, atomically. */
    int (*dead)(struct sf_broker *b, const char *handle, const char *raw, size_t len,
                const char *reason, char *err, size_t errlen);
    /* Register / refresh this worker; leaving = deregister on a clean exit. */
    int (*heartbeat)(struct sf_broker *b, const struct sf_worker_info *wi, bool leaving,
                     char *err, size_t errlen);
    /* Housekeeping any worker may run: queue due retries (and, with gates,
     * hand free slots and tokens to waiting tasks). Returns how many. */
    int (*maintain)(struct sf_broker *b, char *err, size_t errlen);
    /* --- gates and priorities (docs/protocol.md §9). NULL on a backend that
     * has neither (Kafka): sf_broker_task_supported refuses such tasks. --- */
    /* Before running a delivered task with a concurrency or rate key: 0 it
     * may start (its slot and token are taken), 1 it waits (moved to the
     * gate's waiting list and acked: forget the delivery; it comes back as a
     * new delivery when it may start), 2 the delivery is no longer ours.
     * raw: the message as delivered (what waits is exactly that). */
    int (*gate_enter)(struct sf_broker *b, const char *handle, const struct sf_task *t,
                      const char *raw, size_t len, char *err, size_t errlen);
    /* After a task that entered was settled (complete/retry/dead): its
     * concurrency slot goes back and waiting tasks are handed the free ones. */
    int (*gate_leave)(struct sf_broker *b, const char *handle, const struct sf_task *t,
                      char *err, size_t errlen);
    /* A task delivered from band 0 that asks for a priority: move the raw
     * message to its band (acked here). 0 moved, 1 the delivery was not ours. */
    int (*route)(struct sf_broker *b, const char *handle, int priority, const char *raw,
                 size_t len, char *err, size_t errlen);
    /* --- coordinator side ----------------------------------------------- */
    /* Publish an encoded task once per (run_id, task_id), in the band of
     * its priority: 0 published, 1 it was published before (a resumed run). */
    int (*publish)(struct sf_broker *b, const char *run_id, const char *task_id, int priority,
                   const char *data, size_t len, char *err, size_t errlen);
    /* Encoded results of run_id after 'cursor' (opaque text, "" = from the
     * start; updated in place, cursor_len >= 64). Up to 'max' into out[] /
     * lens[] (owned by the caller); blocks up to block_ms when none. */
    int (*results)(struct sf_broker *b, const char *run_id, char *cursor, size_t cursor_len,
                   char **out, size_t *lens, size_t max, int block_ms, size_t *n,
                   char *err, size_t errlen);
    /* Run state: small named values (*val NULL when unset). */
    int (*state_get)(struct sf_broker *b, const char *run_id, const char *field, char **val,
                     char *err, size_t errlen);
    int (*state_set)(struct sf_broker *b, const char *run_id, const char *field,
                     const char *val, char *err, size_t errlen);
    int (*stats)(struct sf_broker *b, struct sf_queue_stats *st, char *err, size_t errlen);
    /* Claim run_id for a new run, atomically: when nothing of run_id is
     * known (its state, results or document), record 'mine' (owner, claim,
     * workflow) as its state fields and return 0. Otherwise return 1 and
     * fill *found with what is recorded (each NULL when not recorded: a run
     * from before claims). sf_broker_claim_run decides what 1 means. */
    int (*run_claim)(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                     struct sf_run_owner *found, char *err, size_t errlen);
    /* results() for several runs at once, each from its own cursor (all
     * updated); out[k] is a result of runs[which[k]]. One thread at a time
     * (serve's result reader); max >= 1. */
    int (*results_many)(struct sf_broker *b, struct sf_run_cursor *runs, size_t nruns, char **out,
                        size_t *lens, size_t *which, size_t max, int block_ms, size_t *n,
                        char *err, size_t errlen);
    /* Drop what the backend caches about a finished run (may be NULL). */
    void (*run_forget)(struct sf_broker *b, const char *run_id);
    /* --- claim-check storage ---------------------------------------------- */
    /* Store bytes for cfg.ttl_s; writes the reference into ref. */
    int (*blob_put)(struct sf_broker *b, const char *data, size_t len, char *ref,
                    size_t reflen, char *err, size_t errlen);
    /* -ENOENT when the reference expired or never existed. */
    int (*blob_get)(struct sf_broker *b, const char *ref, char **data, size_t *len,
                    char *err, size_t errlen);
    /* --- operations: status and dead letters (broker_admin.c wraps these;
     * a backend may leave them NULL, the wrappers then say it is not
     * supported). JSON shapes are documented at the wrappers. ------------ */
    int (*workers)(struct sf_broker *b, json_t **out, char *err, size_t errlen);
    /* The concurrency and rate gates in use (docs/protocol.md §9). */
    int (*gates)(struct sf_broker *b, json_t **out, char *err, size_t errlen);
    int (*runs)(struct sf_broker *b, json_t **out, char *err, size_t errlen);
    int (*dead_list)(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen);
    /* Move dead letter 'id' back to the task queue as 'task' (already
     * rewritten by the caller) and forget the run's completion marker for
     * task_id (may be NULL), atomically. 1 moved, 0 no such dead letter. */
    int (*dead_requeue)(struct sf_broker *b, const char *id, const char *task, size_t len,
                        const char *run_id, const char *task_id, char *err, size_t errlen);
    /* Remove these dead letters (n == 0: all). Returns how many went. */
    int (*dead_purge)(struct sf_broker *b, const char *const *ids, size_t n, char *err,
                      size_t errlen);
    /* --- serve: submissions and run documents ----------------------------- */
    /* Up to 'max' workflow submissions for this consumer ('workflow' field
     * in d->data; handle = entry id). pending = true re-reads the
     * submissions this consumer took before and did not ack (a restarted
     * serve resumes them). Blocks up to block_ms when none. max == 0: take
     * nothing, only keep this consumer's group membership served (Kafka),
     * without blocking; serve calls it so while at --max-runs. */
    int (*sub_fetch)(struct sf_broker *b, const char *consumer, bool pending,
                     struct sf_delivery *out, size_t max, int block_ms, size_t *n,
                     char *err, size_t errlen);
    int (*sub_ack)(struct sf_broker *b, const char *handle, char *err, size_t errlen);
    /* Store a finished run's document (TTL as results) and, when reply_to is
     * not NULL, append it there (fields run_id, doc). */
    int (*run_doc_put)(struct sf_broker *b, const char *run_id, const char *doc, size_t len,
                       const char *reply_to, char *err, size_t errlen);
    /* *doc NULL when there is none (yet). */
    int (*run_doc_get)(struct sf_broker *b, const char *run_id, char **doc, char *err,
                       size_t errlen);
    /* --- callbacks (docs/protocol.md §8; broker_callback.c wraps these and
     * answers -ENOTSUP for a backend that leaves them NULL) -------------- */
    /* Queue a delivery record, due now. once_key non-NULL: only if that
     * marker was not set before (a resumed run queues its callback once).
     * 0 queued, 1 already queued once. */
    int (*cb_enqueue)(struct sf_broker *b, const char *id, const char *rec, size_t len,
                      const char *once_key, char *err, size_t errlen);
    /* Take up to max due deliveries, leased for lease_ms (then due again). */
    int (*cb_claim)(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                    size_t max, size_t *n, char *err, size_t errlen);
    /* Settle a claimed delivery (rec: the updated record for RETRY/DEAD).
     * 0 done, 1 the claim was no longer ours (nothing changed). */
    int (*cb_settle)(struct sf_broker *b, const char *id, const char *token,
                     enum sf_callback_settle how, const char *rec, size_t len, int64_t delay_ms,
                     char *err, size_t errlen);
    /* [{"id","due_in_ms" (pending only),"record"}...], at most max (0 = all). */
    int (*cb_list)(struct sf_broker *b, bool dead, size_t max, json_t **out, char *err,
                   size_t errlen);
    /* Move dead delivery id back to pending as rec, due now. 1 moved, 0 not there. */
    int (*cb_requeue)(struct sf_broker *b, const char *id, const char *rec, size_t len,
                      char *err, size_t errlen);
    /* Remove deliveries (n == 0: all) from the dead or pending list; returns how many. */
    int (*cb_purge)(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                    char *err, size_t errlen);
    /* --- E2B fleet: sandbox records and E2B worker capacity for the
     * gateway (docs/e2b.md "Gateway", docs/protocol.md "E2B fleet";
     * common/e2b/e2b_fleet.h has the JSON shapes). A backend without them
     * leaves them NULL: sf_broker_e2b_missing() names what is missing and
     * `serve --e2b-listen` / `--e2b-ingress` refuse to start. -------------- */
    /* A worker's capacity (JSON text) as its E2B heartbeat. FIRST also drops
     * every record an earlier process under this id left; LEAVING
     * deregisters and drops its records. Returns 1 when the worker was
     * registered before this beat, 0 when it was not (first beat, or it had
     * been reaped as dead: the caller stores its records again). */
    int (*e2b_beat)(struct sf_broker *b, const char *worker, const char *info,
                    enum sf_e2b_beat mode, char *err, size_t errlen);
    /* Every registered E2B worker: [{capacity..., "age_ms"}, ...]. */
    int (*e2b_workers)(struct sf_broker *b, json_t **out, char *err, size_t errlen);
    /* Store a sandbox record (JSON text) owned by a registered worker:
     * -ENOENT when the worker is not registered. if_absent: keep a record
     * already there (the owner's own is the better one). */
    int (*e2b_put)(struct sf_broker *b, const char *id, const char *worker, const char *rec,
                   size_t len, int64_t started_ms, bool if_absent, char *err, size_t errlen);
    /* The record of id (*rec NULL when none) and its owner's capacity with
     * "age_ms" (*owner NULL when the owner is not registered). */
    int (*e2b_get)(struct sf_broker *b, const char *id, char **rec, json_t **owner, char *err,
                   size_t errlen);
    /* Forget a record; 1 when it was there. */
    int (*e2b_del)(struct sf_broker *b, const char *id, char *err, size_t errlen);
    /* Records (JSON texts) whose owner is live, newest first. */
    int (*e2b_list)(struct sf_broker *b, char ***recs, size_t *n, char *err, size_t errlen);
    /* The ids recorded for this worker. */
    int (*e2b_owned)(struct sf_broker *b, const char *worker, char ***ids, size_t *n, char *err,
                     size_t errlen);
    /* Deregister workers not heard from within their lease and drop their
     * records. Returns how many records went. */
    int (*e2b_reap)(struct sf_broker *b, char *err, size_t errlen);
    void (*free)(struct sf_broker *b);
};

/* Every backend's struct starts with this. cfg strings are owned copies. */
struct sf_broker {
    const struct sf_broker_ops *ops;
    struct sf_broker_cfg cfg;
    char *url_redacted;         /* for messages: the password is never shown */
    struct sf_strlist reply_ok; /* the operator's reply_to prefixes (sf_broker_new) */
};

/* Open a broker for 'url' (parses it; does not connect: call
 * sf_broker_check). Returns NULL with the reason in err for a bad URL, an
 * unknown scheme, or a reply prefix that would reach the backend's own keys. */
struct sf_broker *sf_broker_new(const char *url, const struct sf_broker_cfg *cfg,
                                char *err, size_t errlen);
void sf_broker_free(struct sf_broker *b);     /* NULL is a no-op */

/* ops->check, retried (retry.h: 100 ms doubling to 2 s) on transient errors
 * until it succeeds, fails for good, or wait_ms pass (< 0: forever) or
 * stop(stop_arg) says so (stop may be NULL). Logs "broker URL not reachable:
 * ... (retrying)" at most once per 5 s. */
int sf_broker_check(struct sf_broker *b, int64_t wait_ms, bool (*stop)(void *), void *stop_arg,
                    char *err, size_t errlen);

/* --- opening: every command that talks to a broker, one way ------------------
 * The broker settings every command and the worker accept (docs/operations.md,
 * "Broker settings"): put SF_BROKER_OPTS(struct cfg, member) in the command's
 * option table, with a struct sf_broker_flags member in its config. The URL
 * and the Kafka settings are secrets (config.h: -file forms, masked in argv). */
struct sf_broker_flags {
    char *url;                          /* --broker URL */
    char *queue;                        /* --queue NAME */
    struct sf_strlist kafka_config;     /* --kafka-config KEY=VALUE (repeatable) */
    char *reply_prefixes;               /* --reply-prefixes P[,P...] (sf_broker_reply_to_check) */
};

#define SF_BROKER_OPTS(type, m)                                                                 \
    { "broker", "SANDFLEET_BROKER", SF_OPT_STR, offsetof(type, m.url), NULL, "URL",                \
      "redis://[user:pass@]host[:port][/db] or kafka://host:port[,host:port...]", 0, 0,           \
      SF_OPT_SECRET },                                                                            \
    { "queue", "SANDFLEET_QUEUE", SF_OPT_STR, offsetof(type, m.queue), "default", "NAME",          \
      "the queue (letters, digits, '_', '-', '.', ':')", 0, 0, 0 },                               \
    { "kafka-config", NULL, SF_OPT_LIST, offsetof(type, m.kafka_config), NULL, "KEY=VALUE",        \
      "Kafka client setting for librdkafka, repeatable (also SANDFLEET_KAFKA_<KEY>); "            \
      "docs/kafka.md", 0, 0, SF_OPT_SECRET },                                                     \
    { "reply-prefixes", "SANDFLEET_REPLY_PREFIXES", SF_OPT_STR, offsetof(type, m.reply_prefixes), \
      NULL, "PREFIX[,PREFIX...]", "namespaces a reply_to may name besides sf:reply:* (Redis) / "   \
      "sandfleet.reply.* (Kafka); docs/security.md", 0, 0, 0 }

/* Open the broker the flags name into *out and check it (sf_broker_check
 * with wait_ms, stop, stop_arg). cfg supplies the rest (consumer, lease,
 * log, ...; may be NULL); its queue and Kafka settings are taken from f. The
 * queue name is validated here. 0, or with the reason in err ("broker
 * redis://u:***@h:6379: authentication failed ..."): -EINVAL for bad
 * settings (URL, queue, Kafka setting: a usage error), a transient error
 * when it was not reachable in time (or stop said so), another -errno when
 * it refused us. */
int sf_broker_open(const struct sf_broker_flags *f, const struct sf_broker_cfg *cfg,
                   int64_t wait_ms, bool (*stop)(void *), void *stop_arg, struct sf_broker **out,
                   char *err, size_t errlen);

/* Backend constructors (used by sf_broker_new). */
struct sf_broker *sf_broker_redis_new(const char *url, const struct sf_broker_cfg *cfg,
                                      char *err, size_t errlen);
struct sf_broker *sf_broker_kafka_new(const char *url, const struct sf_broker_cfg *cfg,
                                      char *err, size_t errlen);

/* reply_to (a task's, or a serve submission's) names a stream/topic that
 * gets a copy of the result. Whoever can queue a message chooses it, so it
 * is confined: 0 when it lies inside the backend's reply namespace (Redis
 * "sf:reply:*", Kafka "sandfleet.reply.*") or one the operator allowed with
 * --reply-prefixes; else -EPERM with the reason. Workers dead-letter such a
 * task at decode (sf_broker_decode_task), serve answers 400. The one rule;
 * every place that uses a reply_to calls it. Thread-safe. */
int sf_broker_reply_to_check(const struct sf_broker *b, const char *reply_to, char *err,
                             size_t errlen);
/* 0 when the backend can honour every field of 't'; -ENOTSUP with a message
 * naming the fields when it has no gates/priorities (Kafka) and the task
 * uses concurrency, rate or priority. Producers refuse such a task before
 * publishing it; a worker that receives one rejects it (result + dead
 * letter) rather than ignoring the fields. */
int sf_broker_task_supported(const struct sf_broker *b, const struct sf_task *t, char *err,
                             size_t errlen);
/* The same question for a whole workflow about to be published (every step,
 * and 'priority' for the run): 0, or -ENOTSUP naming the first step. */
int sf_broker_workflow_supported(const struct sf_broker *b, const struct sf_workflow *wf,
                                 int priority, char *err, size_t errlen);

/* True for errors worth retrying after a pause (broker down or restarting). */
bool sf_broker_transient(int rc);

/* Claim a run (ops->run_claim) and decide: 0 it is new and now mine; 1 it
 * exists under the same claim and workflow (a resume); -EEXIST it belongs
 * to another claim; -EINVAL it was started for another workflow. A run
 * recorded without a claim (from before claims) resumes only when
 * legacy_ok and the workflow matches. err says why for the operator's log
 * (it names the recorded owner: not for a client's eyes). Other -errno:
 * the broker call failed. */
int sf_broker_claim_run(struct sf_broker *b, const char *run_id, const struct sf_run_owner *mine,
                        bool legacy_ok, char *err, size_t errlen);

/* --- task/result helpers over the ops (thread-safe) ----------------------- */

/* Encode 't' (input to a blob when large) and publish it. 0 / 1 as publish. */
int sf_broker_publish_task(struct sf_broker *b, const struct sf_task *t, char *err, size_t errlen);
/* Decode a delivered task, fetching a claim-checked input. NULL with the
 * reason in err (the caller dead-letters the raw bytes with it); *transient
 * is set when the reason is a broker failure rather than a bad message. */
struct sf_task *sf_broker_decode_task(struct sf_broker *b, const char *data, size_t len,
                                      bool *transient, char *err, size_t errlen);
/* Encode 'r' (output to a blob when large) and complete the delivery. When
 * dead_reason is not NULL the raw task is dead-lettered in the same step.
 * next: NULL, or where the next delivery may go (sf_completion.next). */
int sf_broker_complete_task(struct sf_broker *b, const char *handle, const struct sf_task *t,
                            const struct sf_result *r, const char *raw, size_t raw_len,
                            const char *dead_reason, struct sf_delivery *next, char *err,
                            size_t errlen);
/* Decode a result, fetching a claim-checked output. */
struct sf_result *sf_broker_decode_result(struct sf_broker *b, const char *data, size_t len,
                                          char *err, size_t errlen);

/* The claim-check rewrite on a JSON object, exposed for tests: when the
 * encoded value of 'field' is larger than the threshold, store it with
 * blob_put and replace it by null plus "<field>_ref". 1 when it moved. */
int sf_broker_claim_check(struct sf_broker *b, json_t *obj, const char *field,
                          char *err, size_t errlen);
/* The reverse: when "<field>_ref" is present, load the blob into 'field'. */
int sf_broker_claim_resolve(struct sf_broker *b, json_t *obj, const char *field,
                            char *err, size_t errlen);

/* --- operations over the optional ops (broker_admin.c) ---------------------
 * Each returns -ENOTSUP with "... not supported by the <scheme> backend yet"
 * when the backend lacks the op. Results are new JSON references. */

/* [{"id","host","pid","sandbox","concurrency","busy","started_ms","done",
 *   "failed","heartbeat_age_ms"}, ...] by id. */
int sf_broker_workers(struct sf_broker *b, json_t **out, char *err, size_t errlen);
/* The gates in use, by name: [{"gate":"conc:<key>","limit","running",
 * "waiting"} | {"gate":"rate:<key>","per_s","burst","tokens","waiting"}, ...]
 * (at most 100). An empty array on a backend without gates. */
int sf_broker_gates(struct sf_broker *b, json_t **out, char *err, size_t errlen);
/* [{"run_id","workflow","status","started_at","updated_at"}, ...], newest
 * update first (at most 200). */
int sf_broker_runs(struct sf_broker *b, json_t **out, char *err, size_t errlen);
/* Newest first, at most max (0 = all): [{"id","time_ms","reason","task_id"
 * (null when the message is not a task),"task" (raw text)}, ...]. */
int sf_broker_dead_list(struct sf_broker *b, size_t max, json_t **out, char *err, size_t errlen);
/* Replay dead letters (ids, or every one when n == 0): each raw task goes
 * back to the queue with "attempt": 1 (byte for byte when it is not a JSON
 * object) and leaves the dead stream in the same atomic step. *moved counts
 * them; ids that are not there are reported in err and give -ENOENT after
 * the others were moved. */
int sf_broker_dead_retry(struct sf_broker *b, const char *const *ids, size_t n, size_t *moved,
                         char *err, size_t errlen);
int sf_broker_dead_purge(struct sf_broker *b, const char *const *ids, size_t n, size_t *removed,
                         char *err, size_t errlen);
/* True when the backend has the serve ops (sub_fetch ... run_doc_get). */
bool sf_broker_can_serve(const struct sf_broker *b);

/* --- callbacks over the optional ops (broker_callback.c) --------------------
 * -ENOTSUP with "callbacks are not supported by the <scheme> backend yet"
 * when the backend lacks the op. Thread-safe like the ops. */
int sf_broker_callback_enqueue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                               const char *once_key, char *err, size_t errlen);
int sf_broker_callback_claim(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                             size_t max, size_t *n, char *err, size_t errlen);
void sf_callback_claim_clear(struct sf_callback_claim *c);
int sf_broker_callback_settle(struct sf_broker *b, const char *id, const char *token,
                              enum sf_callback_settle how, const char *rec, size_t len,
                              int64_t delay_ms, char *err, size_t errlen);
int sf_broker_callback_list(struct sf_broker *b, bool dead, size_t max, json_t **out,
                            char *err, size_t errlen);
int sf_broker_callback_requeue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                               char *err, size_t errlen);
int sf_broker_callback_purge(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                             char *err, size_t errlen);
bool sf_broker_has_callbacks(const struct sf_broker *b);

/* NULL when the backend has every E2B fleet op; else a sentence naming the
 * missing ones, for the gateway's and the worker's start-up error. */
const char *sf_broker_e2b_missing(const struct sf_broker *b);
/* The same for a broker URL, before connecting (a gateway or worker on
 * kafka:// fails at once, not after waiting for the broker). */
const char *sf_broker_url_e2b_missing(const char *url);
/* Free what e2b_list / e2b_owned returned. */
void sf_broker_strv_free(char **v, size_t n);

#endif
