/* bench/sandbox_cost.c: per-task cost of a sandbox at concurrency 1.
 *
 * One task = create a sandbox, write /tmp/input.json, run
 * `cat /tmp/input.json`, read its output, destroy. Three ways, same run:
 *   local  the local backend through common/sandbox/sandbox.h
 *   bwrap  bubblewrap --unshare-all, the input passed with --file
 *   bare   fork+exec of cat on a host file (no isolation; the floor)
 * Prints median and min-max per way, and for "local" the median of each
 * phase (create / write / run / read / destroy). Then runs each way alone
 * once more to report its CPU time per task: this process's threads, the
 * provider's helpers and zygote, every sandbox or bwrap process — counted
 * by a cpuacct cgroup of its own (v1; on v2 its own cgroup's cpu.stat,
 * which covers the sandboxes' cgroups below it), else by getrusage (which
 * misses the zygote's children). Not counted: the kernel's workqueues that
 * tear network namespaces down. That is the cost a busy host pays per
 * task, as opposed to the latency of one.
 * Usage: sandbox_cost [iterations=200]
 * SANDBOX_COST_ONLY=local runs only the local tasks (for a profiler such as
 * `perf record -g`, which then sees nothing but the sandboxes' work). */
#include "bench_cpu.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char input[] = "{\"task\": \"bench\", \"values\": [1, 2, 3, 4, 5]}\n";

/* One local task; returns 0 or prints why it failed. */
static int local_task(struct sf_sandbox_provider *prov, double t[6])
{
    struct sf_sandbox *sb = NULL;
    struct sf_run_result r;
    struct sf_run_spec spec = { .cmd = "cat /tmp/input.json", .timeout_s = 10 };
    char err[SF_ERRSTR_LEN];
    t[0] = bench_now_us();
    if (sf_sandbox_create(prov, &(struct sf_sandbox_opts){ 0 }, &sb, err, sizeof(err))) {
        fprintf(stderr, "create: %s\n", err);
        return -1;
    }
    t[1] = bench_now_us();
    if (sf_sandbox_write_file(sb, "/tmp/input.json", input, strlen(input), 0)) return -1;
    t[2] = bench_now_us();
    if (sf_sandbox_run(sb, &spec, &r) || r.status != SF_RUN_EXITED || strcmp(r.out, input)) {
        fprintf(stderr, "run failed: %s %s\n", sb->errstr, r.error);
        return -1;
    }
    t[3] = bench_now_us();
    sf_run_result_clear(&r);
    t[4] = bench_now_us();
    sf_sandbox_destroy(sb);
    t[5] = bench_now_us();
    return 0;
}

static void report(const char *name, double *v, int n)
{
    double med = bench_median(v, n);
    printf("%-6s median %8.3f ms   min %8.3f   max %8.3f   (n=%d)\n", name, med / 1000,
           v[0] / 1000, v[n - 1] / 1000, n);
}

