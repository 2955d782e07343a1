/* worker/e2b/e2b_envd.c: envd on local sandboxes — /health, /files (upload as
 * multipart or octet-stream, download) and the process service over
 * Connect (Start and Connect streaming; SendInput, CloseStdin, SendSignal,
 * List unary). Requests for an unknown or killed sandbox get the 502 that
 * E2B's proxy sends; a missing or wrong X-Access-Token gets envd's 401.
 * Paths resolve like envd's for its default user: relative and "~" paths
 * are under /home/user. */
#include "e2b_server.h"
#include "e2b_fleet.h"
#include "e2b_connect.h"
#include "e2b_proc.h"
#include "e2b_registry.h"
#include "sandbox_fs.h"

#include <errno.h>
#include <openssl/crypto.h>
#include "lazy_mhd.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- helpers ------------------------------------------------------------------ */

int e2b_gone(struct e2b_req *rq)
{
    return e2b_reply_json(rq, 502, sf_e2b_gone_json(rq->sandbox_id));
}

char *e2b_resolve(const char *path)
{
    if (!path || !path[0] || !strcmp(path, "~")) return sf_xstrdup(E2B_HOME);
    if (!strncmp(path, "~/", 2)) return sf_xasprintf(E2B_HOME "/%s", path + 2);
    if (path[0] == '/') return sf_xstrdup(path);
    return sf_xasprintf(E2B_HOME "/%s", path);
}

/* envd knows its users; ours are root (0) and user (1000, the default). */
bool e2b_user_uid(const char *user, uint32_t *uid)
{
    if (!user || !user[0] || !strcmp(user, "user")) *uid = SF_FS_UID_USER;
    else if (!strcmp(user, "root")) *uid = SF_FS_UID_ROOT;
    else return false;
    return true;
}

/* The user of an RPC from "Authorization: Basic base64(user:)". */
static bool e2b_rpc_user_ok(struct e2b_req *rq, char *user, size_t size)
{
    const char *a = e2b_header(rq, "Authorization");
    user[0] = '\0';
    if (!a || strncmp(a, "Basic ", 6)) return true;
    char *dec = NULL;
    size_t n;
    if (sf_e2b_b64_decode(a + 6, strlen(a + 6), &dec, &n) < 0) return false;
    char *colon = strchr(dec, ':');
    if (colon) *colon = '\0';
    sf_strlcpy(user, dec, size);
    free(dec);
    uint32_t uid;
    return e2b_user_uid(user, &uid);
}

/* ---- process service ---------------------------------------------------------- */

/* 'a' quoted for /bin/sh. */
static void e2b_sh_quote(struct sf_buf *b, const char *a)
{
    sf_buf_append(b, "'", 1);
    for (const char *p = a; *p; p++) {
        if (*p == '\'') sf_buf_append(b, "'\\''", 4);
        else sf_buf_append(b, p, 1);
    }
    sf_buf_append(b, "'", 1);
}

/* "pid" or "tag" of a ProcessSelector. */
static struct e2b_proc *e2b_select(struct e2b_sbx *s, json_t *body, json_int_t *pid_out)
{
    json_t *sel = json_object_get(body, "process");
    json_t *pid = json_object_get(sel, "pid"), *tag = json_object_get(sel, "tag");
    json_int_t p = json_is_integer(pid) ? json_integer_value(pid)
                 : json_is_string(pid) ? strtoll(json_string_value(pid), NULL, 10) : 0;
    *pid_out = p;
    return e2b_proc_find(s, p > 0 && p < 1 << 30 ? (int)p : 0,
                         json_is_string(tag) ? json_string_value(tag) : NULL);
}

static int e2b_not_running(struct e2b_req *rq, json_int_t pid)
{
    return e2b_reply_connect_error(rq, "not_found", "process with pid %lld not found", (long long)pid);
}

/* A streaming call's answer that is only an end-of-stream error. */
int e2b_stream_error(struct e2b_req *rq, const char *code, const char *msg)
{
    struct sf_buf b = { 0 };
    sf_e2b_put_trailer(&b, code, msg);
    int ret = e2b_reply(rq, 200, "application/connect+json", b.data, b.len);
    sf_buf_free(&b);
    return ret;
}

