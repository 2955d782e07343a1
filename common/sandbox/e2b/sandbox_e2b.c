/* common/sandbox/e2b/sandbox_e2b.c: the "e2b" backend — E2B sandboxes (or any server
 * speaking the E2B API, such as sandfleet-worker --e2b-listen) behind the
 * sandbox interface (sandbox.h).
 *
 * create = POST /sandboxes (retried on 429/5xx); write/read = envd /files;
 * run = process.Process/Start with "/bin/sh -c CMD", stdin sent through
 * SendInput + CloseStdin once the start event names the pid; destroy =
 * DELETE /sandboxes/{id}. Everything runs as the sandbox's root so the
 * agent contract's /workspace can exist on E2B's images (whose default user
 * cannot create it).
 * The step timeout is enforced here as well as by envd: at the deadline the
 * process gets SIGKILL and the sandbox is killed, as the local backend does.
 * Any failure of the sandbox itself (502, cut stream) marks it dead; destroy
 * always sends the kill, so no sandbox outlives its task on the bill. */
#include "sandbox.h"
#include "e2b_client.h"
#include "e2b_envd_client.h"

#include "lazy_curl.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E2B_LIFETIME_S 300           /* sandbox lifetime; extended for long runs */
#define E2B_STDIN_CHUNK (1u << 20)

struct e2b_provider {
    struct sf_sandbox_provider base;
    struct sf_e2b_conn conn;
    const struct sf_log *log;
};

struct e2b_sandbox {
    struct sf_sandbox base;
    struct e2b_provider *ep;
    struct sf_e2b_sandbox_info info;
    struct sf_e2b_envd envd;
    int64_t expires_ms;              /* when E2B will kill it (monotonic) */
    char dead[200];                  /* why it cannot run any more */
};

/* ---- files ------------------------------------------------------------------ */

/* Relative paths are relative to /workspace, as in the local backend. */
static char *e2b_abs_path(const char *path)
{
    return path[0] == '/' ? sf_xstrdup(path) : sf_xasprintf("/workspace/%s", path);
}

static int e2b_write_file(struct sf_sandbox *sb, const char *path, const void *data, size_t len,
                          int mode)
{
    struct e2b_sandbox *es = (struct e2b_sandbox *)sb;
    (void)mode;                      /* envd has no mode: files are 0644 */
    if (!path) return -EINVAL;
    char *abs = e2b_abs_path(path);
    int rc = sf_e2b_envd_upload(&es->envd, abs, data, len, sb->errstr, sizeof(sb->errstr));
    if (rc == -EHOSTDOWN) sf_strlcpy(es->dead, sb->errstr, sizeof(es->dead));
    free(abs);
    return rc;
}

static int e2b_read_file(struct sf_sandbox *sb, const char *path, size_t max, char **data,
                         size_t *len)
{
    struct e2b_sandbox *es = (struct e2b_sandbox *)sb;
    if (!path) return -EINVAL;
    char *abs = e2b_abs_path(path);
    int rc = sf_e2b_envd_download(&es->envd, abs, max, data, len, sb->errstr, sizeof(sb->errstr));
    if (rc == -EHOSTDOWN) sf_strlcpy(es->dead, sb->errstr, sizeof(es->dead));
    free(abs);
    return rc;
}

/* ---- run -------------------------------------------------------------------- */

struct e2b_run {
    struct e2b_sandbox *es;
    const struct sf_run_spec *spec;
    struct sf_buf out, err;
    size_t out_cap, err_cap;
    bool out_truncated;
};

