/* common/sandbox/local/sbx_proc.h: the local backend's proc host
 * (sandbox_proc.h): one thread per host polls the sandbox's control socket
 * and every process's pipes, speaking the in-sandbox init's SPAWN/SIGNAL
 * messages (sbx_init.h). Private to the local backend. */
#ifndef SF_SBX_PROC_H
#define SF_SBX_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox_proc.h"

/* Take over the control socket 'ctl' (borrowed; the sandbox must outlive
 * the host) and start the host thread. 0, or -errno with a message. */
/* user_mapped: the sandbox maps uid 1000 (else a spawn as 1000 runs as its root).
 * env_extra: environment defaults of every process (sf_sbx_exec_defaults;
 * borrowed, may be NULL). */
int sf_sbx_proc_host_new(int ctl, bool user_mapped, const char *const *env_extra,
                         struct sf_proc_host **out, char *err, size_t errlen);

#endif
