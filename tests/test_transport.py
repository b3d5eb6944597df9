"""The transport's core behaviour through the public API, on real sockets:
keep-alive reuse, body outcomes (EOF, early close, abandon), framing, and
the stats that make the pool visible."""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
import time
import warnings

import faults
import pytest
from servers import (
    CLOSE,
    body_bytes,
    chunked_response,
    free_port,
    per_connection,
    response,
    wait_until,
)

import fasttransport as ft


@pytest.fixture
def transport():
    t = ft.Transport()
    yield t
    t.close()


def test_get_small_body(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url("/")))
    assert r.status_code == 200
    assert r.reason == "OK"
    assert r.http_version == "HTTP/1.1"
    assert r.headers["content-type"] == "text/plain"
    assert r.read() == b"hello"
    assert r.read() == b""


def test_helpers_and_client(http_server):
    r = ft.get(http_server.url("/bytes/100"))
    assert r.content == body_bytes(100)
    with ft.Client() as c:
        r = c.post(http_server.url("/echo"), content=b"abc")
        doc = r.json()
        assert doc["method"] == "POST"
        assert doc["body"] == "abc"
        r = c.put(http_server.url("/echo"), json={"a": 1})
        assert json.loads(r.json()["body"]) == {"a": 1}
        assert c.delete(http_server.url("/echo")).json()["method"] == "DELETE"
        assert c.patch(http_server.url("/echo"), data={"x": "y z"}).json()["body"] == "x=y+z"
        assert c.options(http_server.url("/echo")).json()["method"] == "OPTIONS"
        r = c.head(http_server.url("/bytes/10"))
        assert r.content == b"" and r.headers["Content-Length"] == "10"


def test_keep_alive_reuses_one_connection(http_server, transport):
    c = ft.Client(transport=transport)
    for _ in range(20):
        assert c.get(http_server.url("/bytes/1000")).content == body_bytes(1000)
    assert http_server.accepted == 1
    s = transport.stats()
    assert s.dials == 1 and s.reused_conns == 19 and s.requests == 20
    assert s.idle_conns == 1 and s.open_conns == 1 and s.active_conns == 0


def test_wire_order_and_default_headers(http_server, transport):
    c = ft.Client(transport=transport)
    r = c.get(http_server.url("/echo"), headers=[("X-A", "1"), ("X-B", "2"), ("X-A", "3")])
    names = [n for n, _ in r.json()["headers"]]
    assert names == ["Host", "User-Agent", "X-A", "X-B", "X-A", "Accept-Encoding"]
    _, req = http_server.requests[-1]
    assert req.raw.startswith(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % http_server.port)
    assert req.header("Accept-Encoding") == "gzip"
    assert req.header("User-Agent").startswith("fasttransport/")


def test_post_without_body_sends_content_length_zero(http_server, transport):
    ft.Client(transport=transport).post(http_server.url("/echo"))
    _, req = http_server.requests[-1]
    assert req.header("Content-Length") == "0"


def test_read_to_eof_pools_before_the_read_returns(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url("/bytes/5000")))
    assert transport.stats().active_conns == 1
    got = b""
    while len(got) < 5000:
        got += r.read(5000 - len(got))
    # Exactly N bytes were read: the connection is idle already, no close().
    s = transport.stats()
    assert s.idle_conns == 1 and s.active_conns == 0
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    assert http_server.accepted == 1


def test_chunked_terminator_buffered_returns_eof_with_data(scripted_server, transport):
    wire = chunked_response([b"hello", b" world"], trailers=[("X-T", "v")])
    srv = scripted_server([wire, wire])
    r = transport.round_trip(ft.Request("GET", srv.url("/")))
    assert r.trailers.items() == []
    assert r.read(100) == b"hello"
    assert r.read(100) == b" world"
    assert transport.stats().idle_conns == 1
    assert r.trailers["x-t"] == "v"
    r2 = transport.round_trip(ft.Request("GET", srv.url("/")))
    assert r2.read() == b"hello world"
    assert srv.accepted == 1


@pytest.mark.parametrize("path,method", [("/status/204", "GET"), ("/status/304", "GET"),
                                         ("/bytes/0", "GET"), ("/bytes/10", "HEAD")])
