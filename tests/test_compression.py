"""Transparent decompression through the Client:
gzip when the transport asked for it, and deflate / br / zstd when the caller
asked for them; corrupt data raises RemoteProtocolError naming the method,
the URL and the encoding, and the client keeps working."""

from __future__ import annotations

import gzip
import threading
import zlib

import pytest
from servers import body_bytes, chunked_response, response

import fasttransport as ft

PAYLOAD = body_bytes(50000)


def encoded(body: bytes, coding: str, *, chunked: bool = False, extra=()) -> bytes:
    headers = [("Content-Encoding", coding), *extra]
    if chunked:
        return chunked_response([body[i:i + 1000] for i in range(0, len(body), 1000)],
                                headers=headers)
    return response(200, body, headers)


@pytest.fixture
def client():
    with ft.Client() as c:
        yield c


def brotli_mod():
    return pytest.importorskip("brotli")


def zstd_mod():
    return pytest.importorskip("zstandard")


# --------------------------------------------------------------------------
# gzip asked for by the transport


@pytest.mark.parametrize("chunked", [False, True])
def test_gzip_is_decoded(client, scripted_server, chunked):
    srv = scripted_server([encoded(gzip.compress(PAYLOAD), "gzip", chunked=chunked)])
    r = client.get(srv.url("/"))
    assert r.content == PAYLOAD
    assert "Content-Encoding" not in r.headers and "Content-Length" not in r.headers
    assert r.content_length == -1
    assert srv.requests[0][1].header("Accept-Encoding") == "gzip"


def test_gzip_any_case_and_concatenated_members(client, scripted_server):
    body = gzip.compress(PAYLOAD[:20000]) + gzip.compress(b"") + gzip.compress(PAYLOAD[20000:])
    srv = scripted_server([encoded(body, "GZip")])
    assert client.get(srv.url("/")).content == PAYLOAD


def test_gzip_one_level_only(client, scripted_server):
    # TestTransportGzipRecursive: gzip of gzip comes out as the inner gzip.
    inner = gzip.compress(b"hello")
    srv = scripted_server([encoded(gzip.compress(inner), "gzip")])
    assert client.get(srv.url("/")).content == inner


def test_gzip_not_decoded_when_the_caller_asked(client, scripted_server):
    body = gzip.compress(PAYLOAD)
    srv = scripted_server([encoded(body, "gzip"), encoded(body, "gzip")])
    r = client.get(srv.url("/"), headers={"Accept-Encoding": "gzip"})
    assert r.content == body and r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Length"] == str(len(body))
    r = client.get(srv.url("/"), headers={"Accept-Encoding": "gzip, br, zstd, deflate"})
    assert r.content == body


def test_gzip_not_asked_with_range_or_disabled(scripted_server):
    body = gzip.compress(b"x")
    srv = scripted_server([encoded(body, "gzip")] * 2)
    with ft.Client() as c:
        r = c.get(srv.url("/"), headers={"Range": "bytes=0-"})
        assert r.content == body
    with ft.Client(transport=ft.Transport(disable_compression=True)) as c:
        assert c.get(srv.url("/")).content == body
    assert [q.header("Accept-Encoding") for _, q in srv.requests] == [None, None]


def test_gzip_head_and_empty_body_untouched(client, scripted_server):
    head = response(200, b"", [("Content-Encoding", "gzip"), ("Content-Length", "20")])
    empty = response(200, b"", [("Content-Encoding", "gzip")])
    srv = scripted_server([head[:head.index(b"\r\n\r\n") + 4], empty])
    r = client.head(srv.url("/"))
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["Content-Length"] == "20"
    assert srv.requests[0][1].header("Accept-Encoding") is None
    r = client.get(srv.url("/"))
    assert r.content == b"" and r.headers["Content-Encoding"] == "gzip"


def test_gzip_unknown_coding_passes_through(client, scripted_server):
    srv = scripted_server([encoded(b"raw", "compress"), encoded(b"raw2", "gzip, br")])
    assert client.get(srv.url("/")).content == b"raw"
    assert client.get(srv.url("/")).headers["Content-Encoding"] == "gzip, br"


