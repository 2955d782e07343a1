/* Settings (config.h): default < config file < environment < flag; secrets
 * from files; secrets given on the command line masked in argv. */
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

#include "config.h"

struct cfg {
    char *broker, *name, *key;
    long n;
    double secs;
    struct sf_strlist kv;
};

#define O(f) offsetof(struct cfg, f)
static const struct sf_opt opts[] = {
    { "broker", "SFTEST_BROKER", SF_OPT_STR, O(broker), NULL, "URL", "b", 0, 0, SF_OPT_SECRET },
    { "name", "SFTEST_NAME", SF_OPT_STR, O(name), "dflt", "N", "n", 0, 0, 0 },
    { "n", "SFTEST_N", SF_OPT_INT, O(n), "1", "N", "n", 0, 100, 0 },
    { "kv", NULL, SF_OPT_LIST, O(kv), NULL, "K=V", "kv", 0, 0, SF_OPT_SECRET },
    { "key", NULL, SF_OPT_STR, O(key), NULL, "KEY", "an API key", 0, 0, SF_OPT_SECRET },
    { "secs", NULL, SF_OPT_DOUBLE, O(secs), "1.5", "S", "seconds", 0, 3600 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0, 0 },
};

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sf-test-config-%d", (int)getpid());
    return mkdir(dir, 0700) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    unsetenv("SFTEST_BROKER");
    unsetenv("SFTEST_BROKER_FILE");
    unsetenv("SFTEST_NAME");
    unsetenv("SANDFLEET_CONFIG");
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_tmp(const char *name, const char *text)
{
    static char path[4][128];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static int parse(struct cfg *c, int argc, char **argv, char *err, size_t errlen)
{
    char **pos = NULL;
    int npos = 0;
    memset(c, 0, sizeof(*c));
    int rc = sf_opts_parse(opts, c, argc, argv, 1, &pos, &npos, err, errlen);
    free(pos);
    return rc;
}

static void flag_beats_environment_beats_config_file(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *conf = write_tmp("a.conf", "# comment\n\nname = from-file\nn = 7\nkv = a=1\n");
    setenv("SFTEST_NAME", "from-env", 1);
    char a0[] = "prog", a1[] = "--config", a3[] = "--kv", a4[] = "b=2";
    char *argv[] = { a0, a1, conf, a3, a4, NULL };
    assert_int_equal(parse(&c, 5, argv, err, sizeof(err)), 0);
    assert_string_equal(c.name, "from-env");
    assert_int_equal(c.n, 7);
    assert_int_equal(c.kv.n, 2);          /* a repeatable flag adds up */
    sf_opts_free(opts, &c);

    char b1[] = "--name=from-flag", b2[] = "--n", b3[] = "9";
    char *argv2[] = { a0, b1, b2, b3, NULL };
    setenv("SANDFLEET_CONFIG", conf, 1);
    assert_int_equal(parse(&c, 4, argv2, err, sizeof(err)), 0);
    assert_string_equal(c.name, "from-flag");
    assert_int_equal(c.n, 9);
    sf_opts_free(opts, &c);
    unsetenv("SANDFLEET_CONFIG");
    unsetenv("SFTEST_NAME");
}

static void config_file_errors_name_the_line(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *conf = write_tmp("bad.conf", "name = x\nnope = 1\n");
    char a0[] = "prog", a1[] = "--config";
    char *argv[] = { a0, a1, conf, NULL };
    assert_int_equal(parse(&c, 3, argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad.conf:2: unknown setting 'nope'"));
    sf_opts_free(opts, &c);
    conf = write_tmp("bad2.conf", "n = 1000\n");
    argv[2] = conf;
    assert_int_equal(parse(&c, 3, argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad2.conf:1: n: '1000' must be an integer from 0 to 100"));
    sf_opts_free(opts, &c);
}

/* A number setting (--max-timeout-s) is finite and within its range:
 * strtod takes "inf" and "nan", and 1e300 s overflowed the deadlines. */
static void numbers_are_finite_and_in_range(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char a0[] = "prog", a1[] = "--secs", v_ok[] = "2.5", v_inf[] = "inf", v_nan[] = "nan",
         v_big[] = "1e300";
    char *argv[] = { a0, a1, v_ok, NULL };
    assert_int_equal(parse(&c, 3, argv, err, sizeof(err)), 0);
    assert_true(c.secs == 2.5);
    sf_opts_free(opts, &c);
    char *bad[] = { v_inf, v_nan, v_big };
    for (size_t i = 0; i < 3; i++) {
        argv[2] = bad[i];
        assert_int_equal(parse(&c, 3, argv, err, sizeof(err)), -EINVAL);
        sf_opts_free(opts, &c);
    }
    assert_non_null(strstr(err, "--secs: '1e300' must be a number from 0 to 3600"));
}

static void secrets_come_from_files(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *pw = write_tmp("url", "redis://:s3cret@127.0.0.1:1\n");
    char *kvs = write_tmp("kv", "# kafka\nsasl.password=pw\n\nsasl.username=u\n");
    char a0[] = "prog", a1[] = "--broker-file", a3[] = "--kv-file";
    char *argv[] = { a0, a1, pw, a3, kvs, NULL };
    assert_int_equal(parse(&c, 5, argv, err, sizeof(err)), 0);
    assert_string_equal(c.broker, "redis://:s3cret@127.0.0.1:1");   /* newline dropped */
    assert_int_equal(c.kv.n, 2);
    assert_string_equal(c.kv.v[0], "sasl.password=pw");
    sf_opts_free(opts, &c);

    setenv("SFTEST_BROKER_FILE", pw, 1);
    assert_int_equal(parse(&c, 1, argv, err, sizeof(err)), 0);
    assert_string_equal(c.broker, "redis://:s3cret@127.0.0.1:1");
    sf_opts_free(opts, &c);
    unsetenv("SFTEST_BROKER_FILE");

    char *conf = write_tmp("c.conf", "broker-file = ");
    FILE *f = fopen(conf, "a");
    fprintf(f, "%s\n", pw);
    fclose(f);
    char b1[] = "--config";
    char *argv2[] = { a0, b1, conf, NULL };
    assert_int_equal(parse(&c, 3, argv2, err, sizeof(err)), 0);
    assert_string_equal(c.broker, "redis://:s3cret@127.0.0.1:1");
    sf_opts_free(opts, &c);

    char d1[] = "--broker-file", d2[] = "/nonexistent/x";
    char *argv3[] = { a0, d1, d2, NULL };
    assert_int_equal(parse(&c, 3, argv3, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "--broker-file: cannot read '/nonexistent/x'"));
    sf_opts_free(opts, &c);
}

static void secrets_on_the_command_line_are_masked_in_argv(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char a0[] = "prog", a1[] = "--broker", a2[] = "redis://user:s3cret@h:6379/0",
         a3[] = "--kv=sasl.password=pw", a4[] = "--name", a5[] = "visible", a6[] = "--key",
         a7[] = "c2VjcmV0LWtleQ==";
    char *argv[] = { a0, a1, a2, a3, a4, a5, a6, a7, NULL };
    assert_int_equal(parse(&c, 8, argv, err, sizeof(err)), 0);
    assert_string_equal(c.key, "c2VjcmV0LWtleQ==");
    assert_string_equal(a7, "****************");       /* all of it, its '=' too */
    assert_string_equal(c.broker, "redis://user:s3cret@h:6379/0");   /* parsed before masking */
    assert_string_equal(c.kv.v[0], "sasl.password=pw");
    assert_string_equal(a2, "redis://user:******@h:6379/0");
    assert_string_equal(a3, "--kv=sasl.password=**");
    assert_string_equal(a5, "visible");
    sf_opts_free(opts, &c);
}

static void masking_rules(void **state)
{
    (void)state;
    char u1[] = "redis://:pw@h", u2[] = "redis://pw@h/0", u3[] = "kafka://h:9092",
         h[] = "Authorization: Bearer x", k[] = "plainkey", kv[] = "sasl.password=a=b:c",
         b64[] = "Zm9vYmFyOmJheg==", colon[] = "user:token";
    sf_opt_mask_secret(u1, false);
    sf_opt_mask_secret(u2, false);
    sf_opt_mask_secret(u3, false);
    sf_opt_mask_secret(h, true);
    sf_opt_mask_secret(k, false);
    sf_opt_mask_secret(kv, true);
    sf_opt_mask_secret(b64, false);
    sf_opt_mask_secret(colon, false);
    assert_string_equal(u1, "redis://:**@h");
    assert_string_equal(u2, "redis://**@h/0");
    assert_string_equal(u3, "kafka://h:9092");
    assert_string_equal(h, "Authorization: ****** *");
    assert_string_equal(k, "********");
    assert_string_equal(kv, "sasl.password=*****");
    /* A single value (an API key) is masked whole: base64 ends in '='. */
    assert_string_equal(b64, "****************");
    assert_string_equal(colon, "**********");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flag_beats_environment_beats_config_file),
        cmocka_unit_test(config_file_errors_name_the_line),
        cmocka_unit_test(secrets_come_from_files),
        cmocka_unit_test(secrets_on_the_command_line_are_masked_in_argv),
        cmocka_unit_test(masking_rules),
        cmocka_unit_test(numbers_are_finite_and_in_range),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
