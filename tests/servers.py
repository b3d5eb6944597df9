"""Loopback HTTP/1.1 servers for the test suite.

Everything here listens on 127.0.0.1 with a port chosen by the kernel, runs in
threads that are always joined, and closes every socket it opened.

- :class:`ScriptedServer` is a raw TCP server: each accepted connection runs a
  handler in its own thread.  A handler is either a function ``handler(conn)``
  taking a :class:`ServerConn`, or a *script*: a list of byte strings sent in
  answer to successive requests on each connection, optionally ending with
  :data:`CLOSE` or :data:`RESET` (see :func:`script_handler`).
- :func:`http_handler` is a keep-alive HTTP/1.1 server with a few routes
  (``/``, ``/bytes/N``, ``/chunked/N``, ``/status/N``, ``/echo``, ``/close``,
  ``/slow``, ``/nolength/N``); run it with ``ScriptedServer(http_handler)``.
- :func:`response` and :func:`chunked_response` build exact response bytes for
  scripts.
- :func:`thread_count`, :func:`fd_count` and :class:`LeakCheck` measure this
  process's threads and file descriptors, for leak tests.
- :func:`wait_until` polls any condition (a Transport's stats, say) until it
  holds or a timeout passes.

The server records what it saw, so tests can assert on observable behaviour:
``accepted`` (connections accepted), ``max_concurrent`` (peak of connections
the client held open at once), ``open_conns``, ``requests`` (``(conn_index,
Request)`` in arrival order; ``keep_requests=False`` keeps only
``request_count``, for soak runs).  ``wait_for(predicate, timeout)`` waits for any condition over
them without sleeping for a fixed time.
"""

from __future__ import annotations

import json
import os
import select
import selectors
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Union
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CLOSE",
    "RESET",
    "BadRequest",
    "IncompleteRequest",
    "LeakCheck",
    "Request",
    "ScriptedServer",
    "ServerConn",
    "body_bytes",
    "chunked_body",
    "chunked_response",
    "fd_count",
    "free_port",
    "http_handler",
    "per_connection",
    "response",
    "script_handler",
    "thread_count",
    "wait_until",
]

HOST = "127.0.0.1"

#: Largest request head ``read_request`` accepts.
MAX_HEAD = 1 << 20
#: Largest request body ``read_request`` accepts.
MAX_BODY = 256 << 20
#: How long a script waits for the next request before ending quietly.
SCRIPT_TIMEOUT = 30.0
#: How long the HTTP server keeps an idle connection open.
HTTP_IDLE_TIMEOUT = 30.0
#: Bound on requests served on one connection (a safety net, never reached in tests).
MAX_REQUESTS_PER_CONN = 1_000_000


class _Action:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Script item: close the connection (FIN) now.
CLOSE = _Action("CLOSE")
#: Script item: reset the connection (RST) now.
RESET = _Action("RESET")


class BadRequest(ValueError):
    """The bytes the client sent are not a request this server can parse."""


class IncompleteRequest(EOFError):
    """The client closed the connection in the middle of a request.

    ``partial`` holds the bytes of the unfinished request.
    """

    def __init__(self, message: str, partial: bytes) -> None:
        super().__init__(message)
        self.partial = partial


# --------------------------------------------------------------------------
# Requests


