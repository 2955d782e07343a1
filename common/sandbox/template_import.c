/* common/sandbox/template_import.c: see template_import.h.
 *
 * Design: one pass over the outer archive indexes its members (name ->
 * offset, size); the manifest is read from there, then each layer is
 * streamed from its offset (inflated when it starts with gzip's magic)
 * through the tar reader into the new root. Nothing is held in memory but
 * one chunk and the small JSON documents. */
#include "template_import.h"
#include "fsat.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define IMG_JSON_MAX (4u << 20)          /* manifest, index, config: small documents */
#define IMG_CHUNK (64u << 10)

/* ---- reading the outer file ------------------------------------------------ */

struct img_member {
    char *name;
    uint64_t off, size;
};

struct img {
    int fd;
    struct img_member *m;
    size_t n;
};

/* A window [pos, end) of the image file. */
struct img_span {
    int fd;
    uint64_t pos, end;
};

static ssize_t img_span_read(void *arg, void *buf, size_t n)
{
    struct img_span *s = arg;
    if (s->pos >= s->end) return 0;
    if (n > s->end - s->pos) n = (size_t)(s->end - s->pos);
    ssize_t r;
    do r = pread(s->fd, buf, n, (off_t)s->pos); while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    s->pos += (uint64_t)r;
    return r;
}

/* A gzip stream over a span. */
struct img_gz {
    struct img_span *in;
    z_stream z;
    unsigned char buf[IMG_CHUNK];
    bool done;
};

static ssize_t img_gz_read(void *arg, void *out, size_t n)
{
    struct img_gz *g = arg;
    if (g->done || !n) return 0;
    g->z.next_out = out;
    g->z.avail_out = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    while (g->z.avail_out == n) {
        if (!g->z.avail_in) {
            ssize_t r = img_span_read(g->in, g->buf, sizeof(g->buf));
            if (r < 0) return r;
            if (r == 0) return -EINVAL;              /* truncated gzip */
            g->z.next_in = g->buf;
            g->z.avail_in = (uInt)r;
        }
        int zr = inflate(&g->z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END) {
            g->done = true;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) return -EINVAL;
    }
    return (ssize_t)(n - g->z.avail_out);
}

static void img_free(struct img *im)
{
    for (size_t i = 0; i < im->n; i++) free(im->m[i].name);
    free(im->m);
    if (im->fd >= 0) close(im->fd);
}

