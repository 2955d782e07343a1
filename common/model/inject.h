/* common/model/inject.h: headers the egress path adds to a sandbox's HTTPS
 * requests, so an agent can call an API whose key it never holds
 * (docs/workflows.md "Secrets the agent never sees", docs/security.md):
 *
 *   "inject": {"api.openai.com": {"headers": {"Authorization": "Bearer ${secret:OPENAI_API_KEY}"}},
 *              "*.example.com":  {"headers": {"X-Api-Key": "${secret:EXAMPLE_KEY}"}}}
 *
 * Only NAMES travel (in the task, like "secrets"); whoever runs the task
 * resolves them (secrets.h) and hands the resolved rules to the sandbox,
 * whose egress path intercepts TLS to those hosts only and adds the headers
 * there. The same as E2B's network rules[host].transform.headers.
 *
 * Host keys: a name or "*.domain" (netpolicy.h); an exact rule wins over
 * wildcards, the longest wildcard over shorter ones. Header names are HTTP
 * tokens; values may not hold CR, LF or NUL (before or after substitution);
 * "${secret:NAME}" may appear anywhere in a value, "$$" is a "$".
 * Thread: reentrant. */
#ifndef SF_INJECT_H
#define SF_INJECT_H

#include <jansson.h>
#include <stddef.h>

#include "netpolicy.h"
#include "secrets.h"

#define SF_INJECT_MAX_HOSTS 32
#define SF_INJECT_MAX_HEADERS 16
#define SF_INJECT_MAX_VALUE 8192

/* Validate the JSON form. 0, or -EINVAL with the first problem in err. */
int sf_inject_check(const json_t *v, char *err, size_t errlen);
/* The distinct secret names its values refer to: a new array (maybe empty). */
json_t *sf_inject_secret_names(const json_t *v);

struct sf_inject_header {
    char *name;
    char *value;                    /* resolved: holds secrets; wiped by sf_inject_free */
};
struct sf_inject_rule {
    struct sf_netname host;
    struct sf_inject_header *h;
    size_t n;
};
struct sf_inject {
    struct sf_inject_rule *r;
    size_t n;
};

/* The resolved rules of a checked 'v', every ${secret:NAME} replaced from
 * 'sv' (which must hold every name of sf_inject_secret_names). NULL with a
 * reason when a value is missing or would hold a line break. */
struct sf_inject *sf_inject_build(const json_t *v, const struct sf_secret_values *sv, char *err,
                                  size_t errlen);
struct sf_inject *sf_inject_dup(const struct sf_inject *in);
/* Wipe every value, free. NULL is a no-op. */
void sf_inject_free(struct sf_inject *in);
/* The rule for a host (exact first, then the longest matching wildcard), or NULL. */
const struct sf_inject_rule *sf_inject_match(const struct sf_inject *in, const char *host);
/* A copy holding only that rule (free with sf_inject_free), or NULL. */
struct sf_inject *sf_inject_pick(const struct sf_inject *in, const char *host);

#endif
