/* common/sandbox/sandbox.h: one sandbox interface, several backends.
 *
 * A *provider* is a configured backend ("local", "process", "e2b"); it creates
 * *sandboxes*. A sandbox lives until destroyed and can run several commands
 * one after another (workflow "sandbox": "shared"); its writable places are
 * /workspace, /home/user, /tmp and /tmp/shared.
 *
 * Backends fill a struct of function pointers, like hiredis' adapters:
 *   sandbox_local.c    Linux namespaces + seccomp + cgroups (the default)
 *   sandbox_process.c  a plain child process, no isolation (trusted agents)
 *   sandbox_e2b.c      E2B cloud sandboxes over REST + envd
 *
 * Threads: a provider may be used from any thread at once (create is
 * thread-safe). One sandbox is used by one thread at a time.
 * Errors: functions return 0 or -errno; the reason text is in sb->errstr
 * (or in the errstr buffer passed to create).
 * The caller must ignore SIGPIPE (an agent may close stdin early).
 */
#ifndef SF_SANDBOX_H
#define SF_SANDBOX_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "inject.h"
#include "netpolicy.h"
#include "resources.h"

#define SF_ERRSTR_LEN 512

/* One read-only bind mount from the host into a local sandbox. */
struct sf_bind {
    const char *host_path;
    const char *sandbox_path;
};

struct sf_sandbox_opts {
    bool network;             /* false: own net namespace with only lo; true: egress */
    const struct sf_netpolicy *net_policy; /* with network: the step's rules (borrowed);
                                              NULL: the provider's default policy */
    const struct sf_inject *inject; /* with network: headers the egress path adds to HTTPS
                                       requests to named hosts, secrets resolved (borrowed,
                                       copied by the backend); NULL: none (inject.h) */
    bool egress_ca;           /* with network: trust the egress path's CA even without
                                 inject, which set_network may add later (E2B) */
    struct sf_limits limits;  /* 0 fields take the provider's defaults */
    const struct sf_bind *ro_binds; /* extra read-only binds (local only) */
    size_t n_ro_binds;
    const char *label;        /* for logs and E2B metadata, may be NULL */
    const char *rootfs;       /* local: a template's root file system (a directory)
                                 used read-only instead of the host's /usr; NULL:
                                 the default image */
};

/* Called with each chunk of output as it arrives (streaming). */
typedef void (*sf_output_cb)(void *arg, const char *data, size_t len);

struct sf_run_spec {
    const char *cmd;            /* run by /bin/sh -c */
    const char *cwd;            /* default /workspace */
    const char *const *env;     /* "K=V" strings, NULL-terminated; may be NULL */
    const void *stdin_data;     /* written to the command's stdin, then closed */
    size_t stdin_len;
    double timeout_s;           /* wall clock; <= 0 means none */
    const struct sf_limits *limits; /* per-run overrides, may be NULL */
    size_t stdout_cap;          /* bytes of stdout kept; 0 = 16 MiB */
    size_t stderr_tail;         /* bytes of stderr tail kept; 0 = 4 KiB */
    sf_output_cb on_stdout, on_stderr; /* optional streaming callbacks */
    void *cb_arg;
};

enum sf_run_status {
    SF_RUN_EXITED = 0,   /* exited; see exit_code */
    SF_RUN_SIGNALED,     /* killed by a signal; see term_signal */
    SF_RUN_TIMEOUT,      /* wall-clock timeout: the whole sandbox was killed */
    SF_RUN_OOM,          /* memory limit hit, the kernel's OOM killer fired */
    SF_RUN_EXEC_FAILED,  /* the command could not be started; see error */
};

struct sf_run_result {
    enum sf_run_status status;
    int exit_code;          /* valid for SF_RUN_EXITED; 128+sig otherwise */
    int term_signal;
    char *out;              /* stdout, NUL-terminated; owned, free with sf_run_result_clear */
    size_t out_len;
    bool out_truncated;     /* stdout exceeded stdout_cap */
    char *err_tail;         /* the last bytes of stderr, NUL-terminated; owned */
    size_t err_len;
    int64_t duration_ms;
    char error[SF_ERRSTR_LEN]; /* human message for non-EXITED outcomes */
};

