/* Escape and abuse tests for the local sandbox. Each attack runs inside a
 * real sandbox through the public interface; a test FAILS if the attack
 * works. Where it is cheap, a control shows the probe itself can succeed
 * (e.g. the loopback connect works to a listener in the sandbox), so a passing
 * test is not just a broken probe. Needs root (host file owned by root,
 * cgroups) and user namespaces. */
#include <arpa/inet.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <sched.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "sandbox.h"
#include "sandbox_fs.h"
#include "util.h"

#include "sbx_harness.h"

/* A secret in the worker's environment must not reach the sandbox. */
static int escape_setup(void **state)
{
    setenv("SF_ESCAPE_TEST_SECRET", "hunter2-in-worker-env", 1);
    return group_setup(state);
}

/* The host pid of a process whose argv is exactly a0 a1, or 0. */
static pid_t host_pid_of(const char *a0, const char *a1)
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

static bool host_has_process(const char *a0, const char *a1)
{
    return host_pid_of(a0, a1) != 0;
}

/* A sleep duration no other process on the host uses ("<base>.<our pid>"),
 * so the host-wide process probes see only this test's sleeps, even while
 * other test runs share the machine. */
static const char *secs(int base, char *buf, size_t n)
{
    snprintf(buf, n, "%d.%05d", base, (int)(getpid() % 100000));
    return buf;
}

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

/* ---- file system ------------------------------------------------------------ */

/* A host file the sandbox must not read: as root, one made here (root-owned,
 * 0600); as an unprivileged worker - whose own uid the sandbox runs as on
 * the host - a root-only file of the system (/etc/shadow). */
static void root_only_host_file_is_unreadable(void **state)
{
    (void)state;
    char dir[] = "/tmp/sf-escape-XXXXXX", file[64], cmd[128], want[64];
    const char *bind = dir, *name = "secret";
    if (geteuid() == 0) {
        assert_non_null(mkdtemp(dir));
        assert_int_equal(chmod(dir, 0755), 0);
        snprintf(file, sizeof(file), "%s/secret", dir);
        FILE *f = fopen(file, "w");
        assert_non_null(f);
        fputs("TOPSECRET\n", f);
        fclose(f);
        assert_int_equal(chown(file, 0, 0), 0);
        assert_int_equal(chmod(file, 0600), 0);
    } else {
        if (access("/etc/shadow", F_OK) < 0 || access("/etc/shadow", R_OK) == 0)
            skip();   /* no root-only file to try */
        bind = "/etc";
        name = "shadow";
    }
    struct sf_bind b = { bind, "/secret" };
    struct sf_sandbox_opts o = { .ro_binds = &b, .n_ro_binds = 1 };
    struct sf_sandbox *sb = mk(&o);
    struct sf_run_result r;
    snprintf(cmd, sizeof(cmd), "ls /secret/%s; cat /secret/%s", name, name);
    run(sb, cmd, &r);
    snprintf(want, sizeof(want), "/secret/%s\n", name);
    assert_string_equal(r.out, want);                 /* it is there ... */
    assert_int_not_equal(r.exit_code, 0);             /* ... and cannot be read */
    assert_non_null(strstr(r.err_tail, "Permission denied"));
    sf_run_result_clear(&r);
    /* Nor through the worker's file API, via a planted symlink. */
    expect_out(sb, "kill -9 -1; echo survived", "survived\n");
    sf_sandbox_destroy(sb);
    if (bind == dir) {
        unlink(file);
        rmdir(dir);
    }
}

static void host_etc_is_not_there(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "test -e /etc/shadow || echo no-shadow; test -e /root/.ssh || echo no-ssh; "
                   "grep -c . /etc/passwd",
               "no-shadow\nno-ssh\n3\n");
    sf_sandbox_destroy(sb);
}

static void usr_is_read_only(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_result r;
    run(sb, "touch /usr/bin/pwned", &r);
    assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err_tail, "Read-only file system"));
    sf_run_result_clear(&r);
    assert_int_equal(access("/usr/bin/pwned", F_OK), -1);
    expect_out(sb, "mount -o remount,rw /usr 2>/dev/null || echo denied", "denied\n");
    sf_sandbox_destroy(sb);
}

