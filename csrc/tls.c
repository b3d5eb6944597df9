/* tls.c - see tls.h. OpenSSL 1.1.1 or 3.x. */
#include "tls.h"
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define FT_SESSION_SLOTS 256   /* Go's LRU client session cache holds 64 */

typedef struct {
    char *key;
    SSL_SESSION *sess;
    uint64_t used;
} session_slot;

struct ft_tls_ctx {
    SSL_CTX *ctx;
    pthread_mutex_t mu;        /* guards sessions, clock, counters */
    session_slot sessions[FT_SESSION_SLOTS];
    uint64_t clock;
    int64_t full, resumed;
};

static int ex_key_index = -1;  /* SSL ex_data: its session cache key (owned) */
static int ex_ctx_index = -1;  /* SSL ex_data: the ft_tls_ctx */
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void free_key(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                     void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void ex_init(void)
{
    ex_key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_key);
    ex_ctx_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void openssl_reason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r ? r : "unknown error");
    ERR_clear_error();
}

/* ---------------------------------------------------------------- sessions */

static void cache_put(ft_tls_ctx *x, const char *key, SSL_SESSION *sess)
{
    pthread_mutex_lock(&x->mu);
    session_slot *victim = &x->sessions[0];
    for (int i = 0; i < FT_SESSION_SLOTS; i++) {
        session_slot *s = &x->sessions[i];
        if (s->key && strcmp(s->key, key) == 0) {
            victim = s;
            break;
        }
        if (!s->key || s->used < victim->used)
            victim = s;
    }
    if (victim->key && strcmp(victim->key, key) != 0) {
        free(victim->key);
        victim->key = NULL;
    }
    if (!victim->key)
        victim->key = strdup(key);
    if (victim->sess)
        SSL_SESSION_free(victim->sess);
    victim->sess = victim->key ? sess : NULL;
    if (!victim->key)
        SSL_SESSION_free(sess);
    victim->used = ++x->clock;
    pthread_mutex_unlock(&x->mu);
}

static SSL_SESSION *cache_get(ft_tls_ctx *x, const char *key)
{
    SSL_SESSION *sess = NULL;
    pthread_mutex_lock(&x->mu);
    for (int i = 0; i < FT_SESSION_SLOTS; i++) {
        session_slot *s = &x->sessions[i];
        if (s->key && s->sess && strcmp(s->key, key) == 0) {
            if (SSL_SESSION_is_resumable(s->sess)) {
                SSL_SESSION_up_ref(s->sess);
                sess = s->sess;
                s->used = ++x->clock;
            }
            break;
        }
    }
    pthread_mutex_unlock(&x->mu);
    return sess;
}

/* OpenSSL hands us every new session (TLS 1.3 tickets arrive after the
 * handshake, during a read); keep the newest per key. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    ft_tls_ctx *x = SSL_get_ex_data(ssl, ex_ctx_index);
    const char *key = SSL_get_ex_data(ssl, ex_key_index);
    if (!x || !key)
        return 0;
    cache_put(x, key, sess);
    return 1;   /* we keep the reference */
}

/* ---------------------------------------------------------------- context */

