/* dial.c - a dial as a state machine on an engine thread: non-blocking
 * connect to each resolved address in turn until one succeeds, the dial
 * deadline passes, or every address failed; then the CONNECT tunnel and the
 * TLS handshake where asked for. The result goes to ft_pool_dial_done, which
 * delivers it to the waiting request or pools it (late binding, Go's
 * dialConnFor). A dial is posted to its connection's engine, which alone
 * advances it; its ft_io's list (under mu) lets the timers and close find it. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void dial_fail(ft_transport *t, ft_dial *d, int code, const char *msg);

static void dial_succeeded(ft_transport *t, ft_dial *d)
{
    ft_conn_unwatch(d->c);
    ft_pool_dial_done(t, d, 1);
}

/* Drive the TLS handshake until it completes, fails, or must wait. */
static void handshake_step(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    int want_write = 0;
    int r = ft_tls_handshake(t->tls, c->ssl, d->host, &want_write, d->err, sizeof d->err);
    if (r > 0)
        dial_succeeded(t, d);
    else if (r < 0)
        dial_fail(t, d, FT_E_TLS, d->err);
    else if (ft_conn_rewatch(c, want_write) != 0)
        dial_fail(t, d, FT_E_TLS, "tls: cannot watch the socket");
}

static void start_tls(ft_transport *t, ft_dial *d);

/* CONNECT through an http proxy (Go's dialConn for https via a proxy):
 * write the request, read the proxy's answer; 200 opens the tunnel and TLS
 * with the target starts; anything else fails with the proxy's reason phrase
 * (Go: "Forbidden", or "unknown status code" without one). */
static void tunnel_step(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char ebuf[160];
    if (!d->tunnel_req) {
        dial_fail(t, d, FT_E_NOMEM, "out of memory");
        return;
    }
    while (d->tunnel_off < d->tunnel_len) {
        ssize_t w = send(c->fd, d->tunnel_req + d->tunnel_off, d->tunnel_len - d->tunnel_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (ft_conn_rewatch(c, 1) != 0)
                dial_fail(t, d, FT_E_CONNECT, "proxyconnect: cannot watch the socket");
            return;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(d->err, sizeof d->err, "proxyconnect tcp: write: %s",
                     ft_errstr(errno, ebuf, sizeof ebuf));
            dial_fail(t, d, FT_E_CONNECT, d->err);
            return;
        }
        d->tunnel_off += (size_t)w;
    }
    if (ft_conn_rewatch(c, 0) != 0) {
        dial_fail(t, d, FT_E_CONNECT, "proxyconnect: cannot watch the socket");
        return;
    }
    for (;;) {
        if (c->wpos == c->cap) {
            dial_fail(t, d, FT_E_CONNECT, "proxyconnect: the proxy's answer to CONNECT is too long");
            return;
        }
        ssize_t r = recv(c->fd, c->buf + c->wpos, c->cap - c->wpos, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            dial_fail(t, d, FT_E_CONNECT, r == 0 ? "proxyconnect: EOF from the proxy"
                      : ft_errstr(errno, ebuf, sizeof ebuf));
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
        if (hl != c->wpos) {
            dial_fail(t, d, FT_E_CONNECT, "proxyconnect: bytes after the proxy's 200 to CONNECT");
            return;
        }
        c->rpos = c->wpos = 0;
        d->tunneling = 0;
        start_tls(t, d);
        return;
    }
}

/* TCP is connected: plain connections are done, https ones start TLS with
 * their own deadline (tls_handshake_timeout); through a proxy the CONNECT
 * tunnel comes first, with Go's fixed one-minute limit. */
static void connected(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    ft_set_nodelay(c->fd);
    if (d->tunneling) {
        if (ft_conn_ensure_buf(t, c) != 0) {
            dial_fail(t, d, FT_E_NOMEM, "out of memory");
            return;
        }
        pthread_mutex_lock(&t->mu);
        d->deadline = ft_now_ns() + 60 * 1000000000LL;
        pthread_mutex_unlock(&t->mu);
        if (!c->registered && ft_conn_watch(c, 1) != 0) {
            dial_fail(t, d, FT_E_CONNECT, "proxyconnect: cannot watch the socket");
            return;
        }
        tunnel_step(t, d);
        return;
    }
    start_tls(t, d);
}

static void start_tls(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    if (!d->tls) {
        dial_succeeded(t, d);
        return;
    }
    char err[256];
    ft_tls_ctx *x = ft_transport_tls(t, err, sizeof err);
    if (!x) {
        dial_fail(t, d, FT_E_TLS, err);
        return;
    }
    c->ssl = ft_tls_new(x, c->fd, d->host, c->hp->key, err, sizeof err);
    if (!c->ssl) {
        dial_fail(t, d, FT_E_TLS, err);
        return;
    }
    d->handshaking = 1;
    if (t->cfg.tls_handshake_timeout > 0) {
        pthread_mutex_lock(&t->mu);
        d->deadline = ft_now_ns() + t->cfg.tls_handshake_timeout;
        pthread_mutex_unlock(&t->mu);
    }
    if (!c->registered && ft_conn_watch(c, 1) != 0) {
        dial_fail(t, d, FT_E_TLS, "tls: cannot watch the socket");
        return;
    }
    handshake_step(t, d);
}

static void dial_fail(ft_transport *t, ft_dial *d, int code, const char *msg)
{
    char addr[80];
    ft_conn_unwatch(d->c);
    if (code == FT_E_CONNECT_TIMEOUT && !msg && d->tunneling && d->tunnel_off > 0) {
        snprintf(d->err, sizeof d->err, "proxyconnect: no answer to CONNECT within 1m0s");
    } else if (code == FT_E_CONNECT_TIMEOUT && !msg && d->handshaking) {
        snprintf(d->err, sizeof d->err, "net/http: TLS handshake timeout");
    } else if (code == FT_E_CONNECT_TIMEOUT && !msg) {
        const struct addrinfo *ai = d->next ? d->next : d->addrs;
        if (ai)
            ft_addr_str(ai, addr, sizeof addr);
        else
            snprintf(addr, sizeof addr, "?");
        snprintf(d->err, sizeof d->err, "dial tcp %s: i/o timeout", addr);
    } else if (msg && msg != d->err) {
        snprintf(d->err, sizeof d->err, "%s", msg);
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

/* The task ft_dial_start_locked posts: the dial's first step. */
static void dial_begin(void *arg)
{
    ft_dial *d = arg;
    d->started = 1;
    d->next = d->addrs;
    try_next(d->c->io->t, d);
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

void ft_dial_free(ft_dial *d)
{
    if (d->addrs)
        freeaddrinfo(d->addrs);
    free(d->host);
    free(d->tunnel_req);
    free(d);
}

void ft_dial_on_event(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char addr[80], ebuf[128];
    if (d->handshaking) {
        handshake_step(t, d);
        return;
    }
    if (d->tunneling && d->tunnel_off > 0) {
        tunnel_step(t, d);
        return;
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