/* Every sandbox's root, /etc and /dev come from one image (sbx_image.h):
 * nothing in them may be writable, or one sandbox could leave something
 * for the next. They look as they would if the sandbox had made them. */
static void the_shared_root_is_read_only(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "for p in /x /etc/x /etc/passwd /dev/x /root/x /mnt/x /run/x; do "
                   "(echo pwned > $p) 2>&1 | grep -q 'Read-only file system' || echo $p; done; "
                   "chmod 777 /etc/passwd 2>/dev/null || echo no-chmod; "
                   "stat -c '%U:%G %a' / /etc /etc/passwd /root /dev",
               "no-chmod\nroot:root 755\nroot:root 755\nroot:root 644\nroot:root 755\n"
               "root:root 755\n");
    sf_sandbox_destroy(sb);
    struct sf_sandbox *next = mk(NULL);
    expect_out(next, "grep -c pwned /etc/passwd; find /mnt /root /run -mindepth 1 | wc -l",
               "0\n0\n");
    sf_sandbox_destroy(next);
}

/* The sandbox's mount table holds its own root only: no host mount point
 * (/sys, /work, the host's /tmp ...) is there, visible or under another.
 * What the host mounted under /usr (the test VM binds its kernel's modules
 * at /usr/lib/modules/<version>) is part of the read-only /usr. */
static void the_mount_table_holds_only_the_sandbox_root(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "cut -d' ' -f5 /proc/self/mountinfo | grep -Ev "
                   "'^/$|^/(usr|bin|sbin|lib[a-z0-9]*|etc|dev|proc|workspace|home|tmp)(/|$)'"
                   " || echo none", "none\n");
    sf_sandbox_destroy(sb);
}

/* What the sandbox's root could do to the shared image if seccomp let
 * every mount call through: a child of this test (root on the host) joins
 * the user and mount namespaces of the sandbox process 'pid', with every
 * capability there, and tries to make the image writable, to write into
 * it, and to look under the sandbox's /proc. Writes the attempts that
 * worked to fd 'out', space separated. */
static void __attribute__((noreturn)) attack_the_image(pid_t pid, int out)
{
    char path[64], bad[512] = "";
    size_t n = 0;
#define BAD(what) (n += (size_t)snprintf(bad + n, sizeof(bad) - n, "%s ", (what)))
    snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
    int u = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
    int m = open(path, O_RDONLY | O_CLOEXEC);
    if (u < 0 || m < 0 || setns(u, CLONE_NEWUSER) < 0 || setns(m, CLONE_NEWNS) < 0 ||
        setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 || chdir("/") < 0) {
        BAD("cannot-join");
        goto out;
    }
    struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY }, rw = { .attr_clr = MOUNT_ATTR_RDONLY };
    /* Control: the sandbox's own mounts obey (the capabilities are there). */
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/tmp", 0, &ro, sizeof(ro)) < 0 ||
        syscall(SYS_mount_setattr, AT_FDCWD, "/tmp", 0, &rw, sizeof(rw)) < 0)
        BAD("no-control");
    static const char *const image[] = { "/", "/usr", "/dev", "/etc/ld.so.cache" };
    for (size_t i = 0; i < sizeof(image) / sizeof(image[0]); i++) {
        if (syscall(SYS_mount_setattr, AT_FDCWD, image[i], AT_RECURSIVE, &rw, sizeof(rw)) == 0)
            BAD("mount_setattr-rw");
        if (mount(NULL, image[i], NULL, MS_REMOUNT | MS_BIND, NULL) == 0) BAD("remount-bind-rw");
        if (mount(NULL, image[i], NULL, MS_REMOUNT, NULL) == 0) BAD("remount-rw");
    }
    /* A detached copy keeps the lock. */
    int t = (int)syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC);
    if (t >= 0 && syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | AT_RECURSIVE, &rw,
                          sizeof(rw)) == 0)
        BAD("open_tree-rw");
    if (umount2("/usr", MNT_DETACH) == 0) BAD("umount-usr");
    if (umount2("/etc/ld.so.cache", MNT_DETACH) == 0) BAD("umount-etc-file");
    int fd = open("/etc/passwd", O_WRONLY | O_CLOEXEC);
    if (fd >= 0 || mkdir("/pwned", 0755) == 0 || mkdir("/etc/pwned", 0755) == 0) BAD("wrote");
    /* The image's procfs lies under the sandbox's own: it belongs to an
     * empty pid namespace, not to the host's. */
    if (umount2("/proc", MNT_DETACH) < 0) BAD("proc-umount-failed");
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') { BAD("image-proc-has-pids"); break; }
    struct statfs fs;
    if (!d || statfs("/proc", &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC) BAD("no-image-proc");
    if (d) closedir(d);
    if (open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC) >= 0) BAD("sysrq");
    if (open("/proc/kcore", O_RDONLY | O_CLOEXEC) >= 0) BAD("kcore");
