/* conn.c - one exchange on a persist conn: the write loop (request head and
 * body) and the read loop (response head, body framing, the body's outcome),
 * as explicit state machines advanced by whichever thread owns the
 * connection: here, the caller's thread with the GIL released.
 *
 * The body's outcome decides the connection's fate (Go's bodyEOFSignal):
 *   read to EOF     -> pooled before the read that reached EOF returns;
 *   closed early    -> a small known remainder is drained (now, or by the
 *                      engine for at most 50 ms) and the connection pooled;
 *                      otherwise closed;
 *   error/timeout   -> closed. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { PH_START = 0, PH_WAIT, PH_EXCHANGE, PH_BODY, PH_EOF, PH_FAILED, PH_CLOSED };

#define DIRECT_READ_MIN 16384    /* read straight into the caller's buffer from this size */
#define DRAIN_WINDOW_NS (50 * 1000000LL)
#define BROKEN "net/http: HTTP/1.x transport connection broken: "

void ft_rt_init(ft_rt *rt)
{
    memset(rt, 0, offsetof(ft_rt, head_inline));
    rt->hdrs = rt->hdr_inline;
    rt->hdrs_cap = sizeof rt->hdr_inline / sizeof rt->hdr_inline[0];
    rt->framing.content_length = -1;
}

int ft_rt_at_eof(const ft_rt *rt)
{
    return rt->phase == PH_EOF;
}

static void set_err(ft_rt *rt, int code, const char *fmt, ...)
{
    va_list ap;
    rt->err_code = code;
    va_start(ap, fmt);
    vsnprintf(rt->err, sizeof rt->err, fmt, ap);
    va_end(ap);
}

/* Release the exchange's connection: pooled when the exchange allows it,
 * otherwise closed. */
static void release_conn(ft_transport *t, ft_rt *rt, int reusable)
{
    ft_conn *c = rt->conn;
    if (!c)
        return;
    rt->conn = NULL;
    if (reusable)
        ft_pool_put(t, c);
    else
        ft_conn_destroy(t, c);
}

static int fail(ft_transport *t, ft_rt *rt, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ft_transport *t, ft_rt *rt, int code, const char *fmt, ...)
{
    va_list ap;
    rt->err_code = code;
    va_start(ap, fmt);
    vsnprintf(rt->err, sizeof rt->err, fmt, ap);
    va_end(ap);
    if (rt->phase == PH_WAIT)
        ft_pool_cancel_want(t, &rt->want);
    release_conn(t, rt, 0);
    rt->phase = PH_FAILED;
    return FT_R_FAIL;
}

void ft_rt_abort(ft_transport *t, ft_rt *rt, int code, const char *msg)
{
    if (rt->phase == PH_FAILED || rt->phase == PH_CLOSED)
        return;
    if (rt->phase == PH_EOF) {   /* after EOF, cancelling has no effect */
        return;
    }
    fail(t, rt, code, "%s", msg);
}

/* ---------------------------------------------------------------- exchange */

/* ---------------------------------------------------------------- write loop */

/* The write loop's states. The head goes first; with Expect: 100-continue
 * the body waits for "100 Continue" or expect_continue_timeout (Go's
 * waitForContinue); a streamed body arrives segment by segment from the
 * caller (FT_R_NEED_BODY). */
enum { WS_HEAD = 0, WS_WAIT100, WS_BODY, WS_NEED, WS_DONE, WS_SKIP, WS_FAILED };
enum { WL_BLOCKED = 0, WL_DONE, WL_ERR, WL_NEED, WL_WAIT100 };

void ft_rt_set_body(ft_rt *rt, const char *seg, size_t len, int more)
{
    rt->body = seg;
    rt->body_len = len;
    rt->body_off = 0;
    rt->body_more = more;
    if (rt->wstate == WS_NEED)
        rt->wstate = WS_BODY;
}

/* Pieces to send now: the rest of the head, and the rest of the body segment
 * when the body may go (not held back by 100-continue). */
