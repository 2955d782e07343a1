/* Warm agents (common/exec/warm.h): a "serve": "lines" task runs on an agent
 * kept running per (run, step), one JSON line in, one JSON line out. The
 * agent below answers {"in", "n", "me"}: n counts the inputs this process
 * served, so n == 1 proves a fresh agent and n > 1 a reused one; "me" is a
 * random name per process (pids repeat across pid namespaces). Special
 * inputs make it misbehave: "crash" exits 3, "kill" dies of SIGKILL, "bad"
 * prints a line that is not JSON, "hang" never answers, "two" answers with
 * two lines, "close" closes its stdout. Each must fail that task only (or
 * for "two", none) and the next task must get a fresh agent. Runs on the
 * local sandbox (needs root and user namespaces) and on the process
 * backend. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exec.h"
#include "util.h"
#include "warm.h"

static const char agent_py[] =
    "import json, os, sys\n"
    "n, me = 0, os.urandom(8).hex()\n"
    "for line in sys.stdin:\n"
    "    x = json.loads(line)\n"
    "    n += 1\n"
    "    sys.stderr.write('err-%s\\n' % json.dumps(x)); sys.stderr.flush()\n"
    "    if x == 'crash': os._exit(3)\n"
    "    if x == 'kill': os.kill(os.getpid(), 9)\n"
    "    if x == 'close': os.close(1); continue\n"
    "    if x == 'hang':\n"
    "        import time; time.sleep(600)\n"
    "    if x == 'bad': print('not json', flush=True); continue\n"
    "    out = json.dumps({'in': x, 'n': n, 'me': me})\n"
    "    print(out + ('\\n' + out if x == 'two' else ''), flush=True)\n";

struct fixture {
    struct sf_sandbox_provider *prov;
    struct sf_warm_pool *pool;
    struct sf_exec_cfg cfg;
};

static struct sf_task *task(const char *run_id, const char *step, int64_t index, const char *input)
{
    struct sf_task *t = sf_xcalloc(1, sizeof(*t));
    t->v = 1;
    t->run_id = sf_xstrdup(run_id);
    t->step = sf_xstrdup(step);
    t->index = index;
    t->id = sf_xasprintf("%s:%s:%lld", run_id, step, (long long)index);
    t->attempt = t->max_attempts = 1;
    t->run = sf_xstrdup("python3 agent.py");
    t->files = json_pack("{s:s}", "agent.py", agent_py);
    json_error_t je;
    t->input = json_loads(input, JSON_DECODE_ANY, &je);
    t->serve = SF_SERVE_LINES;
    t->timeout_s = 20;
    return t;
}

static struct sf_result *run(struct fixture *f, const char *run_id, const char *step,
                             const char *input, double timeout_s)
{
    static int64_t index;
    struct sf_task *t = task(run_id, step, index++, input);
    if (timeout_s > 0) t->timeout_s = timeout_s;
    struct sf_result *r = sf_exec_task(f->prov, NULL, t, &f->cfg, NULL);
    sf_task_free(t);
    return r;
}

typedef char agent_name[32];

/* n and the agent's name of an ok answer. */
static void served(const struct sf_result *r, int *n, agent_name me)
{
    if (r->status != SF_RESULT_OK)
        fail_msg("status %s: %s", sf_result_status_name(r->status), r->error ? r->error : "");
    *n = (int)json_integer_value(json_object_get(r->output, "n"));
    const char *s = json_string_value(json_object_get(r->output, "me"));
    assert_non_null(s);
    sf_strlcpy(me, s, sizeof(agent_name));
}

static int setup_kind(void **state, const char *kind)
{
    struct fixture *f = sf_xcalloc(1, sizeof(*f));
    char err[SF_ERRSTR_LEN] = "";
    signal(SIGPIPE, SIG_IGN);
    f->prov = sf_sandbox_provider_new(kind, &(struct sf_provider_config){ 0 }, err, sizeof(err));
    if (!f->prov) {
        fprintf(stderr, "%s sandbox: %s\n", kind, err);
        free(f);
        return -1;
    }
    f->pool = sf_warm_pool_new(2, 0);
    f->cfg = (struct sf_exec_cfg){ .worker = "test", .warm = f->pool };
    *state = f;
    return 0;
}

static int setup_local(void **state) { return setup_kind(state, "local"); }
static int setup_process(void **state) { return setup_kind(state, "process"); }

