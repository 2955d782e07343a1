/* worker/e2b/e2b_member.c: see e2b_member.h.
 *
 * DESIGN. Changes are ids in a small set under a mutex (any thread adds,
 * the loop thread takes them all) plus an eventfd the loop polls; the
 * record written is always the sandbox's state at flush time, so a burst of
 * changes to one sandbox is one write, and a sandbox gone by then is a
 * delete. The gateway writes a record itself when it creates a sandbox (so
 * any gateway finds it the moment the client has its id); the worker's
 * write follows within milliseconds with the exact times and is the one
 * that keeps the record right afterwards (timeouts, kills, expiry).
 * Reconciliation: every RECONCILE_BEATS heartbeats the ids the broker has
 * for this worker are compared with the registry (broker first, registry
 * second: an id missing from the later registry snapshot is gone for good,
 * ids are never reused). */
#include "e2b_member.h"
#include "e2b_fleet.h"
#include "e2b_registry.h"
#include "e2b_server.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RECONCILE_BEATS 20

struct e2b_member {
    char worker[128], ingress[256];
    int64_t lease_ms;
    char *secret;
    size_t slen;
    const struct sf_log *lg;
    struct e2b_registry *reg;
    int efd;
    pthread_mutex_t mu;                  /* changed ids */
    char (*changed)[SF_E2B_ID_MAX];
    size_t nchanged, cap;
    int64_t last_refusal_log;            /* under mu */
    /* loop thread */
    bool registered;                     /* a first beat went through */
    int beats;
};

struct e2b_member *e2b_member_new(const char *worker_id, const char *ingress, int64_t lease_ms,
                                  const void *secret, size_t slen, const struct sf_log *lg)
{
    struct e2b_member *m = sf_xcalloc(1, sizeof(*m));
    if ((m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        free(m);
        return NULL;
    }
    sf_strlcpy(m->worker, worker_id, sizeof(m->worker));
    sf_strlcpy(m->ingress, ingress, sizeof(m->ingress));
    m->lease_ms = lease_ms;
    m->secret = sf_xmalloc(slen);
    memcpy(m->secret, secret, slen);
    m->slen = slen;
    m->lg = lg;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void e2b_member_free(struct e2b_member *m)
{
    if (!m) return;
    explicit_bzero(m->secret, m->slen);
    free(m->secret);
    free(m->changed);
    close(m->efd);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void e2b_member_set_ingress(struct e2b_member *m, const char *ingress)
{
    sf_strlcpy(m->ingress, ingress, sizeof(m->ingress));
}

const char *e2b_member_ingress(const struct e2b_member *m)
{
    return m->ingress;
}

int e2b_member_own_ingress(const char *port, char *out, size_t size)
{
    struct ifaddrs *ifs, *i;
    int rc = -ENOENT;
    if (getifaddrs(&ifs) < 0) return -errno;
    for (i = ifs; i && rc; i = i->ifa_next) {
        char ip[INET_ADDRSTRLEN];
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof(ip));
        snprintf(out, size, "%s:%s", ip, port);
        rc = 0;
    }
    freeifaddrs(ifs);
    return rc;
}

void e2b_member_attach(struct e2b_member *m, struct e2b_registry *reg)
{
    m->reg = reg;
}

bool e2b_member_auth(struct e2b_member *m, const char *value, const char *method,
                     const char *path, const char *host, const char *sandbox_id, char *why,
                     size_t whylen)
{
    if (sf_e2b_gw_verify(m->secret, m->slen, value, sf_wall_ms(), method, path, host, sandbox_id,
                         why, whylen) == 0)
        return true;
    /* Refusals are worth a line, but an attacker must not fill the log. */
    int64_t now = sf_now_ms();
    pthread_mutex_lock(&m->mu);
    bool log_it = now - m->last_refusal_log >= 5000;
    if (log_it) m->last_refusal_log = now;
    pthread_mutex_unlock(&m->mu);
    if (log_it) SF_LOG(m->lg, SF_LOG_WARN, NULL, NULL, "e2b ingress: request refused: %s", why);
    return false;
}

void e2b_member_changed(void *member, const char *id)
{
    struct e2b_member *m = member;
    uint64_t one = 1;
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->nchanged && strcmp(m->changed[i], id)) i++;
    if (i == m->nchanged) {
        if (m->nchanged == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 16;
            m->changed = sf_xrealloc(m->changed, m->cap * sizeof(*m->changed));
        }
        sf_strlcpy(m->changed[m->nchanged++], id, SF_E2B_ID_MAX);
    }
    pthread_mutex_unlock(&m->mu);
    (void)!write(m->efd, &one, sizeof(one));
}

int e2b_member_fd(const struct e2b_member *m)
{
    return m->efd;
}

void e2b_member_created(struct e2b_req *rq, const struct e2b_sbx *s)
{
    if (!rq->member) return;
    rq->nxhdr = 2;
    sf_strlcpy(rq->xhdr[0][0], SF_E2B_HDR_START, sizeof(rq->xhdr[0][0]));
    snprintf(rq->xhdr[0][1], sizeof(rq->xhdr[0][1]), "%lld", (long long)s->started_wall_ms);
    sf_strlcpy(rq->xhdr[1][0], SF_E2B_HDR_END, sizeof(rq->xhdr[1][0]));
    snprintf(rq->xhdr[1][1], sizeof(rq->xhdr[1][1]), "%lld",
             (long long)__atomic_load_n(&s->end_wall_ms, __ATOMIC_RELAXED));
}

/* ---- the loop thread's side -------------------------------------------------- */

/* The record of a live sandbox. */
static char *member_record(const struct e2b_member *m, struct e2b_sbx *s)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct sf_e2b_record r = {
        .metadata = s->metadata, .started_ms = s->started_wall_ms,
        .end_ms = __atomic_load_n(&s->end_wall_ms, __ATOMIC_RELAXED),
        .cpu_count = cpus > 0 ? (int)cpus : 1, .memory_mb = s->memory_mb > 0 ? s->memory_mb : 512,
        .disk_mb = s->disk_mb > 0 ? s->disk_mb : 256,       /* as the API reports them (e2b_api.c) */
    };
    sf_strlcpy(r.id, s->id, sizeof(r.id));
    sf_strlcpy(r.worker, m->worker, sizeof(r.worker));
    sf_strlcpy(r.template_id, s->template_id, sizeof(r.template_id));
    sf_strlcpy(r.alias, s->template_id, sizeof(r.alias));
    sf_strlcpy(r.token, s->token, sizeof(r.token));
    sf_strlcpy(r.state, e2b_sbx_paused(m->reg, s) ? "paused" : "running", sizeof(r.state));
    return sf_e2b_record_dump(&r);
}

