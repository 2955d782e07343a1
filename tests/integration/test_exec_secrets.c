/* Masking of a task's secrets in what its agent printed (common/exec/exec.h),
 * where a plain search of the finished result cannot find them:
 *  - "output is not JSON: <excerpt>" quotes the output escaped and cut: a
 *    value with a UTF-8 letter or a tab is in the error only in its escaped
 *    form, and a value the cut falls into only in part;
 *  - a warm agent ("serve": "lines") holds the value it was started with:
 *    after the secret file is rotated, what it prints is that old value.
 * Process backend (no privileges needed; the masking is the same on every
 * backend). */
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "exec.h"
#include "util.h"
#include "warm.h"

struct fixture {
    char dir[64];
    struct sf_secrets secrets;
    struct sf_sandbox_provider *prov;
    struct sf_warm_pool *pool;
    struct sf_exec_cfg cfg;
};

static void put_secret(struct fixture *f, const char *name, const char *value)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(value, fp);
    fclose(fp);
}

static int setup(void **state)
{
    struct fixture *f = sf_xcalloc(1, sizeof(*f));
    char err[SF_ERRSTR_LEN] = "";
    signal(SIGPIPE, SIG_IGN);       /* agents that do not read their stdin (as the worker) */
    snprintf(f->dir, sizeof(f->dir), "/tmp/sf-exec-secrets-%d", (int)getpid());
    if (mkdir(f->dir, 0700) < 0 && errno != EEXIST) return -1;
    f->secrets.dir = f->dir;
    f->prov = sf_sandbox_provider_new("process", &(struct sf_provider_config){ 0 }, err, sizeof(err));
    if (!f->prov) {
        fprintf(stderr, "process sandbox: %s\n", err);
        return -1;
    }
    f->pool = sf_warm_pool_new(2, 0);
    f->cfg = (struct sf_exec_cfg){ .worker = "test", .warm = f->pool, .secrets = &f->secrets };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    sf_warm_pool_free(f->pool);
    sf_sandbox_provider_free(f->prov);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static struct sf_result *run(struct fixture *f, const char *run, const char *secret, bool serve)
{
    static int64_t index;
    struct sf_task *t = sf_xcalloc(1, sizeof(*t));
    t->v = 1;
    t->run_id = sf_xstrdup("r");
    t->step = sf_xstrdup("s");
    t->index = index++;
    t->id = sf_xasprintf("r:s:%lld", (long long)t->index);
    t->attempt = t->max_attempts = 1;
    t->run = sf_xstrdup(run);
    t->input = json_null();
    t->secrets = json_pack("[s]", secret);
    t->serve = serve ? SF_SERVE_LINES : SF_SERVE_NONE;
    t->timeout_s = 20;
    struct sf_result *r = sf_exec_task(f->prov, NULL, t, &f->cfg, NULL);
    sf_task_free(t);
    return r;
}

static bool contains(const struct sf_result *r, const char *needle)
{
    char *doc = json_dumps(r->output ? r->output : json_null(), JSON_ENCODE_ANY);
    bool found = strstr(doc, needle) || (r->error && strstr(r->error, needle)) ||
                 (r->stderr_tail && strstr(r->stderr_tail, needle));
    free(doc);
    return found;
}

static void not_json_excerpt_masks_before_escaping(void **state)
{
    struct fixture *f = *state;
    put_secret(f, "PASSPHRASE", "gr\xc3\xbcn-und-geheim-42");
    struct sf_result *r = run(f, "printf 'not json %s\\n' \"$PASSPHRASE\"", "PASSPHRASE", false);
    assert_int_equal(r->status, SF_RESULT_ERROR);
    assert_non_null(r->error);
    assert_non_null(strstr(r->error, SF_EXEC_NOT_JSON ": not json ***"));
    assert_false(contains(r, "gr\\xc3\\xbcn-und-geheim"));   /* the escaped form */
    assert_false(contains(r, "-und-geheim"));
    sf_result_free(r);
}

static void not_json_excerpt_masks_before_cutting(void **state)
{
    struct fixture *f = *state;
    put_secret(f, "TOKEN", "QWERTYUIOPASDFGH");
    /* 195 bytes, then the value: the excerpt's cut (200 bytes) falls into it. */
    struct sf_result *r = run(f, "printf '%0195d%s\\n' 0 \"$TOKEN\"", "TOKEN", false);
    assert_int_equal(r->status, SF_RESULT_ERROR);
    assert_non_null(r->error);
    assert_false(contains(r, "QWERT"));
    sf_result_free(r);
}

static void warm_agent_masks_the_value_it_holds(void **state)
{
    struct fixture *f = *state;
    put_secret(f, "API_KEY", "old-value-0123456789");
    const char *agent = "while read -r line; do printf '{\"k\": \"%s\"}\\n' \"$API_KEY\"; done";
    struct sf_result *r = run(f, agent, "API_KEY", true);
    assert_int_equal(r->status, SF_RESULT_OK);
    assert_string_equal(json_string_value(json_object_get(r->output, "k")), "***");
    sf_result_free(r);
    put_secret(f, "API_KEY", "new-value-9876543210");     /* rotated */
    r = run(f, agent, "API_KEY", true);
    assert_int_equal(r->status, SF_RESULT_OK);
    assert_int_equal(sf_warm_pool_size(f->pool), 1);       /* the same agent served it */
    assert_false(contains(r, "old-value-0123456789"));
    sf_result_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(not_json_excerpt_masks_before_escaping),
        cmocka_unit_test(not_json_excerpt_masks_before_cutting),
        cmocka_unit_test(warm_agent_masks_the_value_it_holds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
