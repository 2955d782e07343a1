/* coordinator/cmd_callbacks.c: `sandfleet-coordinator callbacks
 * list|retry|purge`: look at pending and dead callback deliveries, replay
 * dead ones (back to pending with a fresh attempt count, due at once,
 * removed from the dead list in the same atomic step), or drop them.
 * Like `dead`, retry and purge act only on what is named (--id or --all).
 * Nothing printed carries a header value or the body: headers may hold
 * tokens, bodies may be large; `--json` shows header names only. */
#include "callbacks.h"
#include "cmd.h"
#include "exitcode.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


struct cbcmd_cfg {
    struct sf_broker_flags bf;
    char *log_level;
    struct sf_strlist ids;
    long count;
    int dead, all, json, help;
};

#define O(f) offsetof(struct cbcmd_cfg, f)
static const struct sf_opt cb_opts[] = {
    SF_BROKER_OPTS(struct cbcmd_cfg, bf),
    { "dead", NULL, SF_OPT_BOOL, O(dead), "0", NULL, "list/purge: the dead list instead of pending deliveries", 0, 0 },
    { "id", NULL, SF_OPT_LIST, O(ids), NULL, "ID", "a delivery id (repeatable), e.g. task:run1:a:0:1 or run:run1", 0, 0 },
    { "all", NULL, SF_OPT_BOOL, O(all), "0", NULL, "every delivery of the list", 0, 0 },
    { "count", NULL, SF_OPT_INT, O(count), "50", "N", "list: at most N (0 = all)", 0, 10000000 },
    { "json", NULL, SF_OPT_BOOL, O(json), "0", NULL, "print JSON", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "warn", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sandfleet-coordinator callbacks list  --broker URL [--queue Q] [--dead] [--count N] [--json]\n"
               "       sandfleet-coordinator callbacks retry --broker URL [--queue Q] (--id ID... | --all)\n"
               "       sandfleet-coordinator callbacks purge --broker URL [--queue Q] [--dead] (--id ID... | --all)\n\n"
               "Pending deliveries are retried by the workers on their own; retry replays dead ones\n"
               "(attempts start again from 1). Exit: 0 done, 1 some ids were not found, 2 usage,\n"
               "3 the broker is unusable.\n\noptions:\n");
    sf_opts_usage(cb_opts, f);
}

/* What may be shown of a record: no header values, no body. */
static json_t *summary(json_t *entry)
{
    const char *text = json_string_value(json_object_get(entry, "record"));
    json_t *rec = text ? json_loads(text, 0, NULL) : NULL, *out = json_object(), *names = json_array();
    const char *k;
    json_t *v;
    char host[256] = "";
    json_object_set(out, "id", json_object_get(entry, "id"));
    if (json_object_get(entry, "due_in_ms")) json_object_set(out, "due_in_ms", json_object_get(entry, "due_in_ms"));
    static const char *const keep[] = { "kind", "run_id", "task_id", "attempts", "created_at", "last_error",
                                        "failed_at", "secret_ref" };
    for (size_t i = 0; rec && i < sizeof(keep) / sizeof(keep[0]); i++)
        if ((v = json_object_get(rec, keep[i]))) json_object_set(out, keep[i], v);
    if (rec && json_is_string(json_object_get(rec, "url")) &&
        sf_callback_url_host(json_string_value(json_object_get(rec, "url")), host, sizeof(host), NULL, NULL) == 0)
        json_object_set_new(out, "host", json_string(host));
    json_object_foreach(json_object_get(rec, "headers"), k, v) json_array_append_new(names, json_string(k));
    json_object_set_new(out, "header_names", names);
    json_decref(rec);
    return out;
}