@dataclass
class Request:
    """A request as the server received it.

    ``headers`` are ``(name, value)`` pairs in wire order with the name's case
    as sent; ``raw`` is the exact bytes of the head and of the body as framed on
    the wire (chunk sizes and trailer included); ``body`` is the decoded body.
    """

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (case-insensitive), or ``default``."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return default

    def header_list(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in wire order."""
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    @property
    def header_names(self) -> list[str]:
        """Header names in wire order, as sent."""
        return [n for n, _ in self.headers]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (last value wins)."""
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.target).query).items()}

    @property
    def is_chunked(self) -> bool:
        codings = [
            t.strip().lower()
            for v in self.header_list("Transfer-Encoding")
            for t in v.split(",")
            if t.strip()
        ]
        return bool(codings) and codings[-1] == "chunked"

    def wants_close(self) -> bool:
        """True if the client asked for the connection to end after this exchange."""
        tokens = {t.strip().lower() for v in self.header_list("Connection") for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


def _parse_head(head: bytes) -> Request:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest(f"malformed request line {lines[0]!r}")
    method, target, version = (p.decode("latin-1") for p in parts)
    return Request(method, target, version, _parse_fields(lines[1:]), raw=head)


def _parse_fields(lines: Iterable[bytes]) -> list[tuple[str, str]]:
    fields = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name:
            raise BadRequest(f"malformed header line {line!r}")
        fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return fields


# --------------------------------------------------------------------------
# One accepted connection


class ServerConn:
    """The server's side of one accepted connection, handed to a handler.

    Reads are buffered: bytes that arrive after a request (pipelining) are kept
    for the next ``read_request`` or ``recv_raw``.  Every blocking call has a
    timeout; when the server stops, blocked reads see EOF.
    """

    def __init__(self, server: ScriptedServer, sock: socket.socket, index: int, peer: Any):
        self.server = server
        self.sock = sock
        #: 0 for the first connection the server accepted, 1 for the next, ...
        self.index = index
        #: The client's (host, port).
        self.peer = peer
        self._buf = bytearray()
        self._eof = False
        self._released = False
        self._lock = threading.Lock()  # guards _released and the socket's close

    # -- reading

    def _fill(self, deadline: float, what: str) -> bool:
        """Read more bytes into the buffer; False at EOF."""
        if self._eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"conn {self.index}: timed out waiting for {what}; have {bytes(self._buf[:200])!r}"
            )
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(
                f"conn {self.index}: timed out waiting for {what}; have {bytes(self._buf[:200])!r}"
            ) from None
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _read_until(self, sep: bytes, limit: int, deadline: float, what: str) -> bytes | None:
        """Bytes up to and including ``sep``; None at EOF with nothing buffered."""
        start = 0
        while True:
            idx = self._buf.find(sep, start)
            if idx >= 0:
                end = idx + len(sep)
                out = bytes(self._buf[:end])
                del self._buf[:end]
                return out
            if len(self._buf) > limit:
                raise BadRequest(f"{what} longer than {limit} bytes")
            start = max(0, len(self._buf) - len(sep) + 1)
            if not self._fill(deadline, what):
                if not self._buf:
                    return None
                partial = bytes(self._buf)
                raise IncompleteRequest(f"EOF in {what} after {len(partial)} bytes", partial)

    def _read_exact(self, n: int, deadline: float, what: str) -> bytes:
        while len(self._buf) < n:
            if not self._fill(deadline, what):
                partial = bytes(self._buf)
                raise IncompleteRequest(f"EOF in {what}: {len(partial)} of {n} bytes", partial)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_request(self, timeout: float = 5.0, *, body: bool = True) -> Request | None:
        """Read and record the next request; None if the client closed first.

        With ``body=False`` only the head is read; call :meth:`read_body` later
        (for ``Expect: 100-continue`` tests).  Raises ``TimeoutError`` after
        ``timeout`` seconds, :class:`IncompleteRequest` on EOF mid-request and
        :class:`BadRequest` on bytes that are not a request.
        """
        deadline = time.monotonic() + timeout
        head = self._read_until(b"\r\n\r\n", MAX_HEAD, deadline, "request head")
        if head is None:
            return None
        req = _parse_head(head)
        if body:
            self._read_body(req, deadline)
        self.server._record(self.index, req)
        return req

    def read_body(self, req: Request, timeout: float = 5.0) -> bytes:
        """Read the body of ``req`` (read with ``body=False``); returns it."""
        self._read_body(req, time.monotonic() + timeout)
        return req.body

    def _read_body(self, req: Request, deadline: float) -> None:
        raw = [req.raw]
        if req.is_chunked:
            parts = []
            total = 0
            while True:
                line = self._read_until(b"\r\n", 4096, deadline, "chunk size line")
                if line is None:
                    raise IncompleteRequest("EOF before chunk size", b"".join(raw))
                raw.append(line)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest(f"bad chunk size line {line!r}") from None
                if size == 0:
                    break
                total += size
                if total > MAX_BODY:
                    raise BadRequest(f"chunked body over {MAX_BODY} bytes")
                data = self._read_exact(size + 2, deadline, "chunk data")
                if data[-2:] != b"\r\n":
                    raise BadRequest(f"chunk data not followed by CRLF: {data[-2:]!r}")
                raw.append(data)
                parts.append(data[:-2])
            trailer_lines = []
            while True:
                line = self._read_until(b"\r\n", 65536, deadline, "trailer")
                if line is None:
                    raise IncompleteRequest("EOF in trailer", b"".join(raw))
                raw.append(line)
                if line == b"\r\n":
                    break
                trailer_lines.append(line[:-2])
            req.trailers = _parse_fields(trailer_lines)
            req.body = b"".join(parts)
        else:
            length = req.header("Content-Length")
            if length is not None:
                try:
                    n = int(length)
                except ValueError:
                    raise BadRequest(f"bad Content-Length {length!r}") from None
                if n < 0 or n > MAX_BODY:
                    raise BadRequest(f"unsupported Content-Length {n}")
                req.body = self._read_exact(n, deadline, "request body")
                raw.append(req.body)
        req.raw = b"".join(raw)

    def recv_raw(self, n: int = 65536, timeout: float = 5.0) -> bytes:
        """Up to ``n`` bytes as they arrive (buffered bytes first); b"" at EOF."""
        if not self._buf:
            self._fill(time.monotonic() + timeout, "raw bytes")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def peek_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        """Wait until ``marker`` has arrived; the bytes up to and including it,
        left buffered for the next read (to see how much of a body arrived
        before the client did something).  TimeoutError, IncompleteRequest
        at EOF."""
        deadline = time.monotonic() + timeout
        while (idx := self._buf.find(marker)) < 0:
            if not self._fill(deadline, f"{marker[:40]!r}"):
                raise IncompleteRequest(f"EOF before {marker[:40]!r}", bytes(self._buf))
        return bytes(self._buf[: idx + len(marker)])

    # -- writing and closing

    def send(self, data: bytes, timeout: float = 30.0) -> None:
        """Send all of ``data`` within ``timeout`` seconds (raises TimeoutError)."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise TimeoutError(f"conn {self.index}: send timed out") from None

    sendall = send

    def peer_closed(self) -> bool:
        """True once the client has closed or reset its end (a FIN or RST is
        queued here), without consuming any byte; also when request bytes the
        handler has not read yet arrived before the FIN (``POLLRDHUP``)."""
        poller = select.poll()
        try:
            poller.register(self.sock.fileno(), select.POLLRDHUP)
        except (OSError, ValueError):
            return True
        events = poller.poll(0)
        return bool(events and events[0][1] & (select.POLLRDHUP | select.POLLHUP
                                                | select.POLLERR | select.POLLNVAL))

    def shutdown_write(self) -> None:
        """Half-close: send FIN, keep reading."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the connection gracefully (FIN); idempotent.

        Unread bytes already received are discarded first so the kernel does
        not answer the close with a reset.
        """
        with self._lock:
            if self._released:
                return
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.setblocking(False)
                for _ in range(64):
                    if not self.sock.recv(65536):
                        break
            except OSError:
                pass
            self._close_locked()

    def reset(self) -> None:
        """Abort the connection: SO_LINGER 0 then close, so the peer gets RST."""
        with self._lock:
            if self._released:
                return
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            self._close_locked()

    @property
    def closed(self) -> bool:
        return self._released

    @property
    def stopping(self) -> bool:
        """True once the server is stopping; long handlers should return."""
        return self.server._stopping.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``, returning early (False) if the server stops."""
        return not self.server._stopping.wait(seconds)

    def _close_locked(self) -> None:
        self._released = True
        self.sock.close()
        self.server._released(self)

    def _abort_io(self) -> None:
        """Wake a handler blocked on this socket (server stop)."""
        with self._lock:
            if not self._released:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --------------------------------------------------------------------------
