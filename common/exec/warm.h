/* common/exec/warm.h: warm agents — steps declared `"serve": "lines"`
 * (serve_mode.h, docs/workflows.md "Warm agents").
 *
 * Such an agent reads one JSON input per line on stdin and writes one JSON
 * output per line on stdout. Instead of a fresh sandbox per task, a pool
 * keeps agents running, each in its own sandbox, keyed by (run, step): a
 * task takes an idle agent of its key (or starts one), gets its input as
 * one line, and its result is the next line the agent writes. Elements of
 * one map step therefore share the agent's memory; runs and steps never
 * share an agent.
 *
 * What fails a task fails that task only and replaces the agent: the
 * agent exits or is killed (crashed, or an error with its exit code), its
 * line is not JSON or longer than the output cap (error), no line comes
 * within the task's timeout_s (timeout). Output after the line of a task
 * (a second line, say) means the agent and the worker disagree about
 * which line answers which input: that agent is replaced before it serves
 * again. stderr written during a task is that task's stderr_tail. Each
 * agent's sandbox gets the task's files in /workspace when it starts, its
 * environment has SF_RUN_ID, SF_STEP and SF_SERVE=lines (no per-task
 * variables: tasks differ by their input line), and cpu_s does not apply
 * (it would count every input the agent ever served; timeout_s bounds each
 * one).
 *
 * The pool holds at most max_agents agents (busy or idle; the number of
 * slots of whoever runs tasks); an idle agent of another key is stopped to
 * make room, and idle agents stop after idle_ms.
 * Thread: every function may be called from any thread. */
#ifndef SF_WARM_H
#define SF_WARM_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"
#include "task.h"

struct sf_exec_cfg;
struct sf_warm_pool;

/* idle_ms <= 0: 60 s. */
struct sf_warm_pool *sf_warm_pool_new(size_t max_agents, int64_t idle_ms);
/* Stops every agent (they must all be idle: no sf_warm_exec running). NULL ok. */
void sf_warm_pool_free(struct sf_warm_pool *wp);

/* Run 't' (t->serve set) on an agent of its (run, step) from 'wp', with the
 * limits and timeout already under the operator's caps, on the root file
 * system 'rootfs' (its template's; NULL: the default). Returns the result;
 * NULL when this backend cannot keep a command running (no start op): the
 * caller then runs the task cold. *create_ms gets the time spent starting
 * an agent (-1 when an idle one served it). */
struct sf_result *sf_warm_exec(struct sf_warm_pool *wp, struct sf_sandbox_provider *p,
                               const struct sf_task *t, const struct sf_limits *limits,
                               const char *rootfs, double timeout_s, const struct sf_exec_cfg *cfg,
                               int64_t *create_ms);

/* Stop agents idle since before now - idle_ms. Returns how many stopped. */
size_t sf_warm_pool_sweep(struct sf_warm_pool *wp, int64_t now_ms);

/* Agents alive (busy or idle), for metrics and tests. */
size_t sf_warm_pool_size(struct sf_warm_pool *wp);

#endif
