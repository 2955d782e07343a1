/* common/base/pool.c: see pool.h. Two singly linked FIFOs under one mutex; the
 * work queue wakes threads with a condition variable, the done queue wakes
 * the loop with an eventfd. */
#include "pool.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct node {
    void *job;
    struct node *next;
};

struct fifo {
    struct node *head, *tail;
};

struct sf_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fifo todo, done;
    bool stopping;
    size_t busy;
    int efd;
    sf_pool_work_fn work;
    void *ctx;
    size_t nthreads;
    pthread_t *threads;
};

static void push(struct fifo *f, void *job)
{
    struct node *n = sf_xmalloc(sizeof(*n));
    n->job = job;
    n->next = NULL;
    if (f->tail) f->tail->next = n;
    else f->head = n;
    f->tail = n;
}

static void *pop(struct fifo *f)
{
    struct node *n = f->head;
    if (!n) return NULL;
    f->head = n->next;
    if (!f->head) f->tail = NULL;
    void *job = n->job;
    free(n);
    return job;
}

static void *thread_main(void *arg)
{
    struct sf_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->todo.head && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        void *job = pop(&p->todo);
        if (!job) break;                       /* stopping and nothing left */
        pthread_mutex_unlock(&p->mu);
        p->work(job, p->ctx);
        pthread_mutex_lock(&p->mu);
        push(&p->done, job);
        uint64_t one = 1;
        (void)!write(p->efd, &one, sizeof(one));
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct sf_pool *sf_pool_new(size_t nthreads, sf_pool_work_fn work, void *ctx)
{
    struct sf_pool *p = sf_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->work = work;
    p->ctx = ctx;
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) goto fail;
    p->threads = sf_xcalloc(nthreads ? nthreads : 1, sizeof(pthread_t));
    for (size_t i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, thread_main, p);
        if (rc) {
            errno = rc;
            goto fail;
        }
        p->nthreads++;
    }
    return p;
fail:
    {
        int e = errno;
        sf_pool_free(p, NULL);
        errno = e;
    }
    return NULL;
}

void sf_pool_submit(struct sf_pool *p, void *job)
{
    pthread_mutex_lock(&p->mu);
    push(&p->todo, job);
    p->busy++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int sf_pool_fd(const struct sf_pool *p) { return p->efd; }

size_t sf_pool_busy(const struct sf_pool *p) { return p->busy; }

void *sf_pool_take_done(struct sf_pool *p)
{
    pthread_mutex_lock(&p->mu);
    void *job = pop(&p->done);
    if (job) p->busy--;
    if (!p->done.head) {
        uint64_t v;
        (void)!read(p->efd, &v, sizeof(v));
    }
    pthread_mutex_unlock(&p->mu);
    return job;
}

void sf_pool_free(struct sf_pool *p, void (*leftover)(void *job))
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    void *job;
    while ((job = pop(&p->done)))
        if (leftover) leftover(job);
    while ((job = pop(&p->todo)))
        if (leftover) leftover(job);
    if (p->efd >= 0) close(p->efd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
