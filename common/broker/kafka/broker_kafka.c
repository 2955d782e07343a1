/* common/broker/kafka/broker_kafka.c: the broker over Kafka (librdkafka). This file holds
 * what every side shares: the URL, the client configuration, the one
 * producer and its delivery-report thread, and the ops table. Topic
 * creation is in broker_kafka_topics.c. The worker side is in broker_kafka_worker.c, the coordinator side
 * in broker_kafka_coord.c; the layout is in docs/kafka.md and docs/protocol.md.
 *
 * Design.
 * - One idempotent producer (acks=all, enable.idempotence=true,
 *   message.timeout.ms=0: a message is retried until the broker takes it,
 *   so a restarting broker delays results but never loses them). It is
 *   thread-safe; every thread produces through it.
 * - Delivery reports are served by a thread of ours that polls the
 *   producer. A caller that needs "written" before it acknowledges (a
 *   result before its offset is committed) waits on a ticket the report
 *   completes; a publish does not wait, its report writes the "published"
 *   marker instead (broker_kafka_coord.c).
 * - Client settings: our defaults, then SANDFLEET_KAFKA_* variables, then
 *   --kafka-config flags, then the few settings correctness depends on
 *   (manual offset store, idempotence), which cannot be overridden.
 *   "sandfleet.*" keys are ours (partitions, replication factor). A value
 *   of a key that looks secret never appears in a message.
 */
#include "broker_kafka.h"
#include "retry.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

/* --- errors ------------------------------------------------------------------ */

int sf_kafka_errno(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return 0;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: return -ETIMEDOUT;
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE: return -ECONNREFUSED;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION: return -ECONNRESET;
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS: return -EAGAIN;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION: return -EACCES;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: return -EMSGSIZE;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION: return -ENOENT;
    case RD_KAFKA_RESP_ERR__FATAL: return -ENOTRECOVERABLE;
    default: return -EPROTO;
    }
}

/* --- configuration ------------------------------------------------------------ */

static bool secret_key(const char *k)
{
    static const char *const words[] = { "password", "secret", "jaas", "token", "oauthbearer",
                                         "credential", "key" };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(k, words[i])) return true;
    return false;
}

/* Set k=v; on failure a message naming the key (and the value only when it
 * is not secret). */
