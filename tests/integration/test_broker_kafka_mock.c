/* The Kafka broker against librdkafka's mock cluster (test.mock.num.brokers),
 * for faults a real broker cannot easily give: produce requests that fail.
 * In addition to the real-broker tests, not instead. An integration test:
 * the mock cluster listens on loopback ports and groups take seconds to form.
 *   - a result whose produce fails for good is not acknowledged: the offset
 *     stays uncommitted and the next worker gets the same task again; once a
 *     result is stored, the group's committed offset is past the task (read
 *     from the cluster, not inferred from silence);
 *   - produce requests failing with retriable errors (leader moves) are
 *     retried by the idempotent producer: complete() succeeds and exactly
 *     one result is stored (read up to a later marker result, so a
 *     duplicate would be seen).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "broker.h"
#include "broker_kafka.h"
#include "util.h"

/* The Kafka protocol ApiKey of Produce (librdkafka keeps its RD_KAFKAP_*
 * names in a private header). */
#define API_PRODUCE 0

struct mock {
    rd_kafka_t *host;                /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    char url[256];
};

static int setup(void **state)
{
    struct mock *m = sf_xcalloc(1, sizeof(*m));
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "test.mock.num.brokers", "1", errstr, sizeof(errstr));
    rd_kafka_conf_set(c, "log_level", "0", errstr, sizeof(errstr));
    m->host = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof(errstr));
    assert_non_null(m->host);
    m->mc = rd_kafka_handle_mock_cluster(m->host);
    assert_non_null(m->mc);
    snprintf(m->url, sizeof(m->url), "kafka://%s", rd_kafka_mock_cluster_bootstraps(m->mc));
    /* The mock broker does not implement CreateTopics: make them here. */
    const char *topics[] = { "sandfleet.tasks", "sandfleet.tasks.retry", "sandfleet.tasks.dlq",
                             "sandfleet.results", "sandfleet.runs", "sandfleet.blobs",
                             "sandfleet.callbacks", "sandfleet.callbacks.retry",
                             "sandfleet.callbacks.dead", "sandfleet.tasks.dlq.handled",
                             "sandfleet.submissions" };
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        bool single = i == 2 || i == 8 || i == 9;       /* the DLQ and the compacted tables */
        assert_int_equal(rd_kafka_mock_topic_create(m->mc, topics[i], single ? 1 : 2, 1), 0);
    }
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    struct mock *m = *state;
    rd_kafka_destroy(m->host);
    free(m);
    return 0;
}

static struct sf_broker *open_broker(struct mock *m, const char *consumer)
{
    char err[512];
    char *conf[] = { "log_level=3" };
    struct sf_broker_cfg cfg = { .consumer = consumer, .lease_ms = 3000,
                                 .kafka_config = conf, .n_kafka_config = 1 };
    struct sf_broker *b = sf_broker_new(m->url, &cfg, err, sizeof(err));
    if (!b) fail_msg("sf_broker_new: %s", err);
    if (sf_broker_check(b, 20000, NULL, NULL, err, sizeof(err)) < 0) fail_msg("check: %s", err);
    return b;
}

/* Fetch until one delivery arrives (the group forms first) or 30 s pass. */
static bool fetch_one(struct sf_broker *b, struct sf_delivery *d)
{
    char err[512];
    int64_t until = sf_now_ms() + 30000;
    while (sf_now_ms() < until) {
        size_t n = 0;
        if (b->ops->fetch(b, d, 1, 500, &n, err, sizeof(err)) < 0) fail_msg("fetch: %s", err);
        if (n == 1) return true;
    }
    return false;
}

/* The offset the workers' group has committed on a partition of the tasks
 * topic, asked of the cluster (-1001: none). */
