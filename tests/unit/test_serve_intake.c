/* serve's intake decisions (coordinator/serve/serve_table.c, serve_auth.c):
 * a known run id is 409, the intake is bounded (429), draining refuses
 * submissions (503) and then lookups, a refused claim frees its id, and
 * who may see which run. No broker, no HTTP: the decisions alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "serve.h"

static struct serve_req *submission(const char *run_id, const char *owner)
{
    static const char doc[] = "{\"workflow\": {\"name\": \"w\", \"steps\": [{\"id\": \"a\", \"run\": \"cat\"}]}}";
    struct serve_req *r = sf_xcalloc(1, sizeof(*r));
    struct sf_buf errs = {0};
    r->kind = SERVE_SUBMIT;
    assert_int_equal(serve_submission_parse(doc, strlen(doc), &r->sub, &errs), 0);
    sf_strlcpy(r->run_id, run_id, sizeof(r->run_id));
    sf_strlcpy(r->owner, owner, sizeof(r->owner));
    sf_buf_free(&errs);
    return r;
}

static struct serve_req *lookup(void)
{
    struct serve_req *r = sf_xcalloc(1, sizeof(*r));
    r->kind = SERVE_LOOKUP;
    return r;
}

/* Submit, and on a refusal free it (as the handler does). */
static int submit(struct serve_table *tab, struct serve_req *r)
{
    int rc = serve_table_submit(tab, r);
    if (rc < 0) serve_req_free(r);
    return rc;
}

static void a_run_id_known_here_is_refused(void **state)
{
    (void)state;
    struct serve_table tab;
    assert_int_equal(serve_table_init(&tab, 10, 10), 0);
    assert_int_equal(submit(&tab, submission("r1", "api:alice")), 0);
    /* Whoever sends it: the same owner or another. */
    assert_int_equal(submit(&tab, submission("r1", "api:mallory")), -EEXIST);
    assert_int_equal(submit(&tab, submission("r1", "api:alice")), -EEXIST);
    /* The entry keeps its first owner. */
    assert_string_equal(tab.v[0].owner, "api:alice");
    serve_table_destroy(&tab);
}

static void the_intake_is_bounded(void **state)
{
    (void)state;
    struct serve_table tab;
    assert_int_equal(serve_table_init(&tab, 2, 10), 0);
    assert_int_equal(submit(&tab, submission("a", "api:x")), 0);
    assert_int_equal(submit(&tab, submission("b", "api:x")), 0);
    assert_int_equal(submit(&tab, submission("c", "api:x")), -EAGAIN);     /* 429 */
    assert_int_equal(serve_table_queued(&tab), 2);
    /* The loop takes one and starts it: room for another. */
    struct serve_req *r = serve_table_take(&tab);
    assert_non_null(r);
    assert_string_equal(r->run_id, "a");
    serve_req_free(r);
    assert_int_equal(submit(&tab, submission("c", "api:x")), -EAGAIN);     /* taken is not started */
    serve_table_unqueue(&tab);
    assert_int_equal(submit(&tab, submission("c", "api:x")), 0);
    serve_table_destroy(&tab);
}

static void a_refused_claim_frees_its_id(void **state)
{
    (void)state;
    struct serve_table tab;
    assert_int_equal(serve_table_init(&tab, 10, 10), 0);
    assert_int_equal(submit(&tab, submission("taken", "api:x")), 0);
    serve_req_free(serve_table_take(&tab));
    /* The broker said the id is another instance's: forget it here. */
    serve_table_forget(&tab, "taken");
    serve_table_unqueue(&tab);
    assert_int_equal(tab.n, 0);
    assert_int_equal(submit(&tab, submission("taken", "api:x")), 0);
    serve_table_destroy(&tab);
}

/* An HTTP submission takes its place before it is parsed (a large body is
 * parsed off the HTTP thread), and gets its table entry once parsed. */
