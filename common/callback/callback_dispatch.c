/* common/callback/callback_dispatch.c: see callback_dispatch.h.
 *
 * Design. The thread owns a fixed table of transfer slots. Each turn it
 *   1. claims as many due deliveries as it has free slots (every poll_ms, or
 *      at once again after a full batch);
 *   2. advances name resolutions (getaddrinfo_a, polled without signals) and
 *      turns each resolved delivery into a libcurl easy handle, or settles it
 *      at once when the policy denies an address;
 *   3. runs the multi handle and settles finished transfers;
 *   4. retries settlements the broker refused transiently;
 *   5. waits in curl_multi_poll (woken by stop through an eventfd).
 * libcurl is loaded and initialised (curl_global_init sets up OpenSSL, a few
 * MB of resident memory) only once a first delivery has been claimed; until
 * then the thread polls for due deliveries and waits in poll() on the same
 * eventfd, so an idle worker never maps libcurl or its TLS stack.
 * The policy is enforced twice: on the resolved addresses before any
 * connect (clear reason, no connection), and in the opensocket callback on
 * the exact address libcurl is about to use (so nothing the pinning missed
 * can slip through). Proxies from the environment are disabled for the same
 * reason: the connected address must be the receiver's.
 * Secrets are loaded per delivery and wiped after signing; no log line or
 * stored error contains a header value, a secret or a URL's query. */
#include "callback_dispatch.h"
#include "callback.h"
#include "util.h"

#include <arpa/inet.h>
#include "lazy_curl.h"
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum xstate { X_FREE = 0, X_RESOLVING, X_SENDING, X_SETTLING };

struct xfer {
    struct sf_callback_dispatch *d;
    enum xstate state;
    struct sf_callback_claim claim;
    struct sf_callback_record *rec;
    char host[256], port[8];
    bool ip_literal;
    struct gaicb gai;
    struct addrinfo hints;
    CURL *easy;
    struct curl_slist *hdrs, *resolve;
    char errbuf[CURL_ERROR_SIZE];
    char denied[400];           /* set by the opensocket check */
    char resp[256];             /* start of the response body, for last_error */
    size_t resp_len, resp_total;
    char retry_after[64];
    /* X_SETTLING: what to tell the broker, retried until it answers */
    enum sf_callback_settle how;
    char *new_rec;
    int64_t delay_ms, next_try_ms, settle_backoff_ms;
};

struct sf_callback_dispatch {
    struct sf_callback_dispatch_cfg cfg;
    struct sf_callback_allow public_only;
    CURLM *multi;               /* NULL until the first claimed delivery */
    bool no_curl;               /* libcurl cannot be loaded: claim nothing */
    int wake_fd;                /* eventfd: stop wakes the thread */
    pthread_t thread;
    atomic_int stop;
    struct xfer *x;
    size_t nx;
    int64_t next_claim_ms, claim_backoff_ms, last_err_log_ms;
    atomic_llong delivered, retried, dead, in_flight;
};

static int64_t lease_ms(const struct sf_callback_dispatch *d) { return 3 * d->cfg.timeout_ms + 10000; }

static void log_throttled(struct sf_callback_dispatch *d, const char *what, const char *err)
{
    int64_t now = sf_now_ms();
    if (now - d->last_err_log_ms < 5000) return;
    d->last_err_log_ms = now;
    SF_LOG(d->cfg.lg, SF_LOG_WARN, NULL, NULL, "callbacks: %s: %s (retrying)", what, err);
}

static void xfer_reset(struct xfer *x)
{
    if (x->easy) {
        sf_curl_multi_remove_handle(x->d->multi, x->easy);
        sf_curl_easy_cleanup(x->easy);
    }
    sf_curl_slist_free_all(x->hdrs);
    sf_curl_slist_free_all(x->resolve);
    if (x->gai.ar_result) freeaddrinfo(x->gai.ar_result);
    sf_callback_claim_clear(&x->claim);
    sf_callback_record_free(x->rec);
    free(x->new_rec);
    struct sf_callback_dispatch *d = x->d;
    memset(x, 0, sizeof(*x));
    x->d = d;
}

/* --- settling -------------------------------------------------------------------- */

