/* bench/net_cost.c: what network costs a local sandbox (docs/benchmarks.md §9).
 *
 *  1. Per-task cost at concurrency 1, the three network modes interleaved:
 *     off ("network": false), internet ("network": true, the default
 *     policy) and allow-list ({"deny_out": ["0.0.0.0/0"], "allow_out": [...]}).
 *     One task = create, write /tmp/input.json, run `cat /tmp/input.json`,
 *     read the output, destroy (as sandbox_cost.c). Median and min per mode,
 *     the create phase alone, then each mode alone again for its CPU time
 *     per task (bench_cpu.h: the process and everything it starts — the
 *     zygote's sandboxes, the pool helpers, the egress proxy).
 *  2. A TCP stream: this program's "send" mode writes MB megabytes to a sink
 *     ("sink" mode) on a test host in a network namespace of its own
 *     (198.51.100.x, joined by a veth pair), once from the host network and
 *     once from inside a sandbox, through the egress path; the ratio of the
 *     two rates, and the CPU the worker side spent per GB.
 * Needs root (namespaces, veth). Usage:
 *   net_cost [iterations=200] [MB=1024]
 *   net_cost sink PORT            (internal)
 *   net_cost send IP PORT MB      (internal) */
#include "bench_cpu.h"
#include "sandbox.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char input[] = "{\"task\": \"bench\", \"values\": [1, 2, 3, 4, 5]}\n";

/* ---- 2. the stream's two ends -------------------------------------------------- */

static int sink(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 8) < 0) return 1;
    static char buf[1 << 20];
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        long long n = 0;
        ssize_t r;
        while ((r = read(c, buf, sizeof(buf))) > 0) n += r;
        (void)!write(c, &n, sizeof(n));
        close(c);
    }
}

/* Prints "MB seconds". */
static int send_mb(const char *ip, int port, int mb)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        return 1;
    }
    static char buf[1 << 20];
    double t0 = bench_now_us();
    for (int i = 0; i < mb; i++)
        if (sf_write_all(s, buf, sizeof(buf)) < 0) {
            perror("write");
            return 1;
        }
    shutdown(s, SHUT_WR);
    long long got = 0;
    if (read(s, &got, sizeof(got)) != (ssize_t)sizeof(got) || got != (long long)mb << 20) {
        fprintf(stderr, "sink got %lld bytes\n", got);
        return 1;
    }
    printf("%d %.6f\n", mb, (bench_now_us() - t0) / 1e6);
    return 0;
}

/* ---- 1. per-task cost ------------------------------------------------------------- */

enum { OFF = 0, INTERNET, ALLOW, NMODES };
static const char *const mode_names[NMODES] = { "off", "internet", "allow-list" };

static int task(struct sf_sandbox_provider *prov, const struct sf_sandbox_opts *o, double *total,
                double *create)
{
    struct sf_sandbox *sb = NULL;
    struct sf_run_result r;
    struct sf_run_spec spec = { .cmd = "cat /tmp/input.json", .timeout_s = 10 };
    char err[SF_ERRSTR_LEN];
    double t0 = bench_now_us();
    if (sf_sandbox_create(prov, o, &sb, err, sizeof(err))) {
        fprintf(stderr, "create: %s\n", err);
        return -1;
    }
    double t1 = bench_now_us();
    int rc = sf_sandbox_write_file(sb, "/tmp/input.json", input, sizeof(input) - 1, 0644) ||
             sf_sandbox_run(sb, &spec, &r) || r.exit_code || strcmp(r.out, input);
    if (!rc) sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
    *total = bench_now_us() - t0;
    *create = t1 - t0;
    return rc ? -1 : 0;
}

