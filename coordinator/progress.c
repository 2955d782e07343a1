/* coordinator/progress.c: progress of a run on stderr. On a terminal, one
 * line redrawn in place (steps, tasks, rate, ETA); otherwise nothing here —
 * plain per-step lines come from the log. */
#include "coord.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct coord_progress {
    bool tty;
    int fd;
    int64_t t0, last;
};

struct coord_progress *coord_progress_new(bool tty, int fd)
{
    struct coord_progress *pg = sf_xcalloc(1, sizeof(*pg));
    pg->tty = tty;
    pg->fd = fd;
    pg->t0 = sf_now_ms();
    return pg;
}

void coord_progress_update(struct coord_progress *pg, const struct sf_sched_progress *p, bool final)
{
    if (!pg || !pg->tty) return;
    int64_t now = sf_now_ms();
    if (!final && now - pg->last < 100) return;        /* at most 10 redraws a second */
    pg->last = now;
    double secs = (double)(now - pg->t0) / 1000.0;
    double rate = secs > 0 ? (double)p->tasks_done / secs : 0;
    int width = 24, fill = p->tasks_known ? (int)(width * p->tasks_done / p->tasks_known) : 0;
    char bar[32], eta[32] = "";
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    if (rate > 0 && p->tasks_known > p->tasks_done && !final)
        snprintf(eta, sizeof(eta), " ETA %.0fs", (double)(p->tasks_known - p->tasks_done) / rate);
    char line[256];
    int n = snprintf(line, sizeof(line), "\r[%s] steps %zu/%zu  tasks %lld/%lld  %.1f/s%s%s\033[K%s",
                     bar, p->steps_done, p->steps_total, (long long)p->tasks_done,
                     (long long)p->tasks_known, rate, eta,
                     p->retries ? " (retries)" : "", final ? "\n" : "");
    if (n > 0) (void)sf_write_all(pg->fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void coord_progress_free(struct coord_progress *pg) { free(pg); }
