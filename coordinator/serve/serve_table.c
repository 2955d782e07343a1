/* coordinator/serve/serve_table.c: the run table and intake queue that the loop
 * thread shares with the HTTP and submissions threads (serve.h). The loop
 * publishes each run as ready-made JSON text, so readers copy strings under
 * the mutex and never touch the loop's own objects. Finished runs beyond
 * the newest SERVE_KEEP_FINISHED are forgotten here (their documents stay
 * in the broker). */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SERVE_KEEP_FINISHED 200

static struct serve_entry *find(struct serve_table *tab, const char *run_id)
{
    for (size_t i = 0; i < tab->n; i++)
        if (!strcmp(tab->v[i].run_id, run_id)) return &tab->v[i];
    return NULL;
}

static void forget_old(struct serve_table *tab)
{
    size_t finished = 0;
    for (size_t i = tab->n; i-- > 0;) {
        if (!tab->v[i].doc || ++finished <= SERVE_KEEP_FINISHED) continue;
        free(tab->v[i].summary);
        free(tab->v[i].doc);
        memmove(&tab->v[i], &tab->v[i + 1], (tab->n - i - 1) * sizeof(*tab->v));
        tab->n--;
    }
}

static struct serve_entry *add(struct serve_table *tab, const char *run_id)
{
    if (tab->n == tab->cap) tab->v = sf_xrealloc(tab->v, (tab->cap = tab->cap ? 2 * tab->cap : 16) * sizeof(*tab->v));
    struct serve_entry *e = &tab->v[tab->n++];
    memset(e, 0, sizeof(*e));
    sf_strlcpy(e->run_id, run_id, sizeof(e->run_id));
    e->created_ms = sf_wall_ms();
    return e;
}

void serve_table_put(struct serve_table *tab, const char *run_id, char *summary, char *doc)
{
    pthread_mutex_lock(&tab->mu);
    struct serve_entry *e = find(tab, run_id);
    if (!e) e = add(tab, run_id);
    free(e->summary);
    e->summary = summary;
    if (doc) {
        free(e->doc);
        e->doc = doc;
    }
    forget_old(tab);
    pthread_mutex_unlock(&tab->mu);
}

int serve_table_submit(struct serve_table *tab, struct serve_pending *p)
{
    int rc = 0;
    uint64_t one = 1;
    pthread_mutex_lock(&tab->mu);
    if (tab->closed) {
        rc = -ESHUTDOWN;
    } else if (find(tab, p->run_id)) {
        rc = -EEXIST;
    } else {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:[]}", "run_id", p->run_id, "workflow",
                              p->sub.wf->name, "state", "queued", "created_ms", (json_int_t)sf_wall_ms(),
                              "steps");
        struct serve_entry *e = add(tab, p->run_id);
        e->summary = json_dumps(j, JSON_COMPACT);
        sf_strlcpy(e->owner, p->owner, sizeof(e->owner));
        json_decref(j);
        p->next = NULL;
        *tab->tail = p;
        tab->tail = &p->next;
    }
    pthread_mutex_unlock(&tab->mu);
    if (rc == 0 && write(tab->efd, &one, sizeof(one)) < 0) { /* counter full: already readable */ }
    return rc;
}

struct serve_pending *serve_table_take(struct serve_table *tab)
{
    uint64_t v;
    pthread_mutex_lock(&tab->mu);
    struct serve_pending *p = tab->head;
    if (p) {
        tab->head = p->next;
        if (!tab->head) tab->tail = &tab->head;
    } else if (read(tab->efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing signalled */
    }
    pthread_mutex_unlock(&tab->mu);
    return p;
}

void serve_new_run_id(char *buf, size_t n)
{
    char rnd[9];
    sf_random_hex(rnd, sizeof(rnd), 8);
    snprintf(buf, n, "%llx-%s", (unsigned long long)(sf_wall_ms() / 1000), rnd);
}