def test_no_body_pooled_before_response_returned(http_server, transport, path, method):
    r = transport.round_trip(ft.Request(method, http_server.url(path)))
    assert transport.stats().idle_conns == 1
    assert r.read() == b""
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    assert http_server.accepted == 1


def test_large_body_readinto(http_server, transport):
    n = 4 << 20
    r = transport.round_trip(ft.Request("GET", http_server.url(f"/bytes/{n}")))
    buf = bytearray(1 << 20)
    out = bytearray()
    while True:
        k = r.body.readinto(buf)
        if not k:
            break
        out += buf[:k]
    assert out == body_bytes(n)
    assert transport.stats().idle_conns == 1


def test_chunked_body_and_trailers(http_server, transport):
    r = transport.round_trip(
        ft.Request("GET", http_server.url("/chunked/100000?chunk=3000&trailer=1")))
    assert r.content_length == -1
    # Go moves these out of the header map (Response.TransferEncoding/Trailer)
    assert "Transfer-Encoding" not in r.headers
    assert "Trailer" not in r.headers
    assert r.read() == body_bytes(100000)
    assert r.trailers["X-Trailer"] == "done"
    assert transport.stats().idle_conns == 1


def test_iter_bytes_and_lines(http_server):
    with ft.Client() as c:
        with c.stream("GET", http_server.url("/bytes/1000")) as r:
            chunks = list(r.iter_bytes(100))
        assert [len(x) for x in chunks] == [100] * 10
        assert b"".join(chunks) == body_bytes(1000)
        lines = list(c.get(http_server.url("/bytes/111")).iter_lines())
        assert lines == body_bytes(111).decode().splitlines()


def test_close_delimited_body_not_reused(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url("/nolength/3000")))
    assert r.content_length == -1
    assert r.read() == body_bytes(3000)
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    assert http_server.accepted == 2
    assert transport.stats().idle_conns == 1


def test_connection_close_response_not_reused_and_header_removed(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url("/close")))
    assert "Connection" not in r.headers
    assert r.read() == b"closing"
    assert transport.stats().open_conns == 0
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    assert http_server.accepted == 2


def test_disable_keep_alives_sends_close_once(http_server):
    with ft.Transport(disable_keep_alives=True) as t:
        for _ in range(3):
            t.round_trip(ft.Request("GET", http_server.url("/"),
                                    headers={"Connection": "close"})).read()
            t.round_trip(ft.Request("GET", http_server.url("/"))).read()
        assert http_server.accepted == 6
        for _, req in http_server.requests:
            assert req.header_list("Connection") == ["close"]
        assert t.stats().open_conns == 0


def test_http10_response_not_reused(scripted_server, transport):
    srv = scripted_server([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    for _ in range(2):
        assert transport.round_trip(ft.Request("GET", srv.url("/"))).read() == b"ok"
    assert srv.accepted == 2


def test_early_close_drains_small_remainder_and_pools(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url("/bytes/200000")))
    assert r.read(10) == body_bytes(10)
    r.close()
    assert r.is_closed
    assert wait_until(lambda: transport.stats().idle_conns == 1)
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    assert http_server.accepted == 1


def test_stalled_drain_ends_at_its_deadline_not_the_engines(scripted_server, http_server):
    # The engine plans to sleep until the idle connection's timeout (30 s); a
    # drain handed to it meanwhile wakes it for its own, 50 ms away. The rest
    # of the body never comes: the connection is closed then, not pooled.
    def half_body_then_hold(conn):
        if conn.read_request() is not None:
            conn.send(response(200, body_bytes(1000))[:-500])
            faults.hold(conn, 5)

    srv = scripted_server(half_body_then_hold)
    with ft.Transport(idle_conn_timeout=30, io_threads=1) as t:
        t.round_trip(ft.Request("GET", http_server.url("/"))).read()
        r = t.round_trip(ft.Request("GET", srv.url("/")))
        t0 = time.monotonic()
        r.close()
        assert wait_until(lambda: t.stats().draining_conns == 0, timeout=5)
        assert 0.05 <= time.monotonic() - t0 < 1
        s = t.stats()
        assert s.open_conns == s.idle_conns == 1 and s.drained_conns == 0
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)


