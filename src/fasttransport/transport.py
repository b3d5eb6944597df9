"""Transport: one exchange at a time, no redirects, no cookies (Go's
http.Transport). The connection machinery is native (``_core``); this layer
decides the connection key, the request head, transparent gzip and whether a
failed request may be retried."""

from __future__ import annotations

import os
import ssl
import time
import weakref
from dataclasses import dataclass, fields
from typing import Any, Dict, Literal, Mapping, Optional, Tuple, Union

from . import _core
from . import proxy as _proxy
from ._core import CancelToken, CompletionQueue, CoreTransport, Exchange, Plan
from ._urls import _URL
from ._version import __version__
from .errors import (
    Cancelled,
    ConnectError,
    ConnectTimeout,
    HTTPError,
    InvalidRequest,
    TimeoutError,
    TransportError,
)
from .models import Request, Response

__all__ = ["Transport", "TransportStats", "DEFAULT_USER_AGENT"]

DEFAULT_USER_AGENT = f"fasttransport/{__version__}"

_UNSET: Any = object()


@dataclass(frozen=True)
class TransportStats:
    """Live counts of a Transport (a snapshot).

    open_conns = idle_conns + active_conns + draining_conns + dialing_conns.
    read_loops counts the connections whose read loop is live (open and
    past dialing: idle-watched, in use, or draining); write_loops the
    requests whose write loop still has head or body to send (an upload in
    progress, also while its response is already being read); io_threads the
    native engine threads that run them when no caller does; waiting_requests
    the requests waiting for a connection; reused_conns the requests that got
    a connection an earlier request had (taken idle or handed over), so
    dials + reused_conns == requests when every dialed connection served one;
    tls_handshakes / tls_resumed the full and abbreviated TLS handshakes so
    far."""

    open_conns: int
    idle_conns: int
    active_conns: int
    draining_conns: int
    dialing_conns: int
    read_loops: int
    write_loops: int
    dials: int
    dial_errors: int
    reused_conns: int
    requests: int
    closed_conns: int
    idle_closed_by_peer: int
    idle_timeouts: int
    drained_conns: int
    io_threads: int
    waiting_requests: int
    tls_handshakes: int
    tls_resumed: int

    def as_dict(self) -> Dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_REPLAYABLE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "QUERY"))


