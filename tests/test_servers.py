"""The test servers themselves, driven by the stdlib (http.client, raw sockets)."""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import threading
import time

import pytest
from servers import (
    CLOSE,
    RESET,
    LeakCheck,
    ScriptedServer,
    body_bytes,
    chunked_response,
    fd_count,
    http_handler,
    per_connection,
    response,
    thread_count,
)

TIMEOUT = 5.0


def connect(server: ScriptedServer) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_until_eof(sock: socket.socket, limit: int = 1 << 26) -> bytes:
    chunks = []
    total = 0
    while total <= limit:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
    raise AssertionError("peer sent more than expected")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes: {bytes(buf)!r}")
        buf += data
    return bytes(buf)


def recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    buf = bytearray()
    while marker not in buf:
        if len(buf) > limit:
            raise AssertionError(f"no {marker!r} in {len(buf)} bytes")
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"EOF before {marker!r}: {bytes(buf)!r}")
        buf += data
    return bytes(buf)


GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


# ---------------------------------------------------------------------------
# ScriptedServer


def test_script_sends_exact_bytes(scripted_server):
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Odd:  spaced \r\n\r\nabc"
    second = b"HTTP/1.1 204 No Content\r\n\r\n"
    server = scripted_server([first, second])
    with connect(server) as sock:
        sock.sendall(GET)
        assert recv_exact(sock, len(first)) == first
        sock.sendall(GET)
        assert recv_exact(sock, len(second)) == second
    assert server.wait_for(lambda: server.open_conns == 0, TIMEOUT)
    assert server.accepted == 1
    assert [r.target for _, r in server.requests] == ["/x", "/x"]


def test_script_close_sends_fin_after_answers(scripted_server):
    answer = response(200, b"bye")
    server = scripted_server([answer, CLOSE])
    with connect(server) as sock:
        sock.sendall(GET)
        assert recv_until_eof(sock) == answer


def test_script_read_then_close_without_answer(scripted_server):
    server = scripted_server([b"", CLOSE])
    with connect(server) as sock:
        sock.sendall(GET)
        assert recv_until_eof(sock) == b""
    assert len(server.requests) == 1


def test_reset_gives_peer_econnreset(scripted_server):
    server = scripted_server([b"", RESET])
    with connect(server) as sock:
        sock.sendall(GET)
        with pytest.raises(ConnectionResetError) as info:
            recv_until_eof(sock)
        assert info.value.errno == errno.ECONNRESET


def test_half_close_keeps_reading(scripted_server):
    got = []

    def handler(conn):
        conn.read_request()
        conn.send(b"partial")
        conn.shutdown_write()
        got.append(conn.recv_raw(5))  # the client may still send after our FIN

    server = scripted_server(handler)
    with connect(server) as sock:
        sock.sendall(GET)
        assert recv_until_eof(sock) == b"partial"
        sock.sendall(b"after")
        assert server.wait_for(lambda: server.open_conns == 0, TIMEOUT)
    assert got == [b"after"]


def test_per_connection_scripts(scripted_server):
    server = scripted_server(per_connection([b"", CLOSE], [response(200, b"second")]))
    conn = http.client.HTTPConnection(*server.address, timeout=TIMEOUT)
    with pytest.raises(http.client.RemoteDisconnected):
        conn.request("GET", "/")
        conn.getresponse()
    conn.close()
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"second"
    conn.close()
    assert server.conn_indexes == [0, 1]


def test_requests_recorded_in_order_with_raw_bytes(scripted_server):
    server = scripted_server([response(200)] * 3)
    post = (
        b"POST /submit?a=1 HTTP/1.1\r\nHost: t\r\nX-B: 2\r\nx-a: 1\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    chunked = (
        b"PUT /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"
    )
    with connect(server) as sock:
        # Pipelined: all three requests in one write.
        sock.sendall(GET + post + chunked)
        expected = response(200) * 3
        assert recv_exact(sock, len(expected)) == expected
    reqs = [r for _, r in server.requests]
    assert [(r.method, r.target) for r in reqs] == [
        ("GET", "/x"),
        ("POST", "/submit?a=1"),
        ("PUT", "/up"),
    ]
    assert [r.raw for r in reqs] == [GET, post, chunked]
    assert reqs[1].headers == [("Host", "t"), ("X-B", "2"), ("x-a", "1"), ("Content-Length", "5")]
    assert reqs[1].header("X-A") == "1"
    assert reqs[1].body == b"hello"
    assert reqs[1].path == "/submit" and reqs[1].query == {"a": "1"}
    assert reqs[2].body == b"abcde"
    assert reqs[2].trailers == [("X-Sum", "5")]


