/* common/sandbox_e2b.c: the E2B cloud backend (issue #6). Until it lands,
 * asking for it fails with a clear message instead of running anything. */
#include "sandbox.h"
#include "util.h"

struct sf_sandbox_provider *sf_sandbox_e2b_new(const struct sf_provider_config *cfg,
                                               char *errstr, size_t errlen)
{
    (void)cfg;
    sf_errf(errstr, errlen, "the e2b sandbox backend is not in this build yet; "
                            "use --sandbox local or --sandbox process");
    return NULL;
}
