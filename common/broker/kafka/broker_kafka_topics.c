/* common/broker/kafka/broker_kafka_topics.c: the topics the Kafka backend uses, created
 * on first use through the Admin API when missing (names, partitions and
 * settings: docs/kafka.md), and used only once every partition has a
 * leader — a coordinator that read a brand-new topic before that missed its
 * first messages. */
#include "broker_kafka.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --- topics ------------------------------------------------------------------- */

struct topic_spec {
    const char *name;
    int partitions;
    const char *cleanup, *retention;
    int max_bytes;
};

static int topic_partitions(const rd_kafka_metadata_t *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, name) && !md->topics[i].err) return md->topics[i].partition_cnt;
    return 0;
}

/* A new topic is listed before its partitions have leaders; reads and
 * writes before that fail with "not leader". */
static bool topic_ready(const rd_kafka_metadata_t *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, name) || md->topics[i].err || !md->topics[i].partition_cnt)
            continue;
        for (int p = 0; p < md->topics[i].partition_cnt; p++)
            if (md->topics[i].partitions[p].err || md->topics[i].partitions[p].leader < 0) return false;
        return true;
    }
    return false;
}

static int create_topics(struct kafka_broker *kb, const struct topic_spec *ts, size_t n,
                         const rd_kafka_metadata_t *md, char *err, size_t errlen)
{
    rd_kafka_NewTopic_t *nt[16];
    size_t k = 0;
    char rerr[256], mb[24];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (topic_partitions(md, ts[i].name)) continue;
        nt[k] = rd_kafka_NewTopic_new(ts[i].name, ts[i].partitions, kb->replication, rerr, sizeof(rerr));
        if (!nt[k]) {
            sf_errf(err, errlen, "topic %s: %s", ts[i].name, rerr);
            rc = -EINVAL;
            goto out;
        }
        snprintf(mb, sizeof(mb), "%d", ts[i].max_bytes);
        rd_kafka_NewTopic_set_config(nt[k], "cleanup.policy", ts[i].cleanup);
        rd_kafka_NewTopic_set_config(nt[k], "retention.ms", ts[i].retention);
        rd_kafka_NewTopic_set_config(nt[k], "max.message.bytes", mb);
        SF_LOG(kb->base.cfg.log, SF_LOG_INFO, NULL, NULL,
               "kafka: creating topic %s (%d partitions, cleanup.policy=%s, retention.ms=%s)",
               ts[i].name, ts[i].partitions, ts[i].cleanup, ts[i].retention);
        k++;
    }
    if (!k) return 0;
    rd_kafka_queue_t *q = rd_kafka_queue_new(kb->producer);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(kb->producer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(o, 10000, rerr, sizeof(rerr));
    rd_kafka_CreateTopics(kb->producer, nt, k, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        sf_errf(err, errlen, "creating topics: no answer within 30 s");
        rc = -ETIMEDOUT;
    } else if (rd_kafka_event_error(ev)) {
        sf_errf(err, errlen, "creating topics: %s", rd_kafka_event_error_string(ev));
        rc = sf_kafka_errno(rd_kafka_event_error(ev));
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (!e || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;  /* another client won */
            sf_errf(err, errlen, "creating topic %s: %s", rd_kafka_topic_result_name(res[i]),
                    rd_kafka_topic_result_error_string(res[i]));
            rc = sf_kafka_errno(e);
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
out:
    rd_kafka_NewTopic_destroy_array(nt, k);
    return rc;
}

int sf_kafka_ensure_topics(struct kafka_broker *kb, char *err, size_t errlen)
{
    char ttl[24];
    const rd_kafka_metadata_t *md = NULL;
    int rc, timeout = kb->base.cfg.connect_timeout_ms > 0 ? kb->base.cfg.connect_timeout_ms : 2000;
    pthread_mutex_lock(&kb->mu);
    bool ok = kb->topics_ok;
    pthread_mutex_unlock(&kb->mu);
    if (ok) return 0;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)kb->ttl_ms);
    const struct topic_spec ts[] = {
        { kb->t_tasks, kb->partitions, "delete", ttl, SF_KAFKA_MSG_MAX },
        { kb->t_retry, kb->partitions, "delete", ttl, SF_KAFKA_MSG_MAX },
        { kb->t_dlq, 1, "delete", "-1", SF_KAFKA_MSG_MAX },        /* kept until an operator acts */
        { kb->t_results, kb->partitions, "delete", ttl, SF_KAFKA_MSG_MAX },
        { kb->t_runs, kb->partitions, "compact,delete", ttl, SF_KAFKA_MSG_MAX },
        { kb->t_blobs, kb->partitions, "delete", ttl, SF_KAFKA_BLOB_MAX },
        { kb->t_cb, kb->partitions, "delete", ttl, SF_KAFKA_MSG_MAX },
        { kb->t_cb_retry, kb->partitions, "delete", ttl, SF_KAFKA_MSG_MAX },
        /* compacted, key = delivery id / dead letter offset: last word wins */
        { kb->t_cb_dead, 1, "compact", "-1", SF_KAFKA_MSG_MAX },
        { kb->t_dlq_handled, 1, "compact", "-1", SF_KAFKA_MSG_MAX },
        { kb->t_sub, kb->partitions, "delete", ttl, SF_KAFKA_MSG_MAX },
    };
    size_t n = sizeof(ts) / sizeof(ts[0]);
    /* Created once; then wait until the metadata shows every topic (a new
     * topic takes a moment to get its leaders). */
    int64_t deadline = sf_now_ms() + 15000;
    bool created = false;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_metadata(kb->producer, 1, NULL, &md, timeout);
        if (e) {
            sf_errf(err, errlen, "kafka %s: %s", kb->base.url_redacted, rd_kafka_err2str(e));
            return sf_kafka_errno(e);
        }
        size_t have = 0, ready = 0;
        for (size_t i = 0; i < n; i++) {
            have += topic_partitions(md, ts[i].name) > 0;
            ready += topic_ready(md, ts[i].name);
        }
        if (ready == n) break;
        if (!created && have < n) {
            rc = create_topics(kb, ts, n, md, err, errlen);
            created = true;
            if (rc < 0) goto fail;
        } else if (sf_now_ms() > deadline) {
            sf_errf(err, errlen, "topics created but without partition leaders after 15 s");
            rc = -EAGAIN;
            goto fail;
        }
        rd_kafka_metadata_destroy(md);
        md = NULL;
        sf_sleep_ms(100);
    }
    pthread_mutex_lock(&kb->mu);
    kb->n_results_parts = topic_partitions(md, kb->t_results);
    kb->n_runs_parts = topic_partitions(md, kb->t_runs);
    kb->topics_ok = true;
    pthread_mutex_unlock(&kb->mu);
    rd_kafka_metadata_destroy(md);
    return 0;
fail:
    if (md) rd_kafka_metadata_destroy(md);
    return rc;
}
