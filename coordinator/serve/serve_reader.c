/* coordinator/serve/serve_reader.c: the submissions stream reader thread.
 * It reads sf:submissions in the consumer group "coordinators" (Kafka: the
 * sandfleet.submissions topic, group "sandfleet-coordinators"), so several
 * serve instances share them, and takes an entry only while this instance
 * has room (runs active + submissions queued < --max-runs). A submission
 * is acked only once its run's document is stored, so a serve restarted
 * under the same --id (on Kafka: whoever gets the partition) first re-reads
 * the entries it held and resumes those runs: a stream submission's claim
 * is "stream:<entry id>", which the same entry presents again.
 * A broken submission gets a rejected document under its run id when that
 * id can be claimed for it (a new id: the document is its run); one whose
 * run_id is taken gets it under the entry's own id (sub-<entry id>), never
 * under an id another run owns. This thread may wait for the broker: it is
 * not the loop. */
#include "retry.h"
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void reject(struct serve *sv, const char *run_id, const char *handle, const char *reply_to,
                   const char *why)
{
    char home[160], claim[112], err[512];
    snprintf(home, sizeof(home), SERVE_STREAM_ID_PREFIX "%s", handle);
    snprintf(claim, sizeof(claim), "stream:%s", handle);
    struct sf_run_owner mine = { "stream", claim, NULL };
    if (run_id && strcmp(run_id, home) && sf_broker_claim_run(sv->b, run_id, &mine, false, err, sizeof(err)) >= 0)
        sf_strlcpy(home, run_id, sizeof(home));
    SF_LOG(sv->lg, SF_LOG_WARN, home, NULL, "submission %s rejected: %s", handle, why);
    sf_counter_inc(sv->rejected);
    serve_store_now(sv, home, handle, reply_to, NULL, serve_rejected_doc(home, why));
}

/* One stream entry: its fields are a JSON object of strings (broker.h). */
static void take(struct serve *sv, const struct sf_delivery *d)
{
    json_t *f = json_loads(d->data, 0, NULL);
    const char *wf = json_string_value(json_object_get(f, "workflow"));
    const char *reply = json_string_value(json_object_get(f, "reply_to"));
    const char *rid = json_string_value(json_object_get(f, "run_id"));
    struct serve_req *r = sf_xcalloc(1, sizeof(*r));
    struct sf_buf errs = {0};
    char why[512];
    r->kind = SERVE_SUBMIT;
    snprintf(r->run_id, sizeof(r->run_id), SERVE_STREAM_ID_PREFIX "%s", d->handle);
    if (rid && sf_valid_name(rid, SF_RUN_ID_MAX)) sf_strlcpy(r->run_id, rid, sizeof(r->run_id));
    sf_strlcpy(r->handle, d->handle, sizeof(r->handle));
    sf_strlcpy(r->owner, "stream", sizeof(r->owner));
    snprintf(r->claim, sizeof(r->claim), "stream:%s", d->handle);
    if (reply && sf_broker_reply_to_check(sv->b, reply, why, sizeof(why)) < 0) {
        reject(sv, r->run_id, d->handle, NULL, why);                  /* answered nowhere but its document */
        goto out;
    }
    if (d->problem[0] || !wf) {
        reject(sv, r->run_id, d->handle, reply, d->problem[0] ? d->problem : "entry has no 'workflow' field");
        goto out;
    }
    if (serve_submission_parse(wf, strlen(wf), &r->sub, &errs) < 0) {
        reject(sv, r->run_id, d->handle, reply, errs.data);
        goto out;
    }
    if ((r->sub.reply_to && sf_broker_reply_to_check(sv->b, r->sub.reply_to, why, sizeof(why)) < 0) ||
        sf_broker_workflow_supported(sv->b, r->sub.wf, r->sub.priority, why, sizeof(why)) < 0) {
        reject(sv, r->run_id, d->handle, reply, why);
        goto out;
    }
    if (reply && !r->sub.reply_to) r->sub.reply_to = sf_xstrdup(reply);
    if (r->sub.run_id) sf_strlcpy(r->run_id, r->sub.run_id, sizeof(r->run_id));
    char *keep_reply = sf_xstrdup(r->sub.reply_to);
    int rc = serve_table_submit(&sv->tab, r);   /* r is the loop's from here */
    if (rc == 0) r = NULL;
    else if (rc == -EEXIST) reject(sv, NULL, d->handle, keep_reply, "run_id is taken by another run");
    /* -ESHUTDOWN (draining), -EAGAIN (full): left unacked for later. */
    free(keep_reply);
out:
    serve_req_free(r);
    sf_buf_free(&errs);
    json_decref(f);
}

static bool reader_stopping(void *arg) { return atomic_load(&((struct serve *)arg)->stop_reader); }

static void *reader_main(void *arg)
{
    struct serve *sv = arg;
    struct sf_delivery d[4];
    bool pending = true;              /* first what this consumer held before a restart */
    char err[512];
    struct sf_retry rt = SF_RETRY(sv->lg, "reading submissions", -1);
    rt.stop = reader_stopping;
    rt.stop_arg = sv;
    while (!atomic_load(&sv->stop_reader)) {
        size_t n = 0;
        long busy = atomic_load(&sv->active) + (long)serve_table_queued(&sv->tab);
        if (!pending && busy >= sv->cfg->max_runs) {
            /* Take nothing, but keep our place in the group served (on
             * Kafka another instance joining waits for us to give up
             * partitions). */
            (void)sv->b->ops->sub_fetch(sv->b, sv->consumer, false, d, 0, 0, &n, err, sizeof(err));
            sf_sleep_ms(100);
            continue;
        }
        int rc = sv->b->ops->sub_fetch(sv->b, sv->consumer, pending, d, pending ? 4 : 1, 500, &n,
                                       err, sizeof(err));
        if (rc < 0) {
            sf_health_set_connected(&sv->health, 0);
            sf_retry_wait(&rt, err);
            continue;
        }
        sf_retry_reset(&rt);
        sf_health_set_connected(&sv->health, 1);
        for (size_t i = 0; i < n; i++) {
            take(sv, &d[i]);
            sf_delivery_clear(&d[i]);
        }
        if (pending && n == 0) pending = false;
    }
    return NULL;
}

int serve_reader_start(struct serve *sv)
{
    if (pthread_create(&sv->reader, NULL, reader_main, sv) != 0) return -EAGAIN;
    sv->reader_started = true;
    return 0;
}

void serve_reader_stop(struct serve *sv)
{
    atomic_store(&sv->stop_reader, 1);
    if (sv->reader_started) pthread_join(sv->reader, NULL);
    sv->reader_started = false;
}
