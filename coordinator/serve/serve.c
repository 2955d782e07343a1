/* coordinator/serve/serve.c: `sandfleet-coordinator serve`: the long-running
 * coordinator (serve.h for the modules).
 *
 * Design. Many runs, one loop thread. Each run is a coord_runner (run.c)
 * over its own broker executor; the loop polls every executor's fd plus the
 * intake eventfd and the signalfd, and steps the runs that are due. The
 * alternative, a thread per run around the blocking coord_run, would need a
 * lock around every run's scheduler for the status page and N threads for
 * N runs; here the scheduler state has one owner and the page reads
 * snapshots the loop publishes (serve_table.c). Executors keep their own
 * result-reader thread (an edge thread, as in `run`).
 * Intake: HTTP handlers parse and validate a submission and queue it;
 * a reader thread takes submissions from the sf:submissions stream (group
 * "coordinators"; on Kafka the sandfleet.submissions topic, group
 * "sandfleet-coordinators", so several serve instances share them) while
 * fewer than --max-runs runs are active. A submission is acked only once
 * its run's document is stored, so a serve restarted under the same --id
 * (on Kafka: whoever gets the partition) resumes the runs it held (the run
 * id of a stream submission is derived from its entry id or offset, and the
 * broker executor resumes a known run id).
 * Drain: SIGTERM refuses new submissions (503, /readyz 503), lets active
 * runs finish for --grace-s, then exits; a second signal exits at once. */
#include "cmd.h"
#include "coord.h"
#include "run_broker.h"
#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct serve_cfg {
    struct sf_broker_flags bf;
    char *http, *id, *log_format, *log_level, *api_token_file;
    long max_runs, max_inflight, retry_base_ms, lease_ms, grace_s;
    struct sf_http_limits http_limits;
    int help;
};

