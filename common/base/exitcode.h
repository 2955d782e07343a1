/* common/base/exitcode.h: the exit codes of every sandfleet program and
 * command, in one place (docs/operations.md, "Exit codes"). Only main() and
 * the commands' entry points return them; library code returns -errno. */
#ifndef SF_EXITCODE_H
#define SF_EXITCODE_H

enum sf_exit_code {
    SF_EXIT_OK = 0,      /* done: the workflow succeeded, the worker drained, ... */
    SF_EXIT_FAILED = 1,  /* run: the workflow failed; worker and serve: stopped with
                            work left to leases / the next start; dead, callbacks:
                            some named ids were not found */
    SF_EXIT_USAGE = 2,   /* bad flags or input: nothing was done */
    SF_EXIT_BROKEN = 3,  /* the broker refused us or is unusable, or the sandbox
                            backend cannot run here */
};

#endif
