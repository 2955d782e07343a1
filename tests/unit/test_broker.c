/* tests/unit/test_broker.c: the broker pieces that need no server: URL
 * parsing (credentials, db, errors that never show the password), backend
 * choice by scheme, and the claim-check rewrite over an in-memory blob store. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "broker_redis.h"
#include "util.h"

/* --- URL ---------------------------------------------------------------- */

static void url_plain(void **state)
{
    (void)state;
    struct sf_redis_url u;
    char err[256];
    assert_int_equal(sf_redis_url_parse("redis://127.0.0.1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_null(u.user);
    assert_null(u.pass);
    assert_int_equal(u.db, 0);
    sf_redis_url_clear(&u);
}

static void url_acl_user_db(void **state)
{
    (void)state;
    struct sf_redis_url u;
    char err[256];
    assert_int_equal(sf_redis_url_parse("redis://worker:p%40ss@redis.local:6380/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "redis.local");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.user, "worker");
    assert_string_equal(u.pass, "p@ss");
    assert_int_equal(u.db, 3);
    sf_redis_url_clear(&u);
    assert_int_equal(sf_redis_url_parse("redis://:secret@h:1", &u, err, sizeof(err)), 0);
    assert_null(u.user);
    assert_string_equal(u.pass, "secret");
    sf_redis_url_clear(&u);
}

static void url_errors_hide_password(void **state)
{
    (void)state;
    struct sf_redis_url u;
    char err[256];
    assert_int_equal(sf_redis_url_parse("redis://u:topsecret@h:99999", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "port"));
    assert_null(strstr(err, "topsecret"));
    assert_int_equal(sf_redis_url_parse("redis://h/notadb", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "database"));
    assert_int_equal(sf_redis_url_parse("redis://:pw@", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "host"));
}

static void scheme_choice(void **state)
{
    (void)state;
    char err[256];
    struct sf_broker_cfg cfg = {0};
    /* kafka:// opens the Kafka backend (sf_broker_new does not connect). */
    struct sf_broker *k = sf_broker_new("kafka://127.0.0.1:1", &cfg, err, sizeof(err));
    if (!k) fail_msg("kafka:// refused: %s", err);
    assert_string_equal(k->ops->scheme, "kafka");
    sf_broker_free(k);
    assert_null(sf_broker_new("kafka://", &cfg, err, sizeof(err)));
    assert_null(sf_broker_new("amqp://u:hidden@h", &cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "unsupported broker URL"));
    assert_null(strstr(err, "hidden"));
    struct sf_broker *b = sf_broker_new("redis://127.0.0.1:1/2", &cfg, err, sizeof(err));
    assert_non_null(b);
    assert_string_equal(b->ops->scheme, "redis");
    assert_string_equal(b->cfg.queue, "default");
    sf_broker_free(b);
}

static void transient_errors(void **state)
{
    (void)state;
    assert_true(sf_broker_transient(-ECONNREFUSED));
    assert_true(sf_broker_transient(-EAGAIN));
    assert_false(sf_broker_transient(-EACCES));
    assert_false(sf_broker_transient(-EPROTO));
}

/* --- claim-check over an in-memory store ----------------------------------- */

struct mem_broker {
    struct sf_broker base;
    char *key, *val;
    size_t len;
    int puts;
};

static int mem_put(struct sf_broker *b, const char *data, size_t len, char *ref, size_t reflen,
                   char *err, size_t errlen)
{
    (void)err; (void)errlen;
    struct mem_broker *m = (struct mem_broker *)b;
    free(m->key);
    free(m->val);
    snprintf(ref, reflen, "sf:blob:test%d", ++m->puts);
    m->key = sf_xstrdup(ref);
    m->val = sf_xstrndup(data, len);
    m->len = len;
    return 0;
}

static int mem_get(struct sf_broker *b, const char *ref, char **data, size_t *len,
                   char *err, size_t errlen)
{
    (void)err; (void)errlen;
    struct mem_broker *m = (struct mem_broker *)b;
    if (!m->key || strcmp(ref, m->key)) return -ENOENT;
    *data = sf_xstrndup(m->val, m->len);
    *len = m->len;
    return 0;
}

static const struct sf_broker_ops mem_ops = { .scheme = "mem", .blob_put = mem_put, .blob_get = mem_get };

static void claim_check_round_trip(void **state)
{
    (void)state;
    struct mem_broker m = { .base = { .ops = &mem_ops, .cfg = { .claim_check_bytes = 1024 } } };
    char err[256];
    json_t *small = json_pack("{s:i, s:s}", "v", 1, "output", "tiny");
    assert_int_equal(sf_broker_claim_check(&m.base, small, "output", err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(small, "output")), "tiny");
    json_decref(small);

    char *big = sf_xmalloc(4001);
    memset(big, 'x', 4000);
    big[4000] = 0;
    json_t *r = json_pack("{s:i, s:s}", "v", 1, "output", big);
    assert_int_equal(sf_broker_claim_check(&m.base, r, "output", err, sizeof(err)), 1);
    assert_true(json_is_null(json_object_get(r, "output")));
    assert_string_equal(json_string_value(json_object_get(r, "output_ref")), "sf:blob:test1");
    assert_int_equal(sf_broker_claim_resolve(&m.base, r, "output", err, sizeof(err)), 1);
    assert_string_equal(json_string_value(json_object_get(r, "output")), big);
    assert_null(json_object_get(r, "output_ref"));
    json_decref(r);
    free(big);
    free(m.key);
    free(m.val);
}

static void decode_task_resolves_input_ref(void **state)
{
    (void)state;
    struct mem_broker m = { .base = { .ops = &mem_ops } };
    char err[256], ref[64];
    bool transient;
    assert_int_equal(mem_put(&m.base, "[1,2,3]", 7, ref, sizeof(ref), err, sizeof(err)), 0);
    const char *msg = "{\"v\":1,\"id\":\"r:s:0\",\"run_id\":\"r\",\"step\":\"s\",\"run\":\"cat\","
                      "\"input\":null,\"input_ref\":\"sf:blob:test1\"}";
    struct sf_task *t = sf_broker_decode_task(&m.base, msg, strlen(msg), &transient, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(json_array_size(t->input), 3);
    sf_task_free(t);

    const char *gone = "{\"v\":1,\"id\":\"r:s:0\",\"run_id\":\"r\",\"step\":\"s\",\"run\":\"cat\","
                       "\"input_ref\":\"sf:blob:expired\"}";
    assert_null(sf_broker_decode_task(&m.base, gone, strlen(gone), &transient, err, sizeof(err)));
    assert_false(transient);
    assert_non_null(strstr(err, "not found"));
    free(m.key);
    free(m.val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_plain),
        cmocka_unit_test(url_acl_user_db),
        cmocka_unit_test(url_errors_hide_password),
        cmocka_unit_test(scheme_choice),
        cmocka_unit_test(transient_errors),
        cmocka_unit_test(claim_check_round_trip),
        cmocka_unit_test(decode_task_resolves_input_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
