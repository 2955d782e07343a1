/* common/base/fsat.h: file system calls relative to a directory fd that
 * never leave it — for a tree another party controls (a sandbox's root, an
 * image being unpacked), where any path may meet a planted symlink or "..".
 * Thread: any (they act with the calling thread's fsuid). */
#ifndef SF_FSAT_H
#define SF_FSAT_H

#include <stddef.h>

/* openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (and O_CLOEXEC):
 * path resolves as if rootfd were "/", symlinks included. fd or -errno. */
int sf_openat_in(int rootfd, const char *path, int flags, int mode);
/* mkdir -p of 'dir' (absolute or relative to the root) inside rootfd. */
int sf_mkdirs_in(int rootfd, const char *dir, int mode);
/* Names in directory dirfd, sorted, without "." and "..": malloc'd array
 * of malloc'd strings (NULL and *n 0 when empty or unreadable). */
char **sf_dir_names(int dirfd, size_t *n);
void sf_dir_names_free(char **names, size_t n);
/* rm -rf of 'name' in dirfd, never following symlinks (each child opened
 * O_NOFOLLOW from its parent's fd). 0 (also when absent) or -errno. */
int sf_remove_at(int dirfd, const char *name);
/* Everything inside dirfd, not dirfd itself. */
int sf_empty_dir(int dirfd);

#endif
