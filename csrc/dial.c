/* dial.c - a dial as a state machine on an engine thread: non-blocking
 * connect to each resolved address in turn until one succeeds, the dial
 * deadline passes, or every address failed; then what the way to the target
 * asks for, each a phase driven by the socket's events:
 *   - an https proxy: TLS with the proxy (its name, its certificate);
 *   - a SOCKS proxy: the SOCKS4/4a/5 handshake (RFC 1928, 1929), the target
 *     looked up first on a resolver thread where the client resolves it
 *     (socks4, socks5), never where the proxy does (socks4a, socks5h);
 *   - an http(s) proxy and an https target: the CONNECT tunnel;
 *   - an https target: the TLS handshake, inside the proxy's TLS session
 *     when there is one (TLS in TLS).
 * The result goes to ft_pool_dial_done, which delivers it to the waiting
 * request or pools it (late binding, Go's dialConnFor). A dial is posted to
 * its connection's engine, which alone advances it; its ft_io's list (under
 * mu) lets the timers and close find it. */
#include "core.h"
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A dial's phases (d->phase). */
enum { DP_LOOKUP = 1, DP_CONNECT, DP_PROXY_TLS, DP_SOCKS, DP_TUNNEL, DP_TLS };

/* Without a dial_timeout, the steps through a SOCKS proxy (the target's
 * lookup, connect, handshake) still end: Go's one minute for CONNECT. */
#define PROXY_STEP_NS (60 * 1000000000LL)

static void dial_fail(ft_transport *t, ft_dial *d, int code, const char *msg);
static void set_deadline(ft_transport *t, ft_dial *d, int64_t deadline);

static void dial_succeeded(ft_transport *t, ft_dial *d)
{
    ft_conn_unwatch(d->c);
    ft_pool_dial_done(t, d, 1);
}

static void set_deadline(ft_transport *t, ft_dial *d, int64_t deadline)
{
    pthread_mutex_lock(&t->mu);
    d->deadline = deadline;
    pthread_mutex_unlock(&t->mu);
}

