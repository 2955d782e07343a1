/* placeholder until the local backend lands (being written now) */
#include "sandbox.h"
#include "util.h"
struct sf_sandbox_provider *sf_sandbox_local_new(const struct sf_provider_config *cfg,
                                                 char *errstr, size_t errlen)
{
    (void)cfg;
    sf_errf(errstr, errlen, "local sandbox backend not built");
    return NULL;
}
