/* Operator caps (policy.h): what fits, what is refused and with which reason,
 * and what an unset request is filled with. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy.h"

static void assert_refused(const struct sf_policy *p, const struct sf_policy_ask *a, const char *reason)
{
    char err[256] = "";
    assert_int_equal(sf_policy_check(p, a, err, sizeof(err)), -EPERM);
    if (!strstr(err, reason)) fail_msg("reason '%s' does not contain '%s'", err, reason);
}

static void requests_within_the_caps_fit(void **state)
{
    (void)state;
    struct sf_policy p;
    char err[256];
    sf_policy_defaults(&p);
    struct sf_limits l = { .memory_mb = 4096, .pids = 10, .disk_mb = 1 };
    struct sf_policy_ask a = { .limits = &l, .timeout_s = 3600 };
    assert_int_equal(sf_policy_check(&p, &a, err, sizeof(err)), 0);
    a.limits = NULL;
    a.timeout_s = 0;
    assert_int_equal(sf_policy_check(&p, &a, err, sizeof(err)), 0);
    assert_int_equal(sf_policy_check(NULL, &a, err, sizeof(err)), 0);
}

static void each_cap_is_named_with_its_flag(void **state)
{
    (void)state;
    struct sf_policy p;
    sf_policy_defaults(&p);
    p.max.cpu_s = 60;
    struct sf_limits l = { .memory_mb = 100000 };
    struct sf_policy_ask a = { .limits = &l };
    assert_refused(&p, &a, "limits.memory_mb 100000 is over this worker's cap of 4096 (--max-memory-mb)");
    l = (struct sf_limits){ .pids = 5000 };
    assert_refused(&p, &a, "limits.pids 5000 is over this worker's cap of 4096 (--max-pids)");
    l = (struct sf_limits){ .disk_mb = 4097 };
    assert_refused(&p, &a, "limits.disk_mb 4097 is over this worker's cap of 4096 (--max-disk-mb)");
    l = (struct sf_limits){ .cpu_s = 61 };
    assert_refused(&p, &a, "limits.cpu_s 61 is over this worker's cap of 60 (--max-cpu-s)");
    l = (struct sf_limits){0};
    a.timeout_s = 3600.5;
    a.what = "step 'b'";
    assert_refused(&p, &a, "step 'b': timeout_s 3600.5 is over this worker's cap of 3600 (--max-timeout-s)");
}

static void no_network_refuses_what_asks_for_network(void **state)
{
    (void)state;
    struct sf_policy p;
    char err[256];
    sf_policy_defaults(&p);
    struct sf_policy_ask a = { .network = true };
    assert_int_equal(sf_policy_check(&p, &a, err, sizeof(err)), 0);
    p.no_network = true;
    assert_refused(&p, &a, "the step asks for network, which this worker refuses (--no-network)");
    a.what = "step 'b'";
    assert_refused(&p, &a, "step 'b': asks for network");
    a.network = false;
    assert_int_equal(sf_policy_check(&p, &a, err, sizeof(err)), 0);
}

static void a_zero_cap_is_no_cap(void **state)
{
    (void)state;
    struct sf_policy p = {0};
    char err[256];
    struct sf_limits l = { .memory_mb = (int64_t)1 << 40, .cpu_s = 1000000 };
    struct sf_policy_ask a = { .limits = &l, .timeout_s = 1e9 };
    assert_int_equal(sf_policy_check(&p, &a, err, sizeof(err)), 0);
}

static void unset_requests_are_filled_under_the_caps(void **state)
{
    (void)state;
    struct sf_policy p;
    sf_policy_defaults(&p);
    p.max.memory_mb = 256;           /* below the 512 MiB default */
    p.max.cpu_s = 30;                /* the default is unlimited */
    struct sf_limits l = { .pids = 7 };
    double timeout = 0;
    sf_policy_fill(&p, &l, &timeout);
    assert_int_equal(l.memory_mb, 256);
    assert_int_equal(l.pids, 7);           /* asked for: kept */
    assert_int_equal(l.disk_mb, 256);      /* the default fits under the cap */
    assert_int_equal(l.cpu_s, 30);
    assert_int_equal(l.nofile, 1024);
    assert_true(timeout == 3600);
    timeout = 5;
    sf_policy_fill(&p, NULL, &timeout);
    assert_true(timeout == 5);
    p.max_timeout_s = 0;
    timeout = 0;
    sf_policy_fill(&p, NULL, &timeout);
    assert_true(timeout == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requests_within_the_caps_fit),
        cmocka_unit_test(each_cap_is_named_with_its_flag),
        cmocka_unit_test(no_network_refuses_what_asks_for_network),
        cmocka_unit_test(a_zero_cap_is_no_cap),
        cmocka_unit_test(unset_requests_are_filled_under_the_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