static void try_settle(struct xfer *x)
{
    struct sf_callback_dispatch *d = x->d;
    char err[512];
    int rc = sf_broker_callback_settle(d->cfg.b, x->claim.id, x->claim.token, x->how, x->new_rec,
                                       x->new_rec ? strlen(x->new_rec) : 0, x->delay_ms, err, sizeof(err));
    if (rc < 0 && sf_broker_transient(rc)) {
        log_throttled(d, "settling a delivery", err);
        x->settle_backoff_ms = x->settle_backoff_ms ? x->settle_backoff_ms * 2 : 100;
        if (x->settle_backoff_ms > 2000) x->settle_backoff_ms = 2000;
        x->next_try_ms = sf_now_ms() + x->settle_backoff_ms;
        return;
    }
    if (rc < 0)
        SF_LOG(d->cfg.lg, SF_LOG_ERROR, NULL, NULL, "callback %s: settling failed: %s; it falls due "
               "again when its lease runs out", x->claim.id, err);
    else if (rc == 1)
        SF_LOG(d->cfg.lg, SF_LOG_WARN, NULL, NULL, "callback %s: lease lost before it was settled "
               "(another process took it over)", x->claim.id);
    atomic_fetch_sub(&d->in_flight, 1);
    xfer_reset(x);
}

/* Decide what happens after an attempt (or instead of one) and settle. */
static void conclude(struct xfer *x, enum sf_callback_verdict v, const char *why, int64_t retry_after_ms)
{
    struct sf_callback_dispatch *d = x->d;
    struct sf_callback_record *rec = x->rec;
    const char *rid = rec ? rec->run_id : NULL, *tid = rec ? rec->task_id : NULL;
    if (x->easy) {
        sf_curl_multi_remove_handle(d->multi, x->easy);
        sf_curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    x->state = X_SETTLING;
    if (v == SF_CALLBACK_DELIVERED) {
        x->how = SF_CALLBACK_SETTLE_DONE;
        atomic_fetch_add(&d->delivered, 1);
        SF_LOG(d->cfg.lg, SF_LOG_INFO, rid, tid, "callback %s delivered to %s (attempt %d): %s",
               x->claim.id, x->host, rec->attempts, why);
    } else if (rec && v == SF_CALLBACK_RETRY && rec->attempts < d->cfg.max_attempts) {
        uint32_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) rnd = (uint32_t)sf_now_us();
        int64_t wait = sf_callback_backoff_ms(d->cfg.base_ms, rec->attempts, rnd);
        if (retry_after_ms > wait) wait = retry_after_ms;
        free(rec->last_error);
        rec->last_error = sf_xstrdup(why);
        x->how = SF_CALLBACK_SETTLE_RETRY;
        x->delay_ms = wait;
        x->new_rec = sf_callback_record_encode(rec);
        atomic_fetch_add(&d->retried, 1);
        SF_LOG(d->cfg.lg, SF_LOG_INFO, rid, tid, "callback %s to %s: attempt %d failed (%s); next in %lld ms",
               x->claim.id, x->host, rec->attempts, why, (long long)wait);
    } else {
        x->how = SF_CALLBACK_SETTLE_DEAD;
        if (rec) {
            free(rec->last_error);
            if (v == SF_CALLBACK_RETRY)
                rec->last_error = sf_xasprintf("gave up after %d attempts: %s", rec->attempts, why);
            else
                rec->last_error = sf_xstrdup(why);
            rec->failed_at = sf_wall_ms();
            x->new_rec = sf_callback_record_encode(rec);
        } else {
            /* An unreadable record: keep its text, with the reason beside it. */
            json_t *o = json_pack("{s:s, s:s, s:I}", "record", x->claim.record, "last_error", why,
                                  "failed_at", (json_int_t)sf_wall_ms());
            x->new_rec = json_dumps(o, JSON_COMPACT);
            json_decref(o);
        }
        atomic_fetch_add(&d->dead, 1);
        SF_LOG(d->cfg.lg, SF_LOG_WARN, rid, tid, "callback %s dead-lettered: %s", x->claim.id,
               rec ? rec->last_error : why);
    }
    try_settle(x);
}

