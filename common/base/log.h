/* common/base/log.h: one line per event on stderr, text (default) or JSON, with
 * run_id and task_id where they apply. The level is checked before
 * formatting. Secrets never reach a log line: URLs pass through
 * sf_redact_url first.
 * A line cannot be forged by what it quotes: in text format every control
 * character of the ids and the message (a newline in a run id from the
 * wire, an agent's output in an error) is escaped (\n, \r, \t, \xHH), and
 * so are the UTF-8 C1 controls and U+2028/U+2029 (\uHHHH), which some
 * readers take as line breaks; JSON lines are ASCII, with those escaped. Text an agent wrote is logged only at debug
 * level and only through sf_log_excerpt (escaped and cut).
 * Library code logs through the struct sf_log it was given (or returns an
 * error message); the only direct writes to stderr are last words before
 * abort() (out of memory, a thread stuck in a sandbox's network namespace).
 * Thread: sf_log_event may be called from any thread (one write(2) per line,
 * so lines do not interleave). The struct is set up once, before threads. */
#ifndef SF_LOG_H
#define SF_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum sf_log_level { SF_LOG_DEBUG = 0, SF_LOG_INFO, SF_LOG_WARN, SF_LOG_ERROR };
enum sf_log_format { SF_LOG_TEXT = 0, SF_LOG_JSON };

struct sf_log {
    enum sf_log_level level;
    enum sf_log_format format;
    const char *component;     /* "coordinator", "worker" */
    int fd;                    /* default 2 */
};

void sf_log_init(struct sf_log *lg, const char *component);
/* "text"/"json" and "debug"/"info"/"warn"/"error"; -EINVAL otherwise. */
int sf_log_set_format(struct sf_log *lg, const char *name);
int sf_log_set_level(struct sf_log *lg, const char *name);

void sf_log_event(const struct sf_log *lg, enum sf_log_level lv, const char *run_id,
                  const char *task_id, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define SF_LOG(lg, lv, run, task, ...)                                          \
    do {                                                                        \
        const struct sf_log *lg_ = (lg);                                        \
        if (lg_ && (lv) >= lg_->level) sf_log_event(lg_, (lv), (run), (task), __VA_ARGS__); \
    } while (0)
#define SF_LOGI(lg, ...) SF_LOG(lg, SF_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define SF_LOGW(lg, ...) SF_LOG(lg, SF_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define SF_LOGE(lg, ...) SF_LOG(lg, SF_LOG_ERROR, NULL, NULL, __VA_ARGS__)
#define SF_LOGD(lg, ...) SF_LOG(lg, SF_LOG_DEBUG, NULL, NULL, __VA_ARGS__)

/* Text from an agent or the wire, fit for a log line: control characters
 * and invalid bytes escaped (\n, \xHH), cut after max bytes of input with
 * "... (N bytes)". Writes into dst (always terminated) and returns it. */
char *sf_log_excerpt(char *dst, size_t dstlen, const char *s, size_t len, size_t max);
#define SF_LOG_EXCERPT_MAX 200

/* Copy of 'url' with any password replaced by "***"
 * ("redis://u:secret@h:6379" -> "redis://u:***@h:6379"). malloc'd. */
char *sf_redact_url(const char *url);

#endif