def gz_bad_checksum() -> bytes:
    b = bytearray(gzip.compress(PAYLOAD))
    b[-8] ^= 0xFF
    return bytes(b)


@pytest.mark.parametrize("body,cause", [
    (b"not gzip at all", "gzip: invalid header"),
    (gz_bad_checksum(), "gzip: invalid checksum"),
    (gzip.compress(PAYLOAD)[:-100], "unexpected EOF"),
    (gzip.compress(PAYLOAD) + b"trailing garbage", "gzip: invalid header"),
    (gzip.compress(PAYLOAD) + gzip.compress(b"x")[:5], "unexpected EOF"),
])
def test_corrupt_gzip(client, scripted_server, body, cause):
    srv = scripted_server([encoded(body, "gzip"), response(200, b"fine")])
    url = srv.url("/data")
    with pytest.raises(ft.RemoteProtocolError) as ei:
        client.get(url)
    assert str(ei.value) == f'Get "{url}": {cause}'
    assert ei.value.method == "GET" and ei.value.url == url
    assert client.get(srv.url("/")).text == "fine"


def test_decoded_reads_respect_sizes_and_reuse_the_connection(client, scripted_server):
    srv = scripted_server([encoded(gzip.compress(PAYLOAD), "gzip")] * 3)
    with client.stream("GET", srv.url("/")) as r:
        parts = []
        while True:
            chunk = r.read(777)
            assert len(chunk) <= 777
            if not chunk:
                break
            parts.append(chunk)
        assert b"".join(parts) == PAYLOAD
    with client.stream("GET", srv.url("/")) as r:
        buf = bytearray(1000)
        got = bytearray()
        while True:
            n = r.body.readinto(buf)
            if not n:
                break
            got += buf[:n]
        assert bytes(got) == PAYLOAD
    with client.stream("GET", srv.url("/")) as r:
        assert [len(c) for c in r.iter_bytes(10000)] == [10000] * 5
    assert srv.accepted == 1


# --------------------------------------------------------------------------
# deflate, br, zstd asked for by the caller


def deflate_zlib(data: bytes) -> bytes:
    return zlib.compress(data)


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def br(data: bytes) -> bytes:
    return brotli_mod().compress(data)


def zstd_frames(data: bytes) -> bytes:
    z = zstd_mod()
    cctx = z.ZstdCompressor()
    return b"".join(cctx.compress(data[i:i + 7000]) for i in range(0, len(data), 7000))


def zstd_stream(data: bytes) -> bytes:
    z = zstd_mod()
    cobj = z.ZstdCompressor().compressobj()
    return cobj.compress(data) + cobj.flush()


CODINGS = [
    ("deflate", deflate_zlib),
    ("deflate", deflate_raw),
    ("br", br),
    ("zstd", zstd_frames),          # one frame per 7000 bytes: multi-frame
    ("zstd", zstd_stream),          # one frame without a content size
]
IDS = ["deflate-zlib", "deflate-raw", "br", "zstd-multiframe", "zstd-stream"]


@pytest.mark.parametrize("coding,enc", CODINGS, ids=IDS)
@pytest.mark.parametrize("chunked", [False, True])
def test_requested_coding_is_decoded(client, scripted_server, coding, enc, chunked):
    body = enc(PAYLOAD)
    srv = scripted_server([encoded(body, coding, chunked=chunked)])
    r = client.get(srv.url("/"), headers={"Accept-Encoding": f"gzip, {coding}"})
    assert r.content == PAYLOAD
    assert "Content-Encoding" not in r.headers and "Content-Length" not in r.headers
    assert r.content_length == -1


@pytest.mark.parametrize("coding,enc", CODINGS, ids=IDS)
def test_coding_not_requested_passes_through(client, scripted_server, coding, enc):
    body = enc(PAYLOAD)
    srv = scripted_server([encoded(body, coding)] * 3)
    assert client.get(srv.url("/")).content == body                       # transport: gzip
    assert client.get(srv.url("/"), headers={"Accept-Encoding": "gzip"}).content == body
    r = client.get(srv.url("/"), headers={"Accept-Encoding": f"{coding};q=0, gzip"})
    assert r.content == body and r.headers["Content-Encoding"] == coding


