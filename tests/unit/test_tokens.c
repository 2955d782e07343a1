/* API tokens (base/tokens.c): the token file format, what it refuses and
 * why, and the check of a presented bearer token. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tokens.h"

#define CI "ci-token-0123456789abcdef"
#define OPS "ops-token-ZYXWVUTSRQPONMLK"

static void a_token_file_names_and_scopes_its_tokens(void **state)
{
    (void)state;
    struct sf_tokens *t = sf_tokens_new();
    char err[256];
    const char *file = "# name scope token\n\nci  client " CI "\r\n\tops\tadmin\t" OPS "  \n";
    assert_int_equal(sf_tokens_parse(t, file, strlen(file), err, sizeof(err)), 0);
    assert_int_equal(sf_tokens_count(t), 2);
    const struct sf_principal *p = sf_tokens_bearer(t, "Bearer " CI);
    assert_non_null(p);
    assert_string_equal(p->name, "ci");
    assert_int_equal(p->scope, SF_SCOPE_CLIENT);
    p = sf_tokens_bearer(t, "bearer   " OPS " ");
    assert_non_null(p);
    assert_string_equal(p->name, "ops");
    assert_int_equal(p->scope, SF_SCOPE_ADMIN);
    sf_tokens_free(t);
}

static void wrong_partial_and_malformed_tokens_are_nobody(void **state)
{
    (void)state;
    struct sf_tokens *t = sf_tokens_new();
    char err[256];
    assert_int_equal(sf_tokens_add(t, "ci", SF_SCOPE_CLIENT, CI, err, sizeof(err)), 0);
    assert_null(sf_tokens_bearer(t, NULL));
    assert_null(sf_tokens_bearer(t, ""));
    assert_null(sf_tokens_bearer(t, CI));                       /* no scheme */
    assert_null(sf_tokens_bearer(t, "Basic " CI));
    assert_null(sf_tokens_bearer(t, "Bearer "));
    assert_null(sf_tokens_bearer(t, "Bearer ci-token-0123456789abcde"));   /* a prefix */
    assert_null(sf_tokens_bearer(t, "Bearer " CI "f"));         /* longer */
    assert_null(sf_tokens_bearer(t, "Bearer CI-TOKEN-0123456789ABCDEF"));
    assert_null(sf_tokens_check(NULL, CI, strlen(CI)));
    assert_non_null(sf_tokens_check(t, CI, strlen(CI)));
    sf_tokens_free(t);
}

static void a_bare_token_is_the_admin(void **state)
{
    (void)state;
    struct sf_tokens *t = sf_tokens_new();
    char err[256];
    const char *file = OPS "\n";
    assert_int_equal(sf_tokens_parse(t, file, strlen(file), err, sizeof(err)), 0);
    const struct sf_principal *p = sf_tokens_bearer(t, "Bearer " OPS);
    assert_non_null(p);
    assert_string_equal(p->name, "admin");
    assert_int_equal(p->scope, SF_SCOPE_ADMIN);
    sf_tokens_free(t);
}

/* Each bad file is refused naming its line, and the message never carries
 * the secret. */
static void bad_files_are_refused_with_the_line_and_without_the_secret(void **state)
{
    (void)state;
    static const struct { const char *text, *why; } bad[] = {
        { "ci client " CI "\nops guest " OPS "\n", "line 2: scope must be 'admin' or 'client'" },
        { "ci client short\n", "line 1: token 'ci' must be 16-512" },
        { "ci client " CI "\nci admin " OPS "\n", "line 2: token name 'ci' is given twice" },
        { "ci client " CI "\nops admin " CI "\n", "line 2: token 'ops' has the same secret" },
        { "ci client\n", "line 1: expected 'NAME SCOPE TOKEN'" },
        { "ci client " CI " extra\n", "line 1: expected 'NAME SCOPE TOKEN'" },
        { "c/i client " CI "\n", "line 1: token name 'c/i' must be" },
        { "ci client ci-token-\x01" "0123456789abcdef\n", "line 1: token 'ci' must be" },
        { "# ok\nci client " CI "\0" "x\n", "line 2: contains a NUL byte" },
    };
    static const size_t lens[] = { 0, 0, 0, 0, 0, 0, 0, 0, sizeof("# ok\nci client " CI "\0x\n") - 1 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sf_tokens *t = sf_tokens_new();
        char err[256] = "";
        size_t len = lens[i] ? lens[i] : strlen(bad[i].text);
        assert_int_equal(sf_tokens_parse(t, bad[i].text, len, err, sizeof(err)), -EINVAL);
        if (!strstr(err, bad[i].why)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].why);
        if (strstr(err, "0123456789") || strstr(err, "ZYXW")) fail_msg("case %zu leaks the token: %s", i, err);
        sf_tokens_free(t);
    }
}

static void loading_a_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sf-test-tokens-XXXXXX", err[512], warn[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "ci client " CI "\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sf_tokens *t = sf_tokens_new();
    chmod(path, 0600);
    assert_int_equal(sf_tokens_load(t, path, warn, sizeof(warn), err, sizeof(err)), 0);
    assert_string_equal(warn, "");
    sf_tokens_free(t);
    t = sf_tokens_new();
    chmod(path, 0644);
    assert_int_equal(sf_tokens_load(t, path, warn, sizeof(warn), err, sizeof(err)), 0);
    assert_non_null(strstr(warn, "readable by every user"));
    sf_tokens_free(t);
    /* An empty file is a mistake, not "no authentication". */
    assert_int_equal(truncate(path, 0), 0);
    t = sf_tokens_new();
    assert_int_equal(sf_tokens_load(t, path, warn, sizeof(warn), err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no tokens"));
    sf_tokens_free(t);
    unlink(path);
    t = sf_tokens_new();
    assert_int_equal(sf_tokens_load(t, path, warn, sizeof(warn), err, sizeof(err)), -ENOENT);
    sf_tokens_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_token_file_names_and_scopes_its_tokens),
        cmocka_unit_test(wrong_partial_and_malformed_tokens_are_nobody),
        cmocka_unit_test(a_bare_token_is_the_admin),
        cmocka_unit_test(bad_files_are_refused_with_the_line_and_without_the_secret),
        cmocka_unit_test(loading_a_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