static int pieces(ft_rt *rt, struct iovec *iov)
{
    int n = 0;
    if (rt->wstate == WS_HEAD && rt->head_off < rt->head_len) {
        iov[n].iov_base = (char *)rt->head + rt->head_off;
        iov[n].iov_len = rt->head_len - rt->head_off;
        n++;
    }
    if ((rt->wstate == WS_BODY || (rt->wstate == WS_HEAD && !rt->expect_continue))
        && rt->body_off < rt->body_len) {
        iov[n].iov_base = (char *)rt->body + rt->body_off;
        iov[n].iov_len = rt->body_len - rt->body_off;
        n++;
    }
    return n;
}

static void advance(ft_rt *rt, size_t w)
{
    rt->nwritten += w;
    if (rt->wstate == WS_HEAD) {
        size_t h = rt->head_len - rt->head_off;
        size_t k = w < h ? w : h;
        rt->head_off += k;
        w -= k;
    }
    rt->body_off += w;
}

/* One non-blocking write of iov[0..n): bytes written, or -1 (errno). */
static ssize_t send_pieces(ft_conn *c, struct iovec *iov, int n)
{
    if (c->ssl) {
        /* a small request goes out as one TLS record */
        char tmp[16384], ebuf[160];
        const char *p = iov[0].iov_base;
        size_t len = iov[0].iov_len;
        if (n == 2 && iov[0].iov_len + iov[1].iov_len <= sizeof tmp) {
            memcpy(tmp, iov[0].iov_base, iov[0].iov_len);
            memcpy(tmp + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
            p = tmp;
            len = iov[0].iov_len + iov[1].iov_len;
        }
        ssize_t w = ft_tls_write(c->ssl, p, len, &c->want_write, ebuf, sizeof ebuf);
        if (w == 0) {
            errno = EPIPE;
            return -1;
        }
        return w;
    }
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    for (;;) {
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0 || errno != EINTR)
            return w;
    }
}

/* The write loop: advance until blocked, done, or waiting for the caller or
 * for 100 Continue. */
static int write_loop(ft_transport *t, ft_rt *rt)
{
    for (;;) {
        struct iovec iov[2];
        int n = pieces(rt, iov);
        if (n == 0) {
            /* what was allowed is written: next state */
            if (rt->wstate == WS_HEAD && rt->expect_continue && rt->body_len + rt->body_more > 0) {
                int64_t wait = t->cfg.expect_continue_timeout;
                if (wait > 0) {
                    rt->wstate = WS_WAIT100;
                    rt->continue_deadline = ft_now_ns() + wait;
                    return WL_WAIT100;
                }
                rt->wstate = WS_BODY;     /* zero: no wait at all */
                continue;
            }
            if (rt->body_more) {
                rt->wstate = WS_NEED;
                return WL_NEED;
            }
            rt->wstate = WS_DONE;
            return WL_DONE;
        }
        ssize_t w = send_pieces(rt->conn, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return WL_BLOCKED;
            rt->wstate = WS_FAILED;
            return WL_ERR;
        }
        advance(rt, (size_t)w);
    }
}

ssize_t ft_conn_recv(ft_conn *c, char *buf, size_t n, char *ebuf, size_t ecap)
{
    if (c->ssl)
        return ft_tls_read(c->ssl, buf, n, &c->want_write, ebuf, ecap);
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            ft_errstr(errno, ebuf, ecap);
        else
            errno = EAGAIN;
        return -1;
    }
}

/* Make room in the read buffer: compact, then grow (for a head larger than
 * the buffer, up to the header budget). Returns bytes of room. */
static size_t make_room(ft_transport *t, ft_conn *c, size_t limit)
{
    if (c->rpos == c->wpos)
        c->rpos = c->wpos = 0;
    if (c->wpos < c->cap)
        return c->cap - c->wpos;
    if (c->rpos > 0) {
        memmove(c->buf, c->buf + c->rpos, c->wpos - c->rpos);
        c->wpos -= c->rpos;
        c->rpos = 0;
        return c->cap - c->wpos;
    }
    if (c->cap >= limit)
        return 0;
    size_t ncap = c->cap * 2;
    if (ncap > limit)
        ncap = limit;
    char *nb = realloc(c->buf, ncap);
    if (!nb)
        return 0;
    (void)t;
    c->buf = nb;
    c->cap = ncap;
    return c->cap - c->wpos;
}

