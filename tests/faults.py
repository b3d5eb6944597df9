"""Fault injection for the test suite: server handlers that misbehave on purpose.

Every handler here runs on a :class:`servers.ScriptedServer` (loopback only)
and every loop in it is bounded: by a byte budget, by :data:`HOLD_LIMIT`
seconds, by the client closing its end, or by the server stopping.  Each
handler serves one connection; combine them with :func:`servers.per_connection`
(for example a fault on the first connection, then a good answer) or pick one
by path with :func:`fault_routes`.

Faults, named after what the client sees:

- :func:`rst_mid_head` / :func:`rst_mid_body`: RST after part of the head or
  after the head and part of the body;
- :func:`truncated_body`: FIN after part of a Content-Length body;
- :func:`fin_after_response`: one good answer, then FIN on the now idle
  connection (the close races the client's next request);
- :func:`rst_after_response`: the same with RST;
- :func:`half_close`: the answer, then FIN (shut the write side) while the
  server keeps reading until the client closes;
- :func:`slowloris_head`: a valid head one byte every 100 ms;
- :func:`endless_headers`: header lines that never end;
- :func:`garbage`: bytes that are not a status line;
- :func:`huge_content_length`: ``Content-Length: 2147483648`` and a few bytes,
  then silence;
- :func:`early_response`: a final response after reading only the request
  head, while the client is still writing the body;
- :func:`never_answer`: a connection accepted and never read or answered;
- over TLS (on a server with ``ssl_context``): :func:`silent_after_handshake`;
  on a plain server behind an ``https`` URL: :func:`reset_during_handshake`
  and :func:`close_during_handshake`.

:class:`FullListener` is a listener whose accept queue is full, so a connect
to it stays pending: a dial that cannot finish.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Callable

from servers import ServerConn, body_bytes, chunked_response, response

__all__ = [
    "GOOD",
    "HOLD_LIMIT",
    "HUGE_LENGTH",
    "TRICKLE_INTERVAL",
    "FullListener",
    "close_during_handshake",
    "early_response",
    "endless_headers",
    "fault_routes",
    "fin_after_response",
    "garbage",
    "good",
    "half_close",
    "hold",
    "huge_content_length",
    "never_answer",
    "reset_during_handshake",
    "rst_after_response",
    "rst_mid_body",
    "rst_mid_head",
    "silent_after_handshake",
    "slowloris_head",
    "truncated_body",
    "wait_peer_gone",
]

#: The longest any handler waits for anything (seconds).
HOLD_LIMIT = 10.0
#: Pause between the bytes of :func:`slowloris_head`.
TRICKLE_INTERVAL = 0.1
#: The Content-Length :func:`huge_content_length` announces (2 GiB).
HUGE_LENGTH = 2 << 30
#: The answer of :func:`good` and of the second connection in most fault tests.
GOOD = response(200, b"fine")
#: Bytes :func:`endless_headers` sends at most before giving up (64 MiB).
ENDLESS_BUDGET = 64 << 20

Handler = Callable[[ServerConn], None]


def hold(conn: ServerConn, seconds: float = HOLD_LIMIT) -> bool:
    """Keep ``conn`` open, reading and discarding whatever arrives, until the
    client closes it (returns True), ``seconds`` pass or the server stops
    (False).  Never sends anything."""
    deadline = time.monotonic() + min(seconds, HOLD_LIMIT)
    while not conn.stopping:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            if conn.recv_raw(timeout=remaining) == b"":
                return True
        except TimeoutError:
            return False
    return False


def _read(conn: ServerConn, body: bool = True) -> bool:
    """Read one request; False if the client closed first."""
    return conn.read_request(timeout=HOLD_LIMIT, body=body) is not None


def good(conn: ServerConn) -> None:
    """Answer every request with :data:`GOOD` (keep-alive) until the client closes."""
    while _read(conn):
        conn.send(GOOD)


def rst_mid_head(conn: ServerConn) -> None:
    """Read the request, send part of a response head, then RST."""
    if _read(conn):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Le")
        conn.reset()


def rst_mid_body(conn: ServerConn, length: int = 100_000, sent: int = 40_000) -> None:
    """Read the request, send the head and ``sent`` of ``length`` body bytes, then RST."""
    if _read(conn):
        conn.send(response(200, body_bytes(length))[: -(length - sent)])
        conn.reset()


def truncated_body(conn: ServerConn, length: int = 1 << 20, sent: int = 600_000) -> None:
    """Read the request, send the head and ``sent`` of ``length`` body bytes, then FIN."""
    if _read(conn):
        conn.send(response(200, body_bytes(length))[: -(length - sent)])
        conn.close()


def fin_after_response(conn: ServerConn) -> None:
    """Answer one request as keep-alive (no ``Connection: close``), then FIN at once:
    the connection the client has just pooled is dead."""
    if _read(conn):
        conn.send(GOOD)
        conn.close()


def rst_after_response(conn: ServerConn) -> None:
    """Answer one request as keep-alive, then RST the now idle connection."""
    if _read(conn):
        conn.send(GOOD)
        conn.reset()


def half_close(conn: ServerConn, delimited: bool = True) -> None:
    """Answer one request, shut the write side (FIN), then keep reading until
    the client closes.  ``delimited=False`` sends a body without length, ended
    by that FIN."""
    if _read(conn):
        conn.send(response(200, b"half-closed", content_length=delimited))
        conn.shutdown_write()
        hold(conn)


def slowloris_head(conn: ServerConn, interval: float = TRICKLE_INTERVAL) -> None:
    """Read the request, then send a valid head one byte every ``interval``
    seconds (about 30 s of it) until the client goes away."""
    if not _read(conn):
        return
    head = response(200, b"late", [("X-Slow", "s" * 300)])
    for i in range(len(head)):
        conn.send(head[i : i + 1])
        if not conn.sleep(interval) or conn.peer_closed():
            return


def endless_headers(conn: ServerConn) -> None:
    """Read the request, then send header lines without end (up to
    :data:`ENDLESS_BUDGET` bytes) until the client goes away."""
    if not _read(conn):
        return
    conn.send(b"HTTP/1.1 200 OK\r\n")
    block = b"".join(b"X-Filler-%06d: %s\r\n" % (i, b"f" * 40) for i in range(256))
    for _ in range(ENDLESS_BUDGET // len(block)):
        if conn.stopping:
            return
        conn.send(block, timeout=HOLD_LIMIT)


def garbage(data: bytes, then: str = "hold") -> Handler:
    """Read the request and answer ``data`` (not HTTP); then ``"hold"`` the
    connection open until the client closes it, or ``"close"`` it (FIN)."""
    if then not in ("hold", "close"):
        raise ValueError(f"then is 'hold' or 'close', not {then!r}")

    def handler(conn: ServerConn) -> None:
        if _read(conn):
            conn.send(data)
            if then == "close":
                conn.close()
            else:
                hold(conn)

    return handler


def huge_content_length(conn: ServerConn) -> None:
    """Read the request, announce :data:`HUGE_LENGTH` body bytes, send 1000
    of them, then nothing until the client closes."""
    if _read(conn):
        conn.send(response(200, headers=[("Content-Length", str(HUGE_LENGTH))])
                  + body_bytes(1000))
        hold(conn)


def early_response(status: int = 413, then: str = "stall") -> Handler:
    """Read only the request head and answer ``status`` at once, while the
    client is still writing its body.  Then ``"stall"``: read nothing more and
    keep the connection open until the client closes it (the client's write
    cannot finish); ``"reset"``: RST (the answer says ``Connection: close``)."""
    if then not in ("stall", "reset"):
        raise ValueError(f"then is 'stall' or 'reset', not {then!r}")

    def handler(conn: ServerConn) -> None:
        if not _read(conn, body=False):
            return
        close = [("Connection", "close")] if then == "reset" else []
        conn.send(response(status, b"early", close))
        if then == "reset":
            conn.reset()
        else:
            never_answer(conn)

    return handler


def wait_peer_gone(conn: ServerConn, seconds: float = HOLD_LIMIT) -> bool:
    """Wait, reading nothing, until the client closes or resets ``conn`` (True),
    ``seconds`` pass or the server stops (False).  Unlike a read, this sees the
    client's FIN even behind unread request bytes (``POLLRDHUP``)."""
    gone = select.POLLRDHUP | select.POLLHUP | select.POLLERR
    poller = select.poll()
    try:
        poller.register(conn.sock.fileno(), gone)
    except (OSError, ValueError):
        return True  # already closed here
    deadline = time.monotonic() + min(seconds, HOLD_LIMIT)
    while not conn.stopping:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if poller.poll(remaining * 1000):
            return not conn.stopping
    return False