# Handlers from scripts


Handler = Callable[[ServerConn], Any]
Script = Sequence[Union[bytes, _Action]]


def script_handler(script: Script) -> Handler:
    """A handler that plays ``script`` on every connection.

    Each ``bytes`` item reads one request and then sends the item (``b""`` reads
    a request and sends nothing); :data:`CLOSE` closes the connection and
    :data:`RESET` resets it, at that point.  Once the script is exhausted the
    connection stays open and further requests are recorded but not answered,
    until the client closes (or 30 s pass without a request).
    """
    items = list(script)
    for item in items:
        if not isinstance(item, (bytes, bytearray, _Action)):
            raise TypeError(f"script items are bytes, CLOSE or RESET, not {item!r}")

    def handler(conn: ServerConn) -> None:
        try:
            for item in items:
                if item is CLOSE:
                    conn.close()
                    return
                if item is RESET:
                    conn.reset()
                    return
                if conn.read_request(timeout=SCRIPT_TIMEOUT) is None:
                    return
                if item:
                    conn.send(bytes(item))
            for _ in range(MAX_REQUESTS_PER_CONN):
                if conn.read_request(timeout=SCRIPT_TIMEOUT) is None:
                    return
        except TimeoutError:
            return

    return handler


def per_connection(*handlers: Handler | Script) -> Handler:
    """A handler that runs ``handlers[i]`` on the i-th accepted connection.

    Connections past the end run the last one.  Items are functions or scripts.
    """
    if not handlers:
        raise ValueError("per_connection needs at least one handler")
    resolved = [_as_handler(h) for h in handlers]

    def handler(conn: ServerConn) -> Any:
        return resolved[min(conn.index, len(resolved) - 1)](conn)

    return handler


