/* common/e2b/e2b_record.c: the sandbox record kept in the broker, a worker's
 * capacity, and placement (e2b_fleet.h). */
#include "e2b_fleet.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define E2B_CLIENT_ID "6532622b"          /* E2B's constant, deprecated field */

/* ---- the record -------------------------------------------------------------- */

char *sf_e2b_record_dump(const struct sf_e2b_record *r)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:I,s:I,s:i,s:i,s:i}", "id", r->id,
                          "worker", r->worker, "template", r->template_id, "alias", r->alias,
                          "token", r->token, "state", r->state[0] ? r->state : "running",
                          "metadata", r->metadata ? r->metadata : json_object(),
                          "started_ms", (json_int_t)r->started_ms, "end_ms", (json_int_t)r->end_ms,
                          "cpu", r->cpu_count, "memory_mb", r->memory_mb, "disk_mb", r->disk_mb);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static bool copy_str(json_t *j, const char *key, char *dst, size_t size, bool required)
{
    json_t *v = json_object_get(j, key);
    if (!v) {
        dst[0] = '\0';
        return !required;
    }
    if (!json_is_string(v) || json_string_length(v) >= size) return false;
    sf_strlcpy(dst, json_string_value(v), size);
    return true;
}

int sf_e2b_record_parse(const char *text, size_t len, struct sf_e2b_record *r, char *err,
                        size_t errlen)
{
    json_t *j = json_loadb(text, len, 0, NULL), *m;
    char id[SF_E2B_ID_MAX];
    memset(r, 0, sizeof(*r));
    if (!json_is_object(j) || !copy_str(j, "id", r->id, sizeof(r->id), true) ||
        !sf_e2b_valid_id(r->id, id, sizeof(id)) || strcmp(id, r->id) ||
        !copy_str(j, "worker", r->worker, sizeof(r->worker), true) ||
        !copy_str(j, "template", r->template_id, sizeof(r->template_id), false) ||
        !copy_str(j, "alias", r->alias, sizeof(r->alias), false) ||
        !copy_str(j, "token", r->token, sizeof(r->token), false) ||
        !copy_str(j, "state", r->state, sizeof(r->state), false)) {
        sf_errf(err, errlen, "malformed E2B sandbox record");
        json_decref(j);
        return -EINVAL;
    }
    m = json_object_get(j, "metadata");
    r->metadata = json_is_object(m) ? json_incref(m) : json_object();
    r->started_ms = json_integer_value(json_object_get(j, "started_ms"));
    r->end_ms = json_integer_value(json_object_get(j, "end_ms"));
    r->cpu_count = (int)json_integer_value(json_object_get(j, "cpu"));
    r->memory_mb = (int)json_integer_value(json_object_get(j, "memory_mb"));
    r->disk_mb = (int)json_integer_value(json_object_get(j, "disk_mb"));
    if (!r->state[0]) sf_strlcpy(r->state, "running", sizeof(r->state));
    json_decref(j);
    return 0;
}

void sf_e2b_record_clear(struct sf_e2b_record *r)
{
    json_decref(r->metadata);
    r->metadata = NULL;
}

json_t *sf_e2b_time_json(int64_t wall_ms)
{
    char buf[40];
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(wall_ms % 1000));
    return json_string(buf);
}

json_t *sf_e2b_record_listed(const struct sf_e2b_record *r)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:i,s:i,s:i,s:s,s:s,s:O}",
                     "templateID", r->template_id, "alias", r->alias[0] ? r->alias : r->template_id,
                     "sandboxID", r->id, "clientID", E2B_CLIENT_ID,
                     "startedAt", sf_e2b_time_json(r->started_ms),
                     "endAt", sf_e2b_time_json(r->end_ms), "cpuCount", r->cpu_count,
                     "memoryMB", r->memory_mb, "diskSizeMB", r->disk_mb, "state", r->state,
                     "envdVersion", "0.5.7", "metadata", r->metadata);
}

