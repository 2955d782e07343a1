/* common/base/config.h: command-line, environment and config-file settings
 * from one table per daemon (like Redis' createIntConfig / librdkafka's
 * property table). Each entry names the flag, its SANDFLEET_* variable, its
 * type, where it lands in the daemon's config struct, its default and its
 * help line; the table drives parsing, defaults and --help.
 *
 * Sources, later ones win: default < config file < environment < flag.
 * The config file is named by `--config FILE` (or SANDFLEET_CONFIG); every
 * table accepts it. One setting per line, `name = value` with the flag's
 * name without "--" (`max-memory-mb = 2048`); `#` starts a comment line; a
 * repeatable flag may appear on several lines.
 *
 * Secrets (SF_OPT_SECRET): the value may also come from a file, so it need
 * not be on the command line or in the environment: `--NAME-file FILE`,
 * `<ENV>_FILE=FILE`, or `NAME-file = FILE` in the config file (the file's
 * content without its trailing newline; for a repeatable flag, one value per
 * line). A secret given on the command line is masked in argv in place
 * (the password of a URL, the value of a repeatable flag's KEY=VALUE or
 * NAME:VALUE item, else the whole value), so /proc/PID/cmdline and ps do
 * not show it once parsing is done.
 * Thread: main thread, at start-up. */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum sf_opt_type {
    SF_OPT_STR,    /* char *  (malloc'd copy; free with sf_opts_free) */
    SF_OPT_INT,    /* long */
    SF_OPT_DOUBLE, /* double */
    SF_OPT_BOOL,   /* int; flag without value sets 1 */
    SF_OPT_LIST,   /* struct sf_strlist: repeatable flag */
};

#define SF_OPT_SECRET 1u   /* flags: see above */

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
    long min, max;         /* for SF_OPT_INT and SF_OPT_DOUBLE (both 0: unchecked) */
    unsigned flags;        /* SF_OPT_SECRET */
};

/* Set defaults, then the config file, the environment, then argv[first..]
 * (masking secrets in argv). Arguments that are not options are collected in
 * *pos (malloc'd array of borrowed pointers). "--" ends options. Returns 0,
 * or -EINVAL (-errno for an unreadable file) with a message in err. */
int sf_opts_parse(const struct sf_opt *table, void *cfg, int argc, char **argv, int first,
                  char ***pos, int *npos, char *err, size_t errlen);
void sf_opts_usage(const struct sf_opt *table, FILE *out);
void sf_opts_free(const struct sf_opt *table, void *cfg);

/* Mask a secret in place, keeping its length. An item of a repeatable flag
 * (item true): the value of "KEY=VALUE" / "NAME:VALUE", else all of it. A
 * single value: the password of a URL ("redis://u:***@h"), else all of it.
 * Exposed for tests. */
void sf_opt_mask_secret(char *s, bool item);

#endif
