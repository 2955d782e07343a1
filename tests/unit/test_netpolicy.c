/* Address classes (netaddr: shared by callbacks and egress), CIDR blocks,
 * egress rules: names, E2B's allow/deny semantics, the worker's default
 * policy, and what a bad rule is refused with. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "netaddr.h"
#include "netpolicy.h"
#include "task.h"
#include "workflow.h"

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static bool in(const char *cidr, const char *ip)
{
    struct sf_cidr c;
    assert_int_equal(sf_cidr_parse(cidr, &c), 0);
    struct sockaddr_storage ss = addr(ip);
    return sf_cidr_match(&c, (struct sockaddr *)&ss);
}

static void cidr_blocks_match_both_families(void **state)
{
    (void)state;
    assert_true(in("10.0.0.0/8", "10.213.7.2"));
    assert_false(in("10.0.0.0/8", "11.0.0.1"));
    assert_true(in("0.0.0.0/0", "198.51.100.2"));
    assert_true(in("198.51.100.2", "198.51.100.2"));
    assert_false(in("198.51.100.2", "198.51.100.3"));
    /* An IPv4 address in IPv6 clothes is the IPv4 address. */
    assert_true(in("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_true(in("10.0.0.0/8", "64:ff9b::a00:1"));
    assert_true(in("::ffff:10.0.0.0/104", "10.1.2.3"));
    assert_false(in("0.0.0.0/0", "2001:db8::1"));
    assert_true(in("::/0", "2001:db8::1"));
    assert_true(in("fc00::/7", "fd12::1"));
    assert_false(in("fc00::/7", "fe80::1"));
    struct sf_cidr c;
    const char *bad[] = { "10.0.0.1/8", "10.0.0.0/33", "300.1.1.1", "10.0.0.0/", "/8",
                          "10.0.0.0/-1", "fe80::1/10", "::/129", "", "1.2.3.4/8x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sf_cidr_parse(bad[i], &c) == 0) fail_msg("'%s' parsed as a block", bad[i]);
    char buf[64];
    assert_int_equal(sf_cidr_parse("::ffff:10.0.0.0/104", &c), 0);
    assert_string_equal(sf_cidr_format(&c, buf, sizeof(buf)), "10.0.0.0/8");
}

static enum sf_netaddr_class cls_of(const char *ip)
{
    struct sockaddr_storage ss = addr(ip);
    return sf_netaddr_classify((struct sockaddr *)&ss);
}

static void classifier_knows_the_ranges(void **state)
{
    (void)state;
    static const struct { const char *ip; enum sf_netaddr_class c; } cases[] = {
        { "127.0.0.1", SF_NETADDR_LOOPBACK }, { "127.255.255.254", SF_NETADDR_LOOPBACK },
        { "10.0.0.1", SF_NETADDR_PRIVATE }, { "10.255.255.255", SF_NETADDR_PRIVATE },
        { "172.16.0.1", SF_NETADDR_PRIVATE }, { "172.31.255.255", SF_NETADDR_PRIVATE },
        { "172.15.255.255", SF_NETADDR_PUBLIC }, { "172.32.0.0", SF_NETADDR_PUBLIC },
        { "192.168.1.1", SF_NETADDR_PRIVATE }, { "192.169.0.1", SF_NETADDR_PUBLIC },
        { "169.254.169.254", SF_NETADDR_LINK_LOCAL }, { "100.64.0.1", SF_NETADDR_SHARED },
        { "100.127.255.255", SF_NETADDR_SHARED }, { "100.128.0.0", SF_NETADDR_PUBLIC },
        { "0.0.0.0", SF_NETADDR_UNSPECIFIED }, { "0.1.2.3", SF_NETADDR_UNSPECIFIED },
        { "224.0.0.1", SF_NETADDR_MULTICAST }, { "255.255.255.255", SF_NETADDR_RESERVED },
        { "8.8.8.8", SF_NETADDR_PUBLIC }, { "93.184.216.34", SF_NETADDR_PUBLIC },
        { "::1", SF_NETADDR_LOOPBACK }, { "::", SF_NETADDR_UNSPECIFIED },
        { "fc00::1", SF_NETADDR_PRIVATE }, { "fd12:3456::1", SF_NETADDR_PRIVATE },
        { "fd00:ec2::254", SF_NETADDR_PRIVATE }, { "fe80::1", SF_NETADDR_LINK_LOCAL },
        { "febf::1", SF_NETADDR_LINK_LOCAL }, { "ff02::1", SF_NETADDR_MULTICAST },
        { "::ffff:127.0.0.1", SF_NETADDR_LOOPBACK }, { "::ffff:10.1.2.3", SF_NETADDR_PRIVATE },
        { "::ffff:169.254.169.254", SF_NETADDR_LINK_LOCAL }, { "64:ff9b::a00:1", SF_NETADDR_PRIVATE },
        { "::ffff:8.8.8.8", SF_NETADDR_PUBLIC }, { "2001:db8::1", SF_NETADDR_DOCUMENTATION },
        { "2606:4700:4700::1111", SF_NETADDR_PUBLIC },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (cls_of(cases[i].ip) != cases[i].c)
            fail_msg("%s: class %s, expected %s", cases[i].ip, sf_netaddr_class_name(cls_of(cases[i].ip)),
                     sf_netaddr_class_name(cases[i].c));
}

static void documentation_ranges_have_their_own_class(void **state)
{
    (void)state;
    const char *doc[] = { "192.0.2.1", "198.51.100.2", "203.0.113.9", "2001:db8::1" };
    for (size_t i = 0; i < 4; i++) {
        struct sockaddr_storage ss = addr(doc[i]);
        assert_int_equal(sf_netaddr_classify((struct sockaddr *)&ss), SF_NETADDR_DOCUMENTATION);
    }
    struct sockaddr_storage ss = addr("198.18.0.1");
    assert_int_equal(sf_netaddr_classify((struct sockaddr *)&ss), SF_NETADDR_RESERVED);
}

static struct sf_netpolicy *policy(const char *json)
{
    char err[300] = "";
    json_t *j = json_loads(json, 0, NULL);
    assert_non_null(j);
    struct sf_netpolicy *p = sf_netpolicy_from_json(j, SF_NETPOLICY_E2B, err, sizeof(err));
    json_decref(j);
    if (!p) fail_msg("%s: %s", json, err);
    return p;
}

static enum sf_netverdict verdict(const struct sf_netpolicy *p, const char *ip)
{
    struct sockaddr_storage ss = addr(ip);
    return sf_netpolicy_addr(p, (struct sockaddr *)&ss);
}

static void allow_out_wins_over_deny_out(void **state)
{
    (void)state;
    struct sf_netpolicy *p = policy("{\"deny_out\":[\"0.0.0.0/0\"],\"allow_out\":[\"198.51.100.0/24\"]}");
    assert_int_equal(verdict(p, "198.51.100.2"), SF_NET_ALLOW);
    assert_int_equal(verdict(p, "203.0.113.1"), SF_NET_DENY);
    sf_netpolicy_free(p);
    /* deny_out alone: the rest stays open. */
    p = policy("{\"deny_out\":[\"203.0.113.0/24\"]}");
    assert_int_equal(verdict(p, "198.51.100.2"), SF_NET_ALLOW);
    assert_int_equal(verdict(p, "203.0.113.1"), SF_NET_DENY);
    sf_netpolicy_free(p);
    /* allow_out alone: only those. */
    p = policy("{\"allow_out\":[\"198.51.100.2\"]}");
    assert_int_equal(verdict(p, "198.51.100.2"), SF_NET_ALLOW);
    assert_int_equal(verdict(p, "198.51.100.3"), SF_NET_DENY);
    sf_netpolicy_free(p);
    /* No rules at all: everything the default policy lets through. */
    assert_int_equal(sf_netpolicy_addr(NULL, (struct sockaddr *)&(struct sockaddr_storage){0}),
                     SF_NET_ALLOW);
}

static void names_reopen_by_name_only(void **state)
{
    (void)state;
    struct sf_netpolicy *p = policy("{\"deny_out\":[\"0.0.0.0/0\"],"
                                    "\"allow_out\":[\"API.Example.com.\",\"*.test.example\"]}");
    assert_int_equal(verdict(p, "198.51.100.2"), SF_NET_BY_NAME);
    assert_true(sf_netpolicy_name(p, "api.example.com"));
    assert_true(sf_netpolicy_name(p, "API.EXAMPLE.COM."));
    assert_false(sf_netpolicy_name(p, "www.example.com"));
    assert_true(sf_netpolicy_name(p, "a.test.example"));
    assert_true(sf_netpolicy_name(p, "a.b.test.example"));
    assert_false(sf_netpolicy_name(p, "test.example"));
    assert_false(sf_netpolicy_name(p, "badtest.example"));
    json_t *j = sf_netpolicy_to_json(p);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"allow_out\":[\"api.example.com\",\"*.test.example\"],"
                           "\"deny_out\":[\"0.0.0.0/0\"]}");
    free(s);
    json_decref(j);
    struct sf_netpolicy *d = sf_netpolicy_dup(p);
    assert_true(sf_netpolicy_equal(p, d));
    sf_netpolicy_free(d);
    sf_netpolicy_free(p);
}

static void house_is_internet_not_the_house(void **state)
{
    (void)state;
    static const struct { const char *ip; bool local; enum sf_netverdict v; } cases[] = {
        { "8.8.8.8", false, SF_NET_ALLOW }, { "198.51.100.2", false, SF_NET_ALLOW },
        { "2606:4700::1", false, SF_NET_ALLOW }, { "8.8.8.8", true, SF_NET_DENY },
        { "127.0.0.1", false, SF_NET_DENY }, { "10.213.7.2", false, SF_NET_DENY },
        { "172.16.0.1", false, SF_NET_DENY }, { "192.168.1.1", false, SF_NET_DENY },
        { "100.64.0.1", false, SF_NET_DENY }, { "169.254.169.254", false, SF_NET_DENY },
        { "224.0.0.1", false, SF_NET_DENY }, { "255.255.255.255", false, SF_NET_DENY },
        { "::1", false, SF_NET_DENY }, { "fd00::1", false, SF_NET_DENY }, { "fe80::1", false, SF_NET_DENY },
        { "::ffff:10.0.0.1", false, SF_NET_DENY }, { "0.0.0.0", false, SF_NET_DENY },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss = addr(cases[i].ip);
        if (sf_netpolicy_house(NULL, (struct sockaddr *)&ss, cases[i].local) != cases[i].v)
            fail_msg("%s (local %d): wrong verdict", cases[i].ip, cases[i].local);
    }
    /* The operator's rules: deny first, then allowed blocks, then names. */
    struct sf_netpolicy *op = policy("{\"allow_out\":[\"10.1.0.0/16\",\"llm.corp\"],"
                                     "\"deny_out\":[\"8.8.8.0/24\",\"10.1.2.0/24\"]}");
    struct sockaddr_storage a = addr("10.1.5.5"), b = addr("10.1.2.3"), c = addr("8.8.8.8"),
                            d = addr("10.9.9.9"), e = addr("1.1.1.1");
    assert_int_equal(sf_netpolicy_house(op, (struct sockaddr *)&a, false), SF_NET_ALLOW);
    assert_int_equal(sf_netpolicy_house(op, (struct sockaddr *)&b, false), SF_NET_DENY);
    assert_int_equal(sf_netpolicy_house(op, (struct sockaddr *)&c, false), SF_NET_DENY);
    assert_int_equal(sf_netpolicy_house(op, (struct sockaddr *)&d, false), SF_NET_BY_NAME);
    assert_int_equal(sf_netpolicy_house(op, (struct sockaddr *)&e, false), SF_NET_ALLOW);
    sf_netpolicy_free(op);
}

static void closed_rules_close_dns_too(void **state)
{
    (void)state;
    struct sf_netpolicy *p = policy("{\"deny_out\":[\"0.0.0.0/0\"],\"allow_out\":[\"a.example\"]}");
    assert_true(sf_netpolicy_closed(p));
    sf_netpolicy_free(p);
    p = policy("{\"allow_out\":[\"1.2.3.4\"]}");
    assert_true(sf_netpolicy_closed(p));
    sf_netpolicy_free(p);
    p = policy("{\"deny_out\":[\"10.0.0.0/8\"]}");
    assert_false(sf_netpolicy_closed(p));
    sf_netpolicy_free(p);
    assert_false(sf_netpolicy_closed(NULL));
}

static void bad_rules_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct { const char *json, *reason; } cases[] = {
        { "{\"allow_out\":\"1.2.3.4\"}", "network.allow_out must be a list of strings" },
        { "{\"allow_out\":[5]}", "network.allow_out[0] must be a string" },
        { "{\"allow_out\":[\"exa mple.com\"]}", "'exa mple.com' is not an IP, CIDR block or host name" },
        { "{\"allow_out\":[\"10.0.0.300\"]}", "'10.0.0.300' is not an IP" },
        { "{\"allow_out\":[\"*\"]}", "'*' is not" },
        { "{\"allow_out\":[\"-a.com\"]}", "'-a.com' is not" },
        { "{\"allow_out\":[\"10.0.0.1/8\"]}", "'10.0.0.1/8' is not" },
        { "{\"deny_out\":[\"example.com\"]}", "host names are allowed in allow_out only" },
        { "{\"dns_servers\":[\"10.0.0.0/8\"]}", "is not an IPv4 address" },
        { "{\"egress_proxy\":{}}", "unknown key 'egress_proxy'" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[300] = "";
        json_t *j = json_loads(cases[i].json, 0, NULL);
        struct sf_netpolicy *p = sf_netpolicy_from_json(j, SF_NETPOLICY_E2B, err, sizeof(err));
        json_decref(j);
        if (p) fail_msg("%s was accepted", cases[i].json);
        if (!strstr(err, cases[i].reason)) fail_msg("%s: '%s' lacks '%s'", cases[i].json, err, cases[i].reason);
    }
    /* dns_servers is E2B's, not a workflow's. */
    char err[300];
    json_t *j = json_loads("{\"dns_servers\":[\"8.8.8.8\"]}", 0, NULL);
    assert_null(sf_netpolicy_from_json(j, SF_NETPOLICY_STEP, err, sizeof(err)));
    json_decref(j);
    /* At most SF_NETPOLICY_MAX_ENTRIES per list. */
    json_t *big = json_array();
    for (int i = 0; i <= SF_NETPOLICY_MAX_ENTRIES; i++) json_array_append_new(big, json_string("1.2.3.4"));
    j = json_pack("{s:o}", "deny_out", big);
    assert_null(sf_netpolicy_from_json(j, SF_NETPOLICY_STEP, err, sizeof(err)));
    assert_non_null(strstr(err, "at most"));
    json_decref(j);
}

static void task_and_workflow_carry_the_rules(void **state)
{
    (void)state;
    char err[300] = "";
    const char *m = "{\"v\":1,\"id\":\"r:a:0\",\"run_id\":\"r\",\"step\":\"a\",\"run\":\"cat\","
                    "\"network\":{\"allow_out\":[\"198.51.100.0/24\",\"*.example.com\"]}}";
    struct sf_task *t = sf_task_decode(m, strlen(m), err, sizeof(err));
    if (!t) fail_msg("%s", err);
    assert_true(t->network);
    assert_non_null(t->net_policy);
    char *enc = sf_task_encode(t);
    struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
    assert_non_null(t2);
    assert_true(sf_netpolicy_equal(t->net_policy, t2->net_policy));
    free(enc);
    sf_task_free(t2);
    sf_task_free(t);

    struct sf_workflow *wf = NULL;
    struct sf_buf errs = { 0 };
    const char *shared = "{\"sandbox\":\"shared\",\"steps\":["
                         "{\"id\":\"a\",\"run\":\"x\",\"network\":{\"allow_out\":[\"1.2.3.4\"]}},"
                         "{\"id\":\"b\",\"run\":\"x\",\"network\":true}]}";
    assert_int_equal(sf_workflow_parse(shared, strlen(shared), "w", NULL, &wf, &errs), -EINVAL);
    assert_non_null(strstr(errs.data, "the steps of a shared sandbox that use the network must ask "
                                      "for the same rules"));
    sf_buf_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cidr_blocks_match_both_families),
        cmocka_unit_test(classifier_knows_the_ranges),
        cmocka_unit_test(documentation_ranges_have_their_own_class),
        cmocka_unit_test(allow_out_wins_over_deny_out),
        cmocka_unit_test(names_reopen_by_name_only),
        cmocka_unit_test(house_is_internet_not_the_house),
        cmocka_unit_test(closed_rules_close_dns_too),
        cmocka_unit_test(bad_rules_are_refused_with_a_reason),
        cmocka_unit_test(task_and_workflow_carry_the_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