void sf_run_result_clear(struct sf_run_result *r);
/* Fill status, exit_code, term_signal and error from a wait(2) status:
 * SF_RUN_EXITED, or SF_RUN_SIGNALED with "killed by signal N (name)". */
void sf_run_result_from_wait(struct sf_run_result *r, int wait_status);

/* What a sandbox uses now (its cgroup), for metrics. Unknown fields: -1. */
struct sf_sandbox_stats {
    int64_t cpu_usage_us;       /* CPU time used since create */
    int64_t mem_bytes, mem_limit_bytes;
    int64_t disk_bytes, disk_limit_bytes;   /* the writable places */
    int cpus;                   /* CPUs it may use */
};

/* A command left running by sf_sandbox_start (warm agents, and callers that
 * drive many commands from one event loop): the caller owns the three pipe
 * ends (O_NONBLOCK | O_CLOEXEC; -1 once closed), feeds stdin, reads stdout
 * and stderr, keeps time, and learns of the exit through wait_fd. */
struct sf_sandbox_cmd {
    int pid;                    /* the sandbox's view */
    int in_fd, out_fd, err_fd;
    int wait_fd;                /* borrowed from the sandbox: readable when
                                   sf_sandbox_reap may have news */
};

struct sf_sandbox;
struct sf_proc_host;
struct sf_fs_ops;
struct sf_sandbox_ops {
    /* Write 'len' bytes to 'path' inside the sandbox (parents created, mode
     * 0644 or as given). Paths resolve inside the sandbox root: symlinks
     * planted by the sandbox cannot point the write at the host. */
    int (*write_file)(struct sf_sandbox *sb, const char *path, const void *data,
                      size_t len, int mode);
    /* Read at most 'max' bytes of 'path'; *data is malloc'd and NUL-terminated.
     * -EFBIG when the file is larger than max. */
    int (*read_file)(struct sf_sandbox *sb, const char *path, size_t max,
                     char **data, size_t *len);
    /* Run one command to completion. Returns 0 when the outcome (whatever it
     * is: exit, timeout, OOM, exec failure) is in 'res'; -errno only when the
     * sandbox itself broke. */
    int (*run)(struct sf_sandbox *sb, const struct sf_run_spec *spec,
               struct sf_run_result *res);
    /* Kill everything in the sandbox and free it; leaves nothing on the host. */
    void (*destroy)(struct sf_sandbox *sb);
    /* Optional (NULL: nothing): kill every process in the sandbox now,
     * while other threads may still be in calls on it (which then fail
     * with -ESRCH, or finish with what they had open); destroy() frees it
     * later. For a server whose requests hold a sandbox past its end: a
     * download being read must not keep its processes running. Thread:
     * any, one call at a time. */
    void (*kill)(struct sf_sandbox *sb);
    /* Optional (NULL: -ENOTSUP): several processes at once, sandbox_proc.h. */
    int (*proc_host)(struct sf_sandbox *sb, struct sf_proc_host **out, char *err, size_t errlen);
    /* Optional (NULL): the file system as one of its users, sandbox_fs.h. */
    const struct sf_fs_ops *fs;
    /* Optional (NULL: -ENOTSUP): stop every process where it is (memory
     * kept) or let them go on. 0 or -errno. */
    int (*freeze)(struct sf_sandbox *sb, bool frozen);
    /* Optional (NULL: -ENOTSUP). */
    int (*stats)(struct sf_sandbox *sb, struct sf_sandbox_stats *st);
    /* Optional (NULL: -ENOTSUP): replace the egress rules and injected
     * headers of a sandbox made with network on (E2B update_network); NULL
     * rules: the default policy; NULL inject: none. New connections follow
     * them. Thread-safe with the sandbox's use. */
    int (*set_network)(struct sf_sandbox *sb, const struct sf_netpolicy *rules,
                       const struct sf_inject *inject);
    /* Optional (NULL: -ENOTSUP): a TCP connection from the worker to
     * 127.0.0.1:port inside the sandbox's own network (E2B get_host),
     * whatever its egress rules: *fd is a non-blocking socket whose connect
     * has been started (wait for writability, then read SO_ERROR). 0 or
     * -errno. Thread-safe with the sandbox's use. */
    int (*connect_port)(struct sf_sandbox *sb, uint16_t port, int *fd);
    /* Optional (NULL: -ENOTSUP): let the provider's other sandboxes with
     * network reach this one's ports by HTTP to "<port>-<name>" (E2B
     * get_host from inside a sandbox: name is "<id>.<domain>"); 'token'
     * (NULL: none) must then come in the e2b-traffic-access-token header.
     * Until the sandbox is destroyed. 0 or -errno. */
    int (*set_ingress)(struct sf_sandbox *sb, const char *name, const char *token);
    /* Optional (NULL: -ENOTSUP): start spec->cmd and leave it running (its
     * stdin_data, timeout_s and callbacks are not used). One started command
     * per sandbox at a time, never together with run(). Returns 0 with cmd
     * filled; 1 when the command could not start, with res filled as run()
     * would (SF_RUN_EXEC_FAILED); -errno when the sandbox broke (errstr). */
    int (*start)(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                 struct sf_sandbox_cmd *cmd, struct sf_run_result *res);
    /* Has the started command exited? Never blocks. 1: yes, res has its
     * status, exit_code, term_signal and error (SF_RUN_EXITED, _SIGNALED or
     * _OOM; out and err_tail are the caller's); 0: not yet; -errno: the
     * sandbox broke (errstr). After 1 the sandbox may start another. */
    int (*reap)(struct sf_sandbox *sb, struct sf_sandbox_cmd *cmd, struct sf_run_result *res);
};

