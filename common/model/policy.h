/* common/model/policy.h: the operator's policy on what a machine runs,
 * whatever the work's source (a task from a broker, whoever put it there; a
 * bundle's steps; an E2B create). The wire says what a task asks for; the
 * policy says what this worker grants. A request over a cap is refused with a
 * reason that names the cap and its flag — never silently clamped
 * (docs/security.md, "Operator caps").
 *
 * What the task leaves unset is filled under the caps: a missing timeout gets
 * the timeout cap, a default limit above a cap is lowered to the cap
 * (sf_policy_fill), so "no value" never means "more than the cap".
 *
 * Network: whether network steps run at all is here (--no-network); which
 * egress they get (--egress-allow/--egress-deny/--egress-dns) is enforced by
 * the sandbox's egress path, so those lists are in the sandbox provider's
 * configuration (sandbox.h) and nowhere else.
 * Thread: plain data set up at start; the functions are reentrant. */
#ifndef SF_POLICY_H
#define SF_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "resources.h"

/* Defaults of the worker's caps (docs/operations.md): per sandbox. */
#define SF_POLICY_DEFAULT_MAX_MEMORY_MB 4096
#define SF_POLICY_DEFAULT_MAX_PIDS 4096
#define SF_POLICY_DEFAULT_MAX_DISK_MB 4096
#define SF_POLICY_DEFAULT_MAX_CPU_S 0          /* none: the timeout bounds it */
#define SF_POLICY_DEFAULT_MAX_TIMEOUT_S 3600

struct sf_policy {
    /* Caps on what a step may ask for; a 0 field is no cap. nofile has no
     * flag: RLIMIT_NOFILE cannot exceed the worker's own hard limit anyway. */
    struct sf_limits max;
    double max_timeout_s;       /* wall clock per run; 0: no cap */
    bool no_network;            /* --no-network: nothing that asks for network runs */
    /* The cap on agent stdout is the exec's output_cap (--output-cap): it is
     * not asked for by a task, only enforced while the agent runs. */
};

/* What one sandbox run asks for. */
struct sf_policy_ask {
    const char *what;           /* for the reason: "step 'b'", NULL = nothing */
    const struct sf_limits *limits;   /* NULL: the defaults */
    double timeout_s;           /* 0: none asked */
    bool network;
};

/* The documented defaults (SF_POLICY_DEFAULT_*). */
void sf_policy_defaults(struct sf_policy *p);

/* 0 when 'a' fits, else -EPERM with the reason naming the cap and its flag:
 * "limits.memory_mb 100000 is over this worker's cap of 4096
 * (--max-memory-mb)". p NULL: no policy, everything fits. */
int sf_policy_check(const struct sf_policy *p, const struct sf_policy_ask *a, char *err,
                    size_t errlen);

/* Fill what a checked request left unset under the caps: 0 limits get the
 * sandbox defaults (sf_limits_defaults) lowered to the caps, a timeout of 0
 * gets the timeout cap. Explicit values are left as they are. l may be
 * NULL (only the timeout). p NULL: nothing changes. */
void sf_policy_fill(const struct sf_policy *p, struct sf_limits *l, double *timeout_s);

#endif
