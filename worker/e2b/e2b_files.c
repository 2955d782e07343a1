/* worker/e2b/e2b_files.c: envd's /files — uploads (multipart or raw, either
 * one possibly Content-Encoding: gzip) written into the sandbox as the
 * bytes arrive, downloads streamed from the sandbox (gzip when the client
 * accepts it), and envd's signed URLs.
 *
 * Design: an upload never holds more than one chunk in memory. The
 * destination is opened through the sandbox's file system interface
 * (sandbox_fs.h: resolved inside the sandbox, as the requesting user)
 * when its part starts; each chunk MHD hands us is inflated if need be,
 * parsed by MHD's multipart parser if need be, and written. The first
 * error is kept and the rest of the body is read and dropped, so the
 * client gets envd's answer instead of a cut connection.
 * Signed URLs (SDK download_url/upload_url) carry no sandbox id: the
 * signature, sha256 over "path:op:user:token[:expiry]", names it, so the
 * sandbox is the one whose token gives that signature. */
#include "e2b_server.h"
#include "e2b_registry.h"
#include "lazy_mhd.h"
#include "sandbox_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define E2B_CHUNK (64u << 10)

struct e2b_upload {
    struct e2b_req *rq;
    uint32_t uid;
    struct MHD_PostProcessor *pp;        /* multipart */
    const char *qpath;                   /* ?path=, borrowed from the connection */
    int fd;                              /* the file being written */
    char *part;                          /* multipart: the current part's filename */
    bool part_has_data;
    z_stream z;
    bool gz, gz_done;
    int err;                             /* first -errno */
    char *err_path;
    const char *bad;                     /* malformed body: why */
    json_t *entries;
};

/* ---- signatures --------------------------------------------------------------- */

/* "v1_" + base64 without padding of sha256("path:op:user:token[:exp]"). */
static void e2b_signature(const char *path, const char *op, const char *user, const char *token,
                          const char *exp, char *out, size_t size)
{
    char *raw = exp && exp[0] ? sf_xasprintf("%s:%s:%s:%s:%s", path, op, user, token, exp)
                              : sf_xasprintf("%s:%s:%s:%s", path, op, user, token);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(raw, strlen(raw), md, &mdlen, EVP_sha256(), NULL);
    char *b64 = sf_base64_encode(md, mdlen);
    size_t n = strlen(b64);
    while (n && b64[n - 1] == '=') b64[--n] = '\0';
    snprintf(out, size, "v1_%s", b64);
    free(b64);
    free(raw);
}

static bool e2b_signature_ok(struct e2b_req *rq, const struct e2b_sbx *s, const char *sig)
{
    char want[128];
    const char *exp = e2b_query(rq, "signature_expiration"), *user = e2b_query(rq, "username");
    const char *path = e2b_query(rq, "path");
    e2b_signature(path ? path : "", !strcmp(rq->method, "GET") ? "read" : "write",
                  user ? user : "", s->token, exp, want, sizeof(want));
    return strlen(sig) == strlen(want) && !CRYPTO_memcmp(sig, want, strlen(want));
}

struct e2b_sbx *e2b_files_signed_sandbox(struct e2b_req *rq)
{
    const char *sig = e2b_query(rq, "signature");
    struct e2b_sbx **all, *found = NULL;
    if (!sig || strncmp(sig, "v1_", 3)) return NULL;
    size_t n = e2b_registry_snapshot(rq->reg, &all);
    for (size_t i = 0; i < n; i++) {
        if (!found && all[i]->token[0] && e2b_signature_ok(rq, all[i], sig)) found = all[i];
        else e2b_registry_put(rq->reg, all[i]);
    }
    free(all);
    return found;
}

bool e2b_files_auth(struct e2b_req *rq)
{
    const struct e2b_sbx *s = rq->sbx;
    const char *t = e2b_header(rq, "X-Access-Token"), *sig = e2b_query(rq, "signature");
    const char *exp = e2b_query(rq, "signature_expiration");
    if (!s->token[0]) return true;
    if (t) {
        if (strlen(t) == strlen(s->token) && !CRYPTO_memcmp(t, s->token, strlen(t))) return true;
        e2b_reply_error(rq, 401, "access token present in header but does not match");
        return false;
    }
    if (!sig) {
        e2b_reply_error(rq, 401, "missing signature query parameter");
        return false;
    }
    if (!e2b_signature_ok(rq, s, sig)) {
        e2b_reply_error(rq, 401, "invalid signature");
        return false;
    }
    if (exp && exp[0] && strtoll(exp, NULL, 10) < (long long)time(NULL)) {
        e2b_reply_error(rq, 401, "signature is already expired");
        return false;
    }
    return true;
}

