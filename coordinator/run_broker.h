/* coordinator/run_broker.h: the broker executor (run_broker.c). Loop thread. */
#ifndef SF_RUN_BROKER_H
#define SF_RUN_BROKER_H

#include "coord.h"

/* Connect to cfg->broker (waiting up to 30 s for it, with a clear message
 * while it is unreachable), check that run_id is new or belongs to this
 * workflow (then the run resumes), and start reading its results. NULL with
 * the reason in err; "shared"-sandbox workflows are refused. */
struct coord_exec *coord_exec_broker_new(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                                         const char *run_id, const struct sf_log *lg,
                                         char *err, size_t errlen);
/* Record the run's final status ("succeeded"/"failed") in the run state. */
int coord_exec_broker_finish(struct coord_exec *ex, const char *status, char *err, size_t errlen);

#endif
