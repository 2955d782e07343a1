/* common/sandbox/local/sbx_egress_tls.c: secrets the agent never sees. For a
 * connection whose TLS ClientHello names a host of the sandbox's inject rules
 * (inject.h), the egress path ends TLS itself: towards the sandbox with a
 * certificate for that name from a CA made by this worker at start (the
 * sandbox trusts it: sandbox_local.c binds the bundle in and sets
 * SSL_CERT_FILE and friends), towards the server with the host's own trust
 * store and a hostname check. It rewrites the first request's head — the
 * rule's headers replace any the agent sent, "Connection: close" ends the
 * connection after one answer, so every request is a new connection and
 * gets its headers — and relays the rest both ways. Only those hosts are
 * intercepted; every other connection stays end to end. A server that cannot
 * prove it is that host gets nothing: the handshake fails before a byte of
 * the request is sent.
 *
 * Design: OpenSSL on memory BIOs, driven by the proxy's epoll loop like the
 * plain relay (level-triggered; interest from buffered amounts). One key pair
 * (P-256) for the CA and one for every leaf; leaves are made on first use
 * and cached by name. HTTP/1.1 only (ALPN). */
#include "sbx_egress_int.h"
#include "httphead.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLS_BUF_MAX (256 * 1024)          /* bytes held per direction before reading stops */
#define TLS_HEAD_MAX (64 * 1024)
#define TLS_LEAVES 256

#define TLS_LEAF_DAYS 7
#define TLS_LEAF_RENEW_MS (86400LL * 1000)  /* a cached leaf is remade after a day */

struct eg_tls_leaf {
    char *host;
    X509 *cert;
    int64_t made_ms;
};

struct eg_tls_ca {
    EVP_PKEY *key;                      /* the CA's */
    EVP_PKEY *leaf_key;                 /* every leaf's */
    X509 *cert;
    SSL_CTX *server, *client;
    struct eg_tls_leaf leaves[TLS_LEAVES];
    size_t nleaves, next;
    char dir[64], bundle[96], ca_file[96];
};

struct eg_tls {
    SSL *cs, *us;                       /* with the sandbox (we serve), with the server */
    BIO *c_in, *c_out, *u_in, *u_out;   /* owned by their SSL */
    struct sf_buf c_wbuf, u_wbuf;       /* encrypted bytes not yet sent */
    size_t c_woff, u_woff;
    struct sf_buf head;                 /* the first request, until its head is whole */
    bool head_done, c_closed, u_closed;
};

