/* coordinator/serve/serve_e2b.c: `serve --e2b-listen`: the E2B gateway of the
 * fleet (coordinator/gateway/gw.h) started beside serve's own API. Its keys
 * and the secret it shares with the workers are SF_OPT_SECRET settings
 * (files, the environment; masked in argv). */
#include "serve.h"
#include "e2b_fleet.h"
#include "gw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool loopback(const char *listen)
{
    struct in_addr a;
    char host[64];
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : 0;
    if (!n || n >= sizeof(host)) return false;
    memcpy(host, listen, n);
    host[n] = '\0';
    if (!strcmp(host, "localhost")) return true;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

int serve_e2b_start(const struct serve_e2b_cfg *ec, struct sf_broker *b, struct sf_metrics *m,
                    const struct sf_log *lg, struct sf_gw **out, char *err, size_t errlen)
{
    const char *missing;
    int rc;
    *out = NULL;
    if ((missing = sf_broker_e2b_missing(b))) {
        sf_errf(err, errlen, "--e2b-listen: %s", missing);
        return -ENOTSUP;
    }
    /* An empty key (SANDFLEET_E2B_API_KEY="" from a compose file) is none. */
    size_t nkeys = 0;
    char **keys = sf_xcalloc(ec->nkeys + 1, sizeof(char *));
    for (size_t i = 0; i < ec->nkeys; i++)
        if (ec->keys[i] && ec->keys[i][0]) keys[nkeys++] = ec->keys[i];
    if (!nkeys && !loopback(ec->listen)) {
        free(keys);
        sf_errf(err, errlen, "--e2b-listen %s is not a loopback address: give the API keys clients "
                "must send (--e2b-api-key-file FILE, one per line, or SANDFLEET_E2B_API_KEY)", ec->listen);
        return -EINVAL;
    }
    if ((rc = sf_e2b_secret_check(ec->secret, "e2b-gateway-secret", err, errlen)) < 0) {
        free(keys);
        return rc;
    }
    struct sf_gw_cfg gc = { .listen = ec->listen, .api_keys = keys, .n_api_keys = nkeys,
                            .secret = ec->secret, .secret_len = strlen(ec->secret), .b = b, .lg = lg,
                            .m = m, .min_free_mb = ec->min_free_mb, .limits = ec->limits };
    rc = sf_gw_start(&gc, out, err, errlen);     /* copies the keys */
    free(keys);
    if (rc < 0) return rc;
    SF_LOGI(lg, "E2B gateway for the fleet on port %d (%s)%s", sf_gw_port(*out), ec->listen,
            nkeys ? "" : "; any API key is accepted (loopback only)");
    return 0;
}
