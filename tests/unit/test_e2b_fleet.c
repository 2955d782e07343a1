/* tests/unit/test_e2b_fleet.c: what the E2B gateway and its workers agree on
 * (common/e2b/e2b_fleet.h): how a request names its sandbox, the gateway's
 * signature (accepted as made, refused for another path, host or sandbox,
 * when stale, forged or malformed), the record and capacity round trips,
 * and placement (spread, not packed; draining, dead, low-memory and refused
 * workers left out; full ones tried last). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "e2b_fleet.h"
#include "util.h"

static void names_a_sandbox(void **state)
{
    (void)state;
    char id[SF_E2B_ID_MAX], raw[SF_E2B_ID_MAX];
    unsigned port;
    assert_true(sf_e2b_host_route("49983-iabc123.e2b.local", &port, id, sizeof(id)));
    assert_int_equal(port, 49983);
    assert_string_equal(id, "iabc123");
    assert_true(sf_e2b_host_route("8000-iabc-6532622b.x.y:443", &port, id, sizeof(id)));
    assert_int_equal(port, 8000);
    assert_string_equal(id, "iabc");
    static const char *no[] = { "api.e2b.app", "abc-x.y", "0-id.x", "70000-id.x", "49983-.x",
                                "49983-ID.x", "49983-id", "123456-id.x", "" };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (sf_e2b_host_route(no[i], &port, id, sizeof(id))) fail_msg("routed: %s", no[i]);
    assert_false(sf_e2b_host_route(NULL, &port, id, sizeof(id)));

    assert_true(sf_e2b_valid_id("iabc-6532622b", id, sizeof(id)));
    assert_string_equal(id, "iabc");
    assert_false(sf_e2b_valid_id("a--b", id, sizeof(id)));
    assert_false(sf_e2b_valid_id("../x", id, sizeof(id)));
    assert_false(sf_e2b_valid_id("", id, sizeof(id)));

    const char *p = "/sandboxes/iabc/timeout";
    assert_int_equal(sf_e2b_path_sandbox(p, strlen(p), raw, sizeof(raw)), 1);
    assert_string_equal(raw, "iabc");
    p = "/v2/sandboxes/iabc/connect";
    assert_int_equal(sf_e2b_path_sandbox(p, strlen(p), raw, sizeof(raw)), 1);
    assert_string_equal(raw, "iabc");
    p = "/sandboxes";
    assert_int_equal(sf_e2b_path_sandbox(p, strlen(p), raw, sizeof(raw)), 0);
    p = "/sandboxes/";
    assert_int_equal(sf_e2b_path_sandbox(p, strlen(p), raw, sizeof(raw)), 0);
    p = "/sandboxes/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(sf_e2b_path_sandbox(p, strlen(p), raw, sizeof(raw)), -EINVAL);
}

static void signs_and_verifies(void **state)
{
    (void)state;
    const char *secret = "0123456789abcdef0123";
    size_t sl = strlen(secret);
    char sig[160], why[256];
    int64_t now = 1800000000000;
    const char *target = "/files%2Fx?path=/etc/passwd";
    assert_int_equal(sf_e2b_gw_sign(secret, sl, now, "GET", target, strcspn(target, "?"), "h:1",
                                    "iabc", sig, sizeof(sig)), 0);
    /* The worker sees the path decoded (libmicrohttpd), without the query. */
    assert_int_equal(sf_e2b_gw_verify(secret, sl, sig, now + 1000, "GET", "/files/x", "h:1", "iabc",
                                      why, sizeof(why)), 0);
    assert_int_equal(sf_e2b_gw_verify(secret, sl, sig, now, "GET", "/files/y", "h:1", "iabc", why,
                                      sizeof(why)), -EACCES);
    assert_int_equal(sf_e2b_gw_verify(secret, sl, sig, now, "POST", "/files/x", "h:1", "iabc", why,
                                      sizeof(why)), -EACCES);
    assert_int_equal(sf_e2b_gw_verify(secret, sl, sig, now, "GET", "/files/x", "h:2", "iabc", why,
                                      sizeof(why)), -EACCES);
    assert_int_equal(sf_e2b_gw_verify(secret, sl, sig, now, "GET", "/files/x", "h:1", "iother", why,
                                      sizeof(why)), -EACCES);
    assert_int_equal(sf_e2b_gw_verify("another-secret-here", 19, sig, now, "GET", "/files/x", "h:1",
                                      "iabc", why, sizeof(why)), -EACCES);
    assert_int_equal(sf_e2b_gw_verify(secret, sl, sig, now + SF_E2B_GW_SKEW_MS + 1, "GET", "/files/x",
                                      "h:1", "iabc", why, sizeof(why)), -EACCES);
    assert_non_null(strstr(why, "clock"));
    assert_int_equal(sf_e2b_gw_verify(secret, sl, NULL, now, "GET", "/", "h", NULL, why, sizeof(why)),
                     -EACCES);
    assert_int_equal(sf_e2b_gw_verify(secret, sl, "v1 x y", now, "GET", "/", "h", NULL, why,
                                      sizeof(why)), -EACCES);
    assert_int_equal(sf_e2b_secret_check("short", "s", why, sizeof(why)), -EINVAL);
    assert_int_equal(sf_e2b_secret_check(NULL, "s", why, sizeof(why)), -EINVAL);
    assert_int_equal(sf_e2b_secret_check(secret, "s", why, sizeof(why)), 0);
}

