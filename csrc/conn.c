/* conn.c - one exchange on a persist conn: the write loop (request head and
 * body) and the read loop (response head, body framing, the body's outcome),
 * as two state machines that progress independently (full duplex, as Go's
 * writeLoop and readLoop goroutines do). The thread that owns the connection
 * - here the caller's, with the GIL released - waits on both directions at
 * once and advances whichever is ready: a server may answer before the
 * upload is done (an early 401/413, an echo that streams the body back as it
 * reads it); the response is returned and the request body keeps flowing
 * during the body reads.
 *
 * The body's outcome decides the connection's fate (Go's bodyEOFSignal):
 *   read to EOF     -> pooled before the read that reached EOF returns, once
 *                      the request is written too (Go waits up to 50 ms for
 *                      the write, wroteRequest); else closed;
 *   closed early    -> a small known remainder is drained (now, or by the
 *                      engine for at most 50 ms) and the connection pooled;
 *                      otherwise closed;
 *   error/timeout   -> closed.
 * Other threads only ask (ft_rt_interrupt); see core.h. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

/* The exchange's phases: getting a connection (PH_START; PH_RESOLVE while
 * a resolver thread looks the host up; PH_WAIT), then the
 * read loop's states: waiting for the response head (RS_HEAD), in the body
 * (RS_BODY), response complete but the request still being written
 * (RS_SETTLE), done (RS_EOF); or over (PH_FAILED, PH_CLOSED). */
enum { PH_START = 0, PH_RESOLVE, PH_WAIT, RS_HEAD, RS_BODY, RS_SETTLE, RS_EOF, PH_FAILED,
       PH_CLOSED };

/* The write loop's states (see "write loop" below). */
enum { WS_HEAD = 0, WS_WAIT100, WS_BODY, WS_NEED, WS_DONE, WS_SKIP, WS_FAILED };

#define DIRECT_READ_MIN 16384    /* read straight into the caller's buffer from this size */
#define DRAIN_WINDOW_NS (50 * 1000000LL)
#define WRITE_WAIT_NS (50 * 1000000LL)  /* Go's maxWriteWaitBeforeConnReuse */
#define TAG_USE_BITS 40
#define BROKEN "net/http: HTTP/1.x transport connection broken: "

void ft_rt_init(ft_rt *rt)
{
    memset(rt, 0, offsetof(ft_rt, head_inline));
    rt->hdrs = rt->hdr_inline;
    rt->hdrs_cap = sizeof rt->hdr_inline / sizeof rt->hdr_inline[0];
    rt->framing.content_length = -1;
    rt->body_fd = -1;
    rt->body_file = -1;
}

int ft_rt_at_eof(const ft_rt *rt)
{
    return rt->phase == RS_EOF;
}

static void vset_err(ft_rt *rt, int code, const char *fmt, va_list ap)
{
    rt->err_code = code;
    vsnprintf(rt->err, sizeof rt->err, fmt, ap);
}

