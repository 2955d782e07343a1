/* common/sandbox/e2b/e2b_envd_client.c: see e2b_envd.h.
 *
 * Start is one POST whose response is a stream of Connect envelopes; curl's
 * write callback feeds them to the I/O-free reader (e2b_connect.c) and hands
 * events to the caller as they arrive. The deadline is enforced here through
 * curl's progress callback, and also sent as Connect-Timeout-Ms so envd
 * kills the process itself if we vanish. Errors in front of envd (the
 * edge's 502, envd's 401) come as plain JSON with a non-200 status; errors
 * inside come as HTTP 200 plus an end-of-stream error. */
#include "e2b_envd_client.h"

#include "lazy_curl.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E2B_KEEPALIVE_S 30           /* we ask envd for a keepalive this often */
#define E2B_IDLE_LIMIT_S 120         /* ...and give up after this long of silence */
#define E2B_ERRBODY_MAX 65536

static struct curl_slist *e2b_envd_headers(const struct sf_e2b_envd *e, const char *ctype)
{
    char line[400];
    struct curl_slist *hl = NULL;
    snprintf(line, sizeof(line), "E2b-Sandbox-Id: %s", e->sbx->id);
    hl = sf_curl_slist_append(hl, line);
    snprintf(line, sizeof(line), "E2b-Sandbox-Port: %d", SF_E2B_ENVD_PORT);
    hl = sf_curl_slist_append(hl, line);
    if (e->sbx->token[0]) {
        snprintf(line, sizeof(line), "X-Access-Token: %s", e->sbx->token);
        hl = sf_curl_slist_append(hl, line);
    }
    if (ctype) {
        snprintf(line, sizeof(line), "Content-Type: %s", ctype);
        hl = sf_curl_slist_append(hl, line);
    }
    return hl;
}

/* <base>/files?path=<p>&username=<u> */
static char *e2b_files_url(const struct sf_e2b_envd *e, const char *path)
{
    CURL *curl = sf_curl_easy_init();
    char *esc = curl ? sf_curl_easy_escape(curl, path, 0) : NULL;
    char *url = sf_xasprintf("%s/files?path=%s%s%s", e->sbx->envd_url, esc ? esc : "",
                             e->user ? "&username=" : "", e->user ? e->user : "");
    sf_curl_free(esc);
    if (curl) sf_curl_easy_cleanup(curl);
    return url;
}

int sf_e2b_envd_upload(const struct sf_e2b_envd *e, const char *path, const void *data,
                       size_t len, char *err, size_t errlen)
{
    char *url = e2b_files_url(e, path);
    struct curl_slist *hl = e2b_envd_headers(e, NULL);
    CURL *curl = sf_curl_easy_init();
    curl_mime *mime = sf_curl_mime_init(curl);
    curl_mimepart *part = sf_curl_mime_addpart(mime);
    int rc;

    /* Multipart, field "file": what every envd version accepts. */
    sf_curl_mime_name(part, "file");
    sf_curl_mime_filename(part, path);
    sf_curl_mime_data(part, data, len);
    sf_curl_mime_type(part, "application/octet-stream");
    struct sf_e2b_http h = { .method = "POST", .url = url, .headers = hl, .mime = mime,
                             .timeout_ms = e->conn->request_timeout_ms };
    rc = sf_e2b_http_do(&h, err, errlen);
    if (rc == 0 && h.status != 200) {
        char what[300];
        snprintf(what, sizeof(what), "e2b upload %s", path);
        rc = sf_e2b_http_error(&h, what, err, errlen);
    }
    sf_buf_free(&h.resp);
    sf_curl_mime_free(mime);
    sf_curl_easy_cleanup(curl);
    sf_curl_slist_free_all(hl);
    free(url);
    return rc;
}

int sf_e2b_envd_download(const struct sf_e2b_envd *e, const char *path, size_t max, char **data,
                         size_t *len, char *err, size_t errlen)
{
    char *url = e2b_files_url(e, path);
    struct curl_slist *hl = e2b_envd_headers(e, NULL);
    struct sf_e2b_http h = { .method = "GET", .url = url, .headers = hl, .max_response = max,
                             .timeout_ms = e->conn->request_timeout_ms };
    int rc = sf_e2b_http_do(&h, err, errlen);
    if (rc == 0 && h.status == 200) {
        *data = sf_buf_steal(&h.resp, len);
    } else if (rc == 0) {
        char what[300];
        snprintf(what, sizeof(what), "e2b download %s", path);
        rc = sf_e2b_http_error(&h, what, err, errlen);
    }
    sf_buf_free(&h.resp);
    sf_curl_slist_free_all(hl);
    free(url);
    return rc;
}