/* Run argv with stdout to a pipe, collect it, wait. Returns bytes read. */
static ssize_t spawn_collect(char *const argv[], char *buf, size_t size)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], buf + got, size - got)) > 0) got += (size_t)n;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? (ssize_t)got : -1;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 200;
    char err[SF_ERRSTR_LEN];
    signal(SIGPIPE, SIG_IGN);
    bench_cpu_setup();            /* before the provider: its zygote is counted too */
    atexit(bench_cpu_cleanup);
    struct sf_provider_config cfg = { 0 };
    struct sf_sandbox_provider *prov = sf_sandbox_provider_new("local", &cfg, err, sizeof(err));
    if (!prov) { fprintf(stderr, "provider: %s\n", err); return 1; }
    double *local = calloc((size_t)iters, sizeof(double)), *bw = calloc((size_t)iters, sizeof(double));
    double *bare = calloc((size_t)iters, sizeof(double));
    double *ph[5];
    for (int k = 0; k < 5; k++) ph[k] = calloc((size_t)iters, sizeof(double));

    /* bwrap reads the input from an fd; rewound for every task. */
    int mfd = memfd_create("input", 0);
    if (mfd < 0 || write(mfd, input, strlen(input)) != (ssize_t)strlen(input)) return 1;
    char mfd_s[16];
    snprintf(mfd_s, sizeof(mfd_s), "%d", mfd);
    char *bwrap_argv[] = { "/usr/bin/bwrap", "--unshare-all", "--die-with-parent",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        "--file", mfd_s, "/tmp/input.json", "cat", "/tmp/input.json", NULL };
    char host_in[] = "/tmp/sf-bench-input-XXXXXX";
    int hfd = mkstemp(host_in);
    if (hfd < 0 || write(hfd, input, strlen(input)) != (ssize_t)strlen(input)) return 1;
    close(hfd);
    char *bare_argv[] = { "/bin/cat", host_in, NULL };

    const char *only = getenv("SANDBOX_COST_ONLY");
    if (only && !strcmp(only, "local")) {
        double c0 = bench_cpu_us(), w0 = bench_now_us();
        for (int i = 0; i < iters; i++) {
            double t[6];
            if (local_task(prov, t)) return 1;
            local[i] = t[5] - t[0];
        }
        printf("local only: %.3f ms wall, %.3f ms CPU per task (mean of %d)\n",
               (bench_now_us() - w0) / iters / 1000, (bench_cpu_us() - c0) / iters / 1000, iters);
        report("local", local, iters);
        unlink(host_in);
        sf_sandbox_provider_free(prov);
        return 0;
    }
    for (int i = 0; i < iters; i++) {
        /* Interleaved, so drift in machine load hits all three alike. */
        double t[6];
        if (local_task(prov, t)) return 1;
        local[i] = t[5] - t[0];
        for (int k = 0; k < 5; k++) ph[k][i] = t[k + 1] - t[k];

        char buf[4096];
        lseek(mfd, 0, SEEK_SET);
        double t0 = bench_now_us();
        ssize_t n = spawn_collect(bwrap_argv, buf, sizeof(buf));
        bw[i] = bench_now_us() - t0;
        if (n != (ssize_t)strlen(input)) { fprintf(stderr, "bwrap failed\n"); return 1; }

        t0 = bench_now_us();
        n = spawn_collect(bare_argv, buf, sizeof(buf));
        bare[i] = bench_now_us() - t0;
        if (n != (ssize_t)strlen(input)) { fprintf(stderr, "bare failed\n"); return 1; }
    }
    report("local", local, iters);
    report("bwrap", bw, iters);
    report("bare", bare, iters);
    static const char *const names[] = { "create", "write", "run", "read", "destroy" };
    printf("local phases (median ms):");
    for (int k = 0; k < 5; k++) printf(" %s %.3f", names[k], bench_median(ph[k], iters) / 1000);
    printf("\nratio local/bwrap (medians): %.2f\n", bench_median(local, iters) / bench_median(bw, iters));
    printf("CPU counted by %s\n", bench_cpu_source());
    for (int way = 0; way < 3; way++) {
        static const char *const name[] = { "local", "bwrap", "bare" };
        double c0 = bench_cpu_us(), w0 = bench_now_us();
        for (int i = 0; i < iters; i++) {
            double t[6];
            char buf[4096];
            if (way == 0 && local_task(prov, t)) return 1;
            if (way == 1) { lseek(mfd, 0, SEEK_SET); spawn_collect(bwrap_argv, buf, sizeof(buf)); }
            if (way == 2) spawn_collect(bare_argv, buf, sizeof(buf));
        }
        printf("%s alone: %.3f ms wall, %.3f ms CPU per task (mean of %d)\n", name[way],
               (bench_now_us() - w0) / iters / 1000, (bench_cpu_us() - c0) / iters / 1000, iters);
    }
    unlink(host_in);
    sf_sandbox_provider_free(prov);
    return 0;
}