ft_tls_ctx *ft_tls_ctx_new(const ft_tls_config *cfg, char *err, size_t errcap)
{
    pthread_once(&ex_once, ex_init);
    ft_tls_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&x->mu, NULL);
    x->ctx = SSL_CTX_new(TLS_client_method());
    if (!x->ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(x->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                 | SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* a peer closing without close_notify is a plain EOF: the HTTP framing
     * decides whether that truncated anything */
    SSL_CTX_set_options(x->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(x->ctx, alpn, sizeof alpn - 1);
    SSL_CTX_set_session_cache_mode(x->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(x->ctx, on_new_session);
    if (cfg->verify) {
        SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
        if (cfg->ca_file || cfg->ca_dir) {
            if (SSL_CTX_load_verify_locations(x->ctx, cfg->ca_file, cfg->ca_dir) != 1) {
                char why[160];
                openssl_reason(why, sizeof why);
                snprintf(err, errcap, "cannot load CA certificates from %s: %s",
                         cfg->ca_file ? cfg->ca_file : cfg->ca_dir, why);
                ft_tls_ctx_free(x);
                return NULL;
            }
        } else if (SSL_CTX_set_default_verify_paths(x->ctx) != 1) {
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(x->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cfg->cert_file) {
        const char *key = cfg->key_file ? cfg->key_file : cfg->cert_file;
        if (SSL_CTX_use_certificate_chain_file(x->ctx, cfg->cert_file) != 1
            || SSL_CTX_use_PrivateKey_file(x->ctx, key, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(x->ctx) != 1) {
            char why[160];
            openssl_reason(why, sizeof why);
            snprintf(err, errcap, "cannot load client certificate %s: %s", cfg->cert_file, why);
            ft_tls_ctx_free(x);
            return NULL;
        }
    }
    return x;
fail : {
    char why[160];
    openssl_reason(why, sizeof why);
    snprintf(err, errcap, "cannot set up TLS: %s", why);
    ft_tls_ctx_free(x);
    return NULL;
}
}

void ft_tls_ctx_free(ft_tls_ctx *x)
{
    if (!x)
        return;
    for (int i = 0; i < FT_SESSION_SLOTS; i++) {
        free(x->sessions[i].key);
        if (x->sessions[i].sess)
            SSL_SESSION_free(x->sessions[i].sess);
    }
    if (x->ctx)
        SSL_CTX_free(x->ctx);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

void ft_tls_counts(ft_tls_ctx *x, int64_t *full, int64_t *resumed)
{
    pthread_mutex_lock(&x->mu);
    *full = x->full;
    *resumed = x->resumed;
    pthread_mutex_unlock(&x->mu);
}

/* ---------------------------------------------------------------- socket BIO */

/* A session's own socket BIO, in place of OpenSSL's: every read and write
 * passes MSG_DONTWAIT (and MSG_NOSIGNAL), so the socket itself may be
 * blocking, and a read asked for with ft_tls_block_next waits in recv
 * itself (bounded by the socket's SO_RCVTIMEO): the fast path's one system
 * call per response, over TLS too (conn.c, make_blocking). */
typedef struct {
    int fd;
    int block;                 /* the next read may wait */
} sock_bio;

static BIO_METHOD *sock_method;
static int sock_type;          /* its BIO_method_type */
static pthread_once_t sock_once = PTHREAD_ONCE_INIT;

static int sb_read(BIO *b, char *buf, int n)
{
    sock_bio *s = BIO_get_data(b);
    int flags = s->block ? 0 : MSG_DONTWAIT;
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = recv(s->fd, buf, (size_t)n, flags);
        if (r >= 0)
            return (int)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return -1;
    }
}

static int sb_write(BIO *b, const char *buf, int n)
{
    sock_bio *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t w = send(s->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0)
            return (int)w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        return -1;
    }
}

static long sb_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sb_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static void sock_method_init(void)
{
    int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
    BIO_METHOD *m = BIO_meth_new(type, "ft socket");
    if (m && BIO_meth_set_read(m, sb_read) == 1 && BIO_meth_set_write(m, sb_write) == 1
        && BIO_meth_set_ctrl(m, sb_ctrl) == 1 && BIO_meth_set_destroy(m, sb_destroy) == 1) {
        sock_method = m;
        sock_type = type;
    }
    else if (m)
        BIO_meth_free(m);
}

static BIO *sock_bio_new(int fd)
{
    pthread_once(&sock_once, sock_method_init);
    sock_bio *s = calloc(1, sizeof *s);
    BIO *b = s && sock_method ? BIO_new(sock_method) : NULL;
    if (!b) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

static sock_bio *own_sock(SSL *ssl)
{
    BIO *b = SSL_get_rbio(ssl);
    return b && sock_method && BIO_method_type(b) == sock_type ? BIO_get_data(b) : NULL;
}

int ft_tls_fast_path(SSL *ssl)
{
    sock_bio *s = own_sock(ssl);
    if (s)
        SSL_set_read_ahead(ssl, 1);   /* a whole response in one read */
    return s != NULL;
}

void ft_tls_block_next(SSL *ssl, int on)
{
    sock_bio *s = own_sock(ssl);
    if (s)
        s->block = on;
}

/* ---------------------------------------------------------------- per conn */

static int is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* A client SSL for host (no I/O attached yet): fd >= 0 reads and writes
 * that socket; otherwise `outer`, an established session, carries it. */
static SSL *tls_new(ft_tls_ctx *x, int fd, SSL *outer, const char *host, const char *key,
                    char *err, size_t errcap)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(x->ctx);
    char *own_key = strdup(key);
    if (!ssl || !own_key) {
        free(own_key);
        goto fail;
    }
    /* the key lives as long as the session: a TLS 1.3 ticket may arrive
     * at any read (freed by free_key) */
    SSL_set_ex_data(ssl, ex_ctx_index, x);
    SSL_set_ex_data(ssl, ex_key_index, own_key);
    if (fd >= 0) {
        BIO *b = sock_bio_new(fd);
        if (!b)
            goto fail;
        SSL_set_bio(ssl, b, b);
    } else {
        /* TLS in TLS: the records go through the outer session, a filter
         * BIO over it; the inner one owns it from here (BIO_CLOSE) */
        BIO *b = BIO_new(BIO_f_ssl());
        if (!b)
            goto fail;
        BIO_set_ssl(b, outer, BIO_NOCLOSE);
        SSL_set_bio(ssl, b, b);
    }
    if (is_ip(host)) {
        if (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE
            && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
            goto fail;
    } else {
        if (SSL_set_tlsext_host_name(ssl, host) != 1)
            goto fail;
        if (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && SSL_set1_host(ssl, host) != 1)
            goto fail;
    }
    SSL_SESSION *sess = cache_get(x, key);
    if (sess) {
        SSL_set_session(ssl, sess);
        SSL_SESSION_free(sess);
    }
    SSL_set_connect_state(ssl);
    if (outer)
        (void)BIO_set_close(SSL_get_rbio(ssl), BIO_CLOSE);
    return ssl;
fail : {
    char why[160];
    openssl_reason(why, sizeof why);
    snprintf(err, errcap, "tls: cannot start a session with %s: %s", host, why);
    if (ssl)
        SSL_free(ssl);
    return NULL;
}
}

SSL *ft_tls_new(ft_tls_ctx *x, int fd, const char *host, const char *key, char *err, size_t errcap)
{
    return tls_new(x, fd, NULL, host, key, err, errcap);
}

SSL *ft_tls_new_over(ft_tls_ctx *x, SSL *outer, const char *host, const char *key, char *err,
                     size_t errcap)
{
    return tls_new(x, -1, outer, host, key, err, errcap);
}

int ft_tls_handshake(ft_tls_ctx *x, SSL *ssl, const char *host, int *want_write, char *err,
                     size_t errcap)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        pthread_mutex_lock(&x->mu);
        if (SSL_session_reused(ssl))
            x->resumed++;
        else
            x->full++;
        pthread_mutex_unlock(&x->mu);
        return 1;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    long vr = SSL_get_verify_result(ssl);
    unsigned long oe = ERR_peek_last_error();
    if (e == SSL_ERROR_SSL && vr != X509_V_OK) {
        snprintf(err, errcap, "tls: failed to verify certificate for %s: "
                 "certificate verify failed: %s", host, X509_verify_cert_error_string(vr));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SSL && ERR_GET_LIB(oe) == ERR_LIB_SSL
               && ERR_GET_REASON(oe) == SSL_R_WRONG_VERSION_NUMBER) {
        snprintf(err, errcap, "http: server gave HTTP response to HTTPS client");
        ERR_clear_error();
    } else if (e == SSL_ERROR_SSL) {
        char why[160];
        openssl_reason(why, sizeof why);
        snprintf(err, errcap, "tls: handshake with %s failed: %s", host, why);
    } else if (e == SSL_ERROR_SYSCALL && errno != 0) {
        char ebuf[128];
        snprintf(err, errcap, "tls: handshake with %s failed: %s", host,
                 ft_errstr(errno, ebuf, sizeof ebuf));
        ERR_clear_error();
    } else {
        snprintf(err, errcap, "tls: handshake with %s failed: EOF", host);
        ERR_clear_error();
    }
    return -1;
}

static ssize_t io_result(SSL *ssl, int r, int *want_write, char *err, size_t errcap)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want_write = 0;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want_write = 1;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0) {
            ERR_clear_error();
            return 0;          /* EOF without close_notify */
        }
        ft_errstr(errno, err, errcap);
        ERR_clear_error();
        return -1;
    default: {
        char why[160];
        openssl_reason(why, sizeof why);
        snprintf(err, errcap, "tls: %s", why);
        errno = EPROTO;
        return -1;
    }
    }
}

ssize_t ft_tls_read(SSL *ssl, void *buf, size_t n, int *want_write, char *err, size_t errcap)
{
    ERR_clear_error();
    errno = 0;
    if (n > INT32_MAX)
        n = INT32_MAX;
    int r = SSL_read(ssl, buf, (int)n);
    if (r > 0)
        return r;
    return io_result(ssl, r, want_write, err, errcap);
}

ssize_t ft_tls_write(SSL *ssl, const void *buf, size_t n, int *want_write, char *err, size_t errcap)
{
    ERR_clear_error();
    errno = 0;
    if (n > INT32_MAX)
        n = INT32_MAX;
    int r = SSL_write(ssl, buf, (int)n);
    if (r > 0)
        return r;
    return io_result(ssl, r, want_write, err, errcap);
}

int ft_tls_pending(SSL *ssl)
{
    /* TLS in TLS: the outer session may hold decrypted bytes of the inner
     * one's next record (its filter BIO reports them as pending; a socket
     * BIO reports none) */
    int n = SSL_pending(ssl);
    if (n == 0)
        n = (int)BIO_pending(SSL_get_rbio(ssl));
    if (n == 0 && SSL_has_pending(ssl))
        n = 1;                 /* read ahead, not yet decrypted */
    return n;
}

void ft_tls_close(SSL *ssl)
{
    ERR_clear_error();
    if (SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);     /* and the outer session under it, if any */
    ERR_clear_error();
}
