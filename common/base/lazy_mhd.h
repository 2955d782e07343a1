/* common/base/lazy_mhd.h: libmicrohttpd, loaded on first use.
 *
 * sandfleet is not linked against libmicrohttpd: libmicrohttpd.so.12 (and
 * the GnuTLS stack Debian builds it with) is dlopen()ed by sf_mhd_load(),
 * which the two servers call before they start (--http, --e2b-listen), so a
 * worker without either never maps it. Each sf_mhd_x() behaves like MHD_x();
 * <microhttpd.h> still supplies the types and constants.
 *
 * Only sf_mhd_load() and sf_mhd_start_daemon() may run before the library is
 * loaded; every other function takes an object that only a running daemon
 * hands out, so it is called with the library in place. Any thread. */
#ifndef SF_LAZY_MHD_H
#define SF_LAZY_MHD_H

#include <microhttpd.h>
#include <stddef.h>

/* Load libmicrohttpd once per process. Returns 0, or -ENOENT with the
 * reason, naming the package to install, in err (may be NULL). */
int sf_mhd_load(char *err, size_t errlen);

/* MHD_start_daemon(flags, port, apc, apc_cls, dh, dh_cls, MHD_OPTION_ARRAY,
 * opts, MHD_OPTION_END): the options come as an array ended by
 * { MHD_OPTION_END, 0, NULL } instead of a variadic list, which could not be
 * forwarded. Values that are pointers go in ptr_value; for options with two
 * arguments (a callback and its closure) the first goes in value, cast to
 * intptr_t. NULL if the library is not loaded or the daemon fails. */
struct MHD_Daemon *sf_mhd_start_daemon(unsigned flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                       void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls,
                                       const struct MHD_OptionItem *opts);
void sf_mhd_stop_daemon(struct MHD_Daemon *d);                 /* NULL is a no-op */
MHD_socket sf_mhd_quiesce_daemon(struct MHD_Daemon *d);
/* Information kinds that take no extra argument (MHD_DAEMON_INFO_BIND_PORT). */
const union MHD_DaemonInfo *sf_mhd_get_daemon_info(struct MHD_Daemon *d, enum MHD_DaemonInfoType what);

/* Information kinds that take no extra argument (CONNECTION_FD, SOCKET_CONTEXT,
 * CLIENT_ADDRESS). */
const union MHD_ConnectionInfo *sf_mhd_get_connection_info(struct MHD_Connection *c,
                                                           enum MHD_ConnectionInfoType what);
/* Need MHD_ALLOW_SUSPEND_RESUME; resume may be called from any thread. */
void sf_mhd_suspend_connection(struct MHD_Connection *c);
void sf_mhd_resume_connection(struct MHD_Connection *c);
const char *sf_mhd_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                           const char *key);
size_t sf_mhd_http_unescape(char *val);
int sf_mhd_get_connection_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                 MHD_KeyValueIterator it, void *it_cls);
/* Upgrades (WebSocket) need MHD_ALLOW_UPGRADE on the daemon. */
struct MHD_Response *sf_mhd_create_response_for_upgrade(MHD_UpgradeHandler h, void *h_cls);
enum MHD_Result sf_mhd_upgrade_action(struct MHD_UpgradeResponseHandle *urh, enum MHD_UpgradeAction a);

struct MHD_Response *sf_mhd_create_response_from_buffer(size_t size, void *buf,
                                                        enum MHD_ResponseMemoryMode mode);
struct MHD_Response *sf_mhd_create_response_from_callback(uint64_t size, size_t block_size,
                                                          MHD_ContentReaderCallback crc, void *crc_cls,
                                                          MHD_ContentReaderFreeCallback crfc);
enum MHD_Result sf_mhd_add_response_header(struct MHD_Response *r, const char *name, const char *value);
enum MHD_Result sf_mhd_queue_response(struct MHD_Connection *c, unsigned status, struct MHD_Response *r);
void sf_mhd_destroy_response(struct MHD_Response *r);

struct MHD_PostProcessor *sf_mhd_create_post_processor(struct MHD_Connection *c, size_t buffer_size,
                                                       MHD_PostDataIterator iter, void *iter_cls);
enum MHD_Result sf_mhd_post_process(struct MHD_PostProcessor *pp, const char *data, size_t len);
enum MHD_Result sf_mhd_destroy_post_processor(struct MHD_PostProcessor *pp);

#endif
