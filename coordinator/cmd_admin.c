/* coordinator/cmd_admin.c: the start every `list | retry | purge` command
 * (dead, callbacks) shares: its checks, then its broker (cmd.h). */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int coord_admin_open(const struct coord_admin *a, char **pos, int npos, struct sf_log *lg,
                     const char **verb, struct sf_broker **b)
{
    char err[1024];
    *verb = npos == 1 ? pos[0] : "";
    if (strcmp(*verb, "list") && strcmp(*verb, "retry") && strcmp(*verb, "purge")) {
        fprintf(stderr, "sandfleet-coordinator %s: say list, retry or purge (see --help)\n", a->name);
        return SF_EXIT_USAGE;
    }
    if (!a->bf->url || sf_log_set_level(lg, a->log_level) < 0) {
        fprintf(stderr, "sandfleet-coordinator %s: --broker URL is required and --log-level one of "
                "debug, info, warn, error (see --help)\n", a->name);
        return SF_EXIT_USAGE;
    }
    if (strcmp(*verb, "list") && !a->all == !a->nids) {
        fprintf(stderr, "sandfleet-coordinator %s %s: name what to act on with --id ID... or --all\n",
                a->name, *verb);
        return SF_EXIT_USAGE;
    }
    struct sf_broker_cfg bcfg = { .log = lg };
    int rc = sf_broker_open(a->bf, &bcfg, a->timeout_ms, NULL, NULL, b, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "sandfleet-coordinator %s: %s\n", a->name, err);
        return rc == -EINVAL ? SF_EXIT_USAGE : SF_EXIT_BROKEN;
    }
    return 0;
}