static int copy_head(ft_rt *rt, const char *src, size_t len, ft_head *h)
{
    if (len <= sizeof rt->head_inline) {
        rt->head_copy = rt->head_inline;
    } else {
        rt->head_copy = malloc(len);
        if (!rt->head_copy)
            return -1;
    }
    memcpy(rt->head_copy, src, len);
    rt->head_copy_len = len;
    rt->hdrs = h->headers;
    rt->nhdrs = h->nheaders;
    return 0;
}

/* Parse a complete head at buf[rpos..rpos+len). 1 = final head consumed,
 * 0 = an interim 1xx was skipped, -1 = failed (rt failed). */
static int on_head(ft_transport *t, ft_rt *rt, size_t len)
{
    ft_conn *c = rt->conn;
    char *head = c->buf + c->rpos;
    char perr[256];
    ft_head h;
    memset(&h, 0, sizeof h);
    h.headers = rt->hdrs;
    h.cap = rt->hdrs_cap;
    int rc;
    while ((rc = ft_parse_head(head, len, &h, perr, sizeof perr)) == FT_PMORE) {
        size_t need = h.nheaders + 16;
        ft_header *nh = malloc(need * sizeof *nh);
        if (!nh) {
            fail(t, rt, FT_E_NOMEM, "out of memory");
            return -1;
        }
        if (rt->hdrs != rt->hdr_inline)
            free(rt->hdrs);
        rt->hdrs = nh;
        h.headers = nh;
        h.cap = need;
        h.nheaders = 0;
        rt->hdrs_cap = need;
    }
    if (rc != FT_OK) {
        fail(t, rt, FT_E_PROTOCOL, BROKEN "%s", perr);
        return -1;
    }
    if (h.status >= 100 && h.status <= 199 && h.status != 101) {
        /* interim response: skipped; its bytes count against the budget.
         * "100 Continue" releases a body held back for it. */
        if (h.status == 100 && rt->wstate == WS_WAIT100)
            rt->wstate = WS_BODY;
        rt->head_budget_used += len;
        c->rpos += len;
        rt->scan = 0;
        rt->status_line_ok = 0;
        return 0;
    }
    if (ft_framing_for(head, &h, rt->is_head, &rt->framing, perr, sizeof perr) != FT_OK) {
        fail(t, rt, FT_E_PROTOCOL, BROKEN "%s", perr);
        return -1;
    }
    rt->status = h.status;
    rt->vmajor = h.version_major;
    rt->vminor = h.version_minor;
    rt->reason_off = h.reason_off;
    rt->reason_len = h.reason_len;
    if (copy_head(rt, head, len, &h) != 0) {
        fail(t, rt, FT_E_NOMEM, "out of memory");
        return -1;
    }
    c->rpos += len;
    /* Go's persistConn reuse conditions for the request/response pair (§7).
     * The request write must have finished (checked when the head is
     * returned); the body's outcome is applied in finish_body / ft_rt_close. */
    rt->reuse_ok = !rt->framing.close && !rt->req_close && !t->cfg.disable_keep_alives
                   && rt->status != 101;
    if (rt->wstate == WS_WAIT100) {
        /* a final response while the body waits for 100 Continue: the body
         * is skipped if either side says close, otherwise sent before the
         * response is returned, so that the connection stays in step (Go's
         * waitForContinue) */
        if (rt->framing.close || rt->req_close || rt->body_more)
            rt->wstate = WS_SKIP;   /* (a streamed body cannot be finished here) */
        else
            rt->wstate = WS_BODY;
    } else if (rt->wstate == WS_HEAD || rt->wstate == WS_BODY || rt->wstate == WS_NEED) {
        /* the server answered before the request was written: the response
         * is returned at once and the connection is not reused (Go keeps
         * writing in its writeLoop for up to 50 ms; a caller-run loop stops) */
        rt->wstate = WS_SKIP;
    }
    if (rt->framing.kind == FT_BODY_LENGTH && rt->framing.body_length == 0)
        rt->framing.kind = FT_BODY_NONE;
    switch (rt->framing.kind) {
    case FT_BODY_LENGTH:
        rt->body_left = (uint64_t)rt->framing.body_length;
        break;
    case FT_BODY_CHUNKED:
        ft_chunked_init(&rt->chunked);
        break;
    default:
        break;
    }
    return 1;
}

static void finish_body(ft_transport *t, ft_rt *rt)
{
    rt->phase = PH_EOF;
    ft_conn *c = rt->conn;
    release_conn(t, rt, rt->reuse_ok && c && c->rpos == c->wpos);
}

