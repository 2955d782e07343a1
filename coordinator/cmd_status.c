/* coordinator/cmd_status.c: `sandfleet-coordinator status`: one look at a
 * queue — depth, in flight, delayed retries, dead letters with their last
 * reasons, the workers' registry with heartbeat ages, runs in progress.
 * The same document feeds `--json` and serve's /api/status, so the text
 * table is only a rendering of it. */
#include "cmd.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct status_cfg {
    struct sf_broker_flags bf;
    char *log_level;
    long lease_ms, recent;
    int json, help;
};

#define O(f) offsetof(struct status_cfg, f)
static const struct sf_opt status_opts[] = {
    SF_BROKER_OPTS(struct status_cfg, bf),
    { "lease-ms", "SANDFLEET_LEASE_MS", SF_OPT_INT, O(lease_ms), "30000", "MS",
      "the fleet's lease: workers silent for 3 leases are shown as not live", 100, 86400000 },
    { "recent", NULL, SF_OPT_INT, O(recent), "5", "N", "dead letters to show with their reasons", 0, 1000 },
    { "json", NULL, SF_OPT_BOOL, O(json), "0", NULL, "print the status document as JSON", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "warn", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

int coord_status_collect(struct sf_broker *b, int64_t lease_ms, size_t n_recent_dead,
                         json_t **out, char *err, size_t errlen)
{
    struct sf_queue_stats st;
    json_t *doc = NULL, *workers = NULL, *runs = NULL, *dead = NULL, *gates = NULL, *live_runs, *v;
    size_t i;
    int rc;
    *out = NULL;
    if ((rc = b->ops->stats(b, &st, err, errlen)) < 0) return rc;
    if ((rc = sf_broker_workers(b, &workers, err, errlen)) < 0) goto out;
    if ((rc = sf_broker_runs(b, &runs, err, errlen)) < 0) goto out;
    if ((rc = sf_broker_dead_list(b, n_recent_dead, &dead, err, errlen)) < 0) goto out;
    if ((rc = sf_broker_gates(b, &gates, err, errlen)) < 0) goto out;
    json_array_foreach(workers, i, v) {
        json_int_t age = json_integer_value(json_object_get(v, "heartbeat_age_ms"));
        json_object_set_new(v, "live", json_boolean(age < 3 * lease_ms));
    }
    json_array_foreach(dead, i, v) json_object_del(v, "task");   /* raw bytes: `dead list` */
    live_runs = json_array();
    json_array_foreach(runs, i, v)
        if (!strcmp(json_string_value(json_object_get(v, "status")) ?: "", "running"))
            json_array_append(live_runs, v);
    doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:{s:I, s:O}, s:O, s:o, s:O}",
                    "broker", b->url_redacted, "queue", b->cfg.queue,
                    "depth", (json_int_t)st.depth, "waiting", (json_int_t)(st.depth - st.pending),
                    "in_flight", (json_int_t)st.pending, "delayed", (json_int_t)st.delayed,
                    "dead", "count", (json_int_t)st.dead, "recent", dead,
                    "workers", workers, "runs", live_runs, "gates", gates);
    *out = doc;
out:
    json_decref(workers);
    json_decref(runs);
    json_decref(dead);
    json_decref(gates);
    return rc;
}

