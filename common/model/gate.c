/* common/model/gate.c: in-process gates (see gate.h). A handful of keys per
 * run, so keys live in small arrays searched linearly; the tasks holding a
 * slot are a JSON object task id -> key. */
#include "gate.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct conc_key {
    char key[SF_GATE_KEY_MAX + 1];
    int64_t running;
};

struct bucket {
    char key[SF_GATE_KEY_MAX + 1];
    double tokens;
    int64_t at_ms;        /* when tokens was last brought up to date */
};

struct sf_gate {
    struct conc_key *conc;
    size_t n_conc;
    struct bucket *buckets;
    size_t n_buckets;
    json_t *holders;      /* task id -> concurrency key */
};

struct sf_gate *sf_gate_new(void)
{
    struct sf_gate *g = sf_xcalloc(1, sizeof(*g));
    g->holders = json_object();
    return g;
}

void sf_gate_free(struct sf_gate *g)
{
    if (!g) return;
    free(g->conc);
    free(g->buckets);
    json_decref(g->holders);
    free(g);
}

static struct conc_key *conc_get(struct sf_gate *g, const char *key)
{
    for (size_t i = 0; i < g->n_conc; i++)
        if (!strcmp(g->conc[i].key, key)) return &g->conc[i];
    g->conc = sf_xrealloc(g->conc, (g->n_conc + 1) * sizeof(*g->conc));
    struct conc_key *c = &g->conc[g->n_conc++];
    memset(c, 0, sizeof(*c));
    sf_strlcpy(c->key, key, sizeof(c->key));
    return c;
}

/* The bucket of r->key, refilled up to now. */
static struct bucket *bucket_get(struct sf_gate *g, const struct sf_rate *r, int64_t now)
{
    struct bucket *b = NULL;
    for (size_t i = 0; i < g->n_buckets && !b; i++)
        if (!strcmp(g->buckets[i].key, r->key)) b = &g->buckets[i];
    if (!b) {
        g->buckets = sf_xrealloc(g->buckets, (g->n_buckets + 1) * sizeof(*g->buckets));
        b = &g->buckets[g->n_buckets++];
        sf_strlcpy(b->key, r->key, sizeof(b->key));
        b->tokens = (double)r->burst;
        b->at_ms = now;
    }
    if (now > b->at_ms) {
        b->tokens += (double)(now - b->at_ms) * r->per_s / 1000.0;
        b->at_ms = now;
    }
    if (b->tokens > (double)r->burst) b->tokens = (double)r->burst;
    return b;
}

bool sf_gate_admit(struct sf_gate *g, const struct sf_concurrency *c, const struct sf_rate *r,
                   const char *task_id, int64_t now, int64_t *retry_at)
{
    struct conc_key *ck = c && c->key[0] ? conc_get(g, c->key) : NULL;
    struct bucket *b = r && r->key[0] ? bucket_get(g, r, now) : NULL;
    *retry_at = -1;
    if (ck && ck->running >= c->limit) return false;
    if (b && b->tokens < 1.0) {
        *retry_at = now + (int64_t)ceil((1.0 - b->tokens) * 1000.0 / r->per_s);
        return false;
    }
    if (b) b->tokens -= 1.0;
    if (ck) {
        ck->running++;
        json_object_set_new(g->holders, task_id, json_string(ck->key));
    }
    return true;
}

void sf_gate_release(struct sf_gate *g, const char *task_id)
{
    json_t *k = task_id ? json_object_get(g->holders, task_id) : NULL;
    if (!k) return;
    struct conc_key *ck = conc_get(g, json_string_value(k));
    if (ck->running > 0) ck->running--;
    json_object_del(g->holders, task_id);
}

int64_t sf_gate_running(const struct sf_gate *g, const char *key)
{
    for (size_t i = 0; i < g->n_conc; i++)
        if (!strcmp(g->conc[i].key, key)) return g->conc[i].running;
    return 0;
}
