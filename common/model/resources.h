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

/* Defaults: memory 512 MiB, pids 256, disk 256 MiB, CPU unlimited, 1024 fds. */
void sf_limits_defaults(struct sf_limits *l);
/* Fill every 0 field of 'l' from 'defaults'. */
void sf_limits_merge(struct sf_limits *l, const struct sf_limits *defaults);

#endif
