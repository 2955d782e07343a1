/* coordinator/serve/serve_table.c: the run table and the intake the loop
 * thread shares with the HTTP and submissions threads (serve.h).
 * - The loop publishes each run as ready-made JSON text, so readers copy
 *   strings under the mutex and never touch the loop's own objects.
 *   Finished runs beyond the newest SERVE_KEEP_FINISHED are forgotten here
 *   (their documents stay in the broker).
 * - The intake is bounded: at most max_queued submissions accepted and not
 *   yet started (or refused), at most max_asks lookups and status requests
 *   in progress; beyond, the caller answers 429 at once instead of queueing
 *   without end. A run id this instance already holds is refused at once
 *   (409); one held elsewhere is refused by its claim in the broker. */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SERVE_KEEP_FINISHED 200

void serve_req_free(struct serve_req *r)
{
    if (!r) return;
    serve_submission_clear(&r->sub);
    free(r);
}

int serve_table_init(struct serve_table *tab, size_t max_queued, size_t max_asks)
{
    memset(tab, 0, sizeof(*tab));
    pthread_mutex_init(&tab->mu, NULL);
    tab->tail = &tab->head;
    tab->max_queued = max_queued;
    tab->max_asks = max_asks;
    tab->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return tab->efd < 0 ? -errno : 0;
}

void serve_table_destroy(struct serve_table *tab)
{
    for (struct serve_req *r; (r = serve_table_take(tab));) serve_req_free(r);
    for (size_t i = 0; i < tab->n; i++) {
        free(tab->v[i].summary);
        free(tab->v[i].doc);
    }
    free(tab->v);
    free(tab->status_doc);
    if (tab->efd >= 0) close(tab->efd);
    pthread_mutex_destroy(&tab->mu);
}

static struct serve_entry *find(struct serve_table *tab, const char *run_id)
{
    for (size_t i = 0; i < tab->n; i++)
        if (!strcmp(tab->v[i].run_id, run_id)) return &tab->v[i];
    return NULL;
}

static void drop(struct serve_table *tab, size_t i)
{
    free(tab->v[i].summary);
    free(tab->v[i].doc);
    memmove(&tab->v[i], &tab->v[i + 1], (tab->n - i - 1) * sizeof(*tab->v));
    tab->n--;
}

static void forget_old(struct serve_table *tab)
{
    size_t finished = 0;
    for (size_t i = tab->n; i-- > 0;)
        if (tab->v[i].doc && ++finished > SERVE_KEEP_FINISHED) drop(tab, i);
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

static void push(struct serve_table *tab, struct serve_req *r)
{
    uint64_t one = 1;
    r->next = NULL;
    *tab->tail = r;
    tab->tail = &r->next;
    if (write(tab->efd, &one, sizeof(one)) < 0) { /* counter full: already readable */ }
}

/* Holds mu. The run's entry, "queued". */
static int enter(struct serve_table *tab, const struct serve_req *r)
{
    if (tab->closed) return -ESHUTDOWN;
    if (find(tab, r->run_id)) return -EEXIST;
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:[]}", "run_id", r->run_id, "workflow", r->sub.wf->name,
                          "state", "queued", "created_ms", (json_int_t)sf_wall_ms(), "steps");
    struct serve_entry *e = add(tab, r->run_id);
    e->summary = json_dumps(j, JSON_COMPACT);
    sf_strlcpy(e->owner, r->owner, sizeof(e->owner));
    json_decref(j);
    return 0;
}

int serve_table_submit(struct serve_table *tab, struct serve_req *r)
{
    int rc;
    pthread_mutex_lock(&tab->mu);
    if (!tab->closed && !find(tab, r->run_id) && tab->queued >= tab->max_queued) {
        rc = -EAGAIN;
    } else if ((rc = enter(tab, r)) == 0) {
        tab->queued++;
        push(tab, r);
    }
    pthread_mutex_unlock(&tab->mu);
    return rc;
}

int serve_table_reserve(struct serve_table *tab, struct serve_req *r)
{
    int rc = 0;
    pthread_mutex_lock(&tab->mu);
    if (tab->closed) {
        rc = -ESHUTDOWN;
    } else if (tab->queued >= tab->max_queued) {
        rc = -EAGAIN;
    } else {
        tab->queued++;
        push(tab, r);
    }
    pthread_mutex_unlock(&tab->mu);
    return rc;
}

int serve_table_enter(struct serve_table *tab, struct serve_req *r)
{
    pthread_mutex_lock(&tab->mu);
    int rc = enter(tab, r);
    pthread_mutex_unlock(&tab->mu);
    return rc;
}

int serve_table_ask(struct serve_table *tab, struct serve_req *r)
{
    int rc = 0;
    pthread_mutex_lock(&tab->mu);
    if (tab->stopped) {
        rc = -ESHUTDOWN;
    } else if (tab->asks >= tab->max_asks) {
        rc = -EAGAIN;
    } else {
        tab->asks++;
        push(tab, r);
    }
    pthread_mutex_unlock(&tab->mu);
    return rc;
}

struct serve_req *serve_table_take(struct serve_table *tab)
{
    uint64_t v;
    pthread_mutex_lock(&tab->mu);
    struct serve_req *r = tab->head;
    if (r) {
        tab->head = r->next;
        if (!tab->head) tab->tail = &tab->head;
        r->next = NULL;
    } else if (tab->efd >= 0 && read(tab->efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing signalled */
    }
    pthread_mutex_unlock(&tab->mu);
    return r;
}

void serve_table_unqueue(struct serve_table *tab)
{
    pthread_mutex_lock(&tab->mu);
    if (tab->queued) tab->queued--;
    pthread_mutex_unlock(&tab->mu);
}

void serve_table_answered(struct serve_table *tab)
{
    pthread_mutex_lock(&tab->mu);
    if (tab->asks) tab->asks--;
    pthread_mutex_unlock(&tab->mu);
}

void serve_table_forget(struct serve_table *tab, const char *run_id)
{
    pthread_mutex_lock(&tab->mu);
    struct serve_entry *e = find(tab, run_id);
    if (e) drop(tab, (size_t)(e - tab->v));
    pthread_mutex_unlock(&tab->mu);
}

void serve_table_close(struct serve_table *tab, bool everything)
{
    pthread_mutex_lock(&tab->mu);
    tab->closed = true;
    if (everything) tab->stopped = true;
    pthread_mutex_unlock(&tab->mu);
}

size_t serve_table_queued(struct serve_table *tab)
{
    pthread_mutex_lock(&tab->mu);
    size_t n = tab->queued;
    pthread_mutex_unlock(&tab->mu);
    return n;
}

void serve_new_run_id(char *buf, size_t n)
{
    char rnd[9];
    sf_random_hex(rnd, sizeof(rnd), 8);
    snprintf(buf, n, "%llx-%s", (unsigned long long)(sf_wall_ms() / 1000), rnd);
}
