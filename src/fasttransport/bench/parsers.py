"""Response-head parsers, measured one head at a time.

One realistic response head (391 bytes, 11 fields) is parsed again and again
by:

- ``fasttransport._parser.bench_parse(data, n)``: fasttransport's C parser in
  a C loop (no Python per head), which returns ns/head as timed in C;
- ``fasttransport._parser.parse_response_head(data)``: the same parser called
  from Python, building the Python result, one call per head;
- ``httptools.HttpResponseParser``: ``feed_data`` with ``on_status`` and
  ``on_header`` callbacks collecting the fields, one parser per head;
- ``h11``: a client ``Connection`` receiving the head up to its ``Response``
  event, one connection per head.

For httptools and h11 the cost of creating the parser / connection (and for
h11 of sending the request it needs first) is measured on its own and
subtracted, so every row is the cost of parsing one head. ``PARSERS`` maps a
row name to ``(factory, how, client)``: the factory checks the parser and
returns ``measure(n) -> ns per head``; ``client`` is the library the row
belongs to (for ``--clients``).
"""

from __future__ import annotations

import gc
import time
from typing import Callable

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Sat, 29 Nov 2025 19:21:00 GMT\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: 1234\r\n"
    b"Connection: keep-alive\r\n"
    b"Cache-Control: private, max-age=0, must-revalidate\r\n"
    b'ETag: "5f2a-1c8e3b7a9d"\r\n'
    b"Vary: Accept-Encoding\r\n"
    b"Age: 0\r\n"
    b"X-Request-Id: 4f3c2a1b-9d8e-4c7b-a6f5-0e1d2c3b4a59\r\n"
    b"Set-Cookie: session=abc123def456; Path=/; HttpOnly; Secure\r\n"
    b"\r\n"
)
FIELDS = HEAD.count(b"\r\n") - 2

# A measurement takes n and returns nanoseconds per head.
Measure = Callable[[int], float]


def _loop_ns(fn: Callable[[], object], n: int) -> float:
    """ns per call of fn() over n calls, with the GC paused."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        t1 = time.perf_counter_ns()
    finally:
        if gc_was:
            gc.enable()
    return (t1 - t0) / n


def empty_loop_ns(n: int) -> float:
    """ns per iteration of a Python loop calling an empty function: the floor
    of any Python-called row."""

    def nothing() -> None:
        return None

    return _loop_ns(nothing, n)


def fasttransport_c() -> Measure:
    from fasttransport._parser import bench_parse

    bench_parse(HEAD, 1000)  # check it works before timing

    def measure(n: int) -> float:
        n *= 10  # a C loop: more iterations for the same time
        t0 = time.perf_counter_ns()
        reported = bench_parse(HEAD, n)  # ns/head, timed in C
        wall = (time.perf_counter_ns() - t0) / n
        return float(reported) if isinstance(reported, (int, float)) and reported > 0 else wall

    return measure


def fasttransport_py() -> Measure:
    from fasttransport._parser import parse_response_head

    parse_response_head(HEAD)

    def measure(n: int) -> float:
        return _loop_ns(lambda: parse_response_head(HEAD), n)

    return measure


def httptools_parser() -> Measure:
    import httptools

    class Collector:
        __slots__ = ("headers", "status")

        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []
            self.status = b""

        def on_status(self, status: bytes) -> None:
            self.status = status

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

    def create() -> object:
        return httptools.HttpResponseParser(Collector())

    def parse() -> None:
        proto = Collector()
        parser = httptools.HttpResponseParser(proto)
        parser.feed_data(HEAD)
        parser.get_status_code()

    proto = Collector()
    httptools.HttpResponseParser(proto).feed_data(HEAD)
    if len(proto.headers) != FIELDS:
        raise RuntimeError(f"httptools saw {len(proto.headers)} fields, expected {FIELDS}")

    def measure(n: int) -> float:
        return _loop_ns(parse, n) - _loop_ns(create, n)

    return measure


def h11_parser() -> Measure:
    import h11

    request = h11.Request(method="GET", target="/", headers=[("Host", "example")])
    end = h11.EndOfMessage()

    def create() -> h11.Connection:
        conn = h11.Connection(h11.CLIENT)
        conn.send(request)
        conn.send(end)
        return conn

    def parse() -> object:
        conn = create()
        conn.receive_data(HEAD)
        return conn.next_event()

    event = parse()
    if not isinstance(event, h11.Response) or len(event.headers) != FIELDS:
        raise RuntimeError(f"h11 returned {event!r}")

    def measure(n: int) -> float:
        n = max(1, n // 5)  # slow: fewer iterations
        return _loop_ns(parse, n) - _loop_ns(create, n)

    return measure


PARSERS: dict[str, tuple[Callable[[], Measure], str, str]] = {
    "fasttransport C (bench_parse)": (
        fasttransport_c, "C loop, no Python per head", "fasttransport"),
    "fasttransport parse_response_head": (
        fasttransport_py, "one Python call per head", "fasttransport"),
    "httptools": (
        httptools_parser, "feed_data + callbacks; parser creation subtracted", "httptools"),
    "h11": (h11_parser, "receive_data + next_event; connection setup subtracted", "h11"),
}

