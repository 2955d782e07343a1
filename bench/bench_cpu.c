/* bench/bench_cpu.c: see bench_cpu.h. */
#include "bench_cpu.h"
#include "util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Where CPU time is read: a cpuacct.usage (ns) or cpu.stat (usage_usec)
 * file covering this process and everything it starts; "" for getrusage. */
static char cpu_file[256];
static bool cpu_v2;

void bench_cpu_setup(void)
{
    char dir[128], path[192], buf[64];
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/cpuacct/sf-bench-%d", (int)getpid());
    if (mkdir(dir, 0755) == 0) {
        snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
        int fd = open(path, O_WRONLY);
        int n = snprintf(buf, sizeof(buf), "%d", (int)getpid());
        if (fd >= 0 && write(fd, buf, (size_t)n) == n)
            snprintf(cpu_file, sizeof(cpu_file), "%s/cpuacct.usage", dir);
        if (fd >= 0) close(fd);
        return;
    }
    char *self = NULL;
    size_t len;
    if (sf_read_file("/proc/self/cgroup", 4096, &self, &len) == 0 && !strncmp(self, "0::/", 4)) {
        self[strcspn(self, "\n")] = '\0';
        if (self[4]) {
            snprintf(cpu_file, sizeof(cpu_file), "/sys/fs/cgroup%s/cpu.stat", self + 3);
            cpu_v2 = true;
        }
    }
    free(self);
}

void bench_cpu_cleanup(void)
{
    if (!cpu_file[0] || cpu_v2) return;
    /* back to the parent, then the cgroup can go */
    int fd = open("/sys/fs/cgroup/cpuacct/cgroup.procs", O_WRONLY);
    char buf[32], dir[128];
    int n = snprintf(buf, sizeof(buf), "%d", (int)getpid());
    if (fd >= 0) { if (write(fd, buf, (size_t)n) != n) {} close(fd); }
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/cpuacct/sf-bench-%d", (int)getpid());
    rmdir(dir);
}

double bench_cpu_us(void)
{
    if (cpu_file[0]) {
        char *s = NULL;
        size_t len;
        double v = -1;
        if (sf_read_file(cpu_file, 4096, &s, &len) == 0) {
            const char *u = cpu_v2 ? strstr(s, "usage_usec ") : s;
            if (u) v = cpu_v2 ? atof(u + 11) : atof(u) / 1000;
        }
        free(s);
        if (v >= 0) return v;
    }
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
            kids.ru_stime.tv_sec) * 1e6 + self.ru_utime.tv_usec + self.ru_stime.tv_usec +
           kids.ru_utime.tv_usec + kids.ru_stime.tv_usec;
}

const char *bench_cpu_source(void)
{
    return cpu_file[0] ? cpu_file : "getrusage (the zygote's children are missed)";
}

double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
