/* common/model/resources.c: see resources.h. */
#include "resources.h"

void sf_limits_defaults(struct sf_limits *l)
{
    l->memory_mb = 512;
    l->pids = 256;
    l->disk_mb = 256;
    l->cpu_s = 0;
    l->nofile = 1024;
}

void sf_limits_merge(struct sf_limits *l, const struct sf_limits *d)
{
    if (!l->memory_mb) l->memory_mb = d->memory_mb;
    if (!l->pids) l->pids = d->pids;
    if (!l->disk_mb) l->disk_mb = d->disk_mb;
    if (!l->cpu_s) l->cpu_s = d->cpu_s;
    if (!l->nofile) l->nofile = d->nofile;
}
