/* common/base/metrics.h: a small Prometheus registry (text format 0.0.4) for the
 * daemons' /metrics: counters, gauges and histograms, each with an optional
 * fixed label set ("queue=\"default\""). Families are created at start-up;
 * updates are lock-free atomics, so pool threads, the loop and the HTTP
 * thread may all touch them.
 * Thread: sf_metrics_* creation and render take a mutex; sf_counter_*,
 * sf_gauge_*, sf_hist_observe may be called from any thread. */
#ifndef SF_METRICS_H
#define SF_METRICS_H

#include <stdint.h>

#include "util.h"

struct sf_metrics;
struct sf_counter;
struct sf_gauge;
struct sf_hist;

struct sf_metrics *sf_metrics_new(void);
void sf_metrics_free(struct sf_metrics *m);     /* NULL is a no-op */

/* Get or create the series name{labels}. 'labels' is the inside of the
 * braces, e.g. "queue=\"default\",status=\"ok\"", or NULL. help is the
 * family's HELP line (the first one given wins). Never NULL. */
struct sf_counter *sf_metrics_counter(struct sf_metrics *m, const char *name, const char *help,
                                      const char *labels);
struct sf_gauge *sf_metrics_gauge(struct sf_metrics *m, const char *name, const char *help,
                                  const char *labels);
/* Buckets are upper bounds in seconds, ascending; NULL = the default
 * latency buckets (5 ms .. 5 min). */
struct sf_hist *sf_metrics_hist(struct sf_metrics *m, const char *name, const char *help,
                                const char *labels, const double *buckets, int nbuckets);

void sf_counter_inc(struct sf_counter *c);
void sf_counter_add(struct sf_counter *c, uint64_t n);
uint64_t sf_counter_get(const struct sf_counter *c);
void sf_gauge_set(struct sf_gauge *g, int64_t v);
void sf_gauge_add(struct sf_gauge *g, int64_t d);
int64_t sf_gauge_get(const struct sf_gauge *g);
void sf_hist_observe(struct sf_hist *h, double seconds);

/* Append the exposition text of every family to 'out', plus
 * process_resident_memory_bytes and process_start_time_seconds. */
void sf_metrics_render(struct sf_metrics *m, struct sf_buf *out);

#endif
