/* base/fsat: calls that stay under a directory fd. The tree they act on is
 * another party's (a sandbox, an image), so its shape is hostile too: a
 * chain of directories far deeper than the process has file descriptors
 * (or stack for one frame per level) must still be removed, with a
 * bounded number of descriptors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "fsat.h"

static char base[64];

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/sf-test-fsat-%d", (int)getpid());
    return mkdir(base, 0700);
}

static int teardown(void **state)
{
    (void)state;
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    sf_remove_at(fd, base + 5);
    close(fd);
    return 0;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n - 1;                        /* the listing's own */
}

/* name/name/.../name, 'depth' levels below dirfd, a file at the bottom. */
static void make_chain(int dirfd, const char *name, int depth)
{
    int fd = dup(dirfd);
    for (int i = 0; i < depth; i++) {
        assert_int_equal(mkdirat(fd, name, 0755), 0);
        int sub = openat(fd, name, O_RDONLY | O_DIRECTORY);
        assert_true(sub >= 0);
        close(fd);
        fd = sub;
    }
    int f = openat(fd, "leaf", O_WRONLY | O_CREAT, 0644);
    assert_true(f >= 0);
    close(f);
    close(fd);
}

static int fd_limit_remove(int dirfd, const char *name, rlim_t limit)
{
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = (struct rlimit){ limit, old.rlim_max };
    setrlimit(RLIMIT_NOFILE, &low);
    int rc = sf_remove_at(dirfd, name);
    setrlimit(RLIMIT_NOFILE, &old);
    return rc;
}

static void a_chain_deeper_than_the_fd_limit_is_removed(void **state)
{
    (void)state;
    int dir = open(base, O_RDONLY | O_DIRECTORY);
    assert_true(dir >= 0);
    make_chain(dir, "d", 3000);
    /* 3000 levels with 128 descriptors: one per level would run out. */
    assert_int_equal(fd_limit_remove(dir, "d", 128), 0);
    assert_int_equal(faccessat(dir, "d", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    assert_int_equal(errno, ENOENT);
    close(dir);
}

static void removing_holds_few_descriptors(void **state)
{
    (void)state;
    int dir = open(base, O_RDONLY | O_DIRECTORY);
    make_chain(dir, "x", 500);
    int before = open_fds();
    /* open_fds() + 40: a bound independent of the depth. */
    assert_int_equal(fd_limit_remove(dir, "x", (rlim_t)before + 40), 0);
    assert_int_equal(open_fds(), before);
    assert_int_equal(faccessat(dir, "x", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    close(dir);
}

static void symlinks_inside_are_removed_not_followed(void **state)
{
    (void)state;
    char outside[128];
    int dir = open(base, O_RDONLY | O_DIRECTORY);
    assert_int_equal(mkdirat(dir, "keep", 0755), 0);
    int f = openat(dir, "keep/file", O_WRONLY | O_CREAT, 0644);
    close(f);
    make_chain(dir, "t", 100);
    /* A link at the bottom of a deep chain to a directory beside it. */
    snprintf(outside, sizeof(outside), "%s/keep", base);
    char path[1024] = "t";
    for (int i = 1; i < 100; i++) strcat(path, "/t");
    strcat(path, "/link");
    assert_int_equal(symlinkat(outside, dir, path), 0);
    assert_int_equal(sf_remove_at(dir, "t"), 0);
    assert_int_equal(faccessat(dir, "keep/file", F_OK, 0), 0);
    assert_int_equal(sf_remove_at(dir, "keep"), 0);
    close(dir);
}

static void emptying_a_directory_keeps_it(void **state)
{
    (void)state;
    int dir = open(base, O_RDONLY | O_DIRECTORY);
    assert_int_equal(mkdirat(dir, "e", 0755), 0);
    int e = openat(dir, "e", O_RDONLY | O_DIRECTORY);
    make_chain(e, "c", 200);
    make_chain(e, "b", 3);
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = (struct rlimit){ (rlim_t)open_fds() + 40, old.rlim_max };
    setrlimit(RLIMIT_NOFILE, &low);
    int rc = sf_empty_dir(e);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(rc, 0);
    size_t n;
    char **names = sf_dir_names(e, &n);
    assert_int_equal(n, 0);
    sf_dir_names_free(names, n);
    close(e);
    assert_int_equal(unlinkat(dir, "e", AT_REMOVEDIR), 0);
    close(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_chain_deeper_than_the_fd_limit_is_removed),
        cmocka_unit_test(removing_holds_few_descriptors),
        cmocka_unit_test(symlinks_inside_are_removed_not_followed),
        cmocka_unit_test(emptying_a_directory_keeps_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
