/* sbx_exec: which commands the worker may exec without /bin/sh, and how it
 * splits them. Everything with any shell meaning must go to the shell. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sbx_exec.h"

static const char *const base_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user" };

static size_t split(const char *cmd, const char *const *env, size_t n, struct sf_buf *b)
{
    b->len = 0;
    return sf_sbx_exec_split(cmd, env ? env : base_env, env ? n : 2, b);
}

static void plain_commands_are_split_into_words(void **state)
{
    (void)state;
    struct sf_buf b = { 0 };
    assert_int_equal(split("cat /tmp/input.json", NULL, 0, &b), 2);
    assert_memory_equal(b.data, "cat\0/tmp/input.json\0", b.len);
    assert_int_equal(split("  python3   agent.py  ", NULL, 0, &b), 2);
    assert_memory_equal(b.data, "python3\0agent.py\0", b.len);
    assert_int_equal(split("ls -la --color=never a,b:c+d@e%f_g.h", NULL, 0, &b), 4);
    assert_int_equal(split("/usr/bin/env", NULL, 0, &b), 1);
    assert_int_equal(split("./run.sh x=1", NULL, 0, &b), 2);   /* '=' after the command: an argument */
    sf_buf_free(&b);
}

static void shell_syntax_goes_to_the_shell(void **state)
{
    (void)state;
    static const char *const shell[] = {
        "", "   ", "echo hi", "cat 'a b'", "cat \"a\"", "cat $HOME", "cat *.json", "cat a?",
        "cat [ab]", "cat ~/x", "cat a > b", "cat < a", "cat a | wc", "cat a && b", "sleep 1 &",
        "a; b", "(cat a)", "cat `x`", "cat a\\ b", "cat a\nb", "cat\ta", "cat a #c", "{ cat; }",
        "! cat", "FOO=1 cat a", "cd /tmp", "exec cat", "exit 3", ". ./env", ": x", "true",
        "kill -9 1", "test -f a", "pwd", "command -v x", "export A=1", "time cat", "wait",
        "cat a\r", "cat \xc3\xa9",
    };
    struct sf_buf b = { 0 };
    for (size_t i = 0; i < sizeof(shell) / sizeof(shell[0]); i++) {
        if (split(shell[i], NULL, 0, &b) != 0) fail_msg("'%s' was not left to the shell", shell[i]);
        assert_int_equal(b.len, 0);
    }
    sf_buf_free(&b);
}

static void environments_the_shell_would_change_go_to_the_shell(void **state)
{
    (void)state;
    struct sf_buf b = { 0 };
    const char *ok[] = { "PATH=/bin", "HOME=/h", "FOO_1=x y $z" };
    assert_int_equal(split("cat a", ok, 3, &b), 2);
    const char *const bad[][2] = {
        { "PATH=/bin", "PATH=/usr/bin" },          /* duplicate */
        { "PATH=/bin:%builtin", "A=1" },           /* dash PATH option */
        { "PATH=/bin", "FOO-BAR=1" },              /* not a shell name */
        { "PATH=/bin", "1A=x" },
        { "PATH=/bin", "NOEQUALS" },
        { "PATH=/bin", "IFS=:" },                  /* reset by the shell */
        { "PATH=/bin", "PPID=1" },
        { "PATH=/bin", "OPTIND=3" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (split("cat a", bad[i], 2, &b) != 0) fail_msg("env with '%s' was not left to the shell", bad[i][1]);
    sf_buf_free(&b);
}

static void too_many_words_go_to_the_shell(void **state)
{
    (void)state;
    struct sf_buf b = { 0 }, cmd = { 0 };
    sf_buf_append(&cmd, "cat", 3);
    for (int i = 0; i < SF_SBX_ARGV_MAX; i++) sf_buf_append(&cmd, " a", 2);
    sf_buf_append(&cmd, "", 1);
    assert_int_equal(split(cmd.data, NULL, 0, &b), 0);
    assert_int_equal(b.len, 0);
    sf_buf_free(&b);
    sf_buf_free(&cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_commands_are_split_into_words),
        cmocka_unit_test(shell_syntax_goes_to_the_shell),
        cmocka_unit_test(environments_the_shell_would_change_go_to_the_shell),
        cmocka_unit_test(too_many_words_go_to_the_shell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