static int e2b_run_on_start(void *arg, uint32_t pid)
{
    struct e2b_run *r = arg;
    const struct sf_run_spec *spec = r->spec;
    char err[SF_ERRSTR_LEN];
    if (!spec->stdin_data) return 0;
    /* Errors are ignored on purpose: a command may exit without reading its
     * stdin, exactly as EPIPE is ignored locally. */
    for (size_t off = 0; off < spec->stdin_len; off += E2B_STDIN_CHUNK) {
        size_t n = spec->stdin_len - off < E2B_STDIN_CHUNK ? spec->stdin_len - off : E2B_STDIN_CHUNK;
        if (sf_e2b_envd_send_stdin(&r->es->envd, pid, (const char *)spec->stdin_data + off, n,
                                   err, sizeof(err)) < 0)
            break;
    }
    sf_e2b_envd_close_stdin(&r->es->envd, pid, err, sizeof(err));
    return 0;
}

static void e2b_run_on_data(void *arg, enum sf_e2b_stream stream, const char *data, size_t len)
{
    struct e2b_run *r = arg;
    const struct sf_run_spec *spec = r->spec;
    if (stream == SF_E2B_STDERR) {
        if (spec->on_stderr) spec->on_stderr(spec->cb_arg, data, len);
        sf_buf_append(&r->err, data, len);
        if (r->err.len > r->err_cap) {     /* keep the tail */
            memmove(r->err.data, r->err.data + r->err.len - r->err_cap, r->err_cap);
            r->err.len = r->err_cap;
            r->err.data[r->err.len] = '\0';
        }
        return;
    }
    if (spec->on_stdout) spec->on_stdout(spec->cb_arg, data, len);
    size_t room = r->out_cap - r->out.len;
    if (len > room) r->out_truncated = true;
    sf_buf_append(&r->out, data, len < room ? len : room);
}

/* "signal: killed" (Go's ProcessState.String) → SIGKILL. */
static int e2b_signal_from_status(const char *status)
{
    static const struct { const char *name; int sig; } names[] = {
        { "killed", SIGKILL }, { "terminated", SIGTERM }, { "interrupt", SIGINT },
        { "aborted", SIGABRT }, { "segmentation fault", SIGSEGV }, { "hangup", SIGHUP },
        { "broken pipe", SIGPIPE }, { "CPU time limit exceeded", SIGXCPU },
    };
    const char *p = strstr(status, "signal: ");
    if (!p) return SIGKILL;
    p += 8;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strncmp(p, names[i].name, strlen(names[i].name))) return names[i].sig;
    return SIGKILL;
}

/* Make sure E2B does not kill the sandbox before the run's deadline. */
static int e2b_keep_alive(struct e2b_sandbox *es, double timeout_s)
{
    int64_t need = sf_now_ms() + (int64_t)((timeout_s > 0 ? timeout_s : E2B_LIFETIME_S) * 1000) + 60000;
    if (need <= es->expires_ms) return 0;
    int secs = (int)((need - sf_now_ms()) / 1000) + 1;
    int rc = sf_e2b_api_set_timeout(&es->ep->conn, es->info.id, secs, es->base.errstr,
                                    sizeof(es->base.errstr));
    if (rc == 0) es->expires_ms = sf_now_ms() + (int64_t)secs * 1000;
    return rc;
}

static void e2b_kill_now(struct e2b_sandbox *es, const char *why)
{
    char err[SF_ERRSTR_LEN];
    if (!es->dead[0]) {
        sf_e2b_api_kill(&es->ep->conn, es->info.id, err, sizeof(err));
        sf_strlcpy(es->dead, why, sizeof(es->dead));
    }
}

static void e2b_run_finish(struct e2b_run *r, struct sf_run_result *res, int64_t t0)
{
    res->out = sf_buf_steal(&r->out, &res->out_len);
    res->out_truncated = r->out_truncated;
    res->err_tail = sf_buf_steal(&r->err, &res->err_len);
    res->duration_ms = sf_now_ms() - t0;
}

