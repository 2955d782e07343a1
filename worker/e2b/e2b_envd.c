/* worker/e2b/e2b_envd.c: envd on local sandboxes — /health, /files (upload as
 * multipart or octet-stream, download) and the process service over
 * Connect (Start and Connect streaming; SendInput, CloseStdin, SendSignal,
 * List unary). Requests for an unknown or killed sandbox get the 502 that
 * E2B's proxy sends; a missing or wrong X-Access-Token gets envd's 401.
 * Paths resolve like envd's for its default user: relative and "~" paths
 * are under /home/user. */
#include "e2b_server.h"
#include "e2b_connect.h"
#include "e2b_proc.h"
#include "e2b_registry.h"

#include <errno.h>
#include "lazy_mhd.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E2B_READ_MAX (1024u << 20)
#define E2B_HOME "/home/user"

/* ---- helpers ------------------------------------------------------------------ */

static int e2b_gone(struct e2b_req *rq)
{
    return e2b_reply_json(rq, 502, json_pack("{s:s,s:s,s:i}", "sandboxId", rq->sandbox_id,
                                             "message", "The sandbox was not found", "code", 502));
}

static char *e2b_resolve(const char *path)
{
    if (!path || !path[0] || !strcmp(path, "~")) return sf_xstrdup(E2B_HOME);
    if (!strncmp(path, "~/", 2)) return sf_xasprintf(E2B_HOME "/%s", path + 2);
    if (path[0] == '/') return sf_xstrdup(path);
    return sf_xasprintf(E2B_HOME "/%s", path);
}

/* envd knows its users; ours are root and user (both the sandbox's root). */
static bool e2b_user_ok(const char *user)
{
    return !user || !user[0] || !strcmp(user, "root") || !strcmp(user, "user");
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
    return e2b_user_ok(user);
}

/* ---- files -------------------------------------------------------------------- */

static json_t *e2b_entry(const char *abs)
{
    const char *base = strrchr(abs, '/');
    return json_pack("{s:s,s:s,s:s}", "path", abs, "name", base ? base + 1 : abs, "type", "file");
}

static int e2b_write_one(struct e2b_req *rq, struct e2b_sbx *s, const char *abs, const void *data,
                         size_t len, json_t *out)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->killed ? -EHOSTDOWN : sf_sandbox_write_file(s->sb, abs, data, len, 0644);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        json_array_append_new(out, e2b_entry(abs));
        return 0;
    }
    if (rc == -EHOSTDOWN) return e2b_gone(rq) ? -1 : -1;
    if (rc == -EISDIR) return e2b_reply_error(rq, 400, "path is a directory: %s", abs), -1;
    if (rc == -ENOSPC || rc == -EFBIG || rc == -EDQUOT)
        return e2b_reply_error(rq, 507, "not enough disk space available"), -1;
    return e2b_reply_error(rq, 500, "error writing %s: %s", abs, strerror(-rc)), -1;
}

static int e2b_files_post(struct e2b_req *rq, struct e2b_sbx *s)
{
    const char *ct = e2b_header(rq, "Content-Type"), *qpath = e2b_query(rq, "path");
    json_t *out = json_array();
    int ret = MHD_YES;
    if (rq->pp) {
        if (!rq->nfiles) {
            ret = e2b_reply_error(rq, 400, "no file part in the multipart body");
            goto done;
        }
        for (size_t i = 0; i < rq->nfiles; i++) {
            char *abs = e2b_resolve(qpath && rq->nfiles == 1 ? qpath : rq->files[i].path);
            int rc = e2b_write_one(rq, s, abs, rq->files[i].data.data ? rq->files[i].data.data : "",
                                   rq->files[i].data.len, out);
            free(abs);
            if (rc < 0) goto done;
        }
    } else if (ct && !strncasecmp(ct, "application/octet-stream", 24)) {
        if (!qpath) {
            ret = e2b_reply_error(rq, 400, "path query parameter is required for raw body upload");
            goto done;
        }
        char *abs = e2b_resolve(qpath);
        int rc = e2b_write_one(rq, s, abs, rq->body.data ? rq->body.data : "", rq->body.len, out);
        free(abs);
        if (rc < 0) goto done;
    } else {
        ret = e2b_reply_error(rq, 400, "unsupported content type: %s, expected multipart/form-data "
                              "or application/octet-stream", ct ? ct : "");
        goto done;
    }
    ret = e2b_reply_json(rq, 200, json_incref(out));
done:
    json_decref(out);
    return ret;
}