#undef BAD
out:
    if (write(out, bad, strlen(bad)) < 0) _exit(2);
    _exit(0);
}

/* Every mount of the image is locked read-only in a sandbox's user
 * namespace by the kernel (the copy belongs to a less privileged user
 * namespace), so seccomp is not the only thing between a sandbox and the
 * files every other sandbox runs: its root with every capability (as if a
 * kernel bug let it past the filter) still cannot write there. Without
 * images each sandbox's root is its own, and this does not apply. */
static void the_image_stays_read_only_for_a_sandbox_root_past_seccomp(void **state)
{
    (void)state;
    const char *ni = getenv("SF_SBX_NO_IMAGE");
    if (geteuid() != 0 || (ni && strcmp(ni, "0"))) skip();
    struct sf_sandbox *sb = mk(NULL);
    char arg[32], cmd[96], got[512] = "";
    snprintf(cmd, sizeof(cmd), "(exec >&- 2>&-; sleep %s) &", secs(300, arg, sizeof(arg)));
    expect_out(sb, cmd, "");
    assert_true(wait_for_process("sleep", arg));
    pid_t target = host_pid_of("sleep", arg);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) attack_the_image(target, p[1]);
    close(p[1]);
    ssize_t n = read(p[0], got, sizeof(got) - 1);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(c, &st, 0), c);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    got[n > 0 ? n : 0] = '\0';
    assert_string_equal(got, "");
    sf_sandbox_destroy(sb);
    struct sf_sandbox *next = mk(NULL);
    expect_out(next, "test -e /pwned || test -e /etc/pwned || echo clean", "clean\n");
    sf_sandbox_destroy(next);
}

static void planted_symlinks_cannot_redirect_worker_writes(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    char host_target[64];
    snprintf(host_target, sizeof(host_target), "/tmp/sf-escape-planted-%d", (int)getpid());
    unlink(host_target);
    expect_out(sb, "ln -s / /workspace/root && ln -s /usr/bin /workspace/bin && echo ok", "ok\n");
    char inside[128];
    snprintf(inside, sizeof(inside), "/workspace/root%s", host_target);
    /* Resolves to the sandbox's own /tmp, never the host's. */
    assert_int_equal(sf_sandbox_write_file(sb, inside, "x", 1, 0), 0);
    assert_int_equal(access(host_target, F_OK), -1);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "cat %s", host_target);
    expect_out(sb, cmd, "x");
    assert_true(sf_sandbox_write_file(sb, "/workspace/bin/pwned", "x", 1, 0) < 0);
    assert_int_equal(access("/usr/bin/pwned", F_OK), -1);
    assert_int_equal(sf_sandbox_write_file(sb, "/../../../../tmp/dotdot", "y", 1, 0), 0);
    expect_out(sb, "cat /tmp/dotdot", "y");
    sf_sandbox_destroy(sb);
}

/* A FIFO the sandbox plants where the worker will write next (a shared
 * sandbox's next input, an E2B upload) must not block the worker's thread:
 * opening a FIFO for writing waits for a reader, which the sandbox never
 * has to provide, so the thread (and with it the sandbox, never destroyed)
 * would be held for good. */
struct fifo_write {
    struct sf_sandbox *sb;
    const char *path;
    bool through_fs;             /* sandbox_fs.h's open (E2B uploads), else write_file */
    int rc;
    atomic_bool done;
};

