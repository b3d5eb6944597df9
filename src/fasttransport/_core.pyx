# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The bridge between Python and the native transport (csrc/core.h).

Everything that blocks runs with the GIL released: the caller's own thread
runs its connection's write loop and read loop. Waits are cut
into slices so that Ctrl-C (and cancellation) is noticed between them.
``Exchange.submit`` hands an exchange to an engine instead (the batch and
asyncio APIs); its reports arrive on a ``CompletionQueue``.

C error codes become the public exception classes here, and only here
(`_raise_for`).
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_WRITABLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.stdint cimport int64_t
from libc.string cimport memcpy

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *a, const char *b, size_t n)

from fasttransport._cparser cimport (
    FT_BODY_CHUNKED, FT_BODY_CLOSE, FT_BODY_LENGTH, FT_BODY_NONE, FT_HDR_DELETED, ft_header,
)
from fasttransport._ccore cimport *
from fasttransport._names cimport header_name

from fasttransport import errors as _errors

import os as _os
import struct as _struct
import threading as _threading
import weakref as _weakref
from collections import deque as _deque

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    short POLLIN

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_CLOEXEC

from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_XDECREF

cdef extern from "Python.h":
    # raw-pointer forms: a bytes object being filled has one owner (us), which
    # _PyBytes_Resize requires
    PyObject *_bytes_new "PyBytes_FromStringAndSize"(const char *s, Py_ssize_t n) except NULL
    char *_bytes_buf "PyBytes_AS_STRING"(PyObject *o)
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1


cdef inline object _steal(PyObject *p):
    o = <object>p
    Py_DECREF(o)
    return o

# Longest stretch a blocked caller stays in native code before it looks at
# signals (Ctrl-C) and its cancel token.
DEF SLICE_MS = 50

# Most a body's declared length makes read_all() allocate before the bytes
# are there (untouched pages cost no memory; more grows as it arrives).
DEF PREALLOC_MAX = 64 << 20

cdef dict _EXC = {
    FT_E_CONNECT: _errors.ConnectError,
    FT_E_CONNECT_TIMEOUT: _errors.ConnectTimeout,
    FT_E_PROTOCOL: _errors.RemoteProtocolError,
    FT_E_HEADER_TIMEOUT: _errors.ResponseHeaderTimeout,
    FT_E_READ_TIMEOUT: _errors.ReadTimeout,
    FT_E_CANCELLED: _errors.Cancelled,
    FT_E_CLOSED: _errors.TransportError,
    FT_E_POOL_TIMEOUT: _errors.PoolTimeout,
    FT_E_TLS: _errors.TLSError,
    FT_E_BODY: _errors.TransportError,
    FT_E_TOO_LARGE: _errors.BodyTooLarge,
    FT_E_WRITE_TIMEOUT: _errors.WriteTimeout,
}


cdef inline int64_t _ns(object seconds) except? -1:
    if seconds is None:
        return 0
    cdef double s = seconds
    if s < 0:
        raise ValueError("timeouts must be >= 0 or None")
    return <int64_t>(s * 1e9)


def monotonic_ns():
    """The clock the native deadlines use (CLOCK_MONOTONIC, ns)."""
    return ft_now_ns()


@cython.final
cdef class CoreTransport:
    """The native transport: idle pool, engines, counters. One per Transport."""
    cdef ft_transport *t
    cdef readonly bint forked

    def __cinit__(self, *, int max_idle_conns, int max_idle_conns_per_host,
                  int max_conns_per_host, idle_conn_timeout, bint disable_keep_alives,
                  dial_timeout, response_header_timeout,
                  Py_ssize_t max_response_header_bytes, Py_ssize_t drain_limit,
                  int io_threads, tls_handshake_timeout=None, expect_continue_timeout=None,
                  bint verify=True,
                  bytes ca_file=None, bytes ca_dir=None, bytes cert_file=None,
                  bytes key_file=None):
        cdef ft_config cfg
        cdef char err[256]
        cfg.max_idle_conns = max_idle_conns
        cfg.max_idle_conns_per_host = max_idle_conns_per_host
        cfg.max_conns_per_host = max_conns_per_host
        cfg.idle_conn_timeout = _ns(idle_conn_timeout)
        cfg.disable_keep_alives = disable_keep_alives
        cfg.dial_timeout = _ns(dial_timeout)
        cfg.response_header_timeout = _ns(response_header_timeout)
        cfg.max_response_header_bytes = max_response_header_bytes
        cfg.drain_limit = drain_limit
        cfg.expect_continue_timeout = _ns(expect_continue_timeout)
        cfg.io_threads = io_threads
        cfg.tls_handshake_timeout = _ns(tls_handshake_timeout)
        cfg.tls.verify = verify
        # the C side copies these strings
        cfg.tls.ca_file = <const char *>ca_file if ca_file is not None else NULL
        cfg.tls.ca_dir = <const char *>ca_dir if ca_dir is not None else NULL
        cfg.tls.cert_file = <const char *>cert_file if cert_file is not None else NULL
        cfg.tls.key_file = <const char *>key_file if key_file is not None else NULL
        err[0] = 0
        with nogil:
            self.t = ft_transport_new(&cfg, err, sizeof(err))
        if self.t == NULL:
            raise OSError(err.decode("utf-8", "replace"))

    def close(self):
        """Close every connection and join the engine threads. Idempotent."""
        if self.t != NULL:
            with nogil:
                ft_transport_close(self.t)

    def abandon(self):
        """In a forked child: the descriptors are closed, nothing is sent, the
        memory is left (ft_transport_abandon); exchanges that still refer
        to it fail with TransportError."""
        if self.t != NULL:
            ft_transport_abandon(self.t)
            self.t = NULL
            self.forked = True

    def close_idle(self):
        if self.t != NULL:
            with nogil:
                ft_transport_close_idle(self.t)

    def stats(self):
        cdef ft_stats s
        if self.t == NULL:
            return {k: 0 for k in ("open_conns", "idle_conns", "active_conns", "draining_conns",
                                   "dialing_conns", "read_loops", "write_loops", "dials",
                                   "dial_errors", "reused_conns", "requests", "closed_conns",
                                   "idle_closed_by_peer", "idle_timeouts", "drained_conns",
                                   "io_threads", "waiting_requests", "tls_handshakes",
                                   "tls_resumed")}
        ft_transport_stats(self.t, &s)
        return s

    def hosts(self):
        """{key: (conns, idle, waiting)} for every connection key."""
        cdef size_t cap = 64, n, i
        cdef ft_host_stat *buf
        if self.t == NULL:
            return {}
        while True:
            buf = <ft_host_stat *>PyMem_Malloc(cap * sizeof(ft_host_stat))
            if buf == NULL:
                raise MemoryError()
            try:
                n = ft_transport_hosts(self.t, buf, cap)
                if n <= cap:
                    return {(<bytes>buf[i].key).decode("latin-1"):
                            (buf[i].conns, buf[i].idle, buf[i].waiting) for i in range(n)}
            finally:
                PyMem_Free(buf)
            cap = n + 16

    def __dealloc__(self):
        if self.t != NULL:
            with nogil:
                ft_transport_close(self.t)
                ft_transport_free(self.t)
            self.t = NULL


