/* common/e2b/e2b_connect.c: see e2b_connect.h. Everything here parses input
 * from the network: lengths are checked before use, JSON types are checked
 * before values are read, and nothing is trusted to be NUL-terminated. */
#include "e2b_connect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- envelopes -------------------------------------------------------------- */

void sf_e2b_frame(struct sf_buf *out, uint8_t flags, const void *msg, size_t len)
{
    unsigned char h[5] = { flags, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                           (unsigned char)(len >> 8), (unsigned char)len };
    sf_buf_append(out, h, sizeof(h));
    if (len) sf_buf_append(out, msg, len);
}

void sf_e2b_frame_json(struct sf_buf *out, uint8_t flags, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    sf_e2b_frame(out, flags, s, strlen(s));
    free(s);
}

void sf_e2b_reader_feed(struct sf_e2b_reader *r, const void *data, size_t len)
{
    /* Drop what was consumed before growing, so a long stream stays small. */
    if (r->off && r->off == r->buf.len) {
        r->buf.len = 0;
        r->off = 0;
    } else if (r->off > 65536) {
        memmove(r->buf.data, r->buf.data + r->off, r->buf.len - r->off);
        r->buf.len -= r->off;
        r->off = 0;
    }
    sf_buf_append(&r->buf, data, len);
}

int sf_e2b_reader_next(struct sf_e2b_reader *r, uint8_t *flags, const char **msg, size_t *len)
{
    size_t avail = r->buf.len - r->off;
    size_t max = r->max_frame ? r->max_frame : SF_E2B_FRAME_MAX;
    if (avail < 5) return 0;
    const unsigned char *h = (const unsigned char *)r->buf.data + r->off;
    uint32_t n = ((uint32_t)h[1] << 24) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 8) | h[4];
    if (n > max || (h[0] & SF_E2B_FLAG_COMPRESSED)) return -EPROTO;
    if (avail - 5 < n) return 0;
    *flags = h[0];
    *msg = (const char *)h + 5;
    *len = n;
    r->off += 5 + (size_t)n;
    return 1;
}

size_t sf_e2b_reader_pending(const struct sf_e2b_reader *r)
{
    return r->buf.len - r->off;
}

void sf_e2b_reader_free(struct sf_e2b_reader *r)
{
    sf_buf_free(&r->buf);
    r->off = 0;
}

/* ---- base64 (protojson input rules) ---------------------------------------- */

static int e2b_b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int sf_e2b_b64_decode(const char *s, size_t slen, char **out, size_t *outlen)
{
    while (slen && s[slen - 1] == '=') slen--;
    if (slen % 4 == 1) return -EINVAL;
    char *o = sf_xmalloc(slen / 4 * 3 + 3);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = e2b_b64val((unsigned char)s[i]);
        if (v < 0) {
            free(o);
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    o[n] = '\0';
    *out = o;
    *outlen = n;
    return 0;
}

/* ---- events ----------------------------------------------------------------- */

/* A field by its lowerCamelCase or proto name. */
static json_t *e2b_field(const json_t *o, const char *camel, const char *snake)
{
    json_t *v = json_object_get(o, camel);
    return v || !snake ? v : json_object_get(o, snake);
}

/* proto3 JSON numbers may also come as strings. */
static int e2b_int(const json_t *v, long long *out)
{
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        errno = 0;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (errno || end == json_string_value(v) || *end) return -EPROTO;
        *out = x;
        return 0;
    }
    return -EPROTO;
}

static void e2b_copy_str(const json_t *v, char *dst, size_t size)
{
    dst[0] = '\0';
    if (json_is_string(v)) sf_strlcpy(dst, json_string_value(v), size);
}

static int e2b_parse_data(const json_t *d, struct sf_e2b_event *ev, char *err, size_t errlen)
{
    static const struct { const char *name; enum sf_e2b_stream s; } kinds[] = {
        { "stdout", SF_E2B_STDOUT }, { "stderr", SF_E2B_STDERR }, { "pty", SF_E2B_PTY },
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        json_t *v = json_object_get(d, kinds[i].name);
        if (!v) continue;
        if (!json_is_string(v) ||
            sf_e2b_b64_decode(json_string_value(v), json_string_length(v), &ev->data, &ev->len) < 0) {
            sf_errf(err, errlen, "data event: %s is not base64", kinds[i].name);
            return -EPROTO;
        }
        ev->stream = kinds[i].s;
        return 0;
    }
    /* All three absent: an empty chunk (zero-length bytes are omitted). */
    ev->stream = SF_E2B_STDOUT;
    ev->data = sf_xcalloc(1, 1);
    ev->len = 0;
    return 0;
}