/* Every backend's sandbox struct starts with this. */
struct sf_sandbox {
    const struct sf_sandbox_ops *ops;
    char errstr[SF_ERRSTR_LEN];
    char id[64];               /* backend's sandbox id, for logs */
};

static inline int sf_sandbox_write_file(struct sf_sandbox *sb, const char *path,
                                        const void *data, size_t len, int mode)
{ return sb->ops->write_file(sb, path, data, len, mode); }
static inline int sf_sandbox_read_file(struct sf_sandbox *sb, const char *path,
                                       size_t max, char **data, size_t *len)
{ return sb->ops->read_file(sb, path, max, data, len); }
static inline int sf_sandbox_run(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                                 struct sf_run_result *res)
{ return sb->ops->run(sb, spec, res); }
static inline void sf_sandbox_kill(struct sf_sandbox *sb)
{ if (sb->ops->kill) sb->ops->kill(sb); }
static inline int sf_sandbox_freeze(struct sf_sandbox *sb, bool frozen)
{ return sb->ops->freeze ? sb->ops->freeze(sb, frozen) : -ENOTSUP; }
static inline int sf_sandbox_stats(struct sf_sandbox *sb, struct sf_sandbox_stats *st)
{ return sb->ops->stats ? sb->ops->stats(sb, st) : -ENOTSUP; }
static inline int sf_sandbox_start(struct sf_sandbox *sb, const struct sf_run_spec *spec,
                                   struct sf_sandbox_cmd *cmd, struct sf_run_result *res)
{ return sb->ops->start ? sb->ops->start(sb, spec, cmd, res) : -ENOTSUP; }
static inline int sf_sandbox_reap(struct sf_sandbox *sb, struct sf_sandbox_cmd *cmd,
                                  struct sf_run_result *res)
{ return sb->ops->reap ? sb->ops->reap(sb, cmd, res) : -ENOTSUP; }
/* NULL is a no-op. */
static inline void sf_sandbox_destroy(struct sf_sandbox *sb)
{ if (sb) sb->ops->destroy(sb); }
static inline int sf_sandbox_set_network(struct sf_sandbox *sb, const struct sf_netpolicy *rules,
                                         const struct sf_inject *inject)
{ return sb->ops->set_network ? sb->ops->set_network(sb, rules, inject) : -ENOTSUP; }
static inline int sf_sandbox_connect_port(struct sf_sandbox *sb, uint16_t port, int *fd)
{ return sb->ops->connect_port ? sb->ops->connect_port(sb, port, fd) : -ENOTSUP; }
static inline int sf_sandbox_set_ingress(struct sf_sandbox *sb, const char *name, const char *token)
{ return sb->ops->set_ingress ? sb->ops->set_ingress(sb, name, token) : -ENOTSUP; }

