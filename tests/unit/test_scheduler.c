/* The run state machine: DAG order, input wiring, map fan-out and assembly,
 * retries, skips, idempotent results and the result document. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gate.h"
#include "scheduler.h"

static struct sf_workflow *wf_of(const char *doc)
{
    struct sf_workflow *wf = NULL;
    struct sf_buf errs = {0};
    if (sf_workflow_parse(doc, strlen(doc), "t.json", NULL, &wf, &errs) != 0)
        fail_msg("bad test workflow: %s", errs.data);
    sf_buf_free(&errs);
    return wf;
}

/* A result for task t with the given status and output (JSON text or NULL). */
static struct sf_result *res(const struct sf_task *t, enum sf_result_status st, const char *out)
{
    struct sf_result *r = sf_result_for(t, st, "w", st == SF_RESULT_OK ? NULL : "boom");
    r->exit_code = st == SF_RESULT_OK ? 0 : 1;
    if (out) r->output = json_loads(out, JSON_DECODE_ANY, NULL);
    return r;
}

static void complete(struct sf_sched *s, struct sf_task *t, enum sf_result_status st, const char *out)
{
    struct sf_result *r = res(t, st, out);
    assert_int_equal(sf_sched_complete(s, r, 0), 0);
    sf_result_free(r);
}

static json_t *step_field(json_t *doc, const char *step, const char *field)
{
    return json_object_get(json_object_get(json_object_get(doc, "steps"), step), field);
}

