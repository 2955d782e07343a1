/* common/sandbox/local/sbx_cgroup.c: see sbx_cgroup.h.
 *
 * Everything here is plain file I/O on cgroupfs, so the same code runs
 * against a fake tree of regular files in unit tests. Values are written as
 * "<value>\n"; readers of a fake tree look at the first line only. */
#include "sbx_cgroup.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int sf_sbx_cg_write(const char *dir, const char *file, const char *val)
{
    char path[SF_SBX_CG_PATH + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t n = strlen(val);
    ssize_t w = write(fd, val, n);
    int rc = w == (ssize_t)n ? 0 : (w < 0 ? -errno : -EIO);
    close(fd);
    return rc;
}

static int sf_sbx_cg_read(const char *dir, const char *file, char *buf, size_t size)
{
    char path[SF_SBX_CG_PATH + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t r = read(fd, buf, size - 1);
    int rc = r < 0 ? -errno : 0;
    close(fd);
    buf[r < 0 ? 0 : r] = '\0';
    return rc;
}

static bool sf_sbx_cg_exists(const char *dir, const char *file)
{
    char path[SF_SBX_CG_PATH + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

/* The path of our cgroup for 'controller' ("" for the v2 line "0::"),
 * from a /proc/self/cgroup-format file. */
static int sf_sbx_cg_own(const char *self_cgroup, const char *controller, char *out, size_t size)
{
    FILE *f = fopen(self_cgroup, "re");
    if (!f) return -errno;
    char line[1024];
    int rc = -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c1 = '\0';
        *c2 = '\0';
        char *ctrls = c1 + 1, *path = c2 + 1;
        path[strcspn(path, "\n")] = '\0';
        bool match = false;
        if (!*controller) {
            match = !strcmp(line, "0") && !*ctrls;
        } else {
            for (char *t = strtok(ctrls, ","); t; t = strtok(NULL, ","))
                if (!strcmp(t, controller)) match = true;
        }
        if (match) {
            sf_strlcpy(out, path, size);
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* "<root>/<rel>/<leaf>" without doubled slashes. */
static void sf_sbx_cg_join(char *out, size_t size, const char *root, const char *rel,
                           const char *leaf)
{
    while (*rel == '/') rel++;
    size_t n = strlen(rel);
    while (n && rel[n - 1] == '/') n--;
    /* Callers check the length of what they build from 'out' (PATH_MAX
     * buffers); sf_errf keeps gcc's truncation warning out of -O3 builds. */
    sf_errf(out, size, "%s%s%.*s%s%s", root, n ? "/" : "", (int)n, rel,
            leaf ? "/" : "", leaf ? leaf : "");
}

static bool sf_sbx_cg_has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; (p = strstr(p, tok)); p += n) {
        if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
            (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
            return true;
    }
    return false;
}

/* v2 "no internal processes": move every process of our cgroup 'own' into
 * the leaf 'leaf' - ourselves and whoever shares the cgroup with us (the
 * shell, ctest or `timeout` that started us, a test's redis-server) - so
 * that 'own' may hand controllers down. They stay together in one cgroup
 * under the same limits, as docker-in-docker's entrypoint does with its
 * container's processes. Processes that exit meanwhile are skipped. */
static int sf_sbx_cg2_evacuate(const char *own, const char *leaf)
{
    char path[SF_SBX_CG_PATH + 16], line[32];
    int rc = 0;
    snprintf(path, sizeof(path), "%s/cgroup.procs", own);
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    while (fgets(line, sizeof(line), f)) {
        int r = sf_sbx_cg_write(leaf, "cgroup.procs", line);
        if (r < 0 && r != -ESRCH) rc = r;
    }
    fclose(f);
    return rc;
}

/* v2: make sure 'dir' hands memory and pids down to its children. 'own'
 * is our own cgroup dir: when it holds processes the write fails with
 * EBUSY and they move into a leaf first (processes forked meanwhile land in
 * 'own' too: a few rounds). */
static int sf_sbx_cg2_delegate(const char *dir, const char *own, char *errstr, size_t errlen)
{
    char cur[256];
    int rc = sf_sbx_cg_read(dir, "cgroup.subtree_control", cur, sizeof(cur));
    if (rc < 0) {
        sf_errf(errstr, errlen, "cgroup v2: read %s/cgroup.subtree_control: %s", dir,
                strerror(-rc));
        return rc;
    }
    if (sf_sbx_cg_has_token(cur, "memory") && sf_sbx_cg_has_token(cur, "pids")) return 0;
    rc = sf_sbx_cg_write(dir, "cgroup.subtree_control", "+memory +pids");
    if (rc == -EBUSY && !strcmp(dir, own)) {
        char leaf[SF_SBX_CG_PATH];
        if (snprintf(leaf, sizeof(leaf), "%s/" SF_SBX_CG_LEAF, own) >= (int)sizeof(leaf))
            rc = -ENAMETOOLONG;
        else if ((rc = sf_mkdir_p(leaf, 0755)) == 0) {
            rc = -EBUSY;
            for (int round = 0; round < 5 && rc == -EBUSY; round++)
                if ((rc = sf_sbx_cg2_evacuate(own, leaf)) == 0)
                    rc = sf_sbx_cg_write(dir, "cgroup.subtree_control", "+memory +pids");
        }
    }
    if (rc < 0)
        sf_errf(errstr, errlen, "cgroup v2: enable memory and pids in %s/cgroup.subtree_control: "
                "%s (the worker needs a delegated cgroup subtree, e.g. systemd Delegate=yes)",
                dir, strerror(-rc));
    return rc;
}

/* A cgroup named SF_SBX_CG_LEAF whose parent already hands memory and pids
 * down is the leaf an earlier worker moved its cgroup's processes into (we
 * were started by one of them: a shell, ctest). Our base then goes beside
 * it, in the parent, rather than one level deeper per worker started. */
static void sf_sbx_cg2_skip_leaf(const char *root, char *own_rel)
{
    char *slash = strrchr(own_rel, '/'), up[SF_SBX_CG_PATH], cur[256];
    if (!slash || strcmp(slash + 1, SF_SBX_CG_LEAF)) return;
    *slash = '\0';
    sf_sbx_cg_join(up, sizeof(up), root, own_rel, NULL);
    if (sf_sbx_cg_read(up, "cgroup.subtree_control", cur, sizeof(cur)) < 0 ||
        !sf_sbx_cg_has_token(cur, "memory") || !sf_sbx_cg_has_token(cur, "pids"))
        *slash = '/';
}

static int sf_sbx_cg2_init(struct sf_sbx_cgroup_base *base, const char *root,
                           const char *self_cgroup, const char *parent, char *errstr, size_t errlen)
{
    char ctrls[256], own_rel[SF_SBX_CG_PATH], own[SF_SBX_CG_PATH], rel[SF_SBX_CG_PATH];
    int rc = sf_sbx_cg_read(root, "cgroup.controllers", ctrls, sizeof(ctrls));
    if (rc == 0 && (!sf_sbx_cg_has_token(ctrls, "memory") || !sf_sbx_cg_has_token(ctrls, "pids")))
        rc = -ENOTSUP;
    if (rc < 0) {
        sf_errf(errstr, errlen, "cgroup v2 at %s lacks the memory or pids controller", root);
        return rc;
    }
    if ((rc = sf_sbx_cg_own(self_cgroup, "", own_rel, sizeof(own_rel))) < 0) {
        sf_errf(errstr, errlen, "cannot find our cgroup v2 path in %s", self_cgroup);
        return rc;
    }
    if (!parent) sf_sbx_cg2_skip_leaf(root, own_rel);
    sf_sbx_cg_join(own, sizeof(own), root, own_rel, NULL);
    if (parent) sf_strlcpy(rel, parent, sizeof(rel));
    else sf_sbx_cg_join(rel, sizeof(rel), "", own_rel, "sandfleet");
    sf_sbx_cg_join(base->mem, sizeof(base->mem), root, rel, NULL);

    /* Walk from the root down to the base, delegating at every level. */
    char dir[SF_SBX_CG_PATH];
    sf_strlcpy(dir, root, sizeof(dir));
    const char *p = rel;
    for (;;) {
        if ((rc = sf_sbx_cg2_delegate(dir, own, errstr, errlen)) < 0) return rc;
        while (*p == '/') p++;
        if (!*p) break;
        size_t n = strcspn(p, "/");
        size_t dl = strlen(dir);
        snprintf(dir + dl, sizeof(dir) - dl, "/%.*s", (int)n, p);
        p += n;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            sf_errf(errstr, errlen, "cgroup v2: mkdir %s: %s", dir, strerror(errno));
            return rc;
        }
    }
    sf_strlcpy(base->pids, base->mem, sizeof(base->pids));
    base->version = 2;
    return 0;
}

static int sf_sbx_cg1_init(struct sf_sbx_cgroup_base *base, const char *root,
                           const char *self_cgroup, const char *parent, char *errstr, size_t errlen)
{
    static const char *const ctl[2] = { "memory", "pids" };
    char *dst[2] = { base->mem, base->pids };
    for (int i = 0; i < 2; i++) {
        char hier[SF_SBX_CG_PATH], own[SF_SBX_CG_PATH];
        int rc;
        snprintf(hier, sizeof(hier), "%s/%s", root, ctl[i]);
        if (parent) {
            sf_sbx_cg_join(dst[i], SF_SBX_CG_PATH, hier, parent, NULL);
        } else {
            if ((rc = sf_sbx_cg_own(self_cgroup, ctl[i], own, sizeof(own))) < 0) {
                sf_errf(errstr, errlen, "cannot find our %s cgroup in %s", ctl[i], self_cgroup);
                return rc;
            }
            sf_sbx_cg_join(dst[i], SF_SBX_CG_PATH, hier, own, "sandfleet");
        }
        if ((rc = sf_mkdir_p(dst[i], 0755)) < 0) {
            sf_errf(errstr, errlen, "cgroup v1: mkdir %s: %s", dst[i], strerror(-rc));
            return rc;
        }
    }
    /* Optional: pause needs it, limits do not. */
    char fown[SF_SBX_CG_PATH], fhier[SF_SBX_CG_PATH];
    snprintf(fhier, sizeof(fhier), "%s/freezer", root);
    if (sf_sbx_cg_exists(fhier, "cgroup.procs")) {
        if (parent) sf_sbx_cg_join(base->freezer, SF_SBX_CG_PATH, fhier, parent, NULL);
        else if (sf_sbx_cg_own(self_cgroup, "freezer", fown, sizeof(fown)) == 0)
            sf_sbx_cg_join(base->freezer, SF_SBX_CG_PATH, fhier, fown, "sandfleet");
        if (base->freezer[0] && sf_mkdir_p(base->freezer, 0755) < 0) base->freezer[0] = '\0';
    }
    base->version = 1;
    base->has_memsw = sf_sbx_cg_exists(base->mem, "memory.memsw.limit_in_bytes");
    return 0;
}

/* A base that exists already (made by an earlier worker, maybe as root)
 * passes mkdir; whether this worker may create cgroups in it shows only
 * here - better now than at the first sandbox. */
static int sf_sbx_cg_writable(const struct sf_sbx_cgroup_base *base, char *errstr, size_t errlen)
{
    const char *dirs[2] = { base->mem, base->pids };
    for (int i = 0; i < (base->version == 1 ? 2 : 1); i++) {
        if (faccessat(AT_FDCWD, dirs[i], W_OK, AT_EACCESS) == 0) continue;
        int rc = -errno;
        sf_errf(errstr, errlen, "cgroup v%d: %s is not writable by uid %d: %s", base->version,
                dirs[i], (int)geteuid(), strerror(-rc));
        return rc;
    }
    return 0;
}

int sf_sbx_cgroup_base_init(struct sf_sbx_cgroup_base *base, const char *mount_root,
                            const char *self_cgroup, const char *parent,
                            char *errstr, size_t errlen)
{
    char probe[SF_SBX_CG_PATH];
    int rc;
    memset(base, 0, sizeof(*base));
    if (sf_sbx_cg_exists(mount_root, "cgroup.controllers")) {
        rc = sf_sbx_cg2_init(base, mount_root, self_cgroup, parent, errstr, errlen);
    } else {
        snprintf(probe, sizeof(probe), "%s/memory", mount_root);
        bool mem = sf_sbx_cg_exists(probe, "cgroup.procs");
        snprintf(probe, sizeof(probe), "%s/pids", mount_root);
        bool pids = sf_sbx_cg_exists(probe, "cgroup.procs");
        if (!mem || !pids) {
            sf_errf(errstr, errlen, "no cgroup v2 hierarchy and no v1 memory+pids controllers "
                    "under %s", mount_root);
            return -ENOENT;
        }
        rc = sf_sbx_cg1_init(base, mount_root, self_cgroup, parent, errstr, errlen);
    }
    if (rc == 0) rc = sf_sbx_cg_writable(base, errstr, errlen);
    if (rc < 0) base->version = 0;
    return rc;
}

static int sf_sbx_cg_put_limits(struct sf_sbx_cgroup *cg, int64_t memory_mb, int64_t pids_max,
                                char *errstr, size_t errlen)
{
    char mem[32], pids[32];
    const char *file = NULL;
    int rc = 0;
    snprintf(mem, sizeof(mem), "%" PRId64 "\n", memory_mb * 1024 * 1024);
    snprintf(pids, sizeof(pids), "%" PRId64 "\n", pids_max);
    if (memory_mb != cg->memory_mb) {
        if (cg->version == 2) {
            if ((rc = sf_sbx_cg_write(cg->mem, file = "memory.max", mem)) < 0) goto cleanup;
            /* Swap would let a sandbox exceed its limit slowly instead of
             * failing fast; the file is absent without swap accounting. */
            if (cg->has_swap_max &&
                (rc = sf_sbx_cg_write(cg->mem, file = "memory.swap.max", "0\n")) < 0)
                goto cleanup;
        } else {
            /* memsw (memory+swap) must stay >= memory: raise it first when
             * growing, lower memory first when shrinking. Equal = no swap. */
            bool grow = cg->memory_mb && memory_mb > cg->memory_mb;
            if (cg->has_memsw && grow &&
                (rc = sf_sbx_cg_write(cg->mem, file = "memory.memsw.limit_in_bytes", mem)) < 0)
                goto cleanup;
            if ((rc = sf_sbx_cg_write(cg->mem, file = "memory.limit_in_bytes", mem)) < 0)
                goto cleanup;
            if (cg->has_memsw && !grow &&
                (rc = sf_sbx_cg_write(cg->mem, file = "memory.memsw.limit_in_bytes", mem)) < 0)
                goto cleanup;
        }
        cg->memory_mb = memory_mb;
    }
    if (pids_max != cg->pids_max) {
        if ((rc = sf_sbx_cg_write(cg->pids, file = "pids.max", pids)) < 0) goto cleanup;
        cg->pids_max = pids_max;
    }
cleanup:
    if (rc < 0)
        sf_errf(errstr, errlen, "cgroup: write %s in %s: %s", file,
                !strcmp(file, "pids.max") ? cg->pids : cg->mem, strerror(-rc));
    return rc;
}

int sf_sbx_cgroup_create(const struct sf_sbx_cgroup_base *base, const char *name,
                         int64_t memory_mb, int64_t pids_max, struct sf_sbx_cgroup *cg,
                         char *errstr, size_t errlen)
{
    int rc;
    memset(cg, 0, sizeof(*cg));
    if (snprintf(cg->mem, sizeof(cg->mem), "%s/%s", base->mem, name) >= (int)sizeof(cg->mem) ||
        snprintf(cg->pids, sizeof(cg->pids), "%s/%s", base->pids, name) >= (int)sizeof(cg->pids)) {
        sf_errf(errstr, errlen, "cgroup: path too long under %s", base->mem);
        return -ENAMETOOLONG;
    }
    if (mkdir(cg->mem, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        sf_errf(errstr, errlen, "cgroup: mkdir %s: %s", cg->mem, strerror(errno));
        return rc;
    }
    cg->version = base->version;
    if (base->version == 1 && mkdir(cg->pids, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        sf_errf(errstr, errlen, "cgroup: mkdir %s: %s", cg->pids, strerror(errno));
        goto cleanup;
    }
    cg->has_memsw = base->has_memsw;
    if (base->version == 1 && base->freezer[0])
        sf_errf(cg->freezer, sizeof(cg->freezer), "%s/%s", base->freezer, name);
    cg->has_swap_max = base->version == 2 && sf_sbx_cg_exists(cg->mem, "memory.swap.max");
    if ((rc = sf_sbx_cg_put_limits(cg, memory_mb, pids_max, errstr, errlen)) < 0) goto cleanup;
    return 0;
cleanup:
    sf_sbx_cgroup_destroy(cg, 0);
    return rc;
}

int sf_sbx_cgroup_set_limits(struct sf_sbx_cgroup *cg, int64_t memory_mb, int64_t pids_max,
                             char *errstr, size_t errlen)
{
    if (!cg->version) return 0;
    return sf_sbx_cg_put_limits(cg, memory_mb, pids_max, errstr, errlen);
}

int sf_sbx_cgroup_attach(const struct sf_sbx_cgroup *cg, pid_t pid, char *errstr, size_t errlen)
{
    char val[32];
    int rc = 0;
    if (!cg->version) return 0;
    snprintf(val, sizeof(val), "%d\n", (int)pid);
    if ((rc = sf_sbx_cg_write(cg->mem, "cgroup.procs", val)) < 0) {
        sf_errf(errstr, errlen, "cgroup: add pid to %s: %s", cg->mem, strerror(-rc));
        return rc;
    }
    if (cg->version == 1 && (rc = sf_sbx_cg_write(cg->pids, "cgroup.procs", val)) < 0)
        sf_errf(errstr, errlen, "cgroup: add pid to %s: %s", cg->pids, strerror(-rc));
    return rc;
}

int sf_sbx_cgroup_open_join(const struct sf_sbx_cgroup *cg, int fds[2])
{
    const char *dirs[2] = { cg->mem, cg->pids };
    fds[0] = fds[1] = -1;
    if (cg->version != 1) return 0;
    for (int i = 0; i < 2; i++) {
        char path[SF_SBX_CG_PATH + 16];
        snprintf(path, sizeof(path), "%s/tasks", dirs[i]);
        if ((fds[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
            int rc = -errno;
            if (i) close(fds[0]);
            fds[0] = fds[1] = -1;
            return rc;
        }
    }
    return 2;
}

int sf_sbx_cgroup_oom_kills(const struct sf_sbx_cgroup *cg, uint64_t *count)
{
    char buf[1024];
    *count = 0;
    if (!cg->version) return -ENOENT;
    int rc = sf_sbx_cg_read(cg->mem, cg->version == 2 ? "memory.events" : "memory.oom_control",
                            buf, sizeof(buf));
    if (rc < 0) return rc;
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, "oom_kill ", 9)) {
            *count = strtoull(line + 9, NULL, 10);
            return 0;
        }
    }
    return -ENOENT;
}

static int sf_sbx_cg_rmdir(const char *dir, int wait_ms)
{
    for (int waited = 0;; waited++) {
        if (rmdir(dir) == 0 || errno == ENOENT) return 0;
        if (errno != EBUSY || waited >= wait_ms) return -errno;
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
}

int sf_sbx_cgroup_destroy(struct sf_sbx_cgroup *cg, int wait_ms)
{
    int rc = 0, r;
    if (!cg || !cg->version) return 0;
    if ((r = sf_sbx_cg_rmdir(cg->mem, wait_ms)) < 0) rc = r;
    if (cg->version == 1 && (r = sf_sbx_cg_rmdir(cg->pids, wait_ms)) < 0) rc = r;
    if (cg->freezer_made && (r = sf_sbx_cg_rmdir(cg->freezer, wait_ms)) < 0) rc = r;
    cg->version = 0;
    return rc;
}

/* A leftover is "<prefix><pid>-..." whose creating process is gone. A live
 * worker's cgroup may be empty for a moment (created, child not yet
 * attached): removing it then would break that worker's create(), which is
 * what happened when several workers started together. */
static bool sf_sbx_cg_owner_dead(const char *name, size_t plen)
{
    char *end;
    long pid = strtol(name + plen, &end, 10);
    if (end == name + plen || *end != '-' || pid <= 0) return false;   /* not ours to judge */
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int sf_sbx_cgroup_sweep(const struct sf_sbx_cgroup_base *base, const char *prefix)
{
    const char *dirs[2] = { base->mem, base->pids };
    int removed = 0;
    size_t plen = strlen(prefix);
    for (int i = 0; i < (base->version == 1 ? 2 : 1); i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) continue;
        for (struct dirent *e; (e = readdir(d));) {
            if (strncmp(e->d_name, prefix, plen) || e->d_type != DT_DIR) continue;
            if (!sf_sbx_cg_owner_dead(e->d_name, plen)) continue;
            if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0) removed++;
        }
        closedir(d);
    }
    return removed;
}

/* ---- freeze and usage --------------------------------------------------- */

/* Wait until file in dir reads (first line) as want, up to ~2 s. */
static int sf_sbx_cg_wait_for(const char *dir, const char *file, const char *want)
{
    char buf[512];
    for (int i = 0; i < 2000; i++) {
        if (sf_sbx_cg_read(dir, file, buf, sizeof(buf)) < 0) return -EIO;
        if (strstr(buf, want)) return 0;
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
    return -ETIMEDOUT;
}

/* v1: move every process of the memory cgroup that is not yet in the
 * freezer cgroup. Returns how many were moved, or -errno. */
static int sf_sbx_cg1_gather(const struct sf_sbx_cgroup *cg)
{
    char path[SF_SBX_CG_PATH + 32], *procs = NULL, *in = NULL;
    size_t n, m;
    int moved = 0;
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg->mem);
    if (sf_read_file(path, 1 << 20, &procs, &n) < 0) return -EIO;
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg->freezer);
    if (sf_read_file(path, 1 << 20, &in, &m) < 0) {
        free(procs);
        return -EIO;
    }
    for (char *line = procs, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        /* "\n<pid>\n" in "\n" + in: already there */
        size_t k = strlen(line);
        bool there = false;
        for (char *p = in; !there && (p = strstr(p, line)); p += k)
            there = (p == in || p[-1] == '\n') && (p[k] == '\n' || p[k] == '\0');
        if (there) continue;
        char val[32];
        snprintf(val, sizeof(val), "%s\n", line);
        if (sf_sbx_cg_write(cg->freezer, "cgroup.procs", val) == 0) moved++;
    }
    free(procs);
    free(in);
    return moved;
}

int sf_sbx_cgroup_freeze(struct sf_sbx_cgroup *cg, bool frozen)
{
    int rc;
    if (cg->version == 2) {
        if ((rc = sf_sbx_cg_write(cg->mem, "cgroup.freeze", frozen ? "1\n" : "0\n")) < 0)
            return rc == -ENOENT ? -ENOTSUP : rc;
        return sf_sbx_cg_wait_for(cg->mem, "cgroup.events", frozen ? "frozen 1" : "frozen 0");
    }
    if (cg->version != 1 || !cg->freezer[0]) return -ENOTSUP;
    if (!frozen) {
        if (!cg->freezer_made) return 0;
        if ((rc = sf_sbx_cg_write(cg->freezer, "freezer.state", "THAWED\n")) < 0) return rc;
        return sf_sbx_cg_wait_for(cg->freezer, "freezer.state", "THAWED");
    }
    if (!cg->freezer_made) {
        if (mkdir(cg->freezer, 0755) < 0 && errno != EEXIST) return -errno;
        cg->freezer_made = true;
    }
    if ((rc = sf_sbx_cg1_gather(cg)) < 0) return rc;
    if ((rc = sf_sbx_cg_write(cg->freezer, "freezer.state", "FROZEN\n")) < 0) return rc;
    for (int i = 0; i < 100 && (rc = sf_sbx_cg1_gather(cg)) > 0; i++) {}
    if (rc < 0) return rc;
    return sf_sbx_cg_wait_for(cg->freezer, "freezer.state", "FROZEN");
}

/* v1: utime + stime of the live processes, in microseconds. */
static int64_t sf_sbx_cg1_cpu_us(const struct sf_sbx_cgroup *cg)
{
    char path[SF_SBX_CG_PATH + 32], *procs = NULL;
    size_t n;
    int64_t ticks = 0;
    long hz = sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg->mem);
    if (sf_read_file(path, 1 << 20, &procs, &n) < 0) return -1;
    for (char *line = procs, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char st[64], *buf = NULL;
        size_t m;
        snprintf(st, sizeof(st), "/proc/%s/stat", line);
        if (sf_read_file(st, 4096, &buf, &m) < 0) continue;
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, stt = 0;
        /* fields 14 and 15 (utime, stime) after "pid (comm)" */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) == 2)
            ticks += (int64_t)(ut + stt);
        free(buf);
    }
    free(procs);
    return hz > 0 ? ticks * 1000000 / hz : -1;
}

int sf_sbx_cgroup_usage(const struct sf_sbx_cgroup *cg, int64_t *cpu_us, int64_t *mem_bytes)
{
    char buf[4096];
    *cpu_us = *mem_bytes = -1;
    if (!cg->version) return -ENOENT;
    if (cg->version == 2) {
        if (sf_sbx_cg_read(cg->mem, "cpu.stat", buf, sizeof(buf)) == 0) {
            char *u = strstr(buf, "usage_usec ");
            if (u) *cpu_us = strtoll(u + 11, NULL, 10);
        }
        if (sf_sbx_cg_read(cg->mem, "memory.current", buf, sizeof(buf)) == 0)
            *mem_bytes = strtoll(buf, NULL, 10);
    } else {
        *cpu_us = sf_sbx_cg1_cpu_us(cg);
        if (sf_sbx_cg_read(cg->mem, "memory.usage_in_bytes", buf, sizeof(buf)) == 0)
            *mem_bytes = strtoll(buf, NULL, 10);
    }
    return 0;
}
