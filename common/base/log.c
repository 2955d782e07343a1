/* common/base/log.c: see log.h. */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void sf_log_init(struct sf_log *lg, const char *component)
{
    lg->level = SF_LOG_INFO;
    lg->format = SF_LOG_TEXT;
    lg->component = component;
    lg->fd = 2;
}

int sf_log_set_format(struct sf_log *lg, const char *name)
{
    if (!strcmp(name, "text")) lg->format = SF_LOG_TEXT;
    else if (!strcmp(name, "json")) lg->format = SF_LOG_JSON;
    else return -EINVAL;
    return 0;
}

int sf_log_set_level(struct sf_log *lg, const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, level_names[i])) {
            lg->level = (enum sf_log_level)i;
            return 0;
        }
    return -EINVAL;
}

/* Append s with its control characters escaped (text lines only): C0 and
 * DEL, and in UTF-8 the C1 controls (U+0080..U+009F, NEL among them) and
 * the line and paragraph separators U+2028/U+2029, which Unicode-aware
 * readers (Python's str.splitlines, some viewers) take as line breaks. */
static void append_escaped(struct sf_buf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const unsigned char *u = (const unsigned char *)s + i;
        unsigned char c = u[0];
        if (c == '\n') sf_buf_append(b, "\\n", 2);
        else if (c == '\r') sf_buf_append(b, "\\r", 2);
        else if (c == '\t') sf_buf_append(b, "\\t", 2);
        else if (c < 0x20 || c == 0x7f) sf_buf_appendf(b, "\\x%02x", c);
        else if (c == 0xc2 && i + 1 < len && u[1] >= 0x80 && u[1] <= 0x9f) {
            sf_buf_appendf(b, "\\u%04x", u[1]);
            i++;
        } else if (c == 0xe2 && i + 2 < len && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9)) {
            sf_buf_appendf(b, "\\u%04x", 0x2000 + (u[2] - 0x80));
            i += 2;
        } else sf_buf_append(b, &s[i], 1);
    }
}

char *sf_log_excerpt(char *dst, size_t dstlen, const char *s, size_t len, size_t max)
{
    struct sf_buf b = {0};
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Bytes that are not printable ASCII are shown by value: no invalid
         * UTF-8 in a log line, nothing that a terminal interprets. */
        if (c >= 0x80) sf_buf_appendf(&b, "\\x%02x", c);
        else append_escaped(&b, &s[i], 1);
    }
    if (len > n) sf_buf_appendf(&b, "... (%zu bytes)", len);
    sf_strlcpy(dst, b.data ? b.data : "", dstlen);
    sf_buf_free(&b);
    return dst;
}

void sf_log_event(const struct sf_log *lg, enum sf_log_level lv, const char *run_id,
                  const char *task_id, const char *fmt, ...)
{
    char msg[2048], ts[80];
    struct timespec now;
    struct tm tm;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (now.tv_nsec / 1000000) % 1000);
    struct sf_buf line = {0};
    if (lg->format == SF_LOG_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[lv],
                              "component", lg->component ? lg->component : "sandfleet", "msg", msg);
        if (!o) o = json_pack("{s:s, s:s}", "ts", ts, "msg", "(message was not valid UTF-8)");
        if (run_id) json_object_set_new(o, "run_id", json_string(run_id));
        if (task_id) json_object_set_new(o, "task_id", json_string(task_id));
        /* ASCII only: U+2028 and friends escaped too (see append_escaped). */
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        sf_buf_appendf(&line, "%s\n", s ? s : "{}");
        free(s);
    } else {
        sf_buf_appendf(&line, "%s %-5s %s", ts, level_names[lv],
                       lg->component ? lg->component : "sandfleet");
        if (run_id) {
            sf_buf_append(&line, " run=", 5);
            append_escaped(&line, run_id, strlen(run_id));
        }
        if (task_id) {
            sf_buf_append(&line, " task=", 6);
            append_escaped(&line, task_id, strlen(task_id));
        }
        sf_buf_append(&line, " ", 1);
        append_escaped(&line, msg, strlen(msg));
        sf_buf_append(&line, "\n", 1);
    }
    (void)sf_write_all(lg->fd, line.data, line.len);
    sf_buf_free(&line);
}

char *sf_redact_url(const char *url)
{
    if (!url) return sf_xstrdup("");
    const char *scheme = strstr(url, "://");
    const char *start = scheme ? scheme + 3 : url;
    const char *slash = strchr(start, '/');
    const char *at = NULL;
    for (const char *p = start; *p && (!slash || p < slash); p++)
        if (*p == '@') at = p;
    if (!at) return sf_xstrdup(url);
    const char *colon = memchr(start, ':', (size_t)(at - start));
    struct sf_buf b = {0};
    if (colon) {
        sf_buf_append(&b, url, (size_t)(colon - url) + 1);
        sf_buf_append(&b, "***", 3);
    } else {
        /* "redis://secret@host": a bare userinfo is a password for Redis. */
        sf_buf_append(&b, url, (size_t)(start - url));
        sf_buf_append(&b, "***", 3);
    }
    sf_buf_append(&b, at, strlen(at));
    return sf_buf_steal(&b, NULL);
}