cdef class CancelToken:
    """Cancels an exchange from any thread: ``token.cancel()``.

    The exchanges using the token stop at once: a blocked wait is woken (the
    thread running the exchange is asked to stop; it closes the connection,
    never pooled, and raises ``ft.Cancelled``)."""
    cdef public bint cancelled
    cdef set _live      # exchanges whose owner is in a native call now

    def __cinit__(self):
        self._live = set()

    def cancel(self):
        self.cancelled = True
        for x in list(self._live):
            x._wake(FT_INTR_CANCEL)

    def __repr__(self):
        return f"<CancelToken cancelled={self.cancelled}>"


_ONE = _struct.pack("=Q", 1)


class _PumpError:
    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc


class _BodyPump:
    """Pulls a one-shot request body (a generator, a pipe) on a helper
    thread, one segment ahead of the write loop, so that a producer that
    blocks does not keep the caller from the server's answer (Go's writeLoop
    runs on its own goroutine; here the native loops never run Python).
    Segments are handed over through a deque and an eventfd that the native
    loop waits on beside the socket. The thread ends after the last segment,
    an error, or once detached and its current pull returns."""

    __slots__ = ("it", "efd", "items", "lock", "taken", "detached", "done")

    def __init__(self, it, int efd):
        self.it = it
        self.efd = efd
        self.items = _deque()
        self.lock = _threading.Lock()
        self.taken = _threading.Semaphore(0)
        self.detached = False
        self.done = False
        _threading.Thread(target=self._run, name="ft-body", daemon=True).start()

    def _run(self):
        try:
            while True:
                try:
                    chunk = next(self.it, None)
                except BaseException as e:   # handed to the caller, raised there
                    chunk = _PumpError(e)
                with self.lock:
                    if self.detached:
                        return
                    self.items.append(chunk)
                    _os.write(self.efd, _ONE)
                if chunk is None or isinstance(chunk, _PumpError):
                    return
                self.taken.acquire()
        finally:
            with self.lock:
                self.done = True
                if self.detached:
                    _os.close(self.efd)

    def take(self):
        """The next item (bytes, None at the end, or a _PumpError), or
        _NOT_READY."""
        try:
            item = self.items.popleft()
        except IndexError:
            return _NOT_READY
        self.taken.release()
        return item

    def detach(self):
        """The exchange no longer wants segments; the eventfd is closed by
        whichever of the two finishes last."""
        with self.lock:
            self.detached = True
            if self.done:
                _os.close(self.efd)
        self.taken.release()


_NOT_READY = object()

JOB_FULL = FT_JOB_FULL
JOB_HEAD = FT_JOB_HEAD
JOB_AHEAD = FT_JOB_AHEAD

# Plan.socks: the SOCKS version, and who resolves the target's name
SOCKS = {"socks4": FT_SOCKS4, "socks4a": FT_SOCKS4A, "socks5": FT_SOCKS5,
         "socks5h": FT_SOCKS5H}

# Every exchange an engine runs, until its last report is taken: the engine
# holds a pointer into it, so it must not be collected meanwhile.
cdef dict _INFLIGHT = {}
# Every completion queue, for forget_after_fork.
_QUEUES = _weakref.WeakSet()
# Incremented in a forked child: queues made before belong to the parent.
_fork_gen = 0


def fork_generation():
    """How many times this process is a fork child of one using fasttransport."""
    return _fork_gen