/* ---- unary RPC -------------------------------------------------------------- */

static int e2b_unary(const struct sf_e2b_envd *e, const char *method, json_t *req, char *err,
                     size_t errlen)
{
    char *url = sf_xasprintf("%s/process.Process/%s", e->sbx->envd_url, method);
    char *body = json_dumps(req, JSON_COMPACT);
    struct curl_slist *hl = e2b_envd_headers(e, "application/json");
    hl = sf_curl_slist_append(hl, "Connect-Protocol-Version: 1");
    struct sf_e2b_http h = { .method = "POST", .url = url, .headers = hl, .body = body,
                             .body_len = strlen(body), .timeout_ms = e->conn->request_timeout_ms };
    int rc = sf_e2b_http_do(&h, err, errlen);
    if (rc == 0 && h.status != 200) {
        char what[64];
        snprintf(what, sizeof(what), "e2b %s", method);
        rc = sf_e2b_http_error(&h, what, err, errlen);
    }
    sf_buf_free(&h.resp);
    sf_curl_slist_free_all(hl);
    free(body);
    free(url);
    json_decref(req);
    return rc;
}

int sf_e2b_envd_send_stdin(const struct sf_e2b_envd *e, uint32_t pid, const void *data,
                           size_t len, char *err, size_t errlen)
{
    char *b64 = sf_base64_encode(data, len);
    json_t *req = json_pack("{s:{s:I},s:{s:s}}", "process", "pid", (json_int_t)pid, "input",
                            "stdin", b64);
    free(b64);
    return e2b_unary(e, "SendInput", req, err, errlen);
}

int sf_e2b_envd_close_stdin(const struct sf_e2b_envd *e, uint32_t pid, char *err, size_t errlen)
{
    return e2b_unary(e, "CloseStdin", json_pack("{s:{s:I}}", "process", "pid", (json_int_t)pid),
                     err, errlen);
}

int sf_e2b_envd_signal(const struct sf_e2b_envd *e, uint32_t pid, int sig, char *err,
                       size_t errlen)
{
    const char *name = sig == 15 ? "SIGNAL_SIGTERM" : "SIGNAL_SIGKILL";
    return e2b_unary(e, "SendSignal", json_pack("{s:{s:I},s:s}", "process", "pid",
                                                (json_int_t)pid, "signal", name), err, errlen);
}

/* ---- Start (server streaming) ---------------------------------------------- */

struct e2b_stream {
    CURL *curl;
    const struct sf_e2b_start_cb *cb;
    struct sf_e2b_end *end;
    struct sf_e2b_reader rd;
    struct sf_buf errbody;        /* body of a non-200 answer */
    int64_t deadline_ms;
    bool got_start, got_trailer, aborted;
    int rc;                       /* first stream error, -errno */
    char *err;
    size_t errlen;
};

static int e2b_stream_fail(struct e2b_stream *s, int rc, const char *msg)
{
    if (!s->rc) {
        s->rc = rc;
        sf_strlcpy(s->err, msg, s->errlen);
    }
    return -1;
}

