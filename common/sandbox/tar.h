/* common/sandbox/tar.h: a streaming reader of tar archives (POSIX ustar,
 * pax extended headers, GNU long names), for container image files and
 * their layers (template_import.h). Input is outside input: every header
 * is checked (checksum, octal fields, sizes) and a malformed archive is an
 * error with a reason, never a crash or a read past what was given.
 * Thread: one reader per thread. */
#ifndef SF_TAR_H
#define SF_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SF_TAR_PATH_MAX 4096

/* Read up to n bytes into buf: bytes read, 0 at the end, -errno. */
typedef ssize_t (*sf_tar_read_fn)(void *arg, void *buf, size_t n);

enum sf_tar_type {
    SF_TAR_FILE = 1, SF_TAR_HARDLINK, SF_TAR_SYMLINK, SF_TAR_CHAR, SF_TAR_BLOCK, SF_TAR_DIR,
    SF_TAR_FIFO, SF_TAR_OTHER,
};

struct sf_tar_entry {
    char path[SF_TAR_PATH_MAX];      /* as in the archive (not yet checked) */
    char link[SF_TAR_PATH_MAX];      /* hard or symbolic link target */
    enum sf_tar_type type;
    uint64_t size;                   /* of the data that follows (files) */
    uint32_t mode, uid, gid;
    int64_t mtime;
};

struct sf_tar {
    sf_tar_read_fn read;
    void *arg;
    uint64_t left;                   /* data bytes of the current entry not read */
    uint64_t pad;                    /* then padding to 512 */
    uint64_t offset;                 /* bytes consumed from the input */
    char err[256];
};

void sf_tar_init(struct sf_tar *t, sf_tar_read_fn read, void *arg);
/* The next entry: 1, 0 at the end of the archive, -errno with t->err
 * (-EINVAL malformed). Skips whatever of the previous entry's data was not
 * read. */
int sf_tar_next(struct sf_tar *t, struct sf_tar_entry *e);
/* Data of the current entry: bytes (0 at its end), or -errno. */
ssize_t sf_tar_data(struct sf_tar *t, void *buf, size_t n);

/* A tar path made relative and clean ("./a//b/" -> "a/b", "./" -> "": the
 * root itself); false for one that would leave the root (a ".."
 * component) or is too long. out has SF_TAR_PATH_MAX bytes. */
bool sf_tar_clean_path(const char *in, char *out);

#endif