static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, char *err, size_t errlen)
{
    char rerr[256];
    if (rd_kafka_conf_set(c, k, v, rerr, sizeof(rerr)) == RD_KAFKA_CONF_OK) return 0;
    if (secret_key(k))
        sf_errf(err, errlen, "kafka setting '%s': rejected by librdkafka (value not shown)", k);
    else
        sf_errf(err, errlen, "kafka setting '%s=%s': %s", k, v, rerr);
    return -EINVAL;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct kafka_broker *kb = rd_kafka_opaque(rk);
    /* Called on librdkafka's threads: only the thread-safe logger is used.
     * Property warnings ("a consumer property ignored by this producer")
     * follow from handing every client the same user settings. */
    enum sf_log_level lv = level <= 4 && strcmp(fac, "CONFWARN") ? SF_LOG_WARN : SF_LOG_DEBUG;
    if (kb) SF_LOG(kb->base.cfg.log, lv, NULL, NULL, "kafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    struct kafka_broker *kb = opaque;
    char fatal[256];
    if (e != RD_KAFKA_RESP_ERR__FATAL) {
        SF_LOG(kb->base.cfg.log, SF_LOG_DEBUG, NULL, NULL, "kafka error: %s", reason);
        return;
    }
    rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
    pthread_mutex_lock(&kb->mu);
    sf_strlcpy(kb->fatal, fatal, sizeof(kb->fatal));
    pthread_mutex_unlock(&kb->mu);
    SF_LOG(kb->base.cfg.log, SF_LOG_ERROR, NULL, NULL, "kafka client failed for good: %s", fatal);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_ticket *tk = m->_private;
    (void)rk;
    if (!tk) return;
    pthread_mutex_lock(&tk->mu);
    tk->err = m->err;
    tk->partition = m->partition;
    tk->offset = m->offset;
    tk->done = true;
    pthread_cond_broadcast(&tk->cv);
    pthread_mutex_unlock(&tk->mu);
    if (tk->on_report) tk->on_report(opaque, tk);
    sf_kafka_ticket_unref(tk);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static int role_defaults(struct kafka_broker *kb, rd_kafka_conf_t *c, enum kafka_role role,
                         const char *group, char *err, size_t errlen)
{
    char session[24], hb[24], rgroup[64];
    int64_t s = clamp64(kb->lease_ms, 3000, 300000);
    snprintf(session, sizeof(session), "%lld", (long long)s);
    snprintf(hb, sizeof(hb), "%lld", (long long)clamp64(s / 3, 100, 3000));
    const char *producer[] = {
        "enable.idempotence", "true", "acks", "all", "linger.ms", "1",
        "message.timeout.ms", "0", "message.max.bytes", "67174400",
        "partitioner", "murmur2_random", NULL };
    /* The worker group: offsets stored by us, committed every second by
     * librdkafka; the lease is the session timeout (how soon a dead worker's
     * partitions move); cooperative-sticky so a rebalance takes away only
     * the partitions that move and in-flight tasks of the others stay. */
    const char *group_conf[] = {
        "enable.auto.commit", "true", "auto.commit.interval.ms", "1000",
        "enable.auto.offset.store", "false", "auto.offset.reset", "earliest",
        "partition.assignment.strategy", "cooperative-sticky",
        "session.timeout.ms", session, "heartbeat.interval.ms", hb,
        "fetch.wait.max.ms", "100", "enable.partition.eof", "false", NULL };
    const char *reader[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest", "enable.partition.eof", "true",
        "fetch.wait.max.ms", "100", NULL };
    const char *const *set = role == KAFKA_PRODUCER || role == KAFKA_ADMIN ? producer
                           : role == KAFKA_READER ? reader : group_conf;
    for (size_t i = 0; set[i]; i += 2)
        if (conf_set(c, set[i], set[i + 1], err, errlen) < 0) return -EINVAL;
    if (role == KAFKA_READER && !group) {
        /* assign() needs a group id; this one never joins or commits. */
        char hex[13];
        sf_random_hex(hex, sizeof(hex), 12);
        snprintf(rgroup, sizeof(rgroup), "sandfleet-reader-%s", hex);
        group = rgroup;
    }
    if (group && conf_set(c, "group.id", group, err, errlen) < 0) return -EINVAL;
    return 0;
}

/* Settings correctness depends on: applied last, whatever the user said. */
static int role_enforced(rd_kafka_conf_t *c, enum kafka_role role, char *err, size_t errlen)
{
    if (role == KAFKA_PRODUCER) return conf_set(c, "enable.idempotence", "true", err, errlen);
    if (role == KAFKA_WORKER || role == KAFKA_RETRY || role == KAFKA_CALLBACKS ||
        role == KAFKA_SUBMISSIONS)
        return conf_set(c, "enable.auto.offset.store", "false", err, errlen);
    return 0;
}

rd_kafka_t *sf_kafka_client(struct kafka_broker *kb, enum kafka_role role, const char *group,
                            char *err, size_t errlen)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    char rerr[512], cid[160];
    snprintf(cid, sizeof(cid), "sandfleet-%s", kb->base.cfg.consumer ? kb->base.cfg.consumer : "coordinator");
    if (conf_set(c, "bootstrap.servers", kb->bootstrap, err, errlen) < 0 ||
        conf_set(c, "client.id", cid, err, errlen) < 0 ||
        conf_set(c, "log.connection.close", "false", err, errlen) < 0 ||
        role_defaults(kb, c, role, group, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < kb->n_conf; i++) {
        char *eq = strchr(kb->conf[i], '=');
        char *k = sf_xstrndup(kb->conf[i], (size_t)(eq - kb->conf[i]));
        int rc = conf_set(c, k, eq + 1, err, errlen);
        free(k);
        if (rc < 0) goto fail;
    }
    if (role_enforced(c, role, err, errlen) < 0) goto fail;
    rd_kafka_conf_set_opaque(c, kb);
    rd_kafka_conf_set_log_cb(c, log_cb);
    rd_kafka_conf_set_error_cb(c, error_cb);
    if (role == KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    if (role == KAFKA_WORKER) rd_kafka_conf_set_rebalance_cb(c, sf_kafka_worker_rebalance);
    if (role == KAFKA_RETRY) rd_kafka_conf_set_rebalance_cb(c, sf_kafka_retry_rebalance);
    if (role == KAFKA_CALLBACKS) rd_kafka_conf_set_rebalance_cb(c, sf_kafka_cb_rebalance);
    if (role == KAFKA_SUBMISSIONS) rd_kafka_conf_set_rebalance_cb(c, sf_kafka_sub_rebalance);
    bool consumer = role == KAFKA_WORKER || role == KAFKA_RETRY || role == KAFKA_READER ||
                    role == KAFKA_CALLBACKS || role == KAFKA_SUBMISSIONS;
    rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, c, rerr, sizeof(rerr));
    if (!rk) {
        sf_errf(err, errlen, "kafka client: %s", rerr);
        goto fail;
    }
    if (consumer) rd_kafka_poll_set_consumer(rk);
    return rk;                                  /* the conf now belongs to rk */
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

rd_kafka_t *sf_kafka_consumer(struct kafka_broker *kb, enum kafka_role role, const char *group,
                              const char *const *topics, size_t n, int *rc, char *err,
                              size_t errlen)
{
    int dummy;
    rd_kafka_t *rk = sf_kafka_client(kb, role, group, err, errlen);
    if (!rc) rc = &dummy;
    *rc = -EINVAL;
    if (!rk) return NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        sf_errf(err, errlen, "subscribing to %s: %s", topics[0], rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        *rc = sf_kafka_errno(e);
        return NULL;
    }
    *rc = 0;
    return rk;
}

/* --- produce and delivery reports -------------------------------------------- */

struct kafka_ticket *sf_kafka_ticket_new(void)
{
    struct kafka_ticket *tk = sf_xcalloc(1, sizeof(*tk));
    pthread_mutex_init(&tk->mu, NULL);
    pthread_cond_init(&tk->cv, NULL);
    tk->refs = 1;
    tk->offset = -1;
    return tk;
}

void sf_kafka_ticket_unref(struct kafka_ticket *tk)
{
    if (!tk) return;
    pthread_mutex_lock(&tk->mu);
    int left = --tk->refs;
    pthread_mutex_unlock(&tk->mu);
    if (left) return;
    pthread_mutex_destroy(&tk->mu);
    pthread_cond_destroy(&tk->cv);
    free(tk->run_id);
    free(tk->task_id);
    free(tk);
}

static int fatal_check(struct kafka_broker *kb, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&kb->mu);
    if (kb->fatal[0]) {
        sf_errf(err, errlen, "kafka producer failed for good: %s", kb->fatal);
        rc = -ENOTRECOVERABLE;
    }
    pthread_mutex_unlock(&kb->mu);
    return rc;
}

int sf_kafka_produce(struct kafka_broker *kb, const char *topic, int32_t partition,
                     const char *key, size_t keylen, const void *val, size_t len,
                     const char *const *hdrs, struct kafka_ticket *tk, char *err, size_t errlen)
{
    int rc = fatal_check(kb, err, errlen);
    if (rc < 0) return rc;
    if (tk) {
        pthread_mutex_lock(&tk->mu);
        tk->refs++;                              /* the report's reference */
        pthread_mutex_unlock(&tk->mu);
    }
    for (int tries = 0;; tries++) {
        rd_kafka_headers_t *h = NULL;
        if (hdrs && hdrs[0]) {
            h = rd_kafka_headers_new(8);
            for (size_t i = 0; hdrs[i]; i += 2) rd_kafka_header_add(h, hdrs[i], -1, hdrs[i + 1], -1);
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            kb->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)val, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(tk), RD_KAFKA_V_END);
        if (!e) return 0;                        /* the headers belong to the message now */
        rd_kafka_headers_destroy(h);
        /* A full local queue drains as the poll thread serves reports. */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 3000) {
            sf_sleep_ms(10);
            continue;
        }
        if (tk) sf_kafka_ticket_unref(tk);
        sf_errf(err, errlen, "producing to %s: %s", topic, rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
}

int sf_kafka_ticket_wait(struct kafka_ticket *tk, int64_t wait_ms, char *err, size_t errlen)
{
    struct timespec dl;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += wait_ms / 1000;
    dl.tv_nsec += (wait_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) { dl.tv_sec++; dl.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&tk->mu);
    while (!tk->done && rc == 0) rc = pthread_cond_timedwait(&tk->cv, &tk->mu, &dl);
    bool done = tk->done;
    rd_kafka_resp_err_t e = tk->err;
    pthread_mutex_unlock(&tk->mu);
    if (!done) {
        sf_errf(err, errlen, "no delivery report within %lld ms (broker unreachable?)", (long long)wait_ms);
        return -ETIMEDOUT;
    }
    if (e) {
        sf_errf(err, errlen, "delivery failed: %s", rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
    return 0;
}

/* How long a synchronous produce waits before it reports a transient error
 * (the message stays queued and may still be delivered: callers' retries
 * then produce a duplicate, which readers drop by task id). */
#define SYNC_WAIT_MS 30000

int sf_kafka_produce_sync(struct kafka_broker *kb, const char *topic, int32_t partition,
                          const char *key, size_t keylen, const void *val, size_t len,
                          const char *const *hdrs, int32_t *part_out, int64_t *off_out,
                          char *err, size_t errlen)
{
    struct kafka_ticket *tk = sf_kafka_ticket_new();
    int rc = sf_kafka_produce(kb, topic, partition, key, keylen, val, len, hdrs, tk, err, errlen);
    if (rc == 0) rc = sf_kafka_ticket_wait(tk, SYNC_WAIT_MS, err, errlen);
    if (rc == 0 && part_out) *part_out = tk->partition;
    if (rc == 0 && off_out) *off_out = tk->offset;
    sf_kafka_ticket_unref(tk);
    return rc;
}

static void *poller_main(void *arg)
{
    struct kafka_broker *kb = arg;
    while (!atomic_load(&kb->stop)) rd_kafka_poll(kb->producer, 100);
    return NULL;
}

int32_t sf_kafka_partition_for(const char *key, int32_t n)
{
    return rd_kafka_msg_partitioner_murmur2(NULL, key, strlen(key), n, NULL, NULL);
}

char *sf_kafka_header(const rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &len)) return NULL;
    return v ? sf_xstrndup(v, len) : NULL;
}

/* --- reading a partition ------------------------------------------------------- */

int sf_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t part, int64_t *lo, int64_t *hi,
                        char *err, size_t errlen)
{
    int64_t deadline = sf_now_ms() + SYNC_WAIT_MS;
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_query_watermark_offsets(rk, topic, part, lo, hi, 10000)) &&
           (sf_kafka_errno(e) == -EAGAIN || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
           sf_now_ms() < deadline)
        sf_sleep_ms(100);
    if (e) {
        sf_errf(err, errlen, "watermarks of %s[%d]: %s", topic, part, rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
    return 0;
}

int sf_kafka_scan(struct kafka_broker *kb, const char *topic, int32_t part, int64_t from,
                  int (*cb)(const rd_kafka_message_t *m, void *arg), void *arg,
                  char *err, size_t errlen)
{
    int64_t lo = 0, hi = 0;
    int rc = 0;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_t *rk = sf_kafka_client(kb, KAFKA_READER, NULL, err, errlen);
    if (!rk) return -EINVAL;
    rd_kafka_resp_err_t e;
    if ((rc = sf_kafka_watermarks(rk, topic, part, &lo, &hi, err, errlen)) < 0) goto out;
    if (from < lo) from = lo;
    if (from >= hi) goto out;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, part)->offset = from;
    if ((e = rd_kafka_assign(rk, l))) {
        sf_errf(err, errlen, "assign %s[%d]: %s", topic, part, rd_kafka_err2str(e));
        rc = sf_kafka_errno(e);
        goto out;
    }
    int64_t deadline = sf_now_ms() + SYNC_WAIT_MS;
    while (sf_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        bool end = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || (!m->err && m->offset >= hi - 1);
        int stop = !m->err ? cb(m, arg) : 0;
        rd_kafka_message_destroy(m);
        if (end || stop) goto out;
    }
    sf_errf(err, errlen, "reading %s[%d] up to offset %lld timed out", topic, part, (long long)hi);
    rc = -ETIMEDOUT;
out:
    if (l) rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* --- the backend ------------------------------------------------------------------ */

static int k_check(struct sf_broker *b, char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    int rc = fatal_check(kb, err, errlen);
    return rc < 0 ? rc : sf_kafka_ensure_topics(kb, err, errlen);
}

static void k_free(struct sf_broker *b)
{
    struct kafka_broker *kb = KB(b);
    sf_kafka_sub_close(kb);
    sf_kafka_cb_close(kb);
    sf_kafka_worker_close(kb);
    sf_kafka_multi_close(kb);
    sf_kafka_coord_close(kb);
    if (kb->producer) {
        /* Whatever is queued gets a bounded chance to reach the broker. */
        if (rd_kafka_flush(kb->producer, 10000))
            SF_LOG(b->cfg.log, SF_LOG_WARN, NULL, NULL, "kafka: %d message(s) not delivered at exit",
                   rd_kafka_outq_len(kb->producer));
    }
    atomic_store(&kb->stop, 1);
    if (kb->poller_started) pthread_join(kb->poller, NULL);
    if (kb->producer) {
        rd_kafka_purge(kb->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(kb->producer, 0);          /* reports of purged messages free their tickets */
        rd_kafka_destroy(kb->producer);
    }
    for (size_t i = 0; i < kb->n_conf; i++) free(kb->conf[i]);
    free(kb->conf);
    free(kb->bootstrap);
    free(kb->t_tasks); free(kb->t_retry); free(kb->t_dlq);
    free(kb->t_results); free(kb->t_runs); free(kb->t_blobs);
    free(kb->group); free(kb->retry_group);
    free(kb->t_cb); free(kb->t_cb_retry); free(kb->t_cb_dead); free(kb->t_dlq_handled);
    free(kb->cb_group); free(kb->t_sub); free(kb->sub_group);
    pthread_mutex_destroy(&kb->mu);
    pthread_mutex_destroy(&kb->cmu);
    pthread_mutex_destroy(&kb->tmu);
    pthread_mutex_destroy(&kb->rmu);
    free((char *)b->cfg.queue);
    free((char *)b->cfg.consumer);
    free(b->url_redacted);
    free(kb);
}

static const struct sf_broker_ops kafka_ops = {
    .scheme = "kafka",
    .reply_ns = "sandfleet.reply.",
    .own_ns = "sandfleet.",
    .check = k_check,
    .fetch = sf_kafka_fetch,
    .renew = sf_kafka_renew,
    .complete = sf_kafka_complete,
    .retry = sf_kafka_retry,
    .dead = sf_kafka_dead,
    .heartbeat = sf_kafka_heartbeat,
    .maintain = sf_kafka_maintain,
    .publish = sf_kafka_publish,
    .results = sf_kafka_results,
    .state_get = sf_kafka_state_get,
    .state_set = sf_kafka_state_set,
    .run_claim = sf_kafka_run_claim,
    .results_many = sf_kafka_results_many,
    .run_forget = sf_kafka_run_forget,
    .stats = sf_kafka_stats,
    .blob_put = sf_kafka_blob_put,
    .blob_get = sf_kafka_blob_get,
    .workers = sf_kafka_workers,
    .runs = sf_kafka_runs,
    .dead_list = sf_kafka_dead_list,
    .dead_requeue = sf_kafka_dead_requeue,
    .dead_purge = sf_kafka_dead_purge,
    .sub_fetch = sf_kafka_sub_fetch,
    .sub_ack = sf_kafka_sub_ack,
    .run_doc_put = sf_kafka_run_doc_put,
    .run_doc_get = sf_kafka_run_doc_get,
    .cb_enqueue = sf_kafka_cb_enqueue,
    .cb_claim = sf_kafka_cb_claim,
    .cb_settle = sf_kafka_cb_settle,
    .cb_list = sf_kafka_cb_list,
    .cb_requeue = sf_kafka_cb_requeue,
    .cb_purge = sf_kafka_cb_purge,
    .free = k_free,
};

/* kafka://host[:port][,host[:port]...][/] -> "host:port,..." (port 9092). */
static char *parse_url(const char *url, char *err, size_t errlen)
{
    const char *p = url + 8;
    struct sf_buf out = {0};
    size_t n = strcspn(p, "/");
    if (p[n] && strcmp(p + n, "/")) goto bad;
    if (!n || memchr(p, '@', n)) goto bad;
    char *hosts = sf_xstrndup(p, n), *save = NULL;
    for (char *h = strtok_r(hosts, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(h, ':');
        if (out.len) sf_buf_append(&out, ",", 1);
        if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1))
            sf_buf_appendf(&out, "%s", h);
        else if (!colon)
            sf_buf_appendf(&out, "%s:9092", h);
        else {
            free(hosts);
            sf_buf_free(&out);
            goto bad;
        }
    }
    free(hosts);
    if (!out.len) goto bad;
    return sf_buf_steal(&out, NULL);
bad:
    sf_errf(err, errlen, "bad Kafka URL '%.200s' (expected kafka://host:port[,host:port...]; "
            "credentials go in --kafka-config sasl.username=... / SANDFLEET_KAFKA_SASL_PASSWORD)",
            strchr(url, '@') ? "kafka://***" : url);
    return NULL;
}

static bool topic_safe(const char *q)
{
    for (; *q; q++)
        if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '_' || *q == '-')) return false;
    return true;
}