/* --- libcurl callbacks ------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (x->resp_len < sizeof(x->resp) - 1) {
        size_t k = sizeof(x->resp) - 1 - x->resp_len;
        if (k > len) k = len;
        memcpy(x->resp + x->resp_len, p, k);
        x->resp_len += k;
        x->resp[x->resp_len] = '\0';
    }
    x->resp_total += len;
    return x->resp_total > x->d->cfg.max_response ? 0 : len;    /* 0: cut the transfer */
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
        size_t k = len - 12 < sizeof(x->retry_after) - 1 ? len - 12 : sizeof(x->retry_after) - 1;
        memcpy(x->retry_after, p + 12, k);
        x->retry_after[k] = '\0';
        x->retry_after[strcspn(x->retry_after, "\r\n")] = '\0';
    }
    return len;
}

/* Every socket libcurl opens goes through the policy: the last word. */
static curl_socket_t on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct xfer *x = arg;
    (void)purpose;
    if (sf_callback_net_check(x->d->cfg.allow, x->host, &a->addr, x->denied, sizeof(x->denied)) < 0)
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* --- starting a delivery -------------------------------------------------------------- */

static int add_header(struct xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct xfer *x, const char *fmt, ...)
{
    char line[4300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct curl_slist *l = sf_curl_slist_append(x->hdrs, line);
    explicit_bzero(line, sizeof(line));
    if (!l) abort();                            /* OOM */
    x->hdrs = l;
    return 0;
}

/* Headers (signed when the record names a secret). 0, or -errno with why. */
static int build_headers(struct xfer *x, char *why, size_t whylen)
{
    struct sf_callback_record *rec = x->rec;
    int64_t ts = sf_wall_ms() / 1000;
    const char *k;
    json_t *v;
    add_header(x, "Content-Type: application/json");
    add_header(x, "Expect:");                   /* no 100-continue round trip */
    add_header(x, "Sandfleet-Delivery: %s", rec->id);
    add_header(x, "Sandfleet-Attempt: %d", rec->attempts);
    add_header(x, "Sandfleet-Kind: %s", rec->kind);
    add_header(x, "Sandfleet-Timestamp: %lld", (long long)ts);
    if (rec->cb.secret_ref) {
        char *secret = NULL, sig[80];
        size_t slen = 0;
        int rc = sf_secret_load(x->d->cfg.secrets, rec->cb.secret_ref, &secret, &slen, why, whylen);
        if (rc < 0) return rc;
        rc = sf_callback_sign(secret, slen, ts, rec->body, rec->body_len, sig, sizeof(sig));
        sf_secret_free(secret, slen);
        if (rc < 0) {
            sf_errf(why, whylen, "signing failed");
            return rc;
        }
        add_header(x, "Sandfleet-Signature: %s", sig);
    }
    json_object_foreach(rec->cb.headers, k, v) add_header(x, "%s: %s", k, json_string_value(v));
    return 0;
}

static void start_request(struct xfer *x)
{
    struct sf_callback_dispatch *d = x->d;
    char why[512];
    CURL *e = sf_curl_easy_init();
    if (!e) abort();
    x->easy = e;
    x->rec->attempts++;                         /* Sandfleet-Attempt counts from 1 */
    if (build_headers(x, why, sizeof(why)) < 0) {
        x->rec->attempts--;                     /* nothing was sent */
        conclude(x, SF_CALLBACK_GIVE_UP, why, 0);
        return;
    }
    sf_curl_easy_setopt(e, CURLOPT_URL, x->rec->cb.url);
    sf_curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    sf_curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    sf_curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    sf_curl_easy_setopt(e, CURLOPT_PROXY, "");
    sf_curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    sf_curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->cfg.timeout_ms);
    sf_curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->cfg.timeout_ms < 5000 ? d->cfg.timeout_ms : 5000));
    sf_curl_easy_setopt(e, CURLOPT_USERAGENT, "sandfleet/" SF_VERSION);
    sf_curl_easy_setopt(e, CURLOPT_POST, 1L);
    sf_curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->rec->body);
    sf_curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->rec->body_len);
    sf_curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    sf_curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    sf_curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    sf_curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    sf_curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    sf_curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open);
    sf_curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    sf_curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    sf_curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if (x->resolve) sf_curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
    sf_curl_multi_add_handle(d->multi, e);
    x->state = X_SENDING;
}