/* ---- certificates ------------------------------------------------------------------ */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex) return -1;
    int ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, bool ca)
{
    X509 *x = X509_new();
    unsigned char serial[16];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    /* The CA lives as long as the worker (its key only in memory). */
    X509_gmtime_adj(X509_getm_notAfter(x), ca ? 3650L * 86400 : TLS_LEAF_DAYS * 86400L);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sandfleet", -1, -1, 0);
    if (strlen(cn) <= 64)               /* the SAN is what counts; a CN holds at most 64 */
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : x;
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s", cn);
    int bad = add_ext(x, iss, NID_subject_key_identifier, "hash") ||
              add_ext(x, iss, NID_authority_key_identifier, "keyid:always") ||
              (ca ? add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
                    add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign")
                  : add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") ||
                    add_ext(x, iss, NID_key_usage, "critical,digitalSignature") ||
                    add_ext(x, iss, NID_ext_key_usage, "serverAuth") ||
                    add_ext(x, iss, NID_subject_alt_name, san));
    if (bad || !X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static X509 *leaf_for(struct eg_tls_ca *ca, const char *host)
{
    int64_t now = sf_now_ms();
    struct eg_tls_leaf *slot = NULL;
    for (size_t i = 0; i < ca->nleaves && !slot; i++)
        if (!strcasecmp(ca->leaves[i].host, host)) slot = &ca->leaves[i];
    if (slot && now - slot->made_ms < TLS_LEAF_RENEW_MS) return slot->cert;
    X509 *x = make_cert(ca->leaf_key, ca->cert, ca->key, host, false);
    if (!x) return NULL;
    if (!slot) slot = &ca->leaves[ca->nleaves < TLS_LEAVES ? ca->nleaves++ : ca->next++ % TLS_LEAVES];
    if (slot->cert) {
        X509_free(slot->cert);
        free(slot->host);
    }
    *slot = (struct eg_tls_leaf){ sf_xstrdup(host), x, now };
    return x;
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)s; (void)arg;
    for (unsigned i = 0; i < inlen; i += 1u + in[i])
        if (in[i] == 8 && i + 9 <= inlen && !memcmp(in + i + 1, "http/1.1", 8)) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
    return SSL_TLSEXT_ERR_NOACK;
}

static int write_pem(const char *path, X509 *extra, const char *prefix_file)
{
    FILE *f = fopen(path, "we");
    if (!f) return -errno;
    if (prefix_file) {
        char *host = NULL;
        size_t n = 0;
        if (sf_read_file(prefix_file, 16 << 20, &host, &n) == 0) {
            fwrite(host, 1, n, f);
            if (n && host[n - 1] != '\n') fputc('\n', f);
        }
        free(host);
    }
    PEM_write_X509(f, extra);
    int rc = fclose(f) ? -errno : 0;
    chmod(path, 0644);
    return rc;
}

int eg_tls_init(struct sf_sbx_egress *eg, char *err, size_t errlen)
{
    struct eg_tls_ca *ca = sf_xcalloc(1, sizeof(*ca));
    char cn[64];
    snprintf(cn, sizeof(cn), "sandfleet egress CA (worker %d)", (int)getpid());
    if (!(ca->key = EVP_EC_gen("P-256")) || !(ca->leaf_key = EVP_EC_gen("P-256")) || !(ca->cert = make_cert(ca->key, NULL, NULL, cn, true)) ||
        !(ca->server = SSL_CTX_new(TLS_server_method())) ||
        !(ca->client = SSL_CTX_new(TLS_client_method()))) {
        sf_errf(err, errlen, "egress TLS: cannot make the worker's CA: %s",
                ERR_reason_error_string(ERR_get_error()));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ca->server, TLS1_2_VERSION);
    SSL_CTX_set_min_proto_version(ca->client, TLS1_2_VERSION);
    SSL_CTX_set_alpn_select_cb(ca->server, alpn_select, NULL);
    /* A peer that just closes its socket has ended, like one that says so
     * (HTTP with Content-Length or chunks has its own end). */
    SSL_CTX_set_options(ca->server, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_options(ca->client, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* The server is checked against this host's own trust store
     * (SSL_CERT_FILE / SSL_CERT_DIR when the worker has them). */
    SSL_CTX_set_default_verify_paths(ca->client);
    SSL_CTX_set_verify(ca->client, SSL_VERIFY_PEER, NULL);
    /* Public certificates only: a folder anyone may read, so the sandboxes
     * (their own ids) can have it bound in. */
    const char *tmp = getenv("TMPDIR");
    snprintf(ca->dir, sizeof(ca->dir), "%.40s/sandfleet-ca-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(ca->dir)) {
        sf_errf(err, errlen, "egress TLS: %s: %s", ca->dir, strerror(errno));
        ca->dir[0] = '\0';
        goto fail;
    }
    chmod(ca->dir, 0755);
    snprintf(ca->bundle, sizeof(ca->bundle), "%s/bundle.pem", ca->dir);
    snprintf(ca->ca_file, sizeof(ca->ca_file), "%s/ca.pem", ca->dir);
    /* The sandbox's bundle: the system's store (what a sandbox without the
     * CA trusts), not the worker's SSL_CERT_FILE, plus the CA. */
    const char *host_bundle = X509_get_default_cert_file();
    struct stat st;
    if (stat(host_bundle, &st) < 0) host_bundle = "/etc/ssl/certs/ca-certificates.crt";
    if (write_pem(ca->ca_file, ca->cert, NULL) < 0 || write_pem(ca->bundle, ca->cert, host_bundle) < 0) {
        sf_errf(err, errlen, "egress TLS: writing %s: %s", ca->dir, strerror(errno));
        goto fail;
    }
    eg->ca = ca;
    return 0;
fail:
    eg->ca = ca;
    eg_tls_fini(eg);
    return -EIO;
}

void eg_tls_fini(struct sf_sbx_egress *eg)
{
    struct eg_tls_ca *ca = eg->ca;
    if (!ca) return;
    for (size_t i = 0; i < ca->nleaves; i++) {
        X509_free(ca->leaves[i].cert);
        free(ca->leaves[i].host);
    }
    if (ca->dir[0]) {
        unlink(ca->bundle);
        unlink(ca->ca_file);
        rmdir(ca->dir);
    }
    SSL_CTX_free(ca->server);
    SSL_CTX_free(ca->client);
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    EVP_PKEY_free(ca->leaf_key);
    free(ca);
    eg->ca = NULL;
}

int sf_sbx_egress_ca_files(const struct sf_sbx_egress *eg, const char **bundle, const char **ca)
{
    if (!eg || !eg->ca) return -ENOTSUP;
    *bundle = eg->ca->bundle;
    *ca = eg->ca->ca_file;
    return 0;
}

/* ---- one intercepted connection ------------------------------------------------------ */

void eg_tls_free(struct eg_tls *t)
{
    if (!t) return;
    SSL_free(t->cs);
    SSL_free(t->us);
    explicit_bzero(t->head.data ? t->head.data : "", t->head.cap);
    sf_buf_free(&t->head);
    sf_buf_free(&t->c_wbuf);
    sf_buf_free(&t->u_wbuf);
    free(t);
}

static SSL *tls_ssl(SSL_CTX *ctx, BIO **in, BIO **out)
{
    SSL *s = SSL_new(ctx);
    *in = BIO_new(BIO_s_mem());
    *out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(*in, -1);            /* empty means "wait", not "end" */
    SSL_set_bio(s, *in, *out);
    return s;
}

int eg_tls_begin(struct sf_sbx_egress *eg, struct eg_conn *c)
{
    struct eg_tls *t = sf_xcalloc(1, sizeof(*t));
    X509 *leaf = eg->ca ? leaf_for(eg->ca, c->tls_host) : NULL;
    if (!leaf) {
        free(t);
        eg_denied(c->att, "tcp", &c->dst, "no certificate could be made to intercept it");
        eg_conn_close(eg, c, true);
        return -1;
    }
    t->cs = tls_ssl(eg->ca->server, &t->c_in, &t->c_out);
    SSL_use_certificate(t->cs, leaf);
    SSL_use_PrivateKey(t->cs, eg->ca->leaf_key);
    SSL_set_accept_state(t->cs);
    t->us = tls_ssl(eg->ca->client, &t->u_in, &t->u_out);
    SSL_set_tlsext_host_name(t->us, c->tls_host);
    SSL_set1_host(t->us, c->tls_host);
    SSL_set_alpn_protos(t->us, (const unsigned char *)"\x08http/1.1", 9);
    SSL_set_connect_state(t->us);
    /* The ClientHello already read while sniffing. */
    BIO_write(t->c_in, c->head, (int)c->hlen);
    free(c->head);
    c->head = NULL;
    c->hlen = 0;
    c->sniffing = false;
    c->tls = t;
    eg_tls_event(eg, c, false, 0);
    return 0;
}

/* The first request with the rule's headers in: theirs replace the agent's,
 * and the connection closes after one answer. */
static int rewrite_head(struct eg_conn *c, struct eg_tls *t, size_t headlen)
{
    struct sf_httphead h;
    if (sf_httphead_parse(t->head.data, headlen, &h) <= 0 || h.response) return -EPROTO;
    const struct sf_inject_rule *r = &c->tls_rule->r[0];
    struct sf_buf out = { 0 };
    sf_buf_appendf(&out, "%.*s %.*s HTTP/1.1\r\n", (int)h.method.n, h.method.p, (int)h.target.n,
                   h.target.p);
    for (size_t i = 0; i < h.nfields; i++) {
        bool drop = sf_http_str_is(&h.names[i], "Connection") ||
                    sf_http_str_is(&h.names[i], "Keep-Alive") ||
                    sf_http_str_is(&h.names[i], "Proxy-Connection");
        for (size_t j = 0; j < r->n && !drop; j++) drop = sf_http_str_is(&h.names[i], r->h[j].name);
        if (drop) continue;
        sf_buf_appendf(&out, "%.*s: %.*s\r\n", (int)h.names[i].n, h.names[i].p, (int)h.values[i].n,
                       h.values[i].p);
    }
    for (size_t j = 0; j < r->n; j++) sf_buf_appendf(&out, "%s: %s\r\n", r->h[j].name, r->h[j].value);
    sf_buf_append(&out, "Connection: close\r\n\r\n", 21);
    sf_buf_append(&out, t->head.data + headlen, t->head.len - headlen);
    int n = SSL_write(t->us, out.data, (int)out.len);
    explicit_bzero(out.data, out.cap);
    sf_buf_free(&out);
    explicit_bzero(t->head.data, t->head.cap);
    t->head.len = 0;
    t->head_done = true;
    return n > 0 ? 0 : -EIO;
}

/* Plaintext from the sandbox on its way to the server. */
static int from_client(struct eg_conn *c, struct eg_tls *t, const char *buf, size_t n)
{
    if (t->head_done) return SSL_write(t->us, buf, (int)n) > 0 ? 0 : -EIO;
    sf_buf_append(&t->head, buf, n);
    for (size_t i = 0; i + 3 < t->head.len; i++)
        if (!memcmp(t->head.data + i, "\r\n\r\n", 4)) return rewrite_head(c, t, i + 4);
    return t->head.len > TLS_HEAD_MAX ? -E2BIG : 0;
}

/* Encrypted bytes out of a BIO into its socket (kept when the socket is
 * full). 1 when bytes left the buffer (room was made), 0, -1 broken. */
static int flush(int fd, BIO *out, struct sf_buf *w, size_t *off)
{
    char buf[16384];
    int n, moved = 0;
    while ((n = BIO_read(out, buf, sizeof(buf))) > 0) sf_buf_append(w, buf, (size_t)n);
    while (fd >= 0 && *off < w->len) {
        ssize_t s = send(fd, w->data + *off, w->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (s < 0 && errno == EINTR) continue;
        if (s < 0 && errno == EAGAIN) break;
        if (s < 0) {
            w->len = *off = 0;
            return -1;
        }
        *off += (size_t)s;
        moved = 1;
    }
    if (*off == w->len) w->len = *off = 0;
    return moved;
}

/* Socket bytes into a BIO; sets *eof at the end. */
static int fill(int fd, BIO *in, bool *eof)
{
    char buf[16384];
    if (fd < 0 || *eof || BIO_ctrl_pending(in) > TLS_BUF_MAX) return 0;
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r > 0) {
        BIO_write(in, buf, (int)r);
        return 1;
    }
    if (r == 0) {
        *eof = true;
        BIO_set_mem_eof_return(in, 0);
        return 1;
    }
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

/* SSL_read or a handshake step; 1 progress, 0 nothing now, -1 closed or broken. */
static int step_ssl(SSL *s, char *buf, int len, int *n)
{
    *n = 0;
    ERR_clear_error();          /* SSL_get_error reads this thread's queue */
    bool reading = SSL_is_init_finished(s);
    int r = reading ? SSL_read(s, buf, len) : SSL_do_handshake(s);
    if (r > 0) {
        if (reading) *n = r;
        return 1;
    }
    int e = SSL_get_error(s, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

void eg_tls_event(struct sf_sbx_egress *eg, struct eg_conn *c, bool up_side, uint32_t events)
{
    struct eg_tls *t = c->tls;
    (void)up_side;
    if (events & EPOLLERR) goto broken;
    bool c_eof = c->c_eof, u_eof = c->u_eof;
    for (int progress = 1; progress;) {
        progress = 0;
        char buf[16384];
        int n, r;
        if ((r = fill(c->cep.fd, t->c_in, &c_eof)) < 0) goto broken;
        progress |= r;
        if (c->up == UP_OPEN && (r = fill(c->uep.fd, t->u_in, &u_eof)) < 0) goto broken;
        progress |= r;
        /* The sandbox's side: handshake, then plaintext towards the server
         * once its side is up too (no more than TLS_BUF_MAX held for it). */
        if (!SSL_is_init_finished(t->cs) || (SSL_is_init_finished(t->us) && !t->c_closed &&
                                             t->u_wbuf.len < TLS_BUF_MAX)) {
            r = step_ssl(t->cs, buf, sizeof(buf), &n);
            if (r < 0 && SSL_is_init_finished(t->cs)) t->c_closed = true;
            else if (r < 0) goto handshake;
            progress |= r > 0;
            if (n > 0 && from_client(c, t, buf, (size_t)n) < 0) goto broken;
        }
        if (c->up == UP_OPEN && (!SSL_is_init_finished(t->us) ||
                                 (SSL_is_init_finished(t->cs) && !t->u_closed && t->c_wbuf.len < TLS_BUF_MAX))) {
            r = step_ssl(t->us, buf, sizeof(buf), &n);
            if (r < 0 && SSL_is_init_finished(t->us)) t->u_closed = true;
            else if (r < 0) goto upstream_failed;
            progress |= r > 0;
            if (n > 0 && SSL_write(t->cs, buf, n) <= 0) goto broken;
        }
        /* Sending makes room, which the other side may be waiting for. A
         * side that has closed may refuse our last alert: not an error. */
        if ((r = flush(c->cep.fd, t->c_out, &t->c_wbuf, &t->c_woff)) < 0 && !t->c_closed) goto broken;
        progress |= r > 0;
        if (c->up == UP_OPEN) {
            if ((r = flush(c->uep.fd, t->u_out, &t->u_wbuf, &t->u_woff)) < 0 && !t->u_closed) goto broken;
            progress |= r > 0;
        }
    }
    c->c_eof = c_eof;
    c->u_eof = u_eof;
    /* One answer per connection: when the server is done, so are we, once
     * the sandbox has it all. */
    if (t->u_closed && !t->c_wbuf.len) {
        SSL_shutdown(t->cs);
        flush(c->cep.fd, t->c_out, &t->c_wbuf, &t->c_woff);
        eg_conn_close(eg, c, false);
        return;
    }
    if ((t->c_closed || c_eof) && !t->u_wbuf.len && SSL_is_init_finished(t->cs) && !t->head_done) {
        eg_conn_close(eg, c, false);
        return;
    }
    uint32_t ce = (!c_eof && BIO_ctrl_pending(t->c_in) <= TLS_BUF_MAX ? EPOLLIN : 0) |
                  (t->c_wbuf.len ? EPOLLOUT : 0);
    uint32_t ue = c->up == UP_CONNECTING ? EPOLLOUT
                  : (!u_eof && BIO_ctrl_pending(t->u_in) <= TLS_BUF_MAX ? EPOLLIN : 0) |
                    (t->u_wbuf.len ? EPOLLOUT : 0);
    eg_set_events(eg, &c->cep, ce);
    eg_set_events(eg, &c->uep, ue);
    return;
handshake:
    /* The agent did not accept our certificate (it does not trust the
     * worker's CA), or spoke no TLS we know. */
    eg_denied(c->att, "tls", &c->dst, "the agent's TLS handshake with the egress path failed");
    eg_conn_close(eg, c, true);
    return;
upstream_failed:;
    char why[300];
    snprintf(why, sizeof(why), "the server could not prove it is %s (%s)", c->tls_host,
             X509_verify_cert_error_string(SSL_get_verify_result(t->us)));
    eg_denied(c->att, "tls", &c->dst, why);
    eg_conn_close(eg, c, true);
    return;
broken:
    eg_conn_close(eg, c, true);
}
