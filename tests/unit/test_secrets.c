/* Named secrets (secrets.h): the environment, a _FILE variable and a secrets
 * folder, in that order; the plain variable NAME is never a source; names
 * are validated; the listing has names only; resolving a set fails naming
 * the missing one; masking replaces every occurrence. */
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

#include "secrets.h"

static char dir[64];

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sf-secrets-%d", (int)getpid());
    mkdir(dir, 0700);
    unsetenv("SANDFLEET_SECRET_UT_A");
    unsetenv("SANDFLEET_SECRET_UT_A_FILE");
    unsetenv("SANDFLEET_SECRET_UT_B");
    unsetenv("UT_PLAIN");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void env_then_file_var_then_folder(void **state)
{
    (void)state;
    struct sf_secrets s = { .dir = dir };
    char *v = NULL, err[512], path[128];
    size_t len = 0;
    assert_int_equal(sf_secret_load(&s, "UT_A", &v, &len, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "SANDFLEET_SECRET_UT_A"));
    assert_non_null(strstr(err, dir));

    snprintf(path, sizeof(path), "%s/UT_A", dir);
    write_file(path, "from-dir\r\n", 10);
    assert_int_equal(sf_secret_load(&s, "UT_A", &v, &len, err, sizeof(err)), 0);
    assert_string_equal(v, "from-dir");
    assert_int_equal(len, 8);
    sf_secret_free(v, len);

    snprintf(path, sizeof(path), "%s/other", dir);
    write_file(path, "from-file-var\n", 14);
    setenv("SANDFLEET_SECRET_UT_A_FILE", path, 1);
    assert_int_equal(sf_secret_load(&s, "UT_A", &v, &len, err, sizeof(err)), 0);
    assert_string_equal(v, "from-file-var");
    sf_secret_free(v, len);

    setenv("SANDFLEET_SECRET_UT_A", "from-env", 1);
    assert_int_equal(sf_secret_load(&s, "UT_A", &v, &len, err, sizeof(err)), 0);
    assert_string_equal(v, "from-env");
    sf_secret_free(v, len);

    /* Without a folder, only the environment. */
    unsetenv("SANDFLEET_SECRET_UT_A");
    unsetenv("SANDFLEET_SECRET_UT_A_FILE");
    assert_int_equal(sf_secret_load(NULL, "UT_A", &v, &len, err, sizeof(err)), -ENOENT);
    assert_null(strstr(err, "from-"));
}

static void plain_variable_is_not_a_source(void **state)
{
    (void)state;
    char *v = NULL, err[512];
    size_t len = 0;
    setenv("UT_PLAIN", "daemon-credential", 1);
    assert_int_equal(sf_secret_load(NULL, "UT_PLAIN", &v, &len, err, sizeof(err)), -ENOENT);
    assert_null(v);
    assert_null(strstr(err, "daemon-credential"));
    unsetenv("UT_PLAIN");
}

/* SANDFLEET_SECRET_K_FILE names the file of K: a task asking for the secret
 * "K_FILE" must not get that path as a value. */
static void a_file_variable_is_not_a_value(void **state)
{
    (void)state;
    char *v = NULL, err[512];
    size_t len = 0;
    setenv("SANDFLEET_SECRET_UTF_FILE", "/run/secrets/utf-private-path", 1);
    assert_int_equal(sf_secret_load(NULL, "UTF_FILE", &v, &len, err, sizeof(err)), -ENOENT);
    assert_null(v);
    assert_null(strstr(err, "utf-private-path"));
    unsetenv("SANDFLEET_SECRET_UTF_FILE");
}

static void names_are_checked(void **state)
{
    (void)state;
    char *v = NULL, err[512];
    size_t len = 0;
    assert_true(sf_secret_name_ok("OPENAI_API_KEY"));
    assert_true(sf_secret_name_ok("K"));
    assert_false(sf_secret_name_ok(""));
    assert_false(sf_secret_name_ok("lower"));
    assert_false(sf_secret_name_ok("_X"));
    assert_false(sf_secret_name_ok("A-B"));
    assert_false(sf_secret_name_ok("../ETC"));
    assert_false(sf_secret_name_ok("A=B"));
    char long_name[80];
    memset(long_name, 'A', 65);
    long_name[65] = '\0';
    assert_false(sf_secret_name_ok(long_name));
    assert_int_equal(sf_secret_load(NULL, "../x", &v, &len, err, sizeof(err)), -EINVAL);
}

static void bad_files_are_refused(void **state)
{
    (void)state;
    struct sf_secrets s = { .dir = dir };
    char *v = NULL, err[512], path[128];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/UT_NUL", dir);
    write_file(path, "ab\0cd", 5);
    assert_int_equal(sf_secret_load(&s, "UT_NUL", &v, &len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "NUL"));
    snprintf(path, sizeof(path), "%s/UT_EMPTY", dir);
    write_file(path, "\n", 1);
    assert_int_equal(sf_secret_load(&s, "UT_EMPTY", &v, &len, err, sizeof(err)), -ENOENT);
    snprintf(path, sizeof(path), "%s/UT_BIG", dir);
    char *big = calloc(1, SF_SECRET_VALUE_MAX + 10);
    memset(big, 'x', SF_SECRET_VALUE_MAX + 9);
    write_file(path, big, SF_SECRET_VALUE_MAX + 9);
    free(big);
    assert_int_equal(sf_secret_load(&s, "UT_BIG", &v, &len, err, sizeof(err)), -EFBIG);
    assert_null(v);
    assert_int_equal(sf_secrets_check_dir(dir, err, sizeof(err)), 0);
    assert_int_equal(sf_secrets_check_dir(path, err, sizeof(err)), -ENOTDIR);
    assert_true(sf_secrets_check_dir("/nonexistent-sf", err, sizeof(err)) < 0);
}

