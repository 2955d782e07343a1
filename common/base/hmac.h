/* common/base/hmac.h: HMAC-SHA256 (RFC 2104 over FIPS 180-4) through OpenSSL's
 * libcrypto, for signing callback deliveries (docs/protocol.md §8).
 * The message may be given in parts so "<timestamp>.<body>" is signed
 * without copying the body. Thread: reentrant. */
#ifndef SF_HMAC_H
#define SF_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define SF_HMAC_SHA256_LEN 32

/* MAC of the concatenation of parts[0..n) under key into out. Returns 0 or
 * -EIO when libcrypto fails (it does not on valid input). */
int sf_hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                   size_t n, uint8_t out[SF_HMAC_SHA256_LEN]);

/* Lower-case hex of n bytes into dst (2n+1 bytes, NUL-terminated). */
void sf_hmac_hex(const uint8_t *bytes, size_t n, char *dst);

#endif