def forget_after_fork():
    """In a forked child (before its transports are abandoned): completion
    queues are abandoned, and what engines of the parent were running fails
    here with TransportError (their owners hear of it at once)."""
    global _fork_gen
    _fork_gen += 1
    ft_dns_after_fork_child()
    for q in list(_QUEUES):
        (<CompletionQueue>q)._abandon()
    xs = list(_INFLIGHT.values())
    _INFLIGHT.clear()
    for x in xs:
        (<Exchange>x)._forked()


def inflight_count():
    """Exchanges engines run now, in this process (for tests)."""
    return len(_INFLIGHT)


@cython.final
cdef class CompletionQueue:
    """Where engine-run exchanges report (core.h, ft_cq): a queue and an
    eventfd readable while it is not empty (and, at times, once when it is
    not). One wake-up of the collector serves every exchange reported since
    its last take(); a collector woken by the fd calls clear() before
    take() (wait() does)."""
    cdef ft_cq *q
    cdef readonly Py_ssize_t live    # exchanges in flight that report here
    cdef readonly int generation     # fork_generation() when it was made
    cdef object __weakref__

    def __cinit__(self):
        cdef char err[256]
        err[0] = 0
        self.q = ft_cq_new(err, sizeof(err))
        if self.q == NULL:
            raise OSError(err.decode("utf-8", "replace"))
        self.generation = _fork_gen
        _QUEUES.add(self)

    cdef void _abandon(self):
        # a forked child: an engine thread of the parent may have held its
        # lock; the fd is closed, the memory left
        if self.q != NULL:
            _os.close(ft_cq_fd(self.q))
            self.q = NULL

    def __dealloc__(self):
        # exchanges in flight keep their queue alive (they hold it)
        if self.q != NULL:
            ft_cq_free(self.q)
            self.q = NULL

    def fileno(self):
        if self.q == NULL:
            raise ValueError("completion queue is closed")
        return ft_cq_fd(self.q)

    def close(self):
        """Release the queue and its fd now if no exchange in flight reports
        to it (otherwise when the last one is gone). Idempotent."""
        if self.q != NULL and self.live == 0:
            ft_cq_free(self.q)
            self.q = NULL

    def take(self):
        """The exchanges reported since the last take, in order (each once)."""
        cdef ft_job *jobs[256]
        cdef int last[256]
        cdef size_t n, i
        cdef Exchange x
        out = []
        if self.q == NULL:
            return out
        while True:
            n = ft_cq_take(self.q, jobs, last, 256)   # one brief lock: kept with the GIL
            for i in range(n):
                x = <Exchange>jobs[i].user
                x._reported(last[i])
                out.append(x)
            if n < 256:
                return out

    def clear(self):
        """The fd woke the caller: clear it, before take() (core.h,
        ft_cq_clear). An event loop's reader callback calls this first."""
        if self.q != NULL:
            ft_cq_clear(self.q)

    def wait(self, double timeout):
        """Wait up to ``timeout`` seconds (GIL released) until the fd says
        a report may be there (then cleared: take() next). True if so."""
        cdef pollfd p
        cdef int r, ms = <int>(timeout * 1000) if timeout > 0 else 0
        if self.q == NULL:
            return False
        p.fd = ft_cq_fd(self.q)
        p.events = POLLIN
        p.revents = 0
        with nogil:
            r = poll(&p, 1, ms)
            if r > 0:
                ft_cq_clear(self.q)
        return r > 0


@cython.final
cdef class Plan:
    """What one exchange of a request needs, worked out once by
    Transport._plan and given to Exchange.start / Exchange.submit.

    op, url: Go's capitalised method and the redacted URL (error texts);
    key, host, port: the connection key and the address to dial (the proxy's
    when there is one); head: the request head as sent; body: None, bytes, a
    plain file (``pread_source``) or an iterable of bytes; is_head,
    req_close, tls, expect_continue; chunked and length: the body's framing
    (length -1: none declared); pump: a streamed body may block (pulled on
    a helper thread); tunnel (CONNECT authority), tls_host, tunnel_auth:
    https through an http(s) proxy; proxy_tls, proxy_key: TLS with an https
    proxy before the CONNECT (the target's TLS inside it), its session key;
    socks (FT_SOCKS*: 1 socks4, 2 socks4a, 3 socks5, 4 socks5h), socks_host,
    socks_port, socks_user, socks_pass: the SOCKS handshake after the TCP
    connect to the proxy at host:port; max_body: the body limit (0 = none);
    gzip: the transport asked for gzip (decode it); route: the proxy route
    or False; connect_ns, pool_ns, read_ns, write_ns: ft.Timeout's parts (0
    = none; core.h, ft_rt.connect_to)."""
    cdef public str op, url
    cdef public bytes key, host, head, tls_host, tunnel, tunnel_auth
    cdef public bytes proxy_key, socks_host, socks_user, socks_pass
    cdef public int port, socks, socks_port
    cdef public bint proxy_tls
    cdef public object body, route
    cdef public bint is_head, req_close, tls, expect_continue, chunked, gzip, pump
    cdef public Py_ssize_t length
    cdef public unsigned long long max_body
    cdef public int64_t connect_ns, pool_ns, read_ns, write_ns

    def __init__(self, str op, str url, bytes key, bytes host, int port, bytes head, body,
                 Py_ssize_t length, bint chunked, bint is_head, bint req_close, bint tls,
                 bint expect_continue, bint gzip, bint pump, unsigned long long max_body,
                 route=False):
        self.op = op
        self.url = url
        self.key = key
        self.host = host
        self.port = port
        self.head = head
        self.body = body
        self.length = length
        self.chunked = chunked
        self.is_head = is_head
        self.req_close = req_close
        self.tls = tls
        self.expect_continue = expect_continue
        self.gzip = gzip
        self.pump = pump
        self.max_body = max_body
        self.route = route


