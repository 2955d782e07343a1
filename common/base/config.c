/* common/base/config.c: see config.h. */
#include "config.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#define SECRET_FILE_MAX (1u << 20)
#define CONFIG_FILE_MAX (1u << 20)

static int set_value(const struct sf_opt *o, void *cfg, const char *val, const char *from,
                     char *err, size_t errlen)
{
    char *end;
    void *dst = (char *)cfg + o->offset;
    switch (o->type) {
    case SF_OPT_STR:
        free(*(char **)dst);
        *(char **)dst = sf_xstrdup(val);
        return 0;
    case SF_OPT_LIST: {
        struct sf_strlist *l = dst;
        l->v = sf_xrealloc(l->v, (l->n + 2) * sizeof(char *));
        l->v[l->n++] = sf_xstrdup(val);
        l->v[l->n] = NULL;
        return 0;
    }
    case SF_OPT_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || ((o->min || o->max) && (v < o->min || v > o->max))) {
            if (o->min || o->max)
                sf_errf(err, errlen, "%s: '%s' must be an integer from %ld to %ld", from, val,
                        o->min, o->max);
            else
                sf_errf(err, errlen, "%s: '%s' is not an integer", from, val);
            return -EINVAL;
        }
        *(long *)dst = v;
        return 0;
    }
    case SF_OPT_DOUBLE: {
        double v = strtod(val, &end);
        /* strtod also takes "inf" and "nan", which no setting means. */
        if (end == val || *end || !isfinite(v) || v < 0) {
            sf_errf(err, errlen, "%s: '%s' is not a non-negative number", from, val);
            return -EINVAL;
        }
        if ((o->min || o->max) && (v < (double)o->min || v > (double)o->max)) {
            sf_errf(err, errlen, "%s: '%s' must be a number from %ld to %ld", from, val, o->min,
                    o->max);
            return -EINVAL;
        }
        *(double *)dst = v;
        return 0;
    }
    case SF_OPT_BOOL:
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on"))
            *(int *)dst = 1;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") ||
                 !strcmp(val, "off") || !*val)
            *(int *)dst = 0;
        else {
            sf_errf(err, errlen, "%s: '%s' is not a boolean", from, val);
            return -EINVAL;
        }
        return 0;
    }
    return -EINVAL;
}

/* A secret's value from a file: the content without its trailing newline,
 * or for a repeatable flag one value per line (blank and # lines skipped). */
static int set_from_file(const struct sf_opt *o, void *cfg, const char *path, const char *from,
                         char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    int rc = sf_read_file(path, SECRET_FILE_MAX, &data, &len);
    if (rc < 0) {
        sf_errf(err, errlen, "%s: cannot read '%s': %s", from, path, strerror(-rc));
        return rc;
    }
    if (o->type == SF_OPT_LIST) {
        char *save = NULL;
        for (char *line = strtok_r(data, "\r\n", &save); line && rc == 0;
             line = strtok_r(NULL, "\r\n", &save))
            if (*line && *line != '#') rc = set_value(o, cfg, line, from, err, errlen);
    } else {
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r')) data[--len] = '\0';
        rc = set_value(o, cfg, data, from, err, errlen);
    }
    explicit_bzero(data, len);
    free(data);
    return rc;
}

/* The entry called name[0..nlen) — or, for a secret, name-file (*file set). */
static const struct sf_opt *find(const struct sf_opt *table, const char *name, size_t nlen,
                                 bool *file)
{
    *file = false;
    for (const struct sf_opt *o = table; o->name; o++) {
        size_t l = strlen(o->name);
        if (l == nlen && !strncmp(o->name, name, nlen)) return o;
        if ((o->flags & SF_OPT_SECRET) && nlen == l + 5 && !strncmp(o->name, name, l) &&
            !strncmp(name + l, "-file", 5)) {
            *file = true;
            return o;
        }
    }
    return NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

static int load_config(const struct sf_opt *table, void *cfg, const char *path, char *err,
                       size_t errlen)
{
    char *data = NULL, from[300];
    size_t len = 0;
    int rc = sf_read_file(path, CONFIG_FILE_MAX, &data, &len), lineno = 0;
    if (rc < 0) {
        sf_errf(err, errlen, "config file '%s': %s", path, strerror(-rc));
        return rc;
    }
    for (char *line = data, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *s = trim(line), *eq;
        if (!*s || *s == '#') continue;
        snprintf(from, sizeof(from), "%s:%d", path, lineno);
        if (!(eq = strchr(s, '='))) {
            sf_errf(err, errlen, "%s: expected 'name = value'", from);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        bool file;
        const struct sf_opt *o = find(table, key, strlen(key), &file);
        if (!o) {
            sf_errf(err, errlen, "%s: unknown setting '%s' (the flags of --help, without --)",
                    from, key);
            rc = -EINVAL;
            break;
        }
        snprintf(from, sizeof(from), "%s:%d: %s", path, lineno, key);
        rc = file ? set_from_file(o, cfg, val, from, err, errlen)
                  : set_value(o, cfg, val, from, err, errlen);
    }
    explicit_bzero(data, len);
    free(data);
    return rc;
}

/* --config FILE from argv (the last one wins), else SANDFLEET_CONFIG. */
static const char *config_path(int argc, char **argv, int first)
{
    const char *path = getenv("SANDFLEET_CONFIG");
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9)) path = argv[i] + 9;
    }
    return path && *path ? path : NULL;
}