static int img_index(struct img *im, const char *path, char *err, size_t errlen)
{
    struct stat st;
    im->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (im->fd < 0 || fstat(im->fd, &st) < 0) {
        int rc = -errno;
        sf_errf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    unsigned char magic[2] = { 0, 0 };
    if (pread(im->fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        sf_errf(err, errlen, "%s is gzip-compressed: decompress it first (gunzip); docker save and "
                "podman save write a plain tar", path);
        return -EINVAL;
    }
    struct img_span all = { im->fd, 0, (uint64_t)st.st_size };
    struct sf_tar t;
    struct sf_tar_entry e;
    int rc;
    sf_tar_init(&t, img_span_read, &all);
    size_t cap = 0;
    while ((rc = sf_tar_next(&t, &e)) == 1) {
        char clean[SF_TAR_PATH_MAX];
        if (e.type != SF_TAR_FILE || !sf_tar_clean_path(e.path, clean)) continue;
        if (im->n == cap) {
            cap = cap ? cap * 2 : 32;
            im->m = sf_xrealloc(im->m, cap * sizeof(*im->m));
        }
        im->m[im->n++] = (struct img_member){ sf_xstrdup(clean), t.offset, e.size };
    }
    if (rc < 0) sf_errf(err, errlen, "%s: %s", path, t.err);
    return rc;
}

static const struct img_member *img_find(const struct img *im, const char *name)
{
    char clean[SF_TAR_PATH_MAX];
    if (!sf_tar_clean_path(name, clean)) return NULL;
    for (size_t i = 0; i < im->n; i++)
        if (!strcmp(im->m[i].name, clean)) return &im->m[i];
    return NULL;
}

static int img_get(void *arg, const char *path, char **data, size_t *len)
{
    const struct img_member *m = img_find(arg, path);
    if (!m) return -ENOENT;
    if (m->size > IMG_JSON_MAX) return -EFBIG;
    struct img_span s = { ((struct img *)arg)->fd, m->off, m->off + m->size };
    char *b = sf_xmalloc((size_t)m->size + 1);
    size_t got = 0;
    while (got < m->size) {
        ssize_t r = img_span_read(&s, b + got, (size_t)m->size - got);
        if (r <= 0) {
            free(b);
            return r < 0 ? (int)r : -EIO;
        }
        got += (size_t)r;
    }
    b[got] = '\0';
    *data = b;
    *len = got;
    return 0;
}

/* ---- manifests ----------------------------------------------------------------- */

static json_t *img_json(sf_image_get_fn get, void *arg, const char *path, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len;
    int rc = get(arg, path, &data, &len);
    if (rc < 0) {
        sf_errf(err, errlen, "%s: %s", path, rc == -ENOENT ? "not in the archive" : strerror(-rc));
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    free(data);
    if (!j) sf_errf(err, errlen, "%s: not JSON (%s)", path, je.text);
    return j;
}

/* "sha256:HEX" -> "blobs/sha256/HEX" (HEX checked: it becomes a path). */
static char *img_blob(json_t *desc)
{
    const char *d = json_string_value(json_object_get(desc, "digest"));
    const char *colon = d ? strchr(d, ':') : NULL;
    if (!colon || colon == d || !colon[1] || strlen(d) > 200) return NULL;
    for (const char *p = d; *p; p++)
        if (!(*p == ':' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'))) return NULL;
    return sf_xasprintf("blobs/%.*s/%s", (int)(colon - d), d, colon + 1);
}

struct img_list {
    char **v;
    int n;
};

/* Takes path. 0, or -EINVAL + err. */
static int img_add_layer(struct img_list *l, char *path, char *err, size_t errlen)
{
    char clean[SF_TAR_PATH_MAX];
    if (!path || !sf_tar_clean_path(path, clean) || !clean[0]) {
        sf_errf(err, errlen, "a layer path that is not a member name: '%s'", path ? path : "(none)");
        free(path);
        return -EINVAL;
    }
    if (l->n >= 1000) {
        sf_errf(err, errlen, "more than 1000 layers");
        free(path);
        return -EINVAL;
    }
    l->v = sf_xrealloc(l->v, (size_t)(l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = path;
    return 0;
}

/* OCI: index.json -> (an image index ->) a manifest -> its layers. */
static int img_oci_layers(sf_image_get_fn get, void *arg, struct img_list *l, char *err,
                          size_t errlen)
{
    json_t *idx = img_json(get, arg, "index.json", err, errlen), *man = NULL, *layer;
    char *mp = idx ? img_blob(json_array_get(json_object_get(idx, "manifests"), 0)) : NULL;
    int rc = 0;
    size_t i;
    if (!idx || !mp) {
        if (idx) sf_errf(err, errlen, "index.json names no manifest");
        json_decref(idx);
        return -EINVAL;
    }
    /* An image index names per-platform manifests: take the first. */
    for (int hop = 0; mp && hop < 3; hop++) {
        json_decref(man);
        man = img_json(get, arg, mp, err, errlen);
        free(mp);
        mp = man && json_object_get(man, "manifests")
           ? img_blob(json_array_get(json_object_get(man, "manifests"), 0)) : NULL;
    }
    free(mp);
    json_t *ls = json_object_get(man, "layers");
    if (!json_is_array(ls) || !json_array_size(ls)) {
        if (man) sf_errf(err, errlen, "the OCI manifest has no layers");
        rc = -EINVAL;
    }
    json_array_foreach(ls, i, layer) {
        const char *mt = json_string_value(json_object_get(layer, "mediaType"));
        if (mt && strstr(mt, "zstd")) {
            sf_errf(err, errlen, "a zstd-compressed layer (%s): save the image with gzip or "
                    "uncompressed layers", mt);
            rc = -EINVAL;
        }
        if (rc < 0 || (rc = img_add_layer(l, img_blob(layer), err, errlen)) < 0) break;
    }
    json_decref(man);
    json_decref(idx);
    return rc;
}

int sf_image_layers(sf_image_get_fn get, void *arg, char ***layers, char *err, size_t errlen)
{
    struct img_list l = { NULL, 0 };
    json_t *j = img_json(get, arg, "manifest.json", err, errlen), *layer;
    int rc = 0;
    size_t i;
    *layers = NULL;
    if (j) {                                             /* docker-archive */
        json_t *ls = json_object_get(json_array_get(j, 0), "Layers");
        if (!json_is_array(ls) || !json_array_size(ls)) {
            sf_errf(err, errlen, "manifest.json: no Layers in its first image");
            rc = -EINVAL;
        }
        json_array_foreach(ls, i, layer) {
            char *p = json_is_string(layer) ? sf_xstrdup(json_string_value(layer)) : NULL;
            if (rc < 0 || (rc = img_add_layer(&l, p, err, errlen)) < 0) break;
        }
        json_decref(j);
    } else {
        char why[256];
        sf_strlcpy(why, err, sizeof(why));
        rc = img_oci_layers(get, arg, &l, err, errlen);
        if (rc < 0 && strstr(err, "index.json: not in the archive"))
            sf_errf(err, errlen, "neither manifest.json (docker-archive) nor index.json (OCI "
                    "archive): not an image saved by docker save or podman save (%s)", why);
    }
    if (rc < 0) {
        for (int k = 0; k < l.n; k++) free(l.v[k]);
        free(l.v);
        return rc;
    }
    *layers = l.v;
    return l.n;
}

/* ---- applying a layer ------------------------------------------------------------ */

struct img_apply {
    int rootfd;
    bool as_root;                        /* keep the image's owners */
    char *err;
    size_t errlen;
};

/* The parent directory of rel (made if need be, inside the root) as an
 * O_PATH fd, and rel's last component. */
static int img_parent(const struct img_apply *a, char *rel, const char **base)
{
    char *slash = strrchr(rel, '/');
    *base = slash ? slash + 1 : rel;
    if (!slash) return sf_openat_in(a->rootfd, "/", O_PATH | O_DIRECTORY, 0);
    *slash = '\0';
    int rc = sf_mkdirs_in(a->rootfd, rel, 0755);
    int fd = rc < 0 ? rc : sf_openat_in(a->rootfd, rel, O_PATH | O_DIRECTORY, 0);
    *slash = '/';
    return fd;
}

static void img_owner(const struct img_apply *a, int pfd, const char *base,
                      const struct sf_tar_entry *e)
{
    if (a->as_root) (void)!fchownat(pfd, base, e->uid, e->gid, AT_SYMLINK_NOFOLLOW);
}

static int img_file(struct sf_tar *t, const struct img_apply *a, int pfd, const char *base,
                    const struct sf_tar_entry *e)
{
    char buf[IMG_CHUNK];
    int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int rc = 0;
    for (;;) {
        ssize_t n = sf_tar_data(t, buf, sizeof(buf));
        if (n < 0) { rc = (int)n; break; }
        if (n == 0) break;
        if ((rc = sf_write_all(fd, buf, (size_t)n)) < 0) break;
    }
    if (rc == 0 && a->as_root && fchown(fd, e->uid, e->gid) < 0) rc = -errno;
    /* setuid/setgid dropped: a template is never a way to privileges. */
    if (rc == 0 && fchmod(fd, (mode_t)(e->mode & 01777)) < 0) rc = -errno;
    close(fd);
    return rc;
}

/* One entry of a layer. 1 skipped, 0 done, -errno. */
static int img_entry(struct sf_tar *t, const struct img_apply *a, const struct sf_tar_entry *e)
{
    char rel[SF_TAR_PATH_MAX], target[SF_TAR_PATH_MAX];
    const char *base;
    int rc = 0;
    if (!sf_tar_clean_path(e->path, rel)) {
        sf_errf(a->err, a->errlen, "entry '%.200s' leaves the image's root", e->path);
        return -EINVAL;
    }
    if (!rel[0]) return 0;                               /* the root itself */
    int pfd = img_parent(a, rel, &base);
    if (pfd < 0) {
        sf_errf(a->err, a->errlen, "entry '%.200s': its directory: %s", e->path, strerror(-pfd));
        return pfd;
    }
    if (!strncmp(base, ".wh.", 4)) {                      /* whiteouts */
        if (!strcmp(base, ".wh..wh..opq")) {
            int d = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            rc = d < 0 ? -errno : sf_empty_dir(d);
            if (d >= 0) close(d);
        } else if (base[4] && strcmp(base + 4, ".") && strcmp(base + 4, "..")) {
            rc = sf_remove_at(pfd, base + 4);
        }
        goto out;
    }
    struct stat st;
    bool exists = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    /* A directory stays (its new mode applies); anything else is replaced. */
    if (exists && !(e->type == SF_TAR_DIR && S_ISDIR(st.st_mode)) && (rc = sf_remove_at(pfd, base)) < 0)
        goto out;
    switch (e->type) {
    case SF_TAR_DIR:
        if (mkdirat(pfd, base, 0755) < 0 && errno != EEXIST) { rc = -errno; break; }
        img_owner(a, pfd, base, e);
        if (fchmodat(pfd, base, (mode_t)(e->mode & 01777), 0) < 0) rc = -errno;
        break;
    case SF_TAR_FILE:
        rc = img_file(t, a, pfd, base, e);
        break;
    case SF_TAR_SYMLINK:
        /* Kept as written: it resolves inside the sandbox (and inside this
         * root for later entries, through RESOLVE_IN_ROOT). */
        if (!e->link[0] || symlinkat(e->link, pfd, base) < 0) rc = e->link[0] ? -errno : -EINVAL;
        else img_owner(a, pfd, base, e);
        break;
    case SF_TAR_HARDLINK: {
        if (!sf_tar_clean_path(e->link, target) || !target[0]) {
            sf_errf(a->err, a->errlen, "hard link '%.200s' -> '%.200s' leaves the image's root",
                    e->path, e->link);
            rc = -EINVAL;
            goto out;
        }
        int src = sf_openat_in(a->rootfd, target, O_PATH | O_NOFOLLOW, 0);
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src);
        rc = src < 0 ? src : linkat(AT_FDCWD, proc, pfd, base, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
        if (src >= 0) close(src);
        break;
    }
    case SF_TAR_FIFO:
        rc = mkfifoat(pfd, base, (mode_t)(e->mode & 0777)) < 0 ? -errno : 0;
        break;
    default:
        rc = 1;                                          /* devices: never in a template */
    }
out:
    if (rc < 0 && !a->err[0])
        sf_errf(a->err, a->errlen, "entry '%.200s': %s", e->path, strerror(-rc));
    close(pfd);
    return rc;
}

int sf_template_apply_layer(int rootfd, sf_tar_read_fn read, void *arg, char *err, size_t errlen)
{
    struct sf_tar t;
    struct sf_tar_entry *e = sf_xmalloc(sizeof(*e));
    struct img_apply a = { rootfd, geteuid() == 0, err, errlen };
    int rc, skipped = 0;
    err[0] = '\0';
    sf_tar_init(&t, read, arg);
    while ((rc = sf_tar_next(&t, e)) == 1) {
        int r = img_entry(&t, &a, e);
        if (r < 0) {
            rc = r;
            break;
        }
        skipped += r;
    }
    if (rc < 0 && !err[0]) sf_errf(err, errlen, "%s", t.err[0] ? t.err : strerror(-rc));
    free(e);
    return rc < 0 ? rc : skipped;
}

/* ---- import ---------------------------------------------------------------------- */

static int img_apply_member(struct img *im, const struct img_member *m, int rootfd, char *err,
                            size_t errlen)
{
    struct img_span s = { im->fd, m->off, m->off + m->size };
    unsigned char magic[4] = { 0 };
    if (pread(im->fd, magic, sizeof(magic), (off_t)m->off) < 0) return -errno;
    if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
        sf_errf(err, errlen, "a zstd-compressed layer: save the image with gzip or plain layers");
        return -EINVAL;
    }
    if (magic[0] != 0x1f || magic[1] != 0x8b) return sf_template_apply_layer(rootfd, img_span_read, &s, err, errlen);
    struct img_gz *g = sf_xcalloc(1, sizeof(*g));
    g->in = &s;
    int rc = inflateInit2(&g->z, 16 + MAX_WBITS) == Z_OK ? 0 : -ENOMEM;
    if (rc == 0) {
        rc = sf_template_apply_layer(rootfd, img_gz_read, g, err, errlen);
        inflateEnd(&g->z);
    }
    free(g);
    return rc;
}

static int img_import_into(const char *image, const char *root, int *layers_out, int *skipped,
                           char *err, size_t errlen)
{
    struct img im = { .fd = -1 };
    char **layers = NULL, why[512];
    int n = 0, rc, rootfd = -1;
    if ((rc = img_index(&im, image, err, errlen)) < 0) goto out;
    if ((n = rc = sf_image_layers(img_get, &im, &layers, err, errlen)) < 0) goto out;
    if ((rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        sf_errf(err, errlen, "%s: %s", root, strerror(errno));
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const struct img_member *m = img_find(&im, layers[i]);
        if (!m) {
            sf_errf(err, errlen, "layer %d (%s) is not in the archive", i + 1, layers[i]);
            rc = -EINVAL;
            goto out;
        }
        if ((rc = img_apply_member(&im, m, rootfd, why, sizeof(why))) < 0) {
            sf_errf(err, errlen, "layer %d of %d (%s): %s", i + 1, n, layers[i], why);
            goto out;
        }
        *skipped += rc;
    }
    *layers_out = n;
    rc = 0;
out:
    for (int i = 0; layers && i < n; i++) free(layers[i]);
    free(layers);
    if (rootfd >= 0) close(rootfd);
    img_free(&im);
    return rc;
}

int sf_template_import(const char *store, const char *name, const char *image, char *err,
                       size_t errlen)
{
    char final[PATH_MAX], tmp[PATH_MAX], root[PATH_MAX + 16];
    int rc, layers = 0, skipped = 0;
    if (!sf_valid_name(name, 64) || name[0] == '.') {
        sf_errf(err, errlen, "template name '%s': letters, digits, '_', '-', '.' (at most 64)", name);
        return -EINVAL;
    }
    if ((rc = sf_mkdir_p(store, 0755)) < 0) {
        sf_errf(err, errlen, "template store %s: %s", store, strerror(-rc));
        return rc;
    }
    snprintf(final, sizeof(final), "%s/%s", store, name);
    if (access(final, F_OK) == 0) {
        sf_errf(err, errlen, "template %s exists already (%s): remove it first", name, final);
        return -EEXIST;
    }
    snprintf(tmp, sizeof(tmp), "%s/.import-%s-%d", store, name, (int)getpid());
    snprintf(root, sizeof(root), "%s/rootfs", tmp);
    if (mkdir(tmp, 0755) < 0 || mkdir(root, 0755) < 0) {
        rc = -errno;
        sf_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if ((rc = img_import_into(image, root, &layers, &skipped, err, errlen)) < 0) goto fail;
    char *meta = sf_xasprintf("{\"name\":\"%s\",\"layers\":%d,\"skipped_devices\":%d,"
                              "\"imported_at\":%lld}\n", name, layers, skipped,
                              (long long)time(NULL));
    snprintf(root, sizeof(root), "%s/template.json", tmp);
    int fd = open(root, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!sf_write_all(fd, meta, strlen(meta));
        close(fd);
    }
    free(meta);
    if (rename(tmp, final) < 0) {
        rc = -errno;
        sf_errf(err, errlen, "rename %s -> %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    {
        int sfd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd >= 0) {
            sf_remove_at(sfd, strrchr(tmp, '/') + 1);
            close(sfd);
        }
    }
    return rc;
}