/* Go reads the status line first: a malformed one fails as soon as that
 * line is in, without waiting for the rest of a head that may never come.
 * 0 = fine (or not complete yet), -1 = failed (rt failed). */
static int check_status_line(ft_transport *t, ft_rt *rt)
{
    ft_conn *c = rt->conn;
    const char *p = c->buf + c->rpos;
    const char *nl = memchr(p, '\n', c->wpos - c->rpos);
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - p) + 1;
    char small[512], perr[256];
    char *copy = n + 2 <= sizeof small ? small : malloc(n + 2);
    if (!copy) {
        fail(t, rt, FT_E_NOMEM, "out of memory");
        return -1;
    }
    memcpy(copy, p, n);
    memcpy(copy + n, "\r\n", 2);   /* the line alone, as a complete head */
    ft_header none[1];
    ft_head h;
    memset(&h, 0, sizeof h);
    h.headers = none;
    h.cap = 1;
    int rc = ft_parse_head(copy, n + 2, &h, perr, sizeof perr);
    if (copy != small)
        free(copy);
    rt->status_line_ok = 1;
    if (rc == FT_PERR) {
        fail(t, rt, FT_E_PROTOCOL, BROKEN "%s", perr);
        return -1;
    }
    return 0;
}

static int exchange_step(ft_transport *t, ft_rt *rt, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    int write_errno = 0;
    int readable = c->rpos < c->wpos;   /* leftover bytes? parse them first */
    char ebuf[160];
    size_t limit = t->cfg.max_response_header_bytes;

    for (;;) {
        int writing = rt->wstate == WS_HEAD || rt->wstate == WS_BODY;
        if (writing) {
            int w = write_loop(t, rt);
            if (w == WL_ERR) {
                write_errno = errno;
            } else if (w == WL_NEED && !rt->head_ready) {
                return FT_R_NEED_BODY;
            } else if (w == WL_DONE && t->cfg.response_header_timeout > 0 && !rt->head_ready) {
                /* Go: the response-header timer starts once the request,
                 * body included, is written */
                rt->header_deadline = ft_now_ns() + t->cfg.response_header_timeout;
            }
            writing = rt->wstate == WS_HEAD || rt->wstate == WS_BODY;
        }
        if (rt->head_ready) {
            /* the final head is parsed; only the body write was left */
            if (!writing) {
                if (rt->wstate != WS_DONE)
                    rt->reuse_ok = 0;
                return FT_R_DONE;
            }
            readable = 0;
        }
        if (rt->wstate == WS_WAIT100 && ft_now_ns() >= rt->continue_deadline) {
            rt->wstate = WS_BODY;        /* no 100 Continue in time: send anyway */
            continue;
        }
        if (readable) {
            if (c->rpos < c->wpos) {
                size_t hl = ft_find_head_end(c->buf + c->rpos, c->wpos - c->rpos, &rt->scan);
                if (hl) {
                    if (rt->head_budget_used + hl > limit)
                        goto too_big;
                    int r = on_head(t, rt, hl);
                    if (r < 0)
                        return FT_R_FAIL;
                    if (r > 0) {
                        rt->head_ready = 1;   /* returned once the write settles */
                        continue;
                    }
                    continue;   /* 1xx skipped: look at what follows */
                }
                if (rt->head_budget_used + (c->wpos - c->rpos) > limit)
                    goto too_big;
                if (!rt->status_line_ok && check_status_line(t, rt) != 0)
                    return FT_R_FAIL;
            }
            size_t room = make_room(t, c, limit - rt->head_budget_used + 1);
            if (room == 0)
                goto too_big;
            ssize_t n = ft_conn_recv(c, c->buf + c->wpos, room, ebuf, sizeof ebuf);
            if (n > 0) {
                c->wpos += (size_t)n;
                rt->got_response_bytes = 1;
                continue;
            }
            if (n == 0) {
                if (rt->got_response_bytes)
                    return fail(t, rt, FT_E_PROTOCOL, BROKEN "unexpected EOF");
                if (rt->wstate == WS_FAILED && write_errno != EPIPE && write_errno != ECONNRESET)
                    return fail(t, rt, FT_E_PROTOCOL, "write: %s",
                                ft_errstr(write_errno, ebuf, sizeof ebuf));
                return fail(t, rt, FT_E_PROTOCOL, "EOF");
            }
            if (errno != EAGAIN) {
                /* a TLS alert (say, the server refused our certificate) */
                int code = c->ssl && errno == EPROTO ? FT_E_TLS : FT_E_PROTOCOL;
                if (rt->got_response_bytes)
                    return fail(t, rt, code, BROKEN "read: %s", ebuf);
                return fail(t, rt, code, "read: %s", ebuf);
            }
            readable = 0;
        }
        /* wait for the socket, a deadline, or the end of this slice */
        int64_t now = ft_now_ns();
        if (rt->deadline && now >= rt->deadline)
            return fail(t, rt, FT_E_READ_TIMEOUT,
                        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
        if (rt->header_deadline && now >= rt->header_deadline && !rt->head_ready)
            return fail(t, rt, FT_E_HEADER_TIMEOUT, "net/http: timeout awaiting response headers");
        if (now >= slice_end)
            return FT_R_AGAIN;
        int64_t until = slice_end;
        if (rt->deadline && rt->deadline < until)
            until = rt->deadline;
        if (rt->header_deadline && rt->header_deadline < until)
            until = rt->header_deadline;
        if (rt->wstate == WS_WAIT100 && rt->continue_deadline < until)
            until = rt->continue_deadline;
        short ev = (rt->head_ready ? 0 : POLLIN) | (writing || c->want_write ? POLLOUT : 0);
        int rev = ft_wait_fd(c->fd, ev, ft_ms_until(until, now, -1));
        if (rev & (POLLIN | POLLERR | POLLHUP))
            readable = 1;
    }
too_big:
    return fail(t, rt, FT_E_PROTOCOL, BROKEN "net/http: server response headers exceeded %zu bytes; aborted",
                limit);
}

/* The exchange got its connection (idle, handed over, or dialed for it). */
static int start_exchange(ft_transport *t, ft_rt *rt, ft_conn *c)
{
    rt->conn = c;
    rt->conn_reused = c->reused;
    rt->phase = PH_EXCHANGE;
    if (ft_conn_ensure_buf(t, c) != 0)
        return fail(t, rt, FT_E_NOMEM, "out of memory");
    return 0;
}

/* The total deadline passed while waiting for a connection: a dial of our
 * own still in flight makes it a connect timeout, waiting for a slot under
 * max_conns_per_host a pool timeout. */
static int fail_wait_timeout(ft_transport *t, ft_rt *rt)
{
    int own_dial;
    pthread_mutex_lock(&t->mu);
    own_dial = rt->want.dial != NULL;
    pthread_mutex_unlock(&t->mu);
    if (own_dial)
        return fail(t, rt, FT_E_CONNECT_TIMEOUT,
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
    return fail(t, rt, FT_E_POOL_TIMEOUT,
                "timed out waiting for a connection to %s (max_conns_per_host=%d)",
                rt->key, t->cfg.max_conns_per_host);
}

int ft_rt_run(ft_transport *t, ft_rt *rt, int slice_ms)
{
    int64_t slice_end = ft_now_ns() + (int64_t)slice_ms * 1000000LL;
    for (;;) {
        switch (rt->phase) {
        case PH_START: {
            ft_conn *c = ft_pool_take_idle(t, rt->key);
            if (!c) {
                /* none idle: resolve here (the GIL is released), then wait
                 * for a connection - ours from a dial, or one released first */
                char rerr[sizeof rt->err];
                rt->want.host = rt->tls_host ? rt->tls_host : rt->host;
                rt->want.tls = rt->tls;
                rt->want.tunnel = rt->tunnel;
                rt->want.tunnel_auth = rt->tunnel_auth;
                if (ft_resolve(rt->host, rt->port, &rt->want.addrs, rerr, sizeof rerr) != 0)
                    return fail(t, rt, FT_E_CONNECT, "%s", rerr);
                int q = ft_pool_queue(t, rt->key, &rt->want, &c);
                if (q < 0)
                    return fail(t, rt, FT_E_CLOSED, "transport is closed");
                if (q == 0) {
                    rt->phase = PH_WAIT;
                    break;
                }
            }
            if (start_exchange(t, rt, c) != 0)
                return FT_R_FAIL;
            break;
        }
        case PH_WAIT: {
            int64_t until = slice_end;
            if (rt->deadline && rt->deadline < until)
                until = rt->deadline;
            if (!ft_pool_wait(t, &rt->want, until)) {
                if (rt->deadline && ft_now_ns() >= rt->deadline)
                    return fail_wait_timeout(t, rt);
                return FT_R_AGAIN;
            }
            ft_conn *c = rt->want.conn;
            rt->want.conn = NULL;
            if (!c) {
                rt->phase = PH_START;   /* nothing to cancel: served with an error */
                return fail(t, rt, rt->want.err_code, "%s", rt->want.err);
            }
            if (start_exchange(t, rt, c) != 0)
                return FT_R_FAIL;
            break;
        }
        case PH_EXCHANGE: {
            int r = exchange_step(t, rt, slice_end);
            if (r != FT_R_DONE)
                return r;   /* FT_R_AGAIN, FT_R_FAIL or FT_R_NEED_BODY */
            if (rt->framing.kind == FT_BODY_NONE) {
                /* no body: the connection goes back before the caller sees
                 * the response (TestTransportReuseConnEmptyResponseBody) */
                finish_body(t, rt);
            } else {
                rt->phase = PH_BODY;
            }
            return FT_R_DONE;
        }
        case PH_FAILED:
            return FT_R_FAIL;
        default:
            return FT_R_DONE;
        }
    }
}

/* ---------------------------------------------------------------- body */

/* Wait until the connection is readable. FT_R_DONE when it is, FT_R_AGAIN at
 * the slice end, FT_R_FAIL on the deadline. */
static int body_wait(ft_transport *t, ft_rt *rt, int64_t slice_end)
{
    int64_t now = ft_now_ns();
    if (rt->deadline && now >= rt->deadline)
        return fail(t, rt, FT_E_READ_TIMEOUT,
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)");
    if (now >= slice_end)
        return FT_R_AGAIN;
    int64_t until = slice_end;
    if (rt->deadline && rt->deadline < until)
        until = rt->deadline;
    ft_wait_fd(rt->conn->fd, rt->conn->want_write ? POLLOUT : POLLIN, ft_ms_until(until, now, -1));
    return FT_R_DONE;
}

/* recv into dst; >0 bytes, 0 EOF, FT_R_AGAIN if none yet, FT_R_FAIL on error */
static ssize_t body_recv(ft_transport *t, ft_rt *rt, char *dst, size_t n)
{
    char ebuf[160];
    ssize_t r = ft_conn_recv(rt->conn, dst, n, ebuf, sizeof ebuf);
    if (r >= 0)
        return r;
    if (errno == EAGAIN)
        return FT_R_AGAIN;
    return fail(t, rt, FT_E_PROTOCOL, "read: %s", ebuf);
}

/* Fill the connection buffer with more bytes. 1 = got some, 0 = EOF,
 * FT_R_AGAIN / FT_R_FAIL as above. */
static ssize_t fill(ft_transport *t, ft_rt *rt, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    for (;;) {
        size_t room = make_room(t, c, c->cap);
        if (room == 0)
            return fail(t, rt, FT_E_PROTOCOL, "http: suspiciously long trailer after chunked body");
        ssize_t r = body_recv(t, rt, c->buf + c->wpos, room);
        if (r > 0) {
            c->wpos += (size_t)r;
            return 1;
        }
        if (r != FT_R_AGAIN)
            return r;
        int w = body_wait(t, rt, slice_end);
        if (w != FT_R_DONE)
            return w;
    }
}

/* Copy up to n bytes already in the connection buffer into dst. */
static size_t take_buffered(ft_conn *c, char *dst, size_t n)
{
    size_t avail = c->wpos - c->rpos;
    size_t m = avail < n ? avail : n;
    memcpy(dst, c->buf + c->rpos, m);
    c->rpos += m;
    if (c->rpos == c->wpos)
        c->rpos = c->wpos = 0;
    return m;
}

static ssize_t read_length(ft_transport *t, ft_rt *rt, char *dst, size_t n, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    if (n > rt->body_left)
        n = (size_t)rt->body_left;
    for (;;) {
        size_t m = take_buffered(c, dst, n);
        if (m > 0) {
            rt->body_left -= m;
            if (rt->body_left == 0)
                finish_body(t, rt);
            return (ssize_t)m;
        }
        ssize_t r;
        if (n >= DIRECT_READ_MIN) {
            r = body_recv(t, rt, dst, n);
            if (r > 0) {
                rt->body_left -= (uint64_t)r;
                if (rt->body_left == 0)
                    finish_body(t, rt);
                return r;
            }
        } else {
            size_t want = c->cap;
            r = body_recv(t, rt, c->buf, want);
            if (r > 0) {
                c->wpos = (size_t)r;
                continue;
            }
        }
        if (r == 0)
            return fail(t, rt, FT_E_PROTOCOL, "unexpected EOF");
        if (r == FT_R_FAIL)
            return r;
        int w = body_wait(t, rt, slice_end);
        if (w != FT_R_DONE)
            return w;
    }
}

static ssize_t read_close_delimited(ft_transport *t, ft_rt *rt, char *dst, size_t n, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    for (;;) {
        size_t m = take_buffered(c, dst, n);
        if (m > 0)
            return (ssize_t)m;
        ssize_t r = body_recv(t, rt, dst, n);
        if (r > 0)
            return r;
        if (r == 0) {
            finish_body(t, rt);
            return 0;
        }
        if (r == FT_R_FAIL)
            return r;
        int w = body_wait(t, rt, slice_end);
        if (w != FT_R_DONE)
            return w;
    }
}

static int keep_trailer(ft_rt *rt, const char *block, size_t len, char *perr, size_t errcap)
{
    if (len == 0)
        return 0;
    rt->trailer = malloc(len);
    ft_header *hs = malloc(16 * sizeof *hs);
    if (!rt->trailer || !hs) {
        free(hs);
        snprintf(perr, errcap, "out of memory");
        return -1;
    }
    memcpy(rt->trailer, block, len);
    ft_head h;
    memset(&h, 0, sizeof h);
    h.headers = hs;
    h.cap = 16;
    int rc;
    while ((rc = ft_parse_fields(rt->trailer, 0, len, &h, perr, errcap)) == FT_PMORE) {
        size_t need = h.nheaders + 16;
        ft_header *nh = realloc(hs, need * sizeof *nh);
        if (!nh) {
            free(hs);
            snprintf(perr, errcap, "out of memory");
            return -1;
        }
        hs = nh;
        h.headers = hs;
        h.cap = need;
        h.nheaders = 0;
    }
    rt->thdrs = hs;
    rt->nthdrs = h.nheaders;
    return rc == FT_OK ? 0 : -1;
}

static ssize_t read_chunked(ft_transport *t, ft_rt *rt, char *dst, size_t n, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    char perr[256];
    for (;;) {
        size_t consumed = 0, doff = 0, dlen = 0;
        int r = ft_chunked_next(&rt->chunked, c->buf + c->rpos, c->wpos - c->rpos, n,
                                &consumed, &doff, &dlen, perr, sizeof perr);
        if (r == FT_PERR)
            return fail(t, rt, FT_E_PROTOCOL, "%s", perr);
        if (r == FT_CH_DATA) {
            memcpy(dst, c->buf + c->rpos + doff, dlen);
            c->rpos += consumed;
            if (ft_chunked_data_left(&rt->chunked) == 0 && c->rpos < c->wpos) {
                /* Is the terminator already here? Then this read returns the
                 * data with EOF and the connection is pooled now. */
                size_t c2 = 0, o2 = 0, l2 = 0;
                ft_chunked probe = rt->chunked;
                int r2 = ft_chunked_next(&probe, c->buf + c->rpos, c->wpos - c->rpos, 0,
                                         &c2, &o2, &l2, perr, sizeof perr);
                if (r2 == FT_CH_DONE) {
                    rt->chunked = probe;
                    if (keep_trailer(rt, c->buf + c->rpos + probe.trailer_off, probe.trailer_len,
                                     perr, sizeof perr) != 0)
                        return fail(t, rt, FT_E_PROTOCOL, "%s", perr);
                    c->rpos += c2;
                    finish_body(t, rt);
                }
            }
            return (ssize_t)dlen;
        }
        if (r == FT_CH_DONE) {
            if (keep_trailer(rt, c->buf + c->rpos + rt->chunked.trailer_off, rt->chunked.trailer_len,
                             perr, sizeof perr) != 0)
                return fail(t, rt, FT_E_PROTOCOL, "%s", perr);
            c->rpos += consumed;
            finish_body(t, rt);
            return 0;
        }
        /* FT_CH_MORE */
        c->rpos += consumed;
        uint64_t left = ft_chunked_data_left(&rt->chunked);
        if (c->rpos == c->wpos && left >= DIRECT_READ_MIN && n >= DIRECT_READ_MIN) {
            c->rpos = c->wpos = 0;
            size_t want = n < left ? n : (size_t)left;
            ssize_t got = body_recv(t, rt, dst, want);
            if (got > 0) {
                ft_chunked_took_data(&rt->chunked, (uint64_t)got);
                return got;
            }
            if (got == 0)
                return fail(t, rt, FT_E_PROTOCOL, "unexpected EOF");
            if (got == FT_R_FAIL)
                return got;
            int w = body_wait(t, rt, slice_end);
            if (w != FT_R_DONE)
                return w;
            continue;
        }
        int in_trailer = ft_chunked_in_trailer(&rt->chunked);
        ssize_t f = fill(t, rt, slice_end);
        if (f == 0)
            return fail(t, rt, FT_E_PROTOCOL,
                        in_trailer ? "http: unexpected EOF reading trailer" : "unexpected EOF");
        if (f < 0)
            return f;
    }
}

ssize_t ft_rt_read(ft_transport *t, ft_rt *rt, char *dst, size_t n, int slice_ms)
{
    switch (rt->phase) {
    case PH_BODY:
        break;
    case PH_EOF:
        return 0;
    case PH_CLOSED:
        set_err(rt, FT_E_PROTOCOL, "http: read on closed response body");
        return FT_R_FAIL;
    default:
        return FT_R_FAIL;   /* sticky error */
    }
    if (n == 0)
        return 0;
    int64_t now = ft_now_ns();
    if (rt->deadline && now >= rt->deadline)   /* even with bytes buffered (Go) */
        return fail(t, rt, FT_E_READ_TIMEOUT,
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)");
    int64_t slice_end = now + (int64_t)slice_ms * 1000000LL;
    switch (rt->framing.kind) {
    case FT_BODY_LENGTH:
        return read_length(t, rt, dst, n, slice_end);
    case FT_BODY_CHUNKED:
        return read_chunked(t, rt, dst, n, slice_end);
    case FT_BODY_CLOSE:
        return read_close_delimited(t, rt, dst, n, slice_end);
    default:
        finish_body(t, rt);
        return 0;
    }
}

void ft_rt_close(ft_transport *t, ft_rt *rt)
{
    ft_conn *c = rt->conn;
    if (rt->phase == PH_BODY && c && rt->framing.kind == FT_BODY_LENGTH && rt->reuse_ok
        && t->cfg.drain_limit > 0 && rt->body_left <= t->cfg.drain_limit) {
        /* Go tip's maybeDrainBody: what is buffered or already on the socket
         * is discarded now; the rest is left to the engine for 50 ms. */
        rt->conn = NULL;
        switch (ft_drain_readable(c, &rt->body_left)) {
        case FT_DRAIN_DONE:
            ft_pool_put(t, c);
            break;
        case FT_DRAIN_AGAIN:
            ft_drain_start(t, c, rt->body_left, ft_now_ns() + DRAIN_WINDOW_NS);
            break;
        default:
            ft_conn_destroy(t, c);
        }
    } else {
        if (rt->phase == PH_WAIT)
            ft_pool_cancel_want(t, &rt->want);
        release_conn(t, rt, 0);
    }
    if (rt->phase != PH_FAILED)
        rt->phase = PH_CLOSED;
}

void ft_rt_free(ft_rt *rt)
{
    if (rt->head_copy && rt->head_copy != rt->head_inline)
        free(rt->head_copy);
    rt->head_copy = NULL;
    if (rt->hdrs && rt->hdrs != rt->hdr_inline)
        free(rt->hdrs);
    rt->hdrs = rt->hdr_inline;
    rt->hdrs_cap = sizeof rt->hdr_inline / sizeof rt->hdr_inline[0];
    free(rt->trailer);
    rt->trailer = NULL;
    free(rt->thdrs);
    rt->thdrs = NULL;
    ft_want_free(&rt->want);
}
