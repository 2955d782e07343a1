/* coordinator/main.c: sandfleet-coordinator — run a workflow centrally or
 * through a broker. Exit codes: 0 the workflow succeeded, 1 it failed,
 * 2 bad input or usage (nothing ran), 3 the run itself broke (e.g. the
 * sandbox backend or broker is unusable). Only main() exits. */
#include "cmd.h"
#include "callbacks.h"
#include "coord.h"
#include "run_broker.h"
#include "secrets.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define O(f) offsetof(struct coord_cfg, f)
static const struct sf_opt run_opts[] = {
    { "input", NULL, SF_OPT_STR, O(input), NULL, "FILE|-",
      "JSON input for the steps without needs (replaces their 'input')", 0, 0 },
    { "output", NULL, SF_OPT_STR, O(output), NULL, "FILE", "write the result document here instead of stdout", 0, 0 },
    { "concurrency", "SANDFLEET_CONCURRENCY", SF_OPT_INT, O(concurrency), "0", "N",
      "tasks at once (0 = number of CPUs)", 0, 4096 },
    { "sandbox", "SANDFLEET_SANDBOX", SF_OPT_STR, O(sandbox), "local", "KIND",
      "sandbox backend: local, process (no isolation) or e2b", 0, 0 },
    { "e2b-template", "SANDFLEET_E2B_TEMPLATE", SF_OPT_STR, O(e2b_template), "base", "NAME",
      "template of E2B sandboxes for --sandbox e2b (E2B_API_KEY etc. as for the E2B SDK)", 0, 0 },
    SF_BROKER_OPTS(struct coord_cfg, bf),
    { "run-id", "SANDFLEET_RUN_ID", SF_OPT_STR, O(run_id), NULL, "ID",
      "run id (default: generated); with a broker, an existing id of the same --owner resumes that run", 0, 0 },
    { "owner", "SANDFLEET_OWNER", SF_OPT_STR, O(owner), "cli", "NAME",
      "with a broker: the run is claimed as cli:NAME; resuming it (--run-id) needs the same NAME "
      "(docs/security.md)", 0, 0 },
    { "log-format", "SANDFLEET_LOG_FORMAT", SF_OPT_STR, O(log_format), "text", "text|json", "log format on stderr", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "info", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "output-cap", "SANDFLEET_OUTPUT_CAP", SF_OPT_INT, O(output_cap), "16777216", "BYTES",
      "largest agent stdout accepted", 1, 1L << 31 },
    { "retry-base-ms", "SANDFLEET_RETRY_BASE_MS", SF_OPT_INT, O(retry_base_ms), "500", "MS",
      "first retry delay; doubles per attempt, jittered", 1, 3600000 },
    { "max-inflight", "SANDFLEET_MAX_INFLIGHT", SF_OPT_INT, O(max_inflight), "1000", "N",
      "broker mode: tasks published and not yet finished", 1, 1000000 },
    { "callback-url", NULL, SF_OPT_STR, O(callback_url), NULL, "URL",
      "broker mode: POST the run's result document here when it ends (delivered by the workers)", 0, 0 },
    { "callback-secret-ref", NULL, SF_OPT_STR, O(callback_secret_ref), NULL, "NAME",
      "sign run callbacks with the workers' SANDFLEET_SECRET_<NAME>", 0, 0 },
    { "callback-header", "SANDFLEET_CALLBACK_HEADER", SF_OPT_LIST, O(callback_headers), NULL, "NAME:VALUE",
      "extra header on the run's callback (repeatable)", 0, 0, SF_OPT_SECRET },
    { "egress-allow", "SANDFLEET_EGRESS_ALLOW", SF_OPT_LIST, O(egress_allow), NULL, "CIDR|HOST",
      "central runs: sandboxes with network may also reach this block or host name; "
      "repeatable or comma-separated", 0, 0 },
    { "egress-deny", "SANDFLEET_EGRESS_DENY", SF_OPT_LIST, O(egress_deny), NULL, "CIDR",
      "central runs: sandboxes with network may never reach this block; repeatable", 0, 0 },
    { "egress-dns", "SANDFLEET_EGRESS_DNS", SF_OPT_LIST, O(egress_dns), NULL, "IP[:PORT]",
      "central runs: resolver the sandboxes' DNS is forwarded to (default: /etc/resolv.conf)", 0, 0 },
    { "no-network", "SANDFLEET_NO_NETWORK", SF_OPT_BOOL, O(no_network), "0", NULL,
      "central runs: refuse a workflow with network steps", 0, 0 },
    { "priority", "SANDFLEET_PRIORITY", SF_OPT_INT, O(priority), "0", "N",
      "priority of the run's steps without their own, 0..9, higher first (docs/workflows.md)", 0, 9 },
    { "secrets-dir", "SANDFLEET_SECRETS_DIR", SF_OPT_STR, O(secrets_dir), NULL, "DIR",
      "central runs: secrets by name from DIR/NAME (besides SANDFLEET_SECRET_<NAME>)", 0, 0 },
    { "progress", NULL, SF_OPT_BOOL, O(progress), "0", NULL, "draw the progress bar even when stderr is not a terminal", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { "version", NULL, SF_OPT_BOOL, O(version), "0", NULL, "show the version", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: sandfleet-coordinator run WORKFLOW.json [options]\n"
        "       sandfleet-coordinator callbacks list|retry|purge --broker URL [--dead] [--id ID... | --all]\n"
        "       sandfleet-coordinator status --broker URL [--queue Q] [--json]\n"
        "       sandfleet-coordinator dead list|retry|purge --broker URL [--id ID... | --all]\n"
        "       sandfleet-coordinator serve --broker URL [--http HOST:PORT]\n"
        "       (each subcommand takes --help)\n"
        "\n"
        "Runs a workflow of agents, each in its own sandbox. Without --broker the\n"
        "coordinator runs every sandbox itself; with --broker it publishes tasks\n"
        "that sandfleet-worker processes pull.\n"
        "Prints the result document (JSON) on stdout. Exit: 0 succeeded, 1 failed,\n"
        "2 bad input or usage, 3 the run could not be carried out.\n\noptions:\n");
    sf_opts_usage(run_opts, out);
}

static json_t *read_input(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = !strcmp(path, "-") ? json_loadf(stdin, JSON_DECODE_ANY, &je)
                                   : json_load_file(path, JSON_DECODE_ANY, &je);
    if (!j) sf_errf(err, errlen, "--input %s:%d:%d: %s", path, je.line, je.column, je.text);
    return j;
}

static int write_doc(const char *path, json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY);
    FILE *f = path ? fopen(path, "w") : stdout;
    int rc = 0;
    if (!s || !f) {
        rc = -errno;
    } else {
        fputs(s, f);
        fputc('\n', f);
        if (fflush(f) != 0) rc = -errno;
    }
    if (f && f != stdout) fclose(f);
    free(s);
    return rc;
}