#define O(f) offsetof(struct serve_cfg, f)
static const struct sf_opt serve_opts[] = {
    SF_BROKER_OPTS(struct serve_cfg, bf),
    { "http", "SANDFLEET_HTTP", SF_OPT_STR, O(http), "127.0.0.1:8080", "HOST:PORT", "API, status page, /metrics, /healthz, /readyz", 0, 0 },
    SF_HTTP_LIMIT_OPTS("http", "SANDFLEET_HTTP", struct serve_cfg, http_limits, "16384"),
    { "api-token-file", "SANDFLEET_API_TOKEN_FILE", SF_OPT_STR, O(api_token_file), NULL, "FILE",
      "API tokens, one 'NAME admin|client TOKEN' per line (docs/security.md); also SANDFLEET_API_TOKEN "
      "(an admin token). Without any, serve listens only on loopback", 0, 0 },
    { "id", "SANDFLEET_COORDINATOR_ID", SF_OPT_STR, O(id), NULL, "ID",
      "consumer name in the submissions group; keep it stable across restarts (default coordinator-HOST)", 0, 0 },
    { "max-runs", "SANDFLEET_MAX_RUNS", SF_OPT_INT, O(max_runs), "16", "N", "runs in progress at once; more wait", 1, 100000 },
    { "max-inflight", "SANDFLEET_MAX_INFLIGHT", SF_OPT_INT, O(max_inflight), "1000", "N",
      "per run: tasks published and not yet finished", 1, 1000000 },
    { "retry-base-ms", "SANDFLEET_RETRY_BASE_MS", SF_OPT_INT, O(retry_base_ms), "500", "MS", "first retry delay", 1, 3600000 },
    { "lease-ms", "SANDFLEET_LEASE_MS", SF_OPT_INT, O(lease_ms), "30000", "MS", "the fleet's lease (live workers in /api/status)", 100, 86400000 },
    { "grace-s", "SANDFLEET_GRACE_S", SF_OPT_INT, O(grace_s), "30", "S", "on SIGTERM, time for active runs to finish", 0, 86400 },
    { "log-format", "SANDFLEET_LOG_FORMAT", SF_OPT_STR, O(log_format), "text", "text|json", "log format on stderr", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "info", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

struct srun {
    char run_id[128], handle[96];
    struct serve_submission sub;
    struct coord_exec *ex;
    struct coord_runner *cr;
    int64_t created_ms, started_ms, due;   /* due: monotonic time of the next step */
    struct srun *next;
};

struct serve {
    const struct serve_cfg *cfg;
    struct coord_cfg ccfg;          /* what every run's executor and runner borrow */
    const struct sf_log *lg;
    struct sf_broker *b;
    struct serve_table tab;
    struct serve_ctx ctx;
    struct sf_health health;
    struct sf_metrics *m;
    struct sf_counter *ok, *failed, *rejected;
    struct sf_gauge *active_g;
    char consumer[160];
    struct srun *runs;
    atomic_int active, stop_reader;
    pthread_t reader;
    bool reader_started;
};

/* --- publishing a run to the table -------------------------------------------- */

static void publish(struct serve *sv, struct srun *r, const char *state, json_t *doc, const char *error)
{
    json_t *steps = json_array();
    struct sf_sched_progress p = {0};
    const struct sf_sched *s = r->cr ? coord_runner_sched(r->cr) : NULL;
    if (s) {
        sf_sched_progress(s, &p);
        for (size_t i = 0; i < r->sub.wf->n_steps; i++) {
            struct sf_sched_step ss;
            sf_sched_step_progress(s, i, &ss);
            json_array_append_new(steps, json_pack("{s:s, s:s, s:I, s:I, s:b}", "id", r->sub.wf->steps[i].id,
                                                   "state", ss.state, "done", (json_int_t)ss.done,
                                                   "total", (json_int_t)ss.total, "map", r->sub.wf->steps[i].map));
        }
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "run_id", r->run_id,
                          "workflow", r->sub.wf->name, "state", state, "created_ms", (json_int_t)r->created_ms,
                          "started_ms", (json_int_t)r->started_ms, "tasks_done", (json_int_t)p.tasks_done,
                          "tasks_known", (json_int_t)p.tasks_known, "steps", steps);
    if (doc) json_object_set_new(j, "finished_ms", json_integer(sf_wall_ms()));
    if (error) json_object_set_new(j, "error", json_string(error));
    serve_table_put(&sv->tab, r->run_id, json_dumps(j, JSON_COMPACT),
                    doc ? json_dumps(doc, JSON_COMPACT) : NULL);
    json_decref(j);
}

/* Store the document (and reply), then ack the submission. Broker hiccups
 * are retried for a while: the document is the run's whole point. */
static void store_doc(struct serve *sv, const char *run_id, json_t *doc, const char *reply_to,
                      const char *handle)
{
    char *text = json_dumps(doc, JSON_COMPACT), err[512];
    int rc;
    for (int tries = 0;; tries++) {
        rc = sv->b->ops->run_doc_put(sv->b, run_id, text, strlen(text), reply_to, err, sizeof(err));
        if (rc == 0 || !sf_broker_transient(rc) || tries == 20) break;
        usleep(250000);
    }
    if (rc < 0) SF_LOG(sv->lg, SF_LOG_ERROR, run_id, NULL, "storing the result document: %s", err);
    if (rc == 0 && handle && handle[0] && sv->b->ops->sub_ack(sv->b, handle, err, sizeof(err)) < 0)
        SF_LOG(sv->lg, SF_LOG_WARN, run_id, NULL, "acking submission %s: %s", handle, err);
    free(text);
}

/* --- the submissions reader thread --------------------------------------------- */

static void reject(struct serve *sv, const char *run_id, const char *reply_to, const char *handle,
                   const char *errors)
{
    json_t *doc = json_pack("{s:s, s:s, s:s}", "run_id", run_id, "status", "rejected", "error", errors);
    SF_LOG(sv->lg, SF_LOG_WARN, run_id, NULL, "submission %s rejected: %s", handle, errors);
    sf_counter_inc(sv->rejected);
    store_doc(sv, run_id, doc, reply_to, handle);
    json_decref(doc);
}

/* One stream entry: its fields are a JSON object of strings (broker.h). */
static void take_submission(struct serve *sv, const struct sf_delivery *d)
{
    json_t *f = json_loads(d->data, 0, NULL);
    const char *wf = json_string_value(json_object_get(f, "workflow"));
    const char *reply = json_string_value(json_object_get(f, "reply_to"));
    const char *rid = json_string_value(json_object_get(f, "run_id"));
    struct serve_pending *p = sf_xcalloc(1, sizeof(*p));
    struct sf_buf errs = {0};
    int rc;
    snprintf(p->run_id, sizeof(p->run_id), "sub-%s", d->handle);
    if (rid && sf_valid_name(rid, SF_RUN_ID_MAX)) sf_strlcpy(p->run_id, rid, sizeof(p->run_id));
    sf_strlcpy(p->handle, d->handle, sizeof(p->handle));
    sf_strlcpy(p->owner, "stream", sizeof(p->owner));
    char why[512];
    if (reply && sf_broker_reply_to_check(sv->b, reply, why, sizeof(why)) < 0) {
        reject(sv, p->run_id, NULL, d->handle, why);       /* answered nowhere but its document */
        goto out;
    }
    if (d->problem[0] || !wf) {
        reject(sv, p->run_id, reply, d->handle, d->problem[0] ? d->problem : "entry has no 'workflow' field");
        goto out;
    }
    if (serve_submission_parse(wf, strlen(wf), &p->sub, &errs) < 0) {
        reject(sv, p->run_id, reply, d->handle, errs.data);
        goto out;
    }
    if (p->sub.reply_to && sf_broker_reply_to_check(sv->b, p->sub.reply_to, why, sizeof(why)) < 0) {
        reject(sv, p->run_id, reply, d->handle, why);
        goto out;
    }
    if (sf_broker_workflow_supported(sv->b, p->sub.wf, p->sub.priority, why, sizeof(why)) < 0) {
        reject(sv, p->run_id, reply, d->handle, why);
        goto out;
    }
    if (reply && !p->sub.reply_to) p->sub.reply_to = sf_xstrdup(reply);
    if (p->sub.run_id) sf_strlcpy(p->run_id, p->sub.run_id, sizeof(p->run_id));
    /* Once queued, p belongs to the loop thread (which may free it at once):
     * log from copies. */
    char run_id[128], *name = sf_xstrdup(p->sub.wf->name);
    sf_strlcpy(run_id, p->run_id, sizeof(run_id));
    if ((rc = serve_table_submit(&sv->tab, p)) == 0) {
        p = NULL;
        sf_counter_inc(sv->ctx.submitted);
        SF_LOG(sv->lg, SF_LOG_INFO, run_id, NULL, "accepted workflow '%s' from %s", name, d->handle);
    } else if (rc == -EEXIST) {
        SF_LOG(sv->lg, SF_LOG_WARN, run_id, NULL, "submission %s: run id already known here; acked", d->handle);
        char err[256];
        (void)sv->b->ops->sub_ack(sv->b, d->handle, err, sizeof(err));
    }
    free(name);
out:
    if (p) {
        serve_submission_clear(&p->sub);
        free(p);
    }
    sf_buf_free(&errs);
    json_decref(f);
}

static void *reader_main(void *arg)
{
    struct serve *sv = arg;
    struct sf_delivery d[4];
    bool pending = true;              /* first what this consumer held before a restart */
    char err[512];
    int64_t last_log = 0;
    while (!atomic_load(&sv->stop_reader)) {
        size_t n = 0;
        if (!pending && atomic_load(&sv->active) >= sv->cfg->max_runs) {
            /* Take nothing, but keep our place in the group served (on
             * Kafka another instance joining waits for us to give up
             * partitions). */
            (void)sv->b->ops->sub_fetch(sv->b, sv->consumer, false, d, 0, 0, &n, err, sizeof(err));
            usleep(100000);
            continue;
        }
        int rc = sv->b->ops->sub_fetch(sv->b, sv->consumer, pending, d, pending ? 4 : 1, 500, &n,
                                       err, sizeof(err));
        if (rc < 0) {
            if (sf_now_ms() - last_log > 5000) {
                last_log = sf_now_ms();
                SF_LOG(sv->lg, SF_LOG_WARN, NULL, NULL, "reading submissions: %s (retrying)", err);
            }
            sf_health_set_connected(&sv->health, 0);
            usleep(250000);
            continue;
        }
        sf_health_set_connected(&sv->health, 1);
        for (size_t i = 0; i < n; i++) {
            take_submission(sv, &d[i]);
            sf_delivery_clear(&d[i]);
        }
        if (pending && n == 0) pending = false;
    }
    return NULL;
}

/* --- runs on the loop thread ---------------------------------------------------- */

static void run_free(struct srun *r)
{
    coord_runner_free(r->cr);
    if (r->ex) r->ex->free(r->ex);
    serve_submission_clear(&r->sub);
    free(r);
}

static void start_run(struct serve *sv, struct serve_pending *p)
{
    struct srun *r = sf_xcalloc(1, sizeof(*r));
    char err[1024];
    sf_strlcpy(r->run_id, p->run_id, sizeof(r->run_id));
    sf_strlcpy(r->handle, p->handle, sizeof(r->handle));
    r->sub = p->sub;
    free(p);
    r->created_ms = r->started_ms = sf_wall_ms();
    if (!(r->ex = coord_exec_broker_new(&sv->ccfg, r->sub.wf, r->run_id, sv->lg, err, sizeof(err)))) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "run_id", r->run_id, "workflow", r->sub.wf->name,
                                "status", "failed", "error", err);
        SF_LOG(sv->lg, SF_LOG_ERROR, r->run_id, NULL, "cannot start: %s", err);
        sf_counter_inc(sv->failed);
        publish(sv, r, "failed", doc, err);
        store_doc(sv, r->run_id, doc, r->sub.reply_to, r->handle);
        json_decref(doc);
        run_free(r);
        return;
    }
    r->cr = coord_runner_new(&sv->ccfg, r->sub.wf, r->run_id, r->sub.input, r->ex, sv->lg, false);
    if (r->sub.priority) coord_runner_set_priority(r->cr, r->sub.priority);
    r->next = sv->runs;
    sv->runs = r;
    atomic_fetch_add(&sv->active, 1);
    sf_gauge_set(sv->active_g, atomic_load(&sv->active));
    publish(sv, r, "running", NULL, NULL);
}

