/* The local sandbox backend: lifecycle, files, run semantics and limits,
 * through the public interface (common/sandbox/sandbox.h) only. Needs user
 * namespaces and writable cgroups (root on this machine). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "sandbox.h"
#include "util.h"

#include "sbx_harness.h"

/* Open fds, not counting network namespaces: the provider keeps a pool of
 * fresh ones whose size varies while its helper refills it. *netns gets
 * their number, which must stay within the pool's bound. */
static int count_fds_netns(int *netns)
{
    int n = 0;
    *netns = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], link[64] = "";
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%.255s", e->d_name);
        if (readlink(path, link, sizeof(link) - 1) > 0 && !strncmp(link, "net:[", 5)) (*netns)++;
        else n++;
    }
    if (d) closedir(d);
    return n;
}

static int count_fds(void)
{
    int netns;
    int n = count_fds_netns(&netns);
    /* Pools, not leaks: per provider 4 plain and 4 egress namespaces made
     * ahead, each pool helper's own, the egress gateway's, those of its
     * ready sandboxes; at most two providers here. */
    assert_true(netns <= 2 * 16);
    return n;
}

/* The host pid of a process whose argv is exactly 'a0 a1', or 0. */
static pid_t host_process(const char *a0, const char *a1)
{
    pid_t found = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[256];
        snprintf(path, sizeof(path), "/proc/%.255s/cmdline", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (!strcmp(buf, a0) && strlen(a0) + 1 < n && !strcmp(buf + strlen(a0) + 1, a1))
            found = (pid_t)atoi(e->d_name);
    }
    if (d) closedir(d);
    return found;
}

static bool host_has_process(const char *a0, const char *a1) { return host_process(a0, a1) != 0; }

/* A background process may still be between fork and exec when the run
 * returns: give it up to 2 s to appear. */
static bool wait_for_process(const char *a0, const char *a1)
{
    for (int i = 0; i < 200; i++) {
        if (host_has_process(a0, a1)) return true;
        usleep(10 * 1000);
    }
    return false;
}

/* The memory cgroup directory named 'name' (v1: in the memory hierarchy,
 * v2: in the unified one), searched for rather than derived: in nested
 * cgroup namespaces (a privileged container on cgroup v1) the paths that
 * /proc/PID/cgroup reports do not always resolve under /sys/fs/cgroup. */
static const char *cg_want;
static char cg_found[1024];
static int cg_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag == FTW_D && !strcmp(path + ftw->base, cg_want)) {
        sf_strlcpy(cg_found, path, sizeof(cg_found));
        return 1;
    }
    return 0;
}
static bool find_cgroup(const char *name, char *out, size_t size)
{
    struct stat st;
    const char *root = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0 ? "/sys/fs/cgroup"
                                                                           : "/sys/fs/cgroup/memory";
    cg_want = name;
    cg_found[0] = '\0';
    nftw(root, cg_visit, 16, FTW_PHYS | FTW_MOUNT);
    sf_strlcpy(out, cg_found, size);
    return cg_found[0] != '\0';
}

/* Is host pid 'pid' listed in 'dir'/cgroup.procs? */
static bool cgroup_has_pid(const char *dir, pid_t pid)
{
    char path[1100], line[32];
    bool found = false;
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    while (f && !found && fgets(line, sizeof(line), f)) found = atoi(line) == (int)pid;
    if (f) fclose(f);
    return found;
}

/* ---- files ------------------------------------------------------------------ */