/* The run itself, by the executor that fits: centrally a pool of sandboxes
 * or, for a "shared" workflow, one sandbox; through a broker the fleet or,
 * for a "shared" workflow, one worker. *ex: the executor, when one is used. */
static json_t *run_workflow(const struct coord_cfg *cfg, const struct sf_workflow *wf,
                            const char *run_id, json_t *input, const struct sf_log *lg,
                            struct coord_exec **ex, char *err, size_t errlen)
{
    bool shared = wf->sandbox == SF_SANDBOX_SHARED;
    *ex = NULL;
    if (!cfg->bf.url && shared) return coord_run_local_shared(cfg, wf, run_id, input, lg, err, errlen);
    *ex = cfg->bf.url ? coord_exec_broker_new(cfg, wf, run_id, lg, err, errlen)
                      : coord_exec_local_new(cfg, wf, lg, err, errlen);
    if (!*ex) return NULL;
    return shared ? coord_run_bundle(cfg, wf, run_id, input, *ex, lg, err, errlen)
                  : coord_run(cfg, wf, run_id, input, *ex, lg, err, errlen);
}

/* Central runs resolve secrets here: every name must be set before anything
 * runs (a missing one is a usage error, not a failure after hours). */
static int check_secrets(const struct coord_cfg *cfg, const struct sf_workflow *wf)
{
    struct sf_secrets src = { .dir = cfg->secrets_dir };
    struct sf_secret_values sv;
    const char *missing = NULL;
    char err[512];
    int bad = 0;
    if (cfg->secrets_dir && sf_secrets_check_dir(cfg->secrets_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator: --secrets-dir: %s\n", err);
        return -EINVAL;
    }
    for (size_t i = 0; i < wf->n_steps; i++) {
        if (sf_secrets_resolve(&src, wf->steps[i].secrets, &sv, &missing, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: step '%s': %s\n", wf->path, wf->steps[i].id, err);
            bad = 1;
        } else {
            sf_secret_values_clear(&sv);
        }
    }
    return bad ? -ENOENT : 0;
}

static int cmd_run(int argc, char **argv)
{
    struct coord_cfg cfg = {0};
    struct sf_log lg;
    struct sf_buf errs = {0};
    struct sf_workflow *wf = NULL;
    struct coord_exec *ex = NULL;
    json_t *input = NULL, *doc = NULL;
    char **pos = NULL, err[1024], run_id[128];
    int npos = 0, code = SF_EXIT_USAGE;
    struct sf_callback *cb = NULL;

    sf_log_init(&lg, "coordinator");
    if (sf_opts_parse(run_opts, &cfg, argc, argv, 2, &pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator: %s\n", err);
        goto out;
    }
    if (cfg.help) { usage(stdout); code = 0; goto out; }
    if (sf_log_set_format(&lg, cfg.log_format) < 0 || sf_log_set_level(&lg, cfg.log_level) < 0) {
        fprintf(stderr, "sandfleet-coordinator: bad --log-format or --log-level\n");
        goto out;
    }
    if (npos != 1) {
        fprintf(stderr, "sandfleet-coordinator: run takes one workflow file (see --help)\n");
        goto out;
    }
    if (cfg.run_id && !sf_valid_name(cfg.run_id, SF_RUN_ID_MAX)) {
        fprintf(stderr, "sandfleet-coordinator: --run-id must be letters, digits, '_', '-', '.'\n");
        goto out;
    }
    if (cfg.owner && !sf_valid_name(cfg.owner, 64)) {
        fprintf(stderr, "sandfleet-coordinator: --owner must be 1-64 letters, digits, '_', '-', '.'\n");
        goto out;
    }
    if (coord_callback_from_flags(cfg.callback_url, cfg.callback_secret_ref, &cfg.callback_headers,
                                  cfg.bf.url, &cb, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator: %s\n", err);
        goto out;
    }
    if (sf_workflow_load(pos[0], &wf, &errs) < 0) {
        fputs(errs.data ? errs.data : "invalid workflow\n", stderr);
        goto out;
    }
    for (size_t i = 0; !cfg.bf.url && cfg.no_network && i < wf->n_steps; i++)
        if (wf->steps[i].network) {
            fprintf(stderr, "sandfleet-coordinator: step '%s' asks for network, which --no-network "
                    "refuses\n", wf->steps[i].id);
            goto out;
        }
    if (!cfg.bf.url && check_secrets(&cfg, wf) < 0) goto out;
    if (cfg.input && !(input = read_input(cfg.input, err, sizeof(err)))) {
        fprintf(stderr, "sandfleet-coordinator: %s\n", err);
        goto out;
    }
    if (cfg.run_id) {
        sf_strlcpy(run_id, cfg.run_id, sizeof(run_id));
    } else {
        char rnd[9];
        sf_random_hex(rnd, sizeof(rnd), 8);
        snprintf(run_id, sizeof(run_id), "%llx-%s", (unsigned long long)(sf_wall_ms() / 1000), rnd);
    }
    if (!(doc = run_workflow(&cfg, wf, run_id, input, &lg, &ex, err, sizeof(err)))) {
        SF_LOGE(&lg, "run %s: %s", run_id, err);
        code = SF_EXIT_BROKEN;
        goto out;
    }
    if (write_doc(cfg.output, doc) < 0) {
        SF_LOGE(&lg, "writing the result document: %s", strerror(errno));
        code = SF_EXIT_BROKEN;
        goto out;
    }
    code = !strcmp(json_string_value(json_object_get(doc, "status")), "succeeded") ? 0 : SF_EXIT_FAILED;
    if (cfg.bf.url && coord_exec_broker_finish(ex, code ? "failed" : "succeeded", err, sizeof(err)) < 0)
        SF_LOGW(&lg, "run %s: recording the final status: %s", run_id, err);
    if (cb && coord_callback_queue_run_url(&cfg.bf, &lg, cb, run_id, doc, err, sizeof(err)) < 0) {
        SF_LOGE(&lg, "run %s: queueing the run's callback: %s", run_id, err);
        code = SF_EXIT_BROKEN;
    }
out:
    if (ex) ex->free(ex);
    sf_callback_free(cb);
    json_decref(doc);
    json_decref(input);
    sf_workflow_free(wf);
    sf_buf_free(&errs);
    free(pos);
    sf_opts_free(run_opts, &cfg);
    return code;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);                /* an agent may close its stdin early */
    /* Before any thread; the local sandbox warns when they cannot go. */
    char groups[256];
    int grc = sf_drop_host_groups(groups, sizeof(groups));
    if (grc < 0)
        fprintf(stderr, "sandfleet-coordinator: supplementary groups kept: setgroups: %s\n",
                strerror(-grc));
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SF_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sandfleet-coordinator %s\n", SF_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "run")) return cmd_run(argc, argv);
    if (!strcmp(argv[1], "callbacks")) return coord_cmd_callbacks(argc, argv);
    if (!strcmp(argv[1], "status")) return coord_cmd_status(argc, argv);
    if (!strcmp(argv[1], "dead")) return coord_cmd_dead(argc, argv);
    if (!strcmp(argv[1], "serve")) return coord_cmd_serve(argc, argv);
    fprintf(stderr, "sandfleet-coordinator: unknown command '%s' (try --help)\n", argv[1]);
    return SF_EXIT_USAGE;
}
