/* common/sandbox/local/sbx_exec.c: see sbx_exec.h.
 *
 * Design: the decision is made in the worker, where it is cheap to be
 * strict: a command qualifies only when every byte is in a small set with
 * no meaning to any POSIX shell, so splitting on spaces is exactly what the
 * shell's own parser would do. The exec side follows dash 0.5.12 (Debian's
 * /bin/sh): find_command() stats each PATH entry and takes the first
 * regular file, shellexec() execs it (and later entries), tryexec() hands a
 * file without #! to /bin/sh, and the errno maps to 127 or 126. It runs in
 * the sandbox's grandchild after seccomp, so only syscalls: no malloc, no
 * stdio, no strerror (it may load locale data); strerrordesc_np is a table. */
#include "sbx_exec.h"
#include "sbx_init.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- worker side ---------------------------------------------------------- */

static bool sf_sbx_env_has(const char *const *env, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (!strncmp(env[i], key, k) && env[i][k] == '=') return true;
    return false;
}

size_t sf_sbx_exec_defaults(const char *const *env, const char *const *extra, const char **out)
{
    static const char *const base[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user", NULL };
    const char *const *lists[2] = { base, extra };
    size_t n = 0;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++) {
            char key[64];
            const char *eq = strchr(lists[l][i], '=');
            size_t k = eq ? (size_t)(eq - lists[l][i]) : 0;
            if (!k || k >= sizeof(key)) continue;
            snprintf(key, sizeof(key), "%.*s", (int)k, lists[l][i]);
            if (!sf_sbx_env_has(env, key)) out[n++] = lists[l][i];
        }
    return n;
}

size_t sf_sbx_exec_pack(const struct sf_run_spec *spec, const struct sf_limits *lim,
                        int64_t fsize, const char *const *extra, struct sf_buf *b)
{
    struct sf_sbx_run_hdr h = { .type = SF_SBX_MSG_RUN, .cpu_s = lim->cpu_s, .nofile = lim->nofile,
                                .fsize_bytes = fsize };
    const char *cwd = spec->cwd && spec->cwd[0] ? spec->cwd : "/workspace";
    size_t nuser = 0, nextra = 0;
    while (spec->env && spec->env[nuser]) nuser++;
    while (extra && extra[nextra]) nextra++;
    const char **env = sf_xcalloc(nuser + nextra + 3, sizeof(*env));
    h.nenv = (uint32_t)sf_sbx_exec_defaults(spec->env, extra, env);
    for (size_t i = 0; i < nuser; i++) env[h.nenv++] = spec->env[i];
    sf_buf_append(b, &h, sizeof(h));
    sf_buf_append(b, cwd, strlen(cwd) + 1);
    sf_buf_append(b, spec->cmd, strlen(spec->cmd) + 1);
    h.argc = (uint32_t)sf_sbx_exec_split(spec->cmd, env, h.nenv, b);
    for (size_t i = 0; i < h.nenv; i++) sf_buf_append(b, env[i], strlen(env[i]) + 1);
    free(env);
    h.strings_len = (uint32_t)(b->len - sizeof(h));
    memcpy(b->data, &h, sizeof(h));
    if (b->len > SF_SBX_RUN_MAX || h.nenv > SF_SBX_ENV_MAX) return 0;
    return b->len;
}

int sf_sbx_exec_send(int ctl, const struct sf_buf *b, const int fds[3])
{
    struct iovec iov = { b->data, b->len };
    union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
    for (;;) {
        if (sendmsg(ctl, &mh, MSG_NOSIGNAL) >= 0) return 0;
        if (errno != EINTR) return -errno;
    }
}


/* Builtins and reserved words of dash and bash: as a first word the shell
 * would not exec a file of that name (or not the same way). */
static const char *const sf_sbx_shell_words[] = {
    ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "case", "cd", "chdir",
    "command", "compgen", "complete", "continue", "coproc", "declare", "dirs", "disown", "do",
    "done", "echo", "elif", "else", "enable", "esac", "eval", "exec", "exit", "export", "false",
    "fc", "fg", "fi", "for", "function", "getopts", "hash", "help", "history", "if", "in", "jobs",
    "kill", "let", "local", "logout", "mapfile", "newgrp", "popd", "printf", "pushd", "pwd",
    "read", "readarray", "readonly", "return", "select", "set", "shift", "shopt", "source",
    "suspend", "test", "then", "time", "times", "trap", "true", "type", "typeset", "ulimit",
    "umask", "unalias", "unset", "until", "wait", "while",
};

static bool sf_sbx_plain_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("_./=:,+@%-", c));
}