static void *fifo_writer(void *arg)
{
    struct fifo_write *w = arg;
    if (w->through_fs) {
        int fd = -1;
        w->rc = sf_sandbox_fs(w->sb)->open(w->sb, SF_FS_UID_ROOT, w->path, O_WRONLY | O_CREAT | O_TRUNC,
                                           0644, &fd);
        if (fd >= 0) close(fd);
    } else {
        w->rc = sf_sandbox_write_file(w->sb, w->path, "x", 1, 0);
    }
    atomic_store(&w->done, true);
    return NULL;
}

static void write_to_planted_fifo(struct sf_sandbox *sb, const char *path, bool through_fs)
{
    struct fifo_write w = { .sb = sb, .path = path, .through_fs = through_fs };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fifo_writer, &w), 0);
    for (int i = 0; i < 500 && !atomic_load(&w.done); i++) usleep(10 * 1000);
    bool returned = atomic_load(&w.done);
    if (!returned) {
        /* Let the blocked writer go (a reader appears), then fail. */
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "cat %s >/dev/null", path);
        struct sf_run_result r;
        run(sb, cmd, &r);
        sf_run_result_clear(&r);
    }
    pthread_join(th, NULL);
    if (!returned) fail_msg("writing %s (%s) blocked on a FIFO planted by the sandbox", path,
                            through_fs ? "sandbox_fs open" : "write_file");
    assert_true(w.rc < 0);
}

static void planted_fifo_cannot_hang_worker_writes(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "mkfifo /workspace/trap /tmp/trap2 && echo ok", "ok\n");
    write_to_planted_fifo(sb, "/workspace/trap", false);
    write_to_planted_fifo(sb, "/tmp/trap2", true);
    /* Reads refuse it too, and a regular file next to it is still written. */
    char *data = NULL;
    size_t len = 0;
    assert_true(sf_sandbox_read_file(sb, "/workspace/trap", 1024, &data, &len) < 0);
    free(data);
    assert_int_equal(sf_sandbox_write_file(sb, "/workspace/plain", "y", 1, 0), 0);
    expect_out(sb, "cat /workspace/plain", "y");
    sf_sandbox_destroy(sb);
}

static void disk_fill_stops_at_the_tmpfs_size(void **state)
{
    (void)state;
    struct sf_sandbox_opts o = { .limits = { .disk_mb = 16 } };
    struct sf_sandbox *sb = mk(&o);
    struct sf_run_result r;
    run(sb, "dd if=/dev/zero of=/tmp/fill bs=1M count=64; stat -c %s /tmp/fill", &r);
    assert_non_null(strstr(r.err_tail, "No space left on device"));
    long long size = atoll(r.out);
    assert_true(size > 0 && size <= 16LL << 20);
    sf_run_result_clear(&r);
    expect_out(sb, "rm /tmp/fill && echo freed", "freed\n");
    sf_sandbox_destroy(sb);
}

static void no_leaked_fds(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "ls /proc/self/fd | tr '\\n' ' '", "0 1 2 3 ");
    sf_sandbox_destroy(sb);
}

static void worker_argv_and_env_do_not_leak(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_result r;
    run(sb, "cat /proc/1/cmdline /proc/1/environ; env; cat /proc/1/comm", &r);
    assert_null(strstr(r.out, "hunter2"));
    assert_null(strstr(r.out, "test_sandbox_escape"));
    assert_non_null(strstr(r.out, "sandbox-init"));
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
}

/* ---- processes and privileges ------------------------------------------------ */

static void host_pids_are_invisible_and_unkillable(void **state)
{
    (void)state;
    pid_t victim = fork();
    assert_true(victim >= 0);
    if (victim == 0) {
        execl("/bin/sleep", "sleep", "60", (char *)NULL);
        _exit(127);
    }
    struct sf_sandbox *sb = mk(NULL);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls /proc | grep -c '^[0-9]*$'; test -e /proc/%d && echo visible; "
             "kill -9 %d 2>/dev/null || echo kill-failed", (int)victim, (int)victim);
    struct sf_run_result r;
    run(sb, cmd, &r);
    int n = atoi(r.out);
    assert_true(n >= 1 && n <= 6);                    /* init, sh, ls, grep */
    assert_null(strstr(r.out, "visible"));
    sf_run_result_clear(&r);
    usleep(100 * 1000);
    int st;
    assert_int_equal(waitpid(victim, &st, WNOHANG), 0);   /* still alive */
    kill(victim, SIGKILL);
    waitpid(victim, &st, 0);
    expect_out(sb, "kill -9 -1; echo survived", "survived\n");
    sf_sandbox_destroy(sb);
}

