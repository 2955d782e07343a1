/* Header injection rules (inject.h): what a step may ask for, the secret
 * names it needs, the resolved headers, and which rule a host gets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "inject.h"

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    assert_non_null(v);
    return v;
}

static int check(const char *text, char *err, size_t n)
{
    json_t *v = js(text);
    int rc = sf_inject_check(v, err, n);
    json_decref(v);
    return rc;
}

static void the_json_form_is_checked(void **state)
{
    (void)state;
    char err[300];
    assert_int_equal(check("{\"api.example.com\": {\"headers\": {\"Authorization\": \"Bearer ${secret:K}\"}},"
                           " \"*.example.org\": {\"headers\": {\"X-Key\": \"a$$b\"}}}", err, sizeof(err)), 0);
    assert_int_equal(check("[]", err, sizeof(err)), -EINVAL);
    assert_int_equal(check("{\"10.0.0.1\": {\"headers\": {\"A\": \"b\"}}}", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a host name"));
    assert_int_equal(check("{\"a.example\": {\"headers\": {}}}", err, sizeof(err)), -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"A\": \"b\"}, \"x\": 1}}", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"Bad Name\": \"b\"}}}", err, sizeof(err)), -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"A\": \"b\\r\\nX: y\"}}}", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"A\": 3}}}", err, sizeof(err)), -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"A\": \"${secret:}\"}}}", err, sizeof(err)), -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"A\": \"${env:HOME}\"}}}", err, sizeof(err)), -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"A\": \"${secret:K\"}}}", err, sizeof(err)), -EINVAL);
    /* Framing and routing headers stay the client's. */
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"content-length\": \"0\"}}}", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "Content-Length"));
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"Host\": \"b.example\"}}}", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(check("{\"a.example\": {\"headers\": {\"Transfer-Encoding\": \"chunked\"}}}", err,
                           sizeof(err)), -EINVAL);
}

static void secret_names_are_listed_once(void **state)
{
    (void)state;
    json_t *v = js("{\"a.example\": {\"headers\": {\"A\": \"${secret:K1}-${secret:K2}\", \"B\": \"${secret:K1}\"}},"
                   " \"b.example\": {\"headers\": {\"C\": \"plain $$ dollar\"}}}");
    json_t *names = sf_inject_secret_names(v);
    assert_int_equal(json_array_size(names), 2);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "K1");
    assert_string_equal(json_string_value(json_array_get(names, 1)), "K2");
    json_decref(names);
    json_decref(v);
}

static struct sf_secret_value val(const char *name, const char *value)
{
    return (struct sf_secret_value){ (char *)name, strdup(value), strlen(value) };
}

static void rules_are_resolved_and_matched(void **state)
{
    (void)state;
    char err[300];
    json_t *v = js("{\"api.example.com\": {\"headers\": {\"Authorization\": \"Bearer ${secret:K1}\"}},"
                   " \"*.example.com\": {\"headers\": {\"X-Key\": \"${secret:K2}$$\"}},"
                   " \"*.deep.example.com\": {\"headers\": {\"X-Deep\": \"1\"}}}");
    struct sf_secret_value vals[2] = { val("K1", "sk-one"), val("K2", "two") };
    struct sf_secret_values sv = { vals, 2 };
    struct sf_inject *in = sf_inject_build(v, &sv, err, sizeof(err));
    assert_non_null(in);
    assert_int_equal(in->n, 3);
    const struct sf_inject_rule *r = sf_inject_match(in, "api.example.com");
    assert_non_null(r);
    assert_string_equal(r->h[0].name, "Authorization");
    assert_string_equal(r->h[0].value, "Bearer sk-one");
    r = sf_inject_match(in, "API.Example.COM");
    assert_non_null(r);
    assert_string_equal(r->h[0].value, "Bearer sk-one");
    r = sf_inject_match(in, "other.example.com");
    assert_non_null(r);
    assert_string_equal(r->h[0].value, "two$");
    r = sf_inject_match(in, "x.deep.example.com");          /* the longest wildcard */
    assert_non_null(r);
    assert_string_equal(r->h[0].name, "X-Deep");
    assert_null(sf_inject_match(in, "example.com.evil"));
    assert_null(sf_inject_match(in, "notexample.com"));
    struct sf_inject *d = sf_inject_dup(in);
    sf_inject_free(in);
    assert_string_equal(sf_inject_match(d, "api.example.com")->h[0].value, "Bearer sk-one");
    sf_inject_free(d);
    /* A missing secret, and one that would break the header, are refused. */
    sv.n = 1;
    assert_null(sf_inject_build(v, &sv, err, sizeof(err)));
    assert_non_null(strstr(err, "K2"));
    free(vals[1].value);
    vals[1] = val("K2", "a\r\nX-Evil: 1");
    sv.n = 2;
    assert_null(sf_inject_build(v, &sv, err, sizeof(err)));
    assert_non_null(strstr(err, "line break"));
    sf_inject_free(NULL);
    free(vals[0].value);
    free(vals[1].value);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_json_form_is_checked),
        cmocka_unit_test(secret_names_are_listed_once),
        cmocka_unit_test(rules_are_resolved_and_matched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