static int e2b_run(struct sf_sandbox *sb, const struct sf_run_spec *spec, struct sf_run_result *res)
{
    struct e2b_sandbox *es = (struct e2b_sandbox *)sb;
    struct e2b_run r = { .es = es, .spec = spec };
    struct sf_e2b_end end;
    int64_t t0 = sf_now_ms();
    int rc;

    memset(res, 0, sizeof(*res));
    if (es->dead[0]) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "sandbox %s cannot run commands: %s", sb->id, es->dead);
        return -ESRCH;
    }
    if (!spec->cmd) {
        sf_errf(sb->errstr, sizeof(sb->errstr), "run: no command");
        return -EINVAL;
    }
    if ((rc = e2b_keep_alive(es, spec->timeout_s)) < 0) {
        if (rc == -ENOENT || rc == -EHOSTDOWN) sf_strlcpy(es->dead, sb->errstr, sizeof(es->dead));
        return rc == -ENOENT ? -ESRCH : rc;
    }
    r.out_cap = spec->stdout_cap ? spec->stdout_cap : 16u << 20;
    r.err_cap = spec->stderr_tail ? spec->stderr_tail : 4096;
    const char *argv[] = { "/bin/sh", "-c", spec->cmd, NULL };
    struct sf_e2b_start st = {
        .argv = argv, .env = spec->env, .cwd = spec->cwd && spec->cwd[0] ? spec->cwd : "/workspace",
        .stdin_open = spec->stdin_data != NULL,
        .deadline_ms = spec->timeout_s > 0 ? t0 + (int64_t)(spec->timeout_s * 1000.0 + 0.5) : 0,
    };
    struct sf_e2b_start_cb cb = { e2b_run_on_start, e2b_run_on_data, &r };
    rc = sf_e2b_envd_start(&es->envd, &st, &cb, &end, sb->errstr, sizeof(sb->errstr));
    if (rc == -ENOEXEC) {
        res->status = SF_RUN_EXEC_FAILED;
        res->exit_code = 127;
        sf_errf(res->error, sizeof(res->error), "cannot start command: %s", sb->errstr);
        rc = 0;
    } else if (rc < 0) {
        /* The stream broke: the sandbox's state is unknown, so it is killed
         * now rather than left running on the bill. */
        e2b_kill_now(es, sb->errstr);
        sf_buf_free(&r.out);
        sf_buf_free(&r.err);
        return rc == -EHOSTDOWN ? -ESRCH : rc;
    } else if (end.timed_out) {
        char err[SF_ERRSTR_LEN];
        if (end.pid) sf_e2b_envd_signal(&es->envd, end.pid, SIGKILL, err, sizeof(err));
        e2b_kill_now(es, "sandbox was killed by a timeout");
        res->status = SF_RUN_TIMEOUT;
        res->term_signal = SIGKILL;
        res->exit_code = 128 + SIGKILL;
        sf_errf(res->error, sizeof(res->error), "timed out after %gs: the sandbox was killed",
                spec->timeout_s);
    } else if (end.exited) {
        res->status = SF_RUN_EXITED;
        res->exit_code = end.exit_code;
    } else {
        res->status = SF_RUN_SIGNALED;
        res->term_signal = e2b_signal_from_status(end.status);
        res->exit_code = 128 + res->term_signal;
        sf_errf(res->error, sizeof(res->error), "killed by signal %d (%s)", res->term_signal,
                end.status[0] ? end.status : strsignal(res->term_signal));
    }
    e2b_run_finish(&r, res, t0);
    return rc;
}

static void e2b_destroy(struct sf_sandbox *sb)
{
    struct e2b_sandbox *es = (struct e2b_sandbox *)sb;
    if (!es) return;
    char err[SF_ERRSTR_LEN];
    /* Even a "dead" sandbox gets its kill unless we killed it ourselves:
     * DELETE of a gone sandbox is a harmless 404. */
    int rc = sf_e2b_api_kill(&es->ep->conn, es->info.id, err, sizeof(err));
    if (rc < 0 && rc != -ENOENT)
        SF_LOGW(es->ep->log, "e2b sandbox %s may still be running: %s", es->info.id, err);
    free(es);
}

