/* common/sandbox/local/sbx_netns.c: see sbx_netns.h.
 *
 * Design: one helper thread per pool. It makes a namespace with
 * unshare(CLONE_NEWNET) on itself, brings lo up with the same ioctl the
 * sandbox child used, keeps an fd of /proc/thread-self/ns/net and goes back
 * to the namespace it started in, so it never sits in one it hands out.
 * The fds sit in slots taken with an atomic exchange, so create() never
 * waits for the helper (with a mutex it did: a helper preempted while
 * holding it cost a take ~0.25 ms on a busy host); a take posts a
 * semaphore the helper sleeps on to refill. The helper runs SCHED_BATCH so
 * that waking it never preempts the thread that is creating a sandbox.
 * The helper blocks every signal: process-directed signals (SIGTERM for a
 * graceful worker stop) stay with the threads that wait for them. */
#include "sbx_netns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define SF_SBX_NETNS_MAX 16

struct sf_sbx_netns_pool {
    pthread_mutex_t mu;             /* only for the start-up handshake */
    pthread_cond_t cv;
    sem_t need;                     /* empty slots to refill */
    pthread_t thread;
    pid_t owner;                    /* a forked child must not use the pool */
    int size;
    _Atomic int fds[SF_SBX_NETNS_MAX];   /* -1: empty */
    int first_err;                  /* of the helper's first attempt */
    bool started;
    atomic_bool stop;
};

static int sf_sbx_netns_self(void)
{
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int sf_sbx_netns_lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) rc = -errno;
    if (!rc) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = -errno;
    }
    close(s);
    return rc;
}

/* A fresh namespace with lo up, as an fd; the thread ends up in 'home'. */
static int sf_sbx_netns_make(int home)
{
    int fd = -1, rc;
    if (unshare(CLONE_NEWNET) < 0) return -errno;
    if ((rc = sf_sbx_netns_lo_up()) < 0) goto done;
    if ((rc = fd = sf_sbx_netns_self()) < 0) goto done;
    rc = 0;
done:
    if (setns(home, CLONE_NEWNET) < 0) {
        /* This thread makes no sockets of its own, but stay out of a
         * namespace that may be handed out: stop making any. */
        rc = -errno;
    }
    if (rc < 0 && fd >= 0) close(fd);
    return rc < 0 ? rc : fd;
}

/* Put 'fd' in an empty slot; false when all are full. */
static bool sf_sbx_netns_put(struct sf_sbx_netns_pool *p, int fd)
{
    for (int i = 0; i < p->size; i++) {
        int empty = -1;
        if (atomic_compare_exchange_strong(&p->fds[i], &empty, fd)) return true;
    }
    return false;
}

static void *sf_sbx_netns_main(void *arg)
{
    struct sf_sbx_netns_pool *p = arg;
    /* Woken by a take in the middle of create(), a normal thread would
     * preempt the creating thread on its CPU (measured: ~0.2 ms per take on
     * a busy host). SCHED_BATCH threads never preempt on wakeup; they still
     * get their fair share, so the pool refills between tasks. */
    struct sched_param sp = { 0 };
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    int home = sf_sbx_netns_self();
    for (bool first = true;; first = false) {
        if (!first) {
            while (sem_wait(&p->need) < 0 && errno == EINTR) {}
            if (atomic_load(&p->stop)) break;
        }
        int fd = home < 0 ? home : sf_sbx_netns_make(home);
        if (first) {
            /* The first attempt is the probe sf_sbx_netns_pool_new waits for. */
            pthread_mutex_lock(&p->mu);
            p->started = true;
            p->first_err = fd < 0 ? -fd : 0;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        } else if (fd < 0) {
            fprintf(stderr, "sandfleet: network namespace pool stopped: %s; sandboxes make "
                    "their own\n", strerror(-fd));
        }
        if (fd < 0) break;
        if (!sf_sbx_netns_put(p, fd)) close(fd);
    }
    if (home >= 0) close(home);
    return NULL;
}

static void sf_sbx_netns_release(struct sf_sbx_netns_pool *p)
{
    for (int i = 0; i < SF_SBX_NETNS_MAX; i++) {
        int fd = atomic_exchange(&p->fds[i], -1);
        if (fd >= 0) close(fd);
    }
    sem_destroy(&p->need);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

struct sf_sbx_netns_pool *sf_sbx_netns_pool_new(int size, int *err)
{
    struct sf_sbx_netns_pool *p = sf_xcalloc(1, sizeof(*p));
    sigset_t all, old;

    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->owner = getpid();
    p->size = size < 1 ? 1 : size > SF_SBX_NETNS_MAX ? SF_SBX_NETNS_MAX : size;
    for (int i = 0; i < SF_SBX_NETNS_MAX; i++) atomic_init(&p->fds[i], -1);
    atomic_init(&p->stop, false);
    sem_init(&p->need, 0, (unsigned)p->size - 1);    /* the first one is the probe */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, sf_sbx_netns_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        *err = rc;
        sf_sbx_netns_release(p);
        return NULL;
    }
    /* The helper's first namespace tells whether this process may make
     * them at all (the calling thread never changes namespace here). */
    pthread_mutex_lock(&p->mu);
    while (!p->started) pthread_cond_wait(&p->cv, &p->mu);
    *err = p->first_err;
    pthread_mutex_unlock(&p->mu);
    if (*err) {
        pthread_join(p->thread, NULL);
        sf_sbx_netns_release(p);
        return NULL;
    }
    return p;
}

void sf_sbx_netns_pool_free(struct sf_sbx_netns_pool *p)
{
    if (!p) return;
    if (p->owner != getpid()) {         /* a forked child: no helper here */
        free(p);
        return;
    }
    atomic_store(&p->stop, true);
    sem_post(&p->need);
    pthread_join(p->thread, NULL);
    sf_sbx_netns_release(p);
}

int sf_sbx_netns_pool_take(struct sf_sbx_netns_pool *p)
{
    if (!p || p->owner != getpid()) return -EAGAIN;
    for (int i = 0; i < p->size; i++) {
        int fd = atomic_exchange(&p->fds[i], -1);
        if (fd >= 0) {
            sem_post(&p->need);
            return fd;
        }
    }
    return -EAGAIN;
}

int sf_sbx_netns_enter(int nsfd)
{
    int prev = sf_sbx_netns_self();
    if (prev < 0) return prev;
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        int rc = -errno;
        close(prev);
        return rc;
    }
    return prev;
}

void sf_sbx_netns_leave(int prev)
{
    if (setns(prev, CLONE_NEWNET) < 0) {
        fprintf(stderr, "sandfleet: cannot return to the worker's network namespace: %s\n",
                strerror(errno));
        abort();
    }
    close(prev);
}