static int64_t committed_offset(struct mock *m, int32_t partition)
{
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", m->url + strlen("kafka://"), errstr, sizeof(errstr));
    rd_kafka_conf_set(c, "group.id", "sandfleet-workers", errstr, sizeof(errstr));
    rd_kafka_conf_set(c, "log_level", "0", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "sandfleet.tasks", partition);
    assert_int_equal(rd_kafka_committed(rk, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/* Partition and offset of a delivery handle "t:<p>:<off>:<epoch>". */
static void handle_pos(const char *h, int32_t *p, int64_t *off)
{
    assert_int_equal(sscanf(h, "t:%d:%ld:", p, off), 2);
}

static const char task[] = "{\"v\":1,\"id\":\"r1:s:0\",\"run_id\":\"r1\",\"step\":\"s\",\"run\":\"cat\"}";

static int complete_ok(struct sf_broker *b, const char *handle, char *err, size_t errlen)
{
    const char *res = "{\"v\":1,\"task_id\":\"r1:s:0\"}";
    struct sf_completion c = { .task_id = "r1:s:0", .run_id = "r1", .result = res,
                               .result_len = strlen(res) };
    return b->ops->complete(b, handle, &c, err, errlen);
}

static void failed_result_is_not_committed(void **state)
{
    struct mock *m = *state;
    char err[512];
    struct sf_delivery d = {0}, d2 = {0};
    struct sf_broker *co = open_broker(m, NULL);
    assert_int_equal(co->ops->publish(co, "r1", "r1:s:0", 0, task, strlen(task), err, sizeof(err)), 0);
    assert_int_equal(co->ops->publish(co, "r1", "r1:s:0", 0, task, strlen(task), err, sizeof(err)), 1);

    struct sf_broker *w1 = open_broker(m, "w1");
    assert_true(fetch_one(w1, &d));
    assert_string_equal(d.data, task);
    /* The result cannot be written (a permanent produce error). */
    rd_kafka_mock_push_request_errors(m->mc, API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    int rc = complete_ok(w1, d.handle, err, sizeof(err));
    assert_true(rc < 0);
    sf_broker_free(w1);                        /* commits what is stored: nothing for this task */
    int32_t p1;
    int64_t off1;
    handle_pos(d.handle, &p1, &off1);
    assert_true(committed_offset(m, p1) <= off1);

    struct sf_broker *w2 = open_broker(m, "w2");
    assert_true(fetch_one(w2, &d2));
    assert_string_equal(d2.data, task);        /* the same task again */
    /* Same partition and offset: "t:<p>:<off>:" match up to the epoch. */
    assert_memory_equal(d.handle, d2.handle, (size_t)(strrchr(d.handle, ':') - d.handle));
    assert_int_equal(complete_ok(w2, d2.handle, err, sizeof(err)), 0);
    sf_broker_free(w2);                        /* this time the offset is committed */

    /* Committed, as the cluster says: the offset after the task's. Before
     * the result was stored, nothing was committed for it. */
    int32_t part;
    int64_t off;
    handle_pos(d2.handle, &part, &off);
    assert_int_equal(committed_offset(m, part), off + 1);
    sf_delivery_clear(&d);
    sf_delivery_clear(&d2);
    sf_broker_free(co);
}

static void retriable_produce_errors_are_retried(void **state)
{
    struct mock *m = *state;
    char err[512], cursor[64] = "";
    struct sf_delivery d = {0};
    const char *t2 = "{\"v\":1,\"id\":\"r2:s:0\",\"run_id\":\"r2\",\"step\":\"s\",\"run\":\"cat\"}";
    struct sf_broker *co = open_broker(m, NULL);
    assert_int_equal(co->ops->publish(co, "r2", "r2:s:0", 0, t2, strlen(t2), err, sizeof(err)), 0);
    struct sf_broker *w = open_broker(m, "w4");
    assert_true(fetch_one(w, &d));
    rd_kafka_mock_push_request_errors(m->mc, API_PRODUCE, 3,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    const char *res = "{\"v\":1,\"task_id\":\"r2:s:0\"}";
    struct sf_completion c = { .task_id = "r2:s:0", .run_id = "r2", .result = res,
                               .result_len = strlen(res) };
    assert_int_equal(w->ops->complete(w, d.handle, &c, err, sizeof(err)), 0);
    /* A second task's result after it, on the same partition (key run_id):
     * the reader stops at that marker, so a duplicate of the first, which
     * the producer would have written before it, cannot be missed. */
    const char *t3 = "{\"v\":1,\"id\":\"r2:s:1\",\"run_id\":\"r2\",\"step\":\"s\",\"run\":\"cat\"}";
    assert_int_equal(co->ops->publish(co, "r2", "r2:s:1", 0, t3, strlen(t3), err, sizeof(err)), 0);
    struct sf_delivery d3 = {0};
    assert_true(fetch_one(w, &d3));
    const char *res3 = "{\"v\":1,\"task_id\":\"r2:s:1\"}";
    struct sf_completion c3 = { .task_id = "r2:s:1", .run_id = "r2", .result = res3,
                                .result_len = strlen(res3) };
    assert_int_equal(w->ops->complete(w, d3.handle, &c3, err, sizeof(err)), 0);
    char *out[8];
    size_t lens[8], n = 0, first = 0;
    bool marker = false;
    int64_t until = sf_now_ms() + 30000;
    while (sf_now_ms() < until && !marker) {
        assert_int_equal(co->ops->results(co, "r2", cursor, sizeof(cursor), out, lens, 8, 500, &n,
                                          err, sizeof(err)), 0);
        for (size_t i = 0; i < n; i++) {
            if (strstr(out[i], "\"r2:s:1\"")) marker = true;
            else if (!marker && strstr(out[i], "\"r2:s:0\"")) first++;
            free(out[i]);
        }
    }
    assert_true(marker);
    assert_int_equal(first, 1);                /* exactly one result for the retried produce */
    sf_delivery_clear(&d3);
    sf_delivery_clear(&d);
    sf_broker_free(w);
    sf_broker_free(co);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failed_result_is_not_committed),
        cmocka_unit_test(retriable_produce_errors_are_retried),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
