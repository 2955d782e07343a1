/* common/model/policy.c: see policy.h. */
#include "policy.h"
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

void sf_policy_defaults(struct sf_policy *p)
{
    *p = (struct sf_policy){
        .max = { .memory_mb = SF_POLICY_DEFAULT_MAX_MEMORY_MB, .pids = SF_POLICY_DEFAULT_MAX_PIDS,
                 .disk_mb = SF_POLICY_DEFAULT_MAX_DISK_MB, .cpu_s = SF_POLICY_DEFAULT_MAX_CPU_S },
        .max_timeout_s = SF_POLICY_DEFAULT_MAX_TIMEOUT_S,
    };
}

/* One capped limit: the field in struct sf_limits, its wire name, its flag. */
struct cap {
    size_t off;
    const char *name, *flag;
};

#define CAP(f, flag) { offsetof(struct sf_limits, f), "limits." #f, flag }
static const struct cap caps[] = {
    CAP(memory_mb, "--max-memory-mb"),
    CAP(pids, "--max-pids"),
    CAP(disk_mb, "--max-disk-mb"),
    CAP(cpu_s, "--max-cpu-s"),
    CAP(nofile, NULL),
};

static int64_t field(const struct sf_limits *l, const struct cap *c)
{
    return *(const int64_t *)(const void *)((const char *)l + c->off);
}

static int refuse(const struct sf_policy_ask *a, char *err, size_t errlen, const char *name,
                  const char *asked, const char *cap, const char *flag)
{
    sf_errf(err, errlen, "%s%s%s %s is over this worker's cap of %s (%s)", a->what ? a->what : "",
            a->what ? ": " : "", name, asked, cap, flag ? flag : "the worker's own limit");
    return -EPERM;
}

int sf_policy_check(const struct sf_policy *p, const struct sf_policy_ask *a, char *err,
                    size_t errlen)
{
    char asked[32], cap[32];
    if (!p) return 0;
    for (size_t i = 0; a->limits && i < sizeof(caps) / sizeof(caps[0]); i++) {
        int64_t want = field(a->limits, &caps[i]), max = field(&p->max, &caps[i]);
        if (!max || want <= max) continue;
        snprintf(asked, sizeof(asked), "%lld", (long long)want);
        snprintf(cap, sizeof(cap), "%lld", (long long)max);
        return refuse(a, err, errlen, caps[i].name, asked, cap, caps[i].flag);
    }
    if (p->no_network && a->network) {
        sf_errf(err, errlen, "%s%sasks for network, which this worker refuses (--no-network)",
                a->what ? a->what : "", a->what ? ": " : "the step ");
        return -EPERM;
    }
    if (p->max_timeout_s > 0 && a->timeout_s > p->max_timeout_s) {
        snprintf(asked, sizeof(asked), "%g", a->timeout_s);
        snprintf(cap, sizeof(cap), "%g", p->max_timeout_s);
        return refuse(a, err, errlen, "timeout_s", asked, cap, "--max-timeout-s");
    }
    return 0;
}

void sf_policy_fill(const struct sf_policy *p, struct sf_limits *l, double *timeout_s)
{
    struct sf_limits d;
    if (!p) return;
    sf_limits_defaults(&d);
    for (size_t i = 0; l && i < sizeof(caps) / sizeof(caps[0]); i++) {
        int64_t *v = (int64_t *)(void *)((char *)l + caps[i].off);
        int64_t def = field(&d, &caps[i]), max = field(&p->max, &caps[i]);
        if (*v) continue;
        /* The default of cpu_s is "unlimited" (0): under a cap it is the cap. */
        *v = max && (!def || def > max) ? max : def;
    }
    if (timeout_s && *timeout_s <= 0 && p->max_timeout_s > 0) *timeout_s = p->max_timeout_s;
}
