"""Full duplex: the read loop and the write loop progress independently, as
Go's writeLoop and readLoop do. A server may answer while the upload is still
going - an echo that streams the body back as it reads it, an early 401/413 -
and the response is returned while the rest of the request body keeps
flowing; the connection is reused only when the write finished."""

from __future__ import annotations

import os
import threading
import time

import pytest

import fasttransport as ft

MIB = 1 << 20
BIG = 64 * MIB
PIECE = 64 * 1024


def _payload(n: int) -> bytes:
    # not one repeated byte: a reordering or a lost piece changes the bytes
    block = os.urandom(PIECE)
    return (block * (n // PIECE + 1))[:n]


def _reflect(conn) -> None:
    """Answer at once, then send the request body back as it arrives (as an
    echo/reflector endpoint does): same Content-Length, or the same chunks."""
    while True:
        req = conn.read_request(body=False, timeout=30)
        if req is None:
            return
        if req.is_chunked:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                line = conn._read_until(b"\r\n", 4096, time.monotonic() + 30, "chunk size")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    conn._read_until(b"\r\n", 4096, time.monotonic() + 30, "trailer")
                    conn.send(b"0\r\n\r\n")
                    break
                conn.send(line + conn._read_exact(size + 2, time.monotonic() + 30, "chunk"))
        else:
            left = int(req.header("Content-Length"))
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % left)
            while left:
                data = conn.recv_raw(min(left, PIECE), timeout=30)
                assert data, "client stopped sending"
                left -= len(data)
                conn.send(data)


def _bodies(payload: bytes, tmp_path):
    """The same payload as bytes, as a file, and as a generator."""
    path = tmp_path / "upload.bin"
    path.write_bytes(payload)

    def gen():
        for i in range(0, len(payload), PIECE):
            yield payload[i:i + PIECE]

    return {"bytes": lambda: payload, "file": lambda: open(path, "rb"), "iterator": gen}


@pytest.mark.parametrize("kind", ["bytes", "file", "iterator"])
def test_echo_reflects_a_64_mib_upload_while_reading_it(scripted_server, tmp_path, kind):
    srv = scripted_server(_reflect)
    payload = _payload(BIG)
    make = _bodies(payload, tmp_path)[kind]
    with ft.Client(timeout=60) as client:
        body = make()
        try:
            r = client.post(srv.url("/echo"), content=body)
        finally:
            if hasattr(body, "close"):
                body.close()
        assert r.status_code == 200
        assert len(r.content) == BIG and r.content == payload
        # the write finished before the response did: the connection is reused
        body = make()
        try:
            r2 = client.post(srv.url("/echo"), content=body)
        finally:
            if hasattr(body, "close"):
                body.close()
        assert r2.content == payload
        assert srv.accepted == 1
        st = client.transport.stats()
        assert (st.write_loops, st.active_conns, st.idle_conns) == (0, 0, 1)


@pytest.mark.parametrize("kind", ["bytes", "file", "iterator"])
def test_streamed_echo_keeps_the_upload_flowing_between_reads(scripted_server, tmp_path, kind):
    # a streaming caller that reads the reflected body piece by piece
    srv = scripted_server(_reflect)
    payload = _payload(BIG)
    body = _bodies(payload, tmp_path)[kind]()
    got = bytearray()
    with ft.Client(timeout=60) as client:
        with client.stream("PUT", srv.url("/echo"), content=body) as r:
            assert client.transport.stats().write_loops == 1   # upload still going
            for chunk in r.iter_bytes(PIECE):
                got += chunk
        assert bytes(got) == payload
        assert client.transport.stats().write_loops == 0
    if hasattr(body, "close"):
        body.close()


def _early(status: int, text: bytes, *, read_on: bool):
    """Answer as soon as the head is in; then read the upload (read_on) or
    stop reading it and wait for the client to go away."""
    def handler(conn):
        req = conn.read_request(body=False, timeout=30)
        if req is None:
            return
        conn.send(b"HTTP/1.1 %d Early\r\nContent-Length: %d\r\n\r\n%s" % (status, len(text), text))
        while not conn.stopping:
            if read_on:
                if not conn.recv_raw(PIECE, timeout=30):
                    return
            elif conn.peer_closed():
                return
            else:
                conn.sleep(0.01)
    return handler


@pytest.mark.parametrize("kind", ["bytes", "file", "iterator"])
@pytest.mark.parametrize("status,text,read_on", [(413, b"too large", False),
                                                 (401, b"", False), (401, b"", True)])
def test_early_answer_with_the_upload_still_going(scripted_server, tmp_path, kind, status,
                                                  text, read_on):
    srv = scripted_server(_early(status, text, read_on=read_on))
    payload = _payload(BIG)
    body = _bodies(payload, tmp_path)[kind]()
    with ft.Client(timeout=30) as client:
        t0 = time.monotonic()
        r = client.post(srv.url("/upload"), content=body)
        took = time.monotonic() - t0
        assert (r.status_code, r.content) == (status, text)
        assert took < 10, f"the early answer took {took:.1f} s"
        st = client.transport.stats()
        assert (st.write_loops, st.active_conns, st.draining_conns) == (0, 0, 0)
        if not read_on:
            # the upload could not finish: the connection is not reused
            assert st.open_conns == 0
        # (a server that reads on lets the write finish: Go reuses the
        # connection if that happens within 50 ms of the response)
    if hasattr(body, "close"):
        body.close()


def test_blocking_iterator_does_not_hide_an_early_answer(scripted_server):
    # Go: TestTransportNoReuseAfterEarlyResponse
    release = threading.Event()
    pulled = []

    def gen():
        pulled.append(1)
        yield b"first piece"
        assert release.wait(30)
        pulled.append(2)
        yield b"second piece"

    def handler(conn):
        while True:
            req = conn.read_request(body=False, timeout=30)
            if req is None:
                return
            if req.path == "/early":
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
                conn.recv_raw(timeout=30)       # whatever comes, then hold on
                while not conn.stopping and not conn.peer_closed():
                    conn.sleep(0.01)
                return
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    srv = scripted_server(handler)
    with ft.Client(timeout=20) as client:
        t0 = time.monotonic()
        r = client.post(srv.url("/early"), content=gen())
        assert r.content == b"early"
        assert time.monotonic() - t0 < 5
        assert pulled == [1]                    # the producer is still blocked
        release.set()
        srv.wait_for(lambda: not any(t.name == "ft-body" for t in threading.enumerate()))
        assert not any(t.name == "ft-body" for t in threading.enumerate())
        assert client.get(srv.url("/next")).content == b"ok"
        assert srv.accepted == 2                # not reused after the early answer


def _answer_then_count(received):
    """Answer with a head at once; count the upload as it arrives; then send
    the count as the body (20 digits)."""
    def handler(conn):
        while True:
            req = conn.read_request(body=False, timeout=30)
            if req is None:
                return
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
            left = int(req.header("Content-Length"))
            while left:
                data = conn.recv_raw(min(left, PIECE), timeout=30)
                assert data, "client stopped sending"
                left -= len(data)
                received[conn.index] = received.get(conn.index, 0) + len(data)
            conn.send(b"%020d" % received[conn.index])
            received[conn.index] = 0
    return handler


@pytest.mark.parametrize("kind", ["bytes", "file"])
def test_engine_sends_the_body_while_the_caller_is_away(scripted_server, tmp_path, kind):
    # the response head came first; the caller does not read (it is busy
    # elsewhere): the engine keeps the upload going, far past what socket
    # buffers hold, and the caller finds the connection ready for reuse
    received = {}
    srv = scripted_server(_answer_then_count(received))
    payload = _payload(BIG)
    body = _bodies(payload, tmp_path)[kind]()
    with ft.Client(timeout=60) as client:
        with client.stream("POST", srv.url("/count"), content=body) as r:
            assert r.status_code == 200
            assert srv.wait_for(lambda: received.get(0) in (BIG, 0), timeout=30), received
            assert client.transport.stats().write_loops == 0
            assert r.read() == b"%020d" % BIG
        assert client.transport.stats().idle_conns == 1
        body2 = _bodies(payload, tmp_path)[kind]()
        with client.stream("POST", srv.url("/count"), content=body2) as r:
            assert r.read() == b"%020d" % BIG
        assert srv.accepted == 1
        if hasattr(body2, "close"):
            body2.close()
    if hasattr(body, "close"):
        body.close()
