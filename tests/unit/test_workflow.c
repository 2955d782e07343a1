/* The workflow validator: every problem is found before anything runs, one
 * clear line each naming the file and the step. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "workflow.h"

static struct sf_workflow *parse_ok(const char *doc)
{
    struct sf_workflow *wf = NULL;
    struct sf_buf errs = {0};
    int rc = sf_workflow_parse(doc, strlen(doc), "wf.json", NULL, &wf, &errs);
    if (rc != 0) fail_msg("unexpected errors: %s", errs.data);
    sf_buf_free(&errs);
    return wf;
}

/* Parse 'doc', expect failure, and expect each of the NULL-terminated
 * messages in the error text. */
static void expect_errors(const char *doc, ...)
{
    struct sf_workflow *wf = NULL;
    struct sf_buf errs = {0};
    assert_int_equal(sf_workflow_parse(doc, strlen(doc), "wf.json", NULL, &wf, &errs), -EINVAL);
    assert_null(wf);
    va_list ap;
    va_start(ap, doc);
    for (const char *m; (m = va_arg(ap, const char *));)
        if (!strstr(errs.data, m)) fail_msg("missing '%s' in:\n%s", m, errs.data);
    va_end(ap);
    sf_buf_free(&errs);
}

static void bad_json_reports_line_and_column(void **state)
{
    (void)state;
    expect_errors("{\n  \"steps\": [,]\n}", "wf.json:2:", "invalid JSON", NULL);
    expect_errors("[]", "wf.json: the workflow must be a JSON object", NULL);
    expect_errors("{\"steps\":[], \"name\":\"x\", \"name\":\"y\"}", "invalid JSON", "duplicate", NULL);
}

static void unknown_fields_are_named(void **state)
{
    (void)state;
    expect_errors("{\"stepz\":[], \"steps\":[{\"id\":\"a\",\"run\":\"x\",\"timeout\":3}]}",
                  "wf.json: unknown field 'stepz'", "wf.json: step 'a': unknown field 'timeout'", NULL);
}

static void all_problems_reported_at_once(void **state)
{
    (void)state;
    expect_errors("{\"sandbox\":\"pooled\",\"steps\":["
                  "{\"id\":\"a\",\"run\":\"\"},"
                  "{\"id\":\"a\",\"run\":\"x\",\"retries\":-1,\"timeout_s\":0},"
                  "{\"run\":\"x\"},"
                  "{\"id\":\"c d\",\"run\":\"x\",\"network\":1,\"map\":\"yes\"}]}",
                  "'sandbox' must be \"per-step\" or \"shared\"",
                  "step 'a': 'run' must be a non-empty string",
                  "step 'a': duplicate step id (also step #1)",
                  "step 'a': 'retries' must be an integer from 0 to 100",
                  "step 'a': 'timeout_s' must be a number of seconds > 0",
                  "step '#3': missing 'id'",
                  "step '#4': 'id' must be a string",
                  "'network': network must be true, false or an object",
                  "'map' must be true or false", NULL);
}

static void templates_are_names_and_one_per_shared_sandbox(void **state)
{
    (void)state;
    struct sf_workflow *wf = parse_ok("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"template\":\"tools\"},"
                                      "{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]}]}");
    assert_string_equal(wf->steps[0].template_name, "tools");
    assert_null(wf->steps[1].template_name);
    sf_workflow_free(wf);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"template\":\"a/b\"}]}",
                  "step 'a': 'template' must be a template name", NULL);
    expect_errors("{\"sandbox\":\"shared\",\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"template\":\"t1\"},"
                  "{\"id\":\"b\",\"run\":\"x\"}]}",
                  "step 'b': 'template' differs from step #1's", NULL);
}

static void unknown_needs_and_cycles(void **state)
{
    (void)state;
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"needs\":[\"nope\"]}]}",
                  "wf.json: step 'a': unknown need 'nope'", NULL);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"needs\":[\"a\"]}]}",
                  "step 'a': needs itself", NULL);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"needs\":[\"c\"]},"
                  "{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]},"
                  "{\"id\":\"c\",\"run\":\"x\",\"needs\":[\"b\"]},"
                  "{\"id\":\"d\",\"run\":\"x\"}]}",
                  "the needs form a cycle through 'a', 'b', 'c'", NULL);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\"},{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\",\"a\"]}]}",
                  "'needs' lists 'a' twice", NULL);
}

