/* The lazy loaders when the libraries are absent: dlopen() is interposed
 * (this executable's definition wins over libc's for the calls from
 * lazy_curl.o and lazy_mhd.o, which are linked into it) and fails for
 * libcurl and libmicrohttpd. Every entry point must then fail cleanly with a
 * message naming the package, and cleanup functions must not crash. The
 * loaded case is covered by every test that sends a callback or serves HTTP. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "callback.h"
#include "http.h"
#include "lazy_curl.h"
#include "lazy_mhd.h"

static int dlopen_calls;

void *dlopen(const char *file, int flags)
{
    (void)flags;
    dlopen_calls++;
    (void)file;
    return NULL;
}

char *dlerror(void)
{
    static char msg[] = "cannot open shared object file: No such file or directory (test)";
    return msg;
}

static void curl_missing(void **state)
{
    (void)state;
    char err[512] = "";
    assert_int_equal(sf_curl_load(err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "libcurl.so.4"));
    assert_non_null(strstr(err, "libcurl4"));
    assert_null(sf_curl_easy_init());
    assert_null(sf_curl_multi_init());
    assert_null(sf_curl_url());
    assert_null(sf_curl_slist_append(NULL, "X: y"));
    assert_int_equal(sf_curl_easy_setopt(NULL, CURLOPT_URL, "http://x/"), CURLE_FAILED_INIT);
    assert_non_null(strstr(sf_curl_easy_strerror(CURLE_OK), "libcurl4"));
    /* Cleanup of what was never made: no-ops, no load. */
    sf_curl_easy_cleanup(NULL);
    sf_curl_slist_free_all(NULL);
    sf_curl_free(NULL);
    sf_curl_url_cleanup(NULL);
    sf_curl_mime_free(NULL);
    assert_int_equal(sf_curl_multi_cleanup(NULL), CURLM_BAD_HANDLE);
    assert_int_equal(dlopen_calls, 1);          /* tried once, remembered */
}

static void callback_url_without_curl(void **state)
{
    (void)state;
    char err[512] = "";
    assert_int_equal(sf_callback_url_host("https://hooks.example.com/a", NULL, 0, NULL, NULL), -ENOENT);
    json_t *j = json_pack("{s:s}", "url", "https://hooks.example.com/a");
    struct sf_callback *cb = sf_callback_from_json(j, err, sizeof(err));
    json_decref(j);
    assert_null(cb);
    assert_non_null(strstr(err, "cannot check the url"));
    assert_non_null(strstr(err, "libcurl4"));
}

static void mhd_missing(void **state)
{
    (void)state;
    char err[512] = "";
    assert_int_equal(sf_mhd_load(err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "libmicrohttpd12"));
    const struct MHD_OptionItem end[] = { { MHD_OPTION_END, 0, NULL } };
    assert_null(sf_mhd_start_daemon(0, 0, NULL, NULL, NULL, NULL, end));
    sf_mhd_stop_daemon(NULL);
    struct sf_http *h = sf_http_new(NULL);
    err[0] = '\0';
    assert_int_equal(sf_http_listen(h, "127.0.0.1:0", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "--http"));
    assert_non_null(strstr(err, "libmicrohttpd12"));
    sf_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(curl_missing),
        cmocka_unit_test(callback_url_without_curl),
        cmocka_unit_test(mhd_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
