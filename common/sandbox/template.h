/* common/sandbox/template.h: templates — named root file systems a sandbox
 * can run on instead of the default image (local backend: read-only, with
 * the usual writable places on top; sandbox.h opts.rootfs).
 *
 * A worker knows its templates from `--template NAME=DIR` (a directory that
 * already is a root file system, e.g. made by debootstrap) and from its
 * template store (`--template-store DIR`, default /var/lib/sandfleet/templates):
 * STORE/NAME/rootfs for each NAME, written by `sandfleet-worker template
 * import NAME IMAGE.tar` (template_import.h). "base" is the default image
 * unless a template of that name is given.
 * Thread: build on one thread; read-only (any thread) afterwards. */
#ifndef SF_TEMPLATE_H
#define SF_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#define SF_TEMPLATE_STORE_DEFAULT "/var/lib/sandfleet/templates"

struct sf_templates;

struct sf_templates *sf_templates_new(void);
void sf_templates_free(struct sf_templates *t);                  /* NULL ok */

/* Add NAME with root DIR (made absolute). -EINVAL for a bad name, a DIR
 * that is not a directory with an executable bin/sh, or a name given
 * twice; message in err. */
int sf_templates_add(struct sf_templates *t, const char *name, const char *dir, char *err,
                     size_t errlen);
/* "NAME=DIR", as --template takes it. */
int sf_templates_add_spec(struct sf_templates *t, const char *spec, char *err, size_t errlen);
/* Every STORE/NAME/rootfs; a missing store is empty, not an error.
 * Returns how many were added, or -errno. */
int sf_templates_load_store(struct sf_templates *t, const char *store, char *err, size_t errlen);

/* The root of NAME: *root NULL for the default image ("base" when not
 * given). false when there is no such template. NULL t knows only "base". */
bool sf_templates_find(const struct sf_templates *t, const char *name, const char **root);
/* Names, for messages and listings. */
size_t sf_templates_count(const struct sf_templates *t);
const char *sf_templates_name(const struct sf_templates *t, size_t i);

#endif
