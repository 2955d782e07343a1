/* coordinator/serve/serve.c: `sandfleet-coordinator serve`: the long-running
 * coordinator (serve.h for the modules and threads).
 *
 * Design notes.
 * - Many runs, one loop thread. Each run is a coord_runner (run.c) over a
 *   broker executor attached to one shared broker and one result feed
 *   (run_broker.h); the loop polls every executor's fd, the intake eventfd,
 *   the pool's eventfd and the signalfd, and steps the runs that are due.
 *   The scheduler state has one owner; the page reads snapshots the loop
 *   publishes (serve_table.c).
 * - The loop never waits for the broker: claims, preparing a run, storing a
 *   document, lookups and the status are jobs on the pool (serve_jobs.c).
 *   /healthz stays honest: the loop beats whatever the broker does.
 * - Intake (serve_api.c, serve_reader.c): a submission's run id is claimed
 *   in the broker before it is accepted (202); a taken id is 409 whoever
 *   sends it. At most --max-queued submissions wait (429 beyond); at most
 *   --max-runs run at once.
 * - Drain: SIGTERM refuses new submissions (503, /readyz 503), lets active
 *   runs finish for --grace-s, then exits; a second signal exits at once. */
#include "cmd.h"
#include "coord.h"
#include "run_broker.h"
#include "serve.h"
#include "gw.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define KEEPALIVE_MS 2000
#define MAX_ASKS 64

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
    { "max-queued", "SANDFLEET_MAX_QUEUED", SF_OPT_INT, O(max_queued), "256", "N",
      "submissions accepted and waiting to start; beyond, POST /api/runs answers 429", 1, 1000000 },
    { "io-threads", "SANDFLEET_IO_THREADS", SF_OPT_INT, O(io_threads), "4", "N",
      "threads for broker calls that may wait (claims, documents, lookups)", 1, 256 },
    { "max-inflight", "SANDFLEET_MAX_INFLIGHT", SF_OPT_INT, O(max_inflight), "1000", "N",
      "per run: tasks published and not yet finished", 1, 1000000 },
    { "retry-base-ms", "SANDFLEET_RETRY_BASE_MS", SF_OPT_INT, O(retry_base_ms), "500", "MS", "first retry delay", 1, 3600000 },
    { "lease-ms", "SANDFLEET_LEASE_MS", SF_OPT_INT, O(lease_ms), "30000", "MS", "the fleet's lease (live workers in /api/status)", 100, 86400000 },
    { "grace-s", "SANDFLEET_GRACE_S", SF_OPT_INT, O(grace_s), "30", "S", "on SIGTERM, time for active runs to finish", 0, 86400 },
    { "e2b-listen", "SANDFLEET_E2B_LISTEN", SF_OPT_STR, O(e2b_listen), NULL, "HOST:PORT",
      "serve the E2B API for the whole fleet here (workers join with --e2b-ingress; docs/e2b.md)", 0, 0 },
    { "e2b-api-key", "SANDFLEET_E2B_API_KEY", SF_OPT_LIST, O(e2b_keys), NULL, "KEY",
      "an X-API-Key the gateway accepts, repeatable; best as --e2b-api-key-file FILE (one per line)",
      0, 0, SF_OPT_SECRET },
    { "e2b-gateway-secret", "SANDFLEET_E2B_GATEWAY_SECRET", SF_OPT_STR, O(e2b_secret), NULL, "SECRET",
      "the secret shared with the workers' --e2b-ingress (best as --e2b-gateway-secret-file FILE)",
      0, 0, SF_OPT_SECRET },
    SF_HTTP_LIMIT_OPTS_CONNS("e2b", "SANDFLEET_E2B", struct serve_cfg, e2b_limits, "1024", "4096", "1024"),
    { "e2b-min-free-mb", "SANDFLEET_E2B_MIN_FREE_MB", SF_OPT_INT, O(e2b_min_free_mb), "256", "MB",
      "a worker gets new sandboxes only with this much memory free", 0, 1L << 30 },
    { "log-format", "SANDFLEET_LOG_FORMAT", SF_OPT_STR, O(log_format), "text", "text|json", "log format on stderr", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "info", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

/* --- the loop ------------------------------------------------------------------- */

static void take_intake(struct serve *sv)
{
    struct serve_req *r;
    while ((r = serve_table_take(&sv->tab))) {
        if (r->kind == SERVE_POST) serve_job_parse(sv, r);
        else if (r->kind == SERVE_SUBMIT) serve_job_claim(sv, r);
        else serve_job_ask(sv, r);
    }
}

static void take_jobs(struct serve *sv)
{
    void *j;
    while ((j = sf_pool_take_done(sv->pool))) serve_job_done(sv, j);
}

static void start_drain(struct serve *sv, unsigned signo, int64_t *grace_end)
{
    sv->draining = true;
    *grace_end = sf_now_ms() + sv->cfg->grace_s * 1000;
    sf_health_set_draining(&sv->health);
    atomic_store(&sv->stop_reader, 1);
    serve_table_close(&sv->tab, false);
    SF_LOG(sv->lg, SF_LOG_INFO, NULL, NULL, "signal %u: draining %d active run(s) (grace %lds)", signo,
           atomic_load(&sv->active), sv->cfg->grace_s);
}

static int wait_events(struct serve *sv, int sfd, int64_t until)
{
    size_t cap = 3 + (size_t)atomic_load(&sv->active);
    struct pollfd *pfd = sf_xcalloc(cap, sizeof(*pfd));
    struct srun **who = sf_xcalloc(cap, sizeof(*who));
    pfd[0] = (struct pollfd){ sfd, POLLIN, 0 };
    pfd[1] = (struct pollfd){ sv->tab.efd, POLLIN, 0 };
    pfd[2] = (struct pollfd){ sf_pool_fd(sv->pool), POLLIN, 0 };
    size_t n = 3 + serve_runs_fds(sv, pfd + 3, who + 3, cap - 3);
    int64_t now = sf_now_ms();
    int rc = poll(pfd, n, until > now ? (int)(until - now) : 0);
    if (rc < 0 && errno != EINTR) {
        SF_LOG(sv->lg, SF_LOG_ERROR, NULL, NULL, "poll: %s", strerror(errno));
    } else {
        for (size_t i = 3; i < n; i++)
            if (pfd[i].revents) serve_run_wake(who[i]);
        rc = 0;
    }
    free(pfd);
    free(who);
    return rc;
}

static int serve_loop(struct serve *sv, int sfd)
{
    int64_t grace_end = 0;
    SF_LOG(sv->lg, SF_LOG_INFO, NULL, NULL, "serving on http://%s (queue %s on %s, up to %ld runs at once, consumer %s)",
           sv->cfg->http, sv->b->cfg.queue, sv->b->url_redacted, sv->cfg->max_runs, sv->consumer);
    for (;;) {
        struct signalfd_siginfo si;
        sf_health_beat(&sv->health);
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (sv->draining) return 1;
            start_drain(sv, si.ssi_signo, &grace_end);
        }
        take_intake(sv);
        take_jobs(sv);
        serve_runs_start(sv);
        int64_t now = sf_now_ms(), next = serve_runs_step(sv, now);
        if (sv->runs && !sv->keepalive_busy && now >= sv->next_keepalive) {
            serve_job_keepalive(sv);
            sv->next_keepalive = now + KEEPALIVE_MS;
        }
        if (sv->draining && !sv->runs && !sv->ready && sv->jobs == 0) return 0;
        if (sv->draining && now >= grace_end) {
            SF_LOG(sv->lg, SF_LOG_WARN, NULL, NULL, "grace period over with %d run(s) active",
                   atomic_load(&sv->active));
            return 1;
        }
        if (sv->runs && sv->next_keepalive < next) next = sv->next_keepalive;
        if (sv->draining && grace_end < next) next = grace_end;
        if (wait_events(sv, sfd, next) < 0) return 1;
    }
}