static void fmt_time(json_int_t ms, char *buf, size_t n)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static json_int_t ji(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

static void print_text(json_t *d, FILE *f)
{
    json_t *dead = json_object_get(d, "dead"), *v;
    size_t i, live = 0;
    char when[32];
    fprintf(f, "queue %s on %s\n", js(d, "queue"), js(d, "broker"));
    fprintf(f, "  depth %lld  (waiting %lld, in flight %lld)   delayed retries %lld   dead letters %lld\n",
            ji(d, "depth"), ji(d, "waiting"), ji(d, "in_flight"), ji(d, "delayed"), ji(dead, "count"));
    if (json_array_size(json_object_get(dead, "recent"))) {
        fprintf(f, "\nlast dead letters:\n  %-20s %-20s %-28s %s\n", "ID", "TIME", "TASK", "REASON");
        json_array_foreach(json_object_get(dead, "recent"), i, v) {
            fmt_time(ji(v, "time_ms"), when, sizeof(when));
            fprintf(f, "  %-20s %-20s %-28.28s %.120s\n", js(v, "id"), when, js(v, "task_id"), js(v, "reason"));
        }
    }
    json_array_foreach(json_object_get(d, "workers"), i, v) live += json_is_true(json_object_get(v, "live"));
    fprintf(f, "\nworkers: %zu live\n", live);
    if (json_array_size(json_object_get(d, "workers")))
        fprintf(f, "  %-28s %-16s %5s %5s %10s %8s %8s\n", "ID", "HOST", "SLOTS", "BUSY", "HEARTBEAT", "DONE", "FAILED");
    json_array_foreach(json_object_get(d, "workers"), i, v) {
        char age[32];
        snprintf(age, sizeof(age), "%.1fs ago", (double)ji(v, "heartbeat_age_ms") / 1000.0);
        fprintf(f, "  %-28.28s %-16.16s %5lld %5lld %10s %8lld %8lld%s\n", js(v, "id"), js(v, "host"),
                ji(v, "concurrency"), ji(v, "busy"), age, ji(v, "done"), ji(v, "failed"),
                json_is_true(json_object_get(v, "live")) ? "" : "  (not live)");
        json_t *sec = json_object_get(v, "secrets"), *name;
        size_t k;
        if (json_array_size(sec)) {
            fprintf(f, "  %-28s secrets:", "");
            json_array_foreach(sec, k, name) fprintf(f, " %s", json_string_value(name));
            fputc('\n', f);
        }
    }
    json_t *gates = json_object_get(d, "gates");
    if (json_array_size(gates)) {
        fprintf(f, "\ngates (every queue):\n");
        json_array_foreach(gates, i, v) {
            if (json_object_get(v, "limit"))
                fprintf(f, "  %-32.32s running %lld of %lld, %lld waiting\n", js(v, "gate"), ji(v, "running"),
                        ji(v, "limit"), ji(v, "waiting"));
            else
                fprintf(f, "  %-32.32s %g/s, burst %lld, %.1f tokens, %lld waiting\n", js(v, "gate"),
                        json_number_value(json_object_get(v, "per_s")), ji(v, "burst"),
                        json_number_value(json_object_get(v, "tokens")), ji(v, "waiting"));
        }
    }
    fprintf(f, "\nruns in progress: %zu\n", json_array_size(json_object_get(d, "runs")));
    if (json_array_size(json_object_get(d, "runs")))
        fprintf(f, "  %-32s %-24s %-20s %s\n", "RUN", "WORKFLOW", "STARTED", "LAST UPDATE");
    json_array_foreach(json_object_get(d, "runs"), i, v) {
        char upd[32];
        fmt_time(strtoll(js(v, "started_at"), NULL, 10), when, sizeof(when));
        fmt_time(strtoll(js(v, "updated_at"), NULL, 10), upd, sizeof(upd));
        fprintf(f, "  %-32s %-24s %-20s %s\n", js(v, "run_id"), js(v, "workflow"), when,
                strcmp(js(v, "updated_at"), "-") ? upd : "-");
    }
}

int coord_cmd_status(int argc, char **argv)
{
    struct status_cfg cfg = {0};
    struct sf_log lg;
    struct sf_broker *b = NULL;
    json_t *doc = NULL;
    char **pos = NULL, err[1024];
    int npos = 0, code = SF_EXIT_USAGE;

    sf_log_init(&lg, "coordinator");
    if (sf_opts_parse(status_opts, &cfg, argc, argv, 2, &pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator status: %s\n", err);
        goto out;
    }
    if (cfg.help) {
        printf("usage: sandfleet-coordinator status --broker URL [--queue Q] [--json]\n\n"
               "Queue depth, in-flight and delayed tasks, dead letters with their last reasons,\n"
               "live workers and runs in progress.\n\noptions:\n");
        sf_opts_usage(status_opts, stdout);
        code = 0;
        goto out;
    }
    if (npos || !cfg.bf.url || sf_log_set_level(&lg, cfg.log_level) < 0) {
        fprintf(stderr, "sandfleet-coordinator status: --broker URL is required (see --help)\n");
        goto out;
    }
    struct sf_broker_cfg bcfg = { .lease_ms = cfg.lease_ms, .log = &lg };
    int rc = sf_broker_open(&cfg.bf, &bcfg, 5000, NULL, NULL, &b, err, sizeof(err));
    if (rc == 0) rc = coord_status_collect(b, cfg.lease_ms, (size_t)cfg.recent, &doc, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "sandfleet-coordinator status: %s\n", err);
        code = rc == -EINVAL && !b ? SF_EXIT_USAGE : SF_EXIT_BROKEN;
        goto out;
    }
    if (cfg.json) {
        char *s = json_dumps(doc, JSON_INDENT(2));
        puts(s);
        free(s);
    } else {
        print_text(doc, stdout);
    }
    code = 0;
out:
    json_decref(doc);
    sf_broker_free(b);
    free(pos);
    sf_opts_free(status_opts, &cfg);
    return code;
}