static void report(const char *what, double *v, int n)
{
    double lo = v[0], hi = v[0];
    for (int i = 1; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    printf("  %-22s median %6.2f ms  min %6.2f  max %7.2f\n", what, bench_median(v, n) / 1e3, lo / 1e3,
           hi / 1e3);
}

static int per_task(struct sf_sandbox_provider *prov, struct sf_sandbox_opts *opts, int n)
{
    double *tot[NMODES], *cre[NMODES];
    for (int m = 0; m < NMODES; m++) {
        tot[m] = calloc((size_t)n, sizeof(double));
        cre[m] = calloc((size_t)n, sizeof(double));
    }
    printf("per task, %d iterations of each mode, interleaved:\n", n);
    for (int i = 0; i < n; i++)
        for (int m = 0; m < NMODES; m++)
            if (task(prov, &opts[m], &tot[m][i], &cre[m][i]) < 0) return 1;
    for (int m = 0; m < NMODES; m++) {
        char what[64];
        snprintf(what, sizeof(what), "%s: task", mode_names[m]);
        report(what, tot[m], n);
        snprintf(what, sizeof(what), "%s: create", mode_names[m]);
        report(what, cre[m], n);
    }
    printf("CPU per task, each mode alone (%d tasks; counted by %s):\n", n, bench_cpu_source());
    for (int m = 0; m < NMODES; m++) {
        usleep(300 * 1000);                      /* let the pools refill first */
        double c0 = bench_cpu_us(), x, y;
        for (int i = 0; i < n; i++)
            if (task(prov, &opts[m], &x, &y) < 0) return 1;
        usleep(300 * 1000);                      /* and count their refills */
        printf("  %-10s %.2f ms\n", mode_names[m], (bench_cpu_us() - c0) / n / 1e3);
    }
    for (int m = 0; m < NMODES; m++) {
        free(tot[m]);
        free(cre[m]);
    }
    return 0;
}

/* ---- 2. the stream ---------------------------------------------------------------- */

static char ns_name[32], veth[16];

static void stream_cleanup(void)
{
    char cmd[200];
    if (!ns_name[0]) return;
    snprintf(cmd, sizeof(cmd), "ip netns pids %s | xargs -r kill; ip netns del %s", ns_name, ns_name);
    (void)!system(cmd);
}

/* Run "send" from the host (argv0 directly) or from a sandbox; its rate in MB/s. */
static double rate(const char *out)
{
    int mb;
    double s;
    return sscanf(out, "%d %lf", &mb, &s) == 2 && s > 0 ? mb / s : -1;
}

static int stream(struct sf_sandbox_provider *prov, const char *self, int mb, int rounds)
{
    char cmd[8192], ip[32] = "";
    int pid = (int)getpid(), port = 5201;
    snprintf(ns_name, sizeof(ns_name), "sfbench-%d", pid);
    snprintf(veth, sizeof(veth), "sfbv%d", pid % 100000);
    for (int k = 0; k < 64 && !ip[0]; k++) {     /* a free /30 of 198.51.100.0/24 */
        int base = 4 * ((pid + k) % 64);
        snprintf(cmd, sizeof(cmd), "ip -o -4 addr show | grep -q ' 198.51.100.%d/'", base + 1);
        if (system(cmd) == 0) continue;
        snprintf(cmd, sizeof(cmd),
                 "ip netns add %s && ip link add %sa type veth peer name %sb && "
                 "ip link set %sb netns %s && ip addr add 198.51.100.%d/30 dev %sa && ip link set %sa up && "
                 "ip -n %s addr add 198.51.100.%d/30 dev %sb && ip -n %s link set %sb up && "
                 "ip -n %s link set lo up", ns_name, veth, veth, veth, ns_name, base + 1, veth, veth,
                 ns_name, base + 2, veth, ns_name, veth, ns_name);
        if (system(cmd) != 0) return 1;
        snprintf(ip, sizeof(ip), "198.51.100.%d", base + 2);
    }
    atexit(stream_cleanup);
    snprintf(cmd, sizeof(cmd), "ip netns exec %s %s sink %d &", ns_name, self, port);
    if (system(cmd) != 0) return 1;
    usleep(300 * 1000);
    /* The sender inside the sandbox is this very binary, copied in. */
    char *bin = NULL;
    size_t blen;
    if (sf_read_file(self, 64 << 20, &bin, &blen) < 0) return 1;
    struct sf_sandbox *sb = NULL;
    char err[SF_ERRSTR_LEN];
    struct sf_sandbox_opts on = { .network = true };
    if (sf_sandbox_create(prov, &on, &sb, err, sizeof(err)) ||
        sf_sandbox_write_file(sb, "/tmp/nc", bin, blen, 0755)) {
        fprintf(stderr, "sandbox: %s %s\n", err, sb ? sb->errstr : "");
        return 1;
    }
    free(bin);
    printf("TCP stream of %d MB to a test host on a veth pair (%s), %d rounds:\n", mb, ip, rounds);
    double host[16], sbx[16], cpu_sbx[16];
    for (int r = 0; r < rounds && r < 16; r++) {
        snprintf(cmd, sizeof(cmd), "%s send %s %d %d", self, ip, port, mb);
        FILE *f = popen(cmd, "r");
        char line[128] = "";
        if (!f || !fgets(line, sizeof(line), f)) return 1;
        pclose(f);
        host[r] = rate(line);
        char run[128];
        snprintf(run, sizeof(run), "/tmp/nc send %s %d %d", ip, port, mb);
        struct sf_run_spec spec = { .cmd = run, .timeout_s = 300 };
        struct sf_run_result rr;
        double c0 = bench_cpu_us();
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        if (sf_sandbox_run(sb, &spec, &rr) || rr.exit_code) {
            fprintf(stderr, "send in the sandbox: %s %s\n", rr.err_tail ? rr.err_tail : "", rr.error);
            return 1;
        }
        getrusage(RUSAGE_SELF, &ru1);
        (void)c0;
        /* The worker side: this process's threads (the egress proxy). */
        double self_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                          ru0.ru_stime.tv_sec) * 1e6 + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                         (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
        cpu_sbx[r] = self_us / 1e6 / (mb / 1024.0);
        sbx[r] = rate(rr.out);
        sf_run_result_clear(&rr);
        printf("  round %d: host network %7.0f MB/s   egress path %7.0f MB/s   ratio %.2f   "
               "proxy CPU %.2f s/GB\n", r + 1, host[r], sbx[r], sbx[r] / host[r], cpu_sbx[r]);
    }
    double mh = bench_median(host, rounds), ms = bench_median(sbx, rounds);
    printf("  median: host %.0f MB/s, egress %.0f MB/s, ratio %.2f, proxy CPU %.2f s/GB\n",
           mh, ms, ms / mh, bench_median(cpu_sbx, rounds));
    sf_sandbox_destroy(sb);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "sink")) return sink(atoi(argv[2]));
    if (argc >= 5 && !strcmp(argv[1], "send")) return send_mb(argv[2], atoi(argv[3]), atoi(argv[4]));
    int n = argc > 1 ? atoi(argv[1]) : 200, mb = argc > 2 ? atoi(argv[2]) : 1024;
    signal(SIGPIPE, SIG_IGN);
    char err[SF_ERRSTR_LEN], self[2048];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0) return 1;
    self[sl] = '\0';
    bench_cpu_setup();                  /* before the provider: its zygote is counted too */
    atexit(bench_cpu_cleanup);
    struct sf_sandbox_provider *prov = sf_sandbox_provider_new("local", NULL, err, sizeof(err));
    if (!prov) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char rules_err[256];
    json_t *rj = json_loads("{\"deny_out\": [\"0.0.0.0/0\"], \"allow_out\": [\"api.example.com\", "
                            "\"203.0.113.0/24\"]}", 0, NULL);
    struct sf_netpolicy *rules = sf_netpolicy_from_json(rj, SF_NETPOLICY_STEP, rules_err, sizeof(rules_err));
    json_decref(rj);
    struct sf_sandbox_opts opts[NMODES] = {
        [OFF] = { .network = false },
        [INTERNET] = { .network = true },
        [ALLOW] = { .network = true, .net_policy = rules },
    };
    int rc = per_task(prov, opts, n);
    if (!rc && mb > 0) rc = stream(prov, self, mb, 5);
    sf_netpolicy_free(rules);
    sf_sandbox_provider_free(prov);
    return rc;
}