/* Sandbox root is host nobody and its "user" (1000) host 65533 for a root
 * worker; an unprivileged worker may map only itself (its own uid for
 * sandbox root, no "user"). Never host root. */
static void uid_map_does_not_map_host_root(void **state)
{
    (void)state;
    char want[128];
    if (geteuid() == 0)
        snprintf(want, sizeof(want), "0 65534 1\n1000 65533 1\n0 65534 1\n1000 65533 1\n0\n");
    else
        snprintf(want, sizeof(want), "0 %u 1\n0 %u 1\n0\n", (unsigned)geteuid(),
                 (unsigned)getegid());
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //'; id -u",
               want);
    sf_sandbox_destroy(sb);
}

static void no_capabilities_no_new_privs_seccomp(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "
                   "/proc/self/status | tr -d '\\t'",
               "CapInh:0000000000000000\nCapPrm:0000000000000000\nCapEff:0000000000000000\n"
               "CapBnd:0000000000000000\nCapAmb:0000000000000000\nNoNewPrivs:1\nSeccomp:2\n");
    sf_sandbox_destroy(sb);
}

static void ptrace_of_a_sibling_fails(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb,
               "sleep 30 & python3 -c \"import ctypes,os,sys\n"
               "libc = ctypes.CDLL(None, use_errno=True)\n"
               "r = libc.ptrace(16, int(sys.argv[1]), 0, 0)\n"
               "print('attach', r, os.strerror(ctypes.get_errno()))\" $!; kill $!",
               "attach -1 Operation not permitted\n");
    sf_sandbox_destroy(sb);
}

static void nested_user_namespace_fails(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb,
               "unshare -U true 2>/dev/null || echo unshare-denied; "
               "unshare -Ur id 2>/dev/null || echo unshare-r-denied; "
               "python3 -c \"import ctypes,os\n"
               "libc = ctypes.CDLL(None, use_errno=True)\n"
               "print(libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))\"",
               "unshare-denied\nunshare-r-denied\n-1 Operation not permitted\n");
    sf_sandbox_destroy(sb);
}

static void mount_fails(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "mount -t tmpfs x /mnt 2>/dev/null || echo denied; "
                   "mount -t proc proc /mnt 2>/dev/null || echo denied",
               "denied\ndenied\n");
    sf_sandbox_destroy(sb);
}

/* Every entry of the deny list answers EPERM (clone3: ENOSYS), x32 numbers
 * kill, personality() accepts only the default and the query. */
static void seccomp_deny_list(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    const char *py =
        "import ctypes, errno, fcntl, termios\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "calls = {'ptrace':101,'process_vm_readv':310,'kcmp':312,'mount':165,'umount2':166,\n"
        " 'pivot_root':155,'chroot':161,'fsopen':430,'open_tree':428,'move_mount':429,\n"
        " 'mount_setattr':442,'setns':308,'unshare':272,'kexec_load':246,'init_module':175,\n"
        " 'finit_module':313,'delete_module':176,'reboot':169,'swapon':167,'acct':163,\n"
        " 'bpf':321,'perf_event_open':298,'userfaultfd':323,'keyctl':250,'add_key':248,\n"
        " 'request_key':249,'io_uring_setup':425,'open_by_handle_at':304,\n"
        " 'name_to_handle_at':303,'clock_settime':227,'settimeofday':164,'adjtimex':159,\n"
        " 'iopl':172,'ioperm':173,'mbind':237,'set_mempolicy':238,'move_pages':279,\n"
        " 'syslog':103,'vhangup':153,'pidfd_getfd':438,'quotactl':179}\n"
        "bad = []\n"
        "for name, nr in calls.items():\n"
        "    ctypes.set_errno(0)\n"
        "    r = libc.syscall(nr, 0, 0, 0, 0, 0, 0)\n"
        "    if r != -1 or ctypes.get_errno() != errno.EPERM: bad.append(name)\n"
        "r = libc.syscall(435, 0, 0)\n"
        "if r != -1 or ctypes.get_errno() != errno.ENOSYS: bad.append('clone3')\n"
        "r = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)\n"
        "if r != -1 or ctypes.get_errno() != errno.EPERM: bad.append('clone-newuser')\n"
        "if libc.personality(0x0400000) != -1: bad.append('personality')\n"
        "if libc.personality(0xffffffff) == -1: bad.append('personality-query')\n"
        "for req in (termios.TIOCSTI, termios.TIOCSTI | (1 << 32)):\n"
        "    try: fcntl.ioctl(0, req, b'x'); bad.append('tiocsti-ok')\n"
        "    except OSError as e:\n"
        "        if e.errno != errno.EPERM: bad.append('tiocsti-%d' % e.errno)\n"
        "print('bad:', bad)\n";
    assert_int_equal(sf_sandbox_write_file(sb, "/tmp/sc.py", py, strlen(py), 0), 0);
    expect_out(sb, "python3 /tmp/sc.py", "bad: []\n");
    /* An x32 syscall number (getpid | 0x40000000) must kill, not run. */
    expect_out(sb, "python3 -c 'import ctypes; ctypes.CDLL(None).syscall(0x40000027)'; echo rc=$?",
               "rc=159\n");
    sf_sandbox_destroy(sb);
}

/* ---- network ----------------------------------------------------------------- */

static int listen_loopback(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 8) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) < 0)
        fail_msg("listen: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return s;
}

