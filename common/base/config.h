/* common/base/config.h: command-line and environment configuration from one table
 * per daemon (like Redis' createIntConfig / librdkafka's property table).
 * Each entry names the flag, its SANDFLEET_* variable, its type, where it
 * lands in the daemon's config struct, its default and its help line; the
 * table drives parsing, defaults and --help. Precedence: flag > environment
 * > default. Thread: main thread, at start-up. */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum sf_opt_type {
    SF_OPT_STR,    /* char *  (malloc'd copy; free with sf_opts_free) */
    SF_OPT_INT,    /* long */
    SF_OPT_DOUBLE, /* double */
    SF_OPT_BOOL,   /* int; flag without value sets 1 */
    SF_OPT_LIST,   /* struct sf_strlist: repeatable flag */
};

struct sf_strlist {
    char **v;
    size_t n;
};

struct sf_opt {
    const char *name;      /* long flag, without "--" */
    const char *env;       /* SANDFLEET_... or NULL */
    enum sf_opt_type type;
    size_t offset;         /* offsetof(struct cfg, field) */
    const char *def;       /* default as text, or NULL */
    const char *metavar;   /* for --help */
    const char *help;
    long min, max;         /* for SF_OPT_INT (both 0: unchecked) */
};

/* Set defaults, then environment, then argv[first..]. Arguments that are not
 * options are collected in *pos (malloc'd array of borrowed pointers).
 * "--" ends options. Returns 0, or -EINVAL with a message in err. */
int sf_opts_parse(const struct sf_opt *table, void *cfg, int argc, char **argv, int first,
                  char ***pos, int *npos, char *err, size_t errlen);
void sf_opts_usage(const struct sf_opt *table, FILE *out);
void sf_opts_free(const struct sf_opt *table, void *cfg);

#endif
