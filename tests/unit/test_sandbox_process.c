/* The process backend closes each of its descriptors exactly once, also
 * when pidfd_open fails (issue 16: the pipes were closed twice, and in the
 * threaded worker the second close could hit a descriptor another slot or a
 * Redis connection had just been given). The test sees every close(2) of
 * the library (this executable's close() is the one it links against) and
 * makes pidfd_open fail with a seccomp filter on the running thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "sandbox.h"

static _Atomic int bad_closes;        /* close() calls on a descriptor that was not open */
static _Atomic int watching;

int close(int fd)
{
    long r = syscall(SYS_close, fd);
    if (r < 0 && errno == EBADF && watching) bad_closes++;
    return (int)r;
}

struct failing_run {
    struct sf_sandbox *sb;
    int rc;
    char errstr[SF_ERRSTR_LEN];
};

/* On a thread of its own whose seccomp filter fails pidfd_open (filters are
 * per thread; the rest of the test is unaffected). */
static void *run_without_pidfd(void *arg)
{
    struct failing_run *fr = arg;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    assert_non_null(ctx);
    assert_int_equal(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(pidfd_open), 0), 0);
    assert_int_equal(seccomp_load(ctx), 0);
    seccomp_release(ctx);
    struct sf_run_spec spec = { .cmd = "true" };
    struct sf_run_result res;
    watching = 1;
    fr->rc = sf_sandbox_run(fr->sb, &spec, &res);
    watching = 0;
    snprintf(fr->errstr, sizeof(fr->errstr), "%s", fr->sb->errstr);
    sf_run_result_clear(&res);
    return NULL;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static void each_fd_is_closed_once_when_pidfd_open_fails(void **state)
{
    (void)state;
    char err[SF_ERRSTR_LEN];
    struct sf_provider_config pcfg = {0};
    struct sf_sandbox_provider *p = sf_sandbox_provider_new("process", &pcfg, err, sizeof(err));
    assert_non_null(p);
    struct sf_sandbox_opts o = {0};
    struct sf_sandbox *sb = NULL;
    assert_int_equal(sf_sandbox_create(p, &o, &sb, err, sizeof(err)), 0);

    int before = open_fds();
    struct failing_run fr = { .sb = sb };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_without_pidfd, &fr), 0);
    pthread_join(th, NULL);
    assert_int_equal(fr.rc, -ENOSYS);
    assert_non_null(strstr(fr.errstr, "spawn"));
    assert_int_equal(bad_closes, 0);              /* each descriptor closed once */
    assert_int_equal(open_fds(), before);         /* and none leaked */

    /* The sandbox still works on a thread that has pidfd_open. */
    struct sf_run_spec spec = { .cmd = "true" };
    struct sf_run_result res;
    assert_int_equal(sf_sandbox_run(sb, &spec, &res), 0);
    assert_int_equal(res.exit_code, 0);
    sf_run_result_clear(&res);
    sf_sandbox_destroy(sb);
    sf_sandbox_provider_free(p);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_fd_is_closed_once_when_pidfd_open_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