static const struct sf_sandbox_ops e2b_ops = {
    .write_file = e2b_write_file,
    .read_file = e2b_read_file,
    .run = e2b_run,
    .destroy = e2b_destroy,
};

/* ---- provider --------------------------------------------------------------- */

static int e2b_create(struct sf_sandbox_provider *p, const struct sf_sandbox_opts *opts,
                      struct sf_sandbox **out, char *errstr, size_t errlen)
{
    struct e2b_provider *ep = (struct e2b_provider *)p;
    struct e2b_sandbox *es = sf_xcalloc(1, sizeof(*es));
    json_t *meta = json_pack("{s:s}", "created_by", "sandfleet");
    if (opts && opts->label) json_object_set_new(meta, "label", json_string(opts->label));
    /* A step's egress rules are E2B's own "network" option, its injected
     * headers E2B's rules[host].transform.headers. */
    json_t *net = opts && opts->network && opts->net_policy
                      ? sf_netpolicy_to_json_form(opts->net_policy, SF_NETPOLICY_E2B) : NULL;
    if (opts && opts->network && opts->inject) {
        json_t *rules = json_object();
        for (size_t i = 0; i < opts->inject->n; i++) {
            const struct sf_inject_rule *r = &opts->inject->r[i];
            json_t *h = json_object();
            for (size_t j = 0; j < r->n; j++) json_object_set_new(h, r->h[j].name, json_string(r->h[j].value));
            char *host = sf_xasprintf("%s%s", r->host.wildcard ? "*." : "", r->host.name);
            json_object_set_new(rules, host, json_pack("[{s:{s:o}}]", "transform", "headers", h));
            free(host);
        }
        if (!net) net = json_object();
        json_object_set_new(net, "rules", rules);
    }
    struct sf_e2b_create_req req = { .timeout_s = E2B_LIFETIME_S, .metadata = meta, .secure = true,
                                     .network = net, .allow_internet = opts && opts->network };
    int rc = sf_e2b_api_create(&ep->conn, &req, &es->info, errstr, errlen);
    json_decref(meta);
    json_decref(net);
    if (rc < 0) {
        free(es);
        *out = NULL;
        return rc;
    }
    es->base.ops = &e2b_ops;
    es->ep = ep;
    es->expires_ms = sf_now_ms() + (int64_t)E2B_LIFETIME_S * 1000 - 5000;
    es->envd = (struct sf_e2b_envd){ .conn = &ep->conn, .sbx = &es->info, .user = "root" };
    sf_strlcpy(es->base.id, es->info.id, sizeof(es->base.id));
    *out = &es->base;
    return 0;
}

static void e2b_free(struct sf_sandbox_provider *p)
{
    struct e2b_provider *ep = (struct e2b_provider *)p;
    if (!ep) return;
    sf_e2b_conn_free(&ep->conn);
    free(ep);
}

static const struct sf_provider_ops e2b_provider_ops = {
    .name = "e2b",
    .create = e2b_create,
    .free = e2b_free,
};

struct sf_sandbox_provider *sf_sandbox_e2b_new(const struct sf_provider_config *cfg,
                                               char *errstr, size_t errlen)
{
    struct e2b_provider *ep = sf_xcalloc(1, sizeof(*ep));
    ep->base.ops = &e2b_provider_ops;
    ep->log = cfg ? cfg->log : NULL;
    /* Now, not at the first sandbox: a missing libcurl fails the start. */
    char why[512];
    if (sf_curl_load(why, sizeof(why)) < 0) {
        sf_errf(errstr, errlen, "--sandbox e2b: %s", why);
        free(ep);
        return NULL;
    }
    if (sf_e2b_conn_init(&ep->conn, cfg, errstr, errlen) < 0) {
        free(ep);
        return NULL;
    }
    return &ep->base;
}