/* Step a due run. Returns true when it is over (and was finished). */
static bool step_run(struct serve *sv, struct srun *r, int64_t now)
{
    char err[1024];
    int timeout = 1000;
    int rc = coord_runner_step(r->cr, &timeout, err, sizeof(err));
    if (rc == 0) {
        r->due = now + timeout;
        publish(sv, r, "running", NULL, NULL);
        return false;
    }
    if (rc < 0) {
        /* The executor broke (broker gone for good): keep the submission
         * unacked so a restart resumes the run. */
        SF_LOG(sv->lg, SF_LOG_ERROR, r->run_id, NULL, "run stopped: %s", err);
        sf_counter_inc(sv->failed);
        publish(sv, r, "error", NULL, err);
        return true;
    }
    json_t *doc = coord_runner_doc(r->cr);
    const char *status = json_string_value(json_object_get(doc, "status"));
    bool ok = status && !strcmp(status, "succeeded");
    json_object_set_new(doc, "run_id", json_string(r->run_id));
    if (coord_exec_broker_finish(r->ex, ok ? "succeeded" : "failed", err, sizeof(err)) < 0)
        SF_LOG(sv->lg, SF_LOG_WARN, r->run_id, NULL, "recording the final status: %s", err);
    store_doc(sv, r->run_id, doc, r->sub.reply_to, r->handle);
    sf_counter_inc(ok ? sv->ok : sv->failed);
    publish(sv, r, ok ? "succeeded" : "failed", doc, NULL);
    json_decref(doc);
    return true;
}

