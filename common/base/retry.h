/* common/base/retry.h: the system's two waiting rules, each once.
 *
 * 1. sf_retry_delay_ms — the pause before the next attempt of a task that
 *    failed (the coordinator's scheduler and the workers use the same rule):
 *    base × 2^(attempt−1), capped, then "equal jitter": uniform in
 *    [d/2, d]. Never much sooner than the backoff asks, spread so that many
 *    tasks failing together do not come back together. (Not "full jitter",
 *    [0, d], which may retry at once.)
 *
 * 2. struct sf_retry — the loop around a call that failed transiently (a
 *    broker restarting): pause 100 ms, doubling to 2 s, until the call
 *    works, fails for good, a time budget is spent or the caller is
 *    stopping; the failure is logged at most once per 5 s:
 *
 *        struct sf_retry rt = SF_RETRY(lg, "publishing", 600000);
 *        while ((rc = call(..., err)) < 0 && sf_broker_transient(rc) &&
 *               sf_retry_wait(&rt, err)) {}
 *
 *    A loop that must not sleep (the worker's or serve's loop thread) calls
 *    sf_retry_later instead, which logs and checks the budget the same way
 *    and says how long to wait, and comes back to the call after that.
 * Thread: a struct sf_retry belongs to one thread; the functions are
 * reentrant. */
#ifndef SF_RETRY_H
#define SF_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

#define SF_RETRY_FIRST_MS 100
#define SF_RETRY_MAX_PAUSE_MS 2000
#define SF_RETRY_LOG_EVERY_MS 5000

/* Delay before attempt+1 after attempt (1-based) failed; base_ms <= 0 means
 * 500 ms, cap_ms <= 0 means 30 s. */
int64_t sf_retry_delay_ms(int64_t base_ms, int attempt, int64_t cap_ms);

struct sf_retry {
    const struct sf_log *lg;     /* may be NULL: no log lines */
    const char *what;            /* "publishing": logged as "<what>: <err> (retrying)" */
    const char *run_id, *task_id;   /* on the log line, may be NULL */
    int64_t budget_ms;           /* < 0: no limit */
    bool (*stop)(void *arg);     /* optional: true = give up now */
    void *stop_arg;
    /* state */
    int64_t start_ms, pause_ms, last_log_ms;
};

#define SF_RETRY(lg_, what_, budget_) \
    ((struct sf_retry){ .lg = (lg_), .what = (what_), .budget_ms = (budget_) })

/* After a failure (err: its message): log it (rate-limited), and unless the
 * budget is spent or stop() says so, sleep the next pause and return true
 * (try again). The budget counts from the first call. */
bool sf_retry_wait(struct sf_retry *r, const char *err);
/* sf_retry_wait without the sleep: false = give up, else *pause_ms is how
 * long to wait before the next try. */
bool sf_retry_later(struct sf_retry *r, const char *err, int64_t *pause_ms);
/* The next pause without sleeping (100, 200, ... 2000 ms). */
int64_t sf_retry_next_ms(struct sf_retry *r);
/* After a success: the next failure starts again at 100 ms. */
void sf_retry_reset(struct sf_retry *r);

void sf_sleep_ms(int64_t ms);

#endif
