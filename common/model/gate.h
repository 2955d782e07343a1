/* common/model/gate.h: concurrency keys and token buckets inside one process
 * — the gates of a central run (`coordinator run` without a broker), where
 * the coordinator's own pool runs every task. Through Redis the same fields
 * are enforced fleet-wide by the broker instead (docs/protocol.md §9).
 *
 * A task with a concurrency key starts only while fewer than its `limit`
 * tasks of that key run; a task with a rate key starts only when the key's
 * bucket (capacity `burst`, refilled at `per_s` per second, full at first
 * use) has a token. Both are checked before either is taken. The task's
 * own limit/per_s/burst are used at each check: give every task of a key
 * the same values.
 *
 * Pure: times are passed in (CLOCK_MONOTONIC ms). Ownership: the caller
 * owns the gate. Thread: one thread (the coordinator's loop).
 */
#ifndef SF_GATE_H
#define SF_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include "resources.h"

struct sf_gate;

struct sf_gate *sf_gate_new(void);
void sf_gate_free(struct sf_gate *g);     /* NULL is a no-op */

/* May the task 'task_id' with these gates (either may have no key) start at
 * now_ms? true: its concurrency slot and its token are taken (give the slot
 * back with sf_gate_release). false: nothing is taken and *retry_at is the
 * earliest time a token will be there, or -1 when it waits for a slot
 * (released by a finishing task). */
bool sf_gate_admit(struct sf_gate *g, const struct sf_concurrency *c, const struct sf_rate *r,
                   const char *task_id, int64_t now_ms, int64_t *retry_at);

/* The task finished: its slot is free again. Unknown ids are ignored. */
void sf_gate_release(struct sf_gate *g, const char *task_id);

/* Tasks holding a slot of 'key' now (tests, status). */
int64_t sf_gate_running(const struct sf_gate *g, const char *key);

#endif