static void map_input_must_be_an_array(void **state)
{
    (void)state;
    expect_errors("{\"steps\":[{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"input\":{\"a\":1}}]}",
                  "step 'm': a map step's 'input' must be an array", NULL);
    expect_errors("{\"steps\":[{\"id\":\"m\",\"run\":\"x\",\"map\":true}]}",
                  "step 'm': a map step needs an array", NULL);
    struct sf_workflow *wf = parse_ok("{\"steps\":[{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"input\":[1,2]}]}");
    assert_true(wf->steps[0].map);
    sf_workflow_free(wf);
}

static void bad_limits_and_env(void **state)
{
    (void)state;
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"limits\":{\"memory_mb\":0}}]}",
                  "step 'a': limit 'memory_mb' must be a positive integer", NULL);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"limits\":{\"gpu\":1}}]}",
                  "step 'a': unknown limit 'gpu'", NULL);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"env\":{\"A\":1}}]}",
                  "step 'a': 'env' must be an object", NULL);
}

static void gates_secrets_and_priority(void **state)
{
    (void)state;
    struct sf_workflow *wf = parse_ok("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"secrets\":[\"K\"],"
        "\"concurrency\":{\"key\":\"openai\",\"limit\":2},\"rate\":{\"key\":\"openai\",\"per_s\":5,"
        "\"burst\":5},\"priority\":3},{\"id\":\"b\",\"run\":\"x\"}]}");
    assert_int_equal(wf->steps[0].priority, 3);
    assert_int_equal(wf->steps[1].priority, -1);  /* the run's */
    assert_int_equal(wf->steps[0].concurrency.limit, 2);
    assert_int_equal(wf->steps[0].rate.burst, 5);
    assert_string_equal(json_string_value(json_array_get(wf->steps[0].secrets, 0)), "K");
    /* the bundle form keeps them */
    json_t *j = sf_workflow_to_json(wf);
    json_t *st = json_array_get(json_object_get(j, "steps"), 0);
    assert_int_equal(json_integer_value(json_object_get(st, "priority")), 3);
    assert_non_null(json_object_get(st, "concurrency"));
    assert_non_null(json_object_get(st, "rate"));
    assert_non_null(json_object_get(st, "secrets"));
    json_decref(j);
    sf_workflow_free(wf);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"priority\":12,\"secrets\":[\"a-b\"],"
                  "\"concurrency\":{\"limit\":2},\"rate\":{\"key\":\"k\"}}]}",
                  "step 'a': 'priority' must be an integer from 0 to 9",
                  "step 'a': 'secrets' must hold NAMEs",
                  "step 'a': 'concurrency' needs a \"key\"",
                  "step 'a': 'rate' needs \"per_s\"", NULL);
    expect_errors("{\"sandbox\":\"shared\",\"steps\":[{\"id\":\"a\",\"run\":\"x\","
                  "\"concurrency\":{\"key\":\"k\",\"limit\":1}}]}",
                  "step 'a': 'concurrency' and 'rate' cannot be used with \"sandbox\": \"shared\"", NULL);
}

static void file_paths_must_stay_inside_workspace(void **state)
{
    (void)state;
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"files\":{\"../evil\":\"f\",\"/abs\":\"f\",\"ok/\":\"f\"}}]}",
                  "files: '../evil' must be a relative path", "files: '/abs' must be",
                  "files: 'ok/' must be", NULL);
}