/* ---- capacity ------------------------------------------------------------------ */

/* First number in a file, or -1. */
static int64_t read_num(const char *path)
{
    char buf[64];
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    bool ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!ok || !strncmp(buf, "max", 3)) return -1;
    return strtoll(buf, NULL, 10);
}

/* The directory of this process's cgroup for a v1 controller ("memory"),
 * or of the v2 hierarchy (ctrl NULL); tries the path the process sees and
 * the mount's root (inside a container's cgroup namespace they differ). */
static bool cgroup_dir(const char *ctrl, const char *file, char *out, size_t size)
{
    char line[512], rel[400] = "";
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return false;
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        bool match = ctrl ? strstr(c1 + 1, ctrl) != NULL : !strcmp(line, "0");
        if (!match) continue;
        sf_strlcpy(rel, c2 + 1, sizeof(rel));
        rel[strcspn(rel, "\n")] = '\0';
        break;
    }
    fclose(f);
    const char *base = ctrl ? ctrl : "";
    snprintf(out, size, "/sys/fs/cgroup/%s%s/%s", base, rel, file);
    if (access(out, R_OK) == 0) return true;
    snprintf(out, size, "/sys/fs/cgroup/%s/%s", base, file);
    return access(out, R_OK) == 0;
}

static void probe_memory(struct sf_e2b_capacity *c)
{
    char line[256], path[600];
    int64_t total = -1, avail = -1;
    FILE *f = fopen("/proc/meminfo", "re");
    while (f && fgets(line, sizeof(line), f)) {
        long long kb;
        if (sscanf(line, "MemTotal: %lld", &kb) == 1) total = kb / 1024;
        else if (sscanf(line, "MemAvailable: %lld", &kb) == 1) avail = kb / 1024;
    }
    if (f) fclose(f);
    int64_t lim = -1, used = -1;
    if (cgroup_dir(NULL, "memory.max", path, sizeof(path))) {
        lim = read_num(path);
        if (cgroup_dir(NULL, "memory.current", path, sizeof(path))) used = read_num(path);
    } else if (cgroup_dir("memory", "memory.limit_in_bytes", path, sizeof(path))) {
        lim = read_num(path);
        if (cgroup_dir("memory", "memory.usage_in_bytes", path, sizeof(path))) used = read_num(path);
    }
    /* A cgroup limit below the machine's memory bounds the worker. */
    if (lim > 0 && lim / (1 << 20) < total && used >= 0) {
        total = lim / (1 << 20);
        int64_t free_mb = (lim - used) / (1 << 20);
        if (avail < 0 || free_mb < avail) avail = free_mb > 0 ? free_mb : 0;
    }
    c->mem_total_mb = total > 0 ? total : 0;
    c->mem_avail_mb = avail > 0 ? avail : 0;
}

static void probe_cpu(struct sf_e2b_capacity *c)
{
    char path[600], buf[64];
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->cpus = n > 0 ? (int)n : 1;
    if (cgroup_dir(NULL, "cpu.max", path, sizeof(path))) {
        FILE *f = fopen(path, "re");
        long long quota, period;
        if (f && fgets(buf, sizeof(buf), f) && sscanf(buf, "%lld %lld", &quota, &period) == 2 &&
            quota > 0 && period > 0 && (quota + period - 1) / period < c->cpus)
            c->cpus = (int)((quota + period - 1) / period);
        if (f) fclose(f);
    } else if (cgroup_dir("cpu", "cpu.cfs_quota_us", path, sizeof(path))) {
        int64_t quota = read_num(path), period = -1;
        if (cgroup_dir("cpu", "cpu.cfs_period_us", path, sizeof(path))) period = read_num(path);
        if (quota > 0 && period > 0 && (quota + period - 1) / period < c->cpus)
            c->cpus = (int)((quota + period - 1) / period);
    }
    FILE *f = fopen("/proc/loadavg", "re");
    c->load1 = 0;
    if (f && fgets(buf, sizeof(buf), f)) c->load1 = strtod(buf, NULL);
    if (f) fclose(f);
}

