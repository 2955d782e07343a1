/* The Kafka broker against librdkafka's mock cluster (test.mock.num.brokers),
 * for faults a real broker cannot easily give: produce requests that fail.
 * In addition to the real-broker tests in tests/integration, not instead.
 *   - a result whose produce fails for good is not acknowledged: the offset
 *     stays uncommitted and the next worker gets the same task again;
 *   - produce requests failing with retriable errors (leader moves) are
 *     retried by the idempotent producer: complete() succeeds once.
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

    struct sf_broker *w2 = open_broker(m, "w2");
    assert_true(fetch_one(w2, &d2));
    assert_string_equal(d2.data, task);        /* the same task again */
    /* Same partition and offset: "t:<p>:<off>:" match up to the epoch. */
    assert_memory_equal(d.handle, d2.handle, (size_t)(strrchr(d.handle, ':') - d.handle));
    assert_int_equal(complete_ok(w2, d2.handle, err, sizeof(err)), 0);
    sf_broker_free(w2);                        /* this time the offset is committed */

    struct sf_broker *w3 = open_broker(m, "w3");
    struct sf_delivery d3 = {0};
    size_t n = 0;
    int64_t until = sf_now_ms() + 8000;
    while (sf_now_ms() < until && !n)
        assert_int_equal(w3->ops->fetch(w3, &d3, 1, 500, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);                    /* nothing left after the commit */
    sf_broker_free(w3);
    sf_delivery_clear(&d);
    sf_delivery_clear(&d2);
    sf_delivery_clear(&d3);
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
    /* The coordinator reads exactly one result for the task. */
    char *out[8];
    size_t lens[8], n = 0, total = 0;
    int64_t until = sf_now_ms() + 10000;
    while (sf_now_ms() < until && total < 1) {
        assert_int_equal(co->ops->results(co, "r2", cursor, sizeof(cursor), out, lens, 8, 500, &n,
                                          err, sizeof(err)), 0);
        for (size_t i = 0; i < n; i++) free(out[i]);
        total += n;
    }
    assert_int_equal(total, 1);
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
