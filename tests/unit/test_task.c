/* Wire format v1: what decodes, what is rejected and with which reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "task.h"

#define TASK_OK "{\"v\":1,\"id\":\"r:a:0\",\"run_id\":\"r\",\"step\":\"a\",\"run\":\"cat\""

static void expect_reject(const char *msg, const char *reason)
{
    char err[512] = "";
    struct sf_task *t = sf_task_decode(msg, strlen(msg), err, sizeof(err));
    assert_null(t);
    if (!strstr(err, reason)) fail_msg("reason '%s' does not contain '%s'", err, reason);
}

static void minimal_task_decodes_with_defaults(void **state)
{
    (void)state;
    char err[256];
    const char *m = TASK_OK "}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    assert_non_null(t);
    assert_string_equal(t->id, "r:a:0");
    assert_int_equal(t->attempt, 1);
    assert_int_equal(t->max_attempts, 1);
    assert_true(json_is_null(t->input));
    assert_false(t->network);
    sf_task_free(t);
}

static void full_task_round_trips(void **state)
{
    (void)state;
    char err[256];
    const char *m = TASK_OK ",\"index\":3,\"attempt\":2,\"max_attempts\":4,\"files\":{\"a.py\":\"x\","
                    "\"b\":{\"base64\":\"AAE=\"}},\"input\":[1,{\"k\":null}],\"timeout_s\":2.5,"
                    "\"limits\":{\"memory_mb\":64,\"pids\":10},\"env\":{\"K\":\"V\"},"
                    "\"network\":true,\"template\":\"debian-12\",\"created_at\":5,\"reply_to\":\"replies\"}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    assert_non_null(t);
    char *enc = sf_task_encode(t);
    struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
    assert_non_null(t2);
    assert_int_equal(t2->index, 3);
    assert_int_equal(t2->attempt, 2);
    assert_int_equal(t2->max_attempts, 4);
    assert_int_equal(t2->limits.memory_mb, 64);
    assert_int_equal(t2->limits.pids, 10);
    assert_true(t2->network);
    assert_string_equal(t2->reply_to, "replies");
    assert_string_equal(t2->template_name, "debian-12");
    assert_true(json_equal(t->input, t2->input));
    assert_true(json_equal(t->files, t2->files));
    assert_true(t2->timeout_s > 2.4 && t2->timeout_s < 2.6);
    free(enc);
    sf_task_free(t);
    sf_task_free(t2);
}

static void bad_tasks_are_rejected_with_a_reason(void **state)
{
    (void)state;
    expect_reject("{not json", "malformed JSON at line 1");
    expect_reject("[1,2]", "must be a JSON object");
    expect_reject("{\"id\":\"x\"}", "missing field 'v'");
    expect_reject("{\"v\":7,\"id\":\"x\"}", "unsupported version 7");
    expect_reject("{\"v\":\"1\"}", "unsupported version \"1\"");
    expect_reject("{\"v\":1,\"run_id\":\"r\",\"step\":\"a\",\"run\":\"x\"}", "missing field 'id'");
    expect_reject("{\"v\":1,\"id\":\"i\",\"run_id\":\"r\",\"step\":\"a\"}", "missing field 'run'");
    expect_reject(TASK_OK ",\"attempt\":0}", "'attempt' must be >= 1");
    expect_reject(TASK_OK ",\"index\":\"3\"}", "'index' must be an integer");
    expect_reject(TASK_OK ",\"timeout_s\":-1}", "'timeout_s' must be a non-negative number");
    /* A deadline of 1e300 s overflowed the sandbox's int64 ms (worker with
     * --max-timeout-s 0): refused like a workflow step's. */
    expect_reject(TASK_OK ",\"timeout_s\":1e300}", "'timeout_s' must be at most 604800 (a week)");
    expect_reject(TASK_OK ",\"files\":[]}", "'files' must be an object");
    expect_reject(TASK_OK ",\"files\":{\"a\":1}}", "file 'a' must be a string");
    expect_reject(TASK_OK ",\"env\":{\"A=B\":\"x\"}}", "env 'A=B'");
    expect_reject(TASK_OK ",\"limits\":{\"memory_mb\":-5}}", "limit 'memory_mb' must be a positive");
    expect_reject(TASK_OK ",\"limits\":{\"ram\":5}}", "unknown limit 'ram'");
    expect_reject(TASK_OK ",\"network\":\"yes\"}", "network must be true, false or an object");
    expect_reject(TASK_OK ",\"network\":{\"deny_out\":[\"example.com\"]}}",
                  "network.deny_out[0]: 'example.com' is not an IP or CIDR block");
    expect_reject(TASK_OK ",\"template\":\"../etc\"}", "'template' must be letters");
    expect_reject(TASK_OK ",\"template\":7}", "'template'");
    expect_reject("{\"v\":1,\"id\":\"\",\"run_id\":\"r\",\"step\":\"a\",\"run\":\"x\"}",
                  "field 'id' must be 1 to 256 letters, digits, '_', '-', '.', ':' (got \"\")");
}