static void set_err(ft_rt *rt, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(ft_rt *rt, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(rt, code, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- ownership */

static uint64_t wake_tag(const ft_conn *c)
{
    return ((uint64_t)c->slot << TAG_USE_BITS) | (c->use_id & ((1ULL << TAG_USE_BITS) - 1));
}

/* The exchange stops using its connection (before it is pooled or closed):
 * from now on ft_rt_interrupt cannot reach it. */
static ft_conn *detach_conn(ft_rt *rt)
{
    ft_conn *c = rt->conn;
    __atomic_store_n(&rt->wake_tag, 0, __ATOMIC_RELEASE);
    rt->conn = NULL;
    return c;
}

/* The write loop ends (written, skipped or failed): no longer counted. */
static void write_end(ft_transport *t, ft_rt *rt, int state)
{
    rt->wstate = state;
    if (rt->wl_live) {
        rt->wl_live = 0;
        __atomic_fetch_sub(&t->write_loops, 1, __ATOMIC_RELAXED);
    }
}

/* Release the exchange's connection: pooled when the exchange allows it,
 * otherwise closed. */
static void release_conn(ft_transport *t, ft_rt *rt, int reusable)
{
    write_end(t, rt, rt->wstate <= WS_NEED ? WS_SKIP : rt->wstate);
    ft_conn *c = detach_conn(rt);
    if (!c)
        return;
    if (rt->upgraded)
        ft_conn_close_detached(c);
    else if (reusable)
        ft_pool_put(t, c);
    else
        ft_conn_destroy(t, c);
}

void ft_rt_interrupt(ft_transport *t, ft_rt *rt, int why)
{
    int none = FT_INTR_NONE;
    __atomic_compare_exchange_n(&rt->intr, &none, why, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    uint64_t tag = __atomic_load_n(&rt->wake_tag, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&t->mu);
    if (tag) {
        /* Still the same use of the same connection? Then its owner is in
         * (or about to enter) a wait on it: shutdown() ends that wait. The
         * owner closes the socket only after leaving FT_CS_ACTIVE under mu. */
        uint32_t slot = (uint32_t)(tag >> TAG_USE_BITS);
        ft_conn *c = slot < t->nslots ? t->slots[slot] : NULL;
        if (c && c->state == FT_CS_ACTIVE && c->fd >= 0
            && (c->use_id & ((1ULL << TAG_USE_BITS) - 1)) == (tag & ((1ULL << TAG_USE_BITS) - 1)))
            shutdown(c->fd, SHUT_RDWR);
    }
    /* an engine runs it: wake the job */
    if (rt->job)
        ft_job_schedule_locked(rt->job);
    /* waiting for a connection: wake its condition (guarded by mu) */
    else if (rt->want.cond_ready && rt->want.queued && !rt->want.done)
        pthread_cond_signal(&rt->want.cond);
    pthread_mutex_unlock(&t->mu);
}

static int fail(ft_transport *t, ft_rt *rt, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reclaim(ft_transport *t, ft_rt *rt);

/* Has another thread asked the owner to stop? Then the exchange fails now
 * (connection closed) and this returns 1. */
static int interrupted(ft_transport *t, ft_rt *rt)
{
    switch (__atomic_load_n(&rt->intr, __ATOMIC_ACQUIRE)) {
    case FT_INTR_NONE:
        return 0;
    case FT_INTR_CANCEL:
        fail(t, rt, FT_E_CANCELLED, "context canceled");
        return 1;
    default:
        fail(t, rt, FT_E_PROTOCOL, "http: read on closed response body");
        return 1;
    }
}

/* The exchange fails with the error already in rt->err_code / rt->err: the
 * connection is closed. */
static int fail_set(ft_transport *t, ft_rt *rt)
{
    if (rt->phase == PH_WAIT)
        ft_pool_cancel_want(t, &rt->want);
    ft_dns_release(rt->dns);
    rt->dns = NULL;
    release_conn(t, rt, 0);
    rt->phase = PH_FAILED;
    return FT_R_FAIL;
}

static int fail(ft_transport *t, ft_rt *rt, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(rt, code, fmt, ap);
    va_end(ap);
    return fail_set(t, rt);
}

void ft_rt_abort(ft_transport *t, ft_rt *rt, int code, const char *msg)
{
    reclaim(t, rt);
    /* after EOF, cancelling has no effect */
    if (rt->phase == PH_FAILED || rt->phase == PH_CLOSED || rt->phase == RS_EOF)
        return;
    fail(t, rt, code, "%s", msg);
}

/* ---------------------------------------------------------------- write loop */

/* The write loop's states. The head goes first; with Expect: 100-continue
 * the body waits for "100 Continue" or expect_continue_timeout (Go's
 * waitForContinue); a streamed body arrives segment by segment from the
 * caller (WS_NEED: FT_R_NEED_BODY). It ends written (WS_DONE), skipped
 * (WS_SKIP: the response said close before the body went) or failed. */
enum { WL_BLOCKED = 0, WL_DONE, WL_ERR, WL_NEED, WL_WAIT100, WL_FAIL };

#define STAGE_SIZE 65536

/* The body's source failed: the write loop ends with the error in rt->err;
 * the owner fails the exchange with it (push_write), so that a write step
 * - perhaps on the engine - never releases the connection itself. */
static int body_failed(ft_transport *t, ft_rt *rt)
{
    rt->body_failed = 1;
    write_end(t, rt, WS_FAILED);
    return -1;
}

/* A file body: the next piece into the stage once the last one is sent.
 * 0, or -1 when the file could not be read, or holds fewer or more bytes
 * than its declared length (Go's texts). */
static int refill_from_file(ft_transport *t, ft_rt *rt)
{
    if (rt->body_file < 0 || rt->body_off < rt->body_len || rt->file_left == 0)
        return 0;
    if (!rt->stage && !(rt->stage = malloc(STAGE_SIZE))) {
        set_err(rt, FT_E_NOMEM, "out of memory");
        return body_failed(t, rt);
    }
    size_t want = rt->file_left < STAGE_SIZE ? (size_t)rt->file_left : STAGE_SIZE;
    ssize_t got;
    do {
        got = pread(rt->body_file, rt->stage, want, (off_t)rt->file_off);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        char ebuf[160];
        set_err(rt, FT_E_BODY, "read request body: %s", ft_errstr(errno, ebuf, sizeof ebuf));
        return body_failed(t, rt);
    }
    rt->file_off += (uint64_t)got;
    rt->file_left -= (uint64_t)got;
    char extra;
    if (got == 0 || (rt->file_left == 0 && pread(rt->body_file, &extra, 1, (off_t)rt->file_off) > 0)) {
        /* the file shrank or grew since its size was taken */
        set_err(rt, FT_E_BODY, "http: ContentLength=%llu with Body length %llu",
                (unsigned long long)rt->file_len,
                (unsigned long long)(rt->file_len - rt->file_left + (got ? 1 : 0)));
        return body_failed(t, rt);
    }
    rt->body = rt->stage;
    rt->body_len = (size_t)got;
    rt->body_off = 0;
    return 0;
}

/* Has the write loop bytes it could send now? */
static int writing(const ft_rt *rt)
{
    return rt->wstate == WS_HEAD || rt->wstate == WS_BODY;
}

/* Is the request not completely written yet (and still may be)? */
static int write_pending(const ft_rt *rt)
{
    return rt->wstate <= WS_NEED;
}

/* ft.Timeout's read and write parts: when the exchange has stalled too
 * long (0 = never). Writing counts while the write loop has bytes to send,
 * reading otherwise. */
static int64_t stall_at(const ft_rt *rt)
{
    if (writing(rt))
        return rt->write_to ? rt->last_out + rt->write_to : 0;
    if (rt->wstate == WS_NEED)
        return 0;              /* the caller's body source is slow, not the network */
    return rt->read_to ? rt->last_in + rt->read_to : 0;
}

void ft_rt_read_begins(ft_rt *rt)
{
    if (rt->read_to)
        rt->last_in = ft_now_ns();
}

static int fail_stall(ft_transport *t, ft_rt *rt)
{
    if (writing(rt))
        return fail(t, rt, FT_E_WRITE_TIMEOUT, "write timeout: nothing sent for %.3gs",
                    (double)rt->write_to / 1e9);
    return fail(t, rt, FT_E_READ_TIMEOUT, "read timeout: nothing received for %.3gs",
                (double)rt->read_to / 1e9);
}

static void got_bytes(ft_rt *rt)
{
    if (rt->read_to)
        rt->last_in = ft_now_ns();
}

int ft_rt_writing(const ft_rt *rt)
{
    return rt->conn != NULL && write_pending(rt);
}

void ft_rt_set_body(ft_rt *rt, const char *seg, size_t len, int more)
{
    rt->body = seg;
    rt->body_len = len;
    rt->body_off = 0;
    rt->body_more = more;
    rt->body_wait = 0;
    if (rt->wstate == WS_NEED)
        rt->wstate = WS_BODY;
}

void ft_rt_wait_body(ft_rt *rt)
{
    rt->body_wait = rt->body_fd >= 0;
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
    if (rt->read_to | rt->write_to)
        rt->last_in = rt->last_out = ft_now_ns();
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

/* The write loop's step: advance until blocked (WL_BLOCKED), done, failed
 * (rt->write_errno), waiting for the caller's next segment (WL_NEED) or for
 * 100 Continue (WL_WAIT100). Never blocks. */
static int write_step(ft_transport *t, ft_rt *rt)
{
    if (rt->wstate == WS_WAIT100) {
        if (ft_now_ns() < rt->continue_deadline)
            return WL_WAIT100;
        rt->wstate = WS_BODY;        /* no 100 Continue in time: send anyway */
    }
    if (rt->wstate == WS_NEED)
        return WL_NEED;
    if (!writing(rt))
        return rt->wstate != WS_FAILED ? WL_DONE : rt->body_failed ? WL_FAIL : WL_ERR;
    for (;;) {
        if ((rt->wstate == WS_BODY || !rt->expect_continue) && refill_from_file(t, rt) != 0)
            return WL_FAIL;
        struct iovec iov[2];
        int n = pieces(rt, iov);
        if (n == 0) {
            /* what was allowed is written: next state */
            if (rt->wstate == WS_HEAD && rt->expect_continue
                && rt->body_len + rt->body_more + rt->file_left > 0) {
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
            write_end(t, rt, WS_DONE);
            /* Go: the response-header timer starts once the request, body
             * included, is written */
            if (t->cfg.response_header_timeout > 0 && rt->phase == RS_HEAD)
                rt->header_deadline = ft_now_ns() + t->cfg.response_header_timeout;
            return WL_DONE;
        }
        ssize_t w = send_pieces(rt->conn, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return WL_BLOCKED;
            rt->write_errno = errno;
            write_end(t, rt, WS_FAILED);
            return WL_ERR;
        }
        advance(rt, (size_t)w);
    }
}

/* ---------------------------------------------------------------- parked writes */

void ft_rt_park(ft_transport *t, ft_rt *rt)
{
    ft_conn *c = rt->conn;
    if (!c || rt->upgraded || !writing(rt) || rt->body_more
        || (rt->phase != RS_BODY && rt->phase != RS_SETTLE))
        return;
    pthread_mutex_lock(&t->mu);
    if (!t->closed && ft_conn_watch(c, 1) == 0) {
        c->parked = rt;
        rt->is_parked = 1;
    }
    pthread_mutex_unlock(&t->mu);
}

int ft_rt_parked_step(ft_transport *t, ft_rt *rt)
{
    int w = write_step(t, rt);
    /* (TLS that wants to read first: left to the owner) */
    return w != WL_BLOCKED || (rt->conn->ssl && !rt->conn->want_write);
}

/* The owner is back: take the write back from the engine (waiting out a
 * step in progress). Every entry point of the owner calls this first. */
static void reclaim(ft_transport *t, ft_rt *rt)
{
    ft_conn *c = rt->conn;
    if (!rt->is_parked || !c)
        return;
    pthread_mutex_lock(&t->mu);
    while (c->park_busy)
        pthread_cond_wait(&t->park_cond, &t->mu);
    if (c->parked) {
        c->parked = NULL;
        if (t->closed)
            c->registered = 0;     /* the engines and their sets are gone */
        else
            ft_conn_unwatch(c);
    }
    pthread_mutex_unlock(&t->mu);
    rt->is_parked = 0;
}

/* ---------------------------------------------------------------- waiting */

/* Wait, up to `until`, for the connection to be readable (want_in) or
 * writable for the write loop, or for the caller's next body segment
 * (body_fd). Returns poll's revents for the socket (0 if none), or
 * FT_R_FAIL when another thread interrupted the exchange (rt failed).
 * *body_ready is set when body_fd became readable (its count consumed). */
static int wait_io(ft_transport *t, ft_rt *rt, int want_in, int64_t until, int *body_ready)
{
    ft_conn *c = rt->conn;
    struct pollfd p[2];
    int n = 1;
    p[0].fd = c->fd;
    p[0].events = (short)((want_in ? POLLIN : 0) | (writing(rt) || c->want_write ? POLLOUT : 0));
    p[0].revents = 0;
    if (rt->wstate == WS_NEED && rt->body_wait) {
        p[1].fd = rt->body_fd;
        p[1].events = POLLIN;
        p[1].revents = 0;
        n = 2;
    }
    int r = poll(p, (nfds_t)n, ft_ms_until(until, ft_now_ns(), -1));
    if (interrupted(t, rt))
        return FT_R_FAIL;
    if (r <= 0)
        return 0;
    if (n == 2 && p[1].revents) {
        uint64_t v;
        ssize_t k = read(rt->body_fd, &v, sizeof v);
        (void)k;
        rt->body_wait = 0;
        if (body_ready)
            *body_ready = 1;
    }
    return p[0].revents;
}

/* Advance the write loop by what the socket takes now: 0, FT_R_NEED_BODY
 * (it wants the caller's next segment, and has not said so already while
 * it waits for body_fd) or FT_R_FAIL (the exchange failed). */
static int push_write(ft_transport *t, ft_rt *rt)
{
    int w = write_step(t, rt);
    if (w == WL_FAIL)
        return fail_set(t, rt);
    if (w == WL_NEED && !rt->body_wait)
        return FT_R_NEED_BODY;
    return 0;
}

/* The fast path's receive: a caller whose exchange waits for nothing but
 * the next bytes from a plain connection waits in recv itself (bounded by
 * SO_RCVTIMEO, FT_RCVTIMEO_NS) instead of poll and then recv: one system
 * call per response instead of two. Ctrl-C and a CancelToken are seen
 * within that time (ft_rt_interrupt's shutdown ends the wait at once). */
#define FT_RCVTIMEO_NS 10000000LL

static int may_block(const ft_rt *rt, int64_t now, int64_t until)
{
    const ft_conn *c = rt->conn;
    return c->blocking && !rt->nowait && !writing(rt) && rt->wstate != WS_NEED && !c->want_write
           && until - now >= FT_RCVTIMEO_NS;
}

/* A connection a caller reuses becomes blocking (once: two system calls);
 * churn (one request per connection) and TLS in TLS keep the poll path. */
static void make_blocking(ft_conn *c)
{
    struct timeval tv = { 0, FT_RCVTIMEO_NS / 1000 };
    if (c->blocking || (c->ssl && !ft_tls_fast_path(c->ssl)))
        return;
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0
        && fcntl(c->fd, F_SETFL, O_RDWR) == 0)
        c->blocking = 1;
}

/* recv with EINTR retried: bytes, 0 at EOF, or -1 with errno EAGAIN (none
 * yet, or SO_RCVTIMEO ran out) or another errno (its text in ebuf). */
static ssize_t sock_recv(int fd, char *buf, size_t n, int flags, char *ebuf, size_t ecap)
{
    for (;;) {
        ssize_t r = recv(fd, buf, n, flags);
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

static ssize_t rt_recv(ft_rt *rt, char *buf, size_t n, char *ebuf, size_t ecap)
{
    ft_conn *c = rt->conn;
    if (!rt->block_next)
        return ft_conn_recv(c, buf, n, ebuf, ecap);
    rt->block_next = 0;
    if (c->ssl) {
        ft_tls_block_next(c->ssl, 1);
        ssize_t r = ft_conn_recv(c, buf, n, ebuf, ecap);
        ft_tls_block_next(c->ssl, 0);
        return r;
    }
    return sock_recv(c->fd, buf, n, 0, ebuf, ecap);
}

ssize_t ft_conn_recv(ft_conn *c, char *buf, size_t n, char *ebuf, size_t ecap)
{
    if (c->ssl)
        return ft_tls_read(c->ssl, buf, n, &c->want_write, ebuf, ecap);
    return sock_recv(c->fd, buf, n, MSG_DONTWAIT, ebuf, ecap);
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

/* Is header `name` (lower case) equal, ignoring case, to h? */
static int header_is(const ft_rt *rt, const ft_header *h, const char *name)
{
    size_t n = strlen(name);
    return !(h->flags & FT_HDR_DELETED) && h->name_len == n
           && strncasecmp(rt->head_copy + h->name_off, name, n) == 0;
}

/* Go's isProtocolSwitchHeader: an Upgrade value, and a Connection header
 * listing the token "upgrade". */
static int is_protocol_switch(const ft_rt *rt)
{
    int upgrade = 0, conn_upgrade = 0;
    for (size_t i = 0; i < rt->nhdrs; i++) {
        const ft_header *h = &rt->hdrs[i];
        const char *v = rt->head_copy + h->value_off;
        if (header_is(rt, h, "upgrade") && h->value_len > 0)
            upgrade = 1;
        if (!header_is(rt, h, "connection"))
            continue;
        for (size_t j = 0; j < h->value_len;) {
            while (j < h->value_len && (v[j] == ' ' || v[j] == '\t' || v[j] == ','))
                j++;
            size_t k = j;
            while (k < h->value_len && v[k] != ',' && v[k] != ' ' && v[k] != '\t')
                k++;
            if (k - j == 7 && strncasecmp(v + j, "upgrade", 7) == 0)
                conn_upgrade = 1;
            j = k;
        }
    }
    return upgrade && conn_upgrade;
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
    /* Go's persistConn reuse conditions for the request/response pair.
     * The request write must have finished (checked when the head is
     * returned); the body's outcome is applied in settle / ft_rt_close. */
    rt->reuse_ok = !rt->framing.close && !rt->req_close && !t->cfg.disable_keep_alives
                   && rt->status != 101;
    if (rt->status == 101 && is_protocol_switch(rt)) {
        /* the body is the connection itself, both ways (Go's
         * readWriteCloserBody), buffered bytes first */
        rt->upgraded = 1;
        rt->framing.kind = FT_BODY_CLOSE;
    }
    if (rt->wstate == WS_WAIT100) {
        /* a final response while the body waits for 100 Continue (Go's
         * waitForContinue): the body is skipped if either side says close,
         * otherwise it is sent, so that the connection stays in step */
        if (rt->framing.close || rt->req_close)
            write_end(t, rt, WS_SKIP);
        else
            rt->wstate = WS_BODY;
    }
    /* Otherwise a request still being written keeps flowing while the
     * response is read (full duplex); the connection is reused only if the
     * write finishes (settle). */
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

/* The response is complete (its last byte consumed). The connection may be
 * pooled once the request is written too: Go waits up to 50 ms for the
 * write (wroteRequest), and so does the write loop here, segments included.
 * FT_R_DONE when settled (RS_EOF, connection released), FT_R_AGAIN at the
 * slice end, FT_R_NEED_BODY, FT_R_FAIL (interrupted). */
static int settle(ft_transport *t, ft_rt *rt, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    rt->phase = RS_SETTLE;
    int keep = rt->reuse_ok && c && c->rpos == c->wpos;
    while (keep && write_pending(rt)) {
        int64_t now = ft_now_ns();
        if (!rt->settle_until)
            rt->settle_until = now + WRITE_WAIT_NS;
        int w = push_write(t, rt);
        if (w != 0)
            return w;
        if (!write_pending(rt))
            break;
        now = ft_now_ns();
        if (now >= rt->settle_until) {
            keep = 0;              /* not written in time: not reused */
            break;
        }
        if (now >= slice_end)
            return FT_R_AGAIN;
        int64_t until = rt->settle_until < slice_end ? rt->settle_until : slice_end;
        if (wait_io(t, rt, 0, until, NULL) == FT_R_FAIL)
            return FT_R_FAIL;
    }
    rt->phase = RS_EOF;
    release_conn(t, rt, keep && rt->wstate == WS_DONE);
    return FT_R_DONE;
}

/* The body's last byte was consumed by a read that returns data: settle
 * now if that needs no waiting; otherwise the next read settles (and
 * returns EOF). */
static void body_done(ft_transport *t, ft_rt *rt)
{
    if (!write_pending(rt) || !rt->reuse_ok)
        settle(t, rt, 0);
    else
        rt->phase = RS_SETTLE;
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

/* ---------------------------------------------------------------- read loop: head */

enum { RL_BLOCKED = 0, RL_HEAD, RL_FAIL };

/* The read loop's step while it waits for the response head: parse what is
 * buffered, receive more, skip 1xx. RL_HEAD when the final head is parsed,
 * RL_BLOCKED when the socket has nothing more now, RL_FAIL (rt failed).
 * Never blocks. */
static int read_head_step(ft_transport *t, ft_rt *rt)
{
    ft_conn *c = rt->conn;
    char ebuf[160];
    size_t limit = t->cfg.max_response_header_bytes;
    for (;;) {
        if (c->rpos < c->wpos) {
            size_t hl = ft_find_head_end(c->buf + c->rpos, c->wpos - c->rpos, &rt->scan);
            if (hl) {
                if (rt->head_budget_used + hl > limit)
                    goto too_big;
                int r = on_head(t, rt, hl);
                if (r < 0)
                    return RL_FAIL;
                if (r > 0)
                    return RL_HEAD;
                continue;   /* 1xx skipped: look at what follows */
            }
            if (rt->head_budget_used + (c->wpos - c->rpos) > limit)
                goto too_big;
            if (!rt->status_line_ok && check_status_line(t, rt) != 0)
                return RL_FAIL;
        }
        size_t room = make_room(t, c, limit - rt->head_budget_used + 1);
        if (room == 0)
            goto too_big;
        ssize_t n = rt_recv(rt, c->buf + c->wpos, room, ebuf, sizeof ebuf);
        if (n > 0) {
            c->wpos += (size_t)n;
            rt->got_response_bytes = 1;
            got_bytes(rt);
            continue;
        }
        if (interrupted(t, rt))    /* the socket was shut down to wake us */
            return RL_FAIL;
        if (n == 0) {
            int we = rt->write_errno;
            if (rt->got_response_bytes)
                fail(t, rt, FT_E_PROTOCOL, BROKEN "unexpected EOF");
            else if (we && we != EPIPE && we != ECONNRESET)
                fail(t, rt, FT_E_PROTOCOL, "write: %s", ft_errstr(we, ebuf, sizeof ebuf));
            else
                fail(t, rt, FT_E_PROTOCOL, "EOF");
            return RL_FAIL;
        }
        if (errno != EAGAIN) {
            /* a TLS alert (say, the server refused our certificate) */
            int code = c->ssl && errno == EPROTO ? FT_E_TLS : FT_E_PROTOCOL;
            if (rt->got_response_bytes)
                fail(t, rt, code, BROKEN "read: %s", ebuf);
            else
                fail(t, rt, code, "read: %s", ebuf);
            return RL_FAIL;
        }
        return RL_BLOCKED;
    }
too_big:
    fail(t, rt, FT_E_PROTOCOL, BROKEN "net/http: server response headers exceeded %zu bytes; aborted",
         limit);
    return RL_FAIL;
}

/* Run both loops until the response head is in (FT_R_DONE; the request may
 * still be being written), the exchange failed, the write loop needs the
 * caller's next segment (FT_R_NEED_BODY) or the slice ends (FT_R_AGAIN). */
static int run_until_head(ft_transport *t, ft_rt *rt, int64_t slice_end)
{
    ft_conn *c = rt->conn;
    /* leftover bytes? parse them first; an engine (nowait) looks when the
     * connection woke it (not right after writing the request) */
    int readable = c->rpos < c->wpos || (rt->nowait && rt->ev_in);
    for (;;) {
        if (interrupted(t, rt))
            return FT_R_FAIL;
        int w = push_write(t, rt);
        if (w != 0)
            return w;
        if (readable) {
            int r = read_head_step(t, rt);
            rt->block_next = 0;
            if (r == RL_FAIL)
                return FT_R_FAIL;
            if (r == RL_HEAD)
                return FT_R_DONE;
            readable = 0;
        }
        /* wait for the socket, the next segment, a deadline, or the end of
         * this slice */
        int64_t now = ft_now_ns();
        if (rt->deadline && now >= rt->deadline)
            return fail(t, rt, FT_E_READ_TIMEOUT,
                        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
        if (rt->header_deadline && now >= rt->header_deadline)
            return fail(t, rt, FT_E_HEADER_TIMEOUT, "net/http: timeout awaiting response headers");
        int64_t stall = stall_at(rt);
        if (stall && now >= stall)
            return fail_stall(t, rt);
        if (now >= slice_end)
            return FT_R_AGAIN;
        int64_t until = slice_end;
        if (rt->deadline && rt->deadline < until)
            until = rt->deadline;
        if (rt->header_deadline && rt->header_deadline < until)
            until = rt->header_deadline;
        if (stall && stall < until)
            until = stall;
        if (rt->wstate == WS_WAIT100 && rt->continue_deadline < until)
            until = rt->continue_deadline;
        if (may_block(rt, now, until)) {
            rt->block_next = readable = 1;    /* wait in the receive itself */
            continue;
        }
        int body_ready = 0;
        int rev = wait_io(t, rt, 1, until, &body_ready);
        if (rev == FT_R_FAIL)
            return FT_R_FAIL;
        if (rev & (POLLIN | POLLERR | POLLHUP))
            readable = 1;
        if (body_ready)
            return FT_R_NEED_BODY;
    }
}

/* The exchange got its connection (idle, handed over, or dialed for it). */
static int start_exchange(ft_transport *t, ft_rt *rt, ft_conn *c)
{
    rt->conn = c;
    rt->conn_reused = c->reused;
    rt->phase = RS_HEAD;
    if (c->reused && !rt->nowait && !c->blocking)
        make_blocking(c);
    if (rt->read_to | rt->write_to)
        rt->last_in = rt->last_out = ft_now_ns();
    rt->wl_live = 1;
    __atomic_fetch_add(&t->write_loops, 1, __ATOMIC_RELAXED);
    /* from here ft_rt_interrupt can wake us through the socket */
    __atomic_store_n(&rt->wake_tag, wake_tag(c), __ATOMIC_RELEASE);
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

/* ft.Timeout's connect and pool parts while waiting for a connection: the
 * one that applies now (our dial in flight: connect; else a free slot:
 * pool), 0 = none. A part that no longer applies is dropped, so that it
 * never wakes the wait again. */
static int64_t phase_deadline(ft_transport *t, ft_rt *rt, int64_t now)
{
    if (!rt->conn_deadline && !rt->pool_deadline)
        return 0;
    pthread_mutex_lock(&t->mu);
    int own_dial = rt->want.dial != NULL;
    pthread_mutex_unlock(&t->mu);
    if (own_dial) {
        if (rt->pool_deadline && now >= rt->pool_deadline)
            rt->pool_deadline = 0;
        return rt->conn_deadline;
    }
    if (rt->conn_deadline && now >= rt->conn_deadline)
        rt->conn_deadline = 0;
    return rt->pool_deadline;
}

static int fail_phase_timeout(ft_transport *t, ft_rt *rt, int64_t at)
{
    if (at == rt->conn_deadline)
        return fail(t, rt, FT_E_CONNECT_TIMEOUT, "dial tcp %s:%d: i/o timeout (connect timeout %.3gs)",
                    rt->host, rt->port, (double)rt->connect_to / 1e9);
    return fail(t, rt, FT_E_POOL_TIMEOUT,
                "timed out waiting for a connection to %s (max_conns_per_host=%d, pool timeout %.3gs)",
                rt->key, t->cfg.max_conns_per_host, (double)rt->pool_to / 1e9);
}

/* The host's addresses are in rt->want: a connection now (an idle one
 * after all), or wait for one (PH_WAIT; our dial starts). 0, or FT_R_FAIL
 * (rt failed). */
static int queue_for_conn(ft_transport *t, ft_rt *rt)
{
    ft_conn *c = NULL;
    int q = ft_pool_queue(t, rt->key, &rt->want, &c, rt->job ? rt->job->io : NULL);
    if (q < 0)
        return fail(t, rt, FT_E_CLOSED, "transport is closed");
    if (q == 0) {
        rt->phase = PH_WAIT;
        if (rt->pool_to)
            rt->pool_deadline = ft_now_ns() + rt->pool_to;
        return 0;
    }
    return start_exchange(t, rt, c);
}

/* Has a job's want been served? (An engine never waits on the condition:
 * the delivery schedules the job.) */
static int want_done(ft_transport *t, ft_want *w)
{
    pthread_mutex_lock(&t->mu);
    int done = w->done;
    pthread_mutex_unlock(&t->mu);
    return done;
}

int ft_rt_wait_events(const ft_rt *rt, int reading, int64_t *wake)
{
    int64_t w = rt->deadline;
#define SOONER(x) do { if ((x) && (w == 0 || (x) < w)) w = (x); } while (0)
    int ev = 0;
    if (rt->phase == PH_RESOLVE)
        SOONER(rt->dns_deadline);
    if (rt->phase == PH_WAIT) {
        SOONER(rt->conn_deadline);
        SOONER(rt->pool_deadline);
    }
    if (rt->conn) {
        if (rt->phase == RS_HEAD || rt->phase == RS_BODY)
            ev |= 1;
        if (writing(rt) || rt->conn->want_write)
            ev |= 2;
        SOONER(rt->header_deadline);
        if (rt->wstate == WS_WAIT100)
            SOONER(rt->continue_deadline);
        if (rt->phase == RS_SETTLE)
            SOONER(rt->settle_until);
        if ((rt->phase == RS_HEAD || rt->phase == RS_BODY) && (reading || writing(rt)))
            SOONER(stall_at(rt));
    }
#undef SOONER
    *wake = w;
    return ev;
}

int ft_rt_run(ft_transport *t, ft_rt *rt, int slice_ms)
{
    reclaim(t, rt);
    int64_t slice_end = ft_now_ns() + (int64_t)slice_ms * 1000000LL;
    for (;;) {
        switch (rt->phase) {
        case PH_START: {
            ft_io *keep = rt->job ? rt->job->io : NULL;
            ft_conn *c = ft_pool_take_idle(t, rt->key, keep);
            if (!c) {
                /* none idle: the host's addresses (an IP literal at once, a
                 * name from a resolver thread, PH_RESOLVE), then wait for a
                 * connection - ours from a dial, or one released first */
                char rerr[sizeof rt->err];
                rt->want.host = rt->tls_host ? rt->tls_host : rt->host;
                rt->want.tls = rt->tls;
                rt->want.tunnel = rt->tunnel;
                rt->want.tunnel_auth = rt->tunnel_auth;
                rt->want.hop = rt->hop.socks || rt->hop.proxy_tls ? &rt->hop : NULL;
                rt->want.job = rt->job;
                if (rt->connect_to)
                    rt->conn_deadline = ft_now_ns() + rt->connect_to;
                if (!ft_host_is_numeric(rt->host)) {
                    rt->dns = ft_dns_start(rt->host, rt->port,
                                           rt->job ? ft_job_wake : NULL, rt->job);
                    if (rt->dns) {
                        rt->phase = PH_RESOLVE;
                        rt->dns_deadline = t->cfg.dial_timeout > 0
                                               ? ft_now_ns() + t->cfg.dial_timeout : 0;
                        if (rt->conn_deadline && (!rt->dns_deadline
                                                  || rt->conn_deadline < rt->dns_deadline))
                            rt->dns_deadline = rt->conn_deadline;
                        break;
                    }
                }
                /* an IP literal, or no resolver thread could start */
                if (ft_resolve(rt->host, rt->port, &rt->want.addrs, rerr, sizeof rerr) != 0)
                    return fail(t, rt, FT_E_CONNECT, "%s", rerr);
                if (queue_for_conn(t, rt) != 0)
                    return FT_R_FAIL;
                break;
            }
            if (start_exchange(t, rt, c) != 0)
                return FT_R_FAIL;
            break;
        }
        case PH_RESOLVE: {
            int64_t until = slice_end;
            if (rt->deadline && rt->deadline < until)
                until = rt->deadline;
            if (rt->dns_deadline && rt->dns_deadline < until)
                until = rt->dns_deadline;
            int done = rt->nowait ? ft_dns_done(rt->dns) : ft_dns_wait(rt->dns, until);
            if (!done) {
                if (interrupted(t, rt))
                    return FT_R_FAIL;
                int64_t now = ft_now_ns();
                if (rt->deadline && now >= rt->deadline)
                    return fail(t, rt, FT_E_CONNECT_TIMEOUT,
                                "context deadline exceeded (Client.Timeout exceeded while "
                                "awaiting headers)");
                if (rt->dns_deadline && now >= rt->dns_deadline)
                    return fail(t, rt, FT_E_CONNECT_TIMEOUT, "dial tcp: lookup %s: i/o timeout",
                                rt->host);
                return FT_R_AGAIN;
            }
            char rerr[sizeof rt->err];
            int rc = ft_dns_take(rt->dns, &rt->want.addrs, rerr, sizeof rerr);
            ft_dns_release(rt->dns);
            rt->dns = NULL;
            if (rc != 0)
                return fail(t, rt, FT_E_CONNECT, "%s", rerr);
            if (queue_for_conn(t, rt) != 0)
                return FT_R_FAIL;
            break;
        }
        case PH_WAIT: {
            int64_t until = slice_end;
            if (rt->deadline && rt->deadline < until)
                until = rt->deadline;
            int64_t part = phase_deadline(t, rt, ft_now_ns());
            if (part && part < until)
                until = part;
            if (rt->nowait ? !want_done(t, &rt->want) : !ft_pool_wait(t, &rt->want, until)) {
                if (interrupted(t, rt))
                    return FT_R_FAIL;
                int64_t now = ft_now_ns();
                if (rt->deadline && now >= rt->deadline)
                    return fail_wait_timeout(t, rt);
                part = phase_deadline(t, rt, now);
                if (part && now >= part)
                    return fail_phase_timeout(t, rt, part);
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
        case RS_HEAD: {
            int r = run_until_head(t, rt, slice_end);
            if (r != FT_R_DONE)
                return r;   /* FT_R_AGAIN, FT_R_FAIL or FT_R_NEED_BODY */
            if (rt->upgraded) {
                /* off the transport's books for good; the rest of a request
                 * body, if any, is not sent */
                if (write_pending(rt))
                    write_end(t, rt, WS_SKIP);
                ft_conn_detach(t, rt->conn);
                __atomic_store_n(&rt->wake_tag, 0, __ATOMIC_RELEASE);
            }
            if (rt->framing.kind != FT_BODY_NONE) {
                rt->phase = RS_BODY;
                return FT_R_DONE;
            }
            /* no body: the connection goes back before the caller sees the
             * response (TestTransportReuseConnEmptyResponseBody), once the
             * request is written (up to 50 ms more) */
            rt->phase = RS_SETTLE;
            break;
        }
        case RS_SETTLE:
            return settle(t, rt, slice_end);
        case PH_FAILED:
            return FT_R_FAIL;
        default:
            return FT_R_DONE;
        }
    }
}

/* ---------------------------------------------------------------- body */

/* Nothing to read now: advance the write loop, then wait until the
 * connection is readable (or writable for a pending request body).
 * FT_R_DONE to try reading again, FT_R_AGAIN at the slice end,
 * FT_R_NEED_BODY, FT_R_FAIL on the deadline or an interrupt. */
static int body_wait(ft_transport *t, ft_rt *rt, int64_t slice_end)
{
    int64_t now = ft_now_ns();
    if (rt->deadline && now >= rt->deadline)
        return fail(t, rt, FT_E_READ_TIMEOUT,
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)");
    if (write_pending(rt)) {
        int w = push_write(t, rt);
        if (w != 0)
            return w;
    }
    int64_t stall = stall_at(rt);
    if (stall && now >= stall)
        return fail_stall(t, rt);
    if (now >= slice_end)
        return FT_R_AGAIN;
    int64_t until = slice_end;
    if (rt->deadline && rt->deadline < until)
        until = rt->deadline;
    if (stall && stall < until)
        until = stall;
    if (may_block(rt, now, until)) {
        rt->block_next = 1;              /* the next receive waits itself */
        return FT_R_DONE;
    }
    int body_ready = 0;
    if (wait_io(t, rt, 1, until, &body_ready) == FT_R_FAIL)
        return FT_R_FAIL;
    return body_ready ? FT_R_NEED_BODY : FT_R_DONE;
}

/* recv into dst; >0 bytes, 0 EOF, FT_R_AGAIN if none yet, FT_R_FAIL on error */
static ssize_t body_recv(ft_transport *t, ft_rt *rt, char *dst, size_t n)
{
    char ebuf[160];
    ssize_t r = rt_recv(rt, dst, n, ebuf, sizeof ebuf);
    if (r > 0)
        got_bytes(rt);
    else if (interrupted(t, rt))     /* the socket was shut down to wake us */
        return FT_R_FAIL;
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
                body_done(t, rt);
            return (ssize_t)m;
        }
        ssize_t r;
        if (n >= DIRECT_READ_MIN) {
            r = body_recv(t, rt, dst, n);
            if (r > 0) {
                rt->body_left -= (uint64_t)r;
                if (rt->body_left == 0)
                    body_done(t, rt);
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
        if (r == 0)   /* EOF (0) once settled; an upgraded stream may still write */
            return rt->upgraded ? 0 : settle(t, rt, slice_end);
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
                    body_done(t, rt);
                }
            }
            return (ssize_t)dlen;
        }
        if (r == FT_CH_DONE) {
            if (keep_trailer(rt, c->buf + c->rpos + rt->chunked.trailer_off, rt->chunked.trailer_len,
                             perr, sizeof perr) != 0)
                return fail(t, rt, FT_E_PROTOCOL, "%s", perr);
            c->rpos += consumed;
            return settle(t, rt, slice_end);   /* EOF (0) once settled */
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

/* The body is longer than rt->max_body: the exchange fails (connection
 * closed), whatever was read of it is dropped. */
static int too_large(ft_transport *t, ft_rt *rt)
{
    return fail(t, rt, FT_E_TOO_LARGE, "http: response body too large (max_body_size=%llu)",
                (unsigned long long)rt->max_body);
}

ssize_t ft_rt_read(ft_transport *t, ft_rt *rt, char *dst, size_t n, int slice_ms)
{
    reclaim(t, rt);
    switch (rt->phase) {
    case RS_BODY:
        break;
    case RS_SETTLE: {
        int64_t slice_end = ft_now_ns() + (int64_t)slice_ms * 1000000LL;
        return settle(t, rt, slice_end);   /* EOF (0) once settled */
    }
    case RS_EOF:
        return 0;
    case PH_CLOSED:
        set_err(rt, FT_E_PROTOCOL, "http: read on closed response body");
        return FT_R_FAIL;
    default:
        return FT_R_FAIL;   /* sticky error */
    }
    if (n == 0)
        return 0;
    if (interrupted(t, rt))
        return FT_R_FAIL;
    int64_t now = ft_now_ns();
    if (rt->deadline && now >= rt->deadline)   /* even with bytes buffered (Go) */
        return fail(t, rt, FT_E_READ_TIMEOUT,
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)");
    /* keep the request body flowing while the response is read */
    if (writing(rt)) {
        int w = push_write(t, rt);
        if (w != 0)
            return w;
    }
    int64_t slice_end = now + (int64_t)slice_ms * 1000000LL;
    uint64_t max = rt->max_body;
    if (max && rt->framing.kind == FT_BODY_LENGTH && (uint64_t)rt->framing.body_length > max)
        return too_large(t, rt);   /* declared too long: nothing is read */
    ssize_t r;
    switch (rt->framing.kind) {
    case FT_BODY_LENGTH:
        r = read_length(t, rt, dst, n, slice_end);
        break;
    case FT_BODY_CHUNKED:
        r = read_chunked(t, rt, dst, n, slice_end);
        break;
    case FT_BODY_CLOSE:
        r = read_close_delimited(t, rt, dst, n, slice_end);
        break;
    default:
        return settle(t, rt, slice_end);
    }
    if (r > 0 && max && (rt->body_read += (uint64_t)r) > max)
        return too_large(t, rt);
    return r;
}

ssize_t ft_rt_write(ft_transport *t, ft_rt *rt, const char *src, size_t n, int slice_ms)
{
    if (!rt->upgraded || rt->phase != RS_BODY || !rt->conn) {
        if (rt->phase == RS_BODY || rt->phase == RS_EOF || rt->phase == PH_CLOSED)
            set_err(rt, FT_E_PROTOCOL, "http: write on a response body that is not writable");
        return FT_R_FAIL;
    }
    if (interrupted(t, rt))
        return FT_R_FAIL;
    int64_t slice_end = ft_now_ns() + (int64_t)slice_ms * 1000000LL;
    ft_conn *c = rt->conn;
    for (;;) {
        struct iovec iov = { (void *)src, n };
        ssize_t w = send_pieces(c, &iov, 1);
        if (w > 0)
            return w;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            char ebuf[160];
            return fail(t, rt, FT_E_PROTOCOL, "write: %s", ft_errstr(errno, ebuf, sizeof ebuf));
        }
        int64_t now = ft_now_ns();
        if (now >= slice_end)
            return FT_R_AGAIN;
        ft_wait_fd(c->fd, c->want_write || !c->ssl ? POLLOUT : POLLIN | POLLOUT,
                   ft_ms_until(slice_end, now, -1));
        if (interrupted(t, rt))
            return FT_R_FAIL;
    }
}

void ft_rt_close(ft_transport *t, ft_rt *rt)
{
    reclaim(t, rt);
    ft_conn *c = rt->conn;
    if (rt->phase == RS_BODY && c && rt->framing.kind == FT_BODY_LENGTH && rt->reuse_ok
        && !write_pending(rt) && rt->wstate == WS_DONE
        && t->cfg.drain_limit > 0 && rt->body_left <= t->cfg.drain_limit) {
        /* Go tip's maybeDrainBody: what is buffered or already on the socket
         * is discarded now; the rest is left to the engine for 50 ms. */
        detach_conn(rt);
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
        ft_dns_release(rt->dns);
        rt->dns = NULL;
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
    free(rt->stage);
    rt->stage = NULL;
    ft_dns_release(rt->dns);
    rt->dns = NULL;
    ft_want_free(&rt->want);
}
