/* Log lines cannot be forged by what they quote (log.h): ids and messages
 * from the wire or an agent are escaped in text lines, valid JSON in JSON
 * lines; sf_log_excerpt escapes and cuts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "log.h"

/* One event logged into a memfd; the bytes written. */
static char *logged(enum sf_log_format fmt, const char *run, const char *task, const char *msg)
{
    static char buf[4096];
    struct sf_log lg;
    sf_log_init(&lg, "worker");
    lg.format = fmt;
    lg.fd = memfd_create("log", 0);
    assert_true(lg.fd >= 0);
    sf_log_event(&lg, SF_LOG_WARN, run, task, "%s", msg);
    ssize_t n = pread(lg.fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    close(lg.fd);
    return buf;
}

static size_t count(const char *s, char c)
{
    size_t k = 0;
    for (; *s; s++) k += *s == c;
    return k;
}

static void text_lines_escape_what_they_quote(void **state)
{
    (void)state;
    const char *forged = "x\n2026-01-01T00:00:00.000Z error worker run=admin all tasks deleted";
    char *line = logged(SF_LOG_TEXT, forged, "t\r1", "bad output: a\nb\tc\x1b[31m");
    assert_int_equal(count(line, '\n'), 1);                 /* exactly one line */
    assert_non_null(strstr(line, " run=x\\n2026-01-01T00:00:00.000Z error worker run=admin"));
    assert_non_null(strstr(line, " task=t\\r1 "));
    assert_non_null(strstr(line, "bad output: a\\nb\\tc\\x1b[31m\n"));
}

/* Lines that only Unicode-aware readers break (Python's str.splitlines,
 * some viewers): NEL (U+0085) and the separators U+2028/U+2029 in a field
 * from the wire (a JSON key quoted in a dead-letter reason). */
static void unicode_line_breaks_are_escaped(void **state)
{
    (void)state;
    const char *msg = "unknown limit 'a\xc2\x85" "b\xe2\x80\xa8" "c\xe2\x80\xa9" "d' \xc3\xa9";
    char *line = logged(SF_LOG_TEXT, NULL, NULL, msg);
    assert_non_null(strstr(line, "'a\\u0085b\\u2028c\\u2029d' \xc3\xa9\n"));   /* é stays */
    assert_null(strstr(line, "\xe2\x80\xa8"));
    line = logged(SF_LOG_JSON, NULL, NULL, msg);
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) assert_true(*p < 0x80);
    json_t *j = json_loads(line, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), msg);
    json_decref(j);
}

static void json_lines_stay_one_valid_object(void **state)
{
    (void)state;
    char *line = logged(SF_LOG_JSON, "r\n1", NULL, "a\nb");
    assert_int_equal(count(line, '\n'), 1);
    json_t *j = json_loads(line, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "run_id")), "r\n1");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "a\nb");
    json_decref(j);
}

static void excerpts_are_escaped_and_cut(void **state)
{
    (void)state;
    char out[128];
    assert_string_equal(sf_log_excerpt(out, sizeof(out), "ok\n\xff", 4, 200), "ok\\n\\xff");
    char big[300];
    memset(big, 'a', sizeof(big));
    sf_log_excerpt(out, sizeof(out), big, sizeof(big), 10);
    assert_string_equal(out, "aaaaaaaaaa... (300 bytes)");
    sf_log_excerpt(out, 8, big, sizeof(big), 100);          /* never past dst */
    assert_int_equal(strlen(out), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_lines_escape_what_they_quote),
        cmocka_unit_test(unicode_line_breaks_are_escaped),
        cmocka_unit_test(json_lines_stay_one_valid_object),
        cmocka_unit_test(excerpts_are_escaped_and_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
