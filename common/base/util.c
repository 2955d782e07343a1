/* common/base/util.c: see util.h. */
#include "util.h"

#include <errno.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    /* Daemons abort on OOM: there is no sensible way to go on. */
    fprintf(stderr, "sandfleet: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *sf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *sf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *sf_xstrdup(const char *s)
{
    if (!s) return NULL;
    return sf_xstrndup(s, strlen(s));
}

char *sf_xstrndup(const char *s, size_t n)
{
    char *d = sf_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sf_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *s = sf_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *sf_strlcpy(char *dst, const char *src, size_t size)
{
    if (size == 0) return dst;
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return dst;
}

void sf_errf(char *dst, size_t size, const char *fmt, ...)
{
    if (!dst || size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

int64_t sf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sf_now_ms(void) { return sf_now_us() / 1000; }

int64_t sf_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sf_buf_append(struct sf_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->data = sf_xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sf_buf_appendf(struct sf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    sf_buf_append(b, "", 0);                 /* make sure data exists */
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        b->data = sf_xrealloc(b->data, cap);
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sf_buf_free(struct sf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sf_buf_steal(struct sf_buf *b, size_t *len)
{
    if (!b->data) sf_buf_append(b, "", 0);
    char *d = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

int sf_read_file(const char *path, size_t max, char **data, size_t *len)
{
    struct sf_buf b = {0};
    char chunk[65536];
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            goto out;
        }
        if (n == 0) break;
        if (b.len + (size_t)n > max) { rc = -EFBIG; goto out; }
        sf_buf_append(&b, chunk, (size_t)n);
    }
    *data = sf_buf_steal(&b, len);
out:
    close(fd);
    sf_buf_free(&b);
    return rc;
}

long sf_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return -1;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
        rlim_t soft = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > want ? (rlim_t)want
                                                                             : rl.rlim_max;
        struct rlimit nr = { soft, rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &nr) == 0) rl.rlim_cur = soft;
    }
    return rl.rlim_cur == RLIM_INFINITY ? want : (long)rl.rlim_cur;
}

int sf_mkdir_p(const char *path, int mode)
{
    char tmp[4096];
    if (strlen(path) >= sizeof(tmp)) return -ENAMETOOLONG;
    sf_strlcpy(tmp, path, sizeof(tmp));
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST) return -errno;
        *s = '/';
    }
    if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST) return -errno;
    return 0;
}

int sf_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool valid_chars(const char *s, size_t max, bool colon)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (; *s; s++)
        if (!(*s == '_' || *s == '-' || *s == '.' || (colon && *s == ':') ||
              (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

bool sf_valid_name(const char *s, size_t max) { return valid_chars(s, max, false); }
bool sf_valid_key_part(const char *s, size_t max) { return valid_chars(s, max, true); }

void sf_random_hex(char *dst, size_t size, size_t nhex)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nhex >= size) nhex = size - 1;
    if (nhex > 2 * sizeof(raw)) nhex = 2 * sizeof(raw);
    size_t need = (nhex + 1) / 2, got = 0;
    while (got < need) {
        ssize_t n = getrandom(raw + got, need - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            abort();                      /* getrandom cannot fail on Linux >= 3.17 */
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < nhex; i++)
        dst[i] = hex[(raw[i / 2] >> ((i & 1) ? 0 : 4)) & 0xf];
    dst[nhex] = '\0';
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sf_base64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = sf_xmalloc(4 * ((len + 2) / 3) + 1), *o = out;
    size_t i;
    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64[p[i] >> 2];
        *o++ = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *o++ = b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        *o++ = b64[p[i + 2] & 63];
    }
    if (i < len) {
        *o++ = b64[p[i] >> 2];
        if (i + 1 < len) {
            *o++ = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            *o++ = b64[(p[i + 1] & 15) << 2];
        } else {
            *o++ = b64[(p[i] & 3) << 4];
            *o++ = '=';
        }
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int sf_base64_decode(const char *s, size_t slen, char **out, size_t *outlen)
{
    if (slen % 4) return -EINVAL;
    char *o = sf_xmalloc(slen / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < slen; i += 4) {
        int a = b64val(s[i]), b = b64val(s[i + 1]);
        int c = s[i + 2] == '=' ? -2 : b64val(s[i + 2]);
        int d = s[i + 3] == '=' ? -2 : b64val(s[i + 3]);
        bool last = i + 4 == slen;
        if (a < 0 || b < 0 || c == -1 || d == -1 || (!last && (c < 0 || d < 0)) ||
            (c == -2 && d != -2)) {
            free(o);
            return -EINVAL;
        }
        o[n++] = (char)((a << 2) | (b >> 4));
        if (c >= 0) o[n++] = (char)(((b & 15) << 4) | (c >> 2));
        if (d >= 0) o[n++] = (char)(((c & 3) << 6) | d);
    }
    o[n] = '\0';
    *out = o;
    *outlen = n;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t sf_pct_decode(const char *s, size_t n, char *out, size_t size, bool plus, char stop)
{
    size_t k = 0;
    if (!size) return 0;
    for (size_t i = 0; i < n && (!stop || s[i] != stop) && k + 1 < size; i++) {
        int a, b;
        if (s[i] == '%' && i + 2 < n && (a = hexval(s[i + 1])) >= 0 && (b = hexval(s[i + 2])) >= 0) {
            out[k++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[k++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[k] = '\0';
    return k;
}

int sf_drop_host_groups(char *list, size_t size)
{
    if (size) list[0] = '\0';
    int n = getgroups(0, NULL);
    if (n <= 0) return 0;
    gid_t *g = sf_xcalloc((size_t)n, sizeof(*g));
    n = getgroups(n, g);
    struct sf_buf b = {0};
    int extra = 0;
    for (int i = 0; i < n; i++)
        if (g[i] != getegid()) sf_buf_appendf(&b, "%s%u", extra++ ? "," : "", (unsigned)g[i]);
    if (b.data && size) sf_strlcpy(list, b.data, size);
    sf_buf_free(&b);
    free(g);
    /* Only our own gid, or none: nothing to drop, nothing to warn about. */
    if (extra && geteuid() == 0) return setgroups(0, NULL) < 0 ? -errno : 0;
    return extra;
}