/* The request message of a streaming call: one envelope. */
json_t *e2b_stream_request(struct e2b_req *rq)
{
    struct sf_e2b_reader r = { .max_frame = 4u << 20 };
    uint8_t flags;
    const char *msg;
    size_t len;
    json_t *j = NULL;
    sf_e2b_reader_feed(&r, rq->body.data ? rq->body.data : "", rq->body.len);
    if (sf_e2b_reader_next(&r, &flags, &msg, &len) == 1 && !(flags & SF_E2B_FLAG_END))
        j = json_loadb(msg, len, 0, NULL);
    sf_e2b_reader_free(&r);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int64_t e2b_deadline(struct e2b_req *rq)
{
    const char *t = e2b_header(rq, "Connect-Timeout-Ms");
    long long ms = t ? strtoll(t, NULL, 10) : 0;
    return ms > 0 ? sf_now_ms() + ms : 0;
}


/* PTY.size of a Start or Update: rows and cols, both 1..1000. */
static bool e2b_pty_size(json_t *pty, uint16_t *rows, uint16_t *cols)
{
    json_t *size = json_object_get(pty, "size");
    json_int_t r = json_integer_value(json_object_get(size, "rows"));
    json_int_t c = json_integer_value(json_object_get(size, "cols"));
    if (r < 1 || r > 1000 || c < 1 || c > 1000) return false;
    *rows = (uint16_t)r;
    *cols = (uint16_t)c;
    return true;
}

static int e2b_start(struct e2b_req *rq, struct e2b_sbx *s, const char *user, uint32_t uid)
{
    json_t *body = e2b_stream_request(rq), *proc, *cmd, *args, *envs, *cwd, *v;
    struct sf_buf line = { 0 };
    char **env = NULL, err[SF_ERRSTR_LEN];
    size_t nenv = 0;
    const char *key;
    int ret;
    if (!body || !json_is_object(proc = json_object_get(body, "process")) ||
        !json_is_string(cmd = json_object_get(proc, "cmd"))) {
        json_decref(body);
        return e2b_stream_error(rq, "invalid_argument", "StartRequest.process.cmd is required");
    }
    /* exec keeps the pid the client sees equal to the program's. */
    sf_buf_append(&line, "exec ", 5);
    e2b_sh_quote(&line, json_string_value(cmd));
    args = json_object_get(proc, "args");
    for (size_t i = 0; json_is_array(args) && i < json_array_size(args); i++)
        if (json_is_string(v = json_array_get(args, i))) {
            sf_buf_append(&line, " ", 1);
            e2b_sh_quote(&line, json_string_value(v));
        }
    json_t *pty = json_object_get(body, "pty");
    uint16_t rows = 0, cols = 0;
    if (pty && !json_is_null(pty) && !e2b_pty_size(pty, &rows, &cols)) {
        json_decref(body);
        sf_buf_free(&line);
        return e2b_stream_error(rq, "invalid_argument", "pty.size needs rows and cols of 1 to 1000");
    }
    envs = json_object_get(proc, "envs");
    env = sf_xcalloc(json_object_size(s->env_vars) + json_object_size(envs) + 5, sizeof(char *));
    const char *u = user[0] ? user : "user";
    env[nenv++] = sf_xasprintf("USER=%s", u);
    env[nenv++] = sf_xasprintf("LOGNAME=%s", u);
    if (rows) env[nenv++] = sf_xstrdup("TERM=xterm-256color");
    /* Sandbox-level envVars first, then the request's: the last one wins. */
    json_object_foreach(s->env_vars, key, v)
        if (json_is_string(v)) env[nenv++] = sf_xasprintf("%s=%s", key, json_string_value(v));
    json_object_foreach(envs, key, v)
        if (json_is_string(v)) env[nenv++] = sf_xasprintf("%s=%s", key, json_string_value(v));
    cwd = json_object_get(proc, "cwd");
    json_t *stdin_flag = json_object_get(body, "stdin"), *tag = json_object_get(body, "tag");
    struct e2b_proc_start st = {
        .sh_cmd = line.data, .config = proc, .cwd = json_is_string(cwd) ? json_string_value(cwd) : NULL,
        .env = (const char *const *)env, .tag = json_is_string(tag) ? json_string_value(tag) : NULL,
        .stdin_pipe = !json_is_false(stdin_flag), .uid = uid, .pty_rows = rows, .pty_cols = cols,
    };
    struct e2b_proc *p = NULL;
    int rc = e2b_proc_start(s, &st, &p, err, sizeof(err));
    if (rc == -ENOEXEC) {
        ret = e2b_stream_error(rq, "invalid_argument", err);
    } else if (rc == -ESRCH) {
        ret = e2b_gone(rq);
    } else if (rc < 0) {
        ret = e2b_stream_error(rq, rc == -EAGAIN ? "resource_exhausted" : "internal", err);
    } else {
        struct MHD_Response *r = e2b_proc_stream(rq->reg, s, p, true, e2b_keepalive_s(rq),
                                                 e2b_deadline(rq), true);
        sf_mhd_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/connect+json");
        ret = sf_mhd_queue_response(rq->conn, 200, r);
        sf_mhd_destroy_response(r);
        e2b_proc_put(p);
    }
    for (size_t i = 0; i < nenv; i++) free(env[i]);
    free(env);
    sf_buf_free(&line);
    json_decref(body);
    return ret;
}

static int e2b_connect(struct e2b_req *rq, struct e2b_sbx *s)
{
    json_t *body = e2b_stream_request(rq);
    json_int_t pid;
    struct e2b_proc *p = body ? e2b_select(s, body, &pid) : NULL;
    int ret;
    json_decref(body);
    if (!p) return e2b_stream_error(rq, "not_found", "process not found");
    struct MHD_Response *r = e2b_proc_stream(rq->reg, s, p, false, e2b_keepalive_s(rq),
                                             e2b_deadline(rq), false);
    sf_mhd_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/connect+json");
    ret = sf_mhd_queue_response(rq->conn, 200, r);
    sf_mhd_destroy_response(r);
    e2b_proc_put(p);
    return ret;
}

/* A ProcessInput (stdin or pty bytes, base64) to p: NULL, or why not. */
static const char *e2b_input(struct e2b_proc *p, json_t *in)
{
    json_t *data = json_object_get(in, "stdin"), *pty = json_object_get(in, "pty");
    char *bytes = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (pty && !e2b_proc_is_pty(p)) return "the process has no pty";
    if (pty) data = pty;
    if (!json_is_string(data) ||
        sf_e2b_b64_decode(json_string_value(data), json_string_length(data), &bytes, &n) < 0)
        why = "input.stdin or input.pty must be base64";
    else if (e2b_proc_write_stdin(p, bytes, n) < 0)
        why = "error writing to stdin: stdin not enabled or closed";
    free(bytes);
    return why;
}

/* ---- StreamInput: a client stream, each message acted on as it comes ------- */

struct e2b_instream {
    struct sf_e2b_reader r;
    struct e2b_proc *p;
    const char *err_code;
    char err[160];
};

static void e2b_instream_data(struct e2b_req *rq, const char *data, size_t len)
{
    struct e2b_instream *is = rq->sink.state;
    uint8_t flags;
    const char *msg;
    size_t mlen;
    sf_e2b_reader_feed(&is->r, data, len);
    while (!is->err_code && sf_e2b_reader_next(&is->r, &flags, &msg, &mlen) == 1) {
        json_t *m = json_loadb(msg, mlen, 0, NULL), *start = json_object_get(m, "start");
        json_t *d = json_object_get(m, "data");
        json_int_t pid = 0;
        if (start && !is->p) {
            is->p = e2b_select(rq->sbx, start, &pid);
            if (!is->p) {
                is->err_code = "not_found";
                snprintf(is->err, sizeof(is->err), "process with pid %lld not found", (long long)pid);
            }
        } else if (d) {
            const char *why = is->p ? e2b_input(is->p, json_object_get(d, "input"))
                                    : "the stream must start with a start message";
            if (why) {
                is->err_code = is->p ? "internal" : "invalid_argument";
                sf_strlcpy(is->err, why, sizeof(is->err));
            }
        }
        json_decref(m);
    }
}

static int e2b_instream_end(struct e2b_req *rq)
{
    struct e2b_instream *is = rq->sink.state;
    struct sf_buf b = { 0 };
    if (is->err_code) {
        sf_e2b_put_trailer(&b, is->err_code, is->err);
    } else {
        sf_e2b_frame(&b, 0, "{}", 2);                  /* StreamInputResponse */
        sf_e2b_put_trailer(&b, NULL, NULL);
    }
    int ret = e2b_reply(rq, 200, "application/connect+json", b.data, b.len);
    sf_buf_free(&b);
    return ret;
}

static void e2b_instream_free(void *state)
{
    struct e2b_instream *is = state;
    if (is->p) e2b_proc_put(is->p);
    sf_e2b_reader_free(&is->r);
    free(is);
}

bool e2b_stream_input_begin(struct e2b_req *rq)
{
    struct e2b_instream *is = sf_xcalloc(1, sizeof(*is));
    is->r.max_frame = 4u << 20;
    rq->sink = (struct e2b_sink){ e2b_instream_data, e2b_instream_end, e2b_instream_free, is };
    return true;
}

static int e2b_unary(struct e2b_req *rq, struct e2b_sbx *s, const char *method)
{
    json_t *body = rq->body.len ? json_loadb(rq->body.data, rq->body.len, 0, NULL) : NULL;
    json_int_t pid = 0;
    struct e2b_proc *p = NULL;
    int ret;
    if (!json_is_object(body)) {
        json_decref(body);
        return e2b_reply_connect_error(rq, "invalid_argument", "the request is not a JSON object");
    }
    if (!strcmp(method, "List")) {
        json_t *list = json_array();
        pthread_mutex_lock(&s->plock);
        for (size_t i = 0; i < s->nprocs; i++) json_array_append_new(list, e2b_proc_info(s->procs[i]));
        pthread_mutex_unlock(&s->plock);
        json_decref(body);
        return e2b_reply_json(rq, 200, json_array_size(list) ? json_pack("{s:o}", "processes", list)
                                                             : (json_decref(list), json_object()));
    }
    if (!(p = e2b_select(s, body, &pid))) {
        ret = e2b_not_running(rq, pid);
    } else if (!strcmp(method, "SendInput")) {
        const char *why = e2b_input(p, json_object_get(body, "input"));
        ret = !why ? e2b_reply_json(rq, 200, json_object())
            : e2b_reply_connect_error(rq, strstr(why, "pty") ? "failed_precondition"
                                      : strstr(why, "base64") ? "invalid_argument" : "internal",
                                      "%s", why);
    } else if (!strcmp(method, "Update")) {
        uint16_t rows, cols;
        json_t *pty = json_object_get(body, "pty");
        int rc = !pty ? 0 : !e2b_pty_size(pty, &rows, &cols) ? -EINVAL
               : e2b_proc_resize(s, p, rows, cols);
        ret = rc == 0 ? e2b_reply_json(rq, 200, json_object())
            : rc == -EINVAL ? e2b_reply_connect_error(rq, "invalid_argument", "pty.size needs rows "
                                                     "and cols of 1 to 1000")
            : rc == -ENOTTY ? e2b_reply_connect_error(rq, "failed_precondition", "the process has no pty")
            : e2b_not_running(rq, pid);
    } else if (!strcmp(method, "CloseStdin")) {
        if (e2b_proc_is_pty(p))
            ret = e2b_reply_connect_error(rq, "failed_precondition", "cannot close stdin of a pty "
                                          "process: send Ctrl+D (0x04) instead");
        else
            ret = (e2b_proc_close_stdin(p), e2b_reply_json(rq, 200, json_object()));
    } else {                                                   /* SendSignal */
        json_t *sig = json_object_get(body, "signal");
        const char *name = json_is_string(sig) ? json_string_value(sig) : "";
        json_int_t num = json_is_integer(sig) ? json_integer_value(sig) : 0;
        int signo = !strcmp(name, "SIGNAL_SIGKILL") || num == 9 ? SIGKILL
                  : !strcmp(name, "SIGNAL_SIGTERM") || num == 15 ? SIGTERM : 0;
        if (!signo)
            ret = e2b_reply_connect_error(rq, "unimplemented", "invalid signal: %s",
                                          name[0] ? name : "unspecified");
        else if (e2b_proc_signal(s, p, signo) < 0)
            ret = e2b_not_running(rq, pid);
        else
            ret = e2b_reply_json(rq, 200, json_object());
    }
    e2b_proc_put(p);
    json_decref(body);
    return ret;
}

/* ---- dispatch ----------------------------------------------------------------- */

bool e2b_envd_admit(struct e2b_req *rq)
{
    const struct e2b_sbx *s = rq->sbx;
    /* Other ports than 49983 never get here: e2b_ingress.c serves them. */
    if (!strcmp(rq->url, "/health")) return true;
    if (!strcmp(rq->url, "/files")) return e2b_files_auth(rq);
    if (e2b_sbx_paused(rq->reg, rq->sbx)) {
        /* Its processes are frozen: nothing there could answer. */
        e2b_reply_json(rq, 502, json_pack("{s:s,s:s,s:i}", "sandboxId", rq->sandbox_id, "message",
                       "The sandbox is paused: resume it with connect", "code", 502));
        return false;
    }
    const char *t = e2b_header(rq, "X-Access-Token");
    if (!s->token[0] || (t && strlen(t) == strlen(s->token) && !CRYPTO_memcmp(t, s->token, strlen(t))))
        return true;
    e2b_reply_error(rq, 401, "unauthorized access, please provide a valid access token or "
                    "method signing if supported");
    return false;
}

int e2b_envd_handle(struct e2b_req *rq)
{
    const char *u = rq->url, *m = rq->method;
    struct e2b_sbx *s = rq->sbx;
    char user[64];
    uint32_t uid = SF_FS_UID_USER;
    if (!strcmp(u, "/health")) return e2b_reply(rq, 204, NULL, "", 0);
    if (!strcmp(u, "/files")) {
        if (!strcmp(m, "GET")) return e2b_files_get(rq);
        return e2b_reply_error(rq, 405, "method %s not allowed on /files", m);
    }
    if (!strcmp(u, "/envs") && !strcmp(m, "GET")) return e2b_reply_json(rq, 200, json_deep_copy(s->env_vars));
    bool process = !strncmp(u, "/process.Process/", 17), fs = !strncmp(u, "/filesystem.Filesystem/", 23);
    if (!process && !fs) return e2b_reply_connect_error(rq, "unimplemented", "%s is not supported by this server", u);
    const char *method = u + (process ? 17 : 23);
    bool stream = !strcmp(method, "Start") || !strcmp(method, "Connect") || !strcmp(method, "WatchDir");
    if (!e2b_rpc_user_ok(rq, user, sizeof(user))) {
        char msg[128];
        snprintf(msg, sizeof(msg), "invalid username: '%s'", user);
        return stream ? e2b_stream_error(rq, "unauthenticated", msg)
                      : e2b_reply_connect_error(rq, "unauthenticated", "%s", msg);
    }
    e2b_user_uid(user, &uid);
    if (fs) return e2b_fs_handle(rq, method, uid);
    if (!strcmp(method, "Start")) return e2b_start(rq, s, user, uid);
    if (!strcmp(method, "Connect")) return e2b_connect(rq, s);
    if (!strcmp(method, "SendInput") || !strcmp(method, "CloseStdin") ||
        !strcmp(method, "SendSignal") || !strcmp(method, "List") || !strcmp(method, "Update"))
        return e2b_unary(rq, s, method);
    return e2b_reply_connect_error(rq, "unimplemented", "process.Process/%s is not supported by "
                                   "this server", method);
}
