/* common/base/secrets.c: named secrets (see secrets.h). Values are read into
 * buffers that are wiped before they are freed; no message built here ever
 * contains a value, only names and the places looked at. */
#include "secrets.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENV_PREFIX "SANDFLEET_SECRET_"

extern char **environ;

bool sf_secret_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SF_SECRET_NAME_MAX || !(name[0] >= 'A' && name[0] <= 'Z')) return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    return true;
}

int sf_secrets_check_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        int e = errno;
        sf_errf(err, errlen, "secrets folder '%s': %s", dir, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        sf_errf(err, errlen, "secrets folder '%s' is not a folder", dir);
        return -ENOTDIR;
    }
    if (access(dir, R_OK | X_OK) < 0) {
        int e = errno;
        sf_errf(err, errlen, "secrets folder '%s': %s", dir, strerror(e));
        return -e;
    }
    return 0;
}

/* Read a secret file into a buffer that is wiped whatever happens. */
static int read_value(const char *path, char **value, size_t *len)
{
    char *buf = sf_xmalloc(SF_SECRET_VALUE_MAX + 2);
    size_t n = 0;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, SF_SECRET_VALUE_MAX + 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { rc = -errno; break; }
        if (k == 0) break;
        n += (size_t)k;
        if (n > SF_SECRET_VALUE_MAX) { rc = -EFBIG; break; }
    }
    close(fd);
    if (rc == 0) {
        if (n && buf[n - 1] == '\n') n--;
        if (n && buf[n - 1] == '\r') n--;
        buf[n] = '\0';
        *value = buf;
        *len = n;
        return 0;
    }
out:
    explicit_bzero(buf, SF_SECRET_VALUE_MAX + 2);
    free(buf);
    return rc;
}

/* Shrink a value to its length (the read buffer is 64 KiB), wiping the old. */
static char *fit(char *buf, size_t len)
{
    char *v = sf_xmalloc(len + 1);
    memcpy(v, buf, len + 1);
    explicit_bzero(buf, SF_SECRET_VALUE_MAX + 2);
    free(buf);
    return v;
}

int sf_secret_load(const struct sf_secrets *s, const char *name, char **value, size_t *len,
                   char *err, size_t errlen)
{
    char var[96], fvar[112], path[4096];
    const char *v, *file = NULL;
    char *buf = NULL;
    int rc;
    *value = NULL;
    *len = 0;
    if (!sf_secret_name_ok(name)) {
        sf_errf(err, errlen, "'%.64s' is not a secret NAME ([A-Z][A-Z0-9_]*, at most 64)",
                name ? name : "");
        return -EINVAL;
    }
    snprintf(var, sizeof(var), ENV_PREFIX "%s", name);
    snprintf(fvar, sizeof(fvar), ENV_PREFIX "%s_FILE", name);
    /* SANDFLEET_SECRET_X_FILE is the file of X, not the value of a secret
     * "X_FILE": such a name comes from its own _FILE variable or the folder. */
    size_t nl = strlen(name);
    bool file_var = nl > 5 && !strcmp(name + nl - 5, "_FILE");
    if (!file_var && (v = getenv(var)) && *v) {
        *len = strlen(v);
        if (*len > SF_SECRET_VALUE_MAX) {
            sf_errf(err, errlen, "secret '%s' (%s) is larger than 64 KiB", name, var);
            *len = 0;
            return -EFBIG;
        }
        *value = sf_xstrndup(v, *len);
        return 0;
    }
    if ((v = getenv(fvar)) && *v) {
        file = v;
    } else if (s && s->dir) {
        snprintf(path, sizeof(path), "%s/%s", s->dir, name);
        if (access(path, F_OK) == 0) file = path;
    }
    if (!file) {
        if (s && s->dir)
            sf_errf(err, errlen, "secret '%s' is not configured (looked for %s, %s and %s/%s)",
                    name, var, fvar, s->dir, name);
        else
            sf_errf(err, errlen, "secret '%s' is not configured (set %s or %s)", name, var, fvar);
        return -ENOENT;
    }
    if ((rc = read_value(file, &buf, len)) < 0) {
        sf_errf(err, errlen, "secret '%s': cannot read %s: %s", name,
                file == path ? path : fvar, rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc));
        *len = 0;
        return rc;
    }
    if (memchr(buf, '\0', *len)) {
        sf_errf(err, errlen, "secret '%s' contains a NUL byte (it cannot be an environment value)",
                name);
        explicit_bzero(buf, SF_SECRET_VALUE_MAX + 2);
        free(buf);
        *len = 0;
        return -EINVAL;
    }
    if (*len == 0) {
        free(buf);
        sf_errf(err, errlen, "secret '%s' is empty (%s)", name, file == path ? path : fvar);
        return -ENOENT;
    }
    *value = fit(buf, *len);
    return 0;
}