static void write_read_round_trip(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    const char *data = "{\"x\": [1, 2, 3]}\n";
    assert_int_equal(sf_sandbox_write_file(sb, "/workspace/deep/er/in.json", data, strlen(data), 0), 0);
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(sf_sandbox_read_file(sb, "/workspace/deep/er/in.json", 1 << 20, &got, &len), 0);
    assert_int_equal(len, strlen(data));
    assert_string_equal(got, data);
    free(got);
    /* The command sees it, owned by the sandbox's root, mode as given. */
    expect_out(sb, "cat /workspace/deep/er/in.json", data);
    expect_out(sb, "stat -c '%u %a' /workspace/deep/er/in.json", "0 644\n");
    assert_int_equal(sf_sandbox_write_file(sb, "/tmp/x.sh", "echo hi", 7, 0755), 0);
    expect_out(sb, "stat -c '%a' /tmp/x.sh && /tmp/x.sh", "755\nhi\n");
    /* What the command writes comes back; limits and missing files are errors. */
    expect_out(sb, "printf 'out put' > /tmp/result.txt", "");
    assert_int_equal(sf_sandbox_read_file(sb, "/tmp/result.txt", 100, &got, &len), 0);
    assert_string_equal(got, "out put");
    free(got);
    assert_int_equal(sf_sandbox_read_file(sb, "/tmp/result.txt", 3, &got, &len), -EFBIG);
    assert_int_equal(sf_sandbox_read_file(sb, "/tmp/none", 100, &got, &len), -ENOENT);
    assert_non_null(strstr(sb->errstr, "/tmp/none"));
    sf_sandbox_destroy(sb);
}

static void files_persist_across_runs_and_stay_private(void **state)
{
    (void)state;
    struct sf_sandbox *a = mk(NULL), *b = mk(NULL);
    expect_out(a, "echo first > /workspace/state; echo bg > /tmp/shared/s", "");
    expect_out(a, "cat /workspace/state /tmp/shared/s", "first\nbg\n");
    struct sf_run_result r;
    run(b, "cat /workspace/state /tmp/shared/s", &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_int_not_equal(r.exit_code, 0);
    assert_string_equal(r.out, "");
    sf_run_result_clear(&r);
    char *got = NULL;
    size_t len;
    assert_int_equal(sf_sandbox_read_file(b, "/workspace/state", 100, &got, &len), -ENOENT);
    sf_sandbox_destroy(a);
    sf_sandbox_destroy(b);
}

static void writable_places(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "for d in /workspace /home/user /tmp /tmp/shared /dev/shm; do "
                   "echo x > $d/f && rm $d/f || exit 1; done; stat -c %a /tmp /tmp/shared",
               "1777\n1777\n");
    expect_out(sb, "touch / 2>/dev/null || touch /etc/x 2>/dev/null || echo ro", "ro\n");
    sf_sandbox_destroy(sb);
}

/* ---- run semantics ------------------------------------------------------------ */

