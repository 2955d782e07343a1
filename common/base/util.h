/* common/base/util.h: small helpers every module uses: allocation that aborts on
 * OOM (daemons do not limp on without memory, like Redis and jq), a growable
 * byte buffer, monotonic time, and safe string copies. Thread-safe. */
#ifndef SF_UTIL_H
#define SF_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *sf_xmalloc(size_t n);
void *sf_xcalloc(size_t n, size_t size);
void *sf_xrealloc(void *p, size_t n);
char *sf_xstrdup(const char *s);   /* NULL in, NULL out */
char *sf_xstrndup(const char *s, size_t n);
char *sf_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf that never overflows and always terminates; returns dst. */
char *sf_strlcpy(char *dst, const char *src, size_t size);
void sf_errf(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int64_t sf_now_ms(void);        /* CLOCK_MONOTONIC in ms */
int64_t sf_now_us(void);
int64_t sf_wall_ms(void);       /* CLOCK_REALTIME in ms since the epoch */

/* Growable byte buffer; always NUL-terminated after the data. */
struct sf_buf {
    char *data;
    size_t len, cap;
};
void sf_buf_append(struct sf_buf *b, const void *p, size_t n);
void sf_buf_appendf(struct sf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sf_buf_free(struct sf_buf *b);
/* Hand the data to the caller (malloc'd, NUL-terminated, never NULL). */
char *sf_buf_steal(struct sf_buf *b, size_t *len);

/* %XX-decode s[0..n) into out (NUL-terminated, cut to size); '+' becomes a
 * space when plus (query strings). Stops at stop (e.g. '?'; 0: none).
 * Returns the length written. Malformed escapes are copied as they are. */
size_t sf_pct_decode(const char *s, size_t n, char *out, size_t size, bool plus, char stop);

/* Read a whole file; -errno, or -EFBIG when larger than max. */
int sf_read_file(const char *path, size_t max, char **data, size_t *len);
/* Raise this process's soft RLIMIT_NOFILE to at least 'want' (never above
 * the hard limit, never lower than it is). Returns the soft limit now in
 * force (< want: the hard limit is too low). */
long sf_raise_nofile(long want);
/* mkdir -p: every missing directory of 'path' with 'mode'. 0 or -errno. */
int sf_mkdir_p(const char *path, int mode);

/* Supplementary groups (docker, disk, adm, ...) a worker inherits from sudo
 * or its service manager grant nothing it needs and would follow it into
 * everything it starts. Run as root: drop them all (setgroups(0)); call in
 * main() before any thread (glibc signals every thread for setgroups).
 * Unprivileged: nothing can drop them; returns how many groups other than
 * our gid we hold (their ids in list, comma-separated, cut to size) so the
 * caller can warn. -errno when root's setgroups fails (a user namespace
 * with setgroups denied); 0 without a group besides our gid, whoever we
 * are (nothing is asked of the kernel then). */
int sf_drop_host_groups(char *list, size_t size);

/* Write all of buf to fd, retrying on EINTR/short writes. */
int sf_write_all(int fd, const void *buf, size_t n);

/* Base64 (RFC 4648, with padding). decode returns -EINVAL on bad input;
 * *out is malloc'd and NUL-terminated. */
char *sf_base64_encode(const void *data, size_t len);
int sf_base64_decode(const char *s, size_t slen, char **out, size_t *outlen);

/* A name usable as a step or run id, a key part and a file name: 1..max
 * characters of letters, digits, '_', '-' and '.'. */
bool sf_valid_name(const char *s, size_t max);
#define SF_RUN_ID_MAX 100        /* run ids */
#define SF_STEP_ID_MAX 128       /* step ids */
/* The same with ':' too: task ids ("<run>:<step>:<index>"), queue names and
 * worker ids, which are parts of keys but never file names. */
bool sf_valid_key_part(const char *s, size_t max);
#define SF_TASK_ID_MAX 256
#define SF_QUEUE_MAX 100
#define SF_WORKER_ID_MAX 100

/* A random id of 'nhex' hex digits (nhex < size) from getrandom(). */
void sf_random_hex(char *dst, size_t size, size_t nhex);

#endif