static void an_unparsed_submission_holds_its_place(void **state)
{
    (void)state;
    struct serve_table tab;
    assert_int_equal(serve_table_init(&tab, 2, 10), 0);
    struct serve_req *raw = sf_xcalloc(1, sizeof(*raw));
    raw->kind = SERVE_POST;
    assert_int_equal(serve_table_reserve(&tab, raw), 0);
    assert_int_equal(submit(&tab, submission("s1", "stream")), 0);
    struct serve_req *raw2 = sf_xcalloc(1, sizeof(*raw2));
    assert_int_equal(serve_table_reserve(&tab, raw2), -EAGAIN);        /* 429: two wait already */
    serve_req_free(raw2);
    assert_ptr_equal(serve_table_take(&tab), raw);
    /* Parsed: it names the id the stream submission holds. */
    serve_req_free(raw);
    struct serve_req *parsed = submission("s1", "api:alice");
    assert_int_equal(serve_table_enter(&tab, parsed), -EEXIST);          /* 409 */
    serve_table_unqueue(&tab);
    serve_req_free(parsed);
    parsed = submission("p1", "api:alice");
    struct serve_req *raw3 = sf_xcalloc(1, sizeof(*raw3));
    assert_int_equal(serve_table_reserve(&tab, raw3), 0);
    assert_int_equal(serve_table_enter(&tab, parsed), 0);
    assert_int_equal(serve_table_queued(&tab), 2);
    serve_req_free(parsed);
    serve_table_destroy(&tab);
}

static void lookups_are_bounded_and_draining_refuses(void **state)
{
    (void)state;
    struct serve_table tab;
    assert_int_equal(serve_table_init(&tab, 10, 2), 0);
    struct serve_req *l1 = lookup(), *l2 = lookup(), *l3 = lookup();
    assert_int_equal(serve_table_ask(&tab, l1), 0);
    assert_int_equal(serve_table_ask(&tab, l2), 0);
    assert_int_equal(serve_table_ask(&tab, l3), -EAGAIN);                /* 429 */
    serve_table_answered(&tab);
    assert_int_equal(serve_table_ask(&tab, l3), 0);
    /* Draining: submissions are refused, lookups still answered... */
    serve_table_close(&tab, false);
    assert_int_equal(submit(&tab, submission("late", "api:x")), -ESHUTDOWN);   /* 503 */
    serve_table_answered(&tab);
    struct serve_req *l4 = lookup();
    assert_int_equal(serve_table_ask(&tab, l4), 0);
    /* ...until serve stops. */
    serve_table_close(&tab, true);
    struct serve_req *l5 = lookup();
    assert_int_equal(serve_table_ask(&tab, l5), -ESHUTDOWN);
    serve_req_free(l5);
    serve_table_destroy(&tab);                                          /* frees what is queued */
}

static void who_sees_which_run(void **state)
{
    (void)state;
    struct sf_principal alice = { "alice", SF_SCOPE_CLIENT }, bob = { "bob", SF_SCOPE_CLIENT },
                        ops = { "ops", SF_SCOPE_ADMIN };
    char owner[SERVE_OWNER_MAX];
    serve_owner_of(&alice, owner, sizeof(owner));
    assert_string_equal(owner, "api:alice");
    serve_owner_of(NULL, owner, sizeof(owner));
    assert_string_equal(owner, "api:local");
    assert_true(serve_may_see(&alice, "api:alice"));
    assert_false(serve_may_see(&bob, "api:alice"));
    assert_false(serve_may_see(&alice, "stream"));
    assert_false(serve_may_see(&alice, NULL));          /* a run from before owners */
    assert_false(serve_may_see(&alice, "api:alice2"));
    assert_true(serve_may_see(&ops, "api:alice"));
    assert_true(serve_may_see(&ops, NULL));
    assert_true(serve_may_see(NULL, "stream"));         /* no tokens: open, on loopback only */
    assert_true(serve_is_admin(&ops));
    assert_false(serve_is_admin(&bob));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_run_id_known_here_is_refused),
        cmocka_unit_test(the_intake_is_bounded),
        cmocka_unit_test(a_refused_claim_frees_its_id),
        cmocka_unit_test(an_unparsed_submission_holds_its_place),
        cmocka_unit_test(lookups_are_bounded_and_draining_refuses),
        cmocka_unit_test(who_sees_which_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
