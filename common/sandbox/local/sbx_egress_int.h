/* common/sandbox/local/sbx_egress_int.h: what sbx_egress.c (the loop, TCP),
 * sbx_egress_dns.c (the resolver) and sbx_egress_udp.c (UDP flows) share.
 * Everything here belongs to the proxy thread, except att->policy (under
 * att->mu) and the command queue (under eg->mu). */
#ifndef SF_SBX_EGRESS_INT_H
#define SF_SBX_EGRESS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "inject.h"
#include "sbx_egress.h"
#include "util.h"

#define EG_MAX_CONNS_PER_SBX 1024      /* TCP connections at once per sandbox */
#define EG_MAX_FLOWS_PER_SBX 256       /* UDP flows at once per sandbox */
#define EG_MAX_BINDS_PER_SBX 512       /* names learned from its DNS answers */
#define EG_MAX_PENDING 1024            /* DNS questions in flight, all sandboxes */
#define EG_SNIFF_MS 10000              /* wait for a name this long */
#define EG_CONNECT_MS 15000
#define EG_FLOW_IDLE_MS 60000
#define EG_DNS_TIMEOUT_MS 5000
#define EG_DNS_TRY_MS 1500             /* per upstream, then the next one */
#define EG_BIND_MIN_S 300              /* a DNS answer binds a name this long at least */
/* What the sandbox's resolver answers for another sandbox's "<port>-<name>"
 * (sbx_egress_in.c): in 100.64/10, never a destination of its own. */
#define EG_INGRESS_VIP 0x647ffffeu     /* 100.127.255.254 */

enum eg_kind {
    EK_CMD = 1, EK_TIMER, EK_TCP_LISTEN, EK_UDP, EK_DNS_UDP, EK_DNS_LISTEN,
    EK_CONN_C, EK_CONN_U, EK_FLOW, EK_DNS_UP, EK_DNS_TCP,
};

/* What epoll hands back: one per registered fd. */
struct eg_ep {
    enum eg_kind kind;
    void *obj;
    int fd;
    uint32_t events;                   /* current interest */
};

struct eg_bind {                       /* the sandbox's resolver said name -> v4 */
    char *name;
    uint32_t v4;
    int64_t expires_ms;
};

enum { UP_NONE = 0, UP_CONNECTING, UP_OPEN };

struct eg_conn {
    struct sf_sbx_egress_att *att;
    struct eg_ep cep, uep;             /* client (sandbox side), upstream */
    int pcu[2], puc[2];                /* pipes client->upstream, upstream->client */
    size_t in_cu, in_uc, cap_cu, cap_uc;
    bool c_eof, u_eof, c_wshut, u_wshut;
    int up;                            /* UP_* */
    bool sniffing;                     /* client bytes go to 'head' until judged */
    bool check_only;                   /* already allowed by a DNS binding: a name, if
                                          one shows, must still be an allowed one */
    bool resolving;                    /* waiting for eg_conn_resolved */
    bool need_house, need_sbx;
    bool ingress;                      /* to EG_INGRESS_VIP: another sandbox, by name */
    struct sockaddr_in dst;
    uint8_t *head;
    size_t hlen;
    int64_t deadline;                  /* sniff, resolve or connect; 0: none */
    struct sf_inject *tls_rule;        /* intercepted (sbx_egress_tls.c): a copy of the
                                          one rule for tls_host (rules may change) */
    char tls_host[256];
    struct eg_tls *tls;                /* the TLS ends once interception started */
    struct eg_conn *prev, *next;
};

struct eg_tls;
struct eg_flow;
struct eg_dnstcp;

struct sf_sbx_egress_att {                        /* one sandbox */
    struct sf_sbx_egress *eg;
    struct eg_ep ep[SF_SBX_NS_NSOCK];
    pthread_mutex_t mu;
    struct sf_netpolicy *policy;       /* under mu; NULL: the default */
    struct sf_inject *inject;          /* under mu: headers added to HTTPS to named hosts;
                                          NULL: none */
    int netns;                         /* its network namespace (reply sockets) */
    char label[64];
    struct eg_conn *conns;
    struct eg_flow *flows;
    struct eg_dnstcp *dnstcp;
    int nconns, nflows;
    struct eg_bind *binds;
    size_t nbinds;
    uint64_t n_ok, n_denied;
    char first_denied[160];
    struct sf_sbx_egress_att *next;
};

struct eg_pending;

struct sf_sbx_egress {
    int epfd;
    struct eg_ep cmd_ep, timer_ep, dns_ep;
    pthread_t thread;
    pthread_mutex_t mu;                /* the command queue */
    pthread_cond_t cv;
    struct eg_cmd *cmds;
    struct sf_netpolicy *op;
    struct sockaddr_in dns[SF_SBX_EGRESS_MAX_DNS];
    int ndns;
    const struct sf_log *log;
    struct sf_sbx_egress_att *atts;
    void **graveyard;                  /* closed objects, freed after the event batch */
    size_t ngrave, capgrave;
    struct eg_pending *pending;        /* EG_MAX_PENDING slots */
    struct eg_tls_ca *ca;              /* interception (sbx_egress_tls.c); NULL: none */
    uint16_t dns_id;                   /* next upstream query id (random start) */
    pthread_mutex_t in_mu;             /* the ingress names (sbx_egress_in.c) */
    struct eg_ingress *ingress;
    size_t ningress;
    bool stop;
};

/* ---- sbx_egress.c --------------------------------------------------------- */
void eg_set_events(struct sf_sbx_egress *eg, struct eg_ep *ep, uint32_t events);
int eg_add(struct sf_sbx_egress *eg, struct eg_ep *ep, enum eg_kind kind, void *obj, int fd,
           uint32_t events);
