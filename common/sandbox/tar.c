/* common/sandbox/tar.c: see tar.h. */
#include "tar.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAR_BLOCK 512
#define TAR_PAX_MAX (1u << 20)           /* a pax header larger than this is refused */

struct tar_hdr {
    char name[100], mode[8], uid[8], gid[8], size[12], mtime[12], chksum[8], typeflag;
    char linkname[100], magic[6], version[2], uname[32], gname[32], devmajor[8], devminor[8];
    char prefix[155], pad[12];
};
_Static_assert(sizeof(struct tar_hdr) == TAR_BLOCK, "tar header size");

void sf_tar_init(struct sf_tar *t, sf_tar_read_fn read, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->read = read;
    t->arg = arg;
}

/* Exactly n bytes (or skip them when buf is NULL). 0, -EIO short input. */
static int tar_full(struct sf_tar *t, void *buf, uint64_t n)
{
    char scratch[4096];
    while (n) {
        size_t want = n > sizeof(scratch) ? sizeof(scratch) : (size_t)n;
        ssize_t r = t->read(t->arg, buf ? buf : scratch, want);
        if (r < 0) return (int)r;
        if (r == 0) {
            sf_errf(t->err, sizeof(t->err), "the archive ends in the middle of an entry (offset %llu)",
                    (unsigned long long)t->offset);
            return -EINVAL;
        }
        t->offset += (uint64_t)r;
        n -= (uint64_t)r;
        if (buf) buf = (char *)buf + r;
    }
    return 0;
}

/* An octal (or GNU base-256) numeric field. */
static bool tar_num(const char *f, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    if ((unsigned char)f[0] & 0x80) {                    /* base-256, positive only */
        if ((unsigned char)f[0] != 0x80) return false;
        for (i = 1; i < len; i++) {
            if (v >> 56) return false;
            v = (v << 8) | (unsigned char)f[i];
        }
        *out = v;
        return true;
    }
    while (i < len && f[i] == ' ') i++;
    bool any = false;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60) return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
        any = true;
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != '\0') return false;
    *out = v;
    return any || f[0] == '\0' || f[0] == ' ';
}

static bool tar_checksum_ok(const struct tar_hdr *h)
{
    const unsigned char *b = (const unsigned char *)h;
    uint64_t want;
    unsigned sum = 0;
    if (!tar_num(h->chksum, sizeof(h->chksum), &want)) return false;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : b[i];
    return sum == want;
}

static void tar_field(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = strnlen(src, len);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Records "LEN key=value\n" of a pax header: path, linkpath, size. */
static int tar_pax(struct sf_tar *t, const char *p, size_t len, struct sf_tar_entry *e,
                   bool *have_size)
{
    size_t i = 0;
    while (i < len) {
        size_t rl = 0, j = i;
        while (j < len && p[j] >= '0' && p[j] <= '9' && rl < TAR_PAX_MAX) rl = rl * 10 + (size_t)(p[j++] - '0');
        if (j == i || j >= len || p[j] != ' ' || rl <= j - i + 1 || rl > len - i || p[i + rl - 1] != '\n') {
            sf_errf(t->err, sizeof(t->err), "malformed pax header record at offset %llu",
                    (unsigned long long)t->offset);
            return -EINVAL;
        }
        const char *kv = p + j + 1, *end = p + i + rl - 1, *eq = memchr(kv, '=', (size_t)(end - kv));
        if (eq) {
            size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
            if (kl == 4 && !memcmp(kv, "path", 4)) tar_field(e->path, sizeof(e->path), eq + 1, vl);
            else if (kl == 8 && !memcmp(kv, "linkpath", 8)) tar_field(e->link, sizeof(e->link), eq + 1, vl);
            else if (kl == 4 && !memcmp(kv, "size", 4)) {
                char num[32];
                tar_field(num, sizeof(num), eq + 1, vl);
                char *stop;
                errno = 0;
                unsigned long long v = strtoull(num, &stop, 10);
                if (errno || *stop || stop == num) {
                    sf_errf(t->err, sizeof(t->err), "bad pax size '%s'", num);
                    return -EINVAL;
                }
                e->size = v;
                *have_size = true;
            }
            if ((kl == 4 && !memcmp(kv, "path", 4) && vl >= sizeof(e->path)) ||
                (kl == 8 && !memcmp(kv, "linkpath", 8) && vl >= sizeof(e->link))) {
                sf_errf(t->err, sizeof(t->err), "a pax path longer than %d bytes", SF_TAR_PATH_MAX - 1);
                return -EINVAL;
            }
        }
        i += rl;
    }
    return 0;
}

/* Read a pax or GNU long-name payload of size n into a fresh buffer. */
static int tar_payload(struct sf_tar *t, uint64_t n, char **out)
{
    if (n > TAR_PAX_MAX) {
        sf_errf(t->err, sizeof(t->err), "an extended header of %llu bytes (at most %u)",
                (unsigned long long)n, TAR_PAX_MAX);
        return -EINVAL;
    }
    *out = sf_xmalloc((size_t)n + 1);
    int rc = tar_full(t, *out, n);
    if (rc == 0) rc = tar_full(t, NULL, (TAR_BLOCK - n % TAR_BLOCK) % TAR_BLOCK);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        return rc;
    }
    (*out)[n] = '\0';
    return 0;
}

static enum sf_tar_type tar_type(char f)
{
    switch (f) {
    case '0': case '\0': case '7': return SF_TAR_FILE;
    case '1': return SF_TAR_HARDLINK;
    case '2': return SF_TAR_SYMLINK;
    case '3': return SF_TAR_CHAR;
    case '4': return SF_TAR_BLOCK;
    case '5': return SF_TAR_DIR;
    case '6': return SF_TAR_FIFO;
    default: return SF_TAR_OTHER;
    }
}

