/* sbx_cgroup against fake cgroup trees (regular files in a temp dir): v1
 * and v2 detection, base placement, limits written, OOM counter parsing,
 * cleanup. The kernel creates a cgroup's control files on mkdir; here the
 * test plays the kernel and creates them first. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "sbx_cgroup.h"

static char root[64];

static void put(const char *path, const char *content)
{
    char full[512];
    snprintf(full, sizeof(full), "%s/%s", root, path);
    FILE *f = fopen(full, "w");
    if (!f) fail_msg("create %s: %s", full, strerror(errno));
    fputs(content, f);
    fclose(f);
}

static void dir(const char *path)
{
    char full[512];
    snprintf(full, sizeof(full), "%s/%s", root, path);
    if (mkdir(full, 0755) < 0 && errno != EEXIST) fail_msg("mkdir %s: %s", full, strerror(errno));
}

/* First line of a file, as a fresh cgroupfs read would show it. */
static const char *first_line(const char *path)
{
    static char buf[256];
    char full[512];
    snprintf(full, sizeof(full), "%s/%s", root, path);
    FILE *f = fopen(full, "r");
    if (!f) return "(missing)";
    if (!fgets(buf, sizeof(buf), f)) buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static bool exists(const char *path)
{
    char full[512];
    snprintf(full, sizeof(full), "%s/%s", root, path);
    return access(full, F_OK) == 0;
}

static int rm_cb(const char *p, const struct stat *st, int fl, struct FTW *ftw)
{
    (void)st; (void)fl; (void)ftw;
    remove(p);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/sf-cgtest-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Remove what the kernel would remove with the directory. */
static void kernel_rmdir_files(const char *cg, const char *const *files)
{
    char p[512];
    for (size_t i = 0; files[i]; i++) {
        snprintf(p, sizeof(p), "%s/%s/%s", root, cg, files[i]);
        unlink(p);
    }
}

static const char *const v1_mem_files[] = { "memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                                            "memory.oom_control", "cgroup.procs", NULL };
static const char *const v1_pids_files[] = { "pids.max", "cgroup.procs", NULL };

static void make_v1_tree(void)
{
    dir("memory"); dir("pids");
    put("memory/cgroup.procs", "");
    put("memory/memory.memsw.limit_in_bytes", "");
    put("pids/cgroup.procs", "");
    put("self", "12:pids:/\n4:memory:/job/abc\n1:name=systemd:/\n0::/\n");
    dir("memory/job"); dir("memory/job/abc"); dir("memory/job/abc/sandfleet");
    put("memory/job/abc/sandfleet/memory.memsw.limit_in_bytes", "");
}

static void v1_base_under_own_cgroup_and_limits(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    make_v1_tree();
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)), 0);
    assert_int_equal(base.version, 1);
    assert_true(exists("memory/job/abc/sandfleet"));
    assert_true(exists("pids/sandfleet"));
    assert_true(base.has_memsw);

    /* The "kernel" creates the control files of the new cgroup. */
    dir("memory/job/abc/sandfleet/sb1"); dir("pids/sandfleet/sb1");
    for (size_t i = 0; v1_mem_files[i]; i++) {
        char p[256];
        snprintf(p, sizeof(p), "memory/job/abc/sandfleet/sb1/%s", v1_mem_files[i]);
        put(p, "");
    }
    put("pids/sandfleet/sb1/pids.max", "");
    put("pids/sandfleet/sb1/cgroup.procs", "");
    struct sf_sbx_cgroup cg;
    assert_int_equal(sf_sbx_cgroup_create(&base, "sb1", 64, 32, &cg, err, sizeof(err)), 0);
    assert_string_equal(first_line("memory/job/abc/sandfleet/sb1/memory.limit_in_bytes"), "67108864");
    assert_string_equal(first_line("memory/job/abc/sandfleet/sb1/memory.memsw.limit_in_bytes"), "67108864");
    assert_string_equal(first_line("pids/sandfleet/sb1/pids.max"), "32");

    assert_int_equal(sf_sbx_cgroup_attach(&cg, 4242, err, sizeof(err)), 0);
    assert_string_equal(first_line("memory/job/abc/sandfleet/sb1/cgroup.procs"), "4242");
    assert_string_equal(first_line("pids/sandfleet/sb1/cgroup.procs"), "4242");
    /* A child joins by itself: "0" into each hierarchy's tasks file. */
    int fds[2];
    assert_int_equal(sf_sbx_cgroup_open_join(&cg, fds), -ENOENT);   /* no tasks files yet */
    assert_int_equal(fds[0], -1);
    put("memory/job/abc/sandfleet/sb1/tasks", "");
    put("pids/sandfleet/sb1/tasks", "");
    assert_int_equal(sf_sbx_cgroup_open_join(&cg, fds), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(write(fds[i], "0", 1), 1);
        close(fds[i]);
    }
    assert_string_equal(first_line("memory/job/abc/sandfleet/sb1/tasks"), "0");
    assert_string_equal(first_line("pids/sandfleet/sb1/tasks"), "0");
    char tasks[256];
    snprintf(tasks, sizeof(tasks), "%s/memory/job/abc/sandfleet/sb1/tasks", root);
    unlink(tasks);                      /* the fake kernel's own file again */
    snprintf(tasks, sizeof(tasks), "%s/pids/sandfleet/sb1/tasks", root);
    unlink(tasks);

    /* Growing: memsw is raised before memory (the kernel demands memsw >= memory). */
    put("memory/job/abc/sandfleet/sb1/memory.limit_in_bytes", "");
    assert_int_equal(sf_sbx_cgroup_set_limits(&cg, 128, 32, err, sizeof(err)), 0);
    assert_string_equal(first_line("memory/job/abc/sandfleet/sb1/memory.limit_in_bytes"), "134217728");
    /* Unchanged values are not written again. */
    put("pids/sandfleet/sb1/pids.max", "untouched\n");
    assert_int_equal(sf_sbx_cgroup_set_limits(&cg, 128, 32, err, sizeof(err)), 0);
    assert_string_equal(first_line("pids/sandfleet/sb1/pids.max"), "untouched");

    uint64_t n = 99;
    put("memory/job/abc/sandfleet/sb1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    assert_int_equal(sf_sbx_cgroup_oom_kills(&cg, &n), 0);
    assert_int_equal(n, 3);

    /* A non-empty dir (processes still exiting) is an error, then cleanup works. */
    assert_true(sf_sbx_cgroup_destroy(&cg, 0) < 0);
    cg.version = 1;
    kernel_rmdir_files("memory/job/abc/sandfleet/sb1", v1_mem_files);
    kernel_rmdir_files("pids/sandfleet/sb1", v1_pids_files);
    assert_int_equal(sf_sbx_cgroup_destroy(&cg, 0), 0);
    assert_false(exists("memory/job/abc/sandfleet/sb1"));
    assert_false(exists("pids/sandfleet/sb1"));
    assert_int_equal(sf_sbx_cgroup_destroy(&cg, 0), 0);    /* idempotent */
}

static void sweep_removes_empty_leftovers_only(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    make_v1_tree();
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)), 0);
    /* A pid that cannot exist (above pid_max) stands for a dead worker. */
    dir("memory/job/abc/sandfleet/sf-99999999-dead1");
    dir("pids/sandfleet/sf-99999999-dead1");
    dir("memory/job/abc/sandfleet/sf-99999999-live");   /* busy: rmdir refuses */
    put("memory/job/abc/sandfleet/sf-99999999-live/cgroup.procs", "1234\n");
    char mine[64];                                       /* a live worker's, still empty */
    snprintf(mine, sizeof(mine), "memory/job/abc/sandfleet/sf-%d-creating", (int)getpid());
    dir(mine);
    dir("memory/job/abc/sandfleet/sf-noowner");         /* no pid: not ours to judge */
    dir("memory/job/abc/sandfleet/other");              /* not ours */
    assert_int_equal(sf_sbx_cgroup_sweep(&base, "sf-"), 2);
    assert_false(exists("memory/job/abc/sandfleet/sf-99999999-dead1"));
    assert_false(exists("pids/sandfleet/sf-99999999-dead1"));
    assert_true(exists("memory/job/abc/sandfleet/sf-99999999-live"));
    assert_true(exists(mine));
    assert_true(exists("memory/job/abc/sandfleet/sf-noowner"));
    assert_true(exists("memory/job/abc/sandfleet/other"));
}