static void print_table(json_t *arr, bool dead)
{
    size_t i;
    json_t *e;
    printf("%-40s %-8s %-22s %-24s %s\n", "ID", "ATTEMPTS", dead ? "FAILED" : "DUE IN", "HOST", "LAST ERROR");
    json_array_foreach(arr, i, e) {
        char when[32] = "-";
        if (dead && json_object_get(e, "failed_at")) {
            time_t s = (time_t)(json_integer_value(json_object_get(e, "failed_at")) / 1000);
            struct tm tm;
            gmtime_r(&s, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        } else if (!dead) {
            snprintf(when, sizeof(when), "%.1f s", (double)json_integer_value(json_object_get(e, "due_in_ms")) / 1000);
        }
        const char *le = json_string_value(json_object_get(e, "last_error"));
        printf("%-40s %-8lld %-22s %-24s %s\n", json_string_value(json_object_get(e, "id")),
               (long long)json_integer_value(json_object_get(e, "attempts")), when,
               json_string_value(json_object_get(e, "host")) ? json_string_value(json_object_get(e, "host")) : "?",
               le ? le : "");
    }
}

static int do_list(struct sf_broker *b, const struct cbcmd_cfg *cfg, char *err, size_t errlen)
{
    json_t *arr = NULL, *out = json_array(), *e;
    size_t i;
    int rc = sf_broker_callback_list(b, cfg->dead, cfg->all ? 0 : (size_t)cfg->count, &arr, err, errlen);
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    json_array_foreach(arr, i, e) json_array_append_new(out, summary(e));
    if (cfg->json) {
        char *s = json_dumps(out, JSON_INDENT(2));
        puts(s);
        free(s);
    } else {
        print_table(out, cfg->dead);
    }
    json_decref(arr);
    json_decref(out);
    return 0;
}

/* Replay one dead delivery; 1 moved, 0 not there (or unreadable), -errno. */
static int replay(struct sf_broker *b, const char *id, const char *text, char *err, size_t errlen)
{
    char derr[256];
    struct sf_callback_record *rec = sf_callback_record_decode(text, strlen(text), derr, sizeof(derr));
    if (!rec) {
        fprintf(stderr, "callbacks: %s cannot be replayed: %s\n", id, derr);
        return 0;
    }
    rec->attempts = 0;
    rec->failed_at = 0;
    char *s = sf_callback_record_encode(rec);
    int rc = sf_broker_callback_requeue(b, id, s, strlen(s), err, errlen);
    free(s);
    sf_callback_record_free(rec);
    return rc;
}

static int do_retry(struct sf_broker *b, const struct cbcmd_cfg *cfg, size_t *missing, char *err, size_t errlen)
{
    json_t *arr = NULL, *e;
    size_t i, moved = 0;
    int rc = sf_broker_callback_list(b, true, 0, &arr, err, errlen);
    if (rc < 0) return rc;
    for (size_t k = 0; k < (cfg->all ? 1 : cfg->ids.n); k++) {
        bool found = false;
        json_array_foreach(arr, i, e) {
            const char *id = json_string_value(json_object_get(e, "id"));
            if (!cfg->all && strcmp(id, cfg->ids.v[k])) continue;
            found = true;
            rc = replay(b, id, json_string_value(json_object_get(e, "record")), err, errlen);
            if (rc < 0) goto out;
            moved += (size_t)rc;
        }
        if (!found && !cfg->all) {
            fprintf(stderr, "callbacks: no dead delivery '%s'\n", cfg->ids.v[k]);
            (*missing)++;
        }
    }
    printf("%zu callback(s) queued again\n", moved);
    rc = 0;
out:
    json_decref(arr);
    return rc;
}

int coord_cmd_callbacks(int argc, char **argv)
{
    struct cbcmd_cfg cfg = {0};
    struct sf_log lg;
    struct sf_broker *b = NULL;
    char **pos = NULL, err[1024];
    int npos = 0, code = SF_EXIT_USAGE, rc = 0;
    size_t missing = 0;

    sf_log_init(&lg, "coordinator");
    if (sf_opts_parse(cb_opts, &cfg, argc, argv, 2, &pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator callbacks: %s\n", err);
        goto out;
    }
    if (cfg.help) { usage(stdout); code = 0; goto out; }
    const char *verb;
    struct coord_admin adm = { "callbacks", &cfg.bf, cfg.log_level, cfg.all, cfg.ids.n, 10000 };
    if ((code = coord_admin_open(&adm, pos, npos, &lg, &verb, &b))) goto out;
    if (!strcmp(verb, "list")) {
        rc = do_list(b, &cfg, err, sizeof(err));
    } else if (!strcmp(verb, "retry")) {
        rc = do_retry(b, &cfg, &missing, err, sizeof(err));
    } else {
        rc = sf_broker_callback_purge(b, cfg.dead, (const char *const *)cfg.ids.v, cfg.all ? 0 : cfg.ids.n,
                                      err, sizeof(err));
        if (rc >= 0) {
            printf("%d callback(s) removed from the %s list\n", rc, cfg.dead ? "dead" : "pending");
            if (!cfg.all && (size_t)rc < cfg.ids.n) missing = cfg.ids.n - (size_t)rc;
            rc = 0;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "sandfleet-coordinator callbacks %s: %s\n", verb, err);
        code = SF_EXIT_BROKEN;
        goto out;
    }
    code = missing ? SF_EXIT_FAILED : 0;
out:
    sf_broker_free(b);
    free(pos);
    sf_opts_free(cb_opts, &cfg);
    return code;
}