/* One frame: 0 to go on, -1 to stop the transfer. */
static int e2b_stream_frame(struct e2b_stream *s, uint8_t flags, const char *msg, size_t len)
{
    char why[400];
    if (flags & SF_E2B_FLAG_END) {
        char code[64], text[256];
        s->got_trailer = true;
        int rc = sf_e2b_end_parse(msg, len, code, sizeof(code), text, sizeof(text));
        if (rc == -EIO && !strcmp(code, "deadline_exceeded")) {
            s->end->timed_out = true;
            return 0;
        }
        if (rc < 0) {
            snprintf(why, sizeof(why), "e2b process: %s%s%s", code, code[0] ? ": " : "", text);
            /* invalid_argument before any start event: envd could not start
             * it (bad cwd, no such program). */
            if (rc == -EIO && !strcmp(code, "invalid_argument") && !s->got_start) rc = -ENOEXEC;
            else if (rc == -EIO && !strcmp(code, "unauthenticated")) rc = -EACCES;
            return e2b_stream_fail(s, rc, why);
        }
        return 0;
    }
    struct sf_e2b_event ev;
    if (sf_e2b_event_parse(msg, len, &ev, why, sizeof(why)) < 0)
        return e2b_stream_fail(s, -EPROTO, why);
    int rc = 0;
    switch (ev.kind) {
    case SF_E2B_EV_START:
        s->got_start = true;
        s->end->pid = ev.pid;
        if (s->cb && s->cb->on_start && s->cb->on_start(s->cb->arg, ev.pid)) {
            s->aborted = true;
            rc = -1;
        }
        break;
    case SF_E2B_EV_DATA:
        if (s->cb && s->cb->on_data && ev.len) s->cb->on_data(s->cb->arg, ev.stream, ev.data, ev.len);
        break;
    case SF_E2B_EV_END:
        s->end->ended = true;
        s->end->exit_code = ev.exit_code;
        s->end->exited = ev.exited;
        sf_strlcpy(s->end->status, ev.status, sizeof(s->end->status));
        sf_strlcpy(s->end->error, ev.error, sizeof(s->end->error));
        break;
    case SF_E2B_EV_KEEPALIVE:
        break;
    }
    sf_e2b_event_clear(&ev);
    return rc;
}

static size_t e2b_stream_write(char *p, size_t sz, size_t n, void *arg)
{
    struct e2b_stream *s = arg;
    long status = 0;
    sf_curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        if (s->errbody.len < E2B_ERRBODY_MAX) sf_buf_append(&s->errbody, p, sz * n);
        return sz * n;
    }
    sf_e2b_reader_feed(&s->rd, p, sz * n);
    for (;;) {
        uint8_t flags;
        const char *msg;
        size_t len;
        int r = sf_e2b_reader_next(&s->rd, &flags, &msg, &len);
        if (r == 0) break;
        if (r < 0) {
            e2b_stream_fail(s, -EPROTO, "e2b process: malformed Connect envelope");
            return 0;
        }
        if (e2b_stream_frame(s, flags, msg, len) < 0) return 0;
    }
    return sz * n;
}

static int e2b_stream_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct e2b_stream *s = arg;
    (void)a; (void)b; (void)c; (void)d;
    if (s->deadline_ms > 0 && sf_now_ms() >= s->deadline_ms) {
        s->end->timed_out = true;
        return 1;
    }
    return 0;
}

static json_t *e2b_start_body(const struct sf_e2b_start *req)
{
    json_t *args = json_array(), *envs = json_object();
    for (size_t i = 1; req->argv[0] && req->argv[i]; i++)
        json_array_append_new(args, json_string(req->argv[i]));
    for (size_t i = 0; req->env && req->env[i]; i++) {
        const char *eq = strchr(req->env[i], '=');
        if (!eq) continue;
        char *k = sf_xstrndup(req->env[i], (size_t)(eq - req->env[i]));
        json_object_set_new(envs, k, json_string(eq + 1));
        free(k);
    }
    json_t *proc = json_pack("{s:s,s:o,s:o}", "cmd", req->argv[0], "args", args, "envs", envs);
    if (req->cwd) json_object_set_new(proc, "cwd", json_string(req->cwd));
    return json_pack("{s:o,s:b}", "process", proc, "stdin", req->stdin_open);
}

/* Headers of a Start call: Connect streaming + our deadline + the user. */
static struct curl_slist *e2b_start_headers(const struct sf_e2b_envd *e, int64_t deadline_ms)
{
    char line[128];
    struct curl_slist *hl = e2b_envd_headers(e, "application/connect+json");
    hl = sf_curl_slist_append(hl, "Connect-Protocol-Version: 1");
    snprintf(line, sizeof(line), "Keepalive-Ping-Interval: %d", E2B_KEEPALIVE_S);
    hl = sf_curl_slist_append(hl, line);
    if (deadline_ms > 0) {
        int64_t left = deadline_ms - sf_now_ms();
        /* A little later than ours: we decide, envd is the backstop. */
        snprintf(line, sizeof(line), "Connect-Timeout-Ms: %lld",
                 (long long)(left > 0 ? left : 1) + 2000);
        hl = sf_curl_slist_append(hl, line);
    }
    if (e->user) {
        char up[64], *b64;
        snprintf(up, sizeof(up), "%s:", e->user);
        b64 = sf_base64_encode(up, strlen(up));
        snprintf(line, sizeof(line), "Authorization: Basic %s", b64);
        free(b64);
        hl = sf_curl_slist_append(hl, line);
    }
    return hl;
}

