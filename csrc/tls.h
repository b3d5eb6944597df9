/* tls.h - OpenSSL driven by the connection loops: non-blocking handshake,
 * reads and writes with want-read / want-write states, verification, client
 * certificates, and a per-key session cache for resumption.
 *
 * One SSL object per connection, only ever used by the thread that owns the
 * connection at that moment (caller or engine, see core.h), so OpenSSL's
 * "no concurrent use of one SSL" rule holds by construction. */
#ifndef FT_TLS_H
#define FT_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ft_tls_ctx ft_tls_ctx;
typedef struct ssl_st SSL;

typedef struct {
    int verify;                /* verify the server certificate and name */
    const char *ca_file;       /* PEM bundle, or NULL */
    const char *ca_dir;        /* hashed directory, or NULL */
    const char *cert_file;     /* client certificate chain (PEM), or NULL */
    const char *key_file;      /* its key (PEM); NULL: in cert_file */
} ft_tls_config;

ft_tls_ctx *ft_tls_ctx_new(const ft_tls_config *cfg, char *err, size_t errcap);
void ft_tls_ctx_free(ft_tls_ctx *ctx);

/* Counters (read under the transport lock by the caller of stats). */
void ft_tls_counts(ft_tls_ctx *ctx, int64_t *full, int64_t *resumed);

/* A new client SSL for fd: SNI and name check for host (IP addresses are
 * checked as IPs, without SNI), a cached session for key if there is one. */
SSL *ft_tls_new(ft_tls_ctx *ctx, int fd, const char *host, const char *key,
                char *err, size_t errcap);

/* The same over `outer`, an established session (TLS in TLS: an https
 * proxy's tunnel). The new session owns outer from then on: closing it
 * closes both; on failure outer is left to the caller. */
SSL *ft_tls_new_over(ft_tls_ctx *ctx, SSL *outer, const char *host, const char *key,
                     char *err, size_t errcap);

/* Advance the handshake: 1 done, 0 in progress (*want_write says which way
 * to wait), -1 failed with Go-like text in err. */
int ft_tls_handshake(ft_tls_ctx *ctx, SSL *ssl, const char *host, int *want_write,
                     char *err, size_t errcap);

/* Non-blocking read/write. >0 bytes; 0 clean end (close_notify or EOF);
 * -1 with errno EAGAIN (then *want_write: wait for writability rather than
 * readability) or another errno (text in err). */
ssize_t ft_tls_read(SSL *ssl, void *buf, size_t n, int *want_write, char *err, size_t errcap);
ssize_t ft_tls_write(SSL *ssl, const void *buf, size_t n, int *want_write, char *err, size_t errcap);

/* Decrypted bytes waiting inside OpenSSL (not visible to poll), in either
 * session of TLS in TLS. */
int ft_tls_pending(SSL *ssl);

/* The fast path (conn.c): 1 when ssl's reads may wait in recv on a
 * blocking socket (its own socket BIO: not TLS in TLS), and then it reads
 * ahead from now on, a whole response per read; 0 otherwise.
 * ft_tls_block_next(ssl, 1): its next reads may wait (until
 * ft_tls_block_next(ssl, 0)). */
int ft_tls_fast_path(SSL *ssl);
void ft_tls_block_next(SSL *ssl, int on);

/* Send close_notify (best effort, non-blocking) and free. */
void ft_tls_close(SSL *ssl);

#endif
