/* common/sandbox/local/sbx_seccomp.c: see sbx_seccomp.h.
 *
 * Design: a deny list on top of default-allow, like Docker's profile plus
 * io_uring and the namespace/mount family. libseccomp compiles it; the BPF
 * is exported through a memfd and kept in memory. A short hand-written
 * prefix handles personality(2), whose "allow only these two values" rule
 * libseccomp cannot express (one comparison per argument per rule). */
#include "sbx_seccomp.h"
#include "util.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* Syscalls that fail with EPERM. Numbers come from the kernel headers so
 * the list works whatever libseccomp version knows by name. */
static const int sf_sbx_denied[] = {
    /* debugging other processes: reading/writing their memory */
    __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_kcmp,
#ifdef __NR_pidfd_getfd
    __NR_pidfd_getfd,
#endif
#ifdef __NR_process_madvise
    __NR_process_madvise,
#endif
    /* the mount table: remounting / over-mounting would undo the root */
    __NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot,
#ifdef __NR_fsopen
    __NR_fsopen, __NR_fsconfig, __NR_fsmount, __NR_fspick, __NR_move_mount,
    __NR_open_tree,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
    /* namespaces: a nested user ns re-grants a full capability set */
    __NR_setns, __NR_unshare,
    /* the host kernel itself */
    __NR_kexec_load,
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
    __NR_init_module, __NR_finit_module, __NR_delete_module,
    __NR_reboot, __NR_swapon, __NR_swapoff, __NR_acct, __NR_quotactl,
#ifdef __NR_quotactl_fd
    __NR_quotactl_fd,
#endif
    __NR_syslog, __NR_vhangup,
    /* large kernel attack surface with a history of exploits */
    __NR_bpf, __NR_perf_event_open, __NR_userfaultfd,
    __NR_keyctl, __NR_add_key, __NR_request_key,
#ifdef __NR_io_uring_setup
    __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
#endif
    /* files by handle bypass path permissions (the "shocker" escape) */
    __NR_open_by_handle_at, __NR_name_to_handle_at,
    /* the host clock */
    __NR_clock_settime, __NR_clock_adjtime, __NR_settimeofday, __NR_adjtimex,
    /* hardware and NUMA placement */
#ifdef __NR_iopl
    __NR_iopl, __NR_ioperm,
#endif
    __NR_mbind, __NR_set_mempolicy, __NR_move_pages, __NR_migrate_pages,
#ifdef __NR_set_mempolicy_home_node
    __NR_set_mempolicy_home_node,
#endif
    /* obsolete interfaces nobody needs */
#ifdef __NR_lookup_dcookie
    __NR_lookup_dcookie,
#endif
#ifdef __NR_uselib
    __NR_uselib,
#endif
#ifdef __NR_ustat
    __NR_ustat,
#endif
#ifdef __NR_sysfs
    __NR_sysfs,
#endif
#ifdef __NR_nfsservctl
    __NR_nfsservctl,
#endif
#ifdef __NR_vm86
    __NR_vm86, __NR_vm86old,
#endif
};

/* Namespace flags clone(2) must not carry (arg 0 on every Linux ABI we
 * build for). CLONE_NEWTIME is left out: for clone() that bit is part of
 * the exit signal. */
static const unsigned long sf_sbx_ns_flags[] = {
    CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
    CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
};

#if defined(__x86_64__)
#define SF_SBX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SF_SBX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "sbx_seccomp: add the AUDIT_ARCH value for this architecture"
#endif

/* personality(2): allow PER_LINUX (0) and the query (0xffffffff) only.
 * Jumps to the end of this prefix continue into libseccomp's program. */
#define SF_SBX_PERS_LEN 8
static void sf_sbx_personality_prefix(struct sock_filter *f)
{
    const unsigned char out = SF_SBX_PERS_LEN - 1; /* from insn 0 to the end */
    f[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        offsetof(struct seccomp_data, arch));
    f[1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SF_SBX_AUDIT_ARCH, 0, out - 1);
    f[2] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        offsetof(struct seccomp_data, nr));
    f[3] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, out - 3);
    f[4] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        offsetof(struct seccomp_data, args[0]));
    f[5] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, out - 5, 0);
    f[6] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffu, out - 6, 0);
    f[7] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
}

int sf_sbx_seccomp_build(struct sf_sbx_bpf *out, char *errstr, size_t errlen)
{
    scmp_filter_ctx ctx = NULL;
    int rc = 0, mfd = -1;
    const char *what = "seccomp_init";
    struct sock_filter *prog = NULL;

    memset(out, 0, sizeof(*out));
    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) { rc = -ENOMEM; goto cleanup; }
    what = "seccomp badarch attribute";
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
        goto cleanup;
    what = "seccomp deny rule";
    for (size_t i = 0; i < sizeof(sf_sbx_denied) / sizeof(sf_sbx_denied[0]); i++) {
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), sf_sbx_denied[i], 0)) < 0)
            goto cleanup;
    }
    what = "seccomp clone rule";
    for (size_t i = 0; i < sizeof(sf_sbx_ns_flags) / sizeof(sf_sbx_ns_flags[0]); i++) {
        unsigned long f = sf_sbx_ns_flags[i];
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), __NR_clone, 1,
                                   SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) < 0)
            goto cleanup;
    }
#ifdef __NR_clone3
    /* clone3 passes its flags in memory that BPF cannot read. */
    what = "seccomp clone3 rule";
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), __NR_clone3, 0)) < 0) goto cleanup;
#endif
    /* Terminal injection; the request is an int, so compare 32 bits only
     * (CVE-2019-10063: high bits set slipped past a 64-bit compare). */
    what = "seccomp ioctl rule";
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), __NR_ioctl, 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI))) < 0 ||
        (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), __NR_ioctl, 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX))) < 0)
        goto cleanup;

    what = "memfd_create";
    mfd = memfd_create("sf-seccomp", MFD_CLOEXEC);
    if (mfd < 0) { rc = -errno; goto cleanup; }
    what = "seccomp_export_bpf";
    if ((rc = seccomp_export_bpf(ctx, mfd)) < 0) goto cleanup;
    struct stat st;
    what = "reading the exported filter";
    if (fstat(mfd, &st) < 0) { rc = -errno; goto cleanup; }
    size_t n = (size_t)st.st_size / sizeof(struct sock_filter);
    if (n == 0 || n + SF_SBX_PERS_LEN > BPF_MAXINSNS) { rc = -E2BIG; goto cleanup; }
    prog = sf_xcalloc(n + SF_SBX_PERS_LEN, sizeof(*prog));
    sf_sbx_personality_prefix(prog);
    ssize_t got = pread(mfd, prog + SF_SBX_PERS_LEN, n * sizeof(*prog), 0);
    if (got != (ssize_t)(n * sizeof(*prog))) { rc = got < 0 ? -errno : -EIO; goto cleanup; }
    out->insns = prog;
    out->len = (unsigned short)(n + SF_SBX_PERS_LEN);
    prog = NULL;
    rc = 0;
cleanup:
    if (rc < 0) sf_errf(errstr, errlen, "%s: %s", what, strerror(-rc));
    free(prog);
    if (mfd >= 0) close(mfd);
    if (ctx) seccomp_release(ctx);
    return rc;
}

void sf_sbx_seccomp_free(struct sf_sbx_bpf *b)
{
    if (!b) return;
    free(b->insns);
    b->insns = NULL;
    b->len = 0;
}

int sf_sbx_seccomp_apply(const struct sf_sbx_bpf *b)
{
    struct sock_fprog fp = { .len = b->len, .filter = b->insns };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) < 0) return -errno;
    return 0;
}
