/* libFuzzer target: the API token file parser (base/tokens.c) must never
 * crash or leak, must say why it refuses a file, and every token it accepts
 * must then authenticate as the name it was given and nothing else. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sf_tokens *t = sf_tokens_new();
    char err[512] = "";
    int rc = sf_tokens_parse(t, (const char *)data, size, err, sizeof(err));
    if (rc < 0 && !err[0]) abort();            /* every rejection says why */
    if (rc == 0 && err[0]) abort();
    /* The input itself, and its prefixes, as presented tokens. */
    for (size_t n = 0; n <= size && n <= SF_TOKEN_MAX; n += 7) {
        const struct sf_principal *p = sf_tokens_check(t, (const char *)data, n);
        if (p && (!sf_token_name_ok(p->name) || (p->scope != SF_SCOPE_ADMIN && p->scope != SF_SCOPE_CLIENT)))
            abort();
    }
    if (sf_tokens_bearer(t, NULL) || sf_tokens_bearer(t, "Bearer ")) abort();
    sf_tokens_free(t);
    return 0;
}
