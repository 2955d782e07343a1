/* common/base/secrets.h: named secrets, resolved by whoever uses them (a worker
 * starting a task, the coordinator in a central run, the callback dispatcher
 * signing a delivery, the egress proxy adding a header). Messages carry only
 * NAMES; a value never travels, is never logged and is wiped after use.
 *
 * A name is [A-Z][A-Z0-9_]{0,63}. Where the value of NAME comes from, first
 * match wins:
 *   1. the process environment: SANDFLEET_SECRET_<NAME> (not for a NAME
 *      ending in _FILE: that variable is the file form of another name)
 *   2. the file named by SANDFLEET_SECRET_<NAME>_FILE
 *   3. <dir>/<NAME> when a secrets folder is configured (--secrets-dir; e.g. a
 *      mounted Kubernetes Secret, whose keys are files)
 * Files are read at each use (a rotated secret is picked up without a
 * restart), at most 64 KiB, one trailing newline (LF or CRLF) dropped. An empty
 * value counts as not configured. The plain variable NAME is deliberately NOT
 * a source: a task naming "SANDFLEET_BROKER" or "E2B_API_KEY" must not be able
 * to read the daemon's own credentials.
 *
 * Ownership: values are malloc'd, the caller wipes and frees them
 * (sf_secret_free, sf_secret_values_clear). Thread: every function is
 * reentrant (the environment is only read; nothing here calls setenv).
 */
#ifndef SF_SECRETS_H
#define SF_SECRETS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SF_SECRET_NAME_MAX 64
#define SF_SECRET_VALUE_MAX (64u << 10)
/* Shorter values are not masked in results: they would mangle ordinary text.
 * Real keys and tokens are far longer. */
#define SF_SECRET_MASK_MIN 6
#define SF_SECRET_MASK "***"

/* Where secrets come from. dir NULL: the environment only. Borrowed by the
 * functions below; the caller keeps it alive. */
struct sf_secrets {
    const char *dir;
};

bool sf_secret_name_ok(const char *name);

/* Check a --secrets-dir at start: -errno with a message when it is not a
 * readable folder. */
int sf_secrets_check_dir(const char *dir, char *err, size_t errlen);

/* The value of NAME (s may be NULL: the environment only). 0 with a
 * malloc'd, NUL-terminated copy; -ENOENT when not configured (err names the
 * places looked at, never a value); -EINVAL for a bad name or a value with a
 * NUL byte; -EFBIG over 64 KiB; other -errno when a file cannot be read. */
int sf_secret_load(const struct sf_secrets *s, const char *name, char **value, size_t *len,
                   char *err, size_t errlen);
void sf_secret_free(char *value, size_t len);     /* wipes; NULL is a no-op */

/* The names this process holds (every source), sorted, without values:
 * for heartbeats and `status`. New reference (an array of strings). */
json_t *sf_secrets_names(const struct sf_secrets *s);

/* The resolved secrets of one task. */
struct sf_secret_value {
    char *name, *value;
    size_t len;
};
struct sf_secret_values {
    struct sf_secret_value *v;
    size_t n;
};
/* Resolve every name of 'names' (a JSON array of strings; NULL = none).
 * On failure nothing is kept, *missing (when not NULL) points at the first
 * name that failed inside 'names', and err says why. */
int sf_secrets_resolve(const struct sf_secrets *s, json_t *names, struct sf_secret_values *out,
                       const char **missing, char *err, size_t errlen);
void sf_secret_values_clear(struct sf_secret_values *v);

/* Replace every occurrence of every value (at least SF_SECRET_MASK_MIN bytes
 * long) in text[0..len) by "***". Returns a malloc'd, NUL-terminated copy and
 * its length in *outlen, or NULL when there was nothing to replace. */
char *sf_secrets_mask(const struct sf_secret_values *v, const char *text, size_t len,
                      size_t *outlen);

#endif
