/* common/base/lazy_curl.c: see lazy_curl.h.
 *
 * Design. One table of function pointers, filled by dlsym() under
 * pthread_once() the first time any sf_curl_*() needs libcurl; each field has
 * the exact type of the function it points to (__typeof__ of the real
 * declaration), so a prototype change in <curl/curl.h> is a compile error
 * here and not a silent ABI mismatch. The library is opened RTLD_LOCAL and
 * never closed: libcurl keeps global state (TLS backends, DNS cache) that must
 * outlive every handle, and unloading saves nothing that matters.
 *
 * Why forwarding the variadic setters is exact: curl_easy_setopt() and
 * curl_multi_setopt() read exactly one variadic argument, and choose its type
 * from the option number alone: options are numbered CURLOPTTYPE_* + n, with
 * the types 10000 apart (LONG 0: long; OBJECTPOINT 10000, which includes the
 * STRINGPOINT, SLISTPOINT and CBPOINT aliases: a data pointer; FUNCTIONPOINT
 * 20000: a function pointer; OFF_T 30000: curl_off_t; BLOB 40000: a struct
 * curl_blob pointer). We read the argument with the same type libcurl will
 * read it with and pass it on as that type, so libcurl sees the bytes a direct
 * call would have given it. curl_easy_getinfo()'s one argument is a pointer
 * for every CURLINFO_* type (the type mask only says what it points to), so
 * it is forwarded as a pointer. Options outside those ranges do not exist;
 * they are refused as libcurl itself refuses unknown options. */
#include "lazy_curl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#define SF_CURL_LIB "libcurl.so.4"

/* Every libcurl function sandfleet calls. */
#define SF_CURL_SYMBOLS(X)                                                                          \
    X(global_init) X(easy_init) X(easy_cleanup) X(easy_setopt) X(easy_getinfo) X(easy_perform)      \
    X(easy_strerror) X(easy_escape) X(free) X(slist_append) X(slist_free_all) X(mime_init)          \
    X(mime_addpart) X(mime_name) X(mime_filename) X(mime_data) X(mime_type) X(mime_free)            \
    X(multi_init) X(multi_cleanup) X(multi_setopt) X(multi_add_handle) X(multi_remove_handle)       \
    X(multi_perform) X(multi_info_read) X(multi_poll) X(url) X(url_cleanup) X(url_set) X(url_get)

/* (curl_easy_setopt and curl_easy_getinfo may be function-like macros under
 * GCC's type checks; naming them without parentheses takes the function.) */
#define SF_CURL_FIELD(n) __typeof__(curl_##n) *n;
static struct {
    SF_CURL_SYMBOLS(SF_CURL_FIELD)
} api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;
static int api_rc;
static char api_err[512];