/* The name resolved: check every address, pin them, send. */
static void resolved(struct xfer *x)
{
    struct sf_callback_dispatch *d = x->d;
    char why[512], list[1024] = "", ip[64];
    int rc = gai_error(&x->gai);
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot resolve '%s': %s", x->host, gai_strerror(rc));
        /* NXDOMAIN may be a DNS hiccup or a typo: retried, and dead after N. */
        conclude(x, SF_CALLBACK_RETRY, why, 0);
        return;
    }
    size_t off = 0;
    for (struct addrinfo *ai = x->gai.ar_result; ai; ai = ai->ai_next) {
        if (sf_callback_net_check(d->cfg.allow, x->host, ai->ai_addr, why, sizeof(why)) < 0) {
            conclude(x, SF_CALLBACK_GIVE_UP, why, 0);
            return;
        }
        sf_netaddr_ntop(ai->ai_addr, ip, sizeof(ip));
        if (strstr(list, ip)) continue;
        off += (size_t)snprintf(list + off, sizeof(list) - off, ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s",
                                off ? "," : "", ip);
        if (off >= sizeof(list) - 64) break;
    }
    if (!x->ip_literal) {
        char entry[1400];
        snprintf(entry, sizeof(entry), "%s:%s:%s", x->host, x->port, list);
        x->resolve = sf_curl_slist_append(NULL, entry);
    }
    start_request(x);
}

static void begin(struct sf_callback_dispatch *d, struct xfer *x)
{
    char err[512];
    int port = 0;
    struct sf_callback_record *rec = sf_callback_record_decode(x->claim.record, x->claim.len, err, sizeof(err));
    atomic_fetch_add(&d->in_flight, 1);
    if (!rec) {
        conclude(x, SF_CALLBACK_GIVE_UP, err, 0);
        return;
    }
    x->rec = rec;
    if (rec->body_len > d->cfg.max_body) {
        snprintf(err, sizeof(err), "document of %zu bytes exceeds the callback body cap (%zu bytes)",
                 rec->body_len, d->cfg.max_body);
        conclude(x, SF_CALLBACK_GIVE_UP, err, 0);
        return;
    }
    if (sf_callback_url_host(rec->cb.url, x->host, sizeof(x->host), &port, NULL) < 0) {
        conclude(x, SF_CALLBACK_GIVE_UP, "url is not a valid http(s) URL", 0);
        return;
    }
    snprintf(x->port, sizeof(x->port), "%d", port);
    struct in6_addr tmp;
    x->ip_literal = inet_pton(AF_INET, x->host, &tmp) == 1 || inet_pton(AF_INET6, x->host, &tmp) == 1;
    x->hints.ai_socktype = SOCK_STREAM;
    x->hints.ai_family = AF_UNSPEC;
    x->gai.ar_name = x->host;
    x->gai.ar_service = x->port;
    x->gai.ar_request = &x->hints;
    struct gaicb *list[] = { &x->gai };
    struct sigevent sev = { .sigev_notify = SIGEV_NONE };
    x->state = X_RESOLVING;
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev) != 0) {
        x->state = X_SETTLING;
        conclude(x, SF_CALLBACK_RETRY, "cannot start name resolution", 0);
    }
}

/* Loads libcurl on the first delivery. 0, or -1 with the reason logged; a
 * library that cannot be loaded stops this worker claiming at all, so the
 * deliveries go to workers that can send them. */
static int curl_start(struct sf_callback_dispatch *d)
{
    char why[512];
    if (sf_curl_load(why, sizeof(why)) < 0) {
        SF_LOG(d->cfg.lg, SF_LOG_ERROR, NULL, NULL, "callbacks: %s; this worker delivers no "
               "callbacks (it hands them back to the others)", why);
        d->no_curl = true;
        return -1;
    }
    if (!(d->multi = sf_curl_multi_init())) {
        log_throttled(d, "starting libcurl", "cannot create a curl multi handle");
        return -1;
    }
    sf_curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)d->nx);
    return 0;
}