static void chain_passes_output_to_input(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"name\":\"c\",\"steps\":[{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]},"
                                   "{\"id\":\"a\",\"run\":\"x\",\"input\":{\"task\":\"t\"}}]}");
    struct sf_sched *s = sf_sched_new(wf, "run1", NULL);
    struct sf_task *a = sf_sched_next(s, 0);
    assert_string_equal(a->step, "a");
    assert_string_equal(a->id, "run1:a:0");
    assert_string_equal(json_string_value(json_object_get(a->input, "task")), "t");
    assert_null(sf_sched_next(s, 0));            /* b waits for a */
    complete(s, a, SF_RESULT_OK, "{\"n\":42}");
    struct sf_task *b = sf_sched_next(s, 0);
    assert_string_equal(b->step, "b");
    assert_int_equal(json_integer_value(json_object_get(b->input, "n")), 42);
    complete(s, b, SF_RESULT_OK, "\"done\"");
    assert_true(sf_sched_done(s));
    assert_true(sf_sched_succeeded(s));
    json_t *doc = sf_sched_result_doc(s, 7);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(doc, "workflow")), "c");
    assert_string_equal(json_string_value(json_object_get(doc, "run_id")), "run1");
    assert_string_equal(json_string_value(step_field(doc, "b", "output")), "done");
    assert_int_equal(json_integer_value(step_field(doc, "b", "attempts")), 1);
    assert_int_equal(json_integer_value(step_field(doc, "b", "exit_code")), 0);
    assert_true(json_is_null(step_field(doc, "b", "error")));
    assert_string_equal(json_string_value(step_field(doc, "b", "worker")), "w");
    static const char *const keys[] = { "status", "output", "exit_code", "attempts", "duration_ms",
                                        "stderr_tail", "error", "worker" };
    for (size_t i = 0; i < 8; i++) assert_non_null(step_field(doc, "a", keys[i]));
    json_decref(doc);
    sf_task_free(a);
    sf_task_free(b);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void several_needs_give_an_object(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\"},{\"id\":\"b\",\"run\":\"x\"},"
                                   "{\"id\":\"c\",\"run\":\"x\",\"needs\":[\"a\",\"b\"]}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *a = sf_sched_next(s, 0), *b = sf_sched_next(s, 0);
    assert_non_null(a);
    assert_non_null(b);                          /* independent: both ready at once */
    complete(s, b, SF_RESULT_OK, "2");
    assert_null(sf_sched_next(s, 0));
    complete(s, a, SF_RESULT_OK, "1");
    struct sf_task *c = sf_sched_next(s, 0);
    assert_int_equal(json_integer_value(json_object_get(c->input, "a")), 1);
    assert_int_equal(json_integer_value(json_object_get(c->input, "b")), 2);
    sf_task_free(a); sf_task_free(b); sf_task_free(c);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void map_assembles_outputs_in_input_order(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"input\":[\"x\",\"y\",\"z\"]},"
                                   "{\"id\":\"r\",\"run\":\"x\",\"needs\":[\"m\"]}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = sf_sched_next(s, 0);
        assert_int_equal(t[i]->index, i);
        char want[2] = { (char)('x' + i), 0 };
        assert_string_equal(json_string_value(t[i]->input), want);
    }
    assert_null(sf_sched_next(s, 0));
    complete(s, t[2], SF_RESULT_OK, "30");
    complete(s, t[0], SF_RESULT_OK, "10");
    struct sf_sched_progress p;
    sf_sched_progress(s, &p);
    assert_int_equal(p.tasks_done, 2);
    assert_int_equal(p.tasks_known, 4);
    complete(s, t[1], SF_RESULT_OK, "20");
    struct sf_task *r = sf_sched_next(s, 0);
    char *in = json_dumps(r->input, JSON_COMPACT);
    assert_string_equal(in, "[10,20,30]");
    free(in);
    for (int i = 0; i < 3; i++) sf_task_free(t[i]);
    sf_task_free(r);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void map_over_empty_array_succeeds_with_empty_output(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"input\":[]}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    assert_null(sf_sched_next(s, 0));
    assert_true(sf_sched_succeeded(s));
    json_t *doc = sf_sched_result_doc(s, 0);
    assert_int_equal(json_array_size(step_field(doc, "m", "output")), 0);
    json_decref(doc);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void map_of_a_non_array_output_fails_the_step(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\"},"
                                   "{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"needs\":[\"a\"]}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *a = sf_sched_next(s, 0);
    complete(s, a, SF_RESULT_OK, "{\"not\":\"array\"}");
    assert_null(sf_sched_next(s, 0));
    assert_true(sf_sched_done(s));
    json_t *doc = sf_sched_result_doc(s, 0);
    assert_string_equal(json_string_value(step_field(doc, "m", "status")), "failed");
    assert_string_equal(json_string_value(step_field(doc, "m", "error")),
                        "map input is not an array (got an object)");
    json_decref(doc);
    sf_task_free(a);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void failure_skips_dependants_but_not_independent_branches(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\"},{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]},"
                                   "{\"id\":\"c\",\"run\":\"x\",\"needs\":[\"b\"]},{\"id\":\"z\",\"run\":\"x\"}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *a = sf_sched_next(s, 0), *z = sf_sched_next(s, 0);
    assert_string_equal(z->step, "z");
    complete(s, a, SF_RESULT_ERROR, NULL);
    assert_false(sf_sched_done(s));              /* z still runs */
    complete(s, z, SF_RESULT_OK, "1");
    assert_true(sf_sched_done(s));
    assert_false(sf_sched_succeeded(s));
    json_t *doc = sf_sched_result_doc(s, 0);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "failed");
    assert_string_equal(json_string_value(step_field(doc, "a", "status")), "failed");
    assert_string_equal(json_string_value(step_field(doc, "a", "error")), "boom");
    assert_string_equal(json_string_value(step_field(doc, "b", "status")), "skipped");
    assert_string_equal(json_string_value(step_field(doc, "c", "status")), "skipped");
    assert_string_equal(json_string_value(step_field(doc, "c", "error")), "skipped: need 'b' did not succeed");
    assert_true(json_is_null(step_field(doc, "c", "exit_code")));
    assert_string_equal(json_string_value(step_field(doc, "z", "status")), "succeeded");
    json_decref(doc);
    sf_task_free(a); sf_task_free(z);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void retries_wait_for_backoff_then_succeed(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"retries\":2}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    sf_sched_set_retry_base_ms(s, 1000);
    struct sf_task *t1 = sf_sched_next(s, 0);
    assert_int_equal(t1->max_attempts, 3);
    struct sf_result *r = res(t1, SF_RESULT_TIMEOUT, NULL);
    assert_int_equal(sf_sched_complete(s, r, 100), 0);
    sf_result_free(r);
    int64_t wake = sf_sched_next_wakeup(s);
    assert_true(wake >= 100 + 500 && wake <= 100 + 1000);   /* jittered into [base/2, base] */
    assert_null(sf_sched_next(s, wake - 1));
    struct sf_task *t2 = sf_sched_next(s, wake);
    assert_non_null(t2);
    assert_int_equal(t2->attempt, 2);
    assert_string_equal(t2->id, t1->id);                      /* same task id across attempts */
    /* A late failure of attempt 1 is stale and ignored. */
    r = res(t1, SF_RESULT_ERROR, NULL);
    assert_int_equal(sf_sched_complete(s, r, wake), 1);
    sf_result_free(r);
    complete(s, t2, SF_RESULT_OK, "\"ok\"");
    json_t *doc = sf_sched_result_doc(s, 0);
    assert_string_equal(json_string_value(step_field(doc, "a", "status")), "succeeded");
    assert_int_equal(json_integer_value(step_field(doc, "a", "attempts")), 2);
    json_decref(doc);
    sf_task_free(t1); sf_task_free(t2);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void exhausted_timeouts_end_as_timeout(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"retries\":1}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *t1 = sf_sched_next(s, 0);
    complete(s, t1, SF_RESULT_TIMEOUT, NULL);
    struct sf_task *t2 = sf_sched_next(s, sf_sched_next_wakeup(s));
    complete(s, t2, SF_RESULT_TIMEOUT, NULL);
    assert_true(sf_sched_done(s));
    json_t *doc = sf_sched_result_doc(s, 0);
    assert_string_equal(json_string_value(step_field(doc, "a", "status")), "timeout");
    json_decref(doc);
    sf_task_free(t1); sf_task_free(t2);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void rejected_tasks_are_not_retried(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"retries\":5}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *t = sf_sched_next(s, 0);
    complete(s, t, SF_RESULT_REJECTED, NULL);
    assert_true(sf_sched_done(s));
    assert_int_equal(sf_sched_next_wakeup(s), -1);
    sf_task_free(t);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void duplicate_results_are_ignored(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"input\":[1,2]}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    struct sf_task *a = sf_sched_next(s, 0), *b = sf_sched_next(s, 0);
    complete(s, a, SF_RESULT_OK, "\"first\"");
    struct sf_result *dup = res(a, SF_RESULT_OK, "\"second\"");
    assert_int_equal(sf_sched_complete(s, dup, 0), 1);
    sf_result_free(dup);
    struct sf_result *other = res(a, SF_RESULT_OK, "1");
    free(other->run_id);
    other->run_id = strdup("another-run");
    assert_int_equal(sf_sched_complete(s, other, 0), 1);
    sf_result_free(other);
    complete(s, b, SF_RESULT_OK, "\"b\"");
    json_t *doc = sf_sched_result_doc(s, 0);
    char *out = json_dumps(step_field(doc, "m", "output"), JSON_COMPACT);
    assert_string_equal(out, "[\"first\",\"b\"]");
    free(out);
    json_decref(doc);
    sf_task_free(a); sf_task_free(b);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void replayed_results_need_their_step_ready(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\"},{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]}]}");
    /* Results from an earlier coordinator, replayed into a fresh sched. */
    struct sf_sched *s1 = sf_sched_new(wf, "r", NULL);
    struct sf_task *a = sf_sched_next(s1, 0);
    struct sf_result *ra = res(a, SF_RESULT_OK, "5");
    complete(s1, a, SF_RESULT_OK, "5");
    struct sf_task *b = sf_sched_next(s1, 0);
    struct sf_result *rb = res(b, SF_RESULT_OK, "6");
    struct sf_sched *s2 = sf_sched_new(wf, "r", NULL);
    assert_int_equal(sf_sched_complete(s2, rb, 0), -EAGAIN);
    assert_int_equal(sf_sched_complete(s2, ra, 0), 0);
    assert_int_equal(sf_sched_complete(s2, rb, 0), 0);
    assert_null(sf_sched_next(s2, 0));                      /* nothing is redone */
    assert_true(sf_sched_succeeded(s2));
    sf_result_free(ra); sf_result_free(rb);
    sf_task_free(a); sf_task_free(b);
    sf_sched_free(s1); sf_sched_free(s2);
    sf_workflow_free(wf);
}

static void input_override_replaces_roots_only(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"input\":1},"
                                   "{\"id\":\"b\",\"run\":\"x\",\"needs\":[\"a\"]}]}");
    json_t *over = json_integer(99);
    struct sf_sched *s = sf_sched_new(wf, "r", over);
    struct sf_task *a = sf_sched_next(s, 0);
    assert_int_equal(json_integer_value(a->input), 99);
    complete(s, a, SF_RESULT_OK, "7");
    struct sf_task *b = sf_sched_next(s, 0);
    assert_int_equal(json_integer_value(b->input), 7);
    sf_task_free(a); sf_task_free(b);
    sf_sched_free(s);
    json_decref(over);
    sf_workflow_free(wf);
}

static void large_map_is_produced_lazily(void **state)
{
    (void)state;
    /* 100,000 elements: the sched hands them out one at a time. */
    json_t *arr = json_array();
    for (int i = 0; i < 100000; i++) json_array_append_new(arr, json_integer(i));
    json_t *doc = json_pack("{s:[{s:s, s:s, s:b, s:o}]}", "steps", "id", "m", "run", "x", "map", 1, "input", arr);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct sf_workflow *wf = wf_of(text);
    free(text);
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    for (int i = 0; i < 100000; i++) {
        struct sf_task *t = sf_sched_next(s, 0);
        assert_int_equal(t->index, i);
        struct sf_result *r = res(t, SF_RESULT_OK, NULL);
        r->output = json_integer(i * 2);
        assert_int_equal(sf_sched_complete(s, r, 0), 0);
        sf_result_free(r);
        sf_task_free(t);
    }
    assert_true(sf_sched_succeeded(s));
    json_t *out = sf_sched_result_doc(s, 0);
    json_t *arr2 = step_field(out, "m", "output");
    assert_int_equal(json_array_size(arr2), 100000);
    assert_int_equal(json_integer_value(json_array_get(arr2, 99999)), 199998);
    json_decref(out);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void higher_priority_first(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"name\":\"p\",\"steps\":[{\"id\":\"a\",\"run\":\"x\",\"priority\":0},"
                                   "{\"id\":\"b\",\"run\":\"x\",\"priority\":9},{\"id\":\"c\",\"run\":\"x\"}]}");
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    sf_sched_set_priority(s, 5);                   /* c has none of its own */
    struct sf_task *t1 = sf_sched_next(s, 0), *t2 = sf_sched_next(s, 0), *t3 = sf_sched_next(s, 0);
    assert_string_equal(t1->step, "b");
    assert_int_equal(t1->priority, 9);
    assert_string_equal(t2->step, "c");
    assert_int_equal(t2->priority, 5);
    assert_string_equal(t3->step, "a");
    assert_int_equal(t3->priority, 0);
    sf_task_free(t1);
    sf_task_free(t2);
    sf_task_free(t3);
    sf_sched_free(s);
    sf_workflow_free(wf);
}

static void gates_hold_back_without_blocking_others(void **state)
{
    (void)state;
    struct sf_workflow *wf = wf_of("{\"name\":\"g\",\"steps\":["
        "{\"id\":\"m\",\"run\":\"x\",\"map\":true,\"input\":[1,2,3,4],\"concurrency\":{\"key\":\"k\",\"limit\":2}},"
        "{\"id\":\"r\",\"run\":\"x\",\"map\":true,\"input\":[1,2],\"rate\":{\"key\":\"q\",\"per_s\":10,\"burst\":1}},"
        "{\"id\":\"free\",\"run\":\"x\"}]}");
    struct sf_gate *g = sf_gate_new();
    struct sf_sched *s = sf_sched_new(wf, "r", NULL);
    sf_sched_set_gate(s, g);
    struct sf_task *t[8];
    size_t n = 0;
    while (n < 8 && (t[n] = sf_sched_next(s, 0))) n++;
    /* two of m (limit 2), one of r (burst 1), and free: the gates hold back the rest */
    assert_int_equal(n, 4);
    size_t ms = 0, rs = 0;
    for (size_t i = 0; i < n; i++) {
        ms += !strcmp(t[i]->step, "m");
        rs += !strcmp(t[i]->step, "r");
    }
    assert_int_equal(ms, 2);
    assert_int_equal(rs, 1);
    assert_int_equal(sf_gate_running(g, "k"), 2);
    assert_int_equal(sf_sched_next_wakeup(s), 100);   /* the next token */
    struct sf_task *r2 = sf_sched_next(s, 100);
    assert_non_null(r2);
    assert_string_equal(r2->step, "r");
    /* a finished m frees its slot: the next m may start */
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i]->step, "m")) {
            complete(s, t[i], SF_RESULT_OK, "1");
            break;
        }
    assert_int_equal(sf_gate_running(g, "k"), 1);
    struct sf_task *m3 = sf_sched_next(s, 100);
    assert_non_null(m3);
    assert_string_equal(m3->step, "m");
    assert_null(sf_sched_next(s, 100));
    for (size_t i = 0; i < n; i++) sf_task_free(t[i]);
    sf_task_free(r2);
    sf_task_free(m3);
    sf_sched_free(s);
    sf_gate_free(g);
    sf_workflow_free(wf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(higher_priority_first),
        cmocka_unit_test(gates_hold_back_without_blocking_others),
        cmocka_unit_test(chain_passes_output_to_input),
        cmocka_unit_test(several_needs_give_an_object),
        cmocka_unit_test(map_assembles_outputs_in_input_order),
        cmocka_unit_test(map_over_empty_array_succeeds_with_empty_output),
        cmocka_unit_test(map_of_a_non_array_output_fails_the_step),
        cmocka_unit_test(failure_skips_dependants_but_not_independent_branches),
        cmocka_unit_test(retries_wait_for_backoff_then_succeed),
        cmocka_unit_test(exhausted_timeouts_end_as_timeout),
        cmocka_unit_test(rejected_tasks_are_not_retried),
        cmocka_unit_test(duplicate_results_are_ignored),
        cmocka_unit_test(replayed_results_need_their_step_ready),
        cmocka_unit_test(input_override_replaces_roots_only),
        cmocka_unit_test(large_map_is_produced_lazily),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