int sf_e2b_event_parse(const char *msg, size_t len, struct sf_e2b_event *ev, char *err,
                       size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(msg, len, 0, &je), *e, *x;
    long long n = 0;
    int rc = -EPROTO;

    memset(ev, 0, sizeof(*ev));
    if (!root) {
        sf_errf(err, errlen, "event is not JSON: %s", je.text);
        return -EPROTO;
    }
    e = json_object_get(root, "event");
    if (!json_is_object(e)) {
        sf_errf(err, errlen, "message has no \"event\" object");
        goto cleanup;
    }
    if ((x = json_object_get(e, "start"))) {
        if (!json_is_object(x) || e2b_int(json_object_get(x, "pid"), &n) < 0 || n < 0 ||
            n > UINT32_MAX) {
            sf_errf(err, errlen, "start event: bad pid");
            goto cleanup;
        }
        ev->kind = SF_E2B_EV_START;
        ev->pid = (uint32_t)n;
    } else if ((x = json_object_get(e, "data"))) {
        if (!json_is_object(x)) {
            sf_errf(err, errlen, "data event is not an object");
            goto cleanup;
        }
        ev->kind = SF_E2B_EV_DATA;
        if (e2b_parse_data(x, ev, err, errlen) < 0) goto cleanup;
    } else if ((x = json_object_get(e, "end"))) {
        json_t *exited = json_object_get(x, "exited");
        if (!json_is_object(x) || e2b_int(e2b_field(x, "exitCode", "exit_code"), &n) < 0 ||
            n < -1000000 || n > 1000000 || (exited && !json_is_boolean(exited))) {
            sf_errf(err, errlen, "end event: bad exitCode or exited");
            goto cleanup;
        }
        ev->kind = SF_E2B_EV_END;
        ev->exit_code = (int)n;
        ev->exited = json_is_true(exited);
        e2b_copy_str(json_object_get(x, "status"), ev->status, sizeof(ev->status));
        e2b_copy_str(json_object_get(x, "error"), ev->error, sizeof(ev->error));
    } else if (json_object_get(e, "keepalive")) {
        ev->kind = SF_E2B_EV_KEEPALIVE;
    } else {
        sf_errf(err, errlen, "unknown event");
        goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref(root);
    if (rc < 0) sf_e2b_event_clear(ev);
    return rc;
}

void sf_e2b_event_clear(struct sf_e2b_event *ev)
{
    free(ev->data);
    ev->data = NULL;
    ev->len = 0;
}

int sf_e2b_end_parse(const char *msg, size_t len, char *code, size_t codelen, char *text,
                     size_t textlen)
{
    json_error_t je;
    json_t *root = json_loadb(msg, len, 0, &je);
    int rc = 0;
    code[0] = text[0] = '\0';
    if (!root || !json_is_object(root)) {
        json_decref(root);
        sf_strlcpy(text, "end of stream is not a JSON object", textlen);
        return -EPROTO;
    }
    json_t *e = json_object_get(root, "error");
    if (e && !json_is_null(e)) {
        rc = -EIO;
        e2b_copy_str(json_object_get(e, "code"), code, codelen);
        e2b_copy_str(json_object_get(e, "message"), text, textlen);
        if (!code[0]) sf_strlcpy(code, "unknown", codelen);
    }
    json_decref(root);
    return rc;
}

/* ---- server-side events ----------------------------------------------------- */

static void e2b_put_event(struct sf_buf *out, const char *kind, json_t *body)
{
    json_t *j = json_pack("{s:{s:o}}", "event", kind, body);
    sf_e2b_frame_json(out, 0, j);
    json_decref(j);
}

void sf_e2b_put_start(struct sf_buf *out, uint32_t pid)
{
    e2b_put_event(out, "start", json_pack("{s:I}", "pid", (json_int_t)pid));
}

void sf_e2b_put_data(struct sf_buf *out, enum sf_e2b_stream stream, const void *data, size_t len)
{
    const char *name = stream == SF_E2B_STDERR ? "stderr" : stream == SF_E2B_PTY ? "pty" : "stdout";
    char *b64 = sf_base64_encode(data, len);
    e2b_put_event(out, "data", json_pack("{s:s}", name, b64));
    free(b64);
}

void sf_e2b_put_end(struct sf_buf *out, int exit_code, bool exited, const char *status,
                    const char *error)
{
    json_t *end = json_object();
    if (exit_code) json_object_set_new(end, "exitCode", json_integer(exit_code));
    if (exited) json_object_set_new(end, "exited", json_true());
    if (status && status[0]) json_object_set_new(end, "status", json_string(status));
    if (error && error[0]) json_object_set_new(end, "error", json_string(error));
    e2b_put_event(out, "end", end);
}

void sf_e2b_put_keepalive(struct sf_buf *out)
{
    e2b_put_event(out, "keepalive", json_object());
}

void sf_e2b_put_trailer(struct sf_buf *out, const char *code, const char *text)
{
    if (!code) {
        sf_e2b_frame(out, SF_E2B_FLAG_END, "{}", 2);
        return;
    }
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", text ? text : "");
    sf_e2b_frame_json(out, SF_E2B_FLAG_END, j);
    json_decref(j);
}
