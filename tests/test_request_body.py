"""The write loop: Expect: 100-continue and request
bodies streamed segment by segment from an iterator."""

from __future__ import annotations

import io
import os
import threading
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


def _upload_then_resize(conn_action):
    """A handler that reads the head, lets the test change the file, then
    takes what comes until the client goes away."""
    def handler(conn):
        req = conn.read_request(body=False)
        if req is None:
            return
        conn_action.wait(5)
        while conn.recv_raw(timeout=5):
            pass

    return handler


@pytest.mark.parametrize("change", ["truncate", "grow"])
def test_plain_file_changing_size_while_sent_fails_with_gos_text(scripted_server, tmp_path,
                                                                 change):
    # a plain binary file is read by the native write loop (pread): a size
    # that no longer matches ends the exchange with Go's message
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * (32 << 20))
    go = threading.Event()
    srv = scripted_server(_upload_then_resize(go))
    with ft.Transport() as t, open(path, "rb") as f:
        def resize():
            with open(path, "r+b") as w:
                if change == "truncate":
                    w.truncate(30 << 20)
                else:
                    w.seek(0, io.SEEK_END)
                    w.write(b"b" * 100)
            go.set()

        req = ft.Request("PUT", srv.url("/"), content=f)
        timer = threading.Timer(0.05, resize)
        timer.start()
        with pytest.raises(ft.TransportError, match=r"ContentLength=33554432 with Body "
                                                    r"length (\d+)") as ei:
            t.round_trip(req)
        timer.join()
        sent = int(str(ei.value).rsplit(" ", 1)[1])
        assert sent == (30 << 20 if change == "truncate" else (32 << 20) + 1)
        assert 'Put "http://127.0.0.1' in str(ei.value)
        assert t.stats().open_conns == 0


def test_plain_file_is_sent_from_its_position_and_left_there(http_server, tmp_path):
    path = tmp_path / "f.bin"
    data = os.urandom(300_000)
    path.write_bytes(data)
    with ft.Client() as c, open(path, "rb") as f:
        f.seek(1000)
        def sent(r):
            return r.json()["body"].encode("latin-1")

        r = c.post(http_server.url("/echo"), content=f)
        assert sent(r) == data[1000:]
        assert f.tell() == 1000                  # read with pread: position untouched
        # sent again (a retry or a redirect would do the same) from the same place
        assert sent(c.post(http_server.url("/echo"), content=f)) == data[1000:]


HOLD = 5.0   # how long a held body source waits for the server before failing the test


def held_source_upload(first: bytes, seen: threading.Event, got: dict):
    """A handler that waits until ``first`` (the start of the body) has
    arrived, then sets ``seen`` (releasing the body source, which holds the
    rest back until then), reads the whole request and answers."""

    def handler(conn):
        req = conn.read_request(body=False)
        got["before"] = conn.peek_until(first, timeout=HOLD)
        seen.set()
        conn.read_body(req)
        got["req"] = req
        conn.send(response(200, b"stored"))
        conn.read_request()

    return handler


def hold_until(seen: threading.Event) -> None:
    if not seen.wait(HOLD):
        raise AssertionError("the server got no body byte while the source held the rest "
                             "back: the body was gathered before sending, not streamed")


def test_generator_body_is_streamed(scripted_server):
    """The generator yields a first segment, then blocks until the server has
    it: a client that gathered the body before sending would never send it
    (the generator fails the request after HOLD s)."""
    seen, got = threading.Event(), {}
    first = b"first segment;"
    srv = scripted_server(held_source_upload(first, seen, got))

    def gen():
        yield first
        hold_until(seen)
        for i in range(20):
            yield b"%d," % i

    with ft.Client() as c:
        r = c.post(srv.url("/upload"), content=gen())
        assert r.status_code == 200 and r.content == b"stored"
    req = got["req"]
    assert req.is_chunked and req.body == first + b"".join(b"%d," % i for i in range(20))
    assert got["before"].endswith(first)


def test_file_body_is_streamed(scripted_server, tmp_path):
    """A file of known size goes with its Content-Length, read in pieces as it
    is sent: its read() past the first 4096 bytes blocks until the server has
    those bytes, which a client that read the whole file first never sends."""
    seen, got = threading.Event(), {}
    body = bytes(range(256)) * 1000
    first = body[:4096]
    srv = scripted_server(held_source_upload(first, seen, got))
    path = tmp_path / "upload.bin"
    path.write_bytes(body)

    class HeldFile(io.FileIO):
        def read(self, n=-1):
            if self.tell() >= len(first):
                hold_until(seen)
            return super().read(n)

    with ft.Client() as c, HeldFile(path) as f:
        r = c.put(srv.url("/upload"), content=f)
        assert r.status_code == 200 and r.content == b"stored"
    req = got["req"]
    assert req.header("Content-Length") == str(len(body)) and not req.is_chunked
    assert req.body == body
    assert got["before"] == first           # the body began with the file's first bytes


def test_one_shot_body_is_not_retried_and_the_error_stands(scripted_server):
    # Go: a body without GetBody makes the request neither replayable nor
    # retryable when nothing was written; the original error comes back
    srv = scripted_server(per_connection([response(200, b"ok"), b"", CLOSE],
                                         [response(200, b"ok")]))
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        body = (b"x" * 10 for _ in range(3))
        req = ft.Request("PUT", srv.url("/p"), content=body,
                         headers={"Idempotency-Key": "k"})
        with pytest.raises(ft.RemoteProtocolError, match=r'Put "http://127\.0\.0\.1:\d+/p": EOF'):
            t.round_trip(req)
        assert srv.accepted == 1                 # not sent again on a new connection