def _as_handler(handler: Handler | Script) -> Handler:
    if callable(handler):
        return handler
    if isinstance(handler, (list, tuple)):
        return script_handler(handler)
    raise TypeError(f"a handler is a function or a script (list), not {type(handler).__name__}")


# --------------------------------------------------------------------------
# The server


class ScriptedServer:
    """A TCP server on 127.0.0.1 (kernel-chosen port) running ``handler`` per connection.

    Use as a context manager or call :meth:`start` / :meth:`stop`.  Exceptions
    raised by a handler are collected in ``errors`` (except the peer closing or
    resetting the connection) and raised by :meth:`check_errors`.
    """

    def __init__(
        self,
        handler: Handler | Script,
        *,
        name: str = "scripted",
        backlog: int = 128,
        join_timeout: float = 5.0,
        ssl_context: Any = None,
        keep_requests: bool = True,
    ) -> None:
        self.handler = _as_handler(handler)
        #: False: count requests in ``request_count`` but do not keep them in
        #: ``requests`` (long soak runs, where they would add up).
        self.keep_requests = keep_requests
        #: Requests read so far.
        self.request_count = 0
        #: An ``ssl.SSLContext`` (server side): each connection is wrapped in
        #: TLS before its handler runs; ``tls_errors`` counts failed handshakes.
        self.ssl_context = ssl_context
        self.tls_errors = 0
        self.name = name
        self.backlog = backlog
        self.join_timeout = join_timeout
        self._cond = threading.Condition()
        #: Connections accepted so far.
        self.accepted = 0
        #: Connections open now (accepted and not yet closed by the server).
        self.open_conns = 0
        #: Peak of ``open_conns``.
        self.max_concurrent = 0
        #: ``(conn_index, Request)`` for every request read, in arrival order.
        self.requests: list[tuple[int, Request]] = []
        #: ``(conn_index, exception, formatted traceback)`` raised by handlers.
        self.errors: list[tuple[int, BaseException, str]] = []
        self._conns: list[ServerConn] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._accept_thread: threading.Thread | None = None
        self.port = 0

    # -- addresses

    host = HOST

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def url(self, path: str = "/") -> str:
        """``http(s)://127.0.0.1:PORT`` + ``path``."""
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    # -- lifecycle

    def start(self) -> ScriptedServer:
        if self._listener is not None:
            raise RuntimeError("server already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, 0))
            listener.listen(self.backlog)
            listener.setblocking(False)
            self._wake_r, self._wake_w = socket.socketpair()
            # Made here, not in the thread, so every fd exists when start() returns.
            self._selector = selectors.DefaultSelector()
            self._selector.register(listener, selectors.EVENT_READ)
            self._selector.register(self._wake_r, selectors.EVENT_READ)
        except BaseException:
            listener.close()
            for sock in (self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept:{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, wake and join every handler, close every socket.

        Raises RuntimeError if a handler thread is still running after
        ``timeout`` (default ``join_timeout``) seconds.
        """
        if self._listener is None or self._stopping.is_set():
            return
        timeout = self.join_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stopping.set()
        assert self._wake_w is not None and self._accept_thread is not None
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [self._accept_thread] if self._accept_thread.is_alive() else []
        if not stuck:
            self._selector.close()  # type: ignore[union-attr]
            self._listener.close()
            self._wake_r.close()  # type: ignore[union-attr]
            self._wake_w.close()
        with self._cond:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            conn._abort_io()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck += [t for t in threads if t.is_alive()]
        if stuck:
            names = ", ".join(t.name for t in stuck)
            raise RuntimeError(
                f"{self.name} server: threads still running after {timeout}s: {names}"
            )
        with self._cond:
            leftover = list(self._conns)
        for conn in leftover:  # handlers returned; close what they left open
            conn.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_errors(self) -> None:
        """Raise AssertionError describing the first handler exception, if any."""
        with self._cond:
            errors = list(self.errors)
        if errors:
            index, _, tb = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise AssertionError(f"{self.name} server handler failed on conn {index}{more}:\n{tb}")

    # -- observation

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` is true; returns its last value.

        The predicate is re-checked whenever the server's state changes
        (connection accepted or closed, request recorded) and at least every
        20 ms, so it may also look at state outside the server.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return bool(predicate())
                self._cond.wait(min(remaining, 0.02))

    def requests_on(self, conn_index: int) -> list[Request]:
        """Requests read on one connection, in order."""
        with self._cond:
            return [r for i, r in self.requests if i == conn_index]

    @property
    def conn_indexes(self) -> list[int]:
        """Connection index of each recorded request, in arrival order."""
        with self._cond:
            return [i for i, _ in self.requests]

    # -- internals

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._selector is not None
        while not self._stopping.is_set():
            ready = [key.fileobj for key, _ in self._selector.select()]
            if self._wake_r in ready or self._stopping.is_set():
                return
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                conn = ServerConn(self, sock, self.accepted, peer)
                self.accepted += 1
                self.open_conns += 1
                self._conns.append(conn)
                # Peak of connections the client still holds open: one it has
                # already closed (its FIN is queued here) but whose handler
                # has not read the EOF yet does not count.
                live = sum(1 for c in self._conns if not c.peer_closed())
                self.max_concurrent = max(self.max_concurrent, live)
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(
                    target=self._serve,
                    args=(conn,),
                    daemon=True,
                    name=f"{self.name}-conn{conn.index}:{self.port}",
                )
                self._threads.append(thread)
                self._cond.notify_all()
            thread.start()

    def _serve(self, conn: ServerConn) -> None:
        try:
            if self.ssl_context is not None:
                try:
                    conn.sock.settimeout(10)
                    conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True)
                except OSError:
                    with self._cond:
                        self.tls_errors += 1
                        self._cond.notify_all()
                    return
            self.handler(conn)
        except (ConnectionError, EOFError):
            pass  # the client closed or reset: part of many tests
        except OSError:
            if not conn.closed and not self._stopping.is_set():
                self._record_error(conn)
        except BaseException:  # noqa: BLE001 - kept for check_errors()
            self._record_error(conn)
        finally:
            conn.close()

    def _record_error(self, conn: ServerConn) -> None:
        exc = sys.exc_info()[1]
        assert exc is not None
        with self._cond:
            self.errors.append((conn.index, exc, traceback.format_exc()))
            self._cond.notify_all()

    def _record(self, index: int, req: Request) -> None:
        with self._cond:
            self.request_count += 1
            if self.keep_requests:
                self.requests.append((index, req))
            self._cond.notify_all()

    def _released(self, conn: ServerConn) -> None:
        with self._cond:
            self.open_conns -= 1
            try:
                self._conns.remove(conn)
            except ValueError:
                pass
            self._cond.notify_all()


# --------------------------------------------------------------------------
# Response builders

_REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

HeaderList = Sequence[tuple[str, str]]


def _no_body_status(status: int) -> bool:
    return 100 <= status < 200 or status in (204, 304)


def _head_bytes(status: int, headers: HeaderList, reason: str | None) -> bytes:
    reason = _REASONS.get(status, "Status") if reason is None else reason
    lines = [f"HTTP/1.1 {status} {reason}\r\n"]
    lines += [f"{n}: {v}\r\n" for n, v in headers]
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def response(
    status: int = 200,
    body: bytes = b"",
    headers: HeaderList = (),
    *,
    reason: str | None = None,
    content_length: bool = True,
) -> bytes:
    """Exact bytes of an HTTP/1.1 response.

    ``Content-Length`` is added after ``headers`` unless ``content_length`` is
    False, a Content-Length is already given, or the status has no body.
    """
    headers = list(headers)
    has_length = any(n.lower() == "content-length" for n, _ in headers)
    if content_length and not has_length and not _no_body_status(status):
        headers.append(("Content-Length", str(len(body))))
    return _head_bytes(status, headers, reason) + body


def chunked_body(chunks: Iterable[bytes], trailers: HeaderList = ()) -> bytes:
    """A chunked-coded body: each non-empty chunk framed, the last chunk, trailers."""
    out = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c]
    out.append(b"0\r\n")
    out += [f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers]
    out.append(b"\r\n")
    return b"".join(out)


def chunked_response(
    chunks: Iterable[bytes],
    trailers: HeaderList = (),
    status: int = 200,
    headers: HeaderList = (),
    *,
    reason: str | None = None,
) -> bytes:
    """Exact bytes of a chunked response (``Transfer-Encoding: chunked`` added)."""
    headers = list(headers) + [("Transfer-Encoding", "chunked")]
    return _head_bytes(status, headers, reason) + chunked_body(chunks, trailers)


_PATTERN = bytes(range(ord("a"), ord("z") + 1)) + b"0123456789" + b"\n"


def body_bytes(n: int) -> bytes:
    """The ``n``-byte body the HTTP server sends for ``/bytes/n`` (and friends)."""
    reps = n // len(_PATTERN) + 1
    return (_PATTERN * reps)[:n]


# --------------------------------------------------------------------------
# The keep-alive HTTP/1.1 server


def http_handler(conn: ServerConn) -> None:
    """Serve HTTP/1.1 requests on ``conn`` until the client closes.

    Routes (``HEAD`` works on each: same head, no body):

    - ``/``: 200 ``hello``
    - ``/bytes/N``: N bytes (:func:`body_bytes`) with Content-Length
    - ``/chunked/N?chunk=K&trailer=1``: N bytes chunked in K-byte chunks
      (default 1024); ``trailer=1`` declares and sends ``X-Trailer: done``
    - ``/status/N?location=URL``: status N, body ``status N`` unless N has no body
    - ``/echo``: JSON ``{"method", "target", "version", "headers": [[name, value], ...],
      "body": latin-1 str}``
    - ``/close``: ``Connection: close`` then the server closes
    - ``/slow?delay=S``: waits S seconds (0.5 by default) before the head
    - ``/nolength/N``: N bytes delimited by the server closing (no length, no
      Connection header)
    - anything else: 404

    A request with ``Connection: close`` (or HTTP/1.0 without keep-alive) is
    answered with ``Connection: close`` and the connection closed.  A connection
    idle for 30 s is closed.
    """
    for _ in range(MAX_REQUESTS_PER_CONN):
        try:
            req = conn.read_request(timeout=HTTP_IDLE_TIMEOUT)
        except TimeoutError:
            return
        except BadRequest as exc:
            conn.send(response(400, str(exc).encode(), [("Connection", "close")]))
            return
        if req is None:
            return
        try:
            keep = _serve_route(conn, req)
        except TimeoutError:
            return
        if not keep or conn.closed:
            return


def _serve_route(conn: ServerConn, req: Request) -> bool:
    """Answer one request; returns whether the connection stays open."""
    head = req.method == "HEAD"
    close = req.wants_close()
    extra: list[tuple[str, str]] = [("Connection", "close")] if close else []
    path = req.path
    query = req.query
    parts = path.strip("/").split("/")

    def number(s: str) -> int | None:
        try:
            value = int(s)
        except ValueError:
            return None
        return value if value >= 0 else None

    def send(status: int, body: bytes, headers: HeaderList = ()) -> None:
        data = response(status, body, list(headers) + extra)
        if head:
            data = data[: len(data) - len(body)]
        conn.send(data)

    if path == "/":
        send(200, b"hello", [("Content-Type", "text/plain")])
    elif parts[0] == "bytes" and len(parts) == 2 and number(parts[1]) is not None:
        send(200, body_bytes(int(parts[1])), [("Content-Type", "application/octet-stream")])
    elif parts[0] == "chunked" and len(parts) == 2 and number(parts[1]) is not None:
        n = int(parts[1])
        k = number(query.get("chunk", "1024")) or 1024
        trailer = query.get("trailer") == "1"
        headers = [("Content-Type", "application/octet-stream")]
        if trailer:
            headers.append(("Trailer", "X-Trailer"))
        data = body_bytes(n)
        wire = chunked_response(
            (data[i : i + k] for i in range(0, n, k)),
            trailers=[("X-Trailer", "done")] if trailer else (),
            headers=headers + extra,
        )
        if head:
            wire = wire[: wire.index(b"\r\n\r\n") + 4]
        conn.send(wire)
    elif parts[0] == "status" and len(parts) == 2 and number(parts[1]) is not None:
        status = int(parts[1])
        if not 100 <= status <= 999:
            send(400, b"bad status")
        else:
            headers = [("Location", query["location"])] if "location" in query else []
            body = b"" if _no_body_status(status) else f"status {status}".encode()
            send(status, body, headers)
    elif path == "/echo":
        doc = {
            "method": req.method,
            "target": req.target,
            "version": req.version,
            "headers": [[n, v] for n, v in req.headers],
            "body": req.body.decode("latin-1"),
        }
        send(200, json.dumps(doc).encode(), [("Content-Type", "application/json")])
    elif path == "/close":
        if not close:
            extra.append(("Connection", "close"))
        send(200, b"closing", [("Content-Type", "text/plain")])
        return False
    elif path == "/slow":
        try:
            delay = float(query.get("delay", "0.5"))
        except ValueError:
            delay = 0.5
        if not conn.sleep(delay):
            return False
        send(200, b"slow", [("Content-Type", "text/plain")])
    elif parts[0] == "nolength" and len(parts) == 2 and number(parts[1]) is not None:
        body = b"" if head else body_bytes(int(parts[1]))
        conn.send(
            response(
                200,
                body,
                [("Content-Type", "application/octet-stream")] + extra,
                content_length=False,
            )
        )
        return False
    else:
        send(404, b"not found", [("Content-Type", "text/plain")])
    return not close


# --------------------------------------------------------------------------
# Waiting for a condition


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0,
               interval: float = 0.002) -> bool:
    """Poll ``predicate()`` every ``interval`` seconds until it is true or
    ``timeout`` seconds pass; returns whether it held (checked once more at
    the deadline).  For state the server does not see (a Transport's stats);
    for the server's own state :meth:`ScriptedServer.wait_for` wakes sooner.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)
    return True


# --------------------------------------------------------------------------
# Leak accounting


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): for
    connection-refused cases and for servers started by the tests."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def thread_count() -> int:
    """Threads of this process, native ones included (``/proc/self/task``)."""
    return len(os.listdir("/proc/self/task"))


def fd_count() -> int:
    """Open file descriptors of this process (``/proc/self/fd``)."""
    return len(os.listdir("/proc/self/fd"))


def _fd_targets() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the descriptor listdir itself used, or one closed meanwhile
    return out


def _thread_names() -> dict[str, str]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                out[tid] = f.read().strip()
        except OSError:
            pass
    return out


class LeakCheck:
    """Counts this process's threads and fds now, to compare with later.

    :meth:`check` waits (up to ``timeout``, polling) for both counts to come
    back to at most their starting values, and raises AssertionError naming
    the extra threads and descriptors otherwise.
    """

    def __init__(self) -> None:
        self.threads = thread_count()
        self.fds = fd_count()
        self._fd_targets = _fd_targets()
        self._thread_names = _thread_names()

    def extra(self) -> tuple[int, int]:
        """(threads, fds) above the starting counts; negative when fewer."""
        return thread_count() - self.threads, fd_count() - self.fds

    def check(self, timeout: float = 2.0) -> None:
        if wait_until(lambda: max(self.extra()) <= 0, timeout, interval=0.01):
            return
        threads, fds = self.extra()
        new_fds = {fd: t for fd, t in _fd_targets().items() if self._fd_targets.get(fd) != t}
        new_threads = {
            tid: n for tid, n in _thread_names().items() if tid not in self._thread_names
        }
        raise AssertionError(
            f"leak after {timeout}s: {threads:+d} threads {sorted(new_threads.values())}, "
            f"{fds:+d} fds {sorted(new_fds.values())}"
        )
