/* common/sandbox/template_import.h: a container image file as a template
 * (template.h) — `sandfleet-worker template import NAME FILE`.
 *
 * FILE is what `docker save` or `podman save` write: a docker-archive
 * (manifest.json naming the layer tars) or an OCI archive (oci-layout,
 * index.json -> manifest blob -> layer blobs), the outer tar not
 * compressed, layers plain or gzip. The layers are applied in order into
 * STORE/NAME/rootfs with their whiteouts (".wh.NAME" removes NAME,
 * ".wh..wh..opq" empties its directory); device nodes are skipped, setuid
 * and setgid bits dropped. The whole import is made in a hidden directory
 * and renamed into place, so a worker never sees half an image.
 *
 * The archive is outside input: every path is cleaned and one with ".."
 * fails the import; every file is created relative to the root with
 * openat2(RESOLVE_IN_ROOT), so symlinks the image plants (in this layer or
 * an earlier one) resolve inside the new root and never reach the host.
 * Thread: any; one import of a NAME at a time. */
#ifndef SF_TEMPLATE_IMPORT_H
#define SF_TEMPLATE_IMPORT_H

#include <stddef.h>

#include "tar.h"

/* 0, or -errno with the reason in err (-EEXIST: NAME is there already). */
int sf_template_import(const char *store, const char *name, const char *image, char *err,
                       size_t errlen);

/* The layer paths of an image from its manifest.json (docker-archive) or,
 * for OCI, from index.json and its manifest (get reads a blob by path into
 * a malloc'd buffer). Exposed for the fuzz target. Returns the count (> 0)
 * with *layers a malloc'd array of malloc'd strings, or -EINVAL + err. */
typedef int (*sf_image_get_fn)(void *arg, const char *path, char **data, size_t *len);
int sf_image_layers(sf_image_get_fn get, void *arg, char ***layers, char *err, size_t errlen);

/* Apply one layer tar (read through 'read') onto the root directory rootfd
 * (an O_PATH fd). Returns entries skipped (devices), or -errno + err. */
int sf_template_apply_layer(int rootfd, sf_tar_read_fn read, void *arg, char *err,
                            size_t errlen);

#endif
