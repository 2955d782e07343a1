/* coordinator/cmd.h: the coordinator's subcommands besides `run`, one file
 * each; main.c only dispatches. Each takes main's argc/argv (argv[1] is the
 * subcommand) and returns the process exit code (exitcode.h): 0 done,
 * 1 partly done (e.g. some ids not found), 2 usage, 3 the broker is
 * unusable. Main thread only. */
#ifndef SF_COORD_CMD_H
#define SF_COORD_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "exitcode.h"
#include "log.h"

int coord_cmd_status(int argc, char **argv);   /* cmd_status.c */
int coord_cmd_dead(int argc, char **argv);     /* cmd_dead.c */
int coord_cmd_serve(int argc, char **argv);    /* serve.c */

/* cmd_admin.c: what every `list | retry | purge` command checks before it
 * acts (the verb, the only positional; --broker; the log level; --id or
 * --all for retry and purge, never a default: both change the fleet's
 * state), then its broker. 0 with *verb (pos[0]) and *b (the caller's to
 * free), or the exit code with the reason printed on stderr. */
struct coord_admin {
    const char *name;                          /* "dead", "callbacks" */
    const struct sf_broker_flags *bf;
    const char *log_level;
    bool all;
    size_t nids;
    int timeout_ms;
};
int coord_admin_open(const struct coord_admin *a, char **pos, int npos, struct sf_log *lg,
                     const char **verb, struct sf_broker **b);

/* cmd_status.c: the status document of b's queue (also GET /api/status):
 * {"broker","queue","depth","waiting","in_flight","delayed",
 *  "dead":{"count","recent":[{"id","time_ms","reason","task_id"}]},
 *  "workers":[{... "heartbeat_age_ms","live"}], "runs":[runs in progress]}.
 * Workers are live when their last heartbeat is younger than 3 leases.
 * Thread-safe (broker calls only). */
int coord_status_collect(struct sf_broker *b, int64_t lease_ms, size_t n_recent_dead,
                         json_t **out, char *err, size_t errlen);

#endif