static void records_and_capacity_round_trip(void **state)
{
    (void)state;
    struct sf_e2b_record r = { .metadata = json_pack("{s:s}", "k", "v"), .started_ms = 1000,
                               .end_ms = 301000, .cpu_count = 2, .memory_mb = 512 };
    strcpy(r.id, "iabc");
    strcpy(r.worker, "w1");
    strcpy(r.template_id, "base");
    strcpy(r.token, "tok");
    char *s = sf_e2b_record_dump(&r), err[128];
    struct sf_e2b_record back;
    assert_int_equal(sf_e2b_record_parse(s, strlen(s), &back, err, sizeof(err)), 0);
    assert_string_equal(back.id, "iabc");
    assert_string_equal(back.state, "running");
    assert_string_equal(json_string_value(json_object_get(back.metadata, "k")), "v");
    json_t *l = sf_e2b_record_listed(&back);
    assert_string_equal(json_string_value(json_object_get(l, "endAt")), "1970-01-01T00:05:01.000Z");
    assert_string_equal(json_string_value(json_object_get(l, "alias")), "base");
    json_decref(l);
    free(s);
    sf_e2b_record_clear(&back);
    json_decref(r.metadata);
    static const char *bad[] = { "{\"id\":\"../x\",\"worker\":\"w\"}", "{\"worker\":\"w\"}", "[]",
                                 "{\"id\":\"iabc\",\"worker\":7}" };
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(sf_e2b_record_parse(bad[i], strlen(bad[i]), &back, err, sizeof(err)), -EINVAL);

    struct sf_e2b_capacity c = { .id = "w1", .ingress = "10.0.0.5:3001", .max = 6, .running = 2,
                                 .lease_ms = 3000, .mem_total_mb = 1000, .mem_avail_mb = 500, .cpus = 2 };
    json_t *j = sf_e2b_capacity_json(&c);
    json_object_set_new(j, "age_ms", json_integer(2999));
    struct sf_e2b_capacity c2;
    assert_int_equal(sf_e2b_capacity_parse(j, &c2, err, sizeof(err)), 0);
    assert_string_equal(c2.ingress, "10.0.0.5:3001");
    assert_int_equal(c2.running, 2);
    assert_true(sf_e2b_capacity_live(&c2));
    c2.age_ms = 3001;
    assert_false(sf_e2b_capacity_live(&c2));
    json_decref(j);
    sf_e2b_capacity_probe(&c2);
    assert_true(c2.cpus >= 1 && c2.mem_total_mb > 0);
}

static struct sf_e2b_capacity cap(const char *id, int max, int running)
{
    struct sf_e2b_capacity c = { .max = max, .running = running, .lease_ms = 3000,
                                 .mem_total_mb = 8000, .mem_avail_mb = 6000, .cpus = 4 };
    sf_strlcpy(c.id, id, sizeof(c.id));
    sf_strlcpy(c.ingress, "127.0.0.1:1", sizeof(c.ingress));
    return c;
}

static void places_by_free_capacity(void **state)
{
    (void)state;
    struct sf_e2b_capacity c[5] = { cap("a", 6, 0), cap("b", 6, 0), cap("c", 6, 0), cap("d", 6, 0),
                                    cap("e", 6, 0) };
    struct sf_e2b_candidate v[5];
    size_t order[5];
    for (int i = 0; i < 5; i++) v[i] = (struct sf_e2b_candidate){ .cap = &c[i] };
    c[1].draining = true;
    c[2].age_ms = 3001;                    /* dead */
    c[3].mem_avail_mb = 100;               /* short of memory */
    v[4].refused = true;
    assert_int_equal(sf_e2b_place(v, 5, 256, 1, order), 1);
    assert_int_equal(order[0], 0);

    /* Spread: each placement counted as unseen moves the next elsewhere. */
    struct sf_e2b_capacity two[2] = { cap("a", 6, 0), cap("b", 6, 0) };
    struct sf_e2b_candidate w[2] = { { .cap = &two[0] }, { .cap = &two[1] } };
    int on[2] = { 0, 0 };
    for (int i = 0; i < 12; i++) {
        assert_int_equal(sf_e2b_place(w, 2, 256, (uint32_t)i * 7919u, order), 2);
        on[order[0]]++;
        w[order[0]].unseen++;
    }
    assert_int_equal(on[0], 6);
    assert_int_equal(on[1], 6);
    /* Full by its report: still a candidate, after those with room. */
    two[0].running = 6;
    w[0].unseen = w[1].unseen = 0;
    assert_int_equal(sf_e2b_place(w, 2, 256, 3, order), 2);
    assert_int_equal(order[0], 1);
    /* Less free memory ranks lower even with the same free slots. */
    struct sf_e2b_capacity m[2] = { cap("a", 10, 0), cap("b", 10, 0) };
    m[0].mem_avail_mb = 1000;
    struct sf_e2b_candidate mv[2] = { { .cap = &m[0] }, { .cap = &m[1] } };
    assert_int_equal(sf_e2b_place(mv, 2, 256, 9, order), 2);
    assert_int_equal(order[0], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_a_sandbox),
        cmocka_unit_test(signs_and_verifies),
        cmocka_unit_test(records_and_capacity_round_trip),
        cmocka_unit_test(places_by_free_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
