/* common/base/metrics.c: see metrics.h. Families hold series in creation order;
 * rendering walks them under the registry mutex while updates go on with
 * relaxed atomics (a scrape sees each number as of some instant). */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind { K_COUNTER, K_GAUGE, K_HIST };

static const double default_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                          5, 10, 30, 60, 300 };

struct series {
    char *labels;                  /* may be NULL */
    _Atomic uint64_t u;            /* counter value, or histogram count */
    _Atomic int64_t i;             /* gauge value */
    _Atomic uint64_t sum_us;       /* histogram sum in microseconds */
    _Atomic uint64_t *buckets;     /* histogram bucket counts (non-cumulative) */
    struct family *fam;
    struct series *next;
};

struct family {
    char *name, *help;
    enum kind kind;
    double *bounds;
    int nbounds;
    struct series *series, **tail;
    struct family *next;
};

struct sf_metrics {
    pthread_mutex_t mu;
    struct family *fams, **tail;
    int64_t start_s;
};

struct sf_metrics *sf_metrics_new(void)
{
    struct sf_metrics *m = sf_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->tail = &m->fams;
    m->start_s = sf_wall_ms() / 1000;
    return m;
}

void sf_metrics_free(struct sf_metrics *m)
{
    if (!m) return;
    for (struct family *f = m->fams, *fn; f; f = fn) {
        fn = f->next;
        for (struct series *s = f->series, *sn; s; s = sn) {
            sn = s->next;
            free(s->labels);
            free((void *)s->buckets);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static struct series *get(struct sf_metrics *m, const char *name, const char *help,
                          const char *labels, enum kind kind, const double *b, int nb)
{
    struct family *f;
    struct series *s;
    pthread_mutex_lock(&m->mu);
    for (f = m->fams; f; f = f->next)
        if (!strcmp(f->name, name)) break;
    if (!f) {
        f = sf_xcalloc(1, sizeof(*f));
        f->name = sf_xstrdup(name);
        f->help = sf_xstrdup(help ? help : name);
        f->kind = kind;
        f->tail = &f->series;
        if (kind == K_HIST) {
            if (!b) {
                b = default_buckets;
                nb = (int)(sizeof(default_buckets) / sizeof(default_buckets[0]));
            }
            f->bounds = sf_xcalloc((size_t)nb, sizeof(double));
            memcpy(f->bounds, b, (size_t)nb * sizeof(double));
            f->nbounds = nb;
        }
        *m->tail = f;
        m->tail = &f->next;
    }
    for (s = f->series; s; s = s->next)
        if ((!s->labels && !labels) || (s->labels && labels && !strcmp(s->labels, labels))) break;
    if (!s) {
        s = sf_xcalloc(1, sizeof(*s));
        s->labels = labels ? sf_xstrdup(labels) : NULL;
        s->fam = f;
        if (f->kind == K_HIST) s->buckets = sf_xcalloc((size_t)f->nbounds + 1, sizeof(uint64_t));
        *f->tail = s;
        f->tail = &s->next;
    }
    pthread_mutex_unlock(&m->mu);
    return s;
}

struct sf_counter *sf_metrics_counter(struct sf_metrics *m, const char *name, const char *help,
                                      const char *labels)
{
    return (struct sf_counter *)get(m, name, help, labels, K_COUNTER, NULL, 0);
}

struct sf_gauge *sf_metrics_gauge(struct sf_metrics *m, const char *name, const char *help,
                                  const char *labels)
{
    return (struct sf_gauge *)get(m, name, help, labels, K_GAUGE, NULL, 0);
}

struct sf_hist *sf_metrics_hist(struct sf_metrics *m, const char *name, const char *help,
                                const char *labels, const double *buckets, int nbuckets)
{
    return (struct sf_hist *)get(m, name, help, labels, K_HIST, buckets, nbuckets);
}

void sf_counter_add(struct sf_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&((struct series *)c)->u, n, memory_order_relaxed);
}
void sf_counter_inc(struct sf_counter *c) { sf_counter_add(c, 1); }
uint64_t sf_counter_get(const struct sf_counter *c)
{
    return atomic_load_explicit(&((struct series *)c)->u, memory_order_relaxed);
}
void sf_gauge_set(struct sf_gauge *g, int64_t v)
{
    atomic_store_explicit(&((struct series *)g)->i, v, memory_order_relaxed);
}
void sf_gauge_add(struct sf_gauge *g, int64_t d)
{
    atomic_fetch_add_explicit(&((struct series *)g)->i, d, memory_order_relaxed);
}
int64_t sf_gauge_get(const struct sf_gauge *g)
{
    return atomic_load_explicit(&((struct series *)g)->i, memory_order_relaxed);
}

void sf_hist_observe(struct sf_hist *h, double seconds)
{
    struct series *s = (struct series *)h;
    int i = 0;
    if (seconds < 0) seconds = 0;
    while (i < s->fam->nbounds && seconds > s->fam->bounds[i]) i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&s->u, 1, memory_order_relaxed);
}

static void series_name(struct sf_buf *out, const char *name, const char *suffix,
                        const char *labels, const char *extra)
{
    sf_buf_appendf(out, "%s%s", name, suffix);
    if (labels || extra)
        sf_buf_appendf(out, "{%s%s%s}", labels ? labels : "", labels && extra ? "," : "",
                       extra ? extra : "");
}

static int64_t rss_bytes(void)
{
    char buf[128];
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return 0;
    if (fgets(buf, sizeof(buf), f)) sscanf(buf, "%ld %ld", &pages, &resident);
    fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

void sf_metrics_render(struct sf_metrics *m, struct sf_buf *out)
{
    static const char *const type[] = { "counter", "gauge", "histogram" };
    pthread_mutex_lock(&m->mu);
    for (struct family *f = m->fams; f; f = f->next) {
        sf_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type[f->kind]);
        for (struct series *s = f->series; s; s = s->next) {
            if (f->kind == K_COUNTER) {
                series_name(out, f->name, "", s->labels, NULL);
                sf_buf_appendf(out, " %llu\n", (unsigned long long)atomic_load(&s->u));
            } else if (f->kind == K_GAUGE) {
                series_name(out, f->name, "", s->labels, NULL);
                sf_buf_appendf(out, " %lld\n", (long long)atomic_load(&s->i));
            } else {
                uint64_t cum = 0;
                char le[64];
                for (int i = 0; i <= f->nbounds; i++) {
                    cum += atomic_load(&s->buckets[i]);
                    if (i < f->nbounds) snprintf(le, sizeof(le), "le=\"%g\"", f->bounds[i]);
                    else snprintf(le, sizeof(le), "le=\"+Inf\"");
                    series_name(out, f->name, "_bucket", s->labels, le);
                    sf_buf_appendf(out, " %llu\n", (unsigned long long)cum);
                }
                series_name(out, f->name, "_sum", s->labels, NULL);
                sf_buf_appendf(out, " %.6f\n", (double)atomic_load(&s->sum_us) / 1e6);
                series_name(out, f->name, "_count", s->labels, NULL);
                sf_buf_appendf(out, " %llu\n", (unsigned long long)cum);
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    sf_buf_appendf(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                        "# TYPE process_resident_memory_bytes gauge\n"
                        "process_resident_memory_bytes %lld\n", (long long)rss_bytes());
    sf_buf_appendf(out, "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %lld\n", (long long)m->start_s);
}
