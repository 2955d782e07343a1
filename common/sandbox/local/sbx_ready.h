/* common/sandbox/local/sbx_ready.h: sandboxes made ahead of time.
 *
 * Creating a local sandbox takes 1-2 ms of wall time, most of it in the
 * kernel (namespaces, mounts). A helper thread keeps a few sandboxes with
 * the provider's default options ready, so a task that asks for nothing
 * special (no template, no extra binds, no injected headers, the default
 * disk) takes one instead of waiting for a create; the local provider keeps
 * one pool with network off and one with network on (the default policy:
 * a task's rules are set when it takes one, sandbox_local.c). Each ready sandbox serves exactly one
 * task, as a fresh one would: the work is the same, only moved off the
 * task's critical path — when the machine has a CPU to spare for it. The
 * helper runs SCHED_BATCH so that refilling never preempts a thread that
 * is running a task. Thread: take from any thread; new/free from one. */
#ifndef SF_SBX_READY_H
#define SF_SBX_READY_H

#include "log.h"
#include "sandbox.h"

struct sf_sbx_ready;

/* Make one sandbox with the default options; NULL (with the reason in err)
 * when it cannot. Called on the helper thread. */
typedef struct sf_sandbox *(*sf_sbx_ready_make_fn)(void *arg, char *err, size_t errlen);

/* Start keeping 'size' sandboxes ready (size <= 0: NULL, no pool). */
struct sf_sbx_ready *sf_sbx_ready_new(int size, sf_sbx_ready_make_fn make, void *arg,
                                      const struct sf_log *log);
/* A ready sandbox (the caller owns it), or NULL when none is ready. */
struct sf_sandbox *sf_sbx_ready_take(struct sf_sbx_ready *r);
/* Stop the helper and destroy the sandboxes nobody took. NULL ok. */
void sf_sbx_ready_free(struct sf_sbx_ready *r);

#endif