void sf_secret_free(char *value, size_t len)
{
    if (!value) return;
    explicit_bzero(value, len);
    free(value);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_name(char ***v, size_t *n, size_t *cap, const char *name, size_t len)
{
    char tmp[SF_SECRET_NAME_MAX + 1];
    if (len == 0 || len > SF_SECRET_NAME_MAX) return;
    memcpy(tmp, name, len);
    tmp[len] = '\0';
    if (!sf_secret_name_ok(tmp)) return;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i], tmp)) return;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *v = sf_xrealloc(*v, *cap * sizeof(char *));
    }
    (*v)[(*n)++] = sf_xstrdup(tmp);
}

json_t *sf_secrets_names(const struct sf_secrets *s)
{
    char **v = NULL;
    size_t n = 0, cap = 0, plen = strlen(ENV_PREFIX);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, ENV_PREFIX, plen) || !eq[1]) continue;
        const char *name = *e + plen;
        size_t len = (size_t)(eq - name);
        if (len > 5 && !strncmp(eq - 5, "_FILE", 5)) len -= 5;
        add_name(&v, &n, &cap, name, len);
    }
    DIR *d = s && s->dir ? opendir(s->dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat st;
        /* Kubernetes mounts keys as symlinks into ..data/: follow them. */
        if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
            add_name(&v, &n, &cap, de->d_name, strlen(de->d_name));
    }
    if (d) closedir(d);
    if (n) qsort(v, n, sizeof(char *), cmp_str);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
        free(v[i]);
    }
    free(v);
    return a;
}

int sf_secrets_resolve(const struct sf_secrets *s, json_t *names, struct sf_secret_values *out,
                       const char **missing, char *err, size_t errlen)
{
    size_t i;
    json_t *e;
    memset(out, 0, sizeof(*out));
    if (missing) *missing = NULL;
    if (!names || !json_array_size(names)) return 0;
    out->v = sf_xcalloc(json_array_size(names), sizeof(*out->v));
    json_array_foreach(names, i, e) {
        const char *name = json_is_string(e) ? json_string_value(e) : "";
        struct sf_secret_value *sv = &out->v[out->n];
        int rc = sf_secret_load(s, name, &sv->value, &sv->len, err, errlen);
        if (rc < 0) {
            if (missing) *missing = name;
            sf_secret_values_clear(out);
            return rc;
        }
        sv->name = sf_xstrdup(name);
        out->n++;
    }
    return 0;
}

void sf_secret_values_clear(struct sf_secret_values *v)
{
    for (size_t i = 0; i < v->n; i++) {
        sf_secret_free(v->v[i].value, v->v[i].len);
        free(v->v[i].name);
    }
    free(v->v);
    memset(v, 0, sizeof(*v));
}

char *sf_secrets_mask(const struct sf_secret_values *v, const char *text, size_t len,
                      size_t *outlen)
{
    struct sf_buf b = {0};
    size_t i = 0;
    if (!v || !v->n || !text) return NULL;
    /* next[k]: where value k occurs next at or after i (NULL: nowhere). A
     * value is searched again only once i has passed its last find, so each
     * is scanned across the text about once: searching every value afresh
     * after each replacement was quadratic — an agent printing one secret a
     * million times while holding a second one pinned its worker's slot for
     * hours. */
    const char **next = sf_xcalloc(v->n, sizeof(*next));
    bool *gone = sf_xcalloc(v->n, sizeof(*gone));
    while (i < len) {
        /* The earliest occurrence of any value from i on (the longest at a tie). */
        const char *at = NULL;
        size_t l = 0;
        for (size_t k = 0; k < v->n; k++) {
            size_t vl = v->v[k].len;
            if (gone[k] || vl < SF_SECRET_MASK_MIN || vl > len - i) continue;
            if (!next[k] || next[k] < text + i)
                next[k] = memmem(text + i, len - i, v->v[k].value, vl);
            const char *p = next[k];
            if (!p) {
                gone[k] = true;
                continue;
            }
            if (!at || p < at || (p == at && vl > l)) {
                at = p;
                l = vl;
            }
        }
        if (!at) break;
        sf_buf_append(&b, text + i, (size_t)(at - (text + i)));
        sf_buf_append(&b, SF_SECRET_MASK, strlen(SF_SECRET_MASK));
        i = (size_t)(at - text) + l;
    }
    free(next);
    free(gone);
    if (i == 0 && !b.len) return NULL;      /* nothing replaced */
    sf_buf_append(&b, text + i, len - i);
    return sf_buf_steal(&b, outlen);
}
