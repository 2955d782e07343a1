/* bench/bench_cpu.h: CPU time of this process and everything it starts,
 * the zygote's sandboxes included (they are not this process's children,
 * so getrusage would miss them): a cpuacct cgroup of its own on v1, its own
 * cgroup's cpu.stat on v2, getrusage when neither can be had. And the wall
 * clock and median every driver reports with. */
#ifndef SF_BENCH_CPU_H
#define SF_BENCH_CPU_H

/* Move this process into its own accounting cgroup: call before the
 * provider starts (its zygote must be counted too). */
void bench_cpu_setup(void);
/* Back to the parent cgroup; the cgroup goes (atexit). */
void bench_cpu_cleanup(void);
/* Microseconds of CPU so far. */
double bench_cpu_us(void);
/* What is counted: the file read, or a sentence for getrusage. */
const char *bench_cpu_source(void);

/* Monotonic wall clock, microseconds. */
double bench_now_us(void);
/* Median of v[0..n), n > 0; sorts v in place. */
double bench_median(double *v, int n);

#endif
