/* common/base/config.c: see config.h. */
#include "config.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

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
        if (end == val || *end || v < 0) {
            sf_errf(err, errlen, "%s: '%s' is not a non-negative number", from, val);
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

int sf_opts_parse(const struct sf_opt *table, void *cfg, int argc, char **argv, int first,
                  char ***pos, int *npos, char *err, size_t errlen)
{
    const struct sf_opt *o;
    int rc;
    for (o = table; o->name; o++)
        if (o->def && (rc = set_value(o, cfg, o->def, o->name, err, errlen)) < 0) return rc;
    for (o = table; o->name; o++) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && (rc = set_value(o, cfg, v, o->env, err, errlen)) < 0) return rc;
    }
    *pos = sf_xcalloc((size_t)argc + 1, sizeof(char *));
    *npos = 0;
    bool only_pos = false;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] != '-' || !a[2]) {
            if (!only_pos && !strcmp(a, "--")) { only_pos = true; continue; }
            (*pos)[(*npos)++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        for (o = table; o->name; o++)
            if (strlen(o->name) == nlen && !strncmp(o->name, name, nlen)) break;
        if (!o->name) {
            sf_errf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            return -EINVAL;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (o->type == SF_OPT_BOOL) val = "1";
            else if (i + 1 < argc) val = argv[++i];
            else {
                sf_errf(err, errlen, "option '--%s' needs a value", o->name);
                return -EINVAL;
            }
        }
        char from[80];
        snprintf(from, sizeof(from), "--%s", o->name);
        if ((rc = set_value(o, cfg, val, from, err, errlen)) < 0) return rc;
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
        fputc('\n', out);
    }
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
