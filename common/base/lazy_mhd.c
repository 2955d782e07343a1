/* common/base/lazy_mhd.c: see lazy_mhd.h. The same scheme as lazy_curl.c: one
 * table of pointers typed from the real declarations, filled by dlsym()
 * under pthread_once(), the library opened RTLD_LOCAL and never closed (its
 * daemons' threads run its code until they are stopped). MHD_start_daemon()
 * is variadic; the wrapper calls it with a fixed argument list that hands the
 * caller's options over as one MHD_OPTION_ARRAY, so nothing variadic needs
 * forwarding. MHD_get_daemon_info() and MHD_get_connection_info() are
 * variadic too, but the kinds sandfleet asks for take no extra argument. */
#include "lazy_mhd.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#define SF_MHD_LIB "libmicrohttpd.so.12"

#define SF_MHD_SYMBOLS(X)                                                                           \
    X(start_daemon) X(stop_daemon) X(quiesce_daemon) X(get_daemon_info) X(lookup_connection_value)  \
    X(http_unescape) X(create_response_from_buffer) X(create_response_from_callback)               \
    X(add_response_header) X(queue_response) X(destroy_response) X(create_post_processor)          \
    X(post_process) X(destroy_post_processor) X(get_connection_info) X(suspend_connection)           \
    X(resume_connection) X(get_connection_values) X(create_response_for_upgrade) X(upgrade_action)

#define SF_MHD_FIELD(n) __typeof__(MHD_##n) *n;
static struct {
    SF_MHD_SYMBOLS(SF_MHD_FIELD)
} api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;
static int api_rc;
static char api_err[512];

static void api_load(void)
{
    void *lib = dlopen(SF_MHD_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(api_err, sizeof(api_err), "%s cannot be loaded (%s): install the libmicrohttpd12 "
                 "package (Debian/Ubuntu; 'libmicrohttpd' on Fedora/Alpine)", SF_MHD_LIB, dlerror());
        api_rc = -ENOENT;
        return;
    }
    /* POSIX's way to store dlsym()'s object pointer into a function pointer. */
#define SF_MHD_RESOLVE(n)                                                                           \
    if (!(*(void **)&api.n = dlsym(lib, "MHD_" #n))) {                                              \
        snprintf(api_err, sizeof(api_err), "%s has no MHD_" #n ": libmicrohttpd 0.9.71 or newer "  \
                 "is needed", SF_MHD_LIB);                                                          \
        api_rc = -ENOENT;                                                                           \
        return;                                                                                     \
    }
    SF_MHD_SYMBOLS(SF_MHD_RESOLVE)
#undef SF_MHD_RESOLVE
}

int sf_mhd_load(char *err, size_t errlen)
{
    pthread_once(&api_once, api_load);
    if (api_rc < 0 && err && errlen) snprintf(err, errlen, "%s", api_err);
    return api_rc;
}

struct MHD_Daemon *sf_mhd_start_daemon(unsigned flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                       void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls,
                                       const struct MHD_OptionItem *opts)
{
    if (sf_mhd_load(NULL, 0) < 0) return NULL;
    return api.start_daemon(flags, port, apc, apc_cls, dh, dh_cls, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

/* Everything below takes an object from a running daemon: loaded already. */

void sf_mhd_stop_daemon(struct MHD_Daemon *d)
{
    if (d) api.stop_daemon(d);
}

MHD_socket sf_mhd_quiesce_daemon(struct MHD_Daemon *d) { return api.quiesce_daemon(d); }

const union MHD_DaemonInfo *sf_mhd_get_daemon_info(struct MHD_Daemon *d, enum MHD_DaemonInfoType what)
{
    return api.get_daemon_info(d, what);
}

const char *sf_mhd_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                           const char *key)
{
    return api.lookup_connection_value(c, kind, key);
}

size_t sf_mhd_http_unescape(char *val) { return api.http_unescape(val); }

struct MHD_Response *sf_mhd_create_response_from_buffer(size_t size, void *buf,
                                                        enum MHD_ResponseMemoryMode mode)
{
    return api.create_response_from_buffer(size, buf, mode);
}

struct MHD_Response *sf_mhd_create_response_from_callback(uint64_t size, size_t block_size,
                                                          MHD_ContentReaderCallback crc, void *crc_cls,
                                                          MHD_ContentReaderFreeCallback crfc)
{
    return api.create_response_from_callback(size, block_size, crc, crc_cls, crfc);
}

enum MHD_Result sf_mhd_add_response_header(struct MHD_Response *r, const char *name, const char *value)
{
    return api.add_response_header(r, name, value);
}

enum MHD_Result sf_mhd_queue_response(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    return api.queue_response(c, status, r);
}

void sf_mhd_destroy_response(struct MHD_Response *r) { api.destroy_response(r); }

struct MHD_PostProcessor *sf_mhd_create_post_processor(struct MHD_Connection *c, size_t buffer_size,
                                                       MHD_PostDataIterator iter, void *iter_cls)
{
    return api.create_post_processor(c, buffer_size, iter, iter_cls);
}

enum MHD_Result sf_mhd_post_process(struct MHD_PostProcessor *pp, const char *data, size_t len)
{
    return api.post_process(pp, data, len);
}

enum MHD_Result sf_mhd_destroy_post_processor(struct MHD_PostProcessor *pp)
{
    return api.destroy_post_processor(pp);
}

const union MHD_ConnectionInfo *sf_mhd_get_connection_info(struct MHD_Connection *c,
                                                           enum MHD_ConnectionInfoType what)
{
    return api.get_connection_info(c, what);
}

int sf_mhd_get_connection_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                 MHD_KeyValueIterator it, void *it_cls)
{
    return api.get_connection_values(c, kind, it, it_cls);
}

struct MHD_Response *sf_mhd_create_response_for_upgrade(MHD_UpgradeHandler h, void *h_cls)
{
    return api.create_response_for_upgrade(h, h_cls);
}

enum MHD_Result sf_mhd_upgrade_action(struct MHD_UpgradeResponseHandle *urh, enum MHD_UpgradeAction a)
{
    return api.upgrade_action(urh, a);
}

void sf_mhd_suspend_connection(struct MHD_Connection *c) { api.suspend_connection(c); }
void sf_mhd_resume_connection(struct MHD_Connection *c) { api.resume_connection(c); }
