/* common/sandbox/local/sbx_ready.c: see sbx_ready.h. A mutex, a condition
 * variable the helper sleeps on while the pool is full, and a stack of
 * ready sandboxes. A failed make is logged once and retried after a second
 * (the next take just creates its own meanwhile). */
#include "sbx_ready.h"
#include "util.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SF_SBX_READY_MAX 16

struct sf_sbx_ready {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sf_sandbox *v[SF_SBX_READY_MAX];
    int n, size;
    bool stop;
    pthread_t thread;
    sf_sbx_ready_make_fn make;
    void *arg;
    const struct sf_log *log;
};

static void *sf_sbx_ready_main(void *arg)
{
    struct sf_sbx_ready *r = arg;
    struct sched_param sp = { 0 };
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    bool logged = false;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (r->n >= r->size) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        char err[SF_ERRSTR_LEN] = "";
        struct sf_sandbox *sb = r->make(r->arg, err, sizeof(err));
        if (!sb && !logged) {
            SF_LOGW(r->log, "local sandbox: making one ahead of time: %s (retrying every second)", err);
            logged = true;
        }
        if (!sb) {
            struct timespec ts = { 1, 0 };
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&r->mu);
        if (sb && (r->stop || r->n >= r->size)) {
            pthread_mutex_unlock(&r->mu);
            sf_sandbox_destroy(sb);
            pthread_mutex_lock(&r->mu);
        } else if (sb) {
            r->v[r->n++] = sb;
            logged = false;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct sf_sbx_ready *sf_sbx_ready_new(int size, sf_sbx_ready_make_fn make, void *arg,
                                      const struct sf_log *log)
{
    if (size <= 0) return NULL;
    struct sf_sbx_ready *r = sf_xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->size = size > SF_SBX_READY_MAX ? SF_SBX_READY_MAX : size;
    r->make = make;
    r->arg = arg;
    r->log = log;
    /* Process-directed signals stay with the threads that wait for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, sf_sbx_ready_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

struct sf_sandbox *sf_sbx_ready_take(struct sf_sbx_ready *r)
{
    struct sf_sandbox *sb = NULL;
    if (!r) return NULL;
    pthread_mutex_lock(&r->mu);
    if (r->n) {
        sb = r->v[--r->n];
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return sb;
}

void sf_sbx_ready_free(struct sf_sbx_ready *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    for (int i = 0; i < r->n; i++) sf_sandbox_destroy(r->v[i]);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
