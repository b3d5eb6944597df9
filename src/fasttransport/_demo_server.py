"""The loopback server of ``fasttransport demo``, run in a process of its own.

``python -m fasttransport._demo_server`` listens on 127.0.0.1 (a port the
kernel picks), writes the port and a newline to stdout, and serves HTTP/1.1
with keep-alive until its stdin reaches end of file: the demo holds the other
end of that pipe, so the server ends with the demo, however the demo ends
(its normal exit, Ctrl-C, or a kill that gives it no time to clean up).
SIGTERM ends it too; SIGINT is ignored, as the demo, which gets the same
Ctrl-C from the terminal, stops the server itself.

One thread and a selector serve every connection, so the server costs little
beside the client it serves, and the demo's CPU figures, taken in the
demo's process, are the client's alone.

Every request gets ``200 OK``: ``/small`` a 13-byte body, any other path a
2,048-byte body. A request body announced by Content-Length is read and
ignored; ``Connection: close`` closes the connection after the response.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
from typing import Dict

BIG = 2048
SMALL = 13


def _response(size: int) -> bytes:
    head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {size}\r\n\r\n")
    return head.encode("ascii") + b"x" * size


RESPONSES = {b"/small": _response(SMALL)}
DEFAULT = _response(BIG)


class _Conn:
    """One accepted connection: bytes read but not yet answered, bytes not yet sent."""

    __slots__ = ("sock", "inbuf", "outbuf", "skip", "closing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.skip = 0          # request body bytes still to read and ignore
        self.closing = False   # close once outbuf is sent


def _answer(conn: _Conn) -> None:
    """Queue a response for every complete request in conn.inbuf."""
    while True:
        if conn.skip:
            n = min(conn.skip, len(conn.inbuf))
            conn.inbuf, conn.skip = conn.inbuf[n:], conn.skip - n
            if conn.skip:
                return
        head, sep, rest = conn.inbuf.partition(b"\r\n\r\n")
        if not sep:
            return
        conn.inbuf = rest
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        path = parts[1].partition(b"?")[0] if len(parts) > 1 else b"/"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                conn.skip = int(value.strip()) if value.strip().isdigit() else 0
            elif name == b"connection" and value.strip().lower() == b"close":
                conn.closing = True
        conn.outbuf += RESPONSES.get(path, DEFAULT)
        if conn.closing:
            conn.inbuf = b""
            return


def serve(listener: socket.socket) -> None:
    """Serve until stdin reaches end of file."""
    sel = selectors.DefaultSelector()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    stdin = sys.stdin.fileno()
    sel.register(stdin, selectors.EVENT_READ)
    conns: Dict[int, _Conn] = {}

    def close(conn: _Conn) -> None:
        sel.unregister(conn.sock)
        del conns[conn.sock.fileno()]
        conn.sock.close()

    def flush(conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf) if conn.outbuf else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            close(conn)
            return
        conn.outbuf = conn.outbuf[sent:]
        if not conn.outbuf and conn.closing:
            close(conn)
            return
        sel.modify(conn.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf
                                                      else 0))

    while True:
        for key, events in sel.select():
            if key.fileobj == stdin:
                if not os.read(stdin, 4096):
                    for open_conn in list(conns.values()):
                        close(open_conn)
                    return
            elif key.fileobj is listener:
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[sock.fileno()] = _Conn(sock)
                sel.register(sock, selectors.EVENT_READ)
            else:
                conn = conns.get(key.fd)
                if conn is None or conn.sock is not key.fileobj:
                    continue   # closed earlier in this round
                if events & selectors.EVENT_READ:
                    try:
                        data = conn.sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        close(conn)
                        continue
                    if conn.closing:
                        continue
                    conn.inbuf += data
                    _answer(conn)
                flush(conn)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    sys.stdout.write(f"{listener.getsockname()[1]}\n")
    sys.stdout.flush()
    try:
        serve(listener)
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