@cython.final
@cython.no_gc_clear
cdef class Exchange:
    """One request/response on the native core: the C state (ft_rt) plus the
    Python objects it borrows bytes from. Not for concurrent use."""
    cdef ft_rt rt
    cdef CoreTransport tr
    cdef Plan _plan
    cdef object _body
    cdef readonly str op, url
    cdef readonly object cancel
    cdef bint _busy, _close_pending
    cdef object _stream, _pump
    cdef bint _chunked, _use_pump
    cdef Py_ssize_t _length, _sent
    # run by an engine (submit): the job, its queue, and the body it read
    cdef ft_job *job
    cdef readonly CompletionQueue cq
    cdef readonly int mode
    cdef readonly bint in_flight     # an engine owns rt: only ask (interrupt, job close)
    cdef readonly bint head_ready    # the head is in (FT_JOB_AHEAD reports it early)
    cdef bytes _mem                  # the body, read by the engine
    cdef Py_ssize_t _mpos
    cdef public object owner         # what the engine's reports are for (batch, asyncio)

    def __cinit__(self):
        ft_rt_init(&self.rt)

    def __dealloc__(self):
        # never while in flight: _INFLIGHT holds every exchange an engine runs
        if self.tr is not None and self.tr.t != NULL:
            ft_rt_close(self.tr.t, &self.rt)
        self._detach_pump()
        self._free_job()
        ft_rt_free(&self.rt)

    # ---- ownership: one thread runs the exchange; others only ask --------

    cdef int _enter(self, str what="read") except -1:
        """This thread becomes the exchange's owner for one native call."""
        if self.tr is not None and self.tr.t == NULL and self.tr.forked:
            raise _errors.TransportError(
                f'{self.op} "{self.url}": transport is closed (the process forked)',
                method=self.op.upper(), url=self.url)
        if self._busy:
            raise RuntimeError(f"response body {what} from two threads at once")
        self._busy = True
        if self.cancel is not None:
            (<CancelToken>self.cancel)._live.add(self)
        return 0

    cdef int _leave(self) except -1:
        self._busy = False
        if self._pump is not None and not ft_rt_writing(&self.rt):
            self._detach_pump()      # the write loop is over: no more segments
        if self.cancel is not None:
            (<CancelToken>self.cancel)._live.discard(self)
        if self._close_pending:      # close() came from another thread meanwhile
            self._close_pending = False
            self._close_now()
        else:
            # a request body still going: the engine sends it while we are away
            ft_rt_park(self.tr.t, &self.rt)
        return 0

    def _wake(self, int why):
        """From any thread: ask the owner to stop (core.h, ft_rt_interrupt)."""
        if self.tr is not None and self.tr.t != NULL:
            ft_rt_interrupt(self.tr.t, &self.rt, why)

    cdef void _detach_pump(self):
        if self._pump is not None:
            self.rt.body_fd = -1
            self._pump.detach()
            self._pump = None

    cdef void _close_now(self):
        ft_rt_close(self.tr.t, &self.rt)
        self._detach_pump()

    cdef int _check_between_slices(self) except -1:
        """Between two slices of native waiting: Ctrl-C and the cancel token."""
        try:
            PyErr_CheckSignals()
        except BaseException:
            ft_rt_abort(self.tr.t, &self.rt, FT_E_CANCELLED, b"interrupted")
            raise
        if self.cancel is not None and (<CancelToken>self.cancel).cancelled:
            ft_rt_abort(self.tr.t, &self.rt, FT_E_CANCELLED, b"context canceled")
            self._raise()
        return 0

    cdef int _raise(self) except -1:
        self._detach_pump()
        code = self.rt.err_code
        cause = (<bytes>self.rt.err).decode("utf-8", "replace")
        if code == FT_E_NOMEM:
            raise MemoryError(cause)
        cls = _EXC.get(code, _errors.TransportError)
        raise cls(f'{self.op} "{self.url}": {cause}', method=self.op.upper(), url=self.url)

    def start(self, CoreTransport tr, Plan p, deadline_ns, CancelToken cancel=None):
        """Send the request and read the response head (blocking, GIL
        released). Raises the documented exception on failure.

        body: bytes (sent as they are), or an iterator of bytes streamed from
        the write loop segment by segment: framed as chunked transfer coding
        when ``chunked``, else it must add up to ``length``. An exception
        raised by the iterator ends the exchange (connection closed) and is
        re-raised as it is (Go: TestTransportBodyReadError). ``pump``: the
        iterator may block (a generator, a pipe): it is pulled on a helper
        thread (_BodyPump) so that the server's answer is returned meanwhile.
        The rest of the body keeps flowing during the body reads (full
        duplex)."""
        cdef int rc
        self._setup(tr, p, deadline_ns, cancel)
        self._enter()
        try:
            while True:
                with nogil:
                    rc = ft_rt_run(tr.t, &self.rt, SLICE_MS)
                if rc == FT_R_DONE:
                    self.head_ready = True
                    return
                if rc == FT_R_FAIL:
                    self._raise()
                if rc == FT_R_NEED_BODY:
                    self._next_segment()
                    continue
                self._check_between_slices()
        finally:
            self._leave()

    cdef int _setup(self, CoreTransport tr, Plan p, deadline_ns, CancelToken cancel) except -1:
        cdef str op = p.op, url = p.url
        body = p.body
        if tr.t == NULL:
            raise _errors.TransportError(f'{op} "{url}": transport is closed',
                                         method=op.upper(), url=url)
        if cancel is not None and (<CancelToken>cancel).cancelled:
            # cancelled before it started: nothing is dialed or sent
            raise _errors.Cancelled(f'{op} "{url}": context canceled',
                                    method=op.upper(), url=url)
        self.tr = tr
        self.op = op
        self.url = url
        self.cancel = cancel
        self._plan = p                 # rt borrows its bytes
        self.rt.key = p.key
        self.rt.host = p.host
        self.rt.port = p.port
        self.rt.head = p.head
        self.rt.head_len = len(p.head)
        self._stream = None
        if isinstance(body, bytes):
            self._body = body
            self.rt.body = <bytes>body
            self.rt.body_len = len(<bytes>body)
        elif hasattr(body, "pread_source"):
            # a plain file: the write loop reads it itself (pread)
            fd, offset, flen = body.pread_source
            self._body = body
            self.rt.body_file = fd
            self.rt.file_off = offset
            self.rt.file_left = self.rt.file_len = flen
        elif body is not None:
            self._stream = iter(body)
            self._use_pump = p.pump
            self._chunked = p.chunked
            self._length = p.length
            self._sent = 0
            self.rt.body_more = 1
        self.rt.expect_continue = p.expect_continue
        self.rt.is_head = p.is_head
        self.rt.tls = p.tls
        if p.tunnel is not None:
            # https through an http proxy: dial host:port (the proxy), CONNECT
            # to `tunnel`, then TLS with tls_host
            self.rt.tls_host = p.tls_host
            self.rt.tunnel = p.tunnel
            if p.tunnel_auth is not None:
                self.rt.tunnel_auth = p.tunnel_auth
        if p.socks or p.proxy_tls:
            # a SOCKS handshake, or TLS with an https proxy, on the way
            self.rt.hop.proxy_host = p.host
            self.rt.hop.proxy_port = p.port
            self.rt.hop.proxy_tls = p.proxy_tls
            if p.proxy_key is not None:
                self.rt.hop.proxy_key = p.proxy_key
            self.rt.hop.socks = p.socks
            if p.socks:
                self.rt.hop.socks_host = p.socks_host
                self.rt.hop.socks_port = p.socks_port
                if p.socks_user is not None:
                    self.rt.hop.socks_user = p.socks_user
                if p.socks_pass is not None:
                    self.rt.hop.socks_pass = p.socks_pass
        self.rt.req_close = p.req_close
        self.rt.deadline = 0 if deadline_ns is None else <int64_t>deadline_ns
        self.rt.max_body = p.max_body
        self.rt.connect_to = p.connect_ns
        self.rt.pool_to = p.pool_ns
        self.rt.read_to = p.read_ns
        self.rt.write_to = p.write_ns
        return 0

    def submit(self, CoreTransport tr, CompletionQueue cq, int mode, Py_ssize_t limit, Plan p,
               deadline_ns, CancelToken cancel=None):
        """Hand the exchange to an engine and return at once (core.h, engine-
        run exchanges). ``mode``: FT_JOB_FULL (the body is read into memory),
        FT_JOB_HEAD (the caller reads the body, as after start()) or
        FT_JOB_AHEAD (read ahead up to ``limit`` bytes; take_ahead()).
        Reports arrive on ``cq``: CompletionQueue.take() returns this
        exchange, and ``in_flight`` is false after its last one. The body is
        bytes or a plain file (the engine never runs Python)."""
        body = p.body
        if body is not None and not isinstance(body, bytes) and not hasattr(body, "pread_source"):
            raise TypeError("an engine-run request's body must be bytes or a plain binary file "
                            "(a streamed body needs a blocking call)")
        self._setup(tr, p, deadline_ns, cancel)
        if cq.q == NULL:
            raise _errors.TransportError(f'{p.op} "{p.url}": client is closed',
                                         method=p.op.upper(), url=p.url)
        self.job = <ft_job *>PyMem_Malloc(sizeof(ft_job))
        if self.job == NULL:
            raise MemoryError()
        ft_job_init(self.job, tr.t, &self.rt, cq.q, mode, limit)
        self.job.user = <void *>self
        self.cq = cq
        self.mode = mode
        self.in_flight = True
        cq.live += 1
        _INFLIGHT[id(self)] = self
        if cancel is not None:
            (<CancelToken>cancel)._live.add(self)
        # brief locks only (the host's lookup is a resolver thread's): kept
        # with the GIL, which saves a GIL round trip per request
        ft_job_submit(tr.t, self.job)

    cdef void _forked(self):
        """Run by an engine of the parent process: it never finishes here."""
        cdef bytes msg = b"transport is closed (the process forked)"
        self.in_flight = False
        self.job = NULL                # the parent's memory: left alone
        self.rt.err_code = FT_E_CLOSED
        memcpy(self.rt.err, <const char *>msg, len(msg) + 1)
        owner = self.owner
        if owner is not None:
            try:
                owner._report(self)
            except Exception:   # noqa: BLE001 - nothing may stop the fork handler
                pass
        self.owner = None

    cdef void _free_job(self):
        if self.job != NULL:
            ft_job_free(self.job)
            PyMem_Free(self.job)
            self.job = NULL

    cdef int _reported(self, bint last) except -1:
        """A report taken from the queue. After the last one the engine is
        done: what it read is kept as bytes and the job freed."""
        cdef int fin = 0
        cdef size_t n
        cdef PyObject *p
        if not last:
            # FT_JOB_AHEAD: the first report is the head; later ones, data
            self.head_ready = True
            return 0
        self.head_ready = self.rt.status != 0    # the engine is done: rt is ours
        self.in_flight = False
        self.cq.live -= 1
        _INFLIGHT.pop(id(self), None)
        if self.cancel is not None:
            (<CancelToken>self.cancel)._live.discard(self)
        if self.mode != FT_JOB_HEAD and self.rt.err_code == FT_E_NONE or (
                self.mode == FT_JOB_AHEAD and ft_job_buffered(self.job)):
            n = ft_job_buffered(self.job)
            p = _bytes_new(NULL, n)
            ft_job_take(self.job, _bytes_buf(p), n, &fin)
            self._mem = <bytes>_steal(p)
            self._mpos = 0
        self._free_job()
        return 0

    def error(self):
        """The exception the exchange failed with, or None."""
        if self.rt.err_code == FT_E_NONE:
            return None
        try:
            self._raise()
        except BaseException as e:
            return e

    @property
    def ahead_buffered(self):
        """Body bytes read by the engine and not taken yet."""
        if self.job != NULL:
            return ft_job_buffered(self.job)
        return 0 if self._mem is None else PyBytes_GET_SIZE(self._mem) - self._mpos

    def take_ahead(self, Py_ssize_t n=65536):
        """FT_JOB_AHEAD: up to n bytes the engine read ahead; None when none
        is there yet (the exchange is reported when some arrives), b"" at
        EOF. Raises the exchange's error once its data is taken."""
        cdef int fin = 0
        cdef size_t got
        cdef PyObject *p
        if self.job == NULL:
            return self._mem_read(n)
        p = _bytes_new(NULL, n)
        got = ft_job_take(self.job, _bytes_buf(p), n, &fin)
        if got == 0:
            Py_XDECREF(p)
            return None      # fin: the last report is on its way; its data comes from _mem
        if <Py_ssize_t>got != n:
            _PyBytes_Resize(&p, got)
        return _steal(p)

    cdef bytes _mem_read(self, Py_ssize_t n):
        """From the body the engine read (after the last report)."""
        cdef Py_ssize_t left
        if self._mem is None:
            left = 0
        else:
            left = PyBytes_GET_SIZE(self._mem) - self._mpos
        if left == 0:
            if self.rt.err_code != FT_E_NONE:
                self._raise()
            return b""
        if n < 0 or n >= left:
            n = left
        if self._mpos == 0 and n == left:
            out = self._mem
        else:
            out = self._mem[self._mpos:self._mpos + n]
        self._mpos += n
        return out

    cdef object _pull(self):
        """The body's next non-empty chunk (None at the end), here or from
        the pump; _NOT_READY when the pump has none yet."""
        cdef int efd
        if self._use_pump:
            if self._pump is None:
                efd = eventfd(0, EFD_CLOEXEC)
                if efd < 0:
                    raise OSError("cannot create an eventfd for the request body")
                try:
                    self._pump = _BodyPump(self._stream, efd)
                except BaseException:
                    _os.close(efd)        # the thread never started: nobody else owns it
                    raise
                self.rt.body_fd = efd
            while True:
                chunk = self._pump.take()
                if isinstance(chunk, _PumpError):
                    raise (<object>chunk).exc
                if chunk is None or chunk is _NOT_READY or len(chunk):
                    return chunk
        chunk = next(self._stream, None)
        while chunk is not None and len(chunk) == 0:
            chunk = next(self._stream, None)
        return chunk

    cdef int _next_segment(self) except -1:
        """The write loop sent the current segment: give it the next one, or
        let it wait for the pump (the response may come first)."""
        cdef bytes seg
        try:
            chunk = self._pull()
        except BaseException:
            ft_rt_abort(self.tr.t, &self.rt, FT_E_CANCELLED, b"request body failed")
            self._detach_pump()
            raise
        if chunk is _NOT_READY:
            ft_rt_wait_body(&self.rt)
            return 0
        if chunk is None:
            self._detach_pump()
            if self._chunked:
                seg = b"0\r\n\r\n"
            else:
                if self._length >= 0 and self._sent != self._length:
                    self._fail_body()
                seg = b""
            self._body = seg
            ft_rt_set_body(&self.rt, seg, len(seg), 0)
            return 0
        if isinstance(chunk, str):
            chunk = (<str>chunk).encode("utf-8")
        elif not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        self._sent += len(chunk)
        if self._chunked:
            seg = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        else:
            if self._length >= 0 and self._sent > self._length:
                self._fail_body()
            seg = chunk
        self._body = seg
        ft_rt_set_body(&self.rt, seg, len(seg), 1)
        return 0

    cdef int _fail_body(self) except -1:
        ft_rt_abort(self.tr.t, &self.rt, FT_E_CANCELLED, b"request body length mismatch")
        raise _errors.TransportError(
            f'{self.op} "{self.url}": http: ContentLength={self._length} with Body length '
            f'{self._sent}', method=self.op.upper(), url=self.url)

    # ---- response head -------------------------------------------------

    @property
    def status(self):
        return self.rt.status

    @property
    def reason(self):
        return PyUnicode_DecodeLatin1(self.rt.head_copy + self.rt.reason_off,
                                      self.rt.reason_len, NULL)

    @property
    def http_version(self):
        return f"HTTP/{self.rt.vmajor}.{self.rt.vminor}"

    @property
    def content_length(self):
        """Go's Response.ContentLength: -1 when unknown."""
        return self.rt.framing.content_length

    @property
    def chunked(self):
        return self.rt.framing.kind == FT_BODY_CHUNKED

    @property
    def has_body(self):
        return self.rt.framing.kind != FT_BODY_NONE

    @property
    def sent_head(self):
        """The request head as it went on the wire (bytes)."""
        return self._plan.head if self._plan is not None else b""

    def header_pairs(self):
        """Every header (name, value) in wire order, names canonicalised."""
        return _pairs(self.rt.head_copy, self.rt.hdrs, self.rt.nhdrs)

    def has_header(self, bytes name):
        """Is a (non-deleted) header of this name present? No Python objects
        are built for the headers."""
        cdef size_t i, n = len(name)
        cdef const char *nm = name
        for i in range(self.rt.nhdrs):
            if (self.rt.hdrs[i].name_len == n and not (self.rt.hdrs[i].flags & FT_HDR_DELETED)
                    and strncasecmp(self.rt.head_copy + self.rt.hdrs[i].name_off, nm, n) == 0):
                return True
        return False

    def trailer_pairs(self):
        if self.rt.trailer == NULL:
            return []
        return _pairs(self.rt.trailer, self.rt.thdrs, self.rt.nthdrs)

    # ---- facts for the retry decision (Transport._should_retry) --------

    @property
    def conn_reused(self):
        return bool(self.rt.conn_reused)

    @property
    def nothing_written(self):
        return self.rt.nwritten == 0

    @property
    def got_response_bytes(self):
        return bool(self.rt.got_response_bytes)

    # ---- body ----------------------------------------------------------

    @property
    def at_eof(self):
        if self.in_flight:
            return False
        if self._mem is not None:
            return self._mpos == PyBytes_GET_SIZE(self._mem) and self.rt.err_code == FT_E_NONE
        return bool(ft_rt_at_eof(&self.rt))

    cdef Py_ssize_t _read_into(self, char *dst, Py_ssize_t n) except -1:
        """Up to n body bytes into dst (>= 1 unless EOF), GIL released. The
        request body keeps flowing meanwhile (FT_R_NEED_BODY)."""
        cdef ssize_t r
        cdef bytes b
        if self.in_flight:
            raise RuntimeError("the body is being read by the engine: use the async API")
        if self._mem is not None or (self.job == NULL and self.mode == FT_JOB_FULL
                                     and self.cq is not None):
            b = self._mem_read(n)
            if PyBytes_GET_SIZE(b):
                memcpy(dst, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return PyBytes_GET_SIZE(b)
        self._enter()
        try:
            if (self.cancel is not None and (<CancelToken>self.cancel).cancelled
                    and not ft_rt_at_eof(&self.rt)):
                # cancelled: bytes already received are dropped (as in Go)
                ft_rt_abort(self.tr.t, &self.rt, FT_E_CANCELLED, b"context canceled")
                self._raise()
            ft_rt_read_begins(&self.rt)
            while True:
                with nogil:
                    r = ft_rt_read(self.tr.t, &self.rt, dst, n, SLICE_MS)
                if r >= 0:
                    return r
                if r == FT_R_FAIL:
                    self._raise()
                if r == FT_R_NEED_BODY:
                    self._next_segment()
                    continue
                self._check_between_slices()
        finally:
            self._leave()

    def read(self, Py_ssize_t n=-1):
        """Up to n bytes (at least 1 unless at EOF); n < 0: the rest."""
        if self._mem is not None:
            return self._mem_read(n)
        if n < 0:
            return self.read_all()
        if n == 0:
            return b""
        cdef PyObject *p = _bytes_new(NULL, n)
        cdef Py_ssize_t got
        try:
            got = self._read_into(_bytes_buf(p), n)
        except BaseException:
            Py_XDECREF(p)
            raise
        if got != n:
            _PyBytes_Resize(&p, got)
        return _steal(p)

    def readinto(self, buf):
        cdef Py_buffer view
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
        try:
            if view.len == 0:
                return 0
            return self._read_into(<char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def read_all(self):
        """The rest of the body. Sized once when the length is known."""
        cdef Py_ssize_t size, pos = 0, got
        cdef PyObject *p
        if self._mem is not None:
            return self._mem_read(-1)
        if ft_rt_at_eof(&self.rt):
            return b""
        if self.rt.framing.kind == FT_BODY_NONE:
            self._read_into(NULL, 0)    # surfaces read-after-close
            return b""
        if self.rt.framing.kind == FT_BODY_LENGTH:
            # sized once from the declared length, up to a bound: a server
            # may declare a petabyte and send three bytes
            size = <Py_ssize_t>min(self.rt.framing.body_length, PREALLOC_MAX)
        else:
            size = 65536
        p = _bytes_new(NULL, size)
        try:
            while True:
                if pos == size:
                    if ft_rt_at_eof(&self.rt):
                        break
                    size *= 2
                    _PyBytes_Resize(&p, size)
                got = self._read_into(_bytes_buf(p) + pos, size - pos)
                if got == 0:
                    break
                pos += got
            if pos != size:
                _PyBytes_Resize(&p, pos)
        except BaseException:
            Py_XDECREF(p)
            raise
        return _steal(p)

    def close(self):
        """Done with the body: drain-and-pool or close (ft_rt_close). From
        any thread: while another thread is reading, it is asked to stop (its
        read raises "read on closed response body") and releases the
        connection itself."""
        if self.tr is None or self.tr.t == NULL:
            return
        if self.in_flight:
            if self.mode == FT_JOB_AHEAD and self.head_ready:
                ft_job_close(self.tr.t, self.job)      # drain-and-pool or close, there
            else:
                ft_rt_interrupt(self.tr.t, &self.rt, FT_INTR_CLOSE)
            return
        self._mem = None
        self._mpos = 0
        if self._busy:
            self._close_pending = True
            ft_rt_interrupt(self.tr.t, &self.rt, FT_INTR_CLOSE)
            return
        self._close_now()

    def abort(self, str why="aborted"):
        if self.tr is None or self.tr.t == NULL:
            return
        if self._busy or self.in_flight:
            ft_rt_interrupt(self.tr.t, &self.rt, FT_INTR_CANCEL)
            return
        ft_rt_abort(self.tr.t, &self.rt, FT_E_CANCELLED, why.encode())
        self._detach_pump()

    @property
    def upgraded(self):
        """101 Switching Protocols: the body is the connection, both ways."""
        return bool(self.rt.upgraded)

    def write(self, data):
        """Send all of data on an upgraded (101) stream; GIL released."""
        cdef const unsigned char[::1] view = data
        cdef Py_ssize_t off = 0, n = view.shape[0]
        cdef ssize_t w
        self._enter("used")
        try:
            while off < n:
                with nogil:
                    w = ft_rt_write(self.tr.t, &self.rt, <const char *>&view[off], n - off,
                                    SLICE_MS)
                if w > 0:
                    off += w
                elif w == FT_R_FAIL:
                    self._raise()
                else:
                    self._check_between_slices()
        finally:
            self._leave()
        return n

    @property
    def writing(self):
        """The write loop is still live: request head or body left to send."""
        return bool(ft_rt_writing(&self.rt))


cdef list _pairs(const char *base, const ft_header *hs, size_t n):
    cdef list out = []
    cdef size_t i
    for i in range(n):
        if hs[i].flags & FT_HDR_DELETED:
            continue
        out.append((header_name(base + hs[i].name_off, hs[i].name_len),
                    PyUnicode_DecodeLatin1(base + hs[i].value_off, hs[i].value_len, NULL)))
    return out


# ---- request validation and the request head -----------------------------

cdef bytes _TOKEN = bytes(
    1 if (c > 32 and c < 127 and chr(c) not in '"(),/:;<=>?@[\\]{}') else 0 for c in range(256))


cpdef bint is_token(str s):
    """RFC 9110 token: non-empty, visible ASCII, no separators."""
    if not s:
        return False
    cdef Py_UCS4 ch
    cdef const unsigned char *tab = <const unsigned char *>PyBytes_AS_STRING(_TOKEN)
    for ch in s:
        if ch > 255 or not tab[ch]:
            return False
    return True


cpdef bint is_valid_value(str s):
    """Header value without CR, LF or NUL (Go's httpguts.ValidHeaderFieldValue
    also refuses other controls except HT)."""
    cdef Py_UCS4 ch
    for ch in s:
        if (ch < 32 and ch != 9) or ch == 127:
            return False
    return True


def build_head(str method, str target, str host, list headers, Py_ssize_t content_length,
               bint chunked, bint add_gzip, bint add_close, str default_ua):
    """Serialise a request head in Go's wire order:
    request line, Host, User-Agent, Content-Length or Transfer-Encoding, the
    caller's headers, then Accept-Encoding: gzip and Connection: close.
    headers: validated (name, value) str pairs."""
    cdef list parts = [method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n"]
    cdef str ua = default_ua
    cdef list rest = []
    cdef bint has_close = False
    cdef str name, value, low
    for name, value in headers:
        low = name.lower()
        if low == "host":
            parts[4] = value
        elif low == "user-agent":
            ua = value
        elif low == "content-length" or low == "transfer-encoding":
            continue
        else:
            if low == "connection" and "close" in value.lower():
                has_close = True
            rest.extend((name, ": ", value, "\r\n"))
    if ua:
        parts.extend(("User-Agent: ", ua, "\r\n"))
    if chunked:
        parts.append("Transfer-Encoding: chunked\r\n")
    elif content_length >= 0:
        parts.extend(("Content-Length: ", str(content_length), "\r\n"))
    parts.extend(rest)
    if add_gzip:
        parts.append("Accept-Encoding: gzip\r\n")
    if add_close and not has_close:
        parts.append("Connection: close\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")
