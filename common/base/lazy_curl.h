/* common/base/lazy_curl.h: libcurl, loaded on first use.
 *
 * sandfleet is not linked against libcurl: libcurl.so.4 is dlopen()ed the
 * first time one of these functions is called, so a worker that never sends
 * a callback or talks to E2B never maps libcurl, its TLS stack (OpenSSL, and
 * GnuTLS through librtmp on Debian) or the libraries they pull in. Each
 * sf_curl_x() behaves like curl_x(); <curl/curl.h> still supplies the types
 * and constants. Include this header instead of calling curl_* directly.
 *
 * If the library cannot be loaded, the first call fails like the function
 * does on its own failure (NULL, CURLE_FAILED_INIT, CURLM_INTERNAL_ERROR,
 * CURLUE_OUT_OF_MEMORY) and sf_curl_load() says why, naming the package.
 * Functions that free a handle do nothing for NULL and never load the
 * library, so cleanup paths stay cheap in a worker that never used curl.
 * Every function may be called from any thread. */
#ifndef SF_LAZY_CURL_H
#define SF_LAZY_CURL_H

#include <curl/curl.h>
#include <stddef.h>

/* Load libcurl and run curl_global_init() once per process. Returns 0, or
 * -ENOENT (library or symbol missing) / -EIO (global init failed) with the
 * reason, naming the package to install, in err (may be NULL). Later calls
 * return the first call's result at once. */
int sf_curl_load(char *err, size_t errlen);

CURL *sf_curl_easy_init(void);
void sf_curl_easy_cleanup(CURL *e);
/* One argument of the type the option's CURLOPTTYPE_* range says (see
 * lazy_curl.c for why forwarding it is exact). */
CURLcode sf_curl_easy_setopt(CURL *e, CURLoption opt, ...);
/* One pointer argument, whatever the CURLINFO_* type. */
CURLcode sf_curl_easy_getinfo(CURL *e, CURLINFO info, ...);
CURLcode sf_curl_easy_perform(CURL *e);
const char *sf_curl_easy_strerror(CURLcode code);
char *sf_curl_easy_escape(CURL *e, const char *s, int len);
void sf_curl_free(void *p);

struct curl_slist *sf_curl_slist_append(struct curl_slist *l, const char *s);
void sf_curl_slist_free_all(struct curl_slist *l);

curl_mime *sf_curl_mime_init(CURL *e);
curl_mimepart *sf_curl_mime_addpart(curl_mime *m);
CURLcode sf_curl_mime_name(curl_mimepart *p, const char *name);
CURLcode sf_curl_mime_filename(curl_mimepart *p, const char *name);
CURLcode sf_curl_mime_data(curl_mimepart *p, const char *data, size_t len);
CURLcode sf_curl_mime_type(curl_mimepart *p, const char *type);
void sf_curl_mime_free(curl_mime *m);

CURLM *sf_curl_multi_init(void);
CURLMcode sf_curl_multi_cleanup(CURLM *m);
CURLMcode sf_curl_multi_setopt(CURLM *m, CURLMoption opt, ...);
CURLMcode sf_curl_multi_add_handle(CURLM *m, CURL *e);
CURLMcode sf_curl_multi_remove_handle(CURLM *m, CURL *e);
CURLMcode sf_curl_multi_perform(CURLM *m, int *running);
CURLMsg *sf_curl_multi_info_read(CURLM *m, int *left);
CURLMcode sf_curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned n, int timeout_ms, int *ret);

CURLU *sf_curl_url(void);
void sf_curl_url_cleanup(CURLU *u);
CURLUcode sf_curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned flags);
CURLUcode sf_curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned flags);

#endif