def never_answer(conn: ServerConn) -> None:
    """Accept and do nothing: never read, never answer, until the client closes."""
    wait_peer_gone(conn)


def silent_after_handshake(conn: ServerConn) -> None:
    """On a TLS server: the handshake completed, read the request, then silence."""
    if _read(conn):
        hold(conn)


def _client_hello(conn: ServerConn) -> bool:
    """Read the first bytes of a TLS ClientHello; False if the client closed first."""
    data = conn.recv_raw(timeout=HOLD_LIMIT)
    if not data:
        return False
    if data[:1] != b"\x16":
        raise AssertionError(f"expected a TLS handshake record, got {data[:16]!r}")
    return True


def reset_during_handshake(conn: ServerConn) -> None:
    """On a plain server behind an https URL: read the ClientHello, then RST."""
    if _client_hello(conn):
        conn.reset()


def close_during_handshake(conn: ServerConn) -> None:
    """On a plain server behind an https URL: read the ClientHello, then FIN."""
    if _client_hello(conn):
        conn.close()


# --------------------------------------------------------------------------
# A keep-alive server with a fault per path, for soak tests


def fault_routes(conn: ServerConn) -> None:
    """Serve requests until the client closes; the path picks the answer:

    - ``/bytes/N``: N bytes (:func:`servers.body_bytes`) with Content-Length;
    - ``/chunked/N``: the same bytes chunked in 4 KiB chunks;
    - ``/hold``: no answer; the connection is held until the client closes it
      (for client timeouts and cancellation);
    - ``/stall/N``: the head and half of N bytes, then nothing until the
      client closes (for cancellation while reading the body);
    - ``/reset``: RST instead of an answer;
    - ``/cut/N``: the head and half of N bytes, then RST;
    - ``/truncate/N``: the head and half of N bytes, then FIN;
    - ``/garbage``: not a status line, then FIN;
    - ``/close``: ``Connection: close`` then FIN.
    """
    for _ in range(1_000_000):
        req = conn.read_request(timeout=30)
        if req is None:
            return
        parts = req.path.strip("/").split("/")
        n = int(parts[1]) if len(parts) == 2 else 0
        kind = parts[0]
        if kind == "bytes":
            conn.send(response(200, body_bytes(n)))
        elif kind == "chunked":
            data = body_bytes(n)
            conn.send(chunked_response(data[i : i + 4096] for i in range(0, n, 4096)))
        elif kind == "hold":
            hold(conn)
            return
        elif kind == "stall":
            conn.send(response(200, body_bytes(n))[: -(n - n // 2)])
            hold(conn)
            return
        elif kind == "reset":
            conn.reset()
            return
        elif kind in ("cut", "truncate"):
            conn.send(response(200, body_bytes(n))[: -(n - n // 2)])
            if kind == "cut":
                conn.reset()
            else:
                conn.close()
            return
        elif kind == "garbage":
            conn.send(b"\x00\xffNOT HTTP\r\n\r\n")
            conn.close()
            return
        elif kind == "close":
            conn.send(response(200, b"bye", [("Connection", "close")]))
            conn.close()
            return
        else:
            conn.send(response(404, b"no such fault"))


# --------------------------------------------------------------------------
# A listener that never accepts


class FullListener:
    """A listener on 127.0.0.1 that never accepts and whose accept queue is
    full, so a new connect stays pending (SYNs are dropped): a dial that
    cannot finish until its timeout.  Use as a context manager."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self._fillers: list[socket.socket] = []

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def fill(self) -> FullListener:
        """Connect until a connect stays pending; raises if that never happens."""
        for _ in range(16):
            s = socket.socket()
            s.setblocking(False)
            self._fillers.append(s)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            _, writable, _ = select.select([], [s], [], 0.2)
            if not writable:
                return self
        raise AssertionError("could not fill the accept queue")

    def close(self) -> None:
        for s in self._fillers:
            s.close()
        self._fillers.clear()
        self.sock.close()

    def __enter__(self) -> FullListener:
        return self.fill()

    def __exit__(self, *exc: object) -> None:
        self.close()
