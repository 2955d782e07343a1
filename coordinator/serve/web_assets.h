/* coordinator/serve/web_assets.h: the status page's files (coordinator/serve/web/),
 * turned into C arrays at build time by coordinator/serve/web/embed.cmake, so the
 * binary serves its page from build/bin or anywhere it is installed, with no
 * files to find at run time. Read-only; any thread. */
#ifndef SF_WEB_ASSETS_H
#define SF_WEB_ASSETS_H

#include <stddef.h>

struct coord_web_file {
    const char *name;                /* "index.html", "app.js", ... */
    const unsigned char *data;
    size_t len;
};

extern const struct coord_web_file coord_web_files[];
extern const size_t coord_web_n_files;

#endif
