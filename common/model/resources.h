/* common/model/resources.h: what a task may use — the resource limits a step
 * asks for (workflow `limits`, task wire field `limits`) and the sandbox
 * enforces. A leaf header so the task model does not pull in the sandbox
 * interface, and the sandbox does not pull in the task model.
 * Thread: plain data; the functions are reentrant. */
#ifndef SF_RESOURCES_H
#define SF_RESOURCES_H

#include <stdint.h>

/* Resource limits. 0 means "use the default" (see sf_limits_defaults). */
struct sf_limits {
    int64_t memory_mb; /* cgroup memory.max (v2) / memory.limit_in_bytes (v1) */
    int64_t pids;      /* cgroup pids.max */
    int64_t disk_mb;   /* size of the sandbox's writable tmpfs */
    int64_t cpu_s;     /* RLIMIT_CPU; 0 = unlimited */
    int64_t nofile;    /* RLIMIT_NOFILE */
};

/* Fleet-wide gates on task starts (docs/protocol.md §9, docs/workflows.md):
 * at most `limit` tasks with a concurrency key run at once, and a token
 * bucket of `burst` refilled at `per_s` per second starts tasks with a rate
 * key. key[0] == '\0': no gate. Plain values, copied by assignment. */
#define SF_GATE_KEY_MAX 100
struct sf_concurrency {
    char key[SF_GATE_KEY_MAX + 1];
    int64_t limit;     /* 1 .. 1,000,000 */
};
struct sf_rate {
    char key[SF_GATE_KEY_MAX + 1];
    double per_s;      /* SF_RATE_MIN_PER_S .. 1,000,000 */
    int64_t burst;     /* 1 .. 1,000,000; default: per_s rounded up */
};
/* Priorities: 0 (the default, lowest) .. 9, higher first. */
/* The slowest rate a task may ask for: one start per 11.6 days. Slower ones
 * are refused, not run: the wait for a token (1000 / per_s ms) of a rate
 * like 1e-300 overflows every integer it is turned into. */
#define SF_RATE_MIN_PER_S 1e-6
/* The longest timeout_s a task may ask for (a week, as a workflow's step):
 * a wire value like 1e300 would overflow the sandbox's deadline. */
#define SF_TIMEOUT_MAX_S (7 * 24 * 3600)

#define SF_PRIORITY_MAX 9

/* Defaults: memory 512 MiB, pids 256, disk 256 MiB, CPU unlimited, 1024 fds. */
void sf_limits_defaults(struct sf_limits *l);
/* Fill every 0 field of 'l' from 'defaults'. */
void sf_limits_merge(struct sf_limits *l, const struct sf_limits *defaults);

#endif
