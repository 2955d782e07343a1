/* common/sandbox/local/sbx_exec.h: running a plain command without /bin/sh.
 *
 * `sh -c 'cat /tmp/input.json'` costs two execs: dash vfork()s and execs
 * cat even for a single command. When a command has no shell syntax at
 * all, the worker splits it into words itself and the sandbox execs it
 * directly, with the same PATH search, argv, environment (dash exports
 * PWD) and errors (127 "not found", 126 "Permission denied", on stderr as
 * "sh: 1: NAME: MESSAGE") as dash would produce. Anything else — quotes,
 * $, globs, redirections, ;, &, |, backslashes, newlines, a builtin or
 * keyword as the first word, an assignment — still goes to /bin/sh -c.
 *
 * Thread: sf_sbx_exec_pack/send/split any thread (allocate); sf_sbx_exec_pwd and
 * sf_sbx_exec_direct only in the sandbox's grandchild (syscalls only). */
#ifndef SF_SBX_EXEC_H
#define SF_SBX_EXEC_H

#include <stddef.h>
#include <stdint.h>
#include "resources.h"
#include "sandbox.h"
#include "util.h"

#define SF_SBX_ARGV_MAX 256         /* more words: run through the shell */

/* The environment defaults of every command: PATH, HOME, then the
 * sandbox's own 'extra' (NULL-terminated "K=V", may be NULL: e.g. the CA
 * variables of injected headers), each unless 'env' sets it. Writes them to
 * out (room for 2 + the extras) and returns how many. */
size_t sf_sbx_exec_defaults(const char *const *env, const char *const *extra, const char **out);

/* The RUN request for 'spec' (sbx_init.h): header with lim's cpu_s and
 * nofile and fsize (bytes, 0: none), then cwd, cmd, its words when it
 * needs no shell (below) and the environment with the defaults above.
 * Returns its length, or 0 when it does not fit in one request. */
size_t sf_sbx_exec_pack(const struct sf_run_spec *spec, const struct sf_limits *lim,
                        int64_t fsize, const char *const *extra, struct sf_buf *b);
/* Send a packed request with the command's stdin, stdout, stderr. 0 or -errno. */
int sf_sbx_exec_send(int ctl, const struct sf_buf *b, const int fds[3]);

/* Split 'cmd' into words when the shell would run it as one plain command
 * and 'env' (the command's whole environment, n entries) is one dash
 * passes on unchanged: NAME=value entries with unique valid names, a PATH
 * without dash's '%' options. Appends the words to 'b', each
 * NUL-terminated. Returns their number, or 0: run it with /bin/sh -c. */
size_t sf_sbx_exec_split(const char *cmd, const char *const *env, size_t n, struct sf_buf *b);

/* Give 'envp' (NULL-terminated, *n entries, room for one more) the PWD
 * dash would export: the inherited PWD when it names the current
 * directory, else the physical one (getcwd). 'buf' holds the new entry. */
void sf_sbx_exec_pwd(char **envp, size_t *n, char *buf, size_t size);

/* Exec argv[1..] like dash's shellexec(): a name with a '/' as is, else the
 * first regular file found on envp's PATH; a file without a #! line is run
 * by /bin/sh (argv[0] is scratch space for that). On failure writes dash's
 * message to stderr and exits 127 (not found) or 126. Never returns. */
void sf_sbx_exec_direct(char **argv, char **envp) __attribute__((noreturn));

#endif