void eg_del(struct sf_sbx_egress *eg, struct eg_ep *ep);
/* Free p once the current batch of events is handled: events for its fds
 * may still be in that batch (they are skipped: eg_del set their fd -1). */
void eg_defer_free(struct sf_sbx_egress *eg, void *p);
/* A copy of the sandbox's rules (caller frees), under att->mu. */
struct sf_netpolicy *eg_policy(struct sf_sbx_egress_att *a);
/* Judge a destination. 0: allowed; -EACCES: denied (why filled);
 * 1: allowed only by an allowed name (house/sbx tell which side needs it). */
int eg_judge(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a, const struct sockaddr_in *dst,
             bool *need_house, bool *need_sbx, char *why, size_t whylen);
/* Does 'name' satisfy the sides that need a name? */
bool eg_name_ok(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a, const char *name, bool need_house,
                bool need_sbx);
void eg_denied(struct sf_sbx_egress_att *a, const char *proto, const struct sockaddr_in *dst,
               const char *why);
/* The name resolved: the connection waiting for it goes on or is reset. */
void eg_conn_resolved(struct sf_sbx_egress *eg, struct eg_conn *c, const uint32_t *v4, size_t n);

/* ---- sbx_egress_dns.c ----------------------------------------------------- */
int eg_dns_init(struct sf_sbx_egress *eg, char *err, size_t errlen);
void eg_dns_fini(struct sf_sbx_egress *eg);
/* A query from a sandbox: over its resolver socket (reply_fd, to 'client'),
 * or transparently to 'orig' (replied from 'orig', eg_udp_inject). */
void eg_dns_query_udp(struct sf_sbx_egress_att *a, const uint8_t *msg, size_t len, int reply_fd,
                      const struct sockaddr_in *client, const struct sockaddr_in *orig);
void eg_dns_on_upstream(struct sf_sbx_egress *eg);
void eg_dns_accept(struct sf_sbx_egress_att *a);
/* A TCP connection to port 53 of any address: DNS over TCP. */
void eg_dns_adopt_tcp(struct sf_sbx_egress_att *a, int fd);
void eg_dns_tcp_event(struct sf_sbx_egress *eg, struct eg_dnstcp *t, uint32_t events);
/* Ask the upstream for name's A records on behalf of connection c. */
int eg_dns_lookup(struct sf_sbx_egress_att *a, struct eg_conn *c, const char *name);
/* Forget every question of a sandbox or a connection. */
void eg_dns_forget_att(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a);
void eg_dns_forget_conn(struct sf_sbx_egress *eg, struct eg_conn *c);
void eg_dns_close_tcp(struct sf_sbx_egress_att *a);
void eg_dns_tick(struct sf_sbx_egress *eg, int64_t now);
/* Did the sandbox's resolver answer 'name' with v4 (any name when name is
 * NULL: returns it in *bound)? */
bool eg_bind_has(struct sf_sbx_egress_att *a, const char *name, uint32_t v4);
const char *eg_bind_name_for(struct sf_sbx_egress_att *a, uint32_t v4, size_t *skip);
void eg_binds_free(struct sf_sbx_egress_att *a);

/* ---- sbx_egress_tls.c ----------------------------------------------------- */
/* The per-worker CA: made at start, its certificate and the host's bundle
 * with it written to files the sandboxes get (0 or -errno; err says why). */
int eg_tls_init(struct sf_sbx_egress *eg, char *err, size_t errlen);
void eg_tls_fini(struct sf_sbx_egress *eg);
/* Intercept connection c, whose client named c->tls_host under c->tls_rule:
 * its buffered ClientHello is the first input. -1: c was closed. */
int eg_tls_begin(struct sf_sbx_egress *eg, struct eg_conn *c);
/* An event on an intercepted connection (either side). */
void eg_tls_event(struct sf_sbx_egress *eg, struct eg_conn *c, bool up_side, uint32_t events);
void eg_tls_free(struct eg_tls *t);
/* Helpers of sbx_egress.c the TLS relay uses. */
void eg_conn_close(struct sf_sbx_egress *eg, struct eg_conn *c, bool reset);
/* Does the sandbox have inject rules / a copy of the rule for 'host' (NULL: none)? */
bool eg_has_inject(struct sf_sbx_egress_att *a);
struct sf_inject *eg_inject_pick(struct sf_sbx_egress_att *a, const char *host);

/* ---- sbx_egress_in.c ------------------------------------------------------ */
void eg_ingress_free(struct sf_sbx_egress *eg);
/* Is name "<port>-<name of a sandbox>"? */
bool eg_ingress_name(struct sf_sbx_egress *eg, const char *name);
/* A connection of sandbox a whose HTTP head (head, hlen) names 'host':
 * a socket connecting to that port inside the sandbox it names, or -errno
 * with the reason in why (unknown name, rules, traffic token). */
int eg_ingress_connect(struct sf_sbx_egress_att *a, const uint8_t *head, size_t hlen, const char *host,
                       char *why, size_t whylen);

/* ---- sbx_egress_udp.c ----------------------------------------------------- */
void eg_udp_in(struct sf_sbx_egress_att *a);
void eg_flow_event(struct sf_sbx_egress *eg, struct eg_flow *f);
void eg_flows_close(struct sf_sbx_egress_att *a);
void eg_udp_tick(struct sf_sbx_egress_att *a, int64_t now);
/* Send 'data' to 'to' (in the sandbox) from 'from', by a socket made in
 * the sandbox's namespace: *cache when >= 0, else a new one left in *cache
 * (NULL: closed after). 0 or -errno. */
int eg_udp_inject(struct sf_sbx_egress_att *a, const struct sockaddr_in *from, const struct sockaddr_in *to,
                  const void *data, size_t len, int *cache);

#endif
