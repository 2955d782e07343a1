/* common/sandbox/template.c: see template.h. */
#include "template.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SF_TEMPLATE_NAME_LEN 64

struct sf_tpl {
    char *name, *root;
};

struct sf_templates {
    struct sf_tpl *v;
    size_t n;
};

struct sf_templates *sf_templates_new(void)
{
    return sf_xcalloc(1, sizeof(struct sf_templates));
}

void sf_templates_free(struct sf_templates *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].root);
    }
    free(t->v);
    free(t);
}

/* A root file system has a shell: bin/sh, followed inside the root when
 * it is a symlink (usr-merged: bin -> usr/bin, sh -> dash). */
static bool sf_tpl_has_shell(const char *root)
{
    char path[PATH_MAX + 16];
    const char *cands[] = { "bin/sh", "usr/bin/sh" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", root, cands[i]);
        struct stat st;
        if (lstat(path, &st) == 0 && (S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && (st.st_mode & 0111))))
            return true;
    }
    return false;
}

int sf_templates_add(struct sf_templates *t, const char *name, const char *dir, char *err,
                     size_t errlen)
{
    char real[PATH_MAX];
    struct stat st;
    if (!name || !sf_valid_name(name, SF_TEMPLATE_NAME_LEN)) {
        sf_errf(err, errlen, "template name '%s': letters, digits, '_', '-', '.' (at most %d)",
                name ? name : "", SF_TEMPLATE_NAME_LEN);
        return -EINVAL;
    }
    if (!dir || !realpath(dir, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        sf_errf(err, errlen, "template %s: %s is not a directory", name, dir ? dir : "");
        return -EINVAL;
    }
    if (!strcmp(real, "/")) {
        sf_errf(err, errlen, "template %s: the host's own / is not a template", name);
        return -EINVAL;
    }
    /* The sandboxes bind it as their own unprivileged ids: every directory
     * on the way must let others through. */
    char walk[PATH_MAX];
    sf_strlcpy(walk, real, sizeof(walk));
    for (char *slash; (slash = strrchr(walk, '/')); *slash = '\0') {
        struct stat ws;
        if (stat(walk[0] ? walk : "/", &ws) == 0 && S_ISDIR(ws.st_mode) && !(ws.st_mode & S_IXOTH)) {
            sf_errf(err, errlen, "template %s: %s (mode %04o) is not searchable by others, so the "
                    "sandboxes' unprivileged ids cannot reach %s: chmod o+x it", name,
                    walk[0] ? walk : "/", (unsigned)(ws.st_mode & 07777), real);
            return -EINVAL;
        }
        if (slash == walk) break;
    }
    if (!sf_tpl_has_shell(real)) {
        sf_errf(err, errlen, "template %s: %s has no bin/sh: it is not a root file system "
                "(docs/e2b.md, Templates, says how to make one)", name, real);
        return -EINVAL;
    }
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].name, name)) {
            sf_errf(err, errlen, "template %s is given twice", name);
            return -EINVAL;
        }
    t->v = sf_xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
    t->v[t->n++] = (struct sf_tpl){ sf_xstrdup(name), sf_xstrdup(real) };
    return 0;
}

int sf_templates_add_spec(struct sf_templates *t, const char *spec, char *err, size_t errlen)
{
    const char *eq = spec ? strchr(spec, '=') : NULL;
    if (!eq || eq == spec || !eq[1]) {
        sf_errf(err, errlen, "--template '%s': expected NAME=DIR", spec ? spec : "");
        return -EINVAL;
    }
    char *name = sf_xstrndup(spec, (size_t)(eq - spec));
    int rc = sf_templates_add(t, name, eq + 1, err, errlen);
    free(name);
    return rc;
}

int sf_templates_load_store(struct sf_templates *t, const char *store, char *err, size_t errlen)
{
    DIR *d = opendir(store);
    int added = 0;
    if (!d) {
        if (errno == ENOENT) return 0;
        int rc = -errno;
        sf_errf(err, errlen, "template store %s: %s", store, strerror(errno));
        return rc;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char root[PATH_MAX + 300];
        struct stat st;
        snprintf(root, sizeof(root), "%s/%s/rootfs", store, e->d_name);
        if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) continue;   /* an import in progress */
        bool given = false;
        for (size_t i = 0; i < t->n; i++) given = given || !strcmp(t->v[i].name, e->d_name);
        if (given) continue;                  /* --template NAME=DIR wins */
        if (sf_templates_add(t, e->d_name, root, err, errlen) == 0) added++;
    }
    closedir(d);
    return added;
}

bool sf_templates_find(const struct sf_templates *t, const char *name, const char **root)
{
    *root = NULL;
    if (!name || !name[0]) return true;
    for (size_t i = 0; t && i < t->n; i++)
        if (!strcmp(t->v[i].name, name)) {
            *root = t->v[i].root;
            return true;
        }
    return !strcmp(name, "base");
}

size_t sf_templates_count(const struct sf_templates *t)
{
    return t ? t->n : 0;
}

const char *sf_templates_name(const struct sf_templates *t, size_t i)
{
    return t && i < t->n ? t->v[i].name : NULL;
}