/* Ids from the wire follow one rule each (util.h), checked at decode: what
 * would forge a log line, hide in a key or overflow a buffer never gets in,
 * and the reason shows the offending id escaped. */
static void hostile_ids_are_rejected_at_decode(void **state)
{
    (void)state;
    expect_reject("{\"v\":1,\"id\":\"r:a:0\",\"run_id\":\"r\\n2024 error forged\",\"step\":\"a\",\"run\":\"x\"}",
                  "field 'run_id' must be 1 to 100 letters, digits, '_', '-', '.' (got \"r\\n2024 error forged\")");
    expect_reject("{\"v\":1,\"id\":\"r:a:0\",\"run_id\":\"a/../b\",\"step\":\"a\",\"run\":\"x\"}",
                  "field 'run_id' must be");
    expect_reject("{\"v\":1,\"id\":\"r:a:0\",\"run_id\":\"r\\u0000x\",\"step\":\"a\",\"run\":\"x\"}",
                  "field 'run_id' must be");
    expect_reject("{\"v\":1,\"id\":\"r a 0\",\"run_id\":\"r\",\"step\":\"a\",\"run\":\"x\"}",
                  "field 'id' must be");
    expect_reject("{\"v\":1,\"id\":\"r:a:0\",\"run_id\":\"r\",\"step\":\"my step\",\"run\":\"x\"}",
                  "field 'step' must be 1 to 128");
    char big[400];
    memset(big, 'x', 300);
    big[300] = '\0';
    char msg[600];
    snprintf(msg, sizeof(msg), "{\"v\":1,\"id\":\"%s\",\"run_id\":\"r\",\"step\":\"a\",\"run\":\"x\"}", big);
    expect_reject(msg, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (300 bytes)");
    const char *res = "{\"v\":1,\"task_id\":\"t\\r\",\"run_id\":\"r\",\"step\":\"a\",\"status\":\"ok\"}";
    char err[256] = "";
    assert_null(sf_result_decode(res, strlen(res), err, sizeof(err)));
    assert_non_null(strstr(err, "field 'task_id' must be"));
}

static void serve_lines_round_trips_and_nothing_else_is_accepted(void **state)
{
    (void)state;
    char err[256];
    const char *m = TASK_OK ",\"serve\":\"lines\"}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(t->serve, SF_SERVE_LINES);
    char *enc = sf_task_encode(t);
    assert_non_null(strstr(enc, "\"serve\":\"lines\""));
    struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
    assert_int_equal(t2->serve, SF_SERVE_LINES);
    free(enc);
    sf_task_free(t2);
    sf_task_free(t);
    /* absent or null: a cold task, and nothing on the wire */
    m = TASK_OK ",\"serve\":null}";
    t = sf_task_decode(m, strlen(m), err, sizeof(err));
    assert_int_equal(t->serve, SF_SERVE_NONE);
    enc = sf_task_encode(t);
    assert_null(strstr(enc, "serve"));
    free(enc);
    sf_task_free(t);
    expect_reject(TASK_OK ",\"serve\":\"json\"}", "field 'serve' must be \"lines\"");
    expect_reject(TASK_OK ",\"serve\":true}", "field 'serve' must be \"lines\"");
}

static void result_round_trips_and_rejects_unknown_status(void **state)
{
    (void)state;
    char err[256];
    const char *m = "{\"v\":1,\"task_id\":\"t\",\"run_id\":\"r\",\"step\":\"a\",\"index\":2,"
                    "\"attempt\":1,\"status\":\"timeout\",\"exit_code\":137,\"output\":null,"
                    "\"stderr_tail\":\"boom\",\"duration_ms\":10,\"worker\":\"w\",\"error\":\"late\"}";
    struct sf_result *r = sf_result_decode(m, strlen(m), err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(r->status, SF_RESULT_TIMEOUT);
    assert_int_equal(r->exit_code, 137);
    assert_null(r->output);
    char *enc = sf_result_encode(r);
    assert_non_null(strstr(enc, "\"status\":\"timeout\""));
    assert_non_null(strstr(enc, "\"error\":\"late\""));
    free(enc);
    sf_result_free(r);
    const char *bad = "{\"v\":1,\"task_id\":\"t\",\"run_id\":\"r\",\"step\":\"a\",\"status\":\"meh\"}";
    assert_null(sf_result_decode(bad, strlen(bad), err, sizeof(err)));
    assert_non_null(strstr(err, "unknown status 'meh'"));
}

static void result_for_carries_task_identity(void **state)
{
    (void)state;
    char err[256];
    const char *m = TASK_OK ",\"index\":4,\"attempt\":3}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    struct sf_result *r = sf_result_for(t, SF_RESULT_REJECTED, "w9", "bad %s", "thing");
    assert_string_equal(r->task_id, "r:a:0");
    assert_int_equal(r->index, 4);
    assert_int_equal(r->attempt, 3);
    assert_string_equal(r->error, "bad thing");
    assert_string_equal(r->worker, "w9");
    sf_result_free(r);
    sf_task_free(t);
}

static void bundle_task_carries_a_workflow_instead_of_run(void **state)
{
    (void)state;
    char err[256] = "";
    const char *m = "{\"v\":1,\"id\":\"r:__workflow__:0\",\"run_id\":\"r\",\"step\":\"__workflow__\","
                    "\"workflow\":{\"steps\":[{\"id\":\"a\",\"run\":\"cat\"}]}}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    if (!t) fail_msg("%s", err);
    assert_true(json_is_object(t->workflow));
    assert_string_equal(t->run, "");
    char *enc = sf_task_encode(t);
    struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
    assert_non_null(t2);
    assert_true(json_equal(t->workflow, t2->workflow));
    free(enc);
    sf_task_free(t2);
    sf_task_free(t);
    expect_reject("{\"v\":1,\"id\":\"i\",\"run_id\":\"r\",\"step\":\"a\",\"workflow\":[1]}",
                  "field 'workflow' must be an object");
}

static void gates_secrets_and_priority_round_trip(void **state)
{
    (void)state;
    char err[256];
    const char *m = TASK_OK ",\"secrets\":[\"OPENAI_API_KEY\",\"B\"],\"secret_misses\":2,"
                    "\"concurrency\":{\"key\":\"openai\",\"limit\":10},"
                    "\"rate\":{\"key\":\"openai\",\"per_s\":0.5},\"priority\":7}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    if (!t) fail_msg("%s", err);
    assert_int_equal(json_array_size(t->secrets), 2);
    assert_int_equal(t->secret_misses, 2);
    assert_string_equal(t->concurrency.key, "openai");
    assert_int_equal(t->concurrency.limit, 10);
    assert_string_equal(t->rate.key, "openai");
    assert_true(t->rate.per_s == 0.5);
    assert_int_equal(t->rate.burst, 1);            /* default: per_s rounded up */
    assert_int_equal(t->priority, 7);
    char *enc = sf_task_encode(t);
    struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
    assert_non_null(t2);
    assert_true(json_equal(t->secrets, t2->secrets));
    assert_int_equal(t2->concurrency.limit, 10);
    assert_true(t2->rate.per_s == 0.5);
    assert_int_equal(t2->priority, 7);
    assert_int_equal(t2->secret_misses, 2);
    json_t *names = sf_task_secret_names(t2);
    assert_int_equal(json_array_size(names), 2);
    json_decref(names);
    free(enc);
    sf_task_free(t2);
    /* none of them: the message has none of the fields */
    struct sf_task *plain = sf_task_decode(TASK_OK "}", strlen(TASK_OK) + 1, err, sizeof(err));
    enc = sf_task_encode(plain);
    assert_null(strstr(enc, "priority"));
    assert_null(strstr(enc, "concurrency"));
    assert_null(strstr(enc, "secrets"));
    free(enc);
    sf_task_free(plain);
    sf_task_free(t);
}

static void bad_gates_are_rejected_with_a_reason(void **state)
{
    (void)state;
    expect_reject(TASK_OK ",\"secrets\":\"A\"}", "'secrets' must be an array");
    expect_reject(TASK_OK ",\"secrets\":[\"lower\"]}", "'secrets' must hold NAMEs");
    expect_reject(TASK_OK ",\"secrets\":[\"SF_RUN_ID\"]}", "sandfleet's own");
    expect_reject(TASK_OK ",\"secrets\":[\"A\",\"A\"]}", "lists 'A' twice");
    expect_reject(TASK_OK ",\"env\":{\"A\":\"x\"},\"secrets\":[\"A\"]}", "also set in 'env'");
    expect_reject(TASK_OK ",\"concurrency\":{\"key\":\"k\"}}", "\"limit\"");
    expect_reject(TASK_OK ",\"concurrency\":{\"key\":\"k\",\"limit\":0}}", "\"limit\"");
    expect_reject(TASK_OK ",\"concurrency\":{\"key\":\"a b\",\"limit\":1}}", "needs a \"key\"");
    expect_reject(TASK_OK ",\"concurrency\":{\"key\":\"k\",\"limit\":1,\"x\":1}}", "must be {");
    expect_reject(TASK_OK ",\"rate\":{\"key\":\"k\",\"per_s\":0}}", "\"per_s\"");
    /* The wait for a token, 1000 / per_s ms, overflowed the integers it
     * became (central gate, the Redis script's next-due time). */
    expect_reject(TASK_OK ",\"rate\":{\"key\":\"k\",\"per_s\":1e-300}}", "from 0.000001 to 1000000");
    expect_reject(TASK_OK ",\"rate\":{\"key\":\"k\",\"per_s\":1,\"burst\":0}}", "\"burst\"");
    expect_reject(TASK_OK ",\"priority\":10}", "'priority' must be an integer from 0 to 9");
    expect_reject(TASK_OK ",\"priority\":\"high\"}", "'priority'");
    expect_reject(TASK_OK ",\"secret_misses\":-1}", "secret_misses");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minimal_task_decodes_with_defaults),
        cmocka_unit_test(full_task_round_trips),
        cmocka_unit_test(bad_tasks_are_rejected_with_a_reason),
        cmocka_unit_test(hostile_ids_are_rejected_at_decode),
        cmocka_unit_test(serve_lines_round_trips_and_nothing_else_is_accepted),
        cmocka_unit_test(result_round_trips_and_rejects_unknown_status),
        cmocka_unit_test(result_for_carries_task_identity),
        cmocka_unit_test(bundle_task_carries_a_workflow_instead_of_run),
        cmocka_unit_test(gates_secrets_and_priority_round_trip),
        cmocka_unit_test(bad_gates_are_rejected_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
