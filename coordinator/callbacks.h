/* coordinator/callbacks.h: the coordinator's side of HTTP callbacks
 * (docs/protocol.md §8). A run's callback is not delivered by the
 * coordinator, which exits when the run ends: its document is queued in the
 * broker, where the workers' dispatchers deliver it with the same retries,
 * signatures and dead list as task callbacks. Main thread only. */
#ifndef SF_COORD_CALLBACKS_H
#define SF_COORD_CALLBACKS_H

#include <jansson.h>

#include "broker.h"
#include "callback.h"
#include "config.h"
#include "log.h"

/* run_callback.c: the spec from --callback-url / --callback-secret-ref /
 * --callback-header K:V (repeatable). 0 with *out NULL when there is no URL,
 * 0 with a spec, or -EINVAL with the reason (also: the flags without
 * --broker, since pending deliveries live in the broker). */
int coord_callback_from_flags(const char *url, const char *secret_ref,
                              const struct sf_strlist *headers, const char *broker,
                              struct sf_callback **out, char *err, size_t errlen);

/* Queue run_id's document for cb on b, once per run id (a resumed run that
 * finishes again does not queue a second one). Transient broker failures
 * are retried for up to 30 s. 0 queued (or queued before), -errno. Usable by
 * any command holding a broker (run, serve). */
int coord_callback_queue_run(struct sf_broker *b, const struct sf_callback *cb, const char *run_id,
                             json_t *doc, char *err, size_t errlen);

/* The same, opening the broker the flags name for the purpose. */
int coord_callback_queue_run_url(const struct sf_broker_flags *bf, const struct sf_log *lg,
                                 const struct sf_callback *cb, const char *run_id, json_t *doc,
                                 char *err, size_t errlen);

/* cmd_callbacks.c: `sandfleet-coordinator callbacks list|retry|purge`. */
int coord_cmd_callbacks(int argc, char **argv);

#endif
