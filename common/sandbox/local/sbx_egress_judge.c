/* common/sandbox/local/sbx_egress_judge.c: the verdict on a destination
 * (sbx_egress.h): the worker's default policy with the operator's flags,
 * then the sandbox's own rules, and the sandbox's rules and injected
 * headers read under its lock. Called on the proxy thread. */
#include "sbx_egress_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- the verdict ------------------------------------------------------------ */

struct sf_netpolicy *eg_policy(struct sf_sbx_egress_att *a)
{
    pthread_mutex_lock(&a->mu);
    struct sf_netpolicy *p = sf_netpolicy_dup(a->policy);
    pthread_mutex_unlock(&a->mu);
    return p;
}

/* Is this one of the host's own addresses? Binding to it succeeds only
 * then, whichever interface holds it, and it follows address changes. */
static bool eg_host_local(const struct sockaddr_in *dst)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return true;                    /* cannot tell: assume the worst */
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = dst->sin_addr };
    bool local = bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != EADDRNOTAVAIL;
    close(s);
    return local;
}

int eg_judge(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a, const struct sockaddr_in *dst,
             bool *need_house, bool *need_sbx, char *why, size_t whylen)
{
    const struct sockaddr *sa = (const struct sockaddr *)dst;
    *need_house = *need_sbx = false;
    enum sf_netaddr_class cls = sf_netaddr_classify(sa);
    bool local = (cls == SF_NETADDR_PUBLIC || cls == SF_NETADDR_DOCUMENTATION) && eg_host_local(dst);
    enum sf_netverdict h = sf_netpolicy_house(eg->op, sa, local);
    if (h == SF_NET_DENY) {
        sf_errf(why, whylen, "%s", local ? "an address of the worker's host"
                                         : sf_netaddr_class_name(cls));
        return -EACCES;
    }
    pthread_mutex_lock(&a->mu);
    enum sf_netverdict s = sf_netpolicy_addr(a->policy, sa);
    pthread_mutex_unlock(&a->mu);
    if (s == SF_NET_DENY) {
        sf_errf(why, whylen, "not allowed by the sandbox's network rules");
        return -EACCES;
    }
    *need_house = h == SF_NET_BY_NAME;
    *need_sbx = s == SF_NET_BY_NAME;
    if (*need_house || *need_sbx) {
        sf_errf(why, whylen, "%s only open to allowed host names",
                *need_house ? sf_netaddr_class_name(cls) : "by the sandbox's rules");
        return 1;
    }
    return 0;
}

bool eg_has_inject(struct sf_sbx_egress_att *a)
{
    pthread_mutex_lock(&a->mu);
    bool any = a->inject && a->inject->n;
    pthread_mutex_unlock(&a->mu);
    return any;
}

struct sf_inject *eg_inject_pick(struct sf_sbx_egress_att *a, const char *host)
{
    pthread_mutex_lock(&a->mu);
    struct sf_inject *r = sf_inject_pick(a->inject, host);
    pthread_mutex_unlock(&a->mu);
    return r;
}

bool eg_name_ok(struct sf_sbx_egress *eg, struct sf_sbx_egress_att *a, const char *name,
                bool need_house, bool need_sbx)
{
    if (need_house && !sf_netpolicy_name(eg->op, name)) return false;
    if (!need_sbx) return true;
    pthread_mutex_lock(&a->mu);
    bool ok = sf_netpolicy_name(a->policy, name);
    pthread_mutex_unlock(&a->mu);
    return ok;
}

void eg_denied(struct sf_sbx_egress_att *a, const char *proto, const struct sockaddr_in *dst,
               const char *why)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &dst->sin_addr, ip, sizeof(ip));
    a->n_denied++;
    if (!a->first_denied[0])
        snprintf(a->first_denied, sizeof(a->first_denied), "%s %s:%u (%s)", proto, ip,
                 ntohs(dst->sin_port), why);
    SF_LOG(a->eg->log, SF_LOG_DEBUG, NULL, a->label, "egress denied: %s %s:%u: %s", proto, ip,
           ntohs(dst->sin_port), why);
}
