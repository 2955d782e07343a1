/* bench/e2b_roundtrip.c: create → command → kill through the E2B API with
 * sandfleet's C e2b backend (common/sandbox/e2b/sandbox_e2b.c), N times; prints every
 * round trip in ms, then median, min and max. Configured like the SDKs
 * (E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL). A failed round trip stops
 * the run with its message: a benchmark of failures measures nothing. */
#include "sandbox.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20;
    char err[SF_ERRSTR_LEN];
    struct sf_provider_config cfg = { 0 };
    if (n < 1) n = 1;
    struct sf_sandbox_provider *p = sf_sandbox_provider_new("e2b", &cfg, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "e2b_roundtrip: %s\n", err);
        return 1;
    }
    double *ms = sf_xcalloc((size_t)n, sizeof(double));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct sf_sandbox *sb = NULL;
        struct sf_run_result res;
        struct sf_sandbox_opts opts = { .label = "bench" };
        struct sf_run_spec spec = { .cmd = "echo hi", .timeout_s = 30 };
        int64_t t0 = sf_now_us();
        if (sf_sandbox_create(p, &opts, &sb, err, sizeof(err)) < 0) {
            fprintf(stderr, "e2b_roundtrip: create: %s\n", err);
            rc = 1;
            break;
        }
        int r = sf_sandbox_run(sb, &spec, &res);
        bool ok = r == 0 && res.status == SF_RUN_EXITED && !strcmp(res.out, "hi\n");
        if (!ok) fprintf(stderr, "e2b_roundtrip: run: %s\n", r ? sb->errstr : res.error);
        if (r == 0) sf_run_result_clear(&res);
        sf_sandbox_destroy(sb);
        ms[i] = (double)(sf_now_us() - t0) / 1000.0;
        if (!ok) {
            rc = 1;
            break;
        }
        printf("%.2f\n", ms[i]);
    }
    if (rc == 0) {
        qsort(ms, (size_t)n, sizeof(double), cmp_ms);
        double med = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
        printf("c-client n=%d median=%.1f min=%.1f max=%.1f ms\n", n, med, ms[0], ms[n - 1]);
    }
    free(ms);
    sf_sandbox_provider_free(p);
    return rc;
}