/* One pass over the runs: step the due ones, drop the finished. */
static int64_t step_runs(struct serve *sv, int64_t now)
{
    int64_t next = now + 1000;
    for (struct srun **pp = &sv->runs; *pp;) {
        struct srun *r = *pp;
        if (now >= r->due && step_run(sv, r, now)) {
            *pp = r->next;
            run_free(r);
            atomic_fetch_sub(&sv->active, 1);
            sf_gauge_set(sv->active_g, atomic_load(&sv->active));
            continue;
        }
        if (r->due < next) next = r->due;
        pp = &r->next;
    }
    return next;
}

static int serve_loop(struct serve *sv, int sfd)
{
    bool draining = false;
    int64_t grace_end = 0;
    SF_LOG(sv->lg, SF_LOG_INFO, NULL, NULL, "serving on http://%s (queue %s on %s, up to %ld runs at once, consumer %s)",
           sv->cfg->http, sv->cfg->bf.queue, sv->b->url_redacted, sv->cfg->max_runs, sv->consumer);
    for (;;) {
        struct signalfd_siginfo si;
        sf_health_beat(&sv->health);
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (draining) return 1;
            draining = true;
            grace_end = sf_now_ms() + sv->cfg->grace_s * 1000;
            sf_health_set_draining(&sv->health);
            atomic_store(&sv->stop_reader, 1);
            pthread_mutex_lock(&sv->tab.mu);
            sv->tab.closed = true;
            pthread_mutex_unlock(&sv->tab.mu);
            SF_LOG(sv->lg, SF_LOG_INFO, NULL, NULL, "signal %u: draining %d active run(s) (grace %lds)",
                   si.ssi_signo, atomic_load(&sv->active), sv->cfg->grace_s);
        }
        struct serve_pending *p;
        while ((draining || atomic_load(&sv->active) < sv->cfg->max_runs) && (p = serve_table_take(&sv->tab))) {
            if (!draining) {
                start_run(sv, p);
                continue;
            }
            /* Accepted but never started: a stream submission stays unacked
             * for the next start; an HTTP one is reported as cancelled. */
            struct srun tmp = { .sub = p->sub, .created_ms = sf_wall_ms() };
            sf_strlcpy(tmp.run_id, p->run_id, sizeof(tmp.run_id));
            publish(sv, &tmp, "cancelled", NULL, "the coordinator stopped before the run started");
            serve_submission_clear(&p->sub);
            free(p);
        }
        int64_t now = sf_now_ms(), next = step_runs(sv, now);
        if (draining && !sv->runs) return 0;
        if (draining && sf_now_ms() >= grace_end) {
            SF_LOG(sv->lg, SF_LOG_WARN, NULL, NULL, "grace period over with %d run(s) active", atomic_load(&sv->active));
            return 1;
        }
        size_t nf = 2, cap = 2;
        for (struct srun *r = sv->runs; r; r = r->next) cap++;
        struct pollfd pfd[cap];
        struct srun *who[cap];
        pfd[0] = (struct pollfd){ sfd, POLLIN, 0 };
        pfd[1] = (struct pollfd){ sv->tab.efd, POLLIN, 0 };
        for (struct srun *r = sv->runs; r; r = r->next) {
            who[nf] = r;
            pfd[nf++] = (struct pollfd){ r->ex->fd(r->ex), POLLIN, 0 };
        }
        now = sf_now_ms();
        int timeout = next > now ? (int)(next - now) : 0;
        if (poll(pfd, nf, timeout) < 0 && errno != EINTR) {
            SF_LOG(sv->lg, SF_LOG_ERROR, NULL, NULL, "poll: %s", strerror(errno));
            return 1;
        }
        for (size_t i = 2; i < nf; i++)
            if (pfd[i].revents) who[i]->due = 0;
    }
}