/* "ip:port", or "[ip6]:port" */
static void join_host_port(char *out, size_t cap, const char *host, int port)
{
    snprintf(out, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* d->err from a format (a long text is cut short). */
static void errf(ft_dial *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(ft_dial *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
}

/* A step through a SOCKS proxy failed (dial_fail names the way). */
static void socks_fail(ft_transport *t, ft_dial *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void socks_fail(ft_transport *t, ft_dial *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    dial_fail(t, d, code, d->err);
}

/* One non-blocking write (out) or read of the dial's own bytes, on the
 * socket or through the TLS session with the proxy: >0 bytes, 0 EOF (a
 * read), -1 with errno EAGAIN (*want_write: wait for writability) or
 * another error (text in ebuf). */
static ssize_t dial_io(ft_conn *c, int out, void *p, size_t n, int *want_write, char *ebuf,
                       size_t ecap)
{
    *want_write = out;
    if (c->ssl) {
        ssize_t r = out ? ft_tls_write(c->ssl, p, n, want_write, ebuf, ecap)
                        : ft_tls_read(c->ssl, p, n, want_write, ebuf, ecap);
        if (r == 0 && out) {
            snprintf(ebuf, ecap, "EOF");
            errno = EPIPE;
            return -1;
        }
        return r;
    }
    for (;;) {
        ssize_t r = out ? send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : recv(c->fd, p, n, MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            errno = EAGAIN;
            return -1;
        }
        ft_errstr(errno, ebuf, ecap);
        return -1;
    }
}

static void start_tls(ft_transport *t, ft_dial *d);
static void through_proxy(ft_transport *t, ft_dial *d);

/* Drive a TLS handshake - with the proxy (DP_PROXY_TLS) or the target
 * (DP_TLS) - until it completes, fails, or must wait. */
static void handshake_step(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    int want_write = 0, proxy = d->phase == DP_PROXY_TLS;
    char err[sizeof d->err];
    int r = ft_tls_handshake(t->tls, c->ssl, proxy ? d->proxy_host : d->host, &want_write,
                             err, sizeof err);
    if (r > 0 && proxy) {
        through_proxy(t, d);
    } else if (r > 0) {
        dial_succeeded(t, d);
    } else if (r < 0) {
        /* Go: the proxy's TLS failure is a proxyconnect error */
        errf(d, "%s%s", proxy ? "proxyconnect tcp: " : "", err);
        dial_fail(t, d, FT_E_TLS, d->err);
    } else if (ft_conn_rewatch(c, want_write) != 0) {
        dial_fail(t, d, FT_E_TLS, "tls: cannot watch the socket");
    }
}

/* CONNECT through an http(s) proxy (Go's dialConn for https via a proxy):
 * write the request, read the proxy's answer; 200 opens the tunnel and TLS
 * with the target starts; anything else fails with the proxy's reason phrase
 * (Go: "Forbidden", or "unknown status code" without one). Over an https
 * proxy both go through the TLS session with the proxy. */
static void tunnel_step(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char ebuf[160];
    int ww = 0;
    if (!d->tunnel_req) {
        dial_fail(t, d, FT_E_NOMEM, "out of memory");
        return;
    }
    while (d->tunnel_off < d->tunnel_len) {
        ssize_t w = dial_io(c, 1, d->tunnel_req + d->tunnel_off, d->tunnel_len - d->tunnel_off,
                            &ww, ebuf, sizeof ebuf);
        if (w < 0 && errno == EAGAIN) {
            if (ft_conn_rewatch(c, ww) != 0)
                dial_fail(t, d, FT_E_CONNECT, "proxyconnect: cannot watch the socket");
            return;
        }
        if (w < 0) {
            snprintf(d->err, sizeof d->err, "proxyconnect tcp: write: %s", ebuf);
            dial_fail(t, d, FT_E_CONNECT, d->err);
            return;
        }
        d->tunnel_off += (size_t)w;
    }
    for (;;) {
        if (c->wpos == c->cap) {
            dial_fail(t, d, FT_E_CONNECT, "proxyconnect: the proxy's answer to CONNECT is too long");
            return;
        }
        ssize_t r = dial_io(c, 0, c->buf + c->wpos, c->cap - c->wpos, &ww, ebuf, sizeof ebuf);
        if (r < 0 && errno == EAGAIN) {
            if (ft_conn_rewatch(c, ww) != 0)
                dial_fail(t, d, FT_E_CONNECT, "proxyconnect: cannot watch the socket");
            return;
        }
        if (r <= 0) {
            dial_fail(t, d, FT_E_CONNECT, r == 0 ? "proxyconnect: EOF from the proxy" : ebuf);
            return;
        }
        c->wpos += (size_t)r;
        size_t scan = 0;
        size_t hl = ft_find_head_end(c->buf, c->wpos, &scan);
        if (!hl)
            continue;
        ft_header hs[64];
        ft_head h;
        char perr[200];
        memset(&h, 0, sizeof h);
        h.headers = hs;
        h.cap = 64;
        int rc = ft_parse_head(c->buf, hl, &h, perr, sizeof perr);
        if (rc == FT_PERR) {
            snprintf(d->err, sizeof d->err, "proxyconnect: %s", perr);
            dial_fail(t, d, FT_E_CONNECT, d->err);
            return;
        }
        if (h.status != 200) {
            if (h.reason_len == 0)
                snprintf(d->err, sizeof d->err, "unknown status code");
            else
                snprintf(d->err, sizeof d->err, "%.*s", (int)h.reason_len, c->buf + h.reason_off);
            dial_fail(t, d, FT_E_CONNECT, d->err);
            return;
        }
        if (hl != c->wpos || (c->ssl && ft_tls_pending(c->ssl) > 0)) {
            dial_fail(t, d, FT_E_CONNECT, "proxyconnect: bytes after the proxy's 200 to CONNECT");
            return;
        }
        c->rpos = c->wpos = 0;
        start_tls(t, d);
        return;
    }
}

/* ---------------------------------------------------------------- SOCKS */

/* What the bytes in sbuf are (d->sstate). */
enum { SS_S5_METHOD = 1, SS_S5_AUTH, SS_S5_REPLY, SS_S5_NAMELEN, SS_S5_ADDR, SS_S4_REPLY };

/* Send sbuf[0..len), then read `reply` bytes as `state`. */
static void socks_send(ft_dial *d, size_t len, int state, size_t reply)
{
    d->ssend = 1;
    d->slen = len;
    d->soff = 0;
    d->sstate = state;
    d->sneed = reply;
}

/* The target's address for the proxy: an IP literal as it is; a name
 * looked up by the client (socks4: its first IPv4 address, socks5: its
 * first IPv4 address, else its first IPv6 one); *family 0 for a name the
 * proxy resolves. 0, or -1 with the cause in why. */
static int socks_target(ft_dial *d, int *family, unsigned char ip[16], char *why, size_t cap)
{
    if (inet_pton(AF_INET, d->socks_host, ip) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, d->socks_host, ip) == 1) {
        *family = AF_INET6;
        if (d->socks == FT_SOCKS4 || d->socks == FT_SOCKS4A) {
            snprintf(why, cap, "SOCKS4 cannot connect to an IPv6 address");
            return -1;
        }
        return 0;
    }
    *family = 0;
    if (d->socks == FT_SOCKS4A || d->socks == FT_SOCKS5H)
        return 0;
    /* One CONNECT is made, so one address is chosen: IPv4 first, which
     * every proxy can reach (a name like "localhost" often lists ::1
     * first, and a proxy on an IPv4-only host fails it), then IPv6. */
    const struct addrinfo *v6 = NULL;
    for (const struct addrinfo *ai = d->target_addrs; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            memcpy(ip, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
            *family = AF_INET;
            return 0;
        }
        if (ai->ai_family == AF_INET6 && !v6)
            v6 = ai;
    }
    if (v6 && d->socks == FT_SOCKS5) {
        memcpy(ip, &((const struct sockaddr_in6 *)v6->ai_addr)->sin6_addr, 16);
        *family = AF_INET6;
        return 0;
    }
    snprintf(why, cap, "lookup %s: no %saddress", d->socks_host,
             d->socks == FT_SOCKS4 ? "IPv4 " : "");
    return -1;
}

/* The SOCKS5 request (RFC 1928 section 4): CONNECT to the target. */
static int socks5_request(ft_transport *t, ft_dial *d)
{
    unsigned char ip[16], *b = d->sbuf;
    int family;
    char why[300];
    if (socks_target(d, &family, ip, why, sizeof why) != 0) {
        socks_fail(t, d, FT_E_CONNECT, "%s", why);
        return -1;
    }
    size_t n = 0;
    b[n++] = 5;
    b[n++] = 1;                /* CONNECT */
    b[n++] = 0;
    if (family == AF_INET) {
        b[n++] = 1;
        memcpy(b + n, ip, 4);
        n += 4;
    } else if (family == AF_INET6) {
        b[n++] = 4;
        memcpy(b + n, ip, 16);
        n += 16;
    } else {
        size_t len = strlen(d->socks_host);
        if (len > 255) {
            socks_fail(t, d, FT_E_CONNECT, "FQDN too long");
            return -1;
        }
        b[n++] = 3;
        b[n++] = (unsigned char)len;
        memcpy(b + n, d->socks_host, len);
        n += len;
    }
    b[n++] = (unsigned char)(d->socks_port >> 8);
    b[n++] = (unsigned char)d->socks_port;
    socks_send(d, n, SS_S5_REPLY, 4);
    return 0;
}

/* The first message: SOCKS5's method selection (no authentication, and
 * username/password when the proxy URL has a user: Go's and curl's
 * offer), or the whole SOCKS4/4a request. */
static int socks_hello(ft_transport *t, ft_dial *d)
{
    unsigned char *b = d->sbuf;
    if (d->socks == FT_SOCKS5 || d->socks == FT_SOCKS5H) {
        b[0] = 5;
        b[1] = d->socks_user ? 2 : 1;
        b[2] = 0;              /* no authentication required */
        b[3] = 2;              /* username/password */
        socks_send(d, d->socks_user ? 4 : 3, SS_S5_METHOD, 2);
        return 0;
    }
    unsigned char ip[16];
    int family;
    char why[300];
    if (socks_target(d, &family, ip, why, sizeof why) != 0) {
        socks_fail(t, d, FT_E_CONNECT, "%s", why);
        return -1;
    }
    const char *user = d->socks_user ? d->socks_user : "";
    size_t ulen = strlen(user), hlen = family ? 0 : strlen(d->socks_host);
    if (ulen > 255 || hlen > 255) {
        socks_fail(t, d, FT_E_CONNECT, ulen > 255 ? "user id too long" : "FQDN too long");
        return -1;
    }
    size_t n = 0;
    b[n++] = 4;
    b[n++] = 1;                /* CONNECT */
    b[n++] = (unsigned char)(d->socks_port >> 8);
    b[n++] = (unsigned char)d->socks_port;
    if (family) {
        memcpy(b + n, ip, 4);
    } else {
        /* SOCKS4a: 0.0.0.x, the name after the user id */
        memcpy(b + n, "\0\0\0\1", 4);
    }
    n += 4;
    memcpy(b + n, user, ulen + 1);
    n += ulen + 1;
    if (!family) {
        memcpy(b + n, d->socks_host, hlen + 1);
        n += hlen + 1;
    }
    socks_send(d, n, SS_S4_REPLY, 8);
    return 0;
}

/* Go's socksReply texts */
static const char *socks5_reply_text(int code, char *buf, size_t cap)
{
    static const char *texts[] = {
        "succeeded", "general SOCKS server failure", "connection not allowed by ruleset",
        "network unreachable", "host unreachable", "connection refused", "TTL expired",
        "command not supported", "address type not supported",
    };
    if (code >= 0 && code < (int)(sizeof texts / sizeof texts[0]))
        return texts[code];
    snprintf(buf, cap, "unknown code: %d", code);
    return buf;
}

/* A reply is in sbuf[0..slen): judge it and go on. 0: the next message or
 * more of this reply is set; 1: the dial went on or failed. */
static int socks_reply(ft_transport *t, ft_dial *d)
{
    const unsigned char *b = d->sbuf;
    char tbuf[40];
    switch (d->sstate) {
    case SS_S5_METHOD:
        if (b[0] != 5) {
            socks_fail(t, d, FT_E_CONNECT, "unexpected protocol version %d", b[0]);
            return 1;
        }
        if (b[1] == 0xff) {
            socks_fail(t, d, FT_E_CONNECT, "no acceptable authentication methods");
            return 1;
        }
        if (b[1] == 2 && d->socks_user) {
            /* RFC 1929 */
            size_t ul = strlen(d->socks_user);
            size_t pl = d->socks_pass ? strlen(d->socks_pass) : 0;
            if (ul == 0 || ul > 255 || pl > 255) {
                socks_fail(t, d, FT_E_CONNECT, "invalid username/password");
                return 1;
            }
            unsigned char *o = d->sbuf;
            size_t n = 0;
            o[n++] = 1;
            o[n++] = (unsigned char)ul;
            memcpy(o + n, d->socks_user, ul);
            n += ul;
            o[n++] = (unsigned char)pl;
            if (pl)
                memcpy(o + n, d->socks_pass, pl);
            n += pl;
            socks_send(d, n, SS_S5_AUTH, 2);
            return 0;
        }
        if (b[1] != 0) {
            socks_fail(t, d, FT_E_CONNECT, "unsupported authentication method %d", b[1]);
            return 1;
        }
        return socks5_request(t, d) != 0;
    case SS_S5_AUTH:
        if (b[0] != 1) {
            socks_fail(t, d, FT_E_CONNECT, "invalid username/password version");
            return 1;
        }
        if (b[1] != 0) {
            socks_fail(t, d, FT_E_CONNECT, "username/password authentication failed");
            return 1;
        }
        return socks5_request(t, d) != 0;
    case SS_S5_REPLY:
        if (b[0] != 5) {
            socks_fail(t, d, FT_E_CONNECT, "unexpected protocol version %d", b[0]);
            return 1;
        }
        if (b[1] != 0) {
            socks_fail(t, d, FT_E_CONNECT, "unknown error %s",
                       socks5_reply_text(b[1], tbuf, sizeof tbuf));
            return 1;
        }
        if (b[2] != 0) {
            socks_fail(t, d, FT_E_CONNECT, "non-zero reserved field");
            return 1;
        }
        /* the bound address: read and dropped */
        d->sstate = SS_S5_ADDR;
        if (b[3] == 1) {
            d->slen = 4 + 4 + 2;
        } else if (b[3] == 4) {
            d->slen = 4 + 16 + 2;
        } else if (b[3] == 3) {
            d->sstate = SS_S5_NAMELEN;
            d->slen = 5;
        } else {
            socks_fail(t, d, FT_E_CONNECT, "unknown address type %d", b[3]);
            return 1;
        }
        return 0;
    case SS_S5_NAMELEN:
        d->sstate = SS_S5_ADDR;
        d->slen = 5 + (size_t)b[4] + 2;    /* at most 262 bytes in all */
        return 0;
    case SS_S4_REPLY:
        if (b[0] != 0) {
            socks_fail(t, d, FT_E_CONNECT, "unexpected reply version %d", b[0]);
            return 1;
        }
        if (b[1] != 90) {
            const char *why = b[1] == 91 ? "request rejected or failed"
                              : b[1] == 92 ? "request rejected: the proxy cannot reach "
                                             "the client's identd"
                              : b[1] == 93 ? "request rejected: identd reports another user id"
                                           : NULL;
            if (why)
                socks_fail(t, d, FT_E_CONNECT, "%s", why);
            else
                socks_fail(t, d, FT_E_CONNECT, "unknown reply code %d", b[1]);
            return 1;
        }
        start_tls(t, d);
        return 1;
    default:   /* SS_S5_ADDR: through */
        start_tls(t, d);
        return 1;
    }
}

/* Advance the SOCKS exchange: send what is due, read exactly the reply's
 * bytes (nothing of the target's stream is taken), judge it. */
static void socks_step(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char ebuf[160];
    int ww = 0;
    for (;;) {
        while (d->soff < d->slen) {
            ssize_t r = dial_io(c, d->ssend, d->sbuf + d->soff, d->slen - d->soff, &ww, ebuf,
                                sizeof ebuf);
            if (r < 0 && errno == EAGAIN)
                goto wait;
            if (r < 0) {
                socks_fail(t, d, FT_E_CONNECT, "%s: %s", d->ssend ? "write" : "read", ebuf);
                return;
            }
            if (r == 0) {
                /* io.ReadFull's words */
                socks_fail(t, d, FT_E_CONNECT, d->soff ? "unexpected EOF" : "EOF");
                return;
            }
            d->soff += (size_t)r;
        }
        if (d->ssend) {
            /* sent: now its reply */
            d->ssend = 0;
            d->soff = 0;
            d->slen = d->sneed;
        } else if (socks_reply(t, d) != 0) {
            return;
        }
    }
wait:
    if (ft_conn_rewatch(c, ww) != 0)
        socks_fail(t, d, FT_E_CONNECT, "cannot watch the socket");
}

static void start_socks(ft_transport *t, ft_dial *d)
{
    d->phase = DP_SOCKS;
    if (socks_hello(t, d) != 0)
        return;
    socks_step(t, d);
}

/* The target's lookup is done (a task posted by lookup_notify). */
static void try_next(ft_transport *t, ft_dial *d);

static void lookup_done(void *arg)
{
    ft_dial *d = arg;
    ft_transport *t = d->c->io->t;
    char err[256];
    int rc = ft_dns_take(d->dns, &d->target_addrs, err, sizeof err);
    ft_dns_release(d->dns);
    d->dns = NULL;
    if (rc != 0) {
        const char *cause = strncmp(err, "dial tcp: ", 10) == 0 ? err + 10 : err;
        socks_fail(t, d, FT_E_CONNECT, "%s", cause);
        return;
    }
    d->phase = DP_CONNECT;
    d->next = d->addrs;
    try_next(t, d);
}

/* On the resolver thread, under its lock: ft_dial_free releases the lookup
 * (under that lock too) before d goes, and takes back the task if it is
 * still queued. */
static void lookup_notify(void *arg)
{
    ft_dial *d = arg;
    ft_engine_post(d->dns_engine, &d->dns_task, lookup_done, d);
}

/* ---------------------------------------------------------------- phases */

/* The proxy's connection is up (TCP, and TLS to an https proxy): then the
 * SOCKS handshake, or the CONNECT tunnel, or the target's TLS. */
static void through_proxy(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    if (d->socks) {
        start_socks(t, d);
        return;
    }
    if (d->tunneling) {
        /* Go's fixed one-minute limit for the proxy's answer */
        if (ft_conn_ensure_buf(t, c) != 0) {
            dial_fail(t, d, FT_E_NOMEM, "out of memory");
            return;
        }
        d->phase = DP_TUNNEL;
        set_deadline(t, d, ft_now_ns() + 60 * 1000000000LL);
        tunnel_step(t, d);
        return;
    }
    start_tls(t, d);
}

/* A TLS session for c: with the proxy (proxy = 1) or with the target,
 * inside the proxy's session when there is one. */
static int new_session(ft_transport *t, ft_dial *d, int proxy)
{
    ft_conn *c = d->c;
    char err[256];
    ft_tls_ctx *x = ft_transport_tls(t, err, sizeof err);
    SSL *ssl = NULL;
    if (x && proxy)
        ssl = ft_tls_new(x, c->fd, d->proxy_host, d->proxy_key, err, sizeof err);
    else if (x && c->ssl)
        ssl = ft_tls_new_over(x, c->ssl, d->host, c->hp->key, err, sizeof err);
    else if (x)
        ssl = ft_tls_new(x, c->fd, d->host, c->hp->key, err, sizeof err);
    if (!ssl) {
        errf(d, "%s%s", proxy ? "proxyconnect tcp: " : "", err);
        dial_fail(t, d, FT_E_TLS, d->err);
        return -1;
    }
    c->ssl = ssl;
    d->phase = proxy ? DP_PROXY_TLS : DP_TLS;
    if (t->cfg.tls_handshake_timeout > 0)
        set_deadline(t, d, ft_now_ns() + t->cfg.tls_handshake_timeout);
    if (!c->registered && ft_conn_watch(c, 1) != 0) {
        dial_fail(t, d, FT_E_TLS, "tls: cannot watch the socket");
        return -1;
    }
    return 0;
}

/* TCP is connected: plain connections are done, https ones start TLS with
 * their own deadline (tls_handshake_timeout); through a proxy its own
 * steps come first (through_proxy), after TLS with an https proxy. */
static void connected(ft_transport *t, ft_dial *d)
{
    ft_set_nodelay(d->c->fd);
    if (d->proxy_tls) {
        if (new_session(t, d, 1) == 0)
            handshake_step(t, d);
        return;
    }
    if ((d->socks || d->tunneling) && !d->c->registered && ft_conn_watch(d->c, 1) != 0) {
        dial_fail(t, d, FT_E_CONNECT, "proxyconnect: cannot watch the socket");
        return;
    }
    through_proxy(t, d);
}

static void start_tls(ft_transport *t, ft_dial *d)
{
    if (!d->tls) {
        dial_succeeded(t, d);
        return;
    }
    if (new_session(t, d, 0) == 0)
        handshake_step(t, d);
}

static void dial_fail(ft_transport *t, ft_dial *d, int code, const char *msg)
{
    char addr[80];
    ft_conn_unwatch(d->c);
    if (code == FT_E_CONNECT_TIMEOUT && !msg) {
        switch (d->phase) {
        case DP_LOOKUP:
            snprintf(d->err, sizeof d->err, "lookup %s: i/o timeout", d->socks_host);
            break;
        case DP_SOCKS:
            snprintf(d->err, sizeof d->err, "i/o timeout");
            break;
        case DP_PROXY_TLS:
            snprintf(d->err, sizeof d->err, "proxyconnect tcp: net/http: TLS handshake timeout");
            break;
        case DP_TUNNEL:
            snprintf(d->err, sizeof d->err, "proxyconnect: no answer to CONNECT within 1m0s");
            break;
        case DP_TLS:
            snprintf(d->err, sizeof d->err, "net/http: TLS handshake timeout");
            break;
        default: {
            const struct addrinfo *ai = d->next ? d->next : d->addrs;
            if (ai)
                ft_addr_str(ai, addr, sizeof addr);
            else
                snprintf(addr, sizeof addr, "?");
            snprintf(d->err, sizeof d->err, "dial tcp %s: i/o timeout", addr);
        }
        }
    } else if (msg && msg != d->err) {
        snprintf(d->err, sizeof d->err, "%s", msg);
    }
    if (d->socks && code != FT_E_CANCELLED && code != FT_E_NOMEM
        && (d->phase == DP_LOOKUP || d->phase == DP_CONNECT || d->phase == DP_SOCKS)) {
        /* Go's net.OpError for the way through the proxy: "socks connect
         * tcp PROXY->TARGET: cause" (the transport adds "proxyconnect tcp") */
        char proxy[300], target[300], cause[sizeof d->err];
        memcpy(cause, d->err, sizeof cause);
        join_host_port(proxy, sizeof proxy, d->proxy_host, d->proxy_port);
        join_host_port(target, sizeof target, d->socks_host, d->socks_port);
        errf(d, "socks connect tcp %s->%s: %s", proxy, target, cause);
    }
    d->err_code = code;
    ft_pool_dial_done(t, d, 0);
}

/* Try addresses from d->next on: returns when a connect is pending (watched
 * for writability), has succeeded, or every address failed. */
static void try_next(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char addr[80], ebuf[128];
    while (d->next) {
        int pending = 0;
        int fd = ft_connect_start(d->next, &pending);
        if (fd < 0) {
            ft_addr_str(d->next, addr, sizeof addr);
            snprintf(d->err, sizeof d->err, "dial tcp %s: connect: %s", addr, ft_errstr(-fd, ebuf, sizeof ebuf));
            d->err_code = FT_E_CONNECT;
            d->next = d->next->ai_next;
            continue;
        }
        c->fd = fd;
        if (!pending) {
            connected(t, d);
            return;
        }
        if (ft_conn_watch(c, 1) != 0) {
            close(fd);
            c->fd = -1;
            snprintf(d->err, sizeof d->err, "dial tcp: cannot watch the socket");
            d->err_code = FT_E_CONNECT;
            d->next = d->next->ai_next;
            continue;
        }
        return;
    }
    if (!d->err_code)
        dial_fail(t, d, FT_E_CONNECT, "dial tcp: no address");
    else
        dial_fail(t, d, d->err_code, d->err);
}

/* The task ft_dial_start_locked posts: the dial's first step. Through a
 * socks4 or socks5 proxy the client looks the target up first, on a
 * resolver thread. */
static void dial_begin(void *arg)
{
    ft_dial *d = arg;
    ft_transport *t = d->c->io->t;
    d->started = 1;
    if (d->socks && !d->deadline)
        set_deadline(t, d, ft_now_ns() + PROXY_STEP_NS);
    if ((d->socks == FT_SOCKS4 || d->socks == FT_SOCKS5) && !ft_host_is_numeric(d->socks_host)) {
        d->phase = DP_LOOKUP;
        d->dns_engine = d->c->io->e;
        d->dns = ft_dns_start(d->socks_host, d->socks_port, lookup_notify, d);
        if (!d->dns)
            socks_fail(t, d, FT_E_CONNECT, "lookup %s: no resolver thread could start",
                       d->socks_host);
        return;
    }
    d->phase = DP_CONNECT;
    d->next = d->addrs;
    try_next(t, d);
}

void ft_dial_start_locked(ft_dial *d)
{
    ft_io *io = d->c->io;
    d->prev = NULL;
    d->nxt = io->dials;
    if (io->dials)
        io->dials->prev = d;
    io->dials = d;
    ft_engine_post(io->e, &d->task, dial_begin, d);
}

void ft_dial_unlink_locked(ft_dial *d)
{
    ft_io *io = d->c->io;
    if (d->prev)
        d->prev->nxt = d->nxt;
    else if (io->dials == d)
        io->dials = d->nxt;
    if (d->nxt)
        d->nxt->prev = d->prev;
    d->prev = d->nxt = NULL;
}

int ft_dial_set_hop(ft_dial *d, const ft_hop *h)
{
    d->socks = h->socks;
    d->socks_port = h->socks_port;
    d->proxy_port = h->proxy_port;
    d->proxy_tls = h->proxy_tls;
    if (!(d->proxy_host = strdup(h->proxy_host ? h->proxy_host : "")))
        return -1;
    if (h->proxy_tls && !(d->proxy_key = strdup(h->proxy_key ? h->proxy_key : h->proxy_host)))
        return -1;
    if (h->socks && !(d->socks_host = strdup(h->socks_host ? h->socks_host : "")))
        return -1;
    if (h->socks_user && !(d->socks_user = strdup(h->socks_user)))
        return -1;
    if (h->socks_pass && !(d->socks_pass = strdup(h->socks_pass)))
        return -1;
    return 0;
}

void ft_dial_free(ft_dial *d)
{
    if (d->dns_engine) {
        /* the target's lookup: no notify after the release; a task it
         * posted and that has not run is taken back */
        ft_dns_release(d->dns);
        ft_engine_cancel(d->dns_engine, &d->dns_task);
    }
    if (d->addrs)
        freeaddrinfo(d->addrs);
    if (d->target_addrs)
        freeaddrinfo(d->target_addrs);
    free(d->host);
    free(d->tunnel_req);
    free(d->socks_host);
    if (d->socks_pass)
        memset(d->socks_pass, 0, strlen(d->socks_pass));
    free(d->socks_user);
    free(d->socks_pass);
    free(d->proxy_host);
    free(d->proxy_key);
    memset(d->sbuf, 0, sizeof d->sbuf);   /* it held the password */
    free(d);
}

void ft_dial_on_event(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char addr[80], ebuf[128];
    switch (d->phase) {
    case DP_PROXY_TLS:
    case DP_TLS:
        handshake_step(t, d);
        return;
    case DP_SOCKS:
        socks_step(t, d);
        return;
    case DP_TUNNEL:
        tunnel_step(t, d);
        return;
    case DP_CONNECT:
        break;
    default:
        return;     /* not watched in other phases */
    }
    int e = ft_connect_result(c->fd);
    if (e == 0) {
        connected(t, d);
        return;
    }
    ft_conn_unwatch(c);
    ft_addr_str(d->next, addr, sizeof addr);
    snprintf(d->err, sizeof d->err, "dial tcp %s: connect: %s", addr, ft_errstr(e, ebuf, sizeof ebuf));
    d->err_code = FT_E_CONNECT;
    close(c->fd);
    c->fd = -1;
    d->next = d->next->ai_next;
    try_next(t, d);
}

/* The timers' half (on_tick, under mu): dials that have started and whose
 * deadline passed, or that close_idle_connections aborted while nobody waits
 * for them. The reason is settled here, under mu, where d->want is stable. */
int64_t ft_dial_expire_locked(ft_io *io, int64_t now, ft_dial **late)
{
    int64_t next = 0;
    for (ft_dial *d = io->dials; d; d = d->nxt) {
        if (!d->started)
            continue;   /* its task runs first, at this engine's next turn */
        int aborted = d->abort && !d->want;
        if (aborted || (d->deadline && d->deadline <= now)) {
            d->err_code = aborted ? FT_E_CANCELLED : FT_E_CONNECT_TIMEOUT;
            d->work = *late;
            *late = d;
        } else if (d->deadline && (next == 0 || d->deadline < next)) {
            next = d->deadline;
        }
    }
    return next;
}

void ft_dial_fail_late(ft_transport *t, ft_dial *late)
{
    while (late) {
        ft_dial *d = late;
        late = d->work;
        if (d->err_code == FT_E_CANCELLED)
            dial_fail(t, d, FT_E_CANCELLED, "dial aborted by close_idle_connections");
        else
            dial_fail(t, d, FT_E_CONNECT_TIMEOUT, NULL);
    }
}

/* close_idle_connections: the dials nobody waits for end at their engine's
 * next turn. */
void ft_dial_abort_orphans_locked(ft_io *io)
{
    int orphans = 0;
    for (ft_dial *d = io->dials; d; d = d->nxt) {
        if (!d->want) {
            d->abort = 1;
            orphans = 1;
        }
    }
    if (orphans)
        ft_engine_wake_at(io->e, ft_now_ns());
}

/* After io's engine stopped (ft_io_stop): its dials end, queued or in
 * flight; their waiters were failed by ft_transport_close. */
void ft_dial_close_all(ft_transport *t, ft_io *io)
{
    pthread_mutex_lock(&t->mu);
    ft_dial *list = io->dials;
    io->dials = NULL;
    pthread_mutex_unlock(&t->mu);
    while (list) {
        ft_dial *d = list;
        list = d->nxt;
        ft_conn_unwatch(d->c);
        d->c->dial = NULL;
        ft_conn_destroy(t, d->c);
        ft_dial_free(d);
    }
}