void sf_opt_mask_secret(char *s, bool item)
{
    char *scheme = strstr(s, "://"), *p = s;
    if (item) {
        /* A KEY=VALUE or NAME:VALUE item of a repeatable flag: its value. */
        char *sep = strpbrk(s, "=:");
        for (p = sep ? sep + 1 : s; *p; p++)
            if (*p != ' ') *p = '*';
        return;
    }
    if (scheme) {
        /* As sf_redact_url: the password is between the userinfo's ':' (or
         * the start, for a bare "secret@") and the last '@' before the path. */
        char *start = scheme + 3, *slash = strchr(start, '/'), *at = NULL;
        for (char *q = start; *q && (!slash || q < slash); q++)
            if (*q == '@') at = q;
        if (!at) return;
        char *colon = memchr(start, ':', (size_t)(at - start));
        for (p = colon ? colon + 1 : start; p < at; p++) *p = '*';
        return;
    }
    /* A plain value (an API key): all of it, '=' and ':' included — a
     * base64 key ends in '=', and what follows the first one is not all. */
    for (; *p; p++) *p = '*';
}

static int parse_env(const struct sf_opt *table, void *cfg, char *err, size_t errlen)
{
    char name[128];
    int rc;
    for (const struct sf_opt *o = table; o->name; o++) {
        if (!o->env) continue;
        const char *v = getenv(o->env);
        if (v && (rc = set_value(o, cfg, v, o->env, err, errlen)) < 0) return rc;
        if (!(o->flags & SF_OPT_SECRET)) continue;
        snprintf(name, sizeof(name), "%s_FILE", o->env);
        if ((v = getenv(name)) && *v && (rc = set_from_file(o, cfg, v, name, err, errlen)) < 0)
            return rc;
    }
    return 0;
}

int sf_opts_parse(const struct sf_opt *table, void *cfg, int argc, char **argv, int first,
                  char ***pos, int *npos, char *err, size_t errlen)
{
    const struct sf_opt *o;
    const char *cfile = config_path(argc, argv, first);
    int rc;
    *pos = sf_xcalloc((size_t)argc + 1, sizeof(char *));
    *npos = 0;
    for (o = table; o->name; o++)
        if (o->def && (rc = set_value(o, cfg, o->def, o->name, err, errlen)) < 0) return rc;
    if (cfile && (rc = load_config(table, cfg, cfile, err, errlen)) < 0) return rc;
    if ((rc = parse_env(table, cfg, err, errlen)) < 0) return rc;
    bool only_pos = false;
    for (int i = first; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] != '-' || !a[2]) {
            if (!only_pos && !strcmp(a, "--")) { only_pos = true; continue; }
            (*pos)[(*npos)++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        char *eq = strchr(name, '='), from[80];
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        bool file;
        if (nlen == 6 && !strncmp(name, "config", 6)) {    /* read above */
            if (!eq) i++;
            continue;
        }
        if (!(o = find(table, name, nlen, &file))) {
            sf_errf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            return -EINVAL;
        }
        char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (o->type == SF_OPT_BOOL && !file) val = "1";
            else if (i + 1 < argc) val = argv[++i];
            else {
                sf_errf(err, errlen, "option '--%.*s' needs a value", (int)nlen, name);
                return -EINVAL;
            }
        }
        snprintf(from, sizeof(from), "--%.*s", (int)nlen, name);
        rc = file ? set_from_file(o, cfg, val, from, err, errlen)
                  : set_value(o, cfg, val, from, err, errlen);
        if (rc < 0) return rc;
        if ((o->flags & SF_OPT_SECRET) && !file) sf_opt_mask_secret(val, o->type == SF_OPT_LIST);
    }
    return 0;
}

void sf_opts_usage(const struct sf_opt *table, FILE *out)
{
    for (const struct sf_opt *o = table; o->name; o++) {
        char left[96];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(out, "  %-30s %s", left, o->help);
        if (o->def && *o->def) fprintf(out, " (default %s)", o->def);
        if (o->env) fprintf(out, " [%s]", o->env);
        if (o->flags & SF_OPT_SECRET)
            fprintf(out, "; secret: also --%s-file FILE%s%s%s", o->name, o->env ? " [" : "",
                    o->env ? o->env : "", o->env ? "_FILE]" : "");
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "--config FILE",
          "settings from FILE, one 'name = value' per line; flags and the environment win "
            "over it [SANDFLEET_CONFIG]");
}

void sf_opts_free(const struct sf_opt *table, void *cfg)
{
    for (const struct sf_opt *o = table; o->name; o++) {
        void *dst = (char *)cfg + o->offset;
        if (o->type == SF_OPT_STR) {
            free(*(char **)dst);
            *(char **)dst = NULL;
        } else if (o->type == SF_OPT_LIST) {
            struct sf_strlist *l = dst;
            for (size_t i = 0; i < l->n; i++) free(l->v[i]);
            free(l->v);
            l->v = NULL;
            l->n = 0;
        }
    }
}
