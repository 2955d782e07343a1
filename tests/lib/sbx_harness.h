/* tests/lib/sbx_harness.h: the harness the local-sandbox test files share:
 * one provider per test group, and run helpers that fail the test when the
 * sandbox itself breaks (an outcome such as a timeout is the test's to
 * check). Include after <cmocka.h>; each test file gets its own copy. */
#ifndef SF_SBX_HARNESS_H
#define SF_SBX_HARNESS_H

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sandbox.h"

static struct sf_sandbox_provider *prov;

static int group_setup(void **state)
{
    (void)state;
    char err[SF_ERRSTR_LEN] = "";
    signal(SIGPIPE, SIG_IGN);
    prov = sf_sandbox_provider_new("local", &(struct sf_provider_config){ 0 }, err, sizeof(err));
    if (!prov) fprintf(stderr, "local provider: %s\n", err);
    return prov ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sf_sandbox_provider_free(prov);
    return 0;
}

static struct sf_sandbox *mk(const struct sf_sandbox_opts *o)
{
    struct sf_sandbox_opts def = { 0 };
    struct sf_sandbox *sb = NULL;
    char err[SF_ERRSTR_LEN] = "";
    int rc = sf_sandbox_create(prov, o ? o : &def, &sb, err, sizeof(err));
    if (rc) fail_msg("create: %d %s", rc, err);
    return sb;
}

/* Run (timeout 30 s unless the spec says otherwise). */
static void run_spec(struct sf_sandbox *sb, struct sf_run_spec *s, struct sf_run_result *r)
{
    if (s->timeout_s == 0) s->timeout_s = 30;
    int rc = sf_sandbox_run(sb, s, r);
    if (rc) fail_msg("run '%s': %d %s", s->cmd, rc, sb->errstr);
}

static void run(struct sf_sandbox *sb, const char *cmd, struct sf_run_result *r)
{
    struct sf_run_spec s = { .cmd = cmd };
    run_spec(sb, &s, r);
}

/* The command must exit 0 and print exactly 'want'. */
static void expect_out(struct sf_sandbox *sb, const char *cmd, const char *want)
{
    struct sf_run_result r;
    run(sb, cmd, &r);
    if (r.status != SF_RUN_EXITED || r.exit_code != 0 || strcmp(r.out, want))
        fail_msg("'%s': status %d exit %d out '%s' (want '%s') err '%s' %s", cmd, r.status,
                 r.exit_code, r.out, want, r.err_tail, r.error);
    sf_run_result_clear(&r);
}

#endif