static void claim(struct sf_callback_dispatch *d)
{
    struct xfer *free_x[d->nx];
    struct sf_callback_claim got[d->nx];
    size_t nfree = 0, n = 0;
    char err[512];
    for (size_t i = 0; i < d->nx; i++)
        if (d->x[i].state == X_FREE) free_x[nfree++] = &d->x[i];
    if (!nfree) return;
    memset(got, 0, sizeof(got));
    int rc = sf_broker_callback_claim(d->cfg.b, lease_ms(d), got, nfree, &n, err, sizeof(err));
    int64_t now = sf_now_ms();
    if (rc < 0) {
        log_throttled(d, "looking for due deliveries", err);
        d->claim_backoff_ms = d->claim_backoff_ms ? d->claim_backoff_ms * 2 : 250;
        if (d->claim_backoff_ms > 5000) d->claim_backoff_ms = 5000;
        d->next_claim_ms = now + d->claim_backoff_ms;
        return;
    }
    d->claim_backoff_ms = 0;
    d->next_claim_ms = n == nfree ? now : now + d->cfg.poll_ms;
    bool send = n && (d->multi || curl_start(d) == 0);
    if (n && !send && !d->no_curl) d->next_claim_ms = now + 1000;
    for (size_t i = 0; i < n; i++) {
        free_x[i]->claim = got[i];
        if (send) {
            begin(d, free_x[i]);
            continue;
        }
        atomic_fetch_add(&d->in_flight, 1);    /* hand it back, untouched */
        free_x[i]->how = SF_CALLBACK_SETTLE_RELEASE;
        free_x[i]->state = X_SETTLING;
        try_settle(free_x[i]);
    }
}

/* --- the thread ----------------------------------------------------------------------- */

static void finished(struct xfer *x, CURLcode res)
{
    long status = 0;
    char why[600];
    int64_t ra = 0;
    sf_curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (x->denied[0]) {
        conclude(x, SF_CALLBACK_GIVE_UP, x->denied, 0);
        return;
    }
    if (status > 0 && (res == CURLE_OK || res == CURLE_WRITE_ERROR)) {
        enum sf_callback_verdict v = sf_callback_verdict_for_status(status);
        if (x->retry_after[0]) sf_callback_retry_after_ms(x->retry_after, sf_wall_ms(), &ra);
        /* Only printable bytes of the receiver's answer go into the record. */
        for (size_t i = 0; i < x->resp_len; i++)
            if ((unsigned char)x->resp[i] < 0x20 || x->resp[i] == 0x7f) x->resp[i] = ' ';
        if (status >= 300 && status < 400)
            snprintf(why, sizeof(why), "HTTP %ld: redirects are not followed", status);
        else
            snprintf(why, sizeof(why), "HTTP %ld%s%.200s", status, x->resp_len ? ": " : "", x->resp);
        conclude(x, v, why, ra);
        return;
    }
    snprintf(why, sizeof(why), "%s", x->errbuf[0] ? x->errbuf : sf_curl_easy_strerror(res));
    conclude(x, res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT ? SF_CALLBACK_GIVE_UP
                                                                                : SF_CALLBACK_RETRY,
             why, 0);
}

static void *dispatch_main(void *arg)
{
    struct sf_callback_dispatch *d = arg;
    while (!atomic_load(&d->stop)) {
        int64_t now = sf_now_ms();
        bool resolving = false, settling = false;
        if (now >= d->next_claim_ms && !d->no_curl) claim(d);
        for (size_t i = 0; i < d->nx; i++) {
            struct xfer *x = &d->x[i];
            if (x->state == X_RESOLVING && gai_error(&x->gai) != EAI_INPROGRESS) resolved(x);
            else if (x->state == X_SETTLING && sf_now_ms() >= x->next_try_ms) try_settle(x);
            resolving |= x->state == X_RESOLVING;
            settling |= x->state == X_SETTLING;
        }
        int running = 0, left = 0;
        if (d->multi) sf_curl_multi_perform(d->multi, &running);
        CURLMsg *m;
        while (d->multi && (m = sf_curl_multi_info_read(d->multi, &left))) {
            struct xfer *x = NULL;
            if (m->msg != CURLMSG_DONE) continue;
            sf_curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            finished(x, m->data.result);
        }
        int64_t wait = d->next_claim_ms - sf_now_ms();
        if (resolving || settling) wait = wait < 10 ? wait : 10;
        if (wait < 0) wait = 0;
        if (wait > 1000) wait = 1000;
        if (d->multi) {
            struct curl_waitfd wfd = { .fd = d->wake_fd, .events = CURL_WAIT_POLLIN };
            sf_curl_multi_poll(d->multi, &wfd, 1, (int)wait, NULL);
        } else {
            struct pollfd pfd = { .fd = d->wake_fd, .events = POLLIN };
            poll(&pfd, 1, (int)wait);
        }
    }
    return NULL;
}