int sf_tar_next(struct sf_tar *t, struct sf_tar_entry *e)
{
    struct tar_hdr h;
    char *long_name = NULL, *long_link = NULL;
    bool pax_size = false, have_pax = false;
    int rc;
    struct sf_tar_entry pax = { .path = "" };
    if ((rc = tar_full(t, NULL, t->left + t->pad)) < 0) return rc;
    t->left = t->pad = 0;
    for (int guard = 0;; guard++) {
        if ((rc = tar_full(t, &h, TAR_BLOCK)) < 0) {
            /* A stream that simply ends between entries is a (lax) end. */
            if (t->offset % TAR_BLOCK == 0 && !strncmp(t->err, "the archive ends", 16) && !have_pax &&
                !long_name && !long_link) {
                t->err[0] = '\0';
                rc = 0;
            }
            goto out;
        }
        static const char zero[TAR_BLOCK];
        if (!memcmp(&h, zero, TAR_BLOCK)) { rc = 0; goto out; }     /* end of archive */
        if (!tar_checksum_ok(&h)) {
            sf_errf(t->err, sizeof(t->err), "bad header checksum at offset %llu (not a tar archive?)",
                    (unsigned long long)(t->offset - TAR_BLOCK));
            rc = -EINVAL;
            goto out;
        }
        uint64_t size;
        if (!tar_num(h.size, sizeof(h.size), &size)) {
            sf_errf(t->err, sizeof(t->err), "bad size field at offset %llu",
                    (unsigned long long)(t->offset - TAR_BLOCK));
            rc = -EINVAL;
            goto out;
        }
        if (guard > 16) {
            sf_errf(t->err, sizeof(t->err), "too many extended headers in a row");
            rc = -EINVAL;
            goto out;
        }
        if (h.typeflag == 'x') {
            char *p;
            if ((rc = tar_payload(t, size, &p)) < 0) goto out;
            rc = tar_pax(t, p, (size_t)size, &pax, &pax_size);
            free(p);
            if (rc < 0) goto out;
            have_pax = true;
            continue;
        }
        if (h.typeflag == 'g') {                               /* global: ignored */
            char *p;
            if ((rc = tar_payload(t, size, &p)) < 0) goto out;
            free(p);
            continue;
        }
        if (h.typeflag == 'L' || h.typeflag == 'K') {
            char **dst = h.typeflag == 'L' ? &long_name : &long_link;
            free(*dst);
            if ((rc = tar_payload(t, size, dst)) < 0) goto out;
            if (strlen(*dst) >= SF_TAR_PATH_MAX) {
                sf_errf(t->err, sizeof(t->err), "a GNU long name longer than %d bytes", SF_TAR_PATH_MAX - 1);
                rc = -EINVAL;
                goto out;
            }
            continue;
        }
        memset(e, 0, sizeof(*e));
        if (!memcmp(h.magic, "ustar", 5) && h.prefix[0]) {
            char pre[156], nm[101];
            tar_field(pre, sizeof(pre), h.prefix, sizeof(h.prefix));
            tar_field(nm, sizeof(nm), h.name, sizeof(h.name));
            snprintf(e->path, sizeof(e->path), "%s/%s", pre, nm);
        } else {
            tar_field(e->path, sizeof(e->path), h.name, sizeof(h.name));
        }
        tar_field(e->link, sizeof(e->link), h.linkname, sizeof(h.linkname));
        if (long_name) sf_strlcpy(e->path, long_name, sizeof(e->path));
        if (long_link) sf_strlcpy(e->link, long_link, sizeof(e->link));
        if (have_pax && pax.path[0]) sf_strlcpy(e->path, pax.path, sizeof(e->path));
        if (have_pax && pax.link[0]) sf_strlcpy(e->link, pax.link, sizeof(e->link));
        uint64_t v;
        e->type = tar_type(h.typeflag);
        e->size = pax_size ? pax.size : size;
        e->mode = tar_num(h.mode, sizeof(h.mode), &v) ? (uint32_t)(v & 07777) : 0644;
        e->uid = tar_num(h.uid, sizeof(h.uid), &v) && v <= UINT32_MAX ? (uint32_t)v : 0;
        e->gid = tar_num(h.gid, sizeof(h.gid), &v) && v <= UINT32_MAX ? (uint32_t)v : 0;
        e->mtime = tar_num(h.mtime, sizeof(h.mtime), &v) && v < (1ull << 62) ? (int64_t)v : 0;
        /* Only files carry data; a size on anything else is skipped. */
        t->left = e->size;
        t->pad = (TAR_BLOCK - e->size % TAR_BLOCK) % TAR_BLOCK;
        if (e->type != SF_TAR_FILE) {
            if ((rc = tar_full(t, NULL, t->left + t->pad)) < 0) goto out;
            t->left = t->pad = 0;
            e->size = 0;
        }
        rc = 1;
        goto out;
    }
out:
    free(long_name);
    free(long_link);
    return rc;
}

ssize_t sf_tar_data(struct sf_tar *t, void *buf, size_t n)
{
    if (!t->left) return 0;
    if (n > t->left) n = (size_t)t->left;
    int rc = tar_full(t, buf, n);
    if (rc < 0) return rc;
    t->left -= n;
    return (ssize_t)n;
}

bool sf_tar_clean_path(const char *in, char *out)
{
    size_t n = 0;
    for (const char *p = in; *p;) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        if (len && !(len == 1 && p[0] == '.')) {
            if (n + len + 2 >= SF_TAR_PATH_MAX) return false;
            if (n) out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p = e;
    }
    out[n] = '\0';
    return true;
}