def test_early_close_large_remainder_closes(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url(f"/bytes/{1 << 20}")))
    r.read(10)
    r.close()
    s = transport.stats()
    assert s.open_conns == 0 and s.idle_conns == 0
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    assert http_server.accepted == 2


def test_drain_limit_zero_always_closes(http_server):
    with ft.Transport(drain_limit=0) as t:
        r = t.round_trip(ft.Request("GET", http_server.url("/bytes/100")))
        r.close()
        assert t.stats().open_conns == 0


def test_read_after_close_raises(http_server, transport):
    r = transport.round_trip(ft.Request("GET", http_server.url("/bytes/100000")))
    r.close()
    with pytest.raises(ft.RemoteProtocolError, match="read on closed response body"):
        r.read()
    r.close()  # idempotent


def test_unclosed_streaming_body_is_released_with_warning(http_server, transport):
    def leak():
        r = transport.round_trip(ft.Request("GET", http_server.url(f"/bytes/{1 << 20}")))
        r.read(10)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leak()
        gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any("GET" in m and http_server.url("/bytes/") in m for m in msgs), msgs
    s = transport.stats()
    assert s.active_conns == 0 and s.open_conns == 0


def test_idle_connection_closed_by_server_leaves_pool(scripted_server, transport):
    srv = scripted_server([response(200, b"ok"), CLOSE])
    assert transport.round_trip(ft.Request("GET", srv.url("/"))).read() == b"ok"
    # The engine's idle watch sees the FIN and removes the connection.
    assert wait_until(lambda: transport.stats().open_conns == 0
                      and transport.stats().idle_closed_by_peer == 1)
    assert transport.round_trip(ft.Request("GET", srv.url("/"))).read() == b"ok"
    assert srv.accepted == 2


def test_idle_conn_timeout(http_server):
    with ft.Transport(idle_conn_timeout=0.05) as t:
        t.round_trip(ft.Request("GET", http_server.url("/"))).read()
        assert t.stats().idle_conns == 1
        assert wait_until(lambda: t.stats().idle_conns == 0)
        assert t.stats().idle_timeouts == 1


def test_max_idle_conns_per_host_closes_returning_conn(http_server):
    with ft.Transport(max_idle_conns_per_host=1) as t:
        a = t.round_trip(ft.Request("GET", http_server.url("/bytes/10")))
        b = t.round_trip(ft.Request("GET", http_server.url("/bytes/10")))
        a.read()
        b.read()
        s = t.stats()
        assert s.idle_conns == 1 and s.open_conns == 1


def test_close_idle_connections(http_server, transport):
    transport.round_trip(ft.Request("GET", http_server.url("/"))).read()
    transport.close_idle_connections()
    assert transport.stats().open_conns == 0


