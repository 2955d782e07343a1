/* The local sandbox's file system interface (sandbox_fs.h, what the E2B
 * server's filesystem service stands on) against trees a hostile sandbox
 * shapes: whatever it builds, a call from the worker holds a bounded number
 * of the worker's file descriptors, because those are shared by every
 * sandbox, connection and task of the worker.
 *   - a chain of 5000 directories is removed with 128 descriptors;
 *   - a recursive watch of 1000 directories costs a handful of
 *     descriptors, not one per directory, and still reports events below
 *     a directory made after it started. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "sandbox.h"
#include "sandbox_fs.h"
#include "util.h"

#include "sbx_harness.h"

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n - 1;
}

static void a_deep_chain_is_removed_with_few_descriptors(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    /* (python: a shell's cd keeps the whole path, longer than PATH_MAX here) */
    expect_out(sb, "cd /home/user && python3 -c 'import os\nfor i in range(5000): os.mkdir(\"d\"); "
               "os.chdir(\"d\")\nopen(\"leaf\", \"w\").write(\"x\")' && echo built", "built\n");
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = (struct rlimit){ (rlim_t)open_fds() + 128, old.rlim_max };
    setrlimit(RLIMIT_NOFILE, &low);
    int rc = sf_sandbox_fs(sb)->remove(sb, SF_FS_UID_ROOT, "/home/user/d");
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(rc, 0);
    expect_out(sb, "ls -A /home/user | grep -c . || true", "0\n");
    sf_sandbox_destroy(sb);
}

struct seen {
    char names[64][256];
    int n;
};

static void on_event(void *arg, const struct sf_fs_event *ev)
{
    struct seen *s = arg;
    if (s->n < 64) sf_strlcpy(s->names[s->n++], ev->name, sizeof(s->names[0]));
}

/* Wait (up to 5 s) for an event named 'name'. */
static bool wait_event(struct sf_fs_watch *w, const char *name)
{
    struct seen s = { .n = 0 };
    for (int i = 0; i < 50; i++) {
        struct pollfd p = { sf_fs_watch_fd(w), POLLIN, 0 };
        if (poll(&p, 1, 100) > 0) sf_fs_watch_read(w, on_event, &s);
        for (int k = 0; k < s.n; k++)
            if (!strcmp(s.names[k], name)) return true;
        s.n = 0;
    }
    return false;
}

static void a_recursive_watch_costs_few_descriptors(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "mkdir -p /home/user/w && cd /home/user/w && i=0; while [ $i -lt 1000 ]; do "
               "mkdir d$i; i=$((i+1)); done; mkdir -p d5/a/b/c && echo built", "built\n");
    int before = open_fds();
    struct sf_fs_watch *w = NULL;
    assert_int_equal(sf_sandbox_fs(sb)->watch(sb, SF_FS_UID_USER, "/home/user/w", true, &w), 0);
    int during = open_fds();
    if (during - before > 8) fail_msg("a watch of 1000 directories holds %d descriptors", during - before);
    /* Still recursive: below an existing directory, and below a new one. */
    expect_out(sb, "touch /home/user/w/d5/a/b/c/f && echo ok", "ok\n");
    assert_true(wait_event(w, "d5/a/b/c/f"));
    expect_out(sb, "mkdir /home/user/w/d7/new && echo ok", "ok\n");
    assert_true(wait_event(w, "d7/new"));
    expect_out(sb, "touch /home/user/w/d7/new/g && echo ok", "ok\n");
    assert_true(wait_event(w, "d7/new/g"));
    sf_fs_watch_free(w);
    assert_int_equal(open_fds(), before);
    sf_sandbox_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_deep_chain_is_removed_with_few_descriptors),
        cmocka_unit_test(a_recursive_watch_costs_few_descriptors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
