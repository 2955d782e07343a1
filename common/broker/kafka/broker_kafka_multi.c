/* common/broker/kafka/broker_kafka_multi.c: results_many on Kafka, the
 * results of every run a serve instance drives through one consumer.
 *
 * The consumer (no group, nothing committed) is assigned the results
 * partitions of the runs asked for, each from the earliest cursor among
 * its runs; it is reassigned only when that set changes or a run needs to
 * go back (a run attached after the reader passed its cursor). Each message
 * moves the cursors of its partition's runs that were at or before it, so a
 * cursor always names the next offset that run has not seen; a message
 * keyed by one of the runs goes to that run, once per task id (a task redone
 * after a crash or rebalance posts twice: the first result wins, as in
 * results()). One caller thread at a time (serve's result reader). */
#include "broker_kafka.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct mpart {
    int32_t p;
    int64_t pos;                 /* next offset to read; -1: from the beginning */
};

struct kafka_multi {
    rd_kafka_t *rk;
    struct mpart *parts;         /* the current assignment */
    size_t nparts;
    json_t *seen;                /* run id -> {task id: true} */
};

static int64_t cursor_of(const struct sf_run_cursor *r)
{
    return r->cursor[0] ? strtoll(r->cursor, NULL, 10) : -1;
}

static void set_cursor(struct sf_run_cursor *r, int64_t off)
{
    snprintf(r->cursor, sizeof(r->cursor), "%lld", (long long)off);
}

static struct mpart *part_of(struct kafka_multi *km, int32_t p)
{
    for (size_t i = 0; i < km->nparts; i++)
        if (km->parts[i].p == p) return &km->parts[i];
    return NULL;
}

/* Assign the partitions the runs need, when that differs from now. */
static int assign(struct kafka_broker *kb, struct kafka_multi *km, const struct sf_run_cursor *runs,
                  const int32_t *rpart, size_t nruns, char *err, size_t errlen)
{
    struct mpart *want = sf_xcalloc(nruns, sizeof(*want));
    size_t nwant = 0;
    bool change = false;
    int rc = 0;
    for (size_t i = 0; i < nruns; i++) {
        int64_t c = cursor_of(&runs[i]);
        size_t k = 0;
        while (k < nwant && want[k].p != rpart[i]) k++;
        if (k == nwant) want[nwant++] = (struct mpart){ rpart[i], c };
        else if (c < want[k].pos) want[k].pos = c;
    }
    change = nwant != km->nparts;
    for (size_t k = 0; k < nwant; k++) {
        const struct mpart *cur = part_of(km, want[k].p);
        if (!cur || want[k].pos < cur->pos) change = true;
        else want[k].pos = cur->pos;           /* keep reading where we are */
    }
    if (!change) goto out;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)nwant);
    for (size_t k = 0; k < nwant; k++)
        rd_kafka_topic_partition_list_add(l, kb->t_results, want[k].p)->offset =
            want[k].pos < 0 ? RD_KAFKA_OFFSET_BEGINNING : want[k].pos;
    rd_kafka_resp_err_t e = rd_kafka_assign(km->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        sf_errf(err, errlen, "assign %s: %s", kb->t_results, rd_kafka_err2str(e));
        rc = sf_kafka_errno(e);
        goto out;
    }
    free(km->parts);
    km->parts = want;
    km->nparts = nwant;
    want = NULL;
out:
    free(want);
    return rc;
}

static char *task_id_of(const rd_kafka_message_t *m)
{
    char *tid = sf_kafka_header(m, SF_KAFKA_H_TASK_ID);
    if (!tid) {                                 /* produced by someone else: read the body */
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        tid = sf_xstrdup(json_string_value(json_object_get(j, "task_id")));
        json_decref(j);
    }
    return tid;
}

/* One message: advance cursors, hand out a result. 1 when one was taken. */
static int take(struct kafka_multi *km, const rd_kafka_message_t *m, struct sf_run_cursor *runs,
                const int32_t *rpart, size_t nruns, char **out, size_t *lens, size_t *which, size_t *n)
{
    struct mpart *mp = part_of(km, m->partition);
    bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    int taken = 0;
    if (m->err && !eof) return 0;
    int64_t next = eof ? m->offset : m->offset + 1;
    if (mp) mp->pos = next;
    for (size_t i = 0; i < nruns; i++) {
        if (rpart[i] != m->partition || cursor_of(&runs[i]) > m->offset) continue;
        bool mine = !eof && m->payload && m->key && m->key_len == strlen(runs[i].run_id) &&
                    !memcmp(m->key, runs[i].run_id, m->key_len);
        set_cursor(&runs[i], next);
        if (!mine) continue;
        char *tid = task_id_of(m);
        json_t *seen = json_object_get(km->seen, runs[i].run_id);
        if (!seen) json_object_set_new(km->seen, runs[i].run_id, seen = json_object());
        bool dup = tid && json_object_get(seen, tid);
        if (tid && !dup) json_object_set_new(seen, tid, json_true());
        free(tid);
        if (dup) continue;
        which[*n] = i;
        lens[*n] = m->len;
        out[(*n)++] = sf_xstrndup(m->payload, m->len);
        taken = 1;
    }
    return taken;
}

int sf_kafka_results_many(struct sf_broker *b, struct sf_run_cursor *runs, size_t nruns, char **out,
                          size_t *lens, size_t *which, size_t max, int block_ms, size_t *n,
                          char *err, size_t errlen)
{
    struct kafka_broker *kb = KB(b);
    struct kafka_multi *km = kb->multi;
    int rc;
    *n = 0;
    if (!nruns) {
        sf_sleep_ms(block_ms > 0 ? block_ms : 0);
        return 0;
    }
    if ((rc = sf_kafka_ensure_topics(kb, err, errlen)) < 0) return rc;
    if (!km) {
        km = sf_xcalloc(1, sizeof(*km));
        if (!(km->rk = sf_kafka_client(kb, KAFKA_READER, NULL, err, errlen))) {
            free(km);
            return -EINVAL;
        }
        km->seen = json_object();
        kb->multi = km;
    }
    pthread_mutex_lock(&kb->mu);
    int nparts = kb->n_results_parts > 0 ? kb->n_results_parts : 1;
    pthread_mutex_unlock(&kb->mu);
    int32_t *rpart = sf_xcalloc(nruns, sizeof(*rpart));
    for (size_t i = 0; i < nruns; i++) rpart[i] = sf_kafka_partition_for(runs[i].run_id, nparts);
    if ((rc = assign(kb, km, runs, rpart, nruns, err, errlen)) < 0) goto out;
    int64_t until = sf_now_ms() + (block_ms > 0 ? block_ms : 0);
    while (*n < max) {
        int64_t left = until - sf_now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(km->rk, *n || left <= 0 ? 0 : (int)left);
        if (!m) break;
        take(km, m, runs, rpart, nruns, out, lens, which, n);
        rd_kafka_message_destroy(m);
    }
    /* Forget the de-duplication sets of runs no longer asked for. */
    const char *id;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(km->seen, tmp, id, v) {
        size_t i = 0;
        while (i < nruns && strcmp(runs[i].run_id, id)) i++;
        if (i == nruns) json_object_del(km->seen, id);
    }
out:
    free(rpart);
    return rc;
}

void sf_kafka_multi_close(struct kafka_broker *kb)
{
    struct kafka_multi *km = kb->multi;
    if (!km) return;
    rd_kafka_consumer_close(km->rk);
    rd_kafka_destroy(km->rk);
    free(km->parts);
    json_decref(km->seen);
    free(km);
    kb->multi = NULL;
}
