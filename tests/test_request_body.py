"""The write loop: Expect: 100-continue (GO_TRANSPORT_SPEC §10) and request
bodies streamed segment by segment from an iterator."""

from __future__ import annotations

import io
import time

import pytest
from servers import CLOSE, per_connection, response

import fasttransport as ft

BODY = b"x" * 50000
EXPECT = {"Expect": "100-continue"}


def test_100_continue_then_body(scripted_server):
    seen = {}

    def handler(conn):
        req = conn.read_request(body=False)
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen["body"] = conn.read_body(req)
        conn.send(response(200, b"got it"))
        conn.read_request()

    srv = scripted_server(handler)
    with ft.Transport(expect_continue_timeout=5) as t:
        t0 = time.monotonic()
        r = t.round_trip(ft.Request("PUT", srv.url("/u"), headers=EXPECT, content=BODY))
        assert r.read() == b"got it"
        assert time.monotonic() - t0 < 3          # did not wait for the timeout
        assert seen["body"] == BODY
        assert t.stats().idle_conns == 1


def test_body_held_back_until_100_or_timeout(scripted_server):
    arrival = {}

    def handler(conn):
        req = conn.read_request(body=False)
        t0 = time.monotonic()
        body = conn.read_body(req)
        arrival["after"] = time.monotonic() - t0
        arrival["body"] = body
        conn.send(response(200, b"ok"))
        conn.read_request()

    srv = scripted_server(handler)
    with ft.Transport(expect_continue_timeout=0.3) as t:
        r = t.round_trip(ft.Request("POST", srv.url("/"), headers=EXPECT, content=BODY))
        assert r.read() == b"ok"
    assert arrival["body"] == BODY
    assert arrival["after"] >= 0.25            # held back for the timeout, then sent


def test_zero_timeout_sends_body_at_once(scripted_server):
    arrival = {}

    def handler(conn):
        req = conn.read_request(body=False)
        t0 = time.monotonic()
        arrival["body"] = conn.read_body(req)
        arrival["after"] = time.monotonic() - t0
        conn.send(response(200, b"ok"))
        conn.read_request()

    srv = scripted_server(handler)
    with ft.Transport(expect_continue_timeout=0) as t:
        t.round_trip(ft.Request("POST", srv.url("/"), headers=EXPECT, content=BODY)).read()
    assert arrival["body"] == BODY and arrival["after"] < 0.25


def test_early_final_response_with_close_skips_body(scripted_server):
    got = {}

    def handler(conn):
        conn.read_request(body=False)
        conn.send(response(401, b"no", [("Connection", "close")]))
        got["rest"] = conn.recv_raw(65536, timeout=0.5)

    srv = scripted_server(per_connection(handler, [response(200, b"fine")]))
    with ft.Transport(expect_continue_timeout=5) as t:
        r = t.round_trip(ft.Request("POST", srv.url("/"), headers=EXPECT, content=BODY))
        assert r.status_code == 401 and r.read() == b"no"
        assert t.stats().open_conns == 0
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"fine"
    assert got["rest"] == b""                  # the body never came


def test_early_final_response_without_close_still_sends_body(scripted_server):
    def handler(conn):
        req = conn.read_request(body=False)
        conn.send(response(417, b"expectation failed"))
        assert conn.read_body(req) == BODY     # keeps the connection in step
        conn.read_request()
        conn.send(response(200, b"next"))
        conn.read_request()

    srv = scripted_server(handler)
    with ft.Transport(expect_continue_timeout=5) as t:
        r = t.round_trip(ft.Request("POST", srv.url("/"), headers=EXPECT, content=BODY))
        assert r.status_code == 417 and r.read() == b"expectation failed"
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"next"
        assert srv.accepted == 1


def test_no_expect_header_without_asking(http_server):
    with ft.Client() as c:
        c.post(http_server.url("/echo"), content=b"abc")
        _, req = http_server.requests[-1]
        assert req.header("Expect") is None


# ---- bodies streamed from the write loop ----------------------------------


def streaming_request(url, chunks, **kw):
    req = ft.Request("POST", url, **kw)
    req.body, req.chunked = chunks, True
    return req


def test_streamed_chunked_body(http_server):
    produced = []

    def gen():
        for i in range(50):
            piece = bytes([65 + i % 26]) * 10000
            produced.append(len(piece))
            yield piece

    with ft.Transport() as t:
        r = t.round_trip(streaming_request(http_server.url("/echo"), gen()))
        doc = r.json()
        assert doc["body"].encode("latin-1") == b"".join(
            bytes([65 + i % 26]) * 10000 for i in range(50))
        _, req = http_server.requests[-1]
        assert req.is_chunked and sum(produced) == 500000


def test_streamed_body_error_comes_back_verbatim(http_server):
    class Boom(Exception):
        pass

    def gen():
        yield b"first"
        raise Boom("disk on fire")

    with ft.Transport() as t:
        with pytest.raises(Boom, match="disk on fire"):
            t.round_trip(streaming_request(http_server.url("/echo"), gen()))
        s = t.stats()
        assert s.open_conns == 0 and s.active_conns == 0
        assert t.round_trip(ft.Request("GET", http_server.url("/"))).read() == b"hello"


def test_file_shorter_than_its_size(http_server):
    class Shrinking(io.BytesIO):
        """Says it holds 10 bytes, yields 3."""

        def seek(self, pos, whence=0):
            return 10 if whence == io.SEEK_END else super().seek(pos, whence)

        def read(self, n=-1):
            data = super().read(n)
            return data[:3]

    with ft.Transport() as t:
        req = ft.Request("POST", http_server.url("/echo"), content=Shrinking(b"abcdefghij"))
        with pytest.raises(ft.TransportError, match="ContentLength=10 with Body length 3"):
            t.round_trip(req)
        assert t.stats().open_conns == 0


def test_generator_and_file_bodies_are_streamed(http_server, tmp_path):
    pulled = []

    def gen():
        for i in range(20):
            pulled.append(i)
            yield b"%d," % i

    path = tmp_path / "upload.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    with ft.Client() as c:
        r = c.post(http_server.url("/echo"), content=gen())
        assert r.json()["body"] == "".join(f"{i}," for i in range(20))
        _, req = http_server.requests[-1]
        assert req.is_chunked and pulled == list(range(20))
        with open(path, "rb") as f:
            r = c.put(http_server.url("/echo"), content=f)
        _, req = http_server.requests[-1]
        assert req.header("Content-Length") == "256000" and not req.is_chunked
        assert req.body == path.read_bytes()


def test_partly_sent_one_shot_body_is_not_rewound(scripted_server):
    srv = scripted_server(per_connection([response(200, b"ok"), b"", CLOSE],
                                         [response(200, b"ok")]))
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        body = (b"x" * 10 for _ in range(3))
        req = ft.Request("PUT", srv.url("/p"), content=body,
                         headers={"Idempotency-Key": "k"})
        with pytest.raises(ft.TransportError, match="cannot rewind body after connection loss"):
            t.round_trip(req)
