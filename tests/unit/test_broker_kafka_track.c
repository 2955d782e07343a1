/* Offset bookkeeping of the Kafka broker: only the contiguous finished
 * prefix of a partition is committed, and completions of a revoked
 * assignment never move the offsets of the next one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker_kafka.h"

static void out_of_order_finish_commits_prefix_only(void **state)
{
    (void)state;
    struct sf_kafka_track *t = sf_kafka_track_new();
    uint32_t e = sf_kafka_track_assign(t, 3), e2;
    int64_t commit = -1;
    for (int64_t off = 10; off < 14; off++) {
        assert_int_equal(sf_kafka_track_deliver(t, 3, off, &e2), 0);
        assert_int_equal(e2, e);
    }
    assert_int_equal(sf_kafka_track_inflight(t), 4);
    /* 11 and 12 finish first: 10 still runs, nothing may be committed. */
    assert_int_equal(sf_kafka_track_finish(t, 3, e, 11, &commit), 0);
    assert_int_equal(sf_kafka_track_finish(t, 3, e, 12, &commit), 0);
    assert_int_equal(commit, -1);
    /* 10 finishes: the prefix 10..12 is done, the next offset is 13. */
    assert_int_equal(sf_kafka_track_finish(t, 3, e, 10, &commit), 1);
    assert_int_equal(commit, 13);
    assert_int_equal(sf_kafka_track_inflight(t), 1);
    assert_int_equal(sf_kafka_track_finish(t, 3, e, 13, &commit), 1);
    assert_int_equal(commit, 14);
    assert_int_equal(sf_kafka_track_inflight(t), 0);
    /* A second completion of the same offset is not ours to commit again. */
    assert_int_equal(sf_kafka_track_finish(t, 3, e, 13, &commit), -ESTALE);
    sf_kafka_track_free(t);
}

static void revoked_partition_is_stale(void **state)
{
    (void)state;
    struct sf_kafka_track *t = sf_kafka_track_new();
    uint32_t e1 = sf_kafka_track_assign(t, 0), e;
    int64_t commit = -1;
    assert_int_equal(sf_kafka_track_deliver(t, 0, 5, &e), 0);
    assert_true(sf_kafka_track_owned(t, 0, e1));
    sf_kafka_track_revoke(t, 0);
    assert_false(sf_kafka_track_owned(t, 0, e1));
    assert_int_equal(sf_kafka_track_finish(t, 0, e1, 5, &commit), -ESTALE);
    assert_int_equal(sf_kafka_track_deliver(t, 0, 6, &e), -ESTALE);
    /* Assigned back: a new epoch; the old completion still cannot commit
     * the redelivered offset. */
    uint32_t e2 = sf_kafka_track_assign(t, 0);
    assert_int_not_equal(e1, e2);
    assert_int_equal(sf_kafka_track_deliver(t, 0, 5, &e), 0);
    assert_int_equal(e, e2);
    assert_int_equal(sf_kafka_track_finish(t, 0, e1, 5, &commit), -ESTALE);
    assert_int_equal(commit, -1);
    assert_int_equal(sf_kafka_track_finish(t, 0, e2, 5, &commit), 1);
    assert_int_equal(commit, 6);
    sf_kafka_track_free(t);
}

static void unknown_partition_and_offset(void **state)
{
    (void)state;
    struct sf_kafka_track *t = sf_kafka_track_new();
    uint32_t e;
    int64_t commit;
    assert_int_equal(sf_kafka_track_deliver(t, 7, 1, &e), -ESTALE);
    e = sf_kafka_track_assign(t, 7);
    assert_int_equal(sf_kafka_track_finish(t, 7, e, 42, &commit), -ESTALE);
    assert_false(sf_kafka_track_owned(t, -1, e));
    assert_false(sf_kafka_track_owned(t, 1000, e));
    sf_kafka_track_free(t);
    sf_kafka_track_free(NULL);
}

static void redelivery_before_finish_keeps_one_entry(void **state)
{
    (void)state;
    struct sf_kafka_track *t = sf_kafka_track_new();
    uint32_t e = sf_kafka_track_assign(t, 1), e2;
    int64_t commit = -1;
    /* A gap (compaction or aborted batches) and a rewind to an earlier offset. */
    assert_int_equal(sf_kafka_track_deliver(t, 1, 20, &e2), 0);
    assert_int_equal(sf_kafka_track_deliver(t, 1, 25, &e2), 0);
    assert_int_equal(sf_kafka_track_deliver(t, 1, 20, &e2), 0);
    assert_int_equal(sf_kafka_track_deliver(t, 1, 22, &e2), 0);
    assert_int_equal(sf_kafka_track_inflight(t), 3);
    assert_int_equal(sf_kafka_track_finish(t, 1, e, 20, &commit), 1);
    assert_int_equal(commit, 21);
    assert_int_equal(sf_kafka_track_finish(t, 1, e, 25, &commit), 0);
    assert_int_equal(sf_kafka_track_finish(t, 1, e, 22, &commit), 1);
    assert_int_equal(commit, 26);
    sf_kafka_track_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(out_of_order_finish_commits_prefix_only),
        cmocka_unit_test(revoked_partition_is_stale),
        cmocka_unit_test(unknown_partition_and_offset),
        cmocka_unit_test(redelivery_before_finish_keeps_one_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