struct sf_callback_dispatch *sf_callback_dispatch_start(const struct sf_callback_dispatch_cfg *cfg,
                                                        char *err, size_t errlen)
{
    struct sf_callback_dispatch *d = sf_xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    if (!d->cfg.allow) {
        sf_callback_net_allow_done(&d->public_only);
        d->cfg.allow = &d->public_only;
    }
    if (d->cfg.concurrency <= 0) d->cfg.concurrency = SF_CALLBACK_DEFAULT_CONCURRENCY;
    if (d->cfg.timeout_ms <= 0) d->cfg.timeout_ms = SF_CALLBACK_DEFAULT_TIMEOUT_MS;
    if (d->cfg.max_attempts <= 0) d->cfg.max_attempts = SF_CALLBACK_DEFAULT_ATTEMPTS;
    if (d->cfg.base_ms <= 0) d->cfg.base_ms = SF_CALLBACK_DEFAULT_BASE_MS;
    if (!d->cfg.max_body) d->cfg.max_body = SF_CALLBACK_DEFAULT_MAX_BODY;
    if (!d->cfg.max_response) d->cfg.max_response = SF_CALLBACK_DEFAULT_MAX_RESPONSE;
    if (d->cfg.poll_ms <= 0) d->cfg.poll_ms = 250;
    d->nx = (size_t)d->cfg.concurrency;
    d->x = sf_xcalloc(d->nx, sizeof(*d->x));
    for (size_t i = 0; i < d->nx; i++) d->x[i].d = d;
    if ((d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        sf_errf(err, errlen, "callbacks: eventfd: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&d->thread, NULL, dispatch_main, d);
    if (rc != 0) {
        sf_errf(err, errlen, "callbacks: cannot start the dispatcher thread: %s", strerror(rc));
        goto fail;
    }
    return d;
fail:
    if (d->wake_fd >= 0) close(d->wake_fd);
    sf_callback_net_allow_clear(&d->public_only);
    free(d->x);
    free(d);
    return NULL;
}

void sf_callback_dispatch_stop(struct sf_callback_dispatch *d)
{
    if (!d) return;
    atomic_store(&d->stop, 1);
    /* The counter stays readable, so a thread not yet waiting cannot miss it. */
    if (write(d->wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0) abort();
    pthread_join(d->thread, NULL);
    for (size_t i = 0; i < d->nx; i++) {
        struct xfer *x = &d->x[i];
        if (x->state == X_FREE) continue;
        if (x->state == X_RESOLVING) {
            /* The resolver thread writes into the gaicb: wait for it. */
            const struct gaicb *l[] = { &x->gai };
            if (gai_cancel(&x->gai) != EAI_CANCELED)
                while (gai_error(&x->gai) == EAI_INPROGRESS) gai_suspend(l, 1, NULL);
        }
        if (x->state != X_SETTLING) {
            free(x->new_rec);
            x->new_rec = NULL;
            x->how = SF_CALLBACK_SETTLE_RELEASE;
        }
        x->state = X_SETTLING;
        try_settle(x);                  /* once: a failure leaves it to the lease */
        if (x->state != X_FREE) {
            atomic_fetch_sub(&d->in_flight, 1);
            xfer_reset(x);
        }
    }
    sf_curl_multi_cleanup(d->multi);
    close(d->wake_fd);
    sf_callback_net_allow_clear(&d->public_only);
    free(d->x);
    free(d);
}

void sf_callback_dispatch_stats(const struct sf_callback_dispatch *d, struct sf_callback_dispatch_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!d) return;
    st->delivered = atomic_load(&d->delivered);
    st->retried = atomic_load(&d->retried);
    st->dead = atomic_load(&d->dead);
    st->in_flight = atomic_load(&d->in_flight);
}