/* ---- uploads ------------------------------------------------------------------ */

static void e2b_up_fail(struct e2b_upload *up, int err, const char *abs)
{
    if (up->err) return;
    up->err = err;
    up->err_path = sf_xstrdup(abs ? abs : "");
}

static void e2b_up_close(struct e2b_upload *up)
{
    if (up->fd >= 0) close(up->fd);
    up->fd = -1;
}

/* Open the destination of the next file (its raw envd path). */
static void e2b_up_open(struct e2b_upload *up, const char *raw)
{
    struct e2b_sbx *s = up->rq->sbx;
    e2b_up_close(up);
    if (up->err) return;
    char *abs = e2b_resolve(raw);
    int rc;
    pthread_mutex_lock(&s->mu);
    bool killed = s->killed;
    pthread_mutex_unlock(&s->mu);
    if (killed) rc = -EHOSTDOWN;
    else rc = sf_sandbox_fs(s->sb)->open(s->sb, up->uid, abs, O_WRONLY | O_CREAT | O_TRUNC, 0644, &up->fd);
    if (rc < 0) {
        e2b_up_fail(up, rc, abs);
    } else {
        const char *base = strrchr(abs, '/');
        json_array_append_new(up->entries, json_pack("{s:s,s:s,s:s}", "path", abs, "name",
                                                     base ? base + 1 : abs, "type", "file"));
    }
    free(abs);
}

static void e2b_up_write(struct e2b_upload *up, const char *data, size_t len)
{
    if (up->fd < 0 || up->err || !len) return;
    int rc = sf_write_all(up->fd, data, len);
    if (rc < 0) {
        json_t *last = json_array_get(up->entries, json_array_size(up->entries) - 1);
        e2b_up_fail(up, rc, json_string_value(json_object_get(last, "path")));
        e2b_up_close(up);
    }
}

static enum MHD_Result e2b_up_part(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *filename, const char *ctype, const char *enc,
                                   const char *data, uint64_t off, size_t size)
{
    struct e2b_upload *up = cls;
    (void)kind; (void)ctype; (void)enc;
    if (!key || strcmp(key, "file")) return MHD_YES;      /* envd ignores other fields */
    /* MHD may call with off 0 more than once for one part (an empty call
     * first): a part starts at off 0 unless the current one is still empty
     * and has the same name. */
    const char *name = filename ? filename : "";
    if (off == 0 && (!up->part || up->part_has_data || strcmp(up->part, name))) {
        free(up->part);
        up->part = sf_xstrdup(name);
        up->part_has_data = false;
        e2b_up_open(up, up->qpath ? up->qpath : name);
    }
    if (size) up->part_has_data = true;
    e2b_up_write(up, data, size);
    return MHD_YES;
}

/* Body bytes after Content-Encoding: to the multipart parser or the file. */
static void e2b_up_sink(struct e2b_upload *up, const char *data, size_t len)
{
    if (up->bad) return;
    if (up->pp) {
        if (sf_mhd_post_process(up->pp, data, len) != MHD_YES) up->bad = "malformed multipart body";
    } else {
        e2b_up_write(up, data, len);
    }
}

static void e2b_files_upload_data(struct e2b_req *rq, const char *data, size_t len)
{
    struct e2b_upload *up = rq->sink.state;
    /* After the first error the answer is decided: the rest is dropped, not
     * inflated (a gzip bomb past a full disk is GBs of inflating for nothing). */
    if (!up || up->bad || up->err) return;
    if (!up->gz) {
        e2b_up_sink(up, data, len);
        return;
    }
    char out[E2B_CHUNK];
    up->z.next_in = (Bytef *)data;
    up->z.avail_in = (uInt)len;
    while (up->z.avail_in && !up->gz_done && !up->bad) {
        up->z.next_out = (Bytef *)out;
        up->z.avail_out = sizeof(out);
        int zr = inflate(&up->z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            up->bad = "the body is not valid gzip";
            break;
        }
        e2b_up_sink(up, out, sizeof(out) - up->z.avail_out);
        if (zr == Z_STREAM_END) up->gz_done = true;
        if (zr == Z_BUF_ERROR && up->z.avail_out) break;
    }
}