static int e2b_files_get(struct e2b_req *rq, struct e2b_sbx *s)
{
    char *abs = e2b_resolve(e2b_query(rq, "path")), *data = NULL;
    size_t len = 0;
    pthread_mutex_lock(&s->mu);
    int rc = s->killed ? -EHOSTDOWN : sf_sandbox_read_file(s->sb, abs, E2B_READ_MAX, &data, &len);
    pthread_mutex_unlock(&s->mu);
    int ret;
    if (rc == 0) {
        const char *base = strrchr(abs, '/');
        char disp[300];
        snprintf(disp, sizeof(disp), "inline; filename=%s", base ? base + 1 : abs);
        struct MHD_Response *r = sf_mhd_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        sf_mhd_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
        sf_mhd_add_response_header(r, "Content-Disposition", disp);
        ret = sf_mhd_queue_response(rq->conn, 200, r);
        sf_mhd_destroy_response(r);
        data = NULL;
    } else if (rc == -EHOSTDOWN) {
        ret = e2b_gone(rq);
    } else if (rc == -ENOENT) {
        ret = e2b_reply_error(rq, 404, "path '%s' does not exist", abs);
    } else if (rc == -EINVAL || rc == -EISDIR) {
        ret = e2b_reply_error(rq, 400, "path '%s' is a directory", abs);
    } else if (rc == -EFBIG) {
        ret = e2b_reply_error(rq, 413, "file '%s' is larger than %u bytes", abs, E2B_READ_MAX);
    } else {
        ret = e2b_reply_error(rq, 500, "error reading '%s': %s", abs, strerror(-rc));
    }
    free(data);
    free(abs);
    return ret;
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
static int e2b_stream_error(struct e2b_req *rq, const char *code, const char *msg)
{
    struct sf_buf b = { 0 };
    sf_e2b_put_trailer(&b, code, msg);
    int ret = e2b_reply(rq, 200, "application/connect+json", b.data, b.len);
    sf_buf_free(&b);
    return ret;
}

/* The request message of a streaming call: one envelope. */
static json_t *e2b_stream_request(struct e2b_req *rq)
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

static int e2b_keepalive_s(struct e2b_req *rq)
{
    const char *k = e2b_header(rq, "Keepalive-Ping-Interval");
    long v = k ? strtol(k, NULL, 10) : 0;
    return v > 0 && v < 3600 ? (int)v : 90;
}

static int e2b_start(struct e2b_req *rq, struct e2b_sbx *s, const char *user)
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
    envs = json_object_get(proc, "envs");
    env = sf_xcalloc(json_object_size(s->env_vars) + json_object_size(envs) + 4, sizeof(char *));
    const char *u = user[0] ? user : "user";
    env[nenv++] = sf_xasprintf("USER=%s", u);
    env[nenv++] = sf_xasprintf("LOGNAME=%s", u);
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
        .stdin_pipe = !json_is_false(stdin_flag),
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
        json_t *in = json_object_get(body, "input"), *data = json_object_get(in, "stdin");
        char *bytes = NULL;
        size_t n = 0;
        if (json_object_get(in, "pty"))
            ret = e2b_reply_connect_error(rq, "failed_precondition", "the process has no pty");
        else if (!json_is_string(data) ||
                 sf_e2b_b64_decode(json_string_value(data), json_string_length(data), &bytes, &n) < 0)
            ret = e2b_reply_connect_error(rq, "invalid_argument", "input.stdin must be base64");
        else if (e2b_proc_write_stdin(p, bytes, n) < 0)
            ret = e2b_reply_connect_error(rq, "internal", "error writing to stdin: stdin not enabled or closed");
        else
            ret = e2b_reply_json(rq, 200, json_object());
        free(bytes);
    } else if (!strcmp(method, "CloseStdin")) {
        e2b_proc_close_stdin(p);
        ret = e2b_reply_json(rq, 200, json_object());
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

static bool e2b_token_ok(struct e2b_req *rq, const struct e2b_sbx *s, bool files)
{
    const char *t = e2b_header(rq, "X-Access-Token");
    if (!s->token[0]) return true;
    if (t && !strcmp(t, s->token)) return true;
    if (files)
        e2b_reply_error(rq, 401, t ? "access token present in header but does not match"
                                   : "missing signature query parameter");
    else
        e2b_reply_error(rq, 401, "unauthorized access, please provide a valid access token or "
                        "method signing if supported");
    return false;
}

int e2b_envd_handle(struct e2b_req *rq)
{
    const char *u = rq->url, *m = rq->method;
    const char *port = e2b_header(rq, "E2b-Sandbox-Port");
    char user[64];
    int ret;
    struct e2b_sbx *s = e2b_registry_get(rq->reg, rq->sandbox_id);
    if (!s) return e2b_gone(rq);
    if (port && strtol(port, NULL, 10) != 49983) {
        ret = e2b_reply_json(rq, 502, json_pack("{s:s,s:s,s:i,s:s}", "sandboxId", rq->sandbox_id,
                             "message", "The sandbox is running but port is not open", "code", 502,
                             "port", port));
        goto out;
    }
    if (!strcmp(u, "/health")) {
        ret = e2b_reply(rq, 204, NULL, "", 0);
        goto out;
    }
    bool files = !strcmp(u, "/files");
    if (!e2b_token_ok(rq, s, files)) {
        ret = MHD_YES;
        goto out;
    }
    if (files) {
        const char *who = e2b_query(rq, "username");
        if (!e2b_user_ok(who))
            ret = e2b_reply_error(rq, 401, "error looking up user '%s': user: unknown user %s", who, who);
        else if (!strcmp(m, "POST")) ret = e2b_files_post(rq, s);
        else if (!strcmp(m, "GET")) ret = e2b_files_get(rq, s);
        else ret = e2b_reply_error(rq, 405, "method %s not allowed on /files", m);
        goto out;
    }
    if (strncmp(u, "/process.Process/", 17)) {
        ret = e2b_reply_connect_error(rq, "unimplemented", "%s is not served by sandfleet", u);
        goto out;
    }
    const char *method = u + 17;
    bool stream = !strcmp(method, "Start") || !strcmp(method, "Connect");
    if (!e2b_rpc_user_ok(rq, user, sizeof(user))) {
        char msg[128];
        snprintf(msg, sizeof(msg), "invalid username: '%s'", user);
        ret = stream ? e2b_stream_error(rq, "unauthenticated", msg)
                     : e2b_reply_connect_error(rq, "unauthenticated", "%s", msg);
        goto out;
    }
    if (!strcmp(method, "Start")) ret = e2b_start(rq, s, user);
    else if (!strcmp(method, "Connect")) ret = e2b_connect(rq, s);
    else if (!strcmp(method, "SendInput") || !strcmp(method, "CloseStdin") ||
             !strcmp(method, "SendSignal") || !strcmp(method, "List"))
        ret = e2b_unary(rq, s, method);
    else
        ret = e2b_reply_connect_error(rq, "unimplemented", "process.Process/%s is not served by "
                                      "sandfleet", method);
out:
    e2b_registry_put(rq->reg, s);
    return ret;
}