/* --- set-up --------------------------------------------------------------------- */

static void serve_metrics(struct serve *sv)
{
    static const char help[] = "Workflow runs submitted to this coordinator and how they ended.";
    sv->m = sf_metrics_new();
    sv->ctx.submitted = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"submitted\"");
    sv->ok = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"succeeded\"");
    sv->failed = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"failed\"");
    sv->rejected = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"rejected\"");
    sv->active_g = sf_metrics_gauge(sv->m, "sandfleet_runs_active", "Runs in progress on this coordinator.", NULL);
}

static void reconnected(void *arg) { sf_counter_inc(arg); }

int coord_cmd_serve(int argc, char **argv)
{
    struct serve_cfg cfg = {0};
    struct serve sv = { .cfg = &cfg };
    struct sf_log lg;
    struct sf_http *http = NULL;
    struct sf_tokens *tokens = NULL;
    char **pos = NULL, err[1024], host[64] = "localhost";
    int npos = 0, code = SF_EXIT_USAGE, sfd = -1;
    sigset_t mask;

    sf_log_init(&lg, "coordinator");
    pthread_mutex_init(&sv.tab.mu, NULL);
    sv.tab.tail = &sv.tab.head;
    sv.tab.efd = -1;
    if (sf_opts_parse(serve_opts, &cfg, argc, argv, 2, &pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator serve: %s\n", err);
        goto out;
    }
    if (cfg.help) {
        printf("usage: sandfleet-coordinator serve --broker URL [--http HOST:PORT] [options]\n\n"
               "A long-running coordinator: POST /api/runs, XADD sf:submissions (Redis) or produce\n"
               "to sandfleet.submissions (Kafka) to start runs,\n"
               "GET /api/runs/{id} for their state and result, a status page at /.\n\noptions:\n");
        sf_opts_usage(serve_opts, stdout);
        code = 0;
        goto out;
    }
    if (npos || !cfg.bf.url || sf_log_set_format(&lg, cfg.log_format) < 0 || sf_log_set_level(&lg, cfg.log_level) < 0) {
        fprintf(stderr, "sandfleet-coordinator serve: --broker URL is required; check --log-format/--log-level (see --help)\n");
        goto out;
    }
    if (serve_auth_setup(cfg.api_token_file, cfg.http, &tokens, &lg, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        goto out;
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(sv.consumer, sizeof(sv.consumer), "%s", cfg.id ? cfg.id : "");
    if (!cfg.id) snprintf(sv.consumer, sizeof(sv.consumer), "coordinator-%s", host);
    sv.lg = &lg;
    sv.ccfg = (struct coord_cfg){ .bf = cfg.bf, .max_inflight = cfg.max_inflight,
                                  .retry_base_ms = cfg.retry_base_ms };
    serve_metrics(&sv);
    sf_health_init(&sv.health, 30000);
    sv.ctx = (struct serve_ctx){ .tab = &sv.tab, .health = &sv.health, .m = sv.m, .lease_ms = cfg.lease_ms,
                                 .lg = &lg, .submitted = sv.ctx.submitted };
    code = SF_EXIT_BROKEN;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    sv.tab.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || sv.tab.efd < 0) {
        SF_LOGE(&lg, "signalfd/eventfd: %s", strerror(errno));
        goto out;
    }
    struct sf_broker_cfg bcfg = { .lease_ms = cfg.lease_ms, .log = &lg,
                                  .on_reconnect = reconnected,
                                  .on_reconnect_arg = sf_metrics_counter(sv.m, "sandfleet_broker_reconnects_total",
                                      "Broker connections re-established after a failure.", NULL) };
    if (sf_broker_open(&cfg.bf, &bcfg, 30000, NULL, NULL, &sv.b, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        goto out;
    }
    if (!sf_broker_can_serve(sv.b)) {
        SF_LOGE(&lg, "serve is not supported by the %s backend yet (use redis:// or kafka://)",
                sv.b->ops->scheme);
        goto out;
    }
    sf_health_set_connected(&sv.health, 1);
    sv.ctx.b = sv.b;
    http = sf_http_new(&cfg.http_limits);
    sf_http_set_log(http, &lg);
    if (tokens) sf_http_set_auth(http, serve_auth_hook, tokens);
    serve_api_routes(http, &sv.ctx);
    if (sf_http_listen(http, cfg.http, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        goto out;
    }
    if (pthread_create(&sv.reader, NULL, reader_main, &sv) != 0) {
        SF_LOGE(&lg, "cannot start the submissions reader");
        goto out;
    }
    sv.reader_started = true;
    code = serve_loop(&sv, sfd);
    SF_LOG(&lg, SF_LOG_INFO, NULL, NULL, "stopped (%s)", code ? "runs left unfinished" : "drained");
out:
    atomic_store(&sv.stop_reader, 1);
    if (sv.reader_started) pthread_join(sv.reader, NULL);
    sf_http_free(http);                     /* before the table its handlers read */
    sf_tokens_free(tokens);
    while (sv.runs) {
        struct srun *r = sv.runs;
        sv.runs = r->next;
        run_free(r);
    }
    for (struct serve_pending *p; (p = serve_table_take(&sv.tab));) {
        serve_submission_clear(&p->sub);
        free(p);
    }
    for (size_t i = 0; i < sv.tab.n; i++) {
        free(sv.tab.v[i].summary);
        free(sv.tab.v[i].doc);
    }
    free(sv.tab.v);
    if (sv.tab.efd >= 0) close(sv.tab.efd);
    if (sfd >= 0) close(sfd);
    pthread_mutex_destroy(&sv.tab.mu);
    sf_broker_free(sv.b);
    sf_metrics_free(sv.m);
    free(pos);
    sf_opts_free(serve_opts, &cfg);
    return code;
}
