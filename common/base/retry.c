/* common/base/retry.c: see retry.h. */
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

int64_t sf_retry_delay_ms(int64_t base_ms, int attempt, int64_t cap_ms)
{
    int64_t d = base_ms > 0 ? base_ms : 500, cap = cap_ms > 0 ? cap_ms : 30000;
    for (int a = 1; a < attempt && d < cap; a++) d *= 2;
    if (d > cap) d = cap;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
        rnd = (uint32_t)sf_now_us() * 2654435761u;
    return d / 2 + (int64_t)(rnd % (uint32_t)(d / 2 + 1));
}

void sf_sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

int64_t sf_retry_next_ms(struct sf_retry *r)
{
    int64_t p = r->pause_ms ? r->pause_ms : SF_RETRY_FIRST_MS;
    r->pause_ms = 2 * p < SF_RETRY_MAX_PAUSE_MS ? 2 * p : SF_RETRY_MAX_PAUSE_MS;
    return p;
}

void sf_retry_reset(struct sf_retry *r)
{
    r->pause_ms = 0;
    r->start_ms = 0;
}

bool sf_retry_later(struct sf_retry *r, const char *err, int64_t *pause_ms)
{
    int64_t now = sf_now_ms();
    if (!r->start_ms) r->start_ms = now;
    if (!r->last_log_ms || now - r->last_log_ms >= SF_RETRY_LOG_EVERY_MS) {
        r->last_log_ms = now;
        SF_LOG(r->lg, SF_LOG_WARN, r->run_id, r->task_id, "%s: %s (retrying)",
               r->what ? r->what : "broker call", err ? err : "");
    }
    if (r->stop && r->stop(r->stop_arg)) return false;
    int64_t left = r->budget_ms < 0 ? INT64_MAX : r->start_ms + r->budget_ms - now;
    if (left <= 0) return false;
    int64_t p = sf_retry_next_ms(r);
    *pause_ms = p < left ? p : left;
    return true;
}

bool sf_retry_wait(struct sf_retry *r, const char *err)
{
    int64_t p;
    if (!sf_retry_later(r, err, &p)) return false;
    sf_sleep_ms(p);
    return true;
}