static void e2b_files_upload_free(void *state)
{
    struct e2b_upload *up = state;
    if (!up) return;
    e2b_up_close(up);
    if (up->pp) sf_mhd_destroy_post_processor(up->pp);
    if (up->gz) inflateEnd(&up->z);
    free(up->part);
    free(up->err_path);
    json_decref(up->entries);
    free(up);
}

static int e2b_files_upload_end(struct e2b_req *rq)
{
    struct e2b_upload *up = rq->sink.state;
    e2b_up_close(up);
    if (up->gz && !up->gz_done && !up->bad) up->bad = "the gzip body is truncated";
    if (up->bad) return e2b_reply_error(rq, 400, "%s", up->bad);
    int rc = up->err;
    const char *p = up->err_path;
    if (rc == -EHOSTDOWN || rc == -ESRCH) return e2b_gone(rq);
    if (rc == -EISDIR) return e2b_reply_error(rq, 400, "path is a directory: %s", p);
    if (rc == -ENOSPC || rc == -EFBIG || rc == -EDQUOT)
        return e2b_reply_error(rq, 507, "not enough disk space available");
    if (rc == -EACCES || rc == -EPERM || rc == -EROFS)
        return e2b_reply_error(rq, 403, "error opening file %s: %s", p, strerror(-rc));
    if (rc == -ENOTDIR || rc == -EINVAL) return e2b_reply_error(rq, 400, "invalid path %s: %s", p, strerror(-rc));
    if (rc < 0) return e2b_reply_error(rq, 500, "error writing %s: %s", p, strerror(-rc));
    if (up->pp && !json_array_size(up->entries))
        return e2b_reply_error(rq, 400, "no file part in the multipart body");
    return e2b_reply_json(rq, 200, json_incref(up->entries));
}

bool e2b_files_upload_begin(struct e2b_req *rq)
{
    const char *ct = e2b_header(rq, "Content-Type"), *ce = e2b_header(rq, "Content-Encoding");
    const char *user = e2b_query(rq, "username");
    uint32_t uid;
    if (!e2b_user_uid(user, &uid)) {
        e2b_reply_error(rq, 401, "error looking up user '%s': user: unknown user %s", user, user);
        return false;
    }
    bool multipart = ct && !strncasecmp(ct, "multipart/form-data", 19);
    bool raw = ct && !strncasecmp(ct, "application/octet-stream", 24);
    if (!multipart && !raw) {
        e2b_reply_error(rq, 400, "unsupported content type: %s, expected multipart/form-data or "
                        "application/octet-stream", ct ? ct : "");
        return false;
    }
    if (ce && ce[0] && strcasecmp(ce, "gzip") && strcasecmp(ce, "identity")) {
        e2b_reply_error(rq, 415, "unsupported Content-Encoding: %s (gzip is)", ce);
        return false;
    }
    struct e2b_upload *up = sf_xcalloc(1, sizeof(*up));
    up->rq = rq;
    up->uid = uid;
    up->fd = -1;
    up->qpath = e2b_query(rq, "path");
    up->entries = json_array();
    if (ce && !strcasecmp(ce, "gzip")) {
        up->gz = true;
        if (inflateInit2(&up->z, 16 + MAX_WBITS) != Z_OK) {
            up->gz = false;
            e2b_files_upload_free(up);
            e2b_reply_error(rq, 500, "cannot start gzip decoding");
            return false;
        }
    }
    if (raw && !up->qpath) {
        e2b_files_upload_free(up);
        e2b_reply_error(rq, 400, "path query parameter is required for raw body upload");
        return false;
    }
    rq->sink = (struct e2b_sink){ e2b_files_upload_data, e2b_files_upload_end,
                                  e2b_files_upload_free, up };
    if (multipart) up->pp = sf_mhd_create_post_processor(rq->conn, 65536, e2b_up_part, up);
    else e2b_up_open(up, up->qpath);          /* an empty body is an empty file */
    return true;
}

/* ---- downloads ---------------------------------------------------------------- */

struct e2b_download {
    int fd;
    uint64_t off;
    bool gz, in_eof, done;
    z_stream z;
    unsigned char in[E2B_CHUNK];
};

