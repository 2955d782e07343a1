/* tests/unit/test_e2b_connect.c: the Connect envelope codec and envd process
 * events — frames split and merged across reads, the exact bytes envd sends
 * (from the protocol notes), zero values left out, trailers with errors,
 * and hostile input (oversized lengths, compressed flag, bad base64). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "e2b_connect.h"

static void frame_bytes_match_connect_spec(void **state)
{
    (void)state;
    struct sf_buf b = { 0 };
    sf_e2b_put_trailer(&b, NULL, NULL);
    static const unsigned char want[] = { 0x02, 0, 0, 0, 2, '{', '}' };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    sf_buf_free(&b);

    /* The 114-byte StartRequest from the notes gets prefix 00 00 00 00 72. */
    const char *req = "{\"process\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\",\"echo hi\"],"
                      "\"envs\":{\"FOO\":\"bar\"},\"cwd\":\"/home/user\"},\"stdin\":false}";
    assert_int_equal(strlen(req), 114);
    sf_e2b_frame(&b, 0, req, strlen(req));
    static const unsigned char pre[] = { 0, 0, 0, 0, 0x72 };
    assert_memory_equal(b.data, pre, 5);
    sf_buf_free(&b);
}

/* Encode a whole run, then feed it one byte at a time and all at once. */
static void build_stream(struct sf_buf *b)
{
    sf_e2b_put_start(b, 1234);
    sf_e2b_put_data(b, SF_E2B_STDOUT, "hi\n", 3);
    sf_e2b_put_keepalive(b);
    sf_e2b_put_data(b, SF_E2B_STDERR, "oops", 4);
    sf_e2b_put_end(b, 3, true, "exit status 3", "exit status 3");
    sf_e2b_put_trailer(b, NULL, NULL);
}

