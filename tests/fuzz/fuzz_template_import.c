/* libFuzzer target: container image files (template_import.h) — outside
 * input a worker unpacks as root. The first byte picks the part:
 *   0  the tar reader: every entry, its path cleaned, its data read;
 *   1  a whole layer applied onto an empty root (whiteouts, links, planted
 *      symlinks), which must leave nothing outside that root;
 *   2  the manifests (docker-archive manifest.json, OCI index/manifest).
 * Whatever fails must say why. The root lives in a private temporary
 * directory; a file appearing next to it (outside) aborts. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsat.h"
#include "tar.h"
#include "template_import.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
    const uint8_t *p;
    size_t left;
};

static ssize_t mem_read(void *arg, void *buf, size_t n)
{
    struct mem *m = arg;
    if (n > m->left) n = m->left;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return (ssize_t)n;
}

static char fz_base[64];        /* BASE/root is the root; BASE holds only it */
static int fz_root = -1, fz_base_fd = -1;

static void fz_cleanup(void)
{
    int tmp = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmp >= 0) {
        sf_remove_at(tmp, strrchr(fz_base, '/') + 1);
        close(tmp);
    }
}

static void fz_setup(void)
{
    if (fz_root >= 0) return;
    snprintf(fz_base, sizeof(fz_base), "/tmp/sf-fuzz-import-%d", (int)getpid());
    char root[96];
    snprintf(root, sizeof(root), "%s/root", fz_base);
    if (mkdir(fz_base, 0700) < 0 && errno != EEXIST) abort();
    if (mkdir(root, 0755) < 0 && errno != EEXIST) abort();
    fz_base_fd = open(fz_base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fz_root = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fz_base_fd < 0 || fz_root < 0) abort();
    atexit(fz_cleanup);
}

static int mem_get(void *arg, const char *path, char **out, size_t *len)
{
    const struct mem *m = arg;
    (void)path;
    *out = sf_xmalloc(m->left + 1);
    memcpy(*out, m->p, m->left);
    (*out)[m->left] = '\0';
    *len = m->left;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    if (!size) return 0;
    struct mem m = { data + 1, size - 1 };
    if (data[0] % 3 == 0) {
        struct sf_tar t;
        struct sf_tar_entry *e = sf_xmalloc(sizeof(*e));
        char clean[SF_TAR_PATH_MAX], buf[4096];
        int rc;
        sf_tar_init(&t, mem_read, &m);
        while ((rc = sf_tar_next(&t, e)) == 1) {
            if (sf_tar_clean_path(e->path, clean) && strstr(clean, "..") &&
                (!strncmp(clean, "../", 3) || strstr(clean, "/../") || !strcmp(clean, "..")))
                abort();                       /* a ".." component survived cleaning */
            while (sf_tar_data(&t, buf, sizeof(buf)) > 0) {}
        }
        if (rc < 0 && !t.err[0]) abort();
        free(e);
    } else if (data[0] % 3 == 1) {
        fz_setup();
        int rc = sf_template_apply_layer(fz_root, mem_read, &m, err, sizeof(err));
        if (rc < 0 && !err[0]) abort();
        size_t n;
        char **names = sf_dir_names(fz_base_fd, &n);
        if (n != 1 || strcmp(names[0], "root")) abort();   /* something left the root */
        sf_dir_names_free(names, n);
        int d = openat(fz_base_fd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0) abort();
        sf_empty_dir(d);
        close(d);
    } else {
        char **layers = NULL;
        int n = sf_image_layers(mem_get, &m, &layers, err, sizeof(err));
        if (n < 0 && !err[0]) abort();
        for (int i = 0; i < n; i++) {
            char clean[SF_TAR_PATH_MAX];
            if (!sf_tar_clean_path(layers[i], clean) || !clean[0]) abort();
            free(layers[i]);
        }
        free(layers);
    }
    return 0;
}