int sf_e2b_envd_start(const struct sf_e2b_envd *e, const struct sf_e2b_start *req,
                      const struct sf_e2b_start_cb *cb, struct sf_e2b_end *end, char *err,
                      size_t errlen)
{
    char *url = sf_xasprintf("%s/process.Process/Start", e->sbx->envd_url);
    json_t *jbody = e2b_start_body(req);
    struct sf_buf body = { 0 };
    struct curl_slist *hl = e2b_start_headers(e, req->deadline_ms);
    struct e2b_stream s = { .cb = cb, .end = end, .deadline_ms = req->deadline_ms, .err = err,
                            .errlen = errlen };
    int rc = 0;

    memset(end, 0, sizeof(*end));
    sf_e2b_frame_json(&body, 0, jbody);
    s.curl = sf_curl_easy_init();
    sf_curl_easy_setopt(s.curl, CURLOPT_URL, url);
    sf_curl_easy_setopt(s.curl, CURLOPT_HTTPHEADER, hl);
    sf_curl_easy_setopt(s.curl, CURLOPT_POSTFIELDS, body.data);
    sf_curl_easy_setopt(s.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    sf_curl_easy_setopt(s.curl, CURLOPT_NOSIGNAL, 1L);
    sf_curl_easy_setopt(s.curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    sf_curl_easy_setopt(s.curl, CURLOPT_USERAGENT, "sandfleet/" SF_VERSION);
    sf_curl_easy_setopt(s.curl, CURLOPT_WRITEFUNCTION, e2b_stream_write);
    sf_curl_easy_setopt(s.curl, CURLOPT_WRITEDATA, &s);
    sf_curl_easy_setopt(s.curl, CURLOPT_NOPROGRESS, 0L);
    sf_curl_easy_setopt(s.curl, CURLOPT_XFERINFOFUNCTION, e2b_stream_progress);
    sf_curl_easy_setopt(s.curl, CURLOPT_XFERINFODATA, &s);
    sf_curl_easy_setopt(s.curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    /* No total timeout: commands may run long. Silence is the failure. */
    sf_curl_easy_setopt(s.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    sf_curl_easy_setopt(s.curl, CURLOPT_LOW_SPEED_TIME, (long)E2B_IDLE_LIMIT_S);
    CURLcode cc = sf_curl_easy_perform(s.curl);
    long status = 0;
    sf_curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &status);

    if (end->timed_out) {
        rc = 0;
    } else if (s.rc) {
        rc = s.rc;
    } else if (s.aborted) {
        rc = -ECANCELED;
        sf_errf(err, errlen, "e2b process: aborted by the caller");
    } else if (cc != CURLE_OK) {
        rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        sf_errf(err, errlen, "e2b process stream: %s", sf_curl_easy_strerror(cc));
    } else if (status != 200) {
        struct sf_e2b_http h = { .status = status, .resp = s.errbody };
        rc = sf_e2b_http_error(&h, "e2b start process", err, errlen);
    } else if (!s.got_trailer || sf_e2b_reader_pending(&s.rd)) {
        rc = -EIO;
        sf_errf(err, errlen, "e2b process stream ended without its end-of-stream message "
                "(connection cut)");
    } else if (!s.got_start || !end->ended) {
        rc = -EPROTO;
        sf_errf(err, errlen, "e2b process stream ended without %s event",
                s.got_start ? "an end" : "a start");
    }
    sf_curl_easy_cleanup(s.curl);
    sf_e2b_reader_free(&s.rd);
    sf_buf_free(&s.errbody);
    sf_curl_slist_free_all(hl);
    sf_buf_free(&body);
    json_decref(jbody);
    free(url);
    return rc;
}