/* Write one sandbox's record, or drop it when the sandbox is gone. */
static int member_sync_one(struct e2b_member *m, struct sf_broker *b, const char *id, char *err,
                           size_t errlen)
{
    struct e2b_sbx *s = e2b_registry_get(m->reg, id);
    if (!s) return b->ops->e2b_del(b, id, err, errlen) < 0 ? -EIO : 0;
    char *rec = member_record(m, s);
    int rc = b->ops->e2b_put(b, s->id, m->worker, rec, strlen(rec), s->started_wall_ms, false, err,
                             errlen);
    free(rec);
    e2b_registry_put(m->reg, s);
    return rc;
}

int e2b_member_flush(struct e2b_member *m, struct sf_broker *b, char *err, size_t errlen)
{
    uint64_t v;
    (void)!read(m->efd, &v, sizeof(v));
    pthread_mutex_lock(&m->mu);
    char (*ids)[SF_E2B_ID_MAX] = m->changed;
    size_t n = m->nchanged;
    m->changed = NULL;
    m->nchanged = m->cap = 0;
    pthread_mutex_unlock(&m->mu);
    int rc = 0;
    size_t i = 0;
    /* Until the first beat registered us, a put would be refused. */
    for (; m->registered && i < n; i++)
        if ((rc = member_sync_one(m, b, ids[i], err, errlen)) < 0 && rc != -ENOENT) break;
    for (; i < n; i++) e2b_member_changed(m, ids[i]);     /* again next time */
    free(ids);
    return rc == -ENOENT ? 0 : rc;
}

/* Every live sandbox's record, after the broker forgot us. */
static int member_store_all(struct e2b_member *m, struct sf_broker *b, char *err, size_t errlen)
{
    struct e2b_sbx **all;
    size_t n = e2b_registry_snapshot(m->reg, &all);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char *rec = member_record(m, all[i]);
            rc = b->ops->e2b_put(b, all[i]->id, m->worker, rec, strlen(rec), all[i]->started_wall_ms,
                                 false, err, errlen);
            free(rec);
        }
        e2b_registry_put(m->reg, all[i]);
    }
    free(all);
    return rc;
}

/* Records the broker has for us whose sandbox is gone (a missed flush). */
static int member_reconcile(struct e2b_member *m, struct sf_broker *b, char *err, size_t errlen)
{
    char **ids;
    size_t n;
    int rc = b->ops->e2b_owned(b, m->worker, &ids, &n, err, errlen);
    if (rc < 0) return rc;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        struct e2b_sbx *s = e2b_registry_get(m->reg, ids[i]);
        if (s) e2b_registry_put(m->reg, s);
        else rc = b->ops->e2b_del(b, ids[i], err, errlen);
    }
    sf_broker_strv_free(ids, n);
    return rc < 0 ? rc : 0;
}

int e2b_member_beat(struct e2b_member *m, struct sf_broker *b, bool draining, bool leaving,
                    char *err, size_t errlen)
{
    int running;
    size_t alive = e2b_registry_count(m->reg, &running);
    struct sf_e2b_capacity c = { .max = e2b_registry_max(m->reg), .running = running,
                                 .paused = (int)alive - running,
                                 .draining = draining || leaving, .lease_ms = m->lease_ms };
    sf_strlcpy(c.id, m->worker, sizeof(c.id));
    sf_strlcpy(c.ingress, m->ingress, sizeof(c.ingress));
    sf_e2b_capacity_probe(&c);
    json_t *j = sf_e2b_capacity_json(&c);
    char *info = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    enum sf_e2b_beat mode = leaving ? SF_E2B_BEAT_LEAVING
                                    : m->registered ? SF_E2B_BEAT : SF_E2B_BEAT_FIRST;
    int rc = b->ops->e2b_beat(b, m->worker, info, mode, err, errlen);
    free(info);
    if (rc < 0 || leaving) return rc < 0 ? rc : 0;
    bool first = !m->registered;
    m->registered = true;
    if (first) SF_LOGI(m->lg, "e2b: joined the fleet as %s, reachable by the gateway at %s",
                       m->worker, m->ingress);
    if (rc == 0 && !first) {
        SF_LOG(m->lg, SF_LOG_WARN, NULL, NULL, "e2b: the fleet had forgotten this worker "
               "(no heartbeat within its lease); storing its sandboxes' records again");
        return member_store_all(m, b, err, errlen);
    }
    if (first) return member_store_all(m, b, err, errlen);
    if (++m->beats % RECONCILE_BEATS == 0) return member_reconcile(m, b, err, errlen);
    return 0;
}
