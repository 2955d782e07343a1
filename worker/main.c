/* worker/main.c: sandfleet-worker — pull tasks from a broker, run each in a
 * sandbox, post the result. Exit codes: 0 drained cleanly after a signal,
 * 1 stopped with tasks left to their leases, 2 bad usage, 3 the broker or
 * sandbox backend is unusable. Only main() exits. */
#include "worker.h"
#include "config.h"
#include "e2b_fleet.h"
#include "e2b_member.h"
#include "e2b_server.h"
#include "exitcode.h"
#include "http.h"
#include "template.h"
#include "template_import.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>


#define O(f) offsetof(struct worker_cfg, f)
static const struct sf_opt worker_opts[] = {
    SF_BROKER_OPTS(struct worker_cfg, bf),
    { "concurrency", "SANDFLEET_CONCURRENCY", SF_OPT_INT, O(concurrency), "0", "N",
      "sandboxes at once (0 = number of CPUs)", 0, 4096 },
    { "sandbox", "SANDFLEET_SANDBOX", SF_OPT_STR, O(sandbox), "local", "KIND",
      "sandbox backend: local, process (no isolation) or e2b", 0, 0 },
    { "worker-id", "SANDFLEET_WORKER_ID", SF_OPT_STR, O(worker_id), NULL, "ID",
      "name in the consumer group and in results (default host-pid-random)", 0, 0 },
    { "lease-ms", "SANDFLEET_LEASE_MS", SF_OPT_INT, O(lease_ms), "30000", "MS",
      "a task whose worker stops renewing for this long is taken over", 100, 86400000 },
    { "warm-idle-s", "SANDFLEET_WARM_IDLE_S", SF_OPT_INT, O(warm_idle_s), "60", "S",
      "a warm agent (a step with \"serve\": \"lines\") idle this long is stopped", 1, 86400 },
    { "grace-s", "SANDFLEET_GRACE_S", SF_OPT_INT, O(grace_s), "30", "S",
      "on SIGTERM, time for in-flight tasks to finish", 0, 86400 },
    { "retry-base-ms", "SANDFLEET_RETRY_BASE_MS", SF_OPT_INT, O(retry_base_ms), "500", "MS",
      "first retry delay; doubles per attempt (max 30 s), jittered", 1, 3600000 },
    { "settle-timeout-s", "SANDFLEET_SETTLE_TIMEOUT_S", SF_OPT_INT, O(settle_timeout_s), "600", "S",
      "how long a finished task's outcome is retried while the broker is unreachable (the lease "
      "is kept meanwhile); then it is left to its lease", 1, 86400 },
    { "claim-check-bytes", "SANDFLEET_CLAIM_CHECK_BYTES", SF_OPT_INT, O(claim_check), "524288", "BYTES",
      "inputs/outputs larger than this travel as blob references", 1024, 1L << 30 },
    { "output-cap", "SANDFLEET_OUTPUT_CAP", SF_OPT_INT, O(output_cap), "16777216", "BYTES",
      "largest agent stdout accepted", 1, 1L << 31 },
    { "priority-aging-s", "SANDFLEET_PRIORITY_AGING_S", SF_OPT_INT, O(priority_aging_s), "60", "S",
      "a waiting task counts as one priority level higher per S seconds it waits (no starvation)", 1, 86400 },
    { "secrets-dir", "SANDFLEET_SECRETS_DIR", SF_OPT_STR, O(secrets_dir), NULL, "DIR",
      "secrets by name: DIR/NAME (besides SANDFLEET_SECRET_<NAME>); docs/operations.md", 0, 0 },
    { "max-memory-mb", "SANDFLEET_MAX_MEMORY_MB", SF_OPT_INT, O(max_memory_mb), "4096", "MB",
      "refuse tasks asking more memory per sandbox (0: no cap)", 0, 1L << 40 },
    { "max-pids", "SANDFLEET_MAX_PIDS", SF_OPT_INT, O(max_pids), "4096", "N",
      "refuse tasks asking more processes per sandbox (0: no cap)", 0, 1L << 40 },
    { "max-disk-mb", "SANDFLEET_MAX_DISK_MB", SF_OPT_INT, O(max_disk_mb), "4096", "MB",
      "refuse tasks asking more disk per sandbox (0: no cap)", 0, 1L << 40 },
    { "max-cpu-s", "SANDFLEET_MAX_CPU_S", SF_OPT_INT, O(max_cpu_s), "0", "S",
      "refuse tasks asking more CPU seconds per command (0: no cap)", 0, 1L << 40 },
    { "max-timeout-s", "SANDFLEET_MAX_TIMEOUT_S", SF_OPT_DOUBLE, O(max_timeout_s), "3600", "S",
      "refuse tasks asking a longer timeout; tasks without one get this (0: no cap; at most "
      "604800, a week, the longest a task may ask)", 0, SF_TIMEOUT_MAX_S },
    { "log-format", "SANDFLEET_LOG_FORMAT", SF_OPT_STR, O(log_format), "text", "text|json", "log format on stderr", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "info", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "template", NULL, SF_OPT_LIST, O(templates), NULL, "NAME=DIR",
      "a template: DIR is a root file system (repeatable); tasks and E2B sandboxes name it", 0, 0 },
    { "template-store", "SANDFLEET_TEMPLATE_STORE", SF_OPT_STR, O(template_store),
      SF_TEMPLATE_STORE_DEFAULT, "DIR", "where `template import` puts templates (DIR/NAME/rootfs)", 0, 0 },
    { "e2b-listen", "SANDFLEET_E2B_LISTEN", SF_OPT_STR, O(e2b_listen), NULL, "HOST:PORT",
      "serve the E2B REST API and envd here, on local sandboxes (see docs/e2b.md)", 0, 0 },
    { "e2b-api-key", "SANDFLEET_E2B_API_KEY", SF_OPT_STR, O(e2b_api_key), NULL, "KEY",
      "X-API-Key the E2B server requires (default: any key)", 0, 0, SF_OPT_SECRET },
    { "e2b-domain", "SANDFLEET_E2B_DOMAIN", SF_OPT_STR, O(e2b_domain), NULL, "DOMAIN",
      "E2B server: the domain sandboxes report, so the SDKs' get_host(port) is "
      "PORT-ID.DOMAIN (point *.DOMAIN at this server)", 0, 0 },
    { "e2b-max-sandboxes", "SANDFLEET_E2B_MAX_SANDBOXES", SF_OPT_INT, O(e2b_max), "64", "N",
      "E2B server: sandboxes running at once (429 beyond)", 1, 100000 },
    { "e2b-max-paused", "SANDFLEET_E2B_MAX_PAUSED", SF_OPT_INT, O(e2b_max_paused), "0", "N",
      "E2B server: paused sandboxes kept at once, each holding its memory (429 beyond; "
      "0: as --e2b-max-sandboxes)", 0, 100000 },
    /* An SDK client holds a connection per running command (its stream):
     * more connections than the other listeners, half of them per address. */
    SF_HTTP_LIMIT_OPTS_CONNS("e2b", "SANDFLEET_E2B", struct worker_cfg, e2b_limits, "16384", "1024",
                             "512"),
    { "e2b-ingress", "SANDFLEET_E2B_INGRESS", SF_OPT_STR, O(e2b_ingress), NULL, "HOST:PORT",
      "join the E2B fleet: serve the sandboxes the gateway (serve --e2b-listen) places here, "
      "at this address (listened on unless --e2b-listen says where); needs --broker", 0, 0 },
    { "e2b-gateway-secret", "SANDFLEET_E2B_GATEWAY_SECRET", SF_OPT_STR, O(e2b_gw_secret), NULL, "SECRET",
      "with --e2b-ingress: the secret shared with the gateway (best as --e2b-gateway-secret-file FILE)",
      0, 0, SF_OPT_SECRET },
    { "e2b-template", "SANDFLEET_E2B_TEMPLATE", SF_OPT_STR, O(e2b_template), "base", "NAME",
      "template of E2B sandboxes for --sandbox e2b", 0, 0 },
    { "http", "SANDFLEET_HTTP", SF_OPT_STR, O(http), NULL, "HOST:PORT",
      "serve /metrics (Prometheus), /healthz and /readyz here", 0, 0 },
    SF_HTTP_LIMIT_OPTS("http", "SANDFLEET_HTTP", struct worker_cfg, http_limits, "64"),
    { "healthz-stale-s", "SANDFLEET_HEALTHZ_STALE_S", SF_OPT_INT, O(healthz_stale_s), "30", "S",
      "/healthz fails when the loop thread has not turned for this long", 1, 86400 },
    { "callback-allow", "SANDFLEET_CALLBACK_ALLOW", SF_OPT_STR, O(callback_allow), NULL, "HOST[,HOST...]",
      "callback destinations allowed (listed hosts at any address; '*' adds public hosts); "
      "default: public addresses only", 0, 0 },
    { "callback-concurrency", "SANDFLEET_CALLBACK_CONCURRENCY", SF_OPT_INT, O(callback_concurrency), "16", "N",
      "callback deliveries at once (0: this worker delivers none)", 0, 1024 },
    { "callback-timeout-ms", "SANDFLEET_CALLBACK_TIMEOUT_MS", SF_OPT_INT, O(callback_timeout_ms), "10000", "MS",
      "per-request timeout of a callback delivery", 100, 600000 },
    { "callback-max-attempts", "SANDFLEET_CALLBACK_MAX_ATTEMPTS", SF_OPT_INT, O(callback_attempts), "10", "N",
      "attempts before a callback is dead-lettered", 1, 100 },
    { "callback-retry-base-ms", "SANDFLEET_CALLBACK_RETRY_BASE_MS", SF_OPT_INT, O(callback_base_ms), "10000", "MS",
      "first callback retry delay; x3 per attempt, jittered to 80-100 %", 1, 86400000 },
    { "callback-max-body", "SANDFLEET_CALLBACK_MAX_BODY", SF_OPT_INT, O(callback_max_body), "1048576", "BYTES",
      "largest document POSTed; larger ones are dead-lettered", 1024, 1L << 30 },
    { "egress-allow", "SANDFLEET_EGRESS_ALLOW", SF_OPT_LIST, O(egress_allow), NULL, "CIDR|HOST",
      "sandboxes with network may also reach this block or host name (e.g. an internal LLM "
      "gateway); repeatable or comma-separated", 0, 0 },
    { "egress-deny", "SANDFLEET_EGRESS_DENY", SF_OPT_LIST, O(egress_deny), NULL, "CIDR",
      "sandboxes with network may never reach this block; repeatable or comma-separated", 0, 0 },
    { "egress-dns", "SANDFLEET_EGRESS_DNS", SF_OPT_LIST, O(egress_dns), NULL, "IP[:PORT]",
      "resolver the sandboxes' DNS is forwarded to (default: /etc/resolv.conf); repeatable", 0, 0 },
    { "no-network", "SANDFLEET_NO_NETWORK", SF_OPT_BOOL, O(no_network), "0", NULL,
      "refuse every task that asks for network (dead letter with the reason)", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { "version", NULL, SF_OPT_BOOL, O(version), "0", NULL, "show the version", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: sandfleet-worker --broker redis://host:port [options]\n"
        "       sandfleet-worker --e2b-listen HOST:PORT [options]   (docs/e2b.md)\n"
        "       sandfleet-worker template import NAME IMAGE.tar | template list\n"
        "\n"
        "Pulls tasks from the broker, runs each agent in its own sandbox and posts\n"
        "the result. SIGTERM/SIGINT: stop pulling, finish in-flight tasks, exit 0;\n"
        "a second signal exits at once.\n\noptions (flag > SANDFLEET_* environment > default):\n");
    sf_opts_usage(worker_opts, out);
}

/* While waiting for the broker at start: the loop is alive (not ready), and
 * a signal stops the wait. */
struct start_wait {
    struct worker *w;
    int sfd;
    bool signalled;
};

static bool start_wait_stop(void *arg)
{
    struct start_wait *sw = arg;
    struct signalfd_siginfo si;
    sf_health_beat(&sw->w->obs.health);
    if (read(sw->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) sw->signalled = true;
    return sw->signalled;
}

/* --e2b-listen: make the provider, start the server. Without --broker,
 * serve until SIGTERM/SIGINT (returns 0 then); otherwise return 0 at once
 * and let the pull loop run beside it. SF_EXIT_BROKEN when it cannot start. */
/* What the loop drives of the E2B server (worker.h, struct worker_e2b). */
static void e2b_drain(void *arg) { sf_e2b_server_drain(((struct worker *)arg)->e2b_srv); }
static size_t e2b_alive(void *arg) { return sf_e2b_server_alive(((struct worker *)arg)->e2b_srv); }
static int e2b_beat(void *arg, struct sf_broker *b, bool draining, bool leaving, char *err, size_t errlen)
{
    return e2b_member_beat(((struct worker *)arg)->member, b, draining, leaving, err, errlen);
}
static int e2b_fd(void *arg) { return e2b_member_fd(((struct worker *)arg)->member); }
static int e2b_flush(void *arg, struct sf_broker *b, char *err, size_t errlen)
{
    return e2b_member_flush(((struct worker *)arg)->member, b, err, errlen);
}

/* --e2b-ingress: the member (e2b_member.h) with the gateway's secret. */
static int worker_e2b_member(struct worker *w)
{
    char err[1024];
    size_t slen;
    const struct worker_cfg *cfg = w->cfg;
    if (!cfg->bf.url) {
        SF_LOGE(w->lg, "--e2b-ingress needs --broker: the fleet's state lives there");
        return SF_EXIT_USAGE;
    }
    if (sf_e2b_secret_check(cfg->e2b_gw_secret, "e2b-gateway-secret", err, sizeof(err)) < 0) {
        SF_LOGE(w->lg, "--e2b-ingress: %s", err);
        return SF_EXIT_USAGE;
    }
    const char *missing = sf_broker_url_e2b_missing(cfg->bf.url);
    if (missing) {
        SF_LOGE(w->lg, "--e2b-ingress: %s", missing);
        return SF_EXIT_USAGE;
    }
    slen = strlen(cfg->e2b_gw_secret);
    /* ":PORT": listen on every address, advertise this machine's own. */
    char own[96];
    const char *adv = cfg->e2b_ingress;
    if (adv[0] == ':') {
        int rc = e2b_member_own_ingress(adv + 1, own, sizeof(own));
        if (rc < 0) {
            SF_LOGE(w->lg, "--e2b-ingress %s: no address of this machine to advertise (%s); "
                    "give HOST:PORT", adv, strerror(-rc));
            return SF_EXIT_USAGE;
        }
        adv = own;
    }
    w->member = e2b_member_new(w->id, adv, cfg->lease_ms, cfg->e2b_gw_secret, slen, w->lg);
    if (!w->member) {
        SF_LOGE(w->lg, "eventfd: %s", strerror(errno));
        return SF_EXIT_BROKEN;
    }
    return 0;
}

static int worker_e2b_start(struct worker *w, const struct sf_provider_config *pcfg,
                            struct sf_e2b_server **out, int sfd)
{
    char err[1024];
    const struct worker_cfg *cfg = w->cfg;
    int code;
    if (cfg->e2b_ingress && (code = worker_e2b_member(w)) != 0) return code;
    char any[80];
    const char *listen = cfg->e2b_listen ? cfg->e2b_listen : cfg->e2b_ingress;
    if (listen && listen[0] == ':') {
        snprintf(any, sizeof(any), "0.0.0.0%s", listen);
        listen = any;
    }
    /* Without a key anyone who can connect runs code (with the internet)
     * in this worker's sandboxes: loopback only, as serve's API. */
    if (!cfg->e2b_api_key && !w->member && !sf_http_is_loopback(listen)) {
        SF_LOGE(w->lg, "--e2b-listen %s is not a loopback address: set --e2b-api-key (or "
                "--e2b-api-key-file, SANDFLEET_E2B_API_KEY) before serving the E2B API to a network "
                "(docs/security.md, \"Front doors\")", listen);
        return SF_EXIT_USAGE;
    }
    if (!(w->prov = sf_sandbox_provider_new(cfg->sandbox, pcfg, err, sizeof(err)))) {
        SF_LOGE(w->lg, "sandbox '%s': %s", cfg->sandbox, err);
        return SF_EXIT_BROKEN;
    }
    /* Behind the gateway every connection comes from a gateway: a few
     * addresses holding many (pooled, streams), so the per-address cap is
     * the total one. */
    struct sf_http_limits lim = cfg->e2b_limits;
    if (w->member) lim.max_conns_per_ip = lim.max_conns;
    struct sf_e2b_server_cfg ecfg = { .listen = listen, .domain = cfg->e2b_domain, .api_key = cfg->e2b_api_key,
                                      .prov = w->prov, .lg = w->lg, .max_sandboxes = (int)cfg->e2b_max,
                                      .max_paused = (int)cfg->e2b_max_paused,
                                      .policy = &w->policy, .templates = w->templates,
                                      .secrets = &w->secrets,
                                      .limits = lim, .member = w->member };
    if (sf_e2b_server_start(&ecfg, out, err, sizeof(err)) < 0) {
        SF_LOGE(w->lg, "%s", err);
        return SF_EXIT_BROKEN;
    }
    if (w->member) {
        /* Port 0 (tests): advertise the port actually bound. */
        const char *adv = e2b_member_ingress(w->member);
        size_t n = strlen(adv);
        if (!cfg->e2b_listen && n > 2 && !strcmp(adv + n - 2, ":0")) {
            char *bound = sf_xasprintf("%.*s:%u", (int)(n - 2), adv, sf_e2b_server_port(*out));
            e2b_member_set_ingress(w->member, bound);
            free(bound);
        }
        SF_LOGI(w->lg, "serving E2B sandboxes for the fleet's gateway on port %u (%s)",
                sf_e2b_server_port(*out), listen);
    } else {
        SF_LOGI(w->lg, "serving the E2B API and envd on port %u (%s)%s", sf_e2b_server_port(*out),
                listen, cfg->e2b_api_key ? "" : "; any API key is accepted");
    }
    if (cfg->bf.url) return 0;
    for (;;) {
        struct pollfd pfd = { sfd, POLLIN, 0 };
        struct signalfd_siginfo si;
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return SF_EXIT_BROKEN;
        if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) return 0;
    }
}

/* Open files the worker may need. A running local sandbox holds up to 8
 * here (control socket, root, network namespace, pidfd, three pipes, a
 * broker connection while it completes): the usual soft limit of 1024 stops
 * a worker near 120 slots (docs/operations.md, "A thousand agents on one
 * worker"). The E2B server's sandboxes, running and paused, each hold a few
 * and three per process a client starts in them (stdin, stdout, stderr), as
 * many processes as their pids allow: two sandboxes full of background
 * commands took 1024 whole, and then no sandbox could be made. */
static long worker_want_fds(const struct worker_cfg *cfg, const struct sf_policy *policy)
{
    long want = 8 * cfg->concurrency + 256;
    if (cfg->e2b_listen || cfg->e2b_ingress) {
        struct sf_limits l = { 0 };
        sf_policy_fill(policy, &l, NULL);
        long sandboxes = cfg->e2b_max + (cfg->e2b_max_paused ? cfg->e2b_max_paused : cfg->e2b_max);
        want += sandboxes * (3 * (long)l.pids + 32) + cfg->e2b_limits.max_conns;
    }
    return want;
}

/* sandfleet-worker template import NAME FILE | template list */
static int worker_template_cmd(const struct worker_cfg *cfg, char **args, int n)
{
    char err[1024];
    if (n == 3 && !strcmp(args[0], "import")) {
        if (sf_template_import(cfg->template_store, args[1], args[2], err, sizeof(err)) < 0) {
            fprintf(stderr, "sandfleet-worker: template import: %s\n", err);
            return SF_EXIT_BROKEN;
        }
        printf("template %s imported into %s/%s/rootfs\n", args[1], cfg->template_store, args[1]);
        return 0;
    }
    if (n == 1 && !strcmp(args[0], "list")) {
        struct sf_templates *t = sf_templates_new();
        int rc = sf_templates_load_store(t, cfg->template_store, err, sizeof(err));
        for (size_t i = 0; i < sf_templates_count(t); i++) {
            const char *root;
            sf_templates_find(t, sf_templates_name(t, i), &root);
            printf("%s\t%s\n", sf_templates_name(t, i), root);
        }
        sf_templates_free(t);
        if (rc < 0) fprintf(stderr, "sandfleet-worker: %s\n", err);
        return rc < 0 ? SF_EXIT_BROKEN : 0;
    }
    fprintf(stderr, "usage: sandfleet-worker template import NAME IMAGE.tar   (docker save / podman save)\n"
                    "       sandfleet-worker template list\n"
                    "       [--template-store DIR] (default %s)\n", SF_TEMPLATE_STORE_DEFAULT);
    return SF_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct worker_cfg cfg = {0};
    struct worker w = {0};
    struct worker_e2b e2b_hooks;
    struct sf_log lg;
    struct sf_provider_config pcfg = {0};
    char **pos = NULL, err[1024];
    int npos = 0, code = SF_EXIT_USAGE, sfd = -1;
    sigset_t mask;
    struct sf_e2b_server *e2b = NULL;

    signal(SIGPIPE, SIG_IGN);                /* an agent may close its stdin early */
    sf_log_init(&lg, "worker");
    if (sf_opts_parse(worker_opts, &cfg, argc, argv, 1, &pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-worker: %s\n", err);
        goto out;
    }
    if (cfg.help) { usage(stdout); code = 0; goto out; }
    if (cfg.version) { printf("sandfleet-worker %s\n", SF_VERSION); code = 0; goto out; }
    if (npos && !strcmp(pos[0], "template")) {
        code = worker_template_cmd(&cfg, pos + 1, npos - 1);
        goto out;
    }
    if (npos) { fprintf(stderr, "sandfleet-worker: unexpected argument '%s'\n", pos[0]); goto out; }
    if (sf_log_set_format(&lg, cfg.log_format) < 0 || sf_log_set_level(&lg, cfg.log_level) < 0) {
        fprintf(stderr, "sandfleet-worker: bad --log-format or --log-level\n");
        goto out;
    }
    /* Before any thread; the local sandbox warns when they cannot go. */
    int grc = sf_drop_host_groups(err, sizeof(err));
    if (grc < 0) SF_LOGW(&lg, "supplementary groups kept: setgroups: %s", strerror(-grc));
    if (cfg.e2b_ingress && !cfg.e2b_ingress[0]) {        /* SANDFLEET_E2B_INGRESS="": off */
        free(cfg.e2b_ingress);
        cfg.e2b_ingress = NULL;
    }
    if (!cfg.bf.url && !cfg.e2b_listen && !cfg.e2b_ingress) {
        fprintf(stderr, "sandfleet-worker: --broker (or SANDFLEET_BROKER) or --e2b-listen is required\n");
        goto out;
    }
    if (cfg.worker_id && !sf_valid_key_part(cfg.worker_id, SF_WORKER_ID_MAX)) {
        fprintf(stderr, "sandfleet-worker: --worker-id must be letters, digits, '_', '-', '.', ':'\n");
        goto out;
    }
    if (cfg.secrets_dir && sf_secrets_check_dir(cfg.secrets_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-worker: --secrets-dir: %s\n", err);
        goto out;
    }
    if (cfg.concurrency == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.concurrency = cpus > 0 ? cpus : 1;
    }
    gethostname(w.host, sizeof(w.host) - 1);
    if (cfg.worker_id) {
        sf_strlcpy(w.id, cfg.worker_id, sizeof(w.id));
    } else {
        char rnd[5];
        sf_random_hex(rnd, sizeof(rnd), 4);
        snprintf(w.id, sizeof(w.id), "%s-%d-%s", w.host, (int)getpid(), rnd);
    }
    w.cfg = &cfg;
    w.lg = &lg;
    w.started_ms = sf_wall_ms();
    w.secrets.dir = cfg.secrets_dir;
    w.ecfg.worker = w.id;
    w.ecfg.output_cap = (size_t)cfg.output_cap;
    w.policy = (struct sf_policy){
        .max = { .memory_mb = cfg.max_memory_mb, .pids = cfg.max_pids, .disk_mb = cfg.max_disk_mb,
                 .cpu_s = cfg.max_cpu_s },
        .max_timeout_s = cfg.max_timeout_s,
        .no_network = cfg.no_network,
    };
    w.ecfg.policy = &w.policy;
    long want_fds = worker_want_fds(&cfg, &w.policy), have_fds = sf_raise_nofile(want_fds);
    if (have_fds < want_fds)
        SF_LOGW(&lg, "--concurrency %ld%s wants about %ld open files, the hard limit allows %ld: "
                "raise it (ulimit -Hn, systemd LimitNOFILE=) or sandboxes will fail with EMFILE",
                cfg.concurrency, cfg.e2b_listen || cfg.e2b_ingress ? " with the E2B server's "
                "sandboxes and processes" : "", want_fds, have_fds);
    w.templates = sf_templates_new();
    for (size_t i = 0; i < cfg.templates.n; i++)
        if (sf_templates_add_spec(w.templates, cfg.templates.v[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "sandfleet-worker: %s\n", err);
            goto out;
        }
    if (sf_templates_load_store(w.templates, cfg.template_store, err, sizeof(err)) < 0)
        fprintf(stderr, "sandfleet-worker: warning: %s\n", err);
    w.ecfg.templates = w.templates;
    /* At most one warm agent per slot (warm.h). */
    w.ecfg.warm = sf_warm_pool_new((size_t)cfg.concurrency, cfg.warm_idle_s * 1000);
    w.ecfg.secrets = &w.secrets;
    w.inflight = sf_xcalloc((size_t)cfg.concurrency, sizeof(struct wjob *));
    pthread_mutex_init(&w.jobs_mu, NULL);
    worker_obs_init(&w.obs, cfg.bf.queue, cfg.sandbox, cfg.concurrency, cfg.healthz_stale_s * 1000);

    /* Signals arrive through a signalfd; block them before any thread starts
     * so pool threads inherit the mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) { SF_LOGE(&lg, "signalfd: %s", strerror(errno)); code = SF_EXIT_BROKEN; goto out; }

    pcfg.e2b_template = cfg.e2b_template;
    pcfg.egress_allow = (const char *const *)cfg.egress_allow.v;
    pcfg.egress_deny = (const char *const *)cfg.egress_deny.v;
    pcfg.egress_dns = (const char *const *)cfg.egress_dns.v;
    pcfg.log = &lg;
    /* The E2B server runs beside the pull loop when --broker is given too. */
    if (cfg.e2b_listen || cfg.e2b_ingress) {
        if ((code = worker_e2b_start(&w, &pcfg, &e2b, sfd)) != 0 || !cfg.bf.url) goto out;
        w.e2b_srv = e2b;
        e2b_hooks = (struct worker_e2b){ .arg = &w, .drain = e2b_drain, .alive = e2b_alive };
        if (w.member) {
            e2b_hooks.beat = e2b_beat;
            e2b_hooks.fd = e2b_fd;
            e2b_hooks.flush = e2b_flush;
        }
        w.e2b = &e2b_hooks;
        code = SF_EXIT_USAGE;
    }

    /* Before the broker: /healthz answers (and /readyz says 503) while
     * we wait for Redis. */
    if (cfg.http && worker_obs_listen(&w.obs, cfg.http, &cfg.http_limits, &lg, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        code = SF_EXIT_BROKEN;
        goto out;
    }
    if (cfg.http) SF_LOGI(&lg, "metrics and health on http://%s (port %d)", cfg.http, sf_http_port(w.obs.http));

    struct sf_broker_cfg bcfg = {
        .consumer = w.id, .lease_ms = cfg.lease_ms,
        .claim_check_bytes = (size_t)cfg.claim_check, .log = &lg,
        .priority_aging_ms = cfg.priority_aging_s * 1000,
        .on_reconnect = worker_obs_reconnected, .on_reconnect_arg = &w.obs,
    };
    /* The broker not up yet is normal in a fleet (containers start in any
     * order): wait for it, saying why, until it comes or we are told to stop. */
    struct start_wait sw = { .w = &w, .sfd = sfd };
    int rc = sf_broker_open(&cfg.bf, &bcfg, -1, start_wait_stop, &sw, &w.b, err, sizeof(err));
    if (rc < 0) {
        SF_LOGE(&lg, "%s", err);
        code = sw.signalled ? SF_EXIT_FAILED : rc == -EINVAL ? SF_EXIT_USAGE : SF_EXIT_BROKEN;
        goto out;
    }
    sf_health_set_connected(&w.obs.health, 1);
    if (!w.prov && !(w.prov = sf_sandbox_provider_new(cfg.sandbox, &pcfg, err, sizeof(err)))) {
        SF_LOGE(&lg, "sandbox '%s': %s", cfg.sandbox, err);
        code = SF_EXIT_BROKEN;
        goto out;
    }
    if (!(w.pool = sf_pool_new((size_t)cfg.concurrency, worker_slot_work, &w))) {
        SF_LOGE(&lg, "cannot start %ld threads: %s", cfg.concurrency, strerror(errno));
        code = SF_EXIT_BROKEN;
        goto out;
    }
    if (worker_callbacks_start(&w, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "%s", err);
        code = SF_EXIT_USAGE;
        goto out;
    }
    code = worker_loop(&w, sfd);
    if (code != 0) {
        /* Stopping hard: pool threads may be inside a sandbox run; do not
         * join them. Their deliveries come back through the leases. */
        fflush(NULL);
        _exit(code);
    }
out:
    sf_e2b_server_stop(e2b);
    e2b_member_free(w.member);
    sf_pool_free(w.pool, NULL);
    sf_warm_pool_free(w.ecfg.warm);
    sf_sandbox_provider_free(w.prov);
    worker_callbacks_stop(&w);
    sf_broker_free(w.b);
    worker_obs_free(&w.obs);
    free(w.inflight);
    sf_templates_free(w.templates);
    if (sfd >= 0) close(sfd);
    free(pos);
    sf_opts_free(worker_opts, &cfg);
    return code;
}