static int teardown(void **state)
{
    struct fixture *f = *state;
    sf_warm_pool_free(f->pool);
    sf_sandbox_provider_free(f->prov);
    free(f);
    return 0;
}

static void serves_many_inputs_in_one_process(void **state)
{
    struct fixture *f = *state;
    agent_name me0 = "";
    for (int i = 1; i <= 5; i++) {
        char in[16];
        snprintf(in, sizeof(in), "%d", i);
        struct sf_result *r = run(f, "runA", "s", in, 0);
        int n;
        agent_name me;
        served(r, &n, me);
        assert_int_equal(n, i);
        if (i == 1) sf_strlcpy(me0, me, sizeof(me0));
        assert_string_equal(me, me0);
        assert_int_equal(json_integer_value(json_object_get(r->output, "in")), i);
        assert_int_equal(r->exit_code, 0);
        sf_result_free(r);
    }
    assert_int_equal(sf_warm_pool_size(f->pool), 1);
}

/* "bad" input → a task failing in the given way; the next task runs on a
 * fresh agent (n == 1) and succeeds. */
static void fails_that_task_only(struct fixture *f, const char *run_id, const char *bad,
                                 double timeout_s, enum sf_result_status want, const char *msg,
                                 enum sf_result_status want2, const char *msg2)
{
    int n;
    agent_name me0, me;
    struct sf_result *r = run(f, run_id, "s", "1", 0);
    served(r, &n, me0);
    sf_result_free(r);
    r = run(f, run_id, "s", bad, timeout_s);
    /* want2/msg2: the other acceptable outcome (a shell between the
     * process backend and the agent turns a signal into exit 137) */
    bool first = r->status == want && (!msg || (r->error && strstr(r->error, msg)));
    bool second = msg2 && r->status == want2 && r->error && strstr(r->error, msg2);
    if (!first && !second)
        fail_msg("got %s '%s', want %s '%s'", sf_result_status_name(r->status),
                 r->error ? r->error : "(none)", sf_result_status_name(want), msg ? msg : "");
    /* stderr of this task only */
    char own[64];
    snprintf(own, sizeof(own), "err-%s", bad);
    assert_non_null(strstr(r->stderr_tail, own));
    assert_null(strstr(r->stderr_tail, "err-1"));
    sf_result_free(r);
    r = run(f, run_id, "s", "2", 0);
    served(r, &n, me);
    assert_int_equal(n, 1);
    assert_string_not_equal(me, me0);
    sf_result_free(r);
}

static void crash_fails_that_task_only(void **state)
{
    fails_that_task_only(*state, "runC", "\"crash\"", 0, SF_RESULT_ERROR,
                         "the agent exited with code 3 without answering", 0, NULL);
}

static void kill_fails_that_task_only(void **state)
{
    fails_that_task_only(*state, "runK", "\"kill\"", 0, SF_RESULT_CRASHED, "signal 9",
                         SF_RESULT_ERROR, "exited with code 137");
}

static void malformed_line_fails_that_task_only(void **state)
{
    fails_that_task_only(*state, "runM", "\"bad\"", 0, SF_RESULT_ERROR,
                         "output is not JSON: not json", 0, NULL);
}

static void closed_stdout_fails_that_task_only(void **state)
{
    /* Under a shell (process backend) its stdout stays open: a timeout. */
    fails_that_task_only(*state, "runX", "\"close\"", 3, SF_RESULT_ERROR, "closed its stdout",
                         SF_RESULT_TIMEOUT, "timed out after 3s");
}

static void timeout_fails_that_task_only(void **state)
{
    int64_t t0 = sf_now_ms();
    fails_that_task_only(*state, "runT", "\"hang\"", 1, SF_RESULT_TIMEOUT, "timed out after 1s",
                         0, NULL);
    assert_true(sf_now_ms() - t0 < 15000);
}

/* Two lines for one input: the first answers it, the agent is replaced. */
static void extra_output_replaces_the_agent(void **state)
{
    struct fixture *f = *state;
    int n;
    agent_name me0, me;
    struct sf_result *r = run(f, "runE", "s", "\"two\"", 0);
    served(r, &n, me0);
    assert_string_equal(json_string_value(json_object_get(r->output, "in")), "two");
    sf_result_free(r);
    r = run(f, "runE", "s", "3", 0);
    served(r, &n, me);
    assert_int_equal(n, 1);
    assert_string_not_equal(me, me0);
    assert_int_equal(json_integer_value(json_object_get(r->output, "in")), 3);
    sf_result_free(r);
}

