/* Plain commands run without /bin/sh (common/sandbox/local/sbx_exec.h): for each case the
 * same command runs twice, once as is (exec'd directly) and once with its
 * first word quoted (so the shell runs it), and the two results must be
 * the same: exit code, stdout, stderr, argv, environment, cwd. A control
 * checks that the direct path is really taken (the command's parent is
 * the sandbox's init, not a shell). Needs root and user namespaces. */
#include <errno.h>
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

static struct sf_sandbox_provider *prov;
static struct sf_sandbox *sb;

static int group_setup(void **state)
{
    (void)state;
    char err[SF_ERRSTR_LEN] = "";
    signal(SIGPIPE, SIG_IGN);
    prov = sf_sandbox_provider_new("local", &(struct sf_provider_config){ 0 }, err, sizeof(err));
    if (!prov || sf_sandbox_create(prov, &(struct sf_sandbox_opts){ 0 }, &sb, err, sizeof(err))) {
        fprintf(stderr, "local sandbox: %s\n", err);
        return -1;
    }
    static const struct { const char *path, *data; int mode; } files[] = {
        { "/workspace/data.txt", "not a program\n", 0644 },
        { "/workspace/noshebang", "echo hi $0 $1\n", 0755 },
        { "/workspace/bin/tool", "#!/bin/sh\necho tool \"$@\"\n", 0755 },
        { "/workspace/d/cat/.keep", "", 0644 },
        { "/workspace/selfkill", "#!/bin/sh\nkill -TERM $$\n", 0755 },
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (sf_sandbox_write_file(sb, files[i].path, files[i].data, strlen(files[i].data),
                                  files[i].mode))
            return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sf_sandbox_destroy(sb);
    sf_sandbox_provider_free(prov);
    return 0;
}

static void run_spec(struct sf_run_spec *s, struct sf_run_result *r)
{
    if (s->timeout_s == 0) s->timeout_s = 20;
    int rc = sf_sandbox_run(sb, s, r);
    if (rc) fail_msg("run '%s': %d %s", s->cmd, rc, sb->errstr);
}

/* "cmd args" -> "'cmd' args": the shell now has a quote to parse. */
static char *quoted(const char *cmd)
{
    size_t n = strcspn(cmd, " ");
    return sf_xasprintf("'%.*s'%s", (int)n, cmd, cmd + n);
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of 'text', sorted, joined again (dash exports in hash order). */
static char *sorted_lines(const char *text)
{
    char *copy = sf_xstrdup(text), *lines[256], *save = NULL;
    size_t n = 0;
    for (char *l = strtok_r(copy, "\n", &save); l && n < 256; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    qsort(lines, n, sizeof(char *), cmp_lines);
    struct sf_buf b = { 0 };
    for (size_t i = 0; i < n; i++) sf_buf_appendf(&b, "%s\n", lines[i]);
    free(copy);
    return sf_buf_steal(&b, NULL);
}

/* Parent pid of the process that printed its /proc/self/stat. */
static long stat_ppid(const char *stat)
{
    const char *p = strrchr(stat, ')');
    return p ? strtol(p + 4, NULL, 10) : -1;
}

/* Run 'cmd' directly and through the shell; the results must match. */
static void same_both_ways(const char *cmd, const char *const *env, const char *cwd, bool sort)
{
    struct sf_run_result d, s;
    struct sf_run_spec spec = { .cmd = cmd, .env = env, .cwd = cwd };
    run_spec(&spec, &d);
    char *q = quoted(cmd);
    spec.cmd = q;
    run_spec(&spec, &s);
    char *dout = sort ? sorted_lines(d.out) : sf_xstrdup(d.out);
    char *sout = sort ? sorted_lines(s.out) : sf_xstrdup(s.out);
    if (d.status != s.status || d.exit_code != s.exit_code || d.out_len != s.out_len ||
        strcmp(dout, sout) || memcmp(d.out, s.out, sort ? 0 : d.out_len) ||
        strcmp(d.err_tail, s.err_tail))
        fail_msg("'%s': direct: status %d exit %d out '%s' err '%s' | shell: status %d exit %d "
                 "out '%s' err '%s'", cmd, d.status, d.exit_code, d.out, d.err_tail, s.status,
                 s.exit_code, s.out, s.err_tail);
    free(dout);
    free(sout);
    free(q);
    sf_run_result_clear(&d);
    sf_run_result_clear(&s);
}

static void expect(const char *cmd, const char *const *env, const char *cwd, int exit_code,
                   const char *out, const char *err)
{
    struct sf_run_result r;
    struct sf_run_spec spec = { .cmd = cmd, .env = env, .cwd = cwd };
    run_spec(&spec, &r);
    if (r.status != SF_RUN_EXITED || r.exit_code != exit_code || strcmp(r.out, out) ||
        (err && strcmp(r.err_tail, err)))
        fail_msg("'%s': status %d exit %d out '%s' err '%s'", cmd, r.status, r.exit_code, r.out,
                 r.err_tail);
    sf_run_result_clear(&r);
    same_both_ways(cmd, env, cwd, false);
}

static void plain_commands_skip_the_shell(void **state)
{
    (void)state;
    struct sf_run_result r;
    struct sf_run_spec spec = { .cmd = "cat /proc/self/stat" };
    run_spec(&spec, &r);
    assert_int_equal(stat_ppid(r.out), 1);          /* exec'd by init itself */
    sf_run_result_clear(&r);
    spec.cmd = "'cat' /proc/self/stat";
    run_spec(&spec, &r);
    assert_true(stat_ppid(r.out) > 1);              /* a shell in between */
    sf_run_result_clear(&r);
    /* Needs quotes, so the shell runs it, and it works. */
    expect("python3 -c 'print(6 * 7)'", NULL, NULL, 0, "42\n", "");
}

static void argv_env_cwd_stdin_are_the_same(void **state)
{
    (void)state;
    const char *env[] = { "FOO=bar baz", "HOME=/tmp", NULL };
    struct sf_run_result r;
    struct sf_run_spec spec = { .cmd = "cat /proc/self/cmdline" };
    run_spec(&spec, &r);
    assert_int_equal(r.out_len, 23);
    assert_memory_equal(r.out, "cat\0/proc/self/cmdline\0", 23);
    sf_run_result_clear(&r);
    same_both_ways("cat /proc/self/cmdline", NULL, NULL, false);
    expect("readlink /proc/self/cwd", NULL, "/tmp/shared", 0, "/tmp/shared\n", "");
    expect("ls -d /workspace/bin", NULL, NULL, 0, "/workspace/bin\n", "");
    same_both_ways("env", NULL, NULL, true);
    same_both_ways("env", env, "/tmp/shared", true);
    const char *pwd_ok[] = { "PWD=/tmp/shared/", NULL }, *pwd_bad[] = { "PWD=/nowhere", NULL };
    same_both_ways("env", pwd_ok, "/tmp/shared", true);
    same_both_ways("env", pwd_bad, "/tmp/shared", true);
    spec = (struct sf_run_spec){ .cmd = "env", .env = pwd_bad, .cwd = "/tmp/shared" };
    run_spec(&spec, &r);
    assert_non_null(strstr(r.out, "PWD=/tmp/shared\n"));
    sf_run_result_clear(&r);
    spec = (struct sf_run_spec){ .cmd = "cat", .stdin_data = "in\n", .stdin_len = 3 };
    run_spec(&spec, &r);
    assert_string_equal(r.out, "in\n");
    sf_run_result_clear(&r);
}

static void errors_are_the_shells(void **state)
{
    (void)state;
    expect("nosuch-prog arg", NULL, NULL, 127, "", "sh: 1: nosuch-prog: not found\n");
    expect("/no/such/prog", NULL, NULL, 127, "", "sh: 1: /no/such/prog: not found\n");
    expect("/tmp", NULL, NULL, 126, "", "sh: 1: /tmp: Permission denied\n");
    expect("/workspace/data.txt", NULL, NULL, 126, "", "sh: 1: /workspace/data.txt: Permission denied\n");
    expect("ls /nonexistent", NULL, NULL, 2, "", NULL);
}

static void path_search_and_scripts_are_the_shells(void **state)
{
    (void)state;
    const char *path[] = { "PATH=/workspace/d:/workspace/bin:/usr/bin", NULL };
    expect("/workspace/noshebang x", NULL, NULL, 0, "hi /workspace/noshebang x\n", "");
    expect("./noshebang y", NULL, "/workspace", 0, "hi ./noshebang y\n", "");
    expect("tool a b", path, NULL, 0, "tool a b\n", "");
    /* A directory named like the command comes first: skipped, as by dash. */
    expect("cat /workspace/data.txt", path, NULL, 0, "not a program\n", "");
    const char *nopath[] = { "PATH=/nowhere", NULL };
    expect("cat x", nopath, NULL, 127, "", "sh: 1: cat: not found\n");
}

/* The one visible difference: a command killed by a signal is reported as
 * such; through the shell it was the shell's exit status 128+n. */
static void signals_are_reported_as_signals(void **state)
{
    (void)state;
    struct sf_run_result r;
    struct sf_run_spec spec = { .cmd = "/workspace/selfkill" };
    run_spec(&spec, &r);
    assert_int_equal(r.status, SF_RUN_SIGNALED);
    assert_int_equal(r.term_signal, SIGTERM);
    assert_int_equal(r.exit_code, 128 + SIGTERM);
    sf_run_result_clear(&r);
    spec.cmd = "'/workspace/selfkill'";
    run_spec(&spec, &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_int_equal(r.exit_code, 128 + SIGTERM);
    sf_run_result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_commands_skip_the_shell),
        cmocka_unit_test(argv_env_cwd_stdin_are_the_same),
        cmocka_unit_test(errors_are_the_shells),
        cmocka_unit_test(path_search_and_scripts_are_the_shells),
        cmocka_unit_test(signals_are_reported_as_signals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