static void host_loopback_is_unreachable(void **state)
{
    (void)state;
    int port, ls = listen_loopback(&port);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import socket; s = socket.socket(); s.settimeout(3)\n"
             "print('connected' if s.connect_ex(('127.0.0.1', %d)) == 0 else 'refused')\"", port);
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, cmd, "refused\n");
    expect_out(sb, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", "lo\n");
    sf_sandbox_destroy(sb);
    /* With network on too: 127.0.0.1 stays the sandbox's own, and there is
     * still no interface but lo (the way out is the worker, sbx_egress.h;
     * test_sandbox_net.sh tests what it lets through). */
    struct sf_sandbox_opts o = { .network = true };
    if (geteuid() != 0) {
        /* An unprivileged worker cannot make the egress namespace: a network
         * step is refused with the reason, never run with the host's network
         * (docs/security.md, "Where it runs"). */
        char err[SF_ERRSTR_LEN] = "";
        sb = NULL;
        assert_true(sf_sandbox_create(prov, &o, &sb, err, sizeof(err)) < 0);
        assert_null(sb);
        if (!strstr(err, "network steps cannot run on this worker")) fail_msg("%s", err);
        close(ls);
        return;
    }
    sb = mk(&o);
    expect_out(sb, cmd, "refused\n");
    expect_out(sb, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", "lo\n");
    /* Control: the probe connects to a listener in the sandbox itself. */
    char ctl[512];
    snprintf(ctl, sizeof(ctl),
             "python3 -c \"import socket; l = socket.socket(); l.bind(('127.0.0.1', %d)); l.listen()\n"
             "s = socket.socket(); s.settimeout(3)\n"
             "print('connected' if s.connect_ex(('127.0.0.1', %d)) == 0 else 'refused')\"", port, port);
    expect_out(sb, ctl, "connected\n");
    sf_sandbox_destroy(sb);
    close(ls);
}

/* Each sandbox has a network namespace of its own, never shared, whether it
 * came from the provider's pool or was made by clone(): a listener on one
 * sandbox's loopback is unreachable from another, and the namespace ids
 * all differ (more sandboxes than the pool holds, so both kinds). */
static void sandboxes_cannot_reach_each_others_loopback(void **state)
{
    (void)state;
    static const char listener[] =
        "import os, socket, sys\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 5555)); s.listen(8)\n"
        "if os.fork(): print('listening'); sys.exit(0)\n"
        "os.setsid(); fd = os.open('/dev/null', os.O_RDWR)\n"
        "for i in range(3): os.dup2(fd, i)\n"
        "while True: s.accept()[0].close()\n";
    static const char probe[] =
        "import os, socket\n"
        "c = socket.socket(); c.settimeout(3)\n"
        "r = 'connected' if c.connect_ex(('127.0.0.1', 5555)) == 0 else 'refused'\n"
        "print(os.readlink('/proc/self/ns/net'), r)\n";
    struct sf_sandbox *sb[8];
    char ids[8][64], host[64];
    ssize_t n = readlink("/proc/self/ns/net", host, sizeof(host) - 1);
    assert_true(n > 0);
    host[n] = '\0';
    for (int i = 0; i < 8; i++) {
        sb[i] = mk(NULL);
        assert_int_equal(sf_sandbox_write_file(sb[i], "/tmp/probe.py", probe, strlen(probe), 0), 0);
    }
    assert_int_equal(sf_sandbox_write_file(sb[0], "/tmp/l.py", listener, strlen(listener), 0), 0);
    expect_out(sb[0], "python3 /tmp/l.py", "listening\n");
    for (int i = 0; i < 8; i++) {
        struct sf_run_result r;
        run(sb[i], "python3 /tmp/probe.py", &r);
        if (r.status != SF_RUN_EXITED || r.exit_code) fail_msg("probe: %s %s", r.err_tail, r.error);
        char *sp = strchr(r.out, ' ');
        assert_non_null(sp);
        snprintf(ids[i], sizeof(ids[i]), "%.*s", (int)(sp - r.out), r.out);
        /* Only the listener's own sandbox reaches it. */
        assert_string_equal(sp + 1, i == 0 ? "connected\n" : "refused\n");
        assert_string_not_equal(ids[i], host);
        for (int j = 0; j < i; j++) assert_string_not_equal(ids[i], ids[j]);
        sf_run_result_clear(&r);
    }
    for (int i = 0; i < 8; i++) sf_sandbox_destroy(sb[i]);
}

/* ---- resources ----------------------------------------------------------------- */

static void memory_bomb_is_oom_killed_and_sandbox_survives(void **state)
{
    (void)state;
    struct sf_sandbox_opts o = { .limits = { .memory_mb = 64 } };
    struct sf_sandbox *sb = mk(&o);
    struct sf_run_spec s = { .cmd = "python3 -c 'b = b\"x\" * (1 << 30); print(len(b))'" };
    struct sf_run_result r;
    run_spec(sb, &s, &r);
    if (r.status != SF_RUN_OOM) fail_msg("status %d exit %d err %s", r.status, r.exit_code, r.error);
    assert_non_null(strstr(r.error, "64 MiB"));
    assert_string_equal(r.out, "");
    sf_run_result_clear(&r);
    expect_out(sb, "echo alive", "alive\n");
    sf_sandbox_destroy(sb);
}

/* Its own devpts, with a cap: terminals count against the host-wide
 * kernel.pty.max, so a sandbox cannot take them all. */
static void terminals_are_its_own_and_capped(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    expect_out(sb, "python3 -c \"import os\n"
                   "fds = []\n"
                   "try:\n"
                   "    while len(fds) < 200: fds.append(os.openpty())\n"
                   "except OSError: pass\n"
                   "print(len(fds), os.ttyname(fds[0][1]))\"",
               "32 /dev/pts/0\n");
    sf_sandbox_destroy(sb);
}

static void fork_bomb_is_capped_and_cleaned_up(void **state)
{
    (void)state;
    struct sf_sandbox_opts o = { .limits = { .pids = 32 } };
    struct sf_sandbox *sb = mk(&o);
    struct sf_run_result r;
    /* 60 children asked for; the cgroup allows 32 tasks, init and the
     * python parent included. */
    run(sb, "python3 -c \"import os, time\n"
            "pids = []\n"
            "for i in range(60):\n"
            "    try: pid = os.fork()\n"
            "    except OSError: break\n"
            "    if pid == 0: time.sleep(30); os._exit(0)\n"
            "    pids.append(pid)\n"
            "print(len(pids))\n"
            "for p in pids: os.kill(p, 9)\"", &r);
    int n = atoi(r.out);
    if (n < 20 || n > 30) fail_msg("children: %d (%s)", n, r.err_tail);
    sf_run_result_clear(&r);
    struct sf_run_spec s = { .cmd = "bomb() { bomb | bomb & }; bomb; sleep 100", .timeout_s = 2 };
    run_spec(sb, &s, &r);
    assert_int_equal(r.status, SF_RUN_TIMEOUT);
    assert_true(r.duration_ms < 5000);
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
}

static void hung_process_times_out_in_a_second(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    char arg[32], cmd[64];
    snprintf(cmd, sizeof(cmd), "sleep %s", secs(100, arg, sizeof(arg)));
    struct sf_run_spec s = { .cmd = cmd, .timeout_s = 1 };
    struct sf_run_result r;
    run_spec(sb, &s, &r);
    assert_int_equal(r.status, SF_RUN_TIMEOUT);
    assert_true(r.duration_ms >= 950 && r.duration_ms < 2000);
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
    assert_false(host_has_process("sleep", arg));
}

static void double_forked_daemon_dies_with_the_sandbox(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_result r;
    char arg[32], cmd[96];
    snprintf(cmd, sizeof(cmd), "(setsid sleep %s &) ; echo ok", secs(1000, arg, sizeof(arg)));
    run(sb, cmd, &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_string_equal(r.out, "ok\n");
    assert_true(r.duration_ms < 3000);                 /* sleep holds stdout: we did not wait */
    sf_run_result_clear(&r);
    assert_true(wait_for_process("sleep", arg));      /* the probe sees it while alive */
    expect_out(sb, "pgrep -c -x sleep", "1\n");         /* still there in the next run */
    sf_sandbox_destroy(sb);
    assert_false(host_has_process("sleep", arg));
}

static void background_child_with_closed_stdout_does_not_hold_the_run(void **state)
{
    (void)state;
    struct sf_sandbox *sb = mk(NULL);
    struct sf_run_result r;
    char arg[32], cmd[96];
    secs(300, arg, sizeof(arg));
    snprintf(cmd, sizeof(cmd), "(exec >&- 2>&-; sleep %s) & echo main-done", arg);
    run(sb, cmd, &r);
    assert_int_equal(r.status, SF_RUN_EXITED);
    assert_string_equal(r.out, "main-done\n");
    assert_true(r.duration_ms < 3000);
    sf_run_result_clear(&r);
    snprintf(cmd, sizeof(cmd), "sleep %s & echo holds-stdout", arg);
    run(sb, cmd, &r);
    assert_string_equal(r.out, "holds-stdout\n");
    assert_true(r.duration_ms < 3000);
    sf_run_result_clear(&r);
    sf_sandbox_destroy(sb);
    assert_false(host_has_process("sleep", arg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(root_only_host_file_is_unreadable),
        cmocka_unit_test(host_etc_is_not_there),
        cmocka_unit_test(usr_is_read_only),
        cmocka_unit_test(the_shared_root_is_read_only),
        cmocka_unit_test(the_mount_table_holds_only_the_sandbox_root),
        cmocka_unit_test(the_image_stays_read_only_for_a_sandbox_root_past_seccomp),
        cmocka_unit_test(planted_symlinks_cannot_redirect_worker_writes),
        cmocka_unit_test(planted_fifo_cannot_hang_worker_writes),
        cmocka_unit_test(disk_fill_stops_at_the_tmpfs_size),
        cmocka_unit_test(no_leaked_fds),
        cmocka_unit_test(worker_argv_and_env_do_not_leak),
        cmocka_unit_test(host_pids_are_invisible_and_unkillable),
        cmocka_unit_test(uid_map_does_not_map_host_root),
        cmocka_unit_test(terminals_are_its_own_and_capped),
        cmocka_unit_test(no_capabilities_no_new_privs_seccomp),
        cmocka_unit_test(ptrace_of_a_sibling_fails),
        cmocka_unit_test(nested_user_namespace_fails),
        cmocka_unit_test(mount_fails),
        cmocka_unit_test(seccomp_deny_list),
        cmocka_unit_test(host_loopback_is_unreachable),
        cmocka_unit_test(sandboxes_cannot_reach_each_others_loopback),
        cmocka_unit_test(memory_bomb_is_oom_killed_and_sandbox_survives),
        cmocka_unit_test(fork_bomb_is_capped_and_cleaned_up),
        cmocka_unit_test(hung_process_times_out_in_a_second),
        cmocka_unit_test(double_forked_daemon_dies_with_the_sandbox),
        cmocka_unit_test(background_child_with_closed_stdout_does_not_hold_the_run),
    };
    return cmocka_run_group_tests(tests, escape_setup, group_teardown);
}
