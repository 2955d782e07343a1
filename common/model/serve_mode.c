/* common/model/serve_mode.c: see serve_mode.h. */
#include "serve_mode.h"

#include <string.h>

const char *sf_serve_name(enum sf_serve s)
{
    return s == SF_SERVE_LINES ? "lines" : NULL;
}

int sf_serve_parse(const char *name)
{
    return name && !strcmp(name, "lines") ? SF_SERVE_LINES : -1;
}