static void check_stream(const char *data, size_t len, size_t step)
{
    struct sf_e2b_reader r = { 0 };
    struct sf_buf out = { 0 }, err = { 0 };
    int kinds = 0, frames = 0, end_code = -99;
    bool trailer = false;
    uint32_t pid = 0;
    char why[256];
    for (size_t off = 0; off < len; off += step) {
        sf_e2b_reader_feed(&r, data + off, off + step <= len ? step : len - off);
        uint8_t flags;
        const char *msg;
        size_t n;
        int rc;
        while ((rc = sf_e2b_reader_next(&r, &flags, &msg, &n)) == 1) {
            frames++;
            if (flags & SF_E2B_FLAG_END) {
                char code[64], text[128];
                assert_int_equal(sf_e2b_end_parse(msg, n, code, sizeof(code), text, sizeof(text)), 0);
                trailer = true;
                continue;
            }
            struct sf_e2b_event ev;
            assert_int_equal(sf_e2b_event_parse(msg, n, &ev, why, sizeof(why)), 0);
            kinds |= 1 << ev.kind;
            if (ev.kind == SF_E2B_EV_START) pid = ev.pid;
            if (ev.kind == SF_E2B_EV_DATA)
                sf_buf_append(ev.stream == SF_E2B_STDOUT ? &out : &err, ev.data, ev.len);
            if (ev.kind == SF_E2B_EV_END) {
                end_code = ev.exit_code;
                assert_true(ev.exited);
                assert_string_equal(ev.status, "exit status 3");
                assert_string_equal(ev.error, "exit status 3");
            }
            sf_e2b_event_clear(&ev);
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(frames, 6);
    assert_true(trailer);
    assert_int_equal(pid, 1234);
    assert_int_equal(end_code, 3);
    assert_int_equal(kinds, (1 << SF_E2B_EV_START) | (1 << SF_E2B_EV_DATA) | (1 << SF_E2B_EV_END) |
                            (1 << SF_E2B_EV_KEEPALIVE));
    assert_string_equal(out.data, "hi\n");
    assert_string_equal(err.data, "oops");
    assert_int_equal(sf_e2b_reader_pending(&r), 0);
    sf_buf_free(&out);
    sf_buf_free(&err);
    sf_e2b_reader_free(&r);
}

static void stream_survives_any_split(void **state)
{
    (void)state;
    struct sf_buf b = { 0 };
    build_stream(&b);
    check_stream(b.data, b.len, 1);
    check_stream(b.data, b.len, 7);
    check_stream(b.data, b.len, b.len);
    sf_buf_free(&b);
}

static void end_event_zero_values_are_omitted(void **state)
{
    (void)state;
    struct sf_buf b = { 0 };
    sf_e2b_put_end(&b, 0, true, "exit status 0", NULL);
    /* As envd: no exitCode and no error when it succeeded. */
    assert_null(strstr(b.data + 5, "exitCode"));
    assert_null(strstr(b.data + 5, "\"error\""));
    struct sf_e2b_event ev;
    char why[128];
    assert_int_equal(sf_e2b_event_parse(b.data + 5, b.len - 5, &ev, why, sizeof(why)), 0);
    assert_int_equal(ev.kind, SF_E2B_EV_END);
    assert_int_equal(ev.exit_code, 0);
    sf_buf_free(&b);

    /* Killed: exitCode -1, exited absent (false), as Go reports it. */
    const char *killed = "{\"event\":{\"end\":{\"exitCode\":-1,\"status\":\"signal: killed\","
                         "\"error\":\"signal: killed\"}}}";
    assert_int_equal(sf_e2b_event_parse(killed, strlen(killed), &ev, why, sizeof(why)), 0);
    assert_int_equal(ev.exit_code, -1);
    assert_false(ev.exited);
    assert_string_equal(ev.status, "signal: killed");
    /* snake_case and string numbers are accepted too (protojson input). */
    const char *snake = "{\"event\":{\"end\":{\"exit_code\":\"7\",\"exited\":true}}}";
    assert_int_equal(sf_e2b_event_parse(snake, strlen(snake), &ev, why, sizeof(why)), 0);
    assert_int_equal(ev.exit_code, 7);
}

static void trailer_error_is_reported(void **state)
{
    (void)state;
    struct sf_buf b = { 0 };
    char code[64], text[128];
    sf_e2b_put_trailer(&b, "invalid_argument", "cwd '/nope' does not exist");
    assert_int_equal(b.data[0], SF_E2B_FLAG_END);
    assert_int_equal(sf_e2b_end_parse(b.data + 5, b.len - 5, code, sizeof(code), text, sizeof(text)),
                     -EIO);
    assert_string_equal(code, "invalid_argument");
    assert_string_equal(text, "cwd '/nope' does not exist");
    assert_int_equal(sf_e2b_end_parse("nope", 4, code, sizeof(code), text, sizeof(text)), -EPROTO);
    assert_int_equal(sf_e2b_end_parse("{\"metadata\":{}}", 15, code, sizeof(code), text,
                                      sizeof(text)), 0);
    sf_buf_free(&b);
}

static void hostile_frames_are_refused(void **state)
{
    (void)state;
    struct sf_e2b_reader r = { .max_frame = 1024 };
    uint8_t flags;
    const char *msg;
    size_t n;
    static const unsigned char huge[] = { 0, 0xff, 0xff, 0xff, 0xff };
    sf_e2b_reader_feed(&r, huge, sizeof(huge));
    assert_int_equal(sf_e2b_reader_next(&r, &flags, &msg, &n), -EPROTO);
    sf_e2b_reader_free(&r);

    static const unsigned char gz[] = { 1, 0, 0, 0, 2, '{', '}' };
    sf_e2b_reader_feed(&r, gz, sizeof(gz));
    assert_int_equal(sf_e2b_reader_next(&r, &flags, &msg, &n), -EPROTO);
    sf_e2b_reader_free(&r);

    static const unsigned char partial[] = { 0, 0, 0, 0, 9, '{' };
    sf_e2b_reader_feed(&r, partial, sizeof(partial));
    assert_int_equal(sf_e2b_reader_next(&r, &flags, &msg, &n), 0);
    assert_int_equal(sf_e2b_reader_pending(&r), sizeof(partial));
    sf_e2b_reader_free(&r);

    struct sf_e2b_event ev;
    char why[128];
    const char *bad[] = {
        "{\"event\":{\"data\":{\"stdout\":\"!!!!\"}}}",
        "{\"event\":{\"start\":{\"pid\":-4}}}",
        "{\"event\":{\"start\":{\"pid\":\"x\"}}}",
        "{\"event\":{\"end\":{\"exited\":\"yes\"}}}",
        "{\"event\":{\"teleport\":{}}}",
        "{\"event\":7}",
        "[1,2]",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sf_e2b_event_parse(bad[i], strlen(bad[i]), &ev, why, sizeof(why)), -EPROTO);
}

static void base64_accepts_protojson_forms(void **state)
{
    (void)state;
    char *out;
    size_t n;
    const char *forms[] = { "aGk+Pz8=", "aGk+Pz8", "aGk-Pz8" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(sf_e2b_b64_decode(forms[i], strlen(forms[i]), &out, &n), 0);
        assert_int_equal(n, 5);
        assert_memory_equal(out, "hi>??", 5);
        free(out);
    }
    assert_int_equal(sf_e2b_b64_decode("a", 1, &out, &n), -EINVAL);
    assert_int_equal(sf_e2b_b64_decode("a b=", 4, &out, &n), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_bytes_match_connect_spec),
        cmocka_unit_test(stream_survives_any_split),
        cmocka_unit_test(end_event_zero_values_are_omitted),
        cmocka_unit_test(trailer_error_is_reported),
        cmocka_unit_test(hostile_frames_are_refused),
        cmocka_unit_test(base64_accepts_protojson_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
