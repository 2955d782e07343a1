/* common/sandbox/local/sbx_image.h: images — the read-only part of a
 * sandbox's root, built once and shared by every sandbox on it.
 *
 * A sandbox's root is mostly the same for every sandbox: a small tmpfs with
 * /usr (or a template's top directories), the generated /etc, the device
 * nodes, the operator's extra binds. Building that per sandbox cost ~60
 * mount steps, a pivot_root (which walks every process of the host) and the
 * detach of a copy of the host's whole mount table. An image is that part
 * built once (sbx_mount.h, SF_SBX_PLAN_IMAGE), in a mount namespace of its
 * own that no process lives in, held by its fd. The zygote enters it just
 * around clone(): the child's new mount namespace is then a copy of the
 * image (a dozen mounts, locked read-only by the kernel since the copy
 * belongs to the child's new user namespace), to which it adds only what
 * is its own (SF_SBX_PLAN_SANDBOX: the writable tmpfs, /proc, /dev/pts).
 * The default image and a template (docs/e2b.md, "Templates") are the same
 * mechanism: one image per (template or host image, network or not, extra
 * binds), made at first use.
 *
 * The image's files belong to the sandbox's root (its host ids), as they
 * did when each sandbox made them; it carries a procfs of an empty pid
 * namespace on /proc (each sandbox mounts its own over it), because the
 * kernel lets a user namespace mount a procfs only where one is fully
 * visible already. A host file bound into an image (ld.so.cache, the
 * egress CA) that is replaced later (rename over it, as ldconfig does)
 * would stay the old one in the image: its directory is watched (inotify)
 * and the images that bind it are made again at their next use.
 *
 * Thread: one (the zygote's). */
#ifndef SF_SBX_IMAGE_H
#define SF_SBX_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

struct sf_sbx_images;

/* A cache of images whose files belong to host uid:gid (the sandbox's
 * root). NULL with the reason in err when this process may not make mount
 * namespaces of its own (not root): sandboxes then build their whole root
 * (SF_SBX_PLAN_FULL). Builds the default image once to find out. */
struct sf_sbx_images *sf_sbx_images_new(uint32_t uid, uint32_t gid, char *err, size_t errlen);
void sf_sbx_images_free(struct sf_sbx_images *im);      /* NULL ok */

/* The image for 'opts' (network, rootfs, ro_binds; sf_sbx_mount_image_fits
 * must hold): made now unless a live one is cached. 0 with *mntns, an fd
 * owned by the cache and valid until the next call; -errno with the reason
 * in err (a bad ro_bind, a template that is gone). */
int sf_sbx_images_get(struct sf_sbx_images *im, const struct sf_sandbox_opts *opts, int *mntns,
                      char *err, size_t errlen);

#endif