static bool sf_sbx_env_name_ok(const char *e, size_t *klen)
{
    const char *eq = strchr(e, '=');
    if (!eq || eq == e || (e[0] >= '0' && e[0] <= '9')) return false;
    for (const char *p = e; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    *klen = (size_t)(eq - e);
    return true;
}

/* Variables the shell sets or resets itself at startup (so it would not
 * export the inherited value unchanged). */
static const char *const sf_sbx_shell_vars[] = {
    "IFS", "PPID", "OPTIND", "PS1", "PS2", "PS4", "LINENO", "ENV", "SHLVL", "_",
};

/* dash passes its environment on unchanged only when every entry is a
 * variable it can hold once; PATH entries like "%builtin" change its search. */
static bool sf_sbx_env_plain(const char *const *env, size_t n)
{
    if (n > SF_SBX_ARGV_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        if (!sf_sbx_env_name_ok(env[i], &k)) return false;
        if (k == 4 && !strncmp(env[i], "PATH", 4) && strchr(env[i], '%')) return false;
        for (size_t j = 0; j < sizeof(sf_sbx_shell_vars) / sizeof(sf_sbx_shell_vars[0]); j++)
            if (strlen(sf_sbx_shell_vars[j]) == k && !strncmp(env[i], sf_sbx_shell_vars[j], k))
                return false;
        for (size_t j = 0; j < i; j++)
            if (!strncmp(env[j], env[i], k + 1)) return false;
    }
    return true;
}

size_t sf_sbx_exec_split(const char *cmd, const char *const *env, size_t n, struct sf_buf *b)
{
    size_t words = 0, first_len = 0, start = b->len;
    const char *first = NULL;

    for (const char *p = cmd; *p; p++)
        if (*p != ' ' && !sf_sbx_plain_byte((unsigned char)*p)) return 0;
    if (!sf_sbx_env_plain(env, n)) return 0;
    for (const char *p = cmd; *p;) {
        if (*p == ' ') { p++; continue; }
        size_t len = strcspn(p, " ");
        if (!first) { first = p; first_len = len; }
        if (++words > SF_SBX_ARGV_MAX) break;
        sf_buf_append(b, p, len);
        sf_buf_append(b, "", 1);
        p += len;
    }
    bool ok = words > 0 && words <= SF_SBX_ARGV_MAX && !memchr(first, '=', first_len);
    for (size_t i = 0; ok && i < sizeof(sf_sbx_shell_words) / sizeof(sf_sbx_shell_words[0]); i++)
        if (strlen(sf_sbx_shell_words[i]) == first_len &&
            !memcmp(sf_sbx_shell_words[i], first, first_len))
            ok = false;
    if (!ok) {
        b->len = start;
        return 0;
    }
    return words;
}

/* ---- sandbox side (syscalls only) ---------------------------------------- */

static const char *sf_sbx_getenv(char **envp, const char *key, size_t klen)
{
    for (size_t i = 0; envp[i]; i++)
        if (!strncmp(envp[i], key, klen) && envp[i][klen] == '=') return envp[i] + klen + 1;
    return NULL;
}

void sf_sbx_exec_pwd(char **envp, size_t *n, char *buf, size_t size)
{
    struct stat a, b;
    size_t slot = *n;
    for (size_t i = 0; i < *n; i++)
        if (!strncmp(envp[i], "PWD=", 4)) slot = i;
    const char *pwd = slot < *n ? envp[slot] + 4 : NULL;
    if (pwd && pwd[0] == '/' && stat(pwd, &a) == 0 && stat(".", &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return;
    memcpy(buf, "PWD=", 4);
    if (!getcwd(buf + 4, size - 4)) return;   /* dash leaves PWD unset then */
    envp[slot] = buf;
    if (slot == *n) envp[++*n] = NULL;
}

static void sf_sbx_puts2(const char *s)
{
    (void)!write(2, s, strlen(s));
}

static void __attribute__((noreturn)) sf_sbx_exec_error(const char *name, int e, int code)
{
    const char *msg = e == ENOENT || e == ENOTDIR ? "not found" : strerrordesc_np(e);
    sf_sbx_puts2("sh: 1: ");
    sf_sbx_puts2(name);
    sf_sbx_puts2(": ");
    sf_sbx_puts2(msg ? msg : "exec failed");
    sf_sbx_puts2("\n");
    _exit(code);
}

/* dash's tryexec(): a file the kernel will not run is a shell script. */
static void sf_sbx_tryexec(const char *path, char **argv, char **envp)
{
    execve(path, argv + 1, envp);
    if (errno != ENOEXEC) return;
    argv[0] = "/bin/sh";
    argv[1] = (char *)path;
    execve("/bin/sh", argv, envp);
}

void sf_sbx_exec_direct(char **argv, char **envp)
{
    static char full[4096];
    const char *name = argv[1];
    size_t nlen = strlen(name);
    int e = ENOENT;

    if (strchr(name, '/')) {
        sf_sbx_tryexec(name, argv, envp);
        e = errno;
        sf_sbx_exec_error(name, e, e == ENOENT || e == ENOTDIR || e == ELOOP ||
                                   e == ENAMETOOLONG ? 127 : 126);
    }
    /* dash's default when PATH is unset (the worker always sets one). */
    const char *path = sf_sbx_getenv(envp, "PATH", 4);
    if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    bool found = false;
    int ex = ENOENT;                         /* shellexec()'s errno, once found */
    for (const char *p = path; p;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        const char *next = colon ? colon + 1 : NULL;
        if (dlen + nlen + 2 > sizeof(full)) { p = next; continue; }
        memcpy(full, p, dlen);
        size_t off = dlen;
        if (dlen) full[off++] = '/';        /* an empty entry is the cwd */
        memcpy(full + off, name, nlen + 1);
        p = next;
        if (!found) {
            struct stat st;
            if (stat(full, &st) < 0) {
                if (errno != ENOENT && errno != ENOTDIR) e = errno;
                continue;
            }
            e = EACCES;
            if (!S_ISREG(st.st_mode)) continue;
            found = true;
        }
        sf_sbx_tryexec(full, argv, envp);
        if (errno != ENOENT && errno != ENOTDIR) ex = errno;
    }
    if (!found) sf_sbx_exec_error(name, e, 127);
    sf_sbx_exec_error(name, ex, ex == ENOENT || ex == ENOTDIR || ex == ELOOP ||
                                ex == ENAMETOOLONG ? 127 : 126);
}