def test_read_head_then_body_for_expect_continue(scripted_server):
    def handler(conn):
        req = conn.read_request(body=False)
        assert req.header("Expect") == "100-continue" and req.body == b""
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.read_body(req)
        conn.send(response(200, req.body))

    server = scripted_server(handler)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        assert recv_until(sock, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        expected = response(200, b"data")
        assert recv_exact(sock, len(expected)) == expected
    assert server.requests[0][1].body == b"data"


def test_handler_timeout_is_reported(scripted_server):
    def handler(conn):
        conn.read_request(timeout=0.05)

    server = scripted_server(handler)
    with connect(server):
        assert server.wait_for(lambda: server.errors, TIMEOUT)
    assert isinstance(server.errors[0][1], TimeoutError)
    with pytest.raises(AssertionError, match="TimeoutError"):
        server.check_errors()
    server.errors.clear()


def test_incomplete_request_is_not_an_error(scripted_server):
    server = scripted_server([response(200)])
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert server.wait_for(lambda: server.open_conns == 0 and server.accepted == 1, TIMEOUT)
    assert server.requests == [] and server.errors == []


def test_max_concurrent_counts_simultaneous_connections(scripted_server):
    server = scripted_server([response(200)])
    socks = [connect(server) for _ in range(3)]
    try:
        assert server.wait_for(lambda: server.open_conns == 3, TIMEOUT)
    finally:
        for s in socks:
            s.close()
    assert server.wait_for(lambda: server.open_conns == 0, TIMEOUT)
    with connect(server):
        assert server.wait_for(lambda: server.accepted == 4, TIMEOUT)
    assert server.max_concurrent == 3


def test_stop_wakes_blocked_handlers_quickly():
    server = ScriptedServer(http_handler).start()
    sock = connect(server)
    try:
        sock.sendall(b"GET /slow?delay=60 HTTP/1.1\r\nHost: t\r\n\r\n")
        idle = connect(server)  # a second handler blocked reading
        assert server.wait_for(lambda: len(server.requests) == 1 and server.accepted == 2, TIMEOUT)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        assert server.open_conns == 0
        assert recv_until_eof(sock) == b""
        idle.close()
    finally:
        sock.close()
        server.stop()
    server.check_errors()


def test_server_is_loopback_only_with_kernel_port(scripted_server):
    a = scripted_server([])
    b = scripted_server([])
    assert a.address[0] == "127.0.0.1" and a.port > 0 and a.port != b.port
    assert a.url("/p") == f"http://127.0.0.1:{a.port}/p"


# ---------------------------------------------------------------------------
# HTTP server


def test_keep_alive_reuses_one_connection(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        for path, body in [("/", b"hello"), ("/bytes/10", body_bytes(10)), ("/", b"hello")]:
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == body
    finally:
        conn.close()
    assert http_server.accepted == 1
    assert http_server.conn_indexes == [0, 0, 0]


def test_bytes_route_sizes(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        for n in (0, 1, 100_000, 3 << 20):
            conn.request("GET", f"/bytes/{n}")
            resp = conn.getresponse()
            assert resp.getheader("Content-Length") == str(n)
            assert resp.read() == body_bytes(n)
    finally:
        conn.close()
    assert http_server.accepted == 1


def test_chunked_route_wire_bytes(http_server):
    with connect(http_server) as sock:
        sock.sendall(b"GET /chunked/10?chunk=4&trailer=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        wire = recv_until(sock, b"0\r\nX-Trailer: done\r\n\r\n")
    data = body_bytes(10)
    assert wire.endswith(
        b"\r\n\r\n4\r\n"
        + data[:4]
        + b"\r\n4\r\n"
        + data[4:8]
        + b"\r\n2\r\n"
        + data[8:]
        + b"\r\n0\r\nX-Trailer: done\r\n\r\n"
    )
    assert b"\r\nTransfer-Encoding: chunked\r\n" in wire
    assert b"\r\nTrailer: X-Trailer\r\n" in wire
    assert wire == chunked_response(
        [data[:4], data[4:8], data[8:]],
        [("X-Trailer", "done")],
        headers=[("Content-Type", "application/octet-stream"), ("Trailer", "X-Trailer")],
    )


def test_chunked_route_with_http_client(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        for n, k in [(0, 7), (1000, 7), (1 << 20, 65536)]:
            conn.request("GET", f"/chunked/{n}?chunk={k}")
            resp = conn.getresponse()
            assert resp.getheader("Transfer-Encoding") == "chunked"
            assert resp.read() == body_bytes(n)
    finally:
        conn.close()
    assert http_server.accepted == 1


def test_head_sends_no_body_on_every_route(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        for path, length in [
            ("/", "5"),
            ("/bytes/100", "100"),
            ("/chunked/100", None),
            ("/status/404", "10"),
            ("/echo", None),
        ]:
            conn.request("HEAD", path)
            resp = conn.getresponse()
            assert resp.read() == b""
            if length is not None:
                assert resp.getheader("Content-Length") == length
        conn.request("GET", "/")  # the connection is still in sync
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()
    assert http_server.accepted == 1


def test_status_route(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        conn.request("GET", "/status/418")
        resp = conn.getresponse()
        assert (resp.status, resp.reason, resp.read()) == (418, "I'm a teapot", b"status 418")
        conn.request("GET", "/status/302?location=/there")
        resp = conn.getresponse()
        assert resp.status == 302 and resp.getheader("Location") == "/there"
        resp.read()
        conn.request("GET", "/status/204")
        resp = conn.getresponse()
        assert resp.status == 204 and resp.read() == b""
        assert resp.getheader("Content-Length") is None
        conn.request("GET", "/nowhere")
        resp = conn.getresponse()
        assert resp.status == 404 and resp.read() == b"not found"
    finally:
        conn.close()


def test_echo_route(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        conn.request(
            "POST",
            "/echo?q=1",
            body=b"\xffbody",
            headers={"X-One": "1", "Content-Type": "application/x-test"},
        )
        doc = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert doc["method"] == "POST" and doc["target"] == "/echo?q=1"
    assert doc["version"] == "HTTP/1.1"
    assert ["X-One", "1"] in doc["headers"]
    assert doc["body"].encode("latin-1") == b"\xffbody"


def test_close_route_closes(http_server):
    with connect(http_server) as sock:
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
        wire = recv_until_eof(sock)
    assert b"\r\nConnection: close\r\n" in wire and wire.endswith(b"\r\n\r\nclosing")
    assert http_server.wait_for(lambda: http_server.open_conns == 0, TIMEOUT)


def test_client_connection_close_is_honoured(http_server):
    with connect(http_server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        wire = recv_until_eof(sock)
    assert wire == response(
        200, b"hello", [("Content-Type", "text/plain"), ("Connection", "close")]
    )


def test_nolength_route_is_close_delimited(http_server):
    with connect(http_server) as sock:
        sock.sendall(b"GET /nolength/1000 HTTP/1.1\r\nHost: t\r\n\r\n")
        wire = recv_until_eof(sock)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    assert body == body_bytes(1000)


def test_slow_route_delays_head(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    try:
        started = time.monotonic()
        conn.request("GET", "/slow?delay=0.2")
        assert conn.getresponse().read() == b"slow"
        assert time.monotonic() - started >= 0.2
    finally:
        conn.close()


def test_many_parallel_clients(http_server):
    errors = []

    def worker():
        try:
            conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
            for _ in range(20):
                conn.request("GET", "/bytes/1000")
                assert conn.getresponse().read() == body_bytes(1000)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 4)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert http_server.accepted == 8 and len(http_server.requests) == 160


# ---------------------------------------------------------------------------
# Leak accounting


def test_counts_see_threads_and_fds():
    # Other tests' server threads may still be exiting, so look for ours by id.
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    sock = socket.socket()
    try:
        assert str(t.native_id) in os.listdir("/proc/self/task")
        assert str(sock.fileno()) in os.listdir("/proc/self/fd")
        assert thread_count() >= 2 and fd_count() >= 4
    finally:
        sock.close()
        stop.set()
        t.join(TIMEOUT)


def test_leak_check_reports_and_clears():
    check = LeakCheck()
    sock = socket.socket()
    try:
        with pytest.raises(AssertionError, match=r"\+1 fds \['socket:"):
            check.check(timeout=0.05)
    finally:
        sock.close()
    check.check(timeout=0.05)


def test_no_leaks_after_server_traffic(http_server, no_leaks):
    for _ in range(3):
        conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
        conn.close()
    # The server's connection threads end once they see the client's FIN.
    assert http_server.wait_for(lambda: http_server.open_conns == 0, TIMEOUT)
