"""Limits against hostile servers: decompression bombs cost memory in
proportion to what the caller reads, never to the compression ratio;
max_body_size (Transport and per request) raises ft.BodyTooLarge for
.content, streaming reads, the batch and asyncio APIs; a declared length of
a petabyte allocates nothing."""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib

import pytest
from servers import body_bytes, response

import fasttransport as ft

BOMB = 256 << 20          # decoded size of each bomb
ZEROS = b"\0" * (1 << 20)


def _gzip() -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(c.compress(ZEROS) for _ in range(BOMB >> 20)) + c.flush()


def _deflate() -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
    return b"".join(c.compress(ZEROS) for _ in range(BOMB >> 20)) + c.flush()


def _br() -> bytes:
    brotli = pytest.importorskip("brotli")
    c = brotli.Compressor(quality=5)
    return b"".join(c.process(ZEROS) for _ in range(BOMB >> 20)) + c.finish()


def _zstd() -> bytes:
    zstandard = pytest.importorskip("zstandard")
    c = zstandard.ZstdCompressor(level=3).compressobj()
    return b"".join(c.compress(ZEROS) for _ in range(BOMB >> 20)) + c.flush()


MAKERS = {"gzip": _gzip, "deflate": _deflate, "br": _br, "zstd": _zstd}
_CACHE: dict = {}


def bomb(coding: str) -> bytes:
    if coding not in _CACHE:
        _CACHE[coding] = MAKERS[coding]()
    return _CACHE[coding]


def _serve(scripted_server, coding: str):
    data = bomb(coding)
    wire = response(200, data, [("Content-Encoding", coding)])
    return scripted_server([wire] * 4)


def _get(client, url, coding, **kw):
    # Go's transparent gzip is asked for by the transport; the others by
    # the caller's Accept-Encoding
    headers = None if coding == "gzip" else {"Accept-Encoding": coding}
    return client.get(url, headers=headers, stream=True, **kw)


@pytest.mark.parametrize("coding", list(MAKERS))
def test_a_small_read_of_a_bomb_costs_little(scripted_server, coding):
    srv = _serve(scripted_server, coding)
    with ft.Client() as c:
        r = _get(c, srv.url("/"), coding)
        tracemalloc.start()
        try:
            first = r.read(1024)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert first == b"\0" * 1024
        # one zstd block (128 KiB) is the largest step; nothing near 256 MiB
        assert peak < 1 << 20, peak
        r.close()


@pytest.mark.parametrize("coding", list(MAKERS))
def test_streaming_a_bomb_stays_bounded_and_max_body_size_stops_it(scripted_server, coding):
    srv = _serve(scripted_server, coding)
    with ft.Client(transport=ft.Transport(max_body_size=8 << 20)) as c:
        r = _get(c, srv.url("/"), coding)
        got = 0
        tracemalloc.start()
        try:
            with pytest.raises(ft.BodyTooLarge, match=r"response body too large "
                                                      r"\(max_body_size=8388608\)"):
                for chunk in r.iter_bytes(65536):
                    got += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (8 << 20) - (1 << 20) <= got <= 8 << 20
        assert peak < 2 << 20, peak
        r.close()
        with pytest.raises(ft.BodyTooLarge) as ei:
            _ = _get(c, srv.url("/"), coding).content
        assert isinstance(ei.value, ft.RemoteProtocolError)
        assert ei.value.url == srv.url("/")
        assert c.transport.stats().active_conns == 0


@pytest.mark.parametrize("coding", list(MAKERS))
def test_a_whole_bomb_streams_out_in_bounded_steps(scripted_server, coding):
    srv = _serve(scripted_server, coding)
    with ft.Client() as c:
        r = _get(c, srv.url("/"), coding)
        total = biggest = 0
        for chunk in r.iter_bytes(65536):
            total += len(chunk)
            biggest = max(biggest, len(chunk))
        assert total == BOMB and biggest <= 65536
        assert c.transport.stats().idle_conns == 1     # read to EOF: pooled


def test_max_body_size_on_plain_bodies(http_server):
    url = http_server.url("/bytes/100000")
    with ft.Client(transport=ft.Transport(max_body_size=50000)) as c:
        with pytest.raises(ft.BodyTooLarge, match=r'Get "http://127.0.0.1:\d+/bytes/100000": '
                                                  r"http: response body too large"):
            c.get(url)
        # per request: looser, or stricter, than the transport's
        assert len(c.get(url, max_body_size=100000).content) == 100000
        with pytest.raises(ft.BodyTooLarge):
            c.get(http_server.url("/chunked/5000"), max_body_size=4999)
        with c.stream("GET", http_server.url("/chunked/300000")) as r:
            with pytest.raises(ft.BodyTooLarge):
                for _ in r.iter_bytes():
                    pass
        assert c.get(http_server.url("/bytes/50000")).content == body_bytes(50000)
        assert c.transport.stats().active_conns == 0


def test_a_declared_petabyte(scripted_server):
    def lie(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\nabc")
        conn.close()

    srv = scripted_server(lie)
    with ft.Client() as c:
        # nothing is preallocated from the declared length: the truncation is the error
        with pytest.raises(ft.RemoteProtocolError, match="unexpected EOF"):
            c.get(srv.url("/"))
        with pytest.raises(ft.BodyTooLarge):
            c.get(srv.url("/"), max_body_size=1 << 20)
        fut = c.submit("GET", srv.url("/"), max_body_size=1 << 20)
        assert isinstance(fut.exception(), ft.BodyTooLarge)


def test_batch_and_async_respect_the_limit(http_server, scripted_server):
    srv = _serve(scripted_server, "gzip")
    with ft.Client(transport=ft.Transport(max_body_size=1 << 20)) as c:
        results = dict(c.map([http_server.url("/bytes/2000000"), http_server.url("/bytes/10"),
                              srv.url("/")], concurrency=3))
        by_url = {req.url: res for req, res in results.items()}
        assert isinstance(by_url[http_server.url("/bytes/2000000")], ft.BodyTooLarge)
        assert by_url[http_server.url("/bytes/10")].content == body_bytes(10)
        assert isinstance(by_url[srv.url("/")], ft.BodyTooLarge)

    async def main():
        async with ft.AsyncClient(transport=ft.Transport(max_body_size=1 << 20)) as c:
            with pytest.raises(ft.BodyTooLarge):
                await c.get(http_server.url("/bytes/2000000"))
            async with c.stream("GET", srv.url("/")) as r:
                with pytest.raises(ft.BodyTooLarge):
                    async for _ in r.aiter_bytes():
                        pass
    asyncio.run(main())


def test_max_body_size_is_checked():
    with pytest.raises(ValueError, match="max_body_size"):
        ft.Transport(max_body_size=-1)