static void v1_parent_override_and_missing_file_error(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    make_v1_tree();
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, "/jobs/sf", err, sizeof(err)), 0);
    assert_true(exists("memory/jobs/sf"));
    assert_true(exists("pids/jobs/sf"));
    /* No control files: the limit write fails, names the file, leaves nothing. */
    struct sf_sbx_cgroup cg;
    assert_int_equal(sf_sbx_cgroup_create(&base, "sb2", 64, 32, &cg, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "memory.limit_in_bytes"));
    assert_false(exists("memory/jobs/sf/sb2"));
    assert_false(exists("pids/jobs/sf/sb2"));
}

static void v2_delegation_limits_and_events(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    put("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put("cgroup.subtree_control", "");
    dir("app");
    put("app/cgroup.subtree_control", "");
    dir("app/sandfleet");
    put("app/sandfleet/cgroup.subtree_control", "memory pids\n");
    put("self", "0::/app\n");
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)), 0);
    assert_int_equal(base.version, 2);
    /* Controllers enabled where missing, left alone where present. */
    assert_string_equal(first_line("cgroup.subtree_control"), "+memory +pids");
    assert_string_equal(first_line("app/cgroup.subtree_control"), "+memory +pids");
    assert_string_equal(first_line("app/sandfleet/cgroup.subtree_control"), "memory pids");

    dir("app/sandfleet/sb");
    static const char *const files[] = { "memory.max", "memory.swap.max", "pids.max",
                                         "cgroup.procs", "memory.events", NULL };
    for (size_t i = 0; files[i]; i++) {
        char p[128];
        snprintf(p, sizeof(p), "app/sandfleet/sb/%s", files[i]);
        put(p, "");
    }
    struct sf_sbx_cgroup cg;
    if (sf_sbx_cgroup_create(&base, "sb", 512, 256, &cg, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_string_equal(first_line("app/sandfleet/sb/memory.max"), "536870912");
    assert_string_equal(first_line("app/sandfleet/sb/memory.swap.max"), "0");
    assert_string_equal(first_line("app/sandfleet/sb/pids.max"), "256");
    assert_int_equal(sf_sbx_cgroup_attach(&cg, 77, err, sizeof(err)), 0);
    assert_string_equal(first_line("app/sandfleet/sb/cgroup.procs"), "77");
    int fds[2];
    assert_int_equal(sf_sbx_cgroup_open_join(&cg, fds), 0);   /* v2: the worker attaches */
    assert_true(fds[0] == -1 && fds[1] == -1);
    uint64_t n = 0;
    put("app/sandfleet/sb/memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n");
    assert_int_equal(sf_sbx_cgroup_oom_kills(&cg, &n), 0);
    assert_int_equal(n, 2);
    /* pause: cgroup.freeze, done once cgroup.events says so (the kernel
     * would write it; here it already does) */
    put("app/sandfleet/sb/cgroup.freeze", "0\n");
    put("app/sandfleet/sb/cgroup.events", "populated 1\nfrozen 1\n");
    assert_int_equal(sf_sbx_cgroup_freeze(&cg, true), 0);
    assert_string_equal(first_line("app/sandfleet/sb/cgroup.freeze"), "1");
    put("app/sandfleet/sb/cgroup.events", "populated 1\nfrozen 0\n");
    assert_int_equal(sf_sbx_cgroup_freeze(&cg, false), 0);
    assert_string_equal(first_line("app/sandfleet/sb/cgroup.freeze"), "0");
    /* metrics: cpu.stat usage_usec and memory.current */
    put("app/sandfleet/sb/cpu.stat", "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n");
    put("app/sandfleet/sb/memory.current", "7340032\n");
    int64_t cpu = 0, mem = 0;
    assert_int_equal(sf_sbx_cgroup_usage(&cg, &cpu, &mem), 0);
    assert_int_equal(cpu, 1234567);
    assert_int_equal(mem, 7340032);
    static const char *const more[] = { "cgroup.freeze", "cgroup.events", "cpu.stat",
                                        "memory.current", NULL };
    kernel_rmdir_files("app/sandfleet/sb", more);
    kernel_rmdir_files("app/sandfleet/sb", files);
    assert_int_equal(sf_sbx_cgroup_destroy(&cg, 0), 0);
    assert_false(exists("app/sandfleet/sb"));
}

/* v1 has no cgroup.freeze: the processes move into a freezer cgroup made
 * at the first pause, which is then FROZEN; without a freezer hierarchy
 * pause says it cannot. */
static void v1_freezer_made_at_first_pause(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    static const char *const ctl[] = { "memory", "pids", "freezer" };
    for (size_t i = 0; i < 3; i++) {
        char p[64];
        dir(ctl[i]);
        snprintf(p, sizeof(p), "%s/cgroup.procs", ctl[i]);
        put(p, "");
    }
    put("self", "6:freezer:/\n4:memory:/\n8:pids:/\n");
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)), 0);
    assert_int_equal(base.version, 1);
    assert_true(exists("freezer/sandfleet"));
    dir("memory/sandfleet/sb");
    dir("pids/sandfleet/sb");
    put("memory/sandfleet/sb/memory.limit_in_bytes", "");
    put("pids/sandfleet/sb/pids.max", "");
    struct sf_sbx_cgroup cg;
    if (sf_sbx_cgroup_create(&base, "sb", 64, 16, &cg, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_false(exists("freezer/sandfleet/sb"));           /* nothing until a pause */
    /* The kernel would create these on mkdir; the test plays it. */
    dir("freezer/sandfleet/sb");
    put("freezer/sandfleet/sb/cgroup.procs", "");
    put("freezer/sandfleet/sb/freezer.state", "THAWED\n");
    put("memory/sandfleet/sb/cgroup.procs", "");
    assert_int_equal(sf_sbx_cgroup_freeze(&cg, true), 0);
    assert_string_equal(first_line("freezer/sandfleet/sb/freezer.state"), "FROZEN");
    assert_int_equal(sf_sbx_cgroup_freeze(&cg, false), 0);
    assert_string_equal(first_line("freezer/sandfleet/sb/freezer.state"), "THAWED");
    struct sf_sbx_cgroup none = cg;
    none.freezer[0] = '\0';
    assert_int_equal(sf_sbx_cgroup_freeze(&none, true), -ENOTSUP);
}

/* A worker started from a process that an earlier worker moved into the
 * leaf "<own>/worker" (ctest, a shell) puts its base beside that leaf - not
 * one level deeper per worker; a cgroup merely named "worker" whose parent
 * hands nothing down is an ordinary cgroup of our own. */
static void v2_worker_leaf_of_an_earlier_worker(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    put("cgroup.controllers", "cpu memory pids\n");
    put("cgroup.subtree_control", "memory pids\n");
    dir("svc");
    put("svc/cgroup.subtree_control", "cpu memory pids\n");
    dir("svc/worker");
    put("svc/worker/cgroup.subtree_control", "");
    dir("other");
    put("other/cgroup.subtree_control", "");
    dir("other/worker");
    put("other/worker/cgroup.subtree_control", "");
    dir("svc/sandfleet");   /* the kernel would create the control files */
    put("svc/sandfleet/cgroup.subtree_control", "memory pids\n");
    dir("other/worker/sandfleet");
    put("other/worker/sandfleet/cgroup.subtree_control", "memory pids\n");
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;

    put("self", "0::/svc/worker\n");
    if (sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_string_equal(base.mem + strlen(root), "/svc/sandfleet");
    assert_string_equal(first_line("svc/worker/cgroup.subtree_control"), "");   /* untouched */

    put("self", "0::/other/worker\n");
    if (sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_string_equal(base.mem + strlen(root), "/other/worker/sandfleet");
}

static void v2_without_memory_controller_is_an_error(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    put("cgroup.controllers", "cpu io pids\n");
    put("self", "0::/\n");
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)), -ENOTSUP);
    assert_non_null(strstr(err, "memory"));
}

static void no_hierarchy_is_an_error(void **state)
{
    (void)state;
    char err[256] = "", self[128];
    snprintf(self, sizeof(self), "%s/self", root);
    struct sf_sbx_cgroup_base base;
    assert_int_equal(sf_sbx_cgroup_base_init(&base, root, self, NULL, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "no cgroup"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(v1_base_under_own_cgroup_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(v1_parent_override_and_missing_file_error, setup, teardown),
        cmocka_unit_test_setup_teardown(sweep_removes_empty_leftovers_only, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_delegation_limits_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_worker_leaf_of_an_earlier_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(v1_freezer_made_at_first_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_without_memory_controller_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(no_hierarchy_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