static void stdin_env_cwd(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    const char *env[] = { "FOO=bar baz", "HOME=/tmp", NULL };
    struct sf_run_spec s = { .cmd = "cat; echo \"$FOO|$HOME|$PATH|$(pwd)\"", .env = env,
                             .stdin_data = "from stdin\n", .stdin_len = 11, .cwd = "/tmp/shared" };
    struct sf_run_result r;
    run_spec(sb, &s, &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_string_equal(r.out, "from stdin\nbar baz|/tmp|/usr/local/bin:/usr/bin:/bin|/tmp/shared\n");
    sf_run_result_clear(&r);
    expect_out(sb, "echo $HOME; pwd", "/home/user\n/workspace\n");
    sf_sandbox_destroy(sb);
}

static void missing_cwd_is_a_clear_exec_failure(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_spec s = { .cmd = "true", .cwd = "/no/such/dir" };
    struct sf_run_result r;
    run_spec(sb, &s, &r);
    assert_int_equal(r.status, SF_RUN_EXEC_FAILED);
    assert_non_null(strstr(r.error, "/no/such/dir"));
    assert_non_null(strstr(r.error, "No such file or directory"));
    assert_true(r.duration_ms < 2000);
    sf_run_result_clear(&r);
    expect_out(sb, "echo still usable", "still usable\n");
    sf_sandbox_destroy(sb);
}

static void exit_codes_and_signals(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_result r;
    run(sb, "echo err >&2; exit 3", &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_int_equal(r.exit_code, 3);
    assert_string_equal(r.err_tail, "err\n");
    sf_run_result_clear(&r);
    run(sb, "kill -TERM $$", &r);
    assert_int_equal(r.status, SF_RUN_SIGNALED);
    assert_int_equal(r.term_signal, SIGTERM);
    assert_int_equal(r.exit_code, 128 + SIGTERM);
    sf_run_result_clear(&r);
    run(sb, "exec /no/such/interpreter", &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_int_equal(r.exit_code, 127);
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
}

static void ten_mib_of_stdout_comes_back_whole(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_result r;
    run(sb, "head -c 10485760 /dev/zero | tr '\\0' a", &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_int_equal(r.out_len, 10485760);
    assert_false(r.out_truncated);
    for (size_t i = 0; i < r.out_len; i += 4093) assert_int_equal(r.out[i], 'a');
    sf_run_result_clear(&r);
    struct sf_run_spec s = { .cmd = "head -c 5000 /dev/zero | tr '\\0' b", .stdout_cap = 1000 };
    run_spec(sb, &s, &r);
    assert_int_equal(r.out_len, 1000);
    assert_true(r.out_truncated);
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
}

static void python3_runs(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    const char *py = "import json,sys\nprint(json.dumps({'n': sum(range(10))}))\n";
    assert_int_equal(sf_sandbox_write_file(sb, "/workspace/agent.py", py, strlen(py), 0), 0);
    expect_out(sb, "python3 agent.py", "{\"n\": 45}\n");
    sf_sandbox_destroy(sb);
}

static void cpu_limit_kills_a_busy_loop(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_limits lim = { .cpu_s = 1 };
    struct sf_run_spec s = { .cmd = "while :; do :; done", .limits = &lim };
    struct sf_run_result r;
    run_spec(sb, &s, &r);
    assert_int_equal(r.status, SF_RUN_SIGNALED);
    assert_true(r.term_signal == SIGXCPU || r.term_signal == SIGKILL);
    assert_true(r.duration_ms < 10000);
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
}

static void timeout_kills_the_sandbox_and_later_runs_fail_clearly(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_spec s = { .cmd = "echo started; sleep 100", .timeout_s = 1 };
    struct sf_run_result r;
    run_spec(sb, &s, &r);
    assert_int_equal(r.status, SF_RUN_TIMEOUT);
    assert_string_equal(r.out, "started\n");
    assert_true(r.duration_ms >= 900 && r.duration_ms < 3000);
    sf_run_result_clear(&r);
    struct sf_run_spec s2 = { .cmd = "true", .timeout_s = 5 };
    assert_int_equal(sf_sandbox_run(sb, &s2, &r), -ESRCH);
    assert_non_null(strstr(sb->errstr, "timeout"));
    sf_sandbox_destroy(sb);
}

/* ---- cleanup ------------------------------------------------------------------ */

static void destroy_leaves_no_cgroup_and_no_process(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    char dir[1024];
    struct stat st;
    /* A duration of our own: other test processes run the same test. */
    char secs[32], cmd[96];
    snprintf(secs, sizeof(secs), "7351%d", (int)getpid());
    snprintf(cmd, sizeof(cmd), "sleep %s > /dev/null 2>&1 & echo bg", secs);
    expect_out(sb, cmd, "bg\n");
    assert_true(wait_for_process("sleep", secs));   /* the probe sees it while alive */
    if (!find_cgroup(sb->id, dir, sizeof(dir))) fail_msg("no cgroup named %s", sb->id);
    if (!cgroup_has_pid(dir, host_process("sleep", secs)))
        fail_msg("the sandbox's process is not in its cgroup %s", dir);
    sf_sandbox_destroy(sb);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_false(host_has_process("sleep", secs));
}

static void fifty_sandboxes_leak_no_fds(void **state)
{
    (void)state;
    /* A provider without sandboxes made ahead (sbx_ready.h): the ones it
     * keeps ready hold fds of their own, more or fewer as it refills. */
    char err[SF_ERRSTR_LEN] = "";
    setenv("SF_SBX_READY", "0", 1);
    struct sf_sandbox_provider *p0 = sf_sandbox_provider_new("local", &(struct sf_provider_config){ 0 },
                                                             err, sizeof(err));
    unsetenv("SF_SBX_READY");
    assert_non_null(p0);
    struct sf_sandbox *warm = NULL;
    assert_int_equal(sf_sandbox_create(p0, &(struct sf_sandbox_opts){ 0 }, &warm, err, sizeof(err)), 0);
    sf_sandbox_destroy(warm);
    int before = count_fds();
    for (int i = 0; i < 50; i++) {
        struct sf_sandbox *sb = NULL;
        assert_int_equal(sf_sandbox_create(p0, &(struct sf_sandbox_opts){ 0 }, &sb, err, sizeof(err)), 0);
        if (i % 10 == 0) expect_out(sb, "echo ok", "ok\n");
        if (i % 10 == 1) assert_int_equal(sf_sandbox_write_file(sb, "/tmp/a", "x", 1, 0), 0);
        sf_sandbox_destroy(sb);
    }
    /* The pool's helper briefly holds a socket while it brings up lo in a
     * new namespace: a leak stays, that one goes. */
    int after = count_fds();
    for (int i = 0; i < 100 && after != before; i++) {
        usleep(10 * 1000);
        after = count_fds();
    }
    assert_int_equal(after, before);
    sf_sandbox_provider_free(p0);
}

static void bad_ro_bind_fails_create_with_a_message(void **state)
{
    (void)state;
    struct sf_bind b = { "/no/such/host/path", "/data" };
    struct sf_sandbox_opts o = { .ro_binds = &b, .n_ro_binds = 1 };
    struct sf_sandbox *sb = NULL;
    char err[SF_ERRSTR_LEN] = "";
    assert_int_equal(sf_sandbox_create(prov, &o, &sb, err, sizeof(err)), -ENOENT);
    assert_null(sb);
    assert_non_null(strstr(err, "/no/such/host/path"));
    struct sf_bind rel = { "/usr", "relative/path" };
    o.ro_binds = &rel;
    assert_int_equal(sf_sandbox_create(prov, &o, &sb, err, sizeof(err)), -EINVAL);
}

/* A host file bound read-only is the file as it is at each sandbox's
 * start: written in place, or replaced by a rename (as ldconfig replaces
 * /etc/ld.so.cache), the next sandbox sees the new one, although the
 * bind is made once per image (sbx_image.h). */
static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void a_replaced_host_file_reaches_the_next_sandbox(void **state)
{
    (void)state;
    char dir[] = "/tmp/sf-image-XXXXXX", file[64], next[64];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(file, sizeof(file), "%s/conf", dir);
    snprintf(next, sizeof(next), "%s/conf.new", dir);
    put_file(file, "one\n");
    struct sf_bind b = { file, "/data/conf" };
    struct sf_sandbox_opts o = { .ro_binds = &b, .n_ro_binds = 1 };
    struct sf_sandbox *sb = mk(&o);
    expect_out(sb, "cat /data/conf", "one\n");
    sf_sandbox_destroy(sb);
    put_file(next, "two\n");
    assert_int_equal(rename(next, file), 0);
    sb = mk(&o);
    expect_out(sb, "cat /data/conf", "two\n");
    sf_sandbox_destroy(sb);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(sf_sandbox_create(prov, &o, &sb, (char[SF_ERRSTR_LEN]){ 0 }, SF_ERRSTR_LEN),
                     -ENOENT);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_read_round_trip),
        cmocka_unit_test(files_persist_across_runs_and_stay_private),
        cmocka_unit_test(writable_places),
        cmocka_unit_test(stdin_env_cwd),
        cmocka_unit_test(missing_cwd_is_a_clear_exec_failure),
        cmocka_unit_test(exit_codes_and_signals),
        cmocka_unit_test(ten_mib_of_stdout_comes_back_whole),
        cmocka_unit_test(python3_runs),
        cmocka_unit_test(cpu_limit_kills_a_busy_loop),
        cmocka_unit_test(timeout_kills_the_sandbox_and_later_runs_fail_clearly),
        cmocka_unit_test(destroy_leaves_no_cgroup_and_no_process),
        cmocka_unit_test(fifty_sandboxes_leak_no_fds),
        cmocka_unit_test(bad_ro_bind_fails_create_with_a_message),
        cmocka_unit_test(a_replaced_host_file_reaches_the_next_sandbox),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
