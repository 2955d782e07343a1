/* common/e2b/e2b_fleet.c: see e2b_fleet.h. Naming, gateway authentication and
 * secrets; the record, capacity and placement are in e2b_record.c. */
#include "e2b_fleet.h"
#include "hmac.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- naming a sandbox ------------------------------------------------------ */

bool sf_e2b_host_route(const char *host, unsigned *port, char *id, size_t size)
{
    const char *dash = host ? strchr(host, '-') : NULL, *dot;
    unsigned long p = 0;
    if (!dash || dash == host || dash - host > 5 || !(dot = strchr(dash, '.'))) return false;
    for (const char *q = host; q < dash; q++) {
        if (*q < '0' || *q > '9') return false;
        p = p * 10 + (unsigned long)(*q - '0');
    }
    if (!p || p > 65535) return false;
    size_t n = (size_t)(dot - dash - 1);
    const char *more = memchr(dash + 1, '-', n);    /* an old "-<clientID>" suffix */
    if (more) n = (size_t)(more - dash - 1);
    if (!n || n >= size) return false;
    memcpy(id, dash + 1, n);
    id[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)id[i]) || isdigit((unsigned char)id[i]))) return false;
    *port = (unsigned)p;
    return true;
}

bool sf_e2b_valid_id(const char *in, char *out, size_t size)
{
    size_t n = 0;
    int dashes = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '-') {
            if (++dashes > 1 || p == in || !p[1]) return false;
            continue;
        }
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p))) return false;
    }
    for (const char *p = in; *p && *p != '-' && n + 1 < size; p++) out[n++] = *p;
    out[n] = '\0';
    return n > 0 && n + 1 < size;
}

int sf_e2b_path_sandbox(const char *path, size_t len, char *raw, size_t size)
{
    if (len >= 4 && !memcmp(path, "/v2/", 4)) {
        path += 3;
        len -= 3;
    }
    if (len < 12 || memcmp(path, "/sandboxes/", 11)) return 0;
    const char *s = path + 11, *e = s;
    while (e < path + len && *e != '/' && *e != '?') e++;
    if (e == s) return 0;
    if ((size_t)(e - s) >= size) return -EINVAL;
    memcpy(raw, s, (size_t)(e - s));
    raw[e - s] = '\0';
    return 1;
}

json_t *sf_e2b_error_json(int status, const char *msg)
{
    return json_pack("{s:i,s:s}", "code", status, "message", msg);
}

json_t *sf_e2b_gone_json(const char *sandbox_id)
{
    return json_pack("{s:s,s:s,s:i}", "sandboxId", sandbox_id, "message", "The sandbox was not found",
                     "code", 502);
}

/* ---- gateway -> worker authentication ------------------------------------ */

static int gw_mac(const void *secret, size_t slen, const char *ts, const char *method,
                  const char *path, size_t plen, const char *host, const char *sid, char hex[65])
{
    uint8_t mac[SF_HMAC_SHA256_LEN];
    static const char nl = '\n';
    const void *parts[] = { "v1", &nl, ts, &nl, method, &nl, path, &nl, host ? host : "", &nl,
                            sid ? sid : "" };
    size_t lens[] = { 2, 1, strlen(ts), 1, strlen(method), 1, plen, 1, host ? strlen(host) : 0, 1,
                      sid ? strlen(sid) : 0 };
    if (sf_hmac_sha256(secret, slen, parts, lens, sizeof(lens) / sizeof(lens[0]), mac) < 0)
        return -EIO;
    sf_hmac_hex(mac, sizeof(mac), hex);
    return 0;
}

int sf_e2b_gw_sign(const void *secret, size_t slen, int64_t now_ms, const char *method,
                   const char *path, size_t path_len, const char *host, const char *sandbox_id,
                   char *out, size_t outlen)
{
    char ts[24], hex[65], dec[4096];
    /* The worker sees the path %XX-decoded (libmicrohttpd), without the query. */
    size_t dl = sf_pct_decode(path, path_len, dec, sizeof(dec), false, '?');
    snprintf(ts, sizeof(ts), "%lld", (long long)now_ms);
    if (gw_mac(secret, slen, ts, method, dec, dl, host, sandbox_id, hex) < 0) return -EIO;
    snprintf(out, outlen, "v1 %s %s", ts, hex);
    return 0;
}

int sf_e2b_gw_verify(const void *secret, size_t slen, const char *value, int64_t now_ms,
                     const char *method, const char *path, const char *host,
                     const char *sandbox_id, char *why, size_t whylen)
{
    char ts[24], hex[65], want[65];
    if (!value) {
        sf_errf(why, whylen, "no %s header: this port serves the sandfleet E2B gateway only",
                SF_E2B_GW_AUTH);
        return -EACCES;
    }
    if (sscanf(value, "v1 %20[0-9] %64[0-9a-f]", ts, hex) != 2 || strlen(hex) != 64) {
        sf_errf(why, whylen, "malformed %s header", SF_E2B_GW_AUTH);
        return -EACCES;
    }
    long long t = strtoll(ts, NULL, 10), skew = (long long)now_ms - t;
    if (skew > SF_E2B_GW_SKEW_MS || skew < -SF_E2B_GW_SKEW_MS) {
        sf_errf(why, whylen, "%s is %lld s %s this worker's clock (more than %d s): "
                "synchronise the clocks (NTP) or this is a replay", SF_E2B_GW_AUTH,
                (skew < 0 ? -skew : skew) / 1000, skew < 0 ? "ahead of" : "behind",
                SF_E2B_GW_SKEW_MS / 1000);
        return -EACCES;
    }
    if (gw_mac(secret, slen, ts, method, path, strlen(path), host, sandbox_id, want) < 0 ||
        !sf_e2b_secret_eq(want, 64, hex, 64)) {
        sf_errf(why, whylen, "%s does not match (a different gateway secret?)", SF_E2B_GW_AUTH);
        return -EACCES;
    }
    return 0;
}

bool sf_e2b_secret_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    unsigned char d = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) d |= x[i] ^ y[i];
    return d == 0;
}

int sf_e2b_secret_check(const char *secret, const char *what, char *err, size_t errlen)
{
    if (!secret || !secret[0]) {
        sf_errf(err, errlen, "--%s is required: give it as --%s-file FILE (or in the environment, "
                "SANDFLEET_E2B_GATEWAY_SECRET[_FILE]); the gateway and every worker share it", what, what);
        return -EINVAL;
    }
    if (strlen(secret) < 16) {
        sf_errf(err, errlen, "--%s must be at least 16 bytes (e.g. openssl rand -hex 32)", what);
        return -EINVAL;
    }
    return 0;
}
