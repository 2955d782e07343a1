/* common/broker/broker_callback.c: the callback ops of broker.h behind wrappers
 * that say clearly when a backend has none (Redis and Kafka have them:
 * broker_redis_cb.c, broker_kafka_cb.c). */
#include "broker.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int unsupported(const struct sf_broker *b, char *err, size_t errlen)
{
    sf_errf(err, errlen, "callbacks are not supported by the %s backend yet", b->ops->scheme);
    return -ENOTSUP;
}

bool sf_broker_has_callbacks(const struct sf_broker *b)
{
    const struct sf_broker_ops *o = b->ops;
    return o->cb_enqueue && o->cb_claim && o->cb_settle && o->cb_list && o->cb_requeue && o->cb_purge;
}

int sf_broker_callback_enqueue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                               const char *once_key, char *err, size_t errlen)
{
    if (!b->ops->cb_enqueue) return unsupported(b, err, errlen);
    return b->ops->cb_enqueue(b, id, rec, len, once_key, err, errlen);
}

int sf_broker_callback_claim(struct sf_broker *b, int64_t lease_ms, struct sf_callback_claim *out,
                             size_t max, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    if (!b->ops->cb_claim) return unsupported(b, err, errlen);
    return b->ops->cb_claim(b, lease_ms, out, max, n, err, errlen);
}

void sf_callback_claim_clear(struct sf_callback_claim *c)
{
    if (!c) return;
    free(c->id);
    free(c->record);
    memset(c, 0, sizeof(*c));
}

int sf_broker_callback_settle(struct sf_broker *b, const char *id, const char *token,
                              enum sf_callback_settle how, const char *rec, size_t len,
                              int64_t delay_ms, char *err, size_t errlen)
{
    if (!b->ops->cb_settle) return unsupported(b, err, errlen);
    return b->ops->cb_settle(b, id, token, how, rec, len, delay_ms, err, errlen);
}

int sf_broker_callback_list(struct sf_broker *b, bool dead, size_t max, json_t **out,
                            char *err, size_t errlen)
{
    *out = NULL;
    if (!b->ops->cb_list) return unsupported(b, err, errlen);
    return b->ops->cb_list(b, dead, max, out, err, errlen);
}

int sf_broker_callback_requeue(struct sf_broker *b, const char *id, const char *rec, size_t len,
                               char *err, size_t errlen)
{
    if (!b->ops->cb_requeue) return unsupported(b, err, errlen);
    return b->ops->cb_requeue(b, id, rec, len, err, errlen);
}

int sf_broker_callback_purge(struct sf_broker *b, bool dead, const char *const *ids, size_t n,
                             char *err, size_t errlen)
{
    if (!b->ops->cb_purge) return unsupported(b, err, errlen);
    return b->ops->cb_purge(b, dead, ids, n, err, errlen);
}
