/* Local sandboxes created from many threads at once — the way the worker's
 * pool and the coordinator use them. Regression: the sandbox child is a copy
 * of a multi-threaded worker, and any libc call in it that talks to the
 * other (now absent) threads — glibc's set*id() does — hangs it forever. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sandbox.h"
#include "util.h"

#define THREADS 6
#define ROUNDS 15

struct worker_arg {
    struct sf_sandbox_provider *prov;
    int id;
    int ok;                   /* rounds that produced the expected output */
    char err[SF_ERRSTR_LEN];
};

static void *churn(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < ROUNDS; i++) {
        struct sf_sandbox_opts o = { 0 };
        struct sf_sandbox *sb = NULL;
        char want[64];
        snprintf(want, sizeof(want), "t%d-r%d", a->id, i);
        if (sf_sandbox_create(a->prov, &o, &sb, a->err, sizeof(a->err)) < 0) return NULL;
        struct sf_run_result r = { 0 };
        struct sf_run_spec s = { .cmd = "cat", .stdin_data = want, .stdin_len = strlen(want),
                                 .timeout_s = 20 };
        int rc = sf_sandbox_run(sb, &s, &r);
        if (rc == 0 && r.status == SF_RUN_EXITED && r.exit_code == 0 && !strcmp(r.out, want))
            a->ok++;
        else
            sf_errf(a->err, sizeof(a->err), "round %d: rc %d status %d out '%.40s' %.300s", i, rc,
                    (int)r.status, r.out ? r.out : "", rc ? sb->errstr : r.error);
        sf_run_result_clear(&r);
        sf_sandbox_destroy(sb);
    }
    return NULL;
}

static void many_threads_create_and_run_at_once(void **state)
{
    (void)state;
    char err[SF_ERRSTR_LEN] = "";
    struct sf_provider_config cfg = { 0 };
    struct sf_sandbox_provider *prov = sf_sandbox_provider_new("local", &cfg, err, sizeof(err));
    if (!prov) fail_msg("local provider: %s", err);
    pthread_t th[THREADS];
    struct worker_arg args[THREADS];
    int64_t t0 = sf_now_ms();
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){ .prov = prov, .id = i };
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        if (args[i].ok != ROUNDS) fail_msg("thread %d: %d/%d rounds ok; %s", i, args[i].ok, ROUNDS, args[i].err);
    /* A hung child costs the 10 s setup deadline; none may have hit it. */
    if (sf_now_ms() - t0 > 60000) fail_msg("took %lld ms", (long long)(sf_now_ms() - t0));
    sf_sandbox_provider_free(prov);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_threads_create_and_run_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
