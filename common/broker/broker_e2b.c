/* common/broker/broker_e2b.c: helpers over the E2B fleet ops of broker.h. */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>

const char *sf_broker_e2b_missing(const struct sf_broker *b)
{
    static __thread char msg[400];
    const struct sf_broker_ops *o = b->ops;
    if (o->e2b_beat && o->e2b_workers && o->e2b_put && o->e2b_get && o->e2b_del && o->e2b_list &&
        o->e2b_owned && o->e2b_reap)
        return NULL;
    /* Decided, not pending: docs/e2b.md "Gateway" says why Kafka has none. */
    snprintf(msg, sizeof(msg),
             "the E2B fleet keeps sandbox records (sandbox -> worker, tokens, metadata, timeouts) "
             "and E2B worker capacity as keys it reads and updates in place; the %s backend "
             "has no such store (missing: the e2b_* broker ops). Use a redis:// broker for the "
             "E2B gateway and its workers (the task queue may stay on %s in other processes)",
             o->scheme, o->scheme);
    return msg;
}

const char *sf_broker_url_e2b_missing(const char *url)
{
    char err[256];
    struct sf_broker_cfg cfg = { 0 };
    struct sf_broker *b = url ? sf_broker_new(url, &cfg, err, sizeof(err)) : NULL;
    const char *missing = b ? sf_broker_e2b_missing(b) : NULL;   /* a bad URL: said later */
    sf_broker_free(b);
    return missing;
}

void sf_broker_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}