/* Env first (SANDFLEET_KAFKA_SASL_PASSWORD -> sasl.password), flags after;
 * "sandfleet.*" keys are taken here. Each other key is tried on a scratch
 * configuration so a typo fails at start with a clear message. */
static int collect_conf(struct kafka_broker *kb, const struct sf_broker_cfg *cfg,
                        char *err, size_t errlen)
{
    size_t cap = cfg->n_kafka_config + 8;
    rd_kafka_conf_t *scratch = rd_kafka_conf_new();
    int rc = 0;
    char **all = sf_xcalloc(cap, sizeof(char *));
    size_t n_all = 0;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "SANDFLEET_KAFKA_", 16) || !strchr(*e, '=')) continue;
        if (n_all == cap) all = sf_xrealloc(all, (cap *= 2) * sizeof(char *));
        char *kv = sf_xstrdup(*e + 16);
        for (char *c = kv; *c != '='; c++) *c = *c == '_' ? '.' : (char)tolower((unsigned char)*c);
        all[n_all++] = kv;
    }
    for (size_t i = 0; i < cfg->n_kafka_config; i++) {
        if (n_all == cap) all = sf_xrealloc(all, (cap *= 2) * sizeof(char *));
        all[n_all++] = sf_xstrdup(cfg->kafka_config[i]);
    }
    for (size_t i = 0; i < n_all && rc == 0; i++) {
        char *eq = strchr(all[i], '=');
        if (!eq || eq == all[i]) {
            sf_errf(err, errlen, "--kafka-config '%.60s%s': expected key=value", all[i],
                    strlen(all[i]) > 60 ? "..." : "");
            rc = -EINVAL;
            break;
        }
        *eq = 0;
        const char *k = all[i], *v = eq + 1;
        if (!strcmp(k, "sandfleet.partitions")) {
            kb->partitions = atoi(v);
            if (kb->partitions < 1 || kb->partitions > 10000) {
                sf_errf(err, errlen, "sandfleet.partitions=%s: expected 1..10000", v);
                rc = -EINVAL;
            }
        } else if (!strcmp(k, "sandfleet.replication.factor")) {
            kb->replication = atoi(v);
            if (kb->replication == 0 || kb->replication < -1) {
                sf_errf(err, errlen, "sandfleet.replication.factor=%s: expected -1 or >= 1", v);
                rc = -EINVAL;
            }
        } else if (!strncmp(k, "sandfleet.", 10)) {
            sf_errf(err, errlen, "unknown setting '%s' (sandfleet.partitions, "
                    "sandfleet.replication.factor)", k);
            rc = -EINVAL;
        } else if (!strcmp(k, "enable.auto.offset.store") || !strcmp(k, "enable.idempotence")) {
            sf_errf(err, errlen, "'%s' cannot be changed: at-least-once delivery depends on it", k);
            rc = -EINVAL;
        } else if ((rc = conf_set(scratch, k, v, err, errlen)) == 0) {
            *eq = '=';
            kb->conf = sf_xrealloc(kb->conf, (kb->n_conf + 1) * sizeof(char *));
            kb->conf[kb->n_conf++] = all[i];
            all[i] = NULL;
        }
    }
    for (size_t i = 0; i < n_all; i++) free(all[i]);
    free(all);
    rd_kafka_conf_destroy(scratch);
    return rc;
}

