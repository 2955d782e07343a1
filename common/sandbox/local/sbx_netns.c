/* common/sandbox/local/sbx_netns.c: see sbx_netns.h.
 *
 * Design: one helper thread per pool. It makes a namespace with
 * unshare(CLONE_NEWNET) on itself, brings lo up with the same ioctl the
 * sandbox child used (an egress one also gets its route, its nftables table
 * and its sockets, sbx_nl.h), keeps an fd of /proc/thread-self/ns/net and
 * goes back to the namespace it started in, so it never sits in one it
 * hands out. The namespaces sit in slots taken with an atomic exchange, so create() never
 * waits for the helper (with a mutex it did: a helper preempted while
 * holding it cost a take ~0.25 ms on a busy host); a take posts a
 * semaphore the helper sleeps on to refill. The helper runs SCHED_BATCH so
 * that waking it never preempts the thread that is creating a sandbox.
 * The helper blocks every signal: process-directed signals (SIGTERM for a
 * graceful worker stop) stay with the threads that wait for them. */
#include "sbx_netns.h"
#include "sbx_nl.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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
    enum sf_sbx_ns_kind kind;
    _Atomic(struct sf_sbx_ns *) slots[SF_SBX_NETNS_MAX];   /* NULL: empty */
    int first_err;                  /* of the helper's first attempt */
    const struct sf_log *log;
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

void sf_sbx_ns_close(struct sf_sbx_ns *ns)
{
    if (ns->net >= 0) close(ns->net);
    ns->net = -1;
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++) {
        if (ns->sock[i] >= 0) close(ns->sock[i]);
        ns->sock[i] = -1;
    }
}

static void sf_sbx_ns_init(struct sf_sbx_ns *ns)
{
    ns->net = -1;
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++) ns->sock[i] = -1;
}

/* Let the sandbox bind any port, as root in an E2B sandbox may; ours are
 * taken before it exists. /proc/sys/net speaks for the opener's network
 * namespace whatever procfs it is reached through: container runtimes mount
 * /proc/sys read-only, so the unmasked procfs of deploy/entrypoint.sh is
 * tried too. Best effort: without it sandboxes keep the kernel's default
 * (ports below 1024 refused), nothing else changes. */
static void sf_sbx_ns_low_ports(void)
{
    static const char *const paths[] = { "/proc/sys/net/ipv4/ip_unprivileged_port_start",
                                         "/run/sandfleet/proc/sys/net/ipv4/ip_unprivileged_port_start" };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) continue;
        int rc = sf_write_all(fd, "0", 1);
        close(fd);
        if (rc == 0) return;
    }
}

static int sf_sbx_ns_sock(int type, int proto, const char *ip, uint16_t port, bool transparent)
{
    int s = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (s < 0) return -errno;
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (transparent && setsockopt(s, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0) ||
        (transparent && type == SOCK_DGRAM &&
         setsockopt(s, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one)) < 0) ||
        bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        (type == SOCK_STREAM && listen(s, 1024) < 0))
        goto fail;
    return s;
fail:;
    int rc = -errno;
    close(s);
    return rc;
}

/* The egress part of a namespace the calling thread is in. */
static int sf_sbx_ns_egress(struct sf_sbx_ns *ns)
{
    static const struct { int type, proto; const char *ip; uint16_t port; bool tp; } socks[] = {
        [SF_SBX_NS_TCP] = { SOCK_STREAM, 0, "0.0.0.0", SF_SBX_EGRESS_PORT, true },
        [SF_SBX_NS_UDP] = { SOCK_DGRAM, 0, "0.0.0.0", SF_SBX_EGRESS_PORT, true },
        [SF_SBX_NS_DNS_UDP] = { SOCK_DGRAM, 0, "127.0.0.53", 53, false },
        [SF_SBX_NS_DNS_TCP] = { SOCK_STREAM, 0, "127.0.0.53", 53, false },
    };
    int rc;
    if ((rc = sf_sbx_nl_route_local_all()) < 0) return rc;
    if ((rc = sf_sbx_nl_egress_rules(SF_SBX_EGRESS_PORT, SF_SBX_EGRESS_MARK)) < 0) return rc;
    for (int i = 0; i < SF_SBX_NS_NSOCK; i++)
        if ((rc = ns->sock[i] = sf_sbx_ns_sock(socks[i].type, socks[i].proto, socks[i].ip,
                                               socks[i].port, socks[i].tp)) < 0)
            return rc;
    return 0;
}