def test_stats_fields(http_server, scripted_server):
    """Every counter after each step of a known sequence (read_loops and
    write_loops are left to their own tests)."""
    body = body_bytes(5000)
    wire = response(200, body)
    send_rest = threading.Event()

    def held_back(conn):
        conn.read_request()
        conn.send(wire[: len(wire) - len(body)])   # the head only
        send_rest.wait(5)
        conn.send(body)
        conn.read_request()

    slow = scripted_server(held_back)
    names = [f.name for f in dataclasses.fields(ft.TransportStats)]
    expected = {n: 0 for n in names if n not in ("read_loops", "write_loops")}

    def check(**changed):
        expected.update(changed)
        s = t.stats()
        assert {n: getattr(s, n) for n in expected} == expected
        assert s.open_conns == s.idle_conns + s.active_conns + s.draining_conns + s.dialing_conns
        assert s.as_dict() == {n: getattr(s, n) for n in names}

    with ft.Transport(io_threads=2) as t:
        check(io_threads=2)
        for _ in range(3):                      # one connection, dialled once, reused twice
            assert t.round_trip(ft.Request("GET", http_server.url("/"))).read() == b"hello"
        check(requests=3, dials=1, reused_conns=2, open_conns=1, idle_conns=1)
        a = t.round_trip(ft.Request("GET", http_server.url("/bytes/10")))  # takes the idle one
        b = t.round_trip(ft.Request("GET", http_server.url("/bytes/10")))  # dials a second
        check(requests=5, dials=2, reused_conns=3, idle_conns=0, active_conns=2, open_conns=2)
        assert a.read() == b.read() == body_bytes(10)
        check(active_conns=0, idle_conns=2)
        t.close_idle_connections()
        check(idle_conns=0, open_conns=0, closed_conns=2)
        assert http_server.accepted == 2
        r = t.round_trip(ft.Request("GET", slow.url("/")))
        r.close()                               # 5000 bytes due: left to the engine to drain
        check(requests=6, dials=3, open_conns=1, draining_conns=1)
        send_rest.set()
        assert wait_until(lambda: t.stats().drained_conns == 1)
        check(drained_conns=1, draining_conns=0, idle_conns=1)
        with pytest.raises(ft.ConnectError):
            t.round_trip(ft.Request("GET", f"http://127.0.0.1:{free_port()}/"))
        s = t.stats()
        assert (s.requests, s.dials, s.dial_errors, s.open_conns) == (7, 4, 1, 1)
        assert s.dialing_conns == s.active_conns == 0
    s = t.stats()
    assert s.open_conns == s.idle_conns == 0 and s.io_threads == 0
    assert slow.accepted == 1 and s.reused_conns == 3


def test_io_threads_option():
    with ft.Transport(io_threads=3) as t:
        assert t.stats().io_threads == 3
    assert t.stats().io_threads == 0


def test_gzip_transparent(scripted_server, transport):
    import gzip
    payload = b"x" * 5000
    body = gzip.compress(payload[:2000]) + gzip.compress(payload[2000:])
    srv = scripted_server([response(200, body, [("Content-Encoding", "gzip")])])
    r = transport.round_trip(ft.Request("GET", srv.url("/")))
    assert "Content-Encoding" not in r.headers and "Content-Length" not in r.headers
    assert r.content_length == -1
    assert r.read() == payload


def test_gzip_not_decoded_when_user_asked(scripted_server, transport):
    import gzip
    body = gzip.compress(b"abc")
    srv = scripted_server([response(200, body, [("Content-Encoding", "gzip")])])
    r = transport.round_trip(ft.Request("GET", srv.url("/"),
                                        headers={"Accept-Encoding": "gzip"}))
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.read() == body


def test_corrupt_gzip_raises(scripted_server, transport):
    srv = scripted_server([response(200, b"not gzip at all", [("Content-Encoding", "gzip")])])
    r = transport.round_trip(ft.Request("GET", srv.url("/")))
    with pytest.raises(ft.RemoteProtocolError, match="gzip: invalid header"):
        r.read()


def test_interim_1xx_skipped(scripted_server, transport):
    srv = scripted_server([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                           b"Link: </a>\r\n\r\n" + response(200, b"done")])
    r = transport.round_trip(ft.Request("GET", srv.url("/")))
    assert r.status_code == 200 and r.read() == b"done"


def test_per_connection_handler_sequence(scripted_server, transport):
    srv = scripted_server(per_connection([response(200, b"one"), CLOSE],
                                         [response(200, b"two")]))
    assert transport.round_trip(ft.Request("GET", srv.url("/"))).read() == b"one"
    assert wait_until(lambda: transport.stats().open_conns == 0)
    assert transport.round_trip(ft.Request("GET", srv.url("/"))).read() == b"two"


@pytest.mark.parametrize("how", ["closed", "dropped"])
def test_leftovers_of_closed_and_dropped_bodies_are_drained_and_reused(outside_server, how):
    """close() discards what is already readable at once and pools the
    connection before it returns, and a body dropped unclosed (finalizer)
    does the same before handing any rest to the engine: a sequential caller
    keeps reusing one connection."""
    url = outside_server + "/bytes/65536"
    with ft.Client() as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(100):
            r = client.get(url, stream=True)
            if how == "closed":
                r.close()
            else:
                del r
        st = client.transport.stats()
    assert st.requests == 100
    assert st.dials <= 5, st                 # not one per abandoned body
    assert st.reused_conns + st.dials >= 100, st