/* --- providers ---------------------------------------------------------- */

/* Settings for all backends; each reads the part it needs. Strings are
 * borrowed for the provider's lifetime. */
struct sf_provider_config {
    struct sf_limits defaults;     /* 0 fields: built-in defaults */
    const struct sf_log *log;      /* warnings and egress notes go here (borrowed; NULL: none) */
    /* local */
    uint32_t host_uid, host_gid;   /* ids sandbox root maps to; 0 = 65534 */
    uint32_t host_user_uid, host_user_gid; /* ids sandbox "user" (1000) maps to; 0 = 65533 */
    const char *cgroup_parent;     /* NULL: "sandfleet" under our own cgroup */
    bool cgroups_optional;         /* true: run without memory/pids limits when
                                      cgroups are not writable (warns) */
    /* local: the egress policy of sandboxes with network on (docs/security.md,
     * "Network"); NULL-terminated lists, NULL for none */
    const char *const *egress_allow; /* CIDRs and host names the default policy opens */
    const char *const *egress_deny;  /* CIDRs it closes, even public ones */
    const char *const *egress_dns;   /* upstream resolvers "IP[:PORT]"; NULL: /etc/resolv.conf */
    /* e2b */
    const char *e2b_api_key, *e2b_domain, *e2b_api_url, *e2b_sandbox_url;
    const char *e2b_template;
};

struct sf_sandbox_provider;
struct sf_provider_ops {
    const char *name;
    /* Create a sandbox. Thread-safe. On failure returns -errno and a message
     * naming the fix in errstr. */
    int (*create)(struct sf_sandbox_provider *p, const struct sf_sandbox_opts *opts,
                  struct sf_sandbox **out, char *errstr, size_t errlen);
    void (*free)(struct sf_sandbox_provider *p);
};

struct sf_sandbox_provider {
    const struct sf_provider_ops *ops;
};

/* Make a provider for 'kind' ("local", "process", "e2b"). Returns NULL with a
 * message in errstr for an unknown kind or a backend that cannot work here
 * (e.g. no user namespaces: the message names the privileges to grant). */
struct sf_sandbox_provider *sf_sandbox_provider_new(const char *kind,
        const struct sf_provider_config *cfg, char *errstr, size_t errlen);

static inline int sf_sandbox_create(struct sf_sandbox_provider *p,
        const struct sf_sandbox_opts *opts, struct sf_sandbox **out,
        char *errstr, size_t errlen)
{ return p->ops->create(p, opts, out, errstr, errlen); }
/* NULL is a no-op. */
static inline void sf_sandbox_provider_free(struct sf_sandbox_provider *p)
{ if (p) p->ops->free(p); }

/* Backend constructors (used by sf_sandbox_provider_new). */
struct sf_sandbox_provider *sf_sandbox_local_new(const struct sf_provider_config *cfg,
                                                 char *errstr, size_t errlen);
struct sf_sandbox_provider *sf_sandbox_process_new(const struct sf_provider_config *cfg,
                                                   char *errstr, size_t errlen);
struct sf_sandbox_provider *sf_sandbox_e2b_new(const struct sf_provider_config *cfg,
                                               char *errstr, size_t errlen);

#endif
