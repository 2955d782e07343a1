/* common/broker/kafka/broker_kafka_track.c: which task offsets of which partition are in
 * flight, and how far each partition may be committed.
 *
 * Design. A worker runs several tasks of one partition at once and they end
 * in any order. Kafka keeps one committed offset per partition, so the
 * offset stored for commit is "the first offset not finished yet": the
 * contiguous finished prefix. Entries are kept sorted by offset (deliveries
 * arrive in order, so appending is the common case). Each assignment of a
 * partition gets a new epoch from one counter; a completion names the epoch
 * it was delivered under, so a late completion of a revoked partition can
 * never move the offsets of its next assignment. Pure bookkeeping, no I/O,
 * not thread-safe (the caller holds kafka_broker.tmu). */
#include "broker_kafka.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct track_entry {
    int64_t off;
    bool done;
};

struct track_part {
    bool assigned;
    uint32_t epoch;
    struct track_entry *v;
    size_t n, cap;
};

struct sf_kafka_track {
    struct track_part *parts;
    size_t n_parts;
    uint32_t next_epoch;
};

struct sf_kafka_track *sf_kafka_track_new(void)
{
    struct sf_kafka_track *t = sf_xcalloc(1, sizeof(*t));
    t->next_epoch = 1;
    return t;
}

void sf_kafka_track_free(struct sf_kafka_track *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_parts; i++) free(t->parts[i].v);
    free(t->parts);
    free(t);
}

static struct track_part *part(struct sf_kafka_track *t, int32_t p, bool grow)
{
    if (p < 0) return NULL;
    if ((size_t)p >= t->n_parts) {
        if (!grow) return NULL;
        size_t n = (size_t)p + 1;
        t->parts = sf_xrealloc(t->parts, n * sizeof(*t->parts));
        memset(t->parts + t->n_parts, 0, (n - t->n_parts) * sizeof(*t->parts));
        t->n_parts = n;
    }
    return &t->parts[p];
}

uint32_t sf_kafka_track_assign(struct sf_kafka_track *t, int32_t p)
{
    struct track_part *tp = part(t, p, true);
    tp->assigned = true;
    tp->n = 0;
    tp->epoch = t->next_epoch++;
    if (!t->next_epoch) t->next_epoch = 1;      /* 0 never names an assignment */
    return tp->epoch;
}

void sf_kafka_track_revoke(struct sf_kafka_track *t, int32_t p)
{
    struct track_part *tp = part(t, p, false);
    if (!tp) return;
    tp->assigned = false;
    tp->n = 0;
    tp->epoch = 0;
}

int sf_kafka_track_deliver(struct sf_kafka_track *t, int32_t p, int64_t off, uint32_t *epoch)
{
    struct track_part *tp = part(t, p, false);
    size_t i;
    if (!tp || !tp->assigned) return -ESTALE;
    *epoch = tp->epoch;
    /* Position of the first entry >= off (from the end: the usual append). */
    for (i = tp->n; i > 0 && tp->v[i - 1].off >= off; i--) {}
    if (i < tp->n && tp->v[i].off == off) {
        tp->v[i].done = false;                   /* delivered again (a rewind) */
        return 0;
    }
    if (tp->n == tp->cap) {
        tp->cap = tp->cap ? 2 * tp->cap : 16;
        tp->v = sf_xrealloc(tp->v, tp->cap * sizeof(*tp->v));
    }
    memmove(tp->v + i + 1, tp->v + i, (tp->n - i) * sizeof(*tp->v));
    tp->v[i] = (struct track_entry){ .off = off, .done = false };
    tp->n++;
    return 0;
}

int sf_kafka_track_finish(struct sf_kafka_track *t, int32_t p, uint32_t epoch, int64_t off,
                          int64_t *commit)
{
    struct track_part *tp = part(t, p, false);
    size_t i, k;
    if (!tp || !tp->assigned || tp->epoch != epoch) return -ESTALE;
    for (i = 0; i < tp->n && tp->v[i].off != off; i++) {}
    if (i == tp->n) return -ESTALE;
    tp->v[i].done = true;
    for (k = 0; k < tp->n && tp->v[k].done; k++) {}
    if (!k) return 0;
    *commit = tp->v[k - 1].off + 1;
    memmove(tp->v, tp->v + k, (tp->n - k) * sizeof(*tp->v));
    tp->n -= k;
    return 1;
}

bool sf_kafka_track_owned(const struct sf_kafka_track *t, int32_t p, uint32_t epoch)
{
    return p >= 0 && (size_t)p < t->n_parts && t->parts[p].assigned && t->parts[p].epoch == epoch;
}

size_t sf_kafka_track_inflight(const struct sf_kafka_track *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_parts; i++)
        for (size_t k = 0; k < t->parts[i].n; k++) n += !t->parts[i].v[k].done;
    return n;
}