struct sf_broker *sf_broker_kafka_new(const char *url, const struct sf_broker_cfg *cfg,
                                      char *err, size_t errlen)
{
    const char *q = cfg->queue && *cfg->queue ? cfg->queue : "default";
    struct kafka_broker *kb;
    char *boot = parse_url(url, err, errlen);
    if (!boot) return NULL;
    if (!topic_safe(q)) {
        sf_errf(err, errlen, "queue '%s': Kafka topic names allow letters, digits, '.', '_', '-'", q);
        free(boot);
        return NULL;
    }
    kb = sf_xcalloc(1, sizeof(*kb));
    kb->base.ops = &kafka_ops;
    kb->base.cfg = *cfg;
    kb->base.cfg.queue = sf_xstrdup(q);
    kb->base.cfg.consumer = sf_xstrdup(cfg->consumer);
    kb->base.cfg.kafka_config = NULL;
    kb->base.cfg.n_kafka_config = 0;
    kb->base.url_redacted = sf_xasprintf("kafka://%s", boot);
    kb->bootstrap = boot;
    kb->partitions = SF_KAFKA_DEFAULT_PARTITIONS;
    kb->replication = -1;
    kb->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : SF_BROKER_DEFAULT_LEASE_MS;
    kb->ttl_ms = (cfg->ttl_s > 0 ? cfg->ttl_s : SF_BROKER_DEFAULT_TTL_S) * 1000;
    pthread_mutex_init(&kb->mu, NULL);
    pthread_mutex_init(&kb->cmu, NULL);
    pthread_mutex_init(&kb->tmu, NULL);
    pthread_mutex_init(&kb->rmu, NULL);
    /* Queue "default" uses the plain names; queue Q appends "-Q" (never
     * clashes: the plain names contain no '-'). */
    bool def = !strcmp(q, "default");
    const char *sep = def ? "" : "-", *sfx = def ? "" : q;
    kb->t_tasks = sf_xasprintf("sandfleet.tasks%s%s", sep, sfx);
    kb->t_retry = sf_xasprintf("sandfleet.tasks.retry%s%s", sep, sfx);
    kb->t_dlq = sf_xasprintf("sandfleet.tasks.dlq%s%s", sep, sfx);
    kb->group = sf_xasprintf("sandfleet-workers%s%s", sep, sfx);
    kb->retry_group = sf_xasprintf("sandfleet-retry%s%s", sep, sfx);
    kb->t_cb = sf_xasprintf("sandfleet.callbacks%s%s", sep, sfx);
    kb->t_cb_retry = sf_xasprintf("sandfleet.callbacks.retry%s%s", sep, sfx);
    kb->t_cb_dead = sf_xasprintf("sandfleet.callbacks.dead%s%s", sep, sfx);
    kb->t_dlq_handled = sf_xasprintf("sandfleet.tasks.dlq.handled%s%s", sep, sfx);
    kb->cb_group = sf_xasprintf("sandfleet-callbacks%s%s", sep, sfx);
    kb->t_sub = sf_xasprintf("sandfleet.submissions%s%s", sep, sfx);
    kb->sub_group = sf_xasprintf("sandfleet-coordinators%s%s", sep, sfx);
    kb->t_results = sf_xstrdup("sandfleet.results");
    kb->t_runs = sf_xstrdup("sandfleet.runs");
    kb->t_blobs = sf_xstrdup("sandfleet.blobs");
    if (collect_conf(kb, cfg, err, errlen) < 0) goto fail;
    if (!(kb->producer = sf_kafka_client(kb, KAFKA_PRODUCER, NULL, err, errlen))) goto fail;
    if (pthread_create(&kb->poller, NULL, poller_main, kb) != 0) {
        sf_errf(err, errlen, "cannot start the Kafka delivery thread: %s", strerror(errno));
        goto fail;
    }
    kb->poller_started = true;
    return &kb->base;
fail:
    k_free(&kb->base);
    return NULL;
}