# Every Transport, for the fork handler.
_TRANSPORTS: "weakref.WeakSet[Transport]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """os.fork() in a process using fasttransport: the child has no engine
    thread and shares the parent's sockets. Every native transport is
    abandoned (its descriptors closed here, nothing sent on them: they stay
    the parent's) and replaced on first use by a fresh one; exchanges in
    flight fail with TransportError; responses read in the child fail the
    same way. The parent is not affected."""
    _core.forget_after_fork()
    for t in list(_TRANSPORTS):
        core, t._core_obj = t._core_obj, None
        if core is not None:
            core.abandon()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _rewindable(req: Request) -> bool:
    """No body, or one that can be produced again (Go: GetBody != nil); a
    one-shot body (an iterator, a file that cannot seek) cannot."""
    return req.body is None or not req._one_shot


def _is_replayable(req: Request) -> bool:
    """Go's Request.isReplayable: an idempotent method or an
    Idempotency-Key / X-Idempotency-Key header, and a body that is absent or
    rewindable."""
    return (_rewindable(req) and (req.method in _REPLAYABLE_METHODS
                                  or "idempotency-key" in req.headers
                                  or "x-idempotency-key" in req.headers))


def _should_retry(x: Exchange, req: Request, err: HTTPError) -> bool:
    """May a failed attempt be sent again on another connection?

    Mirrors Go's Transport.roundTrip + persistConn.shouldRetryRequest:
    - only if the connection had already completed an exchange (isReused):
      a fresh connection's failure is the server's answer, never retried;
    - never for timeouts or cancellation (the caller's deadline is spent);
    - nothing of the request was written (nothingWrittenError): any method,
      if the body is absent or rewindable;
    - otherwise the request must be replayable (isReplayable) and the failure
      early: no byte of the response arrived (transportReadFromServerError /
      errServerClosedIdle).
    There is no counter: each retry needs another reused connection, so the
    loop ends when the idle pool holds no more broken ones."""
    if not x.conn_reused or isinstance(err, (TimeoutError, Cancelled)):
        return False
    if x.nothing_written:
        return _rewindable(req)
    if x.got_response_bytes:
        return False
    return _is_replayable(req)


#: A client certificate: a PEM file with the certificate (and its key), or
#: a (certificate, key) pair of files.
CertTypes = Union[str, Tuple[str, str], None]


def _tls_files(verify: Union[bool, str], cert: CertTypes,
               trust_env: bool = True) -> Dict[str, Union[bool, bytes]]:
    """The native TLS settings for verify= and cert=.

    verify=True uses, in order: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` from the
    environment (unless trust_env is false), the certifi bundle when certifi
    is installed, else the system store (OpenSSL's default paths); a str
    names a CA bundle file or a hashed directory; False turns verification
    off. An ``ssl.SSLContext`` is refused with TypeError: the TLS runs in the
    native loops with OpenSSL's own context, which a Python context cannot
    configure (pass its CA file as a path instead). cert is a PEM file
    holding the client certificate (and its key), or a (cert, key) pair."""
    if isinstance(verify, ssl.SSLContext):
        raise TypeError("verify= takes True, False or a CA bundle path, not an ssl.SSLContext: "
                        "the TLS runs in native code with its own OpenSSL context (pass the "
                        "context's CA file or directory as a path)")
    out: Dict[str, Union[bool, bytes]] = {"verify": bool(verify)}
    if verify is True and trust_env:
        env = os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")
        if env and os.path.exists(env):
            verify = env
    if isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        if not os.path.exists(path):
            raise ValueError(f"verify: no CA bundle or directory at {path!r}")
        out["verify"] = True
        out["ca_dir" if os.path.isdir(path) else "ca_file"] = os.fsencode(path)
    elif verify:
        try:
            import certifi
        except ImportError:
            pass
        else:
            out["ca_file"] = os.fsencode(certifi.where())
    if cert is not None:
        cert_file, key_file = (cert if isinstance(cert, (tuple, list)) else (cert, None))
        for p in (cert_file, key_file):
            if p is not None and not os.path.exists(p):
                raise ValueError(f"cert: no such file {p!r}")
        out["cert_file"] = os.fsencode(cert_file)
        if key_file is not None:
            out["key_file"] = os.fsencode(key_file)
    return out


def _set_timeout_parts(p: Plan, parts: Mapping[str, Any]) -> None:
    """A request's ``extensions["timeout"]`` (seconds by phase, as httpx
    puts them: connect, read, write, pool) onto its plan."""
    for name in ("connect", "read", "write", "pool"):
        v = parts.get(name)
        if v is not None:
            setattr(p, name + "_ns", max(1, int(float(v) * 1e9)))


class _ProxyRoute:
    """A request's way through a proxy: the pool key, the address to dial,
    the Proxy-Authorization value; or ``error``, the reason it cannot be
    sent (raised as TransportError). ``proxy`` names the proxy (password
    redacted) for error texts.

    - http and https proxies: plain-http targets share one key per proxy
      (absolute-form requests); an https target gets a key of its own and a
      CONNECT tunnel (``tunnel`` = its "host:port"). With an https proxy
      (``proxy_tls``) both go over TLS with the proxy, whose session is
      cached under ``proxy_key``, the key of its plain-http connections.
    - SOCKS proxies (``socks``: _core.SOCKS): a key per target; the dial
      runs the SOCKS handshake for ``socks_host``:``socks_port`` with the
      URL's user name (and password: SOCKS5), then the target's own TLS for
      https; ``path`` is Go's "PROXY->TARGET" of its error texts."""

    __slots__ = ("key", "host", "port", "auth", "error", "tunnel", "proxy_tls",
                 "proxy_key", "socks", "socks_host", "socks_port", "socks_user", "socks_pass",
                 "proxy", "path")

    def __init__(self, p: Optional[_proxy.ProxyURL], *, target: Optional[_URL] = None,
                 error: Optional[str] = None) -> None:
        self.key, self.host, self.port = b"", b"", 0
        self.auth: Optional[str] = None
        self.error = error
        self.tunnel: Optional[bytes] = None
        self.proxy_tls = False
        self.proxy_key: Optional[bytes] = None
        self.socks = 0
        self.socks_host: Optional[bytes] = None
        self.socks_port = 0
        self.socks_user: Optional[bytes] = None
        self.socks_pass: Optional[bytes] = None
        self.proxy = self.path = ""
        if p is None:
            return
        self.proxy = p.redacted
        user = f"{p.username}@" if p.username else ""
        self.key = f"{p.scheme}://{user}{p.hostport}|proxy".encode("utf-8")
        self.host = p.host.encode("idna") if not p.host.isascii() else p.host.encode("ascii")
        self.port = p.port
        if p.scheme.startswith("socks"):
            self._socks(p, target)
            return
        self.auth = p.authorization()
        if p.scheme == "https":
            self.proxy_tls, self.proxy_key = True, self.key
        if target is not None and target.scheme == "https":
            hostport = f"[{target.host}]" if ":" in target.host else target.host
            self.tunnel = f"{hostport}:{target.port}".encode("ascii")
            self.key += b"|" + target.key

    def _socks(self, p: _proxy.ProxyURL, target: Optional[_URL]) -> None:
        self.socks = _core.SOCKS[p.scheme]
        user = (p.username or "").encode("utf-8") if p.username is not None else None
        password = (p.password or "").encode("utf-8") if user is not None else None
        if user is not None and (b"\0" in user or b"\0" in (password or b"")):
            self.error = f"proxy {p.redacted}: a NUL byte in the SOCKS user name or password"
        elif user is not None and p.scheme.startswith("socks5") and (
                not user or len(user) > 255 or len(password or b"") > 255):
            # RFC 1929: 1 to 255 bytes of user name, at most 255 of password
            self.error = (f"proxy {p.redacted}: invalid username/password (SOCKS5 takes a "
                          "user name of 1 to 255 bytes and a password of at most 255)")
        elif user is not None and len(user) > 255:
            self.error = f"proxy {p.redacted}: SOCKS4 user id longer than 255 bytes"
        self.socks_user = user or None
        self.socks_pass = password if p.scheme.startswith("socks5") else None
        if target is not None:
            self.socks_host = target.host_bytes
            self.socks_port = target.port
            self.key += b"|" + target.key
            tgt = f"[{target.host}]" if ":" in target.host else target.host
            self.path = f"{p.hostport}->{tgt}:{target.port}"

    def __bool__(self) -> bool:
        return True


#: How requests to a (scheme, host, port) go: through a proxy, or False: direct.
_Route = Union[_ProxyRoute, Literal[False]]


def _proxyconnect(err: HTTPError, op: str, url: str, via: str = "") -> HTTPError:
    """A failure to dial the proxy, as Go words it: ``proxyconnect tcp: …``
    (``via``: what comes between, e.g. Go's "socks connect tcp P->T: ")."""
    prefix = f'{op} "{url}": '
    msg = str(err)
    cause = msg[len(prefix):] if msg.startswith(prefix) else msg
    return type(err)(f"{prefix}proxyconnect tcp: {via}{cause}", method=err.method, url=err.url)


def _check_cancel(cancel: object, plan: Plan) -> None:
    """The native exchange takes a CancelToken as it is, unchecked: anything
    else is refused here, before anything is sent."""
    if not isinstance(cancel, CancelToken):
        raise TypeError(f'{plan.op} "{plan.url}": cancel must be an ft.CancelToken or None, '
                        f"not {type(cancel).__name__}")


def _seconds(value: Optional[float], name: str) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0 or None")
    return value


class Transport:
    """An HTTP/1.1 transport with a native connection pool (Go's
    http.Transport). Safe to share between threads.

    Arguments (Go's Transport field in brackets; ``None`` for a timeout means
    no limit):

    - max_idle_conns [MaxIdleConns]: idle connections kept across all hosts;
      the globally oldest is closed beyond it. 0 = no limit. Default 100.
    - max_idle_conns_per_host [MaxIdleConnsPerHost]: idle connections kept per
      host; a returning connection is closed when its host's list is full;
      negative = keep none. Default 100 (Go's default of 2 makes a threaded
      fan-out to one host re-dial constantly).
    - max_conns_per_host [MaxConnsPerHost]: dialing + in use + idle
      connections per host. 0 = no limit.
    - idle_conn_timeout [IdleConnTimeout]: seconds an idle connection is kept.
      Default 90.
    - disable_keep_alives [DisableKeepAlives]: every request sends
      ``Connection: close`` and connections are never reused.
    - disable_compression [DisableCompression]: do not ask for gzip. When
      the transport asks for gzip itself (no Accept-Encoding from the caller,
      no Range, not HEAD) a gzip response is decoded transparently; a gzip
      response to the caller's own Accept-Encoding is not (Go's rule), but
      deflate, br and zstd are decoded when the caller's Accept-Encoding
      lists them (br and zstd need the ``compression`` extra: brotli,
      zstandard). Corrupt data raises RemoteProtocolError naming the encoding.
    - response_header_timeout [ResponseHeaderTimeout]: seconds to wait for the
      response head once the request is written; ResponseHeaderTimeout.
    - expect_continue_timeout [ExpectContinueTimeout]: with a request header
      ``Expect: 100-continue`` and a body, seconds to wait for ``100 Continue``
      before sending the body anyway; 0 or None = send it at once. Default 1.
    - dial_timeout [Dialer.Timeout]: seconds to connect; ConnectTimeout.
    - tls_handshake_timeout [TLSHandshakeTimeout]: seconds for the handshake.
    - max_response_header_bytes [MaxResponseHeaderBytes]: budget for the
      status line, 1xx responses and the header block. Default 10 MiB.
    - drain_limit: on close() before EOF, a remaining body of known size up to
      this many bytes is drained (for at most 50 ms) so the connection can be
      pooled; 0 = always close (Go 1.26). Default 256 KiB (Go tip).
    - io_threads: native I/O engine threads (idle watch, drains, timers,
      and every exchange of the batch and asyncio APIs).
    - max_body_size: the most bytes a response body may have, after
      decoding; a longer one (or a longer declared Content-Length) raises
      BodyTooLarge (a RemoteProtocolError) and closes the connection; None =
      no limit. Per request: ``max_body_size=``. Decoding is bounded by what
      is read whatever the limit: a streaming read of n bytes never makes a
      decoder hold much more than n (one zstd block, 128 KiB, at most).
    - verify [TLSClientConfig]: True (SSL_CERT_FILE / SSL_CERT_DIR, else the
      certifi bundle, else the system store), False (no verification), or
      the path of a CA bundle file or hashed directory (ValueError if
      missing); an ssl.SSLContext raises TypeError.
    - cert [TLSClientConfig.Certificates]: a PEM file with the client
      certificate and its key, or a (cert, key) pair.
    - trust_env: read SSL_CERT_FILE / SSL_CERT_DIR and the proxy variables
      from the environment (default True).
    - proxy [Proxy]: a proxy URL for every request (Go's ProxyURL; no
      NO_PROXY), None for none; default: from the environment (HTTP_PROXY,
      HTTPS_PROXY, ALL_PROXY, NO_PROXY), read once per process (Go's
      ProxyFromEnvironment; see ``fasttransport.proxy``). Kinds:
      ``http://``: plain-http requests go in absolute form over one pool key
      per proxy, with ``Proxy-Authorization: Basic`` from its userinfo;
      https targets go through a CONNECT tunnel (one key per target; a
      refusal raises ConnectError with the proxy's reason phrase, Go's
      text). ``https://``: the same over TLS with the proxy (its name and
      certificate checked with verify/cert), the target's TLS running
      inside the proxy's (TLS in TLS). ``socks4://``, ``socks4a://``,
      ``socks5://``, ``socks5h://`` (port 1080 by default): the SOCKS
      handshake after the TCP connect to the proxy, then requests as on a
      direct connection (one key per target and proxy); socks4 and socks5
      resolve the target here (on a resolver thread), socks4a and socks5h
      send its name to the proxy and never resolve it here; ``user:pass@``
      is SOCKS5's username/password authentication (RFC 1929), SOCKS4's
      user id. The SOCKS steps share the dial's deadline (dial_timeout;
      one minute without it) and the request's. A proxy that cannot be
      dialled, or a SOCKS handshake that fails, raises ConnectError (or
      ConnectTimeout) ``proxyconnect tcp: …`` in Go's words (e.g.
      ``proxyconnect tcp: socks connect tcp 127.0.0.1:1080->example.com:80:
      unknown error connection refused``); TLS with an https proxy failing
      raises TLSError ``proxyconnect tcp: tls: …``; an invalid proxy URL
      raises ValueError here.

    Errors: a failed exchange raises a TransportError subclass whose message
    names the method, the URL and the cause.
    """

    def __init__(self, *, max_idle_conns: int = 100,
                 max_idle_conns_per_host: Optional[int] = None,
                 max_conns_per_host: int = 0,
                 idle_conn_timeout: Optional[float] = 90.0,
                 disable_keep_alives: bool = False,
                 disable_compression: bool = False,
                 response_header_timeout: Optional[float] = None,
                 expect_continue_timeout: Optional[float] = 1.0,
                 dial_timeout: Optional[float] = 30.0,
                 tls_handshake_timeout: Optional[float] = 10.0,
                 max_response_header_bytes: int = 10 << 20,
                 drain_limit: int = 262144,
                 io_threads: int = 1,
                 verify: Union[bool, str] = True,
                 cert: CertTypes = None,
                 proxy: Optional[str] = _UNSET,
                 max_body_size: Optional[int] = None,
                 trust_env: bool = True) -> None:
        if max_idle_conns_per_host is None:
            max_idle_conns_per_host = max_idle_conns if max_idle_conns > 0 else 100
        if io_threads < 1:
            raise ValueError("io_threads must be >= 1")
        if max_response_header_bytes <= 0:
            raise ValueError("max_response_header_bytes must be > 0")
        if drain_limit < 0:
            raise ValueError("drain_limit must be >= 0")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError("max_body_size must be >= 0 or None")
        self.max_body_size = max_body_size
        self.max_idle_conns = max_idle_conns
        self.max_idle_conns_per_host = max_idle_conns_per_host
        self.max_conns_per_host = max_conns_per_host
        self.idle_conn_timeout = _seconds(idle_conn_timeout, "idle_conn_timeout")
        self.disable_keep_alives = bool(disable_keep_alives)
        self.disable_compression = bool(disable_compression)
        self.response_header_timeout = _seconds(response_header_timeout,
                                                "response_header_timeout")
        self.expect_continue_timeout = _seconds(expect_continue_timeout,
                                                "expect_continue_timeout")
        self.dial_timeout = _seconds(dial_timeout, "dial_timeout")
        self.tls_handshake_timeout = _seconds(tls_handshake_timeout, "tls_handshake_timeout")
        self.max_response_header_bytes = int(max_response_header_bytes)
        self.drain_limit = int(drain_limit)
        self.io_threads = int(io_threads)
        self.verify = verify
        self.cert = cert
        self.proxy = None if proxy is _UNSET else proxy
        # None: never a proxy
        self._proxy: Union[_proxy.ProxyConfig, _proxy.FixedProxy, None] = None
        if proxy is _UNSET and not trust_env:
            proxy = None
        if proxy is _UNSET:
            cfg = _proxy.environment_config()
            self._proxy = cfg if cfg.enabled else None
        elif proxy is not None:
            self._proxy = _proxy.FixedProxy(_proxy.parse_proxy_url(str(proxy)))
        self._routes: Dict[bytes, _Route] = {}     # URL key -> its route
        tls = _tls_files(verify, cert, trust_env)
        self._core_kwargs: Dict[str, Any] = dict(
            max_idle_conns=max_idle_conns,
            max_idle_conns_per_host=max_idle_conns_per_host,
            max_conns_per_host=max_conns_per_host,
            idle_conn_timeout=self.idle_conn_timeout,
            disable_keep_alives=self.disable_keep_alives,
            dial_timeout=self.dial_timeout,
            response_header_timeout=self.response_header_timeout,
            max_response_header_bytes=self.max_response_header_bytes,
            drain_limit=self.drain_limit,
            io_threads=self.io_threads,
            tls_handshake_timeout=self.tls_handshake_timeout,
            expect_continue_timeout=self.expect_continue_timeout,
            **tls,
        )
        self._core_obj: Optional[CoreTransport] = CoreTransport(**self._core_kwargs)
        self._closed = False
        _TRANSPORTS.add(self)

    @property
    def _core(self) -> CoreTransport:
        """The native transport; in a process forked since it was made, a
        fresh one (empty pool, its own engine), made on first use."""
        core = self._core_obj
        if core is None:
            core = self._core_obj = CoreTransport(**self._core_kwargs)
            if self._closed:
                core.close()
        return core

    # ---- exchanges ------------------------------------------------------

    def round_trip(self, request: Request) -> Response:
        """One exchange: no redirects, no cookies, always streaming (read the
        body to EOF or close it). Raises TransportError subclasses."""
        return self._send(request, None, None, True)

    def _send(self, request: Request, deadline_ns: Optional[int], cancel: Optional[CancelToken],
              stream: bool, decode: bool = True) -> Response:
        plan = self._plan(request)
        if cancel is not None:
            _check_cancel(cancel, plan)
        while True:
            x = Exchange()
            t0 = time.perf_counter()
            try:
                x.start(self._core_obj or self._core, plan, deadline_ns, cancel)
            except HTTPError as err:
                if _should_retry(x, request, err):
                    continue   # (a one-shot body is never retried: the error stands, as in Go)
                raise self._hop_error(err, plan) from None
            return Response(x, request, plan.gzip, time.perf_counter() - t0, stream, self,
                            decode)

    def _submit(self, request: Request, plan: Plan, deadline_ns: Optional[int],
                cancel: Optional[CancelToken], cq: CompletionQueue, mode: int,
                limit: int, x: Optional[Exchange] = None) -> Exchange:
        """Hand one exchange to an engine (Exchange.submit); its reports go
        to cq. Returns the exchange: ``x`` when given (its owner set first,
        since another thread may take its first report before this returns)."""
        if plan.chunked:
            raise InvalidRequest(f'{plan.op} "{plan.url}": a streamed request body needs a '
                                 "blocking call (submit, map and AsyncClient send bytes or a "
                                 "file)", method=plan.op.upper(), url=plan.url)
        if cancel is not None:
            _check_cancel(cancel, plan)
        if x is None:
            x = Exchange()
        x.submit(self._core, cq, mode, limit, plan, deadline_ns, cancel)
        return x

    @staticmethod
    def _hop_error(err: Exception, plan: Plan) -> Exception:
        """The error an exchange of plan failed with, as the caller sees it:
        a proxy that could not be dialled, or a SOCKS handshake that failed,
        says so (``proxyconnect tcp: …``; a CONNECT refusal keeps the proxy's
        own words, as in Go); the request's deadline passing while the
        connection through the proxy was being made names the proxy."""
        route = plan.route
        if not isinstance(route, _ProxyRoute) or not isinstance(err, (ConnectError,
                                                                      ConnectTimeout)):
            return err
        prefix = f'{plan.op} "{plan.url}": '
        msg = str(err)
        cause = msg[len(prefix):] if msg.startswith(prefix) else msg
        if cause.startswith("socks connect "):
            return _proxyconnect(err, plan.op, plan.url)
        if cause.startswith("dial tcp"):
            via = f"socks connect tcp {route.path}: " if route.socks else ""
            return _proxyconnect(err, plan.op, plan.url, via)
        if isinstance(err, ConnectTimeout) and cause.startswith("context deadline exceeded"):
            return type(err)(f"{msg} (connecting through proxy {route.proxy})",
                             method=err.method, url=err.url)
        return err

    def _plan(self, request: Request) -> Plan:
        """What an exchange for request needs (a _core.Plan, not changed once
        an exchange has it)."""
        u = request._u
        method = request._method
        headers = request._headers
        gzip = not self.disable_compression and method != "HEAD"
        req_close = self.disable_keep_alives
        if headers._list:
            gzip = gzip and "accept-encoding" not in headers and "range" not in headers
            req_close = req_close or any(
                "close" in v.lower() for v in headers.get_list("connection"))
        body = request.body
        chunked = request.chunked
        if body is None:
            length = 0 if method in ("POST", "PUT", "PATCH") else -1
        elif isinstance(body, bytes):
            length = len(body)
        else:
            # a body streamed from the write loop: its declared length, or chunked
            length = getattr(body, "length", -1)
            chunked = chunked or length < 0
        expect = bool(body is not None and headers._list and any(
            "100-continue" in v.lower() for v in headers.get_list("expect")))
        op = method.capitalize()
        key, host, port, tls = u.key, u.host_bytes, u.port, u.scheme == "https"
        target, hlist = u.target, headers._list
        route: _Route = False
        tunnel: Optional[_ProxyRoute] = None
        if self._proxy is not None:
            cached = self._routes.get(u.key)
            route = cached if cached is not None else self._route(self._proxy, u)
            if route:
                if route.error:
                    raise TransportError(f'{op} "{u.redacted}": {route.error}',
                                         method=method, url=u.redacted)
                key, host, port = route.key, route.host, route.port
                if route.socks:
                    tunnel = route     # origin-form, as on a direct connection
                elif route.tunnel is None:
                    # Go's absolute-form request line to an http(s) proxy;
                    # the key leaves the target out, so one proxy connection
                    # serves every plain-http target (over TLS with an https
                    # proxy: its name and certificate)
                    target = f"http://{headers.get('Host') or u.host_header}{u.target}"
                    tls = False
                    if route.auth and "proxy-authorization" not in headers:
                        hlist = hlist + [("Proxy-Authorization", route.auth)]
                else:
                    tunnel = route
        head = _core.build_head(method, target, u.host_header, hlist, length,
                                chunked, gzip, self.disable_keep_alives,
                                DEFAULT_USER_AGENT)
        p = Plan(op, u.redacted, key, host, port, head, body, length,
                 chunked and not isinstance(body, bytes), method == "HEAD", req_close,
                 tls, expect, gzip, request._one_shot,
                 # the body limit: the request's, else the transport's (0 = none)
                 (self.max_body_size if request.max_body_size is None
                  else request.max_body_size) or 0, route)
        parts = request.extensions.get("timeout") if request.extensions else None
        if parts:
            _set_timeout_parts(p, parts)
        if route and route.proxy_tls:
            # an https proxy: TLS with it first (its name, its certificate)
            p.proxy_tls = True
            p.proxy_key = route.proxy_key
        if tunnel is not None:
            p.tls_host = u.host_bytes
            if tunnel.socks:
                # the SOCKS handshake after the TCP connect, then (https)
                # TLS with the target
                p.socks = tunnel.socks
                p.socks_host = tunnel.socks_host
                p.socks_port = tunnel.socks_port
                p.socks_user = tunnel.socks_user
                p.socks_pass = tunnel.socks_pass
            else:
                # https through an http(s) proxy: CONNECT to the target (over
                # TLS with an https proxy), then TLS with the target
                p.tunnel = tunnel.tunnel
                if tunnel.auth:
                    p.tunnel_auth = tunnel.auth.encode("latin-1")
        return p

    def _route(self, proxy: Union[_proxy.ProxyConfig, _proxy.FixedProxy], u: _URL) -> _Route:
        """How requests to u's (scheme, host, port) go through proxy: False
        (direct) or a _ProxyRoute; decided once per key and cached (a
        bounded cache)."""
        route: _Route
        try:
            p = proxy.proxy_for(u.scheme, u.host, u.port)
        except ValueError as e:          # the CGI refusal
            route = _ProxyRoute(None, error=str(e))
        else:
            route = False if p is None else _ProxyRoute(p, target=u)
        routes = self._routes
        if len(routes) >= 4096:
            routes.clear()
        routes[u.key] = route
        return route

    # ---- pool -----------------------------------------------------------

    def close_idle_connections(self) -> None:
        """Close every idle connection now (Go's CloseIdleConnections)."""
        self._core.close_idle()

    def close(self) -> None:
        """Close every connection and join every native thread. Responses
        still being read fail with TransportError. Idempotent."""
        self._closed = True
        self._core.close()

    def stats(self) -> TransportStats:
        """A snapshot of the live counts and counters (TransportStats)."""
        return TransportStats(**self._core.stats())

    def host_stats(self) -> Dict[str, Dict[str, int]]:
        """Per connection key ("scheme://host:port"): a dict with ``conns``
        (dialing + in use + idle + draining, what max_conns_per_host limits),
        ``idle`` and ``waiting`` (requests waiting for a connection)."""
        return {k: {"conns": c, "idle": i, "waiting": w}
                for k, (c, i, w) in self._core.hosts().items()}

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return (f"<Transport open={s.open_conns} idle={s.idle_conns} "
                f"active={s.active_conns} io_threads={s.io_threads}>")
