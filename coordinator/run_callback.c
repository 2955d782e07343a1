/* coordinator/run_callback.c: a run's callback (see callbacks.h). */
#include "callbacks.h"
#include "retry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int coord_callback_from_flags(const char *url, const char *secret_ref,
                              const struct sf_strlist *headers, const char *broker,
                              struct sf_callback **out, char *err, size_t errlen)
{
    json_t *spec, *h;
    *out = NULL;
    if (!url) {
        if (secret_ref || headers->n) {
            sf_errf(err, errlen, "--callback-secret-ref and --callback-header need --callback-url");
            return -EINVAL;
        }
        return 0;
    }
    if (!broker) {
        sf_errf(err, errlen, "--callback-url needs --broker: pending deliveries are kept in the broker "
                "and delivered by the workers");
        return -EINVAL;
    }
    spec = json_pack("{s:s}", "url", url);
    h = json_object();
    for (size_t i = 0; i < headers->n; i++) {
        const char *colon = strchr(headers->v[i], ':');
        if (!colon || colon == headers->v[i]) {
            sf_errf(err, errlen, "--callback-header must be NAME:VALUE");
            json_decref(h);
            json_decref(spec);
            return -EINVAL;
        }
        char *name = sf_xstrndup(headers->v[i], (size_t)(colon - headers->v[i]));
        const char *val = colon + 1;
        while (*val == ' ') val++;
        json_object_set_new(h, name, json_string(val));
        free(name);
    }
    if (json_object_size(h)) json_object_set(spec, "headers", h);
    json_decref(h);
    if (secret_ref) json_object_set_new(spec, "secret_ref", json_string(secret_ref));
    *out = sf_callback_from_json(spec, err, errlen);
    json_decref(spec);
    return *out ? 0 : -EINVAL;
}

int coord_callback_queue_run(struct sf_broker *b, const struct sf_callback *cb, const char *run_id,
                             json_t *doc, char *err, size_t errlen)
{
    char *body = json_dumps(doc, JSON_COMPACT);
    char *id = sf_callback_run_id(run_id);
    char *rec = sf_callback_record_new(cb, id, "run", run_id, NULL, body, strlen(body), sf_wall_ms());
    char *once = sf_xasprintf("sf:run:%s:callback", run_id);
    struct sf_retry rt = SF_RETRY(b->cfg.log, "queueing the run's callback", 30000);
    rt.run_id = run_id;
    int rc;
    while ((rc = sf_broker_callback_enqueue(b, id, rec, strlen(rec), once, err, errlen)) < 0 &&
           sf_broker_transient(rc) && sf_retry_wait(&rt, err)) {}
    free(once);
    free(rec);
    free(id);
    free(body);
    return rc < 0 ? rc : 0;
}

int coord_callback_queue_run_url(const struct sf_broker_flags *bf, const struct sf_log *lg,
                                 const struct sf_callback *cb, const char *run_id, json_t *doc,
                                 char *err, size_t errlen)
{
    struct sf_broker_cfg bcfg = { .log = lg };
    struct sf_broker *b;
    int rc = sf_broker_open(bf, &bcfg, 30000, NULL, NULL, &b, err, errlen);
    if (rc < 0) return rc;
    rc = coord_callback_queue_run(b, cb, run_id, doc, err, errlen);
    if (rc == 0)
        SF_LOG(lg, SF_LOG_INFO, run_id, NULL, "run callback queued for delivery by the workers of queue '%s'",
               b->cfg.queue);
    sf_broker_free(b);
    return rc;
}