static void listing_has_names_only(void **state)
{
    (void)state;
    struct sf_secrets s = { .dir = dir };
    char path[128];
    snprintf(path, sizeof(path), "%s/UT_DIR", dir);
    write_file(path, "v1-secret", 9);
    snprintf(path, sizeof(path), "%s/..data", dir);      /* Kubernetes' bookkeeping */
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/lower", dir);
    write_file(path, "x", 1);
    setenv("SANDFLEET_SECRET_UT_B", "v2-secret", 1);
    setenv("SANDFLEET_SECRET_UT_A_FILE", "/somewhere", 1);
    json_t *names = sf_secrets_names(&s);
    char *dump = json_dumps(names, JSON_COMPACT);
    assert_non_null(strstr(dump, "\"UT_A\""));
    assert_non_null(strstr(dump, "\"UT_B\""));
    assert_non_null(strstr(dump, "\"UT_DIR\""));
    assert_null(strstr(dump, "lower"));
    assert_null(strstr(dump, "data"));
    assert_null(strstr(dump, "secret\""));
    assert_null(strstr(dump, "_FILE"));
    /* sorted */
    for (size_t i = 1; i < json_array_size(names); i++)
        assert_true(strcmp(json_string_value(json_array_get(names, i - 1)),
                           json_string_value(json_array_get(names, i))) < 0);
    free(dump);
    json_decref(names);
    unsetenv("SANDFLEET_SECRET_UT_B");
    unsetenv("SANDFLEET_SECRET_UT_A_FILE");
}

static void resolve_names_the_missing_one(void **state)
{
    (void)state;
    struct sf_secret_values sv;
    const char *missing = NULL;
    char err[512];
    setenv("SANDFLEET_SECRET_UT_B", "value-of-b", 1);
    json_t *names = json_pack("[s, s]", "UT_B", "UT_NOPE");
    assert_int_equal(sf_secrets_resolve(NULL, names, &sv, &missing, err, sizeof(err)), -ENOENT);
    assert_string_equal(missing, "UT_NOPE");
    assert_int_equal(sv.n, 0);
    assert_null(strstr(err, "value-of-b"));
    json_array_remove(names, 1);
    assert_int_equal(sf_secrets_resolve(NULL, names, &sv, &missing, err, sizeof(err)), 0);
    assert_int_equal(sv.n, 1);
    assert_string_equal(sv.v[0].name, "UT_B");
    assert_string_equal(sv.v[0].value, "value-of-b");
    sf_secret_values_clear(&sv);
    assert_int_equal(sf_secrets_resolve(NULL, NULL, &sv, &missing, err, sizeof(err)), 0);
    assert_int_equal(sv.n, 0);
    json_decref(names);
    unsetenv("SANDFLEET_SECRET_UT_B");
}

static void mask_replaces_every_occurrence(void **state)
{
    (void)state;
    struct sf_secret_value v[] = { { "A", "sk-123456", 9 }, { "B", "sk-1234567890", 13 },
                                   { "S", "abc", 3 } };
    struct sf_secret_values sv = { v, 3 };
    size_t n = 0;
    const char *text = "key sk-1234567890 and sk-123456, abc; sk-123456";
    char *m = sf_secrets_mask(&sv, text, strlen(text), &n);
    assert_non_null(m);
    assert_string_equal(m, "key *** and ***, abc; ***");
    assert_int_equal(n, strlen(m));
    free(m);
    assert_null(sf_secrets_mask(&sv, "nothing here", 12, &n));
    assert_null(sf_secrets_mask(&sv, "", 0, &n));
    m = sf_secrets_mask(&sv, "sk-123456", 9, &n);
    assert_string_equal(m, "***");
    free(m);
}

/* An agent holding the most secrets a task may name (64) prints one of
 * them over and over: masking must stay linear in the output (it used to
 * search every value afresh after each replacement — hours for a few MiB,
 * the worker's slot and lease held all along). SIGALRM fails the test. */
static void mask_is_linear_in_the_text(void **state)
{
    (void)state;
    enum { NSEC = 64, LEN = 4 << 20 };
    struct sf_secret_value v[NSEC];
    char names[NSEC][8], vals[NSEC][32];
    for (int k = 0; k < NSEC; k++) {
        snprintf(names[k], sizeof(names[k]), "S%d", k);
        snprintf(vals[k], sizeof(vals[k]), "never-printed-%02d", k);
        v[k] = (struct sf_secret_value){ names[k], vals[k], strlen(vals[k]) };
    }
    snprintf(vals[NSEC - 1], sizeof(vals[0]), "sk-printed");
    v[NSEC - 1].len = strlen(vals[NSEC - 1]);
    struct sf_secret_values sv = { v, NSEC };
    char *text = malloc(LEN);
    assert_non_null(text);
    size_t reps = LEN / 11;
    for (size_t i = 0; i < reps; i++) memcpy(text + 11 * i, "sk-printed ", 11);
    size_t n = 0;
    alarm(60);
    char *m = sf_secrets_mask(&sv, text, 11 * reps, &n);
    alarm(0);
    assert_non_null(m);
    assert_int_equal(n, 4 * reps);
    assert_memory_equal(m, "*** *** ", 8);
    free(m);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(env_then_file_var_then_folder),
        cmocka_unit_test(plain_variable_is_not_a_source),
        cmocka_unit_test(a_file_variable_is_not_a_value),
        cmocka_unit_test(names_are_checked),
        cmocka_unit_test(bad_files_are_refused),
        cmocka_unit_test(listing_has_names_only),
        cmocka_unit_test(resolve_names_the_missing_one),
        cmocka_unit_test(mask_replaces_every_occurrence),
        cmocka_unit_test(mask_is_linear_in_the_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