static ssize_t e2b_dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct e2b_download *d = cls;
    (void)pos;
    if (!d->gz) {
        ssize_t n;
        do n = pread(d->fd, buf, max, (off_t)d->off); while (n < 0 && errno == EINTR);
        if (n <= 0) return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
        d->off += (uint64_t)n;
        return n;
    }
    if (d->done) return MHD_CONTENT_READER_END_OF_STREAM;
    d->z.next_out = (Bytef *)buf;
    d->z.avail_out = (uInt)max;
    while (d->z.avail_out == max) {
        if (!d->z.avail_in && !d->in_eof) {
            ssize_t n;
            do n = pread(d->fd, d->in, sizeof(d->in), (off_t)d->off); while (n < 0 && errno == EINTR);
            if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
            d->off += (uint64_t)n;
            d->in_eof = n == 0;
            d->z.next_in = d->in;
            d->z.avail_in = (uInt)n;
        }
        int zr = deflate(&d->z, d->in_eof ? Z_FINISH : Z_NO_FLUSH);
        if (zr == Z_STREAM_END) {
            d->done = true;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = max - d->z.avail_out;
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void e2b_dl_free(void *cls)
{
    struct e2b_download *d = cls;
    if (d->gz) deflateEnd(&d->z);
    close(d->fd);
    free(d);
}

static bool e2b_accepts_gzip(struct e2b_req *rq)
{
    const char *ae = e2b_header(rq, "Accept-Encoding");
    if (!ae) return false;
    for (const char *p = ae; (p = strcasestr(p, "gzip")); p += 4) {
        const char *q = p + 4;
        while (*q == ' ') q++;
        /* "gzip;q=0" refuses it */
        if (!strncmp(q, ";q=0", 4) && (q[4] == '\0' || q[4] == ',' || !strncmp(q + 4, ".0", 2) ||
                                       q[4] == ' '))
            return false;
        return true;
    }
    return false;
}

int e2b_files_get(struct e2b_req *rq)
{
    struct e2b_sbx *s = rq->sbx;
    const char *user = e2b_query(rq, "username");
    uint32_t uid;
    int fd = -1, rc;
    if (!e2b_user_uid(user, &uid))
        return e2b_reply_error(rq, 401, "error looking up user '%s': user: unknown user %s", user, user);
    char *abs = e2b_resolve(e2b_query(rq, "path"));
    pthread_mutex_lock(&s->mu);
    bool killed = s->killed;
    pthread_mutex_unlock(&s->mu);
    rc = killed ? -EHOSTDOWN : sf_sandbox_fs(s->sb)->open(s->sb, uid, abs, O_RDONLY, 0, &fd);
    int ret;
    struct stat st;
    if (rc == 0 && fstat(fd, &st) < 0) rc = -errno;
    if (rc == 0) {
        struct e2b_download *d = sf_xcalloc(1, sizeof(*d));
        d->fd = fd;
        d->gz = e2b_accepts_gzip(rq) &&
                deflateInit2(&d->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                             Z_DEFAULT_STRATEGY) == Z_OK;
        const char *base = strrchr(abs, '/');
        char disp[300];
        snprintf(disp, sizeof(disp), "inline; filename=%s", base ? base + 1 : abs);
        struct MHD_Response *r = sf_mhd_create_response_from_callback(
            d->gz ? MHD_SIZE_UNKNOWN : (uint64_t)st.st_size, E2B_CHUNK, e2b_dl_read, d, e2b_dl_free);
        sf_mhd_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
        sf_mhd_add_response_header(r, "Content-Disposition", disp);
        sf_mhd_add_response_header(r, "Vary", "Accept-Encoding");
        if (d->gz) sf_mhd_add_response_header(r, "Content-Encoding", "gzip");
        ret = sf_mhd_queue_response(rq->conn, 200, r);
        sf_mhd_destroy_response(r);
    } else if (rc == -EHOSTDOWN) {
        ret = e2b_gone(rq);
    } else if (rc == -ENOENT) {
        ret = e2b_reply_error(rq, 404, "path '%s' does not exist", abs);
    } else if (rc == -EISDIR) {
        ret = e2b_reply_error(rq, 400, "path '%s' is a directory", abs);
    } else if (rc == -EACCES || rc == -EPERM) {
        ret = e2b_reply_error(rq, 403, "error opening file '%s': %s", abs, strerror(-rc));
    } else {
        ret = e2b_reply_error(rq, 400, "error reading '%s': %s", abs, strerror(-rc));
    }
    if (rc < 0 && fd >= 0) close(fd);
    free(abs);
    return ret;
}