void sf_kafka_rebalance_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e)
{
    if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk))
        rd_kafka_commit(rk, NULL, 0);
}

void sf_kafka_rebalance_apply(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                              rd_kafka_topic_partition_list_t *parts, bool paused,
                              const struct sf_log *lg, const char *what)
{
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *ie = NULL;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop) ie = rd_kafka_incremental_assign(rk, parts);
        else rd_kafka_assign(rk, parts);
        if (paused) rd_kafka_pause_partitions(rk, parts);
        else rd_kafka_resume_partitions(rk, parts);
    } else {
        if (coop) ie = rd_kafka_incremental_unassign(rk, parts);
        else rd_kafka_assign(rk, NULL);
    }
    if (ie) {
        SF_LOG(lg, SF_LOG_WARN, NULL, NULL, "%s rebalance: %s", what, rd_kafka_error_string(ie));
        rd_kafka_error_destroy(ie);
    }
}

int sf_kafka_partitions(rd_kafka_t *rk, const char *topic, bool committed,
                        rd_kafka_topic_partition_list_t **out, char *err, size_t errlen)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    int n = !e && md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int p = 0; p < n; p++) rd_kafka_topic_partition_list_add(l, topic, p);
    if (!e && committed) e = rd_kafka_committed(rk, l, 10000);
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    *out = NULL;
    if (e) {
        rd_kafka_topic_partition_list_destroy(l);
        sf_errf(err, errlen, "%s: %s", topic, rd_kafka_err2str(e));
        return sf_kafka_errno(e);
    }
    *out = l;
    return 0;
}
