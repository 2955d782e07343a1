/* common/base/hmac.c: see hmac.h. libcrypto's EVP_MAC interface (OpenSSL 3) is
 * used rather than a hand-written SHA-256: it is already linked through
 * libcurl's TLS, constant-time where it matters, and tested against the
 * RFC 4231 vectors in tests/unit/test_callback.c. */
#include "hmac.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

int sf_hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                   size_t n, uint8_t out[SF_HMAC_SHA256_LEN])
{
    static const unsigned char empty_key[1];
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    size_t outl = 0;
    int rc = -EIO;

    if (!ctx) goto out;
    /* An empty key is legal HMAC; libcrypto wants a non-NULL pointer. */
    if (!EVP_MAC_init(ctx, keylen ? key : empty_key, keylen, params)) goto out;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && !EVP_MAC_update(ctx, parts[i], lens[i])) goto out;
    if (!EVP_MAC_final(ctx, out, &outl, SF_HMAC_SHA256_LEN) || outl != SF_HMAC_SHA256_LEN) goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

void sf_hmac_hex(const uint8_t *bytes, size_t n, char *dst)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[bytes[i] >> 4];
        dst[2 * i + 1] = digits[bytes[i] & 15];
    }
    dst[2 * n] = '\0';
}
