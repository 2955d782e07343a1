/* coordinator/cmd_dead.c: `sandfleet-coordinator dead list|retry|purge`:
 * look at dead letters, replay chosen ones (back to the queue with attempt
 * 1, atomically removed from the dead stream), or drop them. Retry and
 * purge act only on what is named: --id (repeatable) or --all, never on a
 * default, because both change the fleet's state. */
#include "cmd.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dead_cfg {
    struct sf_broker_flags bf;
    char *log_level;
    struct sf_strlist ids;
    long count;
    int all, json, help;
};

#define O(f) offsetof(struct dead_cfg, f)
static const struct sf_opt dead_opts[] = {
    SF_BROKER_OPTS(struct dead_cfg, bf),
    { "id", NULL, SF_OPT_LIST, O(ids), NULL, "ID", "a dead letter's id (repeatable); see `dead list`", 0, 0 },
    { "all", NULL, SF_OPT_BOOL, O(all), "0", NULL, "every dead letter of the queue", 0, 0 },
    { "count", NULL, SF_OPT_INT, O(count), "20", "N", "list: the newest N (0 = all)", 0, 10000000 },
    { "json", NULL, SF_OPT_BOOL, O(json), "0", NULL, "print JSON", 0, 0 },
    { "log-level", "SANDFLEET_LOG_LEVEL", SF_OPT_STR, O(log_level), "warn", "LEVEL", "debug, info, warn or error", 0, 0 },
    { "help", NULL, SF_OPT_BOOL, O(help), "0", NULL, "show this help", 0, 0 },
    { NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0 },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sandfleet-coordinator dead list  --broker URL [--queue Q] [--count N | --all] [--json]\n"
               "       sandfleet-coordinator dead retry --broker URL [--queue Q] (--id ID... | --all) [--json]\n"
               "       sandfleet-coordinator dead purge --broker URL [--queue Q] (--id ID... | --all) [--json]\n\n"
               "retry puts each raw task back on the queue with \"attempt\": 1 and removes it from\n"
               "the dead letters in the same atomic step. Exit: 0 done, 1 some ids were not found,\n"
               "2 usage, 3 the broker is unusable.\n\noptions:\n");
    sf_opts_usage(dead_opts, f);
}

static int do_list(struct sf_broker *b, const struct dead_cfg *cfg, char *err, size_t errlen)
{
    json_t *arr = NULL, *v;
    size_t i;
    int rc = sf_broker_dead_list(b, cfg->all ? 0 : (size_t)cfg->count, &arr, err, errlen);
    if (rc < 0) return rc;
    if (cfg->json) {
        char *s = json_dumps(arr, JSON_INDENT(2));
        puts(s);
        free(s);
    } else {
        printf("%-20s %-20s %-28s %s\n", "ID", "TIME", "TASK", "REASON");
        json_array_foreach(arr, i, v) {
            time_t s = (time_t)(json_integer_value(json_object_get(v, "time_ms")) / 1000);
            struct tm tm;
            char when[32];
            gmtime_r(&s, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            const char *tid = json_string_value(json_object_get(v, "task_id"));
            printf("%-20s %-20s %-28.28s %s\n", json_string_value(json_object_get(v, "id")), when,
                   tid ? tid : "(not a task)", json_string_value(json_object_get(v, "reason")));
        }
    }
    json_decref(arr);
    return 0;
}

int coord_cmd_dead(int argc, char **argv)
{
    struct dead_cfg cfg = {0};
    struct sf_log lg;
    struct sf_broker *b = NULL;
    char **pos = NULL, err[1024];
    const char *verb;
    int npos = 0, code = SF_EXIT_USAGE, rc = 0;
    size_t n = 0;

    sf_log_init(&lg, "coordinator");
    if (sf_opts_parse(dead_opts, &cfg, argc, argv, 2, &pos, &npos, err, sizeof(err)) < 0) {
        fprintf(stderr, "sandfleet-coordinator dead: %s\n", err);
        goto out;
    }
    if (cfg.help) { usage(stdout); code = 0; goto out; }
    struct coord_admin adm = { "dead", &cfg.bf, cfg.log_level, cfg.all, cfg.ids.n, 5000 };
    if ((code = coord_admin_open(&adm, pos, npos, &lg, &verb, &b))) goto out;
    code = SF_EXIT_BROKEN;
    const char *const *ids = (const char *const *)cfg.ids.v;
    if (!strcmp(verb, "list")) rc = do_list(b, &cfg, err, sizeof(err));
    else if (!strcmp(verb, "retry")) rc = sf_broker_dead_retry(b, ids, cfg.all ? 0 : cfg.ids.n, &n, err, sizeof(err));
    else rc = sf_broker_dead_purge(b, ids, cfg.all ? 0 : cfg.ids.n, &n, err, sizeof(err));
    if (rc < 0 && rc != -ENOENT) {
        fprintf(stderr, "sandfleet-coordinator dead %s: %s\n", verb, err);
        goto out;
    }
    if (strcmp(verb, "list")) {
        if (cfg.json) printf("{\"%s\": %zu}\n", !strcmp(verb, "retry") ? "replayed" : "purged", n);
        else printf("%s %zu dead letter(s) of queue %s\n", !strcmp(verb, "retry") ? "replayed" : "purged",
                    n, b->cfg.queue);
    }
    if (rc == -ENOENT) fprintf(stderr, "sandfleet-coordinator dead %s: %s\n", verb, err);
    code = rc == -ENOENT ? SF_EXIT_FAILED : 0;
out:
    sf_broker_free(b);
    free(pos);
    sf_opts_free(dead_opts, &cfg);
    return code;
}