/* --- set-up ---------------------------------------------------------------------- */

static void serve_metrics(struct serve *sv)
{
    static const char help[] = "Workflow runs submitted to this coordinator and how they ended.";
    sv->m = sf_metrics_new();
    sv->submitted = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"submitted\"");
    sv->ok = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"succeeded\"");
    sv->failed = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"failed\"");
    sv->rejected = sf_metrics_counter(sv->m, "sandfleet_runs_total", help, "status=\"rejected\"");
    sv->active_g = sf_metrics_gauge(sv->m, "sandfleet_runs_active", "Runs in progress on this coordinator.", NULL);
}

static void reconnected(void *arg) { sf_counter_inc(arg); }

static int parse_args(struct serve_cfg *cfg, struct sf_log *lg, int argc, char **argv, char ***pos)
{
    char err[1024];
    int npos = 0;
    if (sf_opts_parse(serve_opts, cfg, argc, argv, 2, pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator serve: %s\n", err);
        return SF_EXIT_USAGE;
    }
    if (cfg->help) {
        printf("usage: sandfleet-coordinator serve --broker URL [--http HOST:PORT] [options]\n\n"
               "A long-running coordinator: POST /api/runs, XADD sf:submissions (Redis) or produce\n"
               "to sandfleet.submissions (Kafka) to start runs,\n"
               "GET /api/runs/{id} for their state and result, a status page at /.\n\noptions:\n");
        sf_opts_usage(serve_opts, stdout);
        return 0;
    }
    if (npos || !cfg->bf.url || sf_log_set_format(lg, cfg->log_format) < 0 || sf_log_set_level(lg, cfg->log_level) < 0) {
        fprintf(stderr, "sandfleet-coordinator serve: --broker URL is required; check --log-format/--log-level (see --help)\n");
        return SF_EXIT_USAGE;
    }
    return -1;
}

/* The broker, the feed and the pool. */
static int open_broker(struct serve *sv, struct sf_log *lg, char *err, size_t errlen)
{
    struct sf_broker_cfg bcfg = { .lease_ms = sv->cfg->lease_ms, .log = lg,
                                  .on_reconnect = reconnected,
                                  .on_reconnect_arg = sf_metrics_counter(sv->m, "sandfleet_broker_reconnects_total",
                                      "Broker connections re-established after a failure.", NULL) };
    if (sf_broker_open(&sv->cfg->bf, &bcfg, 30000, NULL, NULL, &sv->b, err, errlen) < 0) return -1;
    if (!sf_broker_can_serve(sv->b) || !sv->b->ops->run_claim) {
        sf_errf(err, errlen, "serve is not supported by the %s backend yet (use redis:// or kafka://)",
                sv->b->ops->scheme);
        return -1;
    }
    if (!(sv->feed = coord_feed_new(sv->b, lg, err, errlen))) return -1;
    if (!(sv->pool = sf_pool_new((size_t)sv->cfg->io_threads, serve_job_work, sv))) {
        sf_errf(err, errlen, "cannot start the broker threads: %s", strerror(errno));
        return -1;
    }
    sf_health_set_connected(&sv->health, 1);
    return 0;
}

/* In order: nothing new comes in, nothing waits for an answer, then the
 * parts go, users before what they use. */
static void shut_down(struct serve *sv, struct sf_http *http)
{
    atomic_store(&sv->stopping, 1);
    serve_table_close(&sv->tab, true);
    serve_reader_stop(sv);
    if (sv->pool) sf_pool_free(sv->pool, serve_job_leftover);
    sv->pool = NULL;
    for (struct serve_req *r; (r = serve_table_take(&sv->tab));) {
        serve_answer(r, 503, json_pack("{s:s}", "error", "the coordinator is stopping"));
        serve_req_free(r);
    }
    serve_runs_free(sv);
    coord_feed_free(sv->feed);
    sf_http_free(http);                     /* before the table its handlers read */
}

int coord_cmd_serve(int argc, char **argv)
{
    struct serve_cfg cfg = {0};
    struct serve sv = { .cfg = &cfg };
    struct sf_log lg;
    struct sf_http *http = NULL;
    struct sf_tokens *tokens = NULL;
    struct sf_gw *gw = NULL;
    char **pos = NULL, err[1024], host[64] = "localhost";
    int code, sfd = -1;
    sigset_t mask;

    sf_log_init(&lg, "coordinator");
    sv.ready_tail = &sv.ready;
    if ((code = parse_args(&cfg, &lg, argc, argv, &pos)) >= 0) goto out_args;
    if (serve_table_init(&sv.tab, (size_t)cfg.max_queued, MAX_ASKS) < 0) {
        SF_LOGE(&lg, "eventfd: %s", strerror(errno));
        code = SF_EXIT_BROKEN;
        goto out_table;
    }
    code = SF_EXIT_USAGE;
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
    code = SF_EXIT_BROKEN;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        SF_LOGE(&lg, "signalfd: %s", strerror(errno));
        goto out;
    }
    if (cfg.e2b_listen && !cfg.e2b_listen[0]) {          /* SANDFLEET_E2B_LISTEN="": off */
        free(cfg.e2b_listen);
        cfg.e2b_listen = NULL;
    }
    const char *missing;
    if (cfg.e2b_listen && (missing = sf_broker_url_e2b_missing(cfg.bf.url))) {
        SF_LOGE(&lg, "--e2b-listen: %s", missing);
        code = SF_EXIT_USAGE;
        goto out;
    }
    if (open_broker(&sv, &lg, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        goto out;
    }
    http = sf_http_new(&cfg.http_limits);
    sf_http_set_log(http, &lg);
    if (tokens) sf_http_set_auth(http, serve_auth_hook, tokens);
    serve_api_routes(http, &sv);
    if (sf_http_listen(http, cfg.http, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        goto out;
    }
    if (cfg.e2b_listen) {
        struct serve_e2b_cfg ec = { .listen = cfg.e2b_listen, .keys = cfg.e2b_keys.v,
                                    .nkeys = cfg.e2b_keys.n, .secret = cfg.e2b_secret,
                                    .limits = cfg.e2b_limits,
                                    .min_free_mb = cfg.e2b_min_free_mb };
        if (serve_e2b_start(&ec, sv.b, sv.m, &lg, &gw, err, sizeof(err)) < 0) {
            SF_LOGE(&lg, "%s", err);
            code = SF_EXIT_USAGE;
            goto out;
        }
    }
    if (serve_reader_start(&sv) < 0) {
        SF_LOGE(&lg, "cannot start the submissions reader");
        goto out;
    }
    code = serve_loop(&sv, sfd);
    SF_LOG(&lg, SF_LOG_INFO, NULL, NULL, "stopped (%s)", code ? "runs left unfinished" : "drained");
out:
    sf_gw_stop(gw);                         /* before the broker it uses */
    shut_down(&sv, http);
    serve_table_destroy(&sv.tab);
out_table:
    if (sfd >= 0) close(sfd);
    sf_broker_free(sv.b);
    sf_metrics_free(sv.m);
out_args:
    sf_tokens_free(tokens);
    free(pos);
    sf_opts_free(serve_opts, &cfg);
    return code;
}