/* Runs and steps never share an agent; the pool stays within its bound
 * (2) by stopping the least recently used idle agent. */
static void runs_and_steps_do_not_share(void **state)
{
    struct fixture *f = *state;
    int n;
    agent_name pa, pb, pc;
    struct sf_result *r = run(f, "runP", "s", "1", 0);
    served(r, &n, pa);
    sf_result_free(r);
    r = run(f, "runQ", "s", "1", 0);
    served(r, &n, pb);
    assert_int_equal(n, 1);
    sf_result_free(r);
    r = run(f, "runP", "t", "1", 0);
    served(r, &n, pc);
    assert_int_equal(n, 1);
    sf_result_free(r);
    assert_string_not_equal(pa, pb);
    assert_string_not_equal(pa, pc);
    assert_string_not_equal(pb, pc);
    assert_true(sf_warm_pool_size(f->pool) <= 2);
    /* runP:s was the least recently used: it was stopped for runP:t. */
    r = run(f, "runP", "s", "2", 0);
    served(r, &n, pa);
    assert_int_equal(n, 1);
    sf_result_free(r);
}

static void idle_agents_stop(void **state)
{
    struct fixture *f = *state;
    int n;
    agent_name me;
    struct sf_result *r = run(f, "runI", "s", "1", 0);
    served(r, &n, me);
    sf_result_free(r);
    assert_true(sf_warm_pool_size(f->pool) >= 1);
    assert_true(sf_warm_pool_sweep(f->pool, sf_now_ms() + 3600 * 1000) >= 1);
    assert_int_equal(sf_warm_pool_size(f->pool), 0);
}

/* Without a pool the same agent runs cold: one line in, end of file, the
 * same answer (but every task in a new process). */
static void cold_runs_give_the_same_outputs(void **state)
{
    struct fixture *f = *state;
    struct sf_exec_cfg cold = f->cfg;
    cold.warm = NULL;
    for (int i = 0; i < 3; i++) {
        char in[16];
        snprintf(in, sizeof(in), "[%d]", i);
        struct sf_task *t = task("runZ", "s", i, in);
        struct sf_result *w = sf_exec_task(f->prov, NULL, t, &f->cfg, NULL);
        struct sf_result *c = sf_exec_task(f->prov, NULL, t, &cold, NULL);
        int n;
        agent_name me;
        served(c, &n, me);
        assert_int_equal(n, 1);
        assert_int_equal(w->status, c->status);
        assert_true(json_equal(json_object_get(w->output, "in"), json_object_get(c->output, "in")));
        sf_result_free(w);
        sf_result_free(c);
        sf_task_free(t);
    }
}

#define WARM_TESTS(setup)                                                      \
    cmocka_unit_test_setup_teardown(serves_many_inputs_in_one_process, setup, teardown), \
    cmocka_unit_test_setup_teardown(crash_fails_that_task_only, setup, teardown),       \
    cmocka_unit_test_setup_teardown(kill_fails_that_task_only, setup, teardown),        \
    cmocka_unit_test_setup_teardown(malformed_line_fails_that_task_only, setup, teardown), \
    cmocka_unit_test_setup_teardown(closed_stdout_fails_that_task_only, setup, teardown), \
    cmocka_unit_test_setup_teardown(timeout_fails_that_task_only, setup, teardown),     \
    cmocka_unit_test_setup_teardown(extra_output_replaces_the_agent, setup, teardown),  \
    cmocka_unit_test_setup_teardown(runs_and_steps_do_not_share, setup, teardown),      \
    cmocka_unit_test_setup_teardown(idle_agents_stop, setup, teardown),                 \
    cmocka_unit_test_setup_teardown(cold_runs_give_the_same_outputs, setup, teardown)

int main(void)
{
    const struct CMUnitTest local[] = { WARM_TESTS(setup_local) };
    const struct CMUnitTest process[] = { WARM_TESTS(setup_process) };
    int failed = cmocka_run_group_tests_name("warm agents, local sandbox", local, NULL, NULL);
    failed += cmocka_run_group_tests_name("warm agents, process backend", process, NULL, NULL);
    return failed;
}
