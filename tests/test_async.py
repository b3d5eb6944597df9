"""ft.AsyncClient: the engine runs every exchange and wakes the event loop
through one fd per client; against real sockets, under asyncio's loop and
uvloop: results, streaming with backpressure, errors, cancellation and
timeouts (the exchange is aborted and its connection closed)."""

from __future__ import annotations

import asyncio
import gzip
import sys
import time

import pytest
from servers import body_bytes, http_handler, thread_count, wait_until

import fasttransport as ft
from fasttransport import _core

try:
    import uvloop
except ImportError:   # pragma: no cover - the test extra installs it
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def run(coro, loop_kind="asyncio"):
    if loop_kind == "uvloop":
        if sys.version_info >= (3, 12):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
                return r.run(coro)
        uvloop.install()
        try:
            return asyncio.run(coro)
        finally:
            asyncio.set_event_loop_policy(None)
    return asyncio.run(coro)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_get_gather_and_reuse(http_server, loop_kind):
    async def main():
        async with ft.AsyncClient() as c:
            r = await c.get(http_server.url("/bytes/3000"))
            assert r.status_code == 200 and r.content == body_bytes(3000)
            assert await r.aread() == body_bytes(3000)
            before = thread_count()
            rs = await asyncio.gather(*[c.get(http_server.url(f"/bytes/{i}")) for i in range(200)])
            assert [len(r.content) for r in rs] == list(range(200))
            # no thread per request (the server has one per connection)
            assert thread_count() - before <= http_server.open_conns
            posted = await c.post(http_server.url("/echo"), json={"a": 1})
            assert posted.json()["body"].replace(" ", "") == '{"a":1}'
            s = c.transport.stats()
            assert s.active_conns == 0 and s.requests == 202 and s.io_threads == 1
    run(main(), loop_kind)
    assert _core.inflight_count() == 0


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_stream_iterators(scripted_server, loop_kind):
    text = b"".join(b"line %d\n" % i for i in range(5000))
    packed = gzip.compress(text)

    def handler(conn):
        while (req := conn.read_request(timeout=10)) is not None:
            if req.path == "/gz":
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n"
                          b"\r\n%s" % (len(packed), packed))
            else:
                conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + b"".join(b"%x\r\n%s\r\n" % (len(text[i:i + 7000]), text[i:i + 7000])
                                     for i in range(0, len(text), 7000)) + b"0\r\n\r\n")

    srv = scripted_server(handler)

    async def main():
        async with ft.AsyncClient() as c:
            async with c.stream("GET", srv.url("/gz")) as r:
                lines = [line async for line in r.aiter_lines()]
            assert lines == [f"line {i}" for i in range(5000)]
            async with c.stream("GET", srv.url("/chunked")) as r:
                pieces = [p async for p in r.aiter_bytes(1000)]
            assert b"".join(pieces) == text and all(len(p) == 1000 for p in pieces[:-1])
            async with c.stream("GET", srv.url("/gz")) as r:
                assert b"".join([p async for p in r.aiter_raw()]) == packed
            assert wait_until(lambda: c.transport.stats().idle_conns >= 1, 2)
    run(main(), loop_kind)


def test_slow_consumer_bounds_the_engine(scripted_server):
    sent = 0

    def endless(conn):
        nonlocal sent
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        piece = b"x" * 65536
        while sent < 1 << 30:
            conn.send(piece, timeout=5)
            sent += len(piece)

    srv = scripted_server(endless)

    async def main():
        async with ft.AsyncClient(read_ahead=128 << 10) as c:
            async with c.stream("GET", srv.url("/")) as r:
                first = await r.aiter_raw().__anext__()
                assert first
                await asyncio.sleep(0.5)
                held = r._x.ahead_buffered
                assert held <= (128 << 10) + 65536
                at = sent
                await asyncio.sleep(0.3)
                # the server is held back by TCP, not buffered without bound
                assert sent - at <= 1 << 20
                assert sent < 32 << 20
    run(main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_cancel_and_timeout_abort_the_exchange(http_server, loop_kind):
    async def main():
        async with ft.AsyncClient() as c:
            task = asyncio.ensure_future(c.get(http_server.url("/slow?delay=5")))
            await asyncio.sleep(0.2)
            assert c.transport.stats().active_conns == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.get(http_server.url("/slow?delay=5")), 0.2)
            assert time.monotonic() - t0 < 1
            await asyncio.sleep(0.1)
            assert wait_until(lambda: c.transport.stats().open_conns == 0, 2)
            # the client still works
            assert (await c.get(http_server.url("/"))).text == "hello"
    run(main(), loop_kind)


def test_errors_name_the_request(scripted_server, http_server):
    def truncated(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.close()

    bad = scripted_server(truncated)

    async def main():
        async with ft.AsyncClient(timeout=0.3) as c:
            with pytest.raises(ft.ConnectError, match='Get "http://127.0.0.1:1/"'):
                await c.get("http://127.0.0.1:1/")
            with pytest.raises(ft.RemoteProtocolError, match="unexpected EOF"):
                await c.get(bad.url("/"))
            with pytest.raises(ft.ReadTimeout):
                await c.get(http_server.url("/slow?delay=3"))
            async with c.stream("GET", bad.url("/")) as r:
                with pytest.raises(ft.RemoteProtocolError, match="unexpected EOF"):
                    await r.aread()
            assert wait_until(lambda: c.transport.stats().open_conns <= 1, 2)
    run(main())


def test_redirects_and_cookies(scripted_server):
    def handler(conn):
        while (req := conn.read_request(timeout=10)) is not None:
            if req.path == "/start":
                conn.send(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nSet-Cookie: k=v\r\n"
                          b"Content-Length: 5\r\n\r\nmoved")
            else:
                body = (dict(req.headers).get("Cookie") or "none").encode()
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    srv = scripted_server(handler)

    async def main():
        async with ft.AsyncClient() as c:
            r = await c.get(srv.url("/start"))
            assert r.text == "k=v" and [h.status_code for h in r.history] == [302]
            async with c.stream("GET", srv.url("/start")) as r:
                assert await r.aread() == b"k=v"
        assert srv.accepted == 1
    run(main())


def test_aclose_fails_what_is_in_flight(http_server):
    async def main():
        c = ft.AsyncClient()
        task = asyncio.ensure_future(c.get(http_server.url("/slow?delay=5")))
        await asyncio.sleep(0.2)
        await c.aclose()
        with pytest.raises(ft.TransportError, match=r"Get \"http://127.0.0.1:\d+/slow"):
            await task
        s = c.transport.stats()
        assert s.open_conns == 0 and s.io_threads == 0
    run(main())
    assert _core.inflight_count() == 0


def test_tls(ca, ca_file, scripted_server):
    from test_tls import server_context
    srv = scripted_server(http_handler, name="https", ssl_context=server_context(ca))

    async def main():
        async with ft.AsyncClient(transport=ft.Transport(verify=ca_file)) as c:
            rs = await asyncio.gather(*[c.get(srv.url(f"/bytes/{i}")) for i in range(30)])
            assert [len(r.content) for r in rs] == list(range(30))
            async with c.stream("GET", srv.url("/bytes/200000")) as r:
                assert await r.aread() == body_bytes(200000)
            c.transport.close()
    run(main())
