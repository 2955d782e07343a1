/* common/sandbox/local/sbx_seccomp.h: the local sandbox's seccomp filter.
 *
 * The filter is built with libseccomp once per provider and exported as raw
 * BPF, so the sandbox child only calls prctl() (async-signal-safe, no
 * allocation) right before execve. Default action: allow; denied syscalls
 * fail with EPERM (clone3 with ENOSYS so libc falls back to clone, whose
 * flags can be checked); a foreign architecture or an x32 syscall number
 * kills the process. docs/security.md gives the reason for every entry. */
#ifndef SF_SBX_SECCOMP_H
#define SF_SBX_SECCOMP_H

#include <stddef.h>
#include <linux/filter.h>

struct sf_sbx_bpf {
    struct sock_filter *insns;   /* owned, malloc'd */
    unsigned short len;
};

/* Build the filter. Returns 0 or -errno with a reason in errstr. The result
 * is owned by the caller: free with sf_sbx_seccomp_free. Any thread. */
int sf_sbx_seccomp_build(struct sf_sbx_bpf *out, char *errstr, size_t errlen);

/* NULL fields are a no-op. */
void sf_sbx_seccomp_free(struct sf_sbx_bpf *b);

/* Install the filter on the calling thread. Needs no_new_privs (or
 * CAP_SYS_ADMIN). Async-signal-safe: one prctl. Returns 0 or -errno. */
int sf_sbx_seccomp_apply(const struct sf_sbx_bpf *b);

#endif