def test_requested_coding_with_quality_and_case(client, scripted_server):
    srv = scripted_server([encoded(deflate_zlib(PAYLOAD), "Deflate")])
    r = client.get(srv.url("/"), headers={"Accept-Encoding": "br;q=0.5, DEFLATE;q=0.8"})
    assert r.content == PAYLOAD


def bad_zlib() -> bytes:
    b = bytearray(deflate_zlib(PAYLOAD))
    b[-1] ^= 0xFF
    return bytes(b)


@pytest.mark.parametrize("coding,make,cause", [
    ("deflate", lambda: b"\x78\x9c" + b"\xff" * 50, "deflate: "),
    ("deflate", bad_zlib, "deflate: incorrect data check"),
    ("deflate", lambda: deflate_zlib(PAYLOAD)[:-50], "deflate: unexpected EOF"),
    ("br", lambda: b"\xff\xff\xff\xff not brotli", "br: invalid data"),
    ("br", lambda: br(PAYLOAD)[:-20], "br: unexpected EOF"),
    ("zstd", lambda: b"\x28\xb5\x2f\xfd garbage after a magic", "zstd: invalid data"),
    ("zstd", lambda: b"definitely not zstd", "zstd: invalid data"),
    ("zstd", lambda: zstd_frames(PAYLOAD)[:-30], "zstd: unexpected EOF"),
], ids=["deflate-garbage", "deflate-checksum", "deflate-truncated", "br-garbage",
        "br-truncated", "zstd-bad-frame", "zstd-garbage", "zstd-truncated"])
def test_corrupt_requested_coding(client, scripted_server, coding, make, cause):
    srv = scripted_server([encoded(make(), coding), response(200, b"fine")])
    url = srv.url("/c")
    with pytest.raises(ft.RemoteProtocolError) as ei:
        client.get(url, headers={"Accept-Encoding": coding})
    assert str(ei.value).startswith(f'Get "{url}": {cause}')
    assert client.get(srv.url("/")).text == "fine"


def test_streamed_requested_coding(client, scripted_server):
    srv = scripted_server([encoded(zstd_frames(PAYLOAD), "zstd", chunked=True)])
    with client.stream("GET", srv.url("/"), headers={"Accept-Encoding": "zstd"}) as r:
        got = b"".join(r.iter_bytes())
    assert got == PAYLOAD and srv.accepted == 1


def test_decoded_body_shared_between_threads_is_refused_not_corrupted(scripted_server):
    # decoded bytes are handed out in Python: a second reader is refused
    # while the first is blocked inside a read, and the first gets it all
    wire = gzip.compress(PAYLOAD, 1)
    half = len(wire) // 2
    release = threading.Event()

    def handler(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                  % len(wire) + wire[:half])
        assert release.wait(5)
        conn.send(wire[half:])
        conn.read_request()

    srv = scripted_server(handler)
    with ft.Client() as c:
        with c.stream("GET", srv.url("/")) as r:
            first = r.read(1)
            got = []
            reader = threading.Thread(target=lambda: got.append(r.read()))
            reader.start()
            # the reader is blocked in read() (it needs the withheld half)
            srv.wait_for(lambda: not reader.is_alive() or r._rlock.locked())
            with pytest.raises(RuntimeError, match="read from two threads at once"):
                r.read(10)
            release.set()
            reader.join(5)
            assert first + got[0] == PAYLOAD


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_decoded_bytes_are_never_served_after_close(scripted_server, coding):
    # decoded bytes already kept in Python are dropped by close(); a read
    # after close fails (Go tip: "file already closed" for a gzip body)
    wire = gzip.compress(PAYLOAD) if coding == "gzip" else zlib.compress(PAYLOAD)
    srv = scripted_server([encoded(wire, coding)] * 2)
    headers = {} if coding == "gzip" else {"Accept-Encoding": "deflate"}
    text = "file already closed" if coding == "gzip" else "read on closed response body"
    with ft.Client() as client:
        r = client.get(srv.url("/"), stream=True, headers=headers)
        assert r.read(10) == PAYLOAD[:10]
        r.close()
        with pytest.raises(ft.RemoteProtocolError, match=text) as ei:
            r.read(100)
        assert 'Get "http://127.0.0.1' in str(ei.value)