static void missing_files_are_reported(void **state)
{
    (void)state;
    char dir[] = "/tmp/sf-wf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], agent[256];
    snprintf(path, sizeof(path), "%s/wf.json", dir);
    snprintf(agent, sizeof(agent), "%s/agent.py", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"steps\":[{\"id\":\"a\",\"run\":\"python3 agent.py\",\"files\":{\"agent.py\":\"agent.py\","
          "\"gone.py\":\"missing.py\"}}]}", f);
    fclose(f);
    f = fopen(agent, "w");
    fputs("print('{}')\n", f);
    fclose(f);
    struct sf_workflow *wf = NULL;
    struct sf_buf errs = {0};
    assert_int_equal(sf_workflow_load(path, &wf, &errs), -EINVAL);
    assert_non_null(strstr(errs.data, "step 'a': files: cannot read"));
    assert_non_null(strstr(errs.data, "missing.py"));
    assert_non_null(strstr(errs.data, "No such file"));
    sf_buf_free(&errs);
    /* With the file present the content is loaded. */
    f = fopen(path, "w");
    fputs("{\"steps\":[{\"id\":\"a\",\"run\":\"python3 agent.py\",\"files\":{\"agent.py\":\"agent.py\"}}]}", f);
    fclose(f);
    assert_int_equal(sf_workflow_load(path, &wf, &errs), 0);
    assert_string_equal(json_string_value(json_object_get(wf->steps[0].files, "agent.py")), "print('{}')\n");
    sf_workflow_free(wf);
    sf_buf_free(&errs);
    unlink(agent);
    unlink(path);
    rmdir(dir);
}

static void dag_order_respects_needs(void **state)
{
    (void)state;
    struct sf_workflow *wf = parse_ok("{\"name\":\"n\",\"steps\":["
        "{\"id\":\"sum\",\"run\":\"x\",\"needs\":[\"each\",\"b\"]},"
        "{\"id\":\"each\",\"run\":\"x\",\"needs\":[\"b\"],\"map\":true},"
        "{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]},"
        "{\"id\":\"a\",\"run\":\"x\",\"input\":{}}]}");
    size_t pos[4];
    for (size_t i = 0; i < 4; i++) pos[wf->order[i]] = i;
    long a = sf_workflow_find(wf, "a"), b = sf_workflow_find(wf, "b");
    long each = sf_workflow_find(wf, "each"), sum = sf_workflow_find(wf, "sum");
    assert_true(pos[a] < pos[b]);
    assert_true(pos[b] < pos[each]);
    assert_true(pos[each] < pos[sum]);
    assert_string_equal(wf->name, "n");
    assert_int_equal(wf->sandbox, SF_SANDBOX_PER_STEP);
    sf_workflow_free(wf);
}

static void binary_file_content_becomes_base64(void **state)
{
    (void)state;
    json_t *s = sf_file_content_json("hi", 2);
    assert_string_equal(json_string_value(s), "hi");
    json_decref(s);
    json_t *b = sf_file_content_json("\xff\x00\x01", 3);
    assert_string_equal(json_string_value(json_object_get(b, "base64")), "/wAB");
    json_decref(b);
}

static void serve_is_lines_or_absent(void **state)
{
    (void)state;
    struct sf_workflow *wf = parse_ok("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"serve\":\"lines\"},"
                                      "{\"id\":\"b\",\"run\":\"y\"}]}");
    assert_int_equal(wf->steps[0].serve, SF_SERVE_LINES);
    assert_int_equal(wf->steps[1].serve, SF_SERVE_NONE);
    /* it travels with the workflow (bundle tasks) */
    json_t *j = sf_workflow_to_json(wf);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "steps"), 0),
                                                          "serve")), "lines");
    assert_null(json_object_get(json_array_get(json_object_get(j, "steps"), 1), "serve"));
    json_decref(j);
    sf_workflow_free(wf);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"serve\":\"stream\"}]}",
                  "step 'a': 'serve' must be \"lines\"", NULL);
    expect_errors("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"serve\":1}]}",
                  "step 'a': 'serve' must be \"lines\"", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_json_reports_line_and_column),
        cmocka_unit_test(unknown_fields_are_named),
        cmocka_unit_test(all_problems_reported_at_once),
        cmocka_unit_test(unknown_needs_and_cycles),
        cmocka_unit_test(map_input_must_be_an_array),
        cmocka_unit_test(bad_limits_and_env),
        cmocka_unit_test(file_paths_must_stay_inside_workspace),
        cmocka_unit_test(gates_secrets_and_priority),
        cmocka_unit_test(missing_files_are_reported),
        cmocka_unit_test(dag_order_respects_needs),
        cmocka_unit_test(templates_are_names_and_one_per_shared_sandbox),
        cmocka_unit_test(binary_file_content_becomes_base64),
        cmocka_unit_test(serve_is_lines_or_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