static void api_load(void)
{
    void *lib = dlopen(SF_CURL_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(api_err, sizeof(api_err), "%s cannot be loaded (%s): install the libcurl4 package "
                 "(Debian/Ubuntu; 'libcurl' on Fedora/Alpine)", SF_CURL_LIB, dlerror());
        api_rc = -ENOENT;
        return;
    }
    /* POSIX's way to store dlsym()'s object pointer into a function pointer. */
#define SF_CURL_RESOLVE(n)                                                                          \
    if (!(*(void **)&api.n = dlsym(lib, "curl_" #n))) {                                             \
        snprintf(api_err, sizeof(api_err), "%s has no curl_" #n ": libcurl 7.85 or newer is needed", \
                 SF_CURL_LIB);                                                                      \
        api_rc = -ENOENT;                                                                           \
        return;                                                                                     \
    }
    SF_CURL_SYMBOLS(SF_CURL_RESOLVE)
#undef SF_CURL_RESOLVE
    /* Once, before any other thread can use a handle: not thread-safe in
     * libcurl builds without atomics. */
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(api_err, sizeof(api_err), "curl_global_init failed");
        api_rc = -EIO;
    }
}

static bool loaded(void)
{
    pthread_once(&api_once, api_load);
    return api_rc == 0;
}

int sf_curl_load(char *err, size_t errlen)
{
    if (!loaded() && err && errlen) snprintf(err, errlen, "%s", api_err);
    return api_rc;
}

/* --- easy ------------------------------------------------------------------------- */

CURL *sf_curl_easy_init(void) { return loaded() ? api.easy_init() : NULL; }

void sf_curl_easy_cleanup(CURL *e)
{
    if (e) api.easy_cleanup(e);                 /* a handle exists: the library is loaded */
}

CURLcode sf_curl_easy_setopt(CURL *e, CURLoption opt, ...)
{
    va_list ap;
    CURLcode rc = CURLE_UNKNOWN_OPTION;
    if (!loaded()) return CURLE_FAILED_INIT;
    va_start(ap, opt);
    switch ((int)opt / 10000 * 10000) {
    case CURLOPTTYPE_LONG:
        rc = api.easy_setopt(e, opt, va_arg(ap, long));
        break;
    case CURLOPTTYPE_OBJECTPOINT:
    case CURLOPTTYPE_BLOB:
        rc = api.easy_setopt(e, opt, va_arg(ap, void *));
        break;
    case CURLOPTTYPE_FUNCTIONPOINT:
        rc = api.easy_setopt(e, opt, va_arg(ap, void (*)(void)));
        break;
    case CURLOPTTYPE_OFF_T:
        rc = api.easy_setopt(e, opt, va_arg(ap, curl_off_t));
        break;
    }
    va_end(ap);
    return rc;
}

CURLcode sf_curl_easy_getinfo(CURL *e, CURLINFO info, ...)
{
    va_list ap;
    if (!loaded()) return CURLE_FAILED_INIT;
    va_start(ap, info);
    CURLcode rc = api.easy_getinfo(e, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

CURLcode sf_curl_easy_perform(CURL *e) { return loaded() ? api.easy_perform(e) : CURLE_FAILED_INIT; }

const char *sf_curl_easy_strerror(CURLcode code)
{
    return loaded() ? api.easy_strerror(code) : api_err;
}

char *sf_curl_easy_escape(CURL *e, const char *s, int len)
{
    return loaded() ? api.easy_escape(e, s, len) : NULL;
}

void sf_curl_free(void *p)
{
    if (p) api.free(p);                         /* only libcurl hands out what this frees */
}

/* --- lists and forms ------------------------------------------------------------------ */

struct curl_slist *sf_curl_slist_append(struct curl_slist *l, const char *s)
{
    return loaded() ? api.slist_append(l, s) : NULL;
}

void sf_curl_slist_free_all(struct curl_slist *l)
{
    if (l) api.slist_free_all(l);
}

curl_mime *sf_curl_mime_init(CURL *e) { return loaded() ? api.mime_init(e) : NULL; }
curl_mimepart *sf_curl_mime_addpart(curl_mime *m) { return m ? api.mime_addpart(m) : NULL; }

CURLcode sf_curl_mime_name(curl_mimepart *p, const char *name)
{
    return p ? api.mime_name(p, name) : CURLE_BAD_FUNCTION_ARGUMENT;
}

CURLcode sf_curl_mime_filename(curl_mimepart *p, const char *name)
{
    return p ? api.mime_filename(p, name) : CURLE_BAD_FUNCTION_ARGUMENT;
}

CURLcode sf_curl_mime_data(curl_mimepart *p, const char *data, size_t len)
{
    return p ? api.mime_data(p, data, len) : CURLE_BAD_FUNCTION_ARGUMENT;
}

CURLcode sf_curl_mime_type(curl_mimepart *p, const char *type)
{
    return p ? api.mime_type(p, type) : CURLE_BAD_FUNCTION_ARGUMENT;
}

void sf_curl_mime_free(curl_mime *m)
{
    if (m) api.mime_free(m);
}

/* --- multi ---------------------------------------------------------------------------- */

CURLM *sf_curl_multi_init(void) { return loaded() ? api.multi_init() : NULL; }

CURLMcode sf_curl_multi_cleanup(CURLM *m) { return m ? api.multi_cleanup(m) : CURLM_BAD_HANDLE; }

CURLMcode sf_curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    va_list ap;
    CURLMcode rc = CURLM_UNKNOWN_OPTION;
    if (!m) return CURLM_BAD_HANDLE;            /* a handle exists: the library is loaded */
    va_start(ap, opt);
    switch ((int)opt / 10000 * 10000) {
    case CURLOPTTYPE_LONG:
        rc = api.multi_setopt(m, opt, va_arg(ap, long));
        break;
    case CURLOPTTYPE_OBJECTPOINT:
        rc = api.multi_setopt(m, opt, va_arg(ap, void *));
        break;
    case CURLOPTTYPE_FUNCTIONPOINT:
        rc = api.multi_setopt(m, opt, va_arg(ap, void (*)(void)));
        break;
    case CURLOPTTYPE_OFF_T:
        rc = api.multi_setopt(m, opt, va_arg(ap, curl_off_t));
        break;
    }
    va_end(ap);
    return rc;
}

CURLMcode sf_curl_multi_add_handle(CURLM *m, CURL *e)
{
    return m ? api.multi_add_handle(m, e) : CURLM_BAD_HANDLE;
}

CURLMcode sf_curl_multi_remove_handle(CURLM *m, CURL *e)
{
    return m ? api.multi_remove_handle(m, e) : CURLM_BAD_HANDLE;
}

CURLMcode sf_curl_multi_perform(CURLM *m, int *running)
{
    return m ? api.multi_perform(m, running) : CURLM_BAD_HANDLE;
}

CURLMsg *sf_curl_multi_info_read(CURLM *m, int *left) { return m ? api.multi_info_read(m, left) : NULL; }

CURLMcode sf_curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned n, int timeout_ms, int *ret)
{
    return m ? api.multi_poll(m, extra, n, timeout_ms, ret) : CURLM_BAD_HANDLE;
}

/* --- URLs ------------------------------------------------------------------------------ */

CURLU *sf_curl_url(void) { return loaded() ? api.url() : NULL; }

void sf_curl_url_cleanup(CURLU *u)
{
    if (u) api.url_cleanup(u);
}

CURLUcode sf_curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned flags)
{
    return u ? api.url_set(u, what, part, flags) : CURLUE_BAD_HANDLE;
}

CURLUcode sf_curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned flags)
{
    return u ? api.url_get(u, what, part, flags) : CURLUE_BAD_HANDLE;
}