void sf_e2b_capacity_probe(struct sf_e2b_capacity *c)
{
    probe_memory(c);
    probe_cpu(c);
}

json_t *sf_e2b_capacity_json(const struct sf_e2b_capacity *c)
{
    return json_pack("{s:s,s:s,s:i,s:i,s:i,s:b,s:I,s:I,s:I,s:i,s:f}", "id", c->id,
                     "ingress", c->ingress, "max", c->max, "running", c->running,
                     "paused", c->paused, "draining", c->draining, "lease_ms",
                     (json_int_t)c->lease_ms, "mem_total_mb", (json_int_t)c->mem_total_mb,
                     "mem_avail_mb", (json_int_t)c->mem_avail_mb, "cpus", c->cpus,
                     "load1", c->load1);
}

int sf_e2b_capacity_parse(const json_t *j, struct sf_e2b_capacity *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if (!json_is_object(j) || !copy_str((json_t *)j, "id", c->id, sizeof(c->id), true) ||
        !copy_str((json_t *)j, "ingress", c->ingress, sizeof(c->ingress), true)) {
        sf_errf(err, errlen, "malformed E2B worker capacity");
        return -EINVAL;
    }
    c->max = (int)json_integer_value(json_object_get(j, "max"));
    c->running = (int)json_integer_value(json_object_get(j, "running"));
    c->paused = (int)json_integer_value(json_object_get(j, "paused"));
    c->draining = json_is_true(json_object_get(j, "draining"));
    c->lease_ms = json_integer_value(json_object_get(j, "lease_ms"));
    c->mem_total_mb = json_integer_value(json_object_get(j, "mem_total_mb"));
    c->mem_avail_mb = json_integer_value(json_object_get(j, "mem_avail_mb"));
    c->cpus = (int)json_integer_value(json_object_get(j, "cpus"));
    c->load1 = json_number_value(json_object_get(j, "load1"));
    c->age_ms = json_integer_value(json_object_get(j, "age_ms"));
    if (c->lease_ms <= 0) c->lease_ms = 30000;
    return 0;
}

bool sf_e2b_capacity_live(const struct sf_e2b_capacity *c)
{
    return c->age_ms >= 0 && c->age_ms <= c->lease_ms;
}

/* ---- placement ------------------------------------------------------------------ */

struct scored {
    size_t i;
    bool room;
    double score;
    uint32_t tie;
};

static int cmp_scored(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->room != y->room) return x->room ? -1 : 1;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->tie < y->tie ? -1 : x->tie > y->tie;
}

size_t sf_e2b_place(const struct sf_e2b_candidate *v, size_t n, int64_t min_free_mb,
                    uint32_t rnd, size_t *order)
{
    struct scored *s = sf_xcalloc(n ? n : 1, sizeof(*s));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sf_e2b_capacity *c = v[i].cap;
        if (!sf_e2b_capacity_live(c) || c->draining || v[i].down || v[i].refused ||
            !c->ingress[0] || c->max <= 0 || c->mem_avail_mb < min_free_mb)
            continue;
        int free_slots = c->max - c->running - v[i].unseen;
        double slots = (double)free_slots / c->max;
        double mem = c->mem_total_mb > 0 ? (double)c->mem_avail_mb / (double)c->mem_total_mb : 1;
        double load = c->cpus > 0 ? c->load1 / c->cpus : 0;
        s[k].i = i;
        s[k].room = free_slots > 0;
        s[k].score = (slots < mem ? slots : mem) - 0.25 * (load < 1 ? load : 1);
        /* A per-call permutation: equal workers share a burst evenly. */
        s[k].tie = (uint32_t)((i + 1) * 2654435761u) ^ rnd;
        k++;
    }
    qsort(s, k, sizeof(*s), cmp_scored);
    for (size_t i = 0; i < k; i++) order[i] = s[i].i;
    free(s);
    return k;
}