/* A fresh namespace of 'kind'; the thread ends up in 'home'. */
static int sf_sbx_ns_make_from(int home, enum sf_sbx_ns_kind kind, struct sf_sbx_ns *ns)
{
    int rc;
    sf_sbx_ns_init(ns);
    if (unshare(CLONE_NEWNET) < 0) return -errno;
    if ((rc = sf_sbx_netns_lo_up()) < 0) goto done;
    sf_sbx_ns_low_ports();
    if (kind == SF_SBX_NS_EGRESS && (rc = sf_sbx_ns_egress(ns)) < 0) goto done;
    if ((rc = ns->net = sf_sbx_netns_self()) < 0) goto done;
    rc = 0;
done:
    if (setns(home, CLONE_NEWNET) < 0) {
        /* Never stay in a namespace that may be handed out. */
        fprintf(stderr, "sandfleet: cannot return to the worker's network namespace: %s\n",
                strerror(errno));
        abort();
    }
    if (rc < 0) sf_sbx_ns_close(ns);
    return rc;
}

int sf_sbx_ns_make(enum sf_sbx_ns_kind kind, struct sf_sbx_ns *out)
{
    int home = sf_sbx_netns_self();
    if (home < 0) return home;
    int rc = sf_sbx_ns_make_from(home, kind, out);
    close(home);
    return rc;
}

/* Put 'ns' in an empty slot; false when all are full. */
static bool sf_sbx_netns_put(struct sf_sbx_netns_pool *p, struct sf_sbx_ns *ns)
{
    for (int i = 0; i < p->size; i++) {
        struct sf_sbx_ns *empty = NULL;
        if (atomic_compare_exchange_strong(&p->slots[i], &empty, ns)) return true;
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
        struct sf_sbx_ns *ns = sf_xmalloc(sizeof(*ns));
        int rc = home < 0 ? home : sf_sbx_ns_make_from(home, p->kind, ns);
        if (first) {
            /* The first attempt is the probe sf_sbx_netns_pool_new waits for. */
            pthread_mutex_lock(&p->mu);
            p->started = true;
            p->first_err = rc < 0 ? -rc : 0;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        } else if (rc < 0) {
            SF_LOGW(p->log, "network namespace pool stopped: %s; sandboxes make their own",
                    strerror(-rc));
        }
        if (rc < 0) {
            free(ns);
            break;
        }
        if (!sf_sbx_netns_put(p, ns)) {
            sf_sbx_ns_close(ns);
            free(ns);
        }
    }
    if (home >= 0) close(home);
    return NULL;
}

static void sf_sbx_netns_release(struct sf_sbx_netns_pool *p)
{
    for (int i = 0; i < SF_SBX_NETNS_MAX; i++) {
        struct sf_sbx_ns *ns = atomic_exchange(&p->slots[i], NULL);
        if (ns) {
            sf_sbx_ns_close(ns);
            free(ns);
        }
    }
    sem_destroy(&p->need);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

struct sf_sbx_netns_pool *sf_sbx_netns_pool_new(int size, enum sf_sbx_ns_kind kind,
                                                const struct sf_log *log, int *err)
{
    struct sf_sbx_netns_pool *p = sf_xcalloc(1, sizeof(*p));
    sigset_t all, old;

    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->owner = getpid();
    p->size = size < 1 ? 1 : size > SF_SBX_NETNS_MAX ? SF_SBX_NETNS_MAX : size;
    p->kind = kind;
    p->log = log;
    for (int i = 0; i < SF_SBX_NETNS_MAX; i++) atomic_init(&p->slots[i], NULL);
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

int sf_sbx_netns_pool_take(struct sf_sbx_netns_pool *p, struct sf_sbx_ns *out)
{
    if (!p || p->owner != getpid()) return -EAGAIN;
    for (int i = 0; i < p->size; i++) {
        struct sf_sbx_ns *ns = atomic_exchange(&p->slots[i], NULL);
        if (ns) {
            sem_post(&p->need);
            *out = *ns;
            free(ns);
            return 0;
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

int sf_sbx_netns_socket(int nsfd, int domain, int type, int protocol)
{
    int prev = sf_sbx_netns_enter(nsfd);
    if (prev < 0) return prev;
    int s = socket(domain, type, protocol);
    int rc = s < 0 ? -errno : s;
    sf_sbx_netns_leave(prev);
    return rc;
}
