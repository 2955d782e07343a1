/* common/sandbox/local/sbx_egress_in.c: one sandbox's ports reached from
 * another through the egress path — E2B's get_host(port) URL fetched from
 * inside a sandbox ("<port>-<name>", sbx_egress.h). Sandboxes share no
 * network, so the worker carries the request itself: the sandbox's
 * resolver answers such a name with EG_INGRESS_VIP, a connection to that
 * address must be HTTP naming it, and the worker connects to 127.0.0.1:port
 * inside the named sandbox's namespace and relays. The table of names is
 * under its own lock (sandboxes come and go on other threads); a lookup
 * takes a copy of the namespace fd, so a sandbox may go at any time. */
#include "httphead.h"
#include "sbx_egress_int.h"
#include "sbx_netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct eg_ingress {
    const void *key;
    char *name;
    char *token;                        /* NULL: none needed */
    int netns;
};

int sf_sbx_egress_ingress_add(struct sf_sbx_egress *eg, const void *key, int netns, const char *name,
                              const char *token)
{
    int fd = fcntl(netns, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return -errno;
    pthread_mutex_lock(&eg->in_mu);
    eg->ingress = sf_xrealloc(eg->ingress, (eg->ningress + 1) * sizeof(*eg->ingress));
    eg->ingress[eg->ningress++] = (struct eg_ingress){ key, sf_xstrdup(name),
                                                       token && *token ? sf_xstrdup(token) : NULL, fd };
    pthread_mutex_unlock(&eg->in_mu);
    return 0;
}

void sf_sbx_egress_ingress_del(struct sf_sbx_egress *eg, const void *key)
{
    pthread_mutex_lock(&eg->in_mu);
    for (size_t i = 0; i < eg->ningress;) {
        struct eg_ingress *e = &eg->ingress[i];
        if (e->key != key) {
            i++;
            continue;
        }
        free(e->name);
        free(e->token);
        close(e->netns);
        *e = eg->ingress[--eg->ningress];
    }
    pthread_mutex_unlock(&eg->in_mu);
}

void eg_ingress_free(struct sf_sbx_egress *eg)
{
    while (eg->ningress) sf_sbx_egress_ingress_del(eg, eg->ingress[0].key);
    free(eg->ingress);
}

/* "<port>-<name>" → the port and the name's entry (a copy of its namespace
 * fd and token, the caller's). false: not such a name. */
static bool lookup(struct sf_sbx_egress *eg, const char *host, uint16_t *port, int *netns, char **token)
{
    char *end;
    unsigned long p = strtoul(host, &end, 10);
    if (end == host || *end != '-' || !p || p > 65535 || host[0] == '0') return false;
    bool found = false;
    pthread_mutex_lock(&eg->in_mu);
    for (size_t i = 0; i < eg->ningress && !found; i++) {
        if (strcasecmp(eg->ingress[i].name, end + 1)) continue;
        found = true;
        if (netns) *netns = fcntl(eg->ingress[i].netns, F_DUPFD_CLOEXEC, 0);
        if (token) *token = eg->ingress[i].token ? sf_xstrdup(eg->ingress[i].token) : NULL;
    }
    pthread_mutex_unlock(&eg->in_mu);
    *port = (uint16_t)p;
    return found;
}

bool eg_ingress_name(struct sf_sbx_egress *eg, const char *name)
{
    uint16_t port;
    return lookup(eg, name, &port, NULL, NULL);
}

/* May this sandbox go there? As to any host on the internet: yes, unless
 * its rules close the internet and do not name it. */
static bool allowed(struct sf_sbx_egress_att *a, const char *host)
{
    struct sf_netpolicy *p = eg_policy(a);
    bool ok = !sf_netpolicy_closed(p) || sf_netpolicy_name(p, host);
    sf_netpolicy_free(p);
    return ok;
}

int eg_ingress_connect(struct sf_sbx_egress_att *a, const uint8_t *head, size_t hlen, const char *host,
                       char *why, size_t whylen)
{
    uint16_t port;
    int netns = -1;
    char *token = NULL;
    if (!lookup(a->eg, host, &port, &netns, &token)) {
        sf_errf(why, whylen, "names %s, which is no sandbox here", host);
        return -ENOENT;
    }
    int rc = -EACCES;
    struct sf_httphead h;
    const struct sf_http_str *tok = NULL;
    if (!allowed(a, host)) {
        sf_errf(why, whylen, "names %s, which its rules do not allow", host);
    } else if (token && (sf_httphead_parse((const char *)head, hlen, &h) <= 0 ||
                         !(tok = sf_httphead_get(&h, "e2b-traffic-access-token")) ||
                         tok->n != strlen(token) || memcmp(tok->p, token, tok->n))) {
        sf_errf(why, whylen, "%s needs its traffic access token", host);
    } else if (netns < 0) {
        rc = -EMFILE;
        sf_errf(why, whylen, "no file descriptor left");
    } else {
        rc = sf_sbx_netns_socket(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (rc >= 0 && connect(rc, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
            close(rc);
            rc = -errno;
        }
        if (rc < 0) sf_errf(why, whylen, "%s: %s", host, strerror(-rc));
    }
    if (netns >= 0) close(netns);
    free(token);
    return rc;
}
