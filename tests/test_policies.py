"""ft.Timeout (connect, read, write and pool parts, enforced by the native
loops), ft.Retry (statuses, Retry-After, backoff, connection failures,
replayable requests only), ft.Limits and ``r.request.headers`` as sent —
through the blocking, batch and asyncio APIs against real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from servers import HOST, response

import fasttransport as ft

# ---- Timeout ---------------------------------------------------------------


def _late_head(delay: float):
    """A server that answers each request after `delay` seconds."""
    def handler(conn):
        while not conn.stopping:
            req = conn.read_request()
            if req is None:
                return
            if not conn.sleep(delay):
                return
            conn.send(response(200, b"late"))
    return handler


def test_read_timeout_waiting_for_the_head(scripted_server):
    srv = scripted_server(_late_head(10.0))
    with ft.Client(timeout=ft.Timeout(read=0.3)) as c:
        with pytest.raises(ft.ReadTimeout) as ei:
            c.get(srv.url("/"))
        assert "read timeout: nothing received for 0.3s" in str(ei.value)
        assert ei.value.url == srv.url("/") and ei.value.method == "GET"
        assert c.transport.stats().open_conns == 0


def test_read_timeout_between_body_bytes_and_a_slow_steady_body_passes(scripted_server):
    def handler(conn):
        req = conn.read_request()
        if req is None:
            return
        if req.path == "/stall":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
            conn.sleep(10)
            return
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        for _ in range(10):          # a byte every 0.1 s: 1 s in all
            if not conn.sleep(0.1):
                return
            conn.send(b"x")
        conn.close()

    srv = scripted_server(handler)
    with ft.Client(timeout=ft.Timeout(read=0.5)) as c:
        assert c.get(srv.url("/steady")).content == b"x" * 10
        with pytest.raises(ft.ReadTimeout, match="nothing received"):
            c.get(srv.url("/stall"))
        with c.stream("GET", srv.url("/stall")) as r:
            assert r.status_code == 200
            with pytest.raises(ft.ReadTimeout):
                r.read()


def test_write_timeout_on_a_server_that_reads_nothing(scripted_server):
    got = threading.Event()

    def handler(conn):
        conn.recv_raw(1024)      # the head arrives, then nothing more is read
        got.set()
        conn.sleep(10)

    srv = scripted_server(handler)
    with ft.Client(timeout=ft.Timeout(write=0.3)) as c:
        with pytest.raises(ft.WriteTimeout) as ei:
            c.post(srv.url("/up"), content=b"x" * (64 << 20))
    assert "write timeout: nothing sent for 0.3s" in str(ei.value)
    assert isinstance(ei.value, ft.TimeoutError) and ei.value.method == "POST"
    assert got.is_set()


@pytest.fixture
def unanswered_port():
    """A port whose listen queue is full: a new connect hangs (SYN dropped)."""
    lst = socket.socket()
    lst.bind((HOST, 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((HOST, port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)
    yield port
    for s in fillers:
        s.close()
    lst.close()


def test_connect_timeout(unanswered_port):
    with ft.Client(timeout=ft.Timeout(connect=0.3)) as c:
        with pytest.raises(ft.ConnectTimeout) as ei:
            c.get(f"http://{HOST}:{unanswered_port}/")
    assert "i/o timeout (connect timeout 0.3s)" in str(ei.value)


def test_pool_timeout_and_a_reused_connection_costs_no_connect_time(http_server):
    url = http_server.url("/")
    with ft.Client(transport=ft.Transport(max_conns_per_host=1)) as c:
        assert c.get(url, timeout=ft.Timeout(connect=5)).status_code == 200
        with c.stream("GET", url) as held:          # the only slot, held
            with pytest.raises(ft.PoolTimeout, match="pool timeout 0.2s"):
                c.get(url, timeout=ft.Timeout(pool=0.2))
            assert held.status_code == 200
        # the slot is free again: the same policy succeeds on the pooled connection
        assert c.get(url, timeout=ft.Timeout(pool=0.2, connect=0.001)).status_code == 200
        assert c.transport.stats().dials == 1


def test_total_and_parts_together(scripted_server):
    srv = scripted_server(_late_head(10.0))
    with ft.Client() as c:
        with pytest.raises(ft.ReadTimeout, match="Client.Timeout"):
            c.get(srv.url("/"), timeout=ft.Timeout(0.3, read=5))


def test_timeout_through_batch_and_asyncio(scripted_server):
    srv = scripted_server(_late_head(10.0))
    with ft.Client(timeout=ft.Timeout(read=0.3)) as c:
        fut = c.submit("GET", srv.url("/a"))
        assert isinstance(fut.exception(timeout=5), ft.ReadTimeout)
        results = list(c.map([srv.url("/b"), srv.url("/c")]))
        assert all(isinstance(r, ft.ReadTimeout) for _, r in results)

    async def main():
        async with ft.AsyncClient(timeout=ft.Timeout(read=0.3)) as ac:
            with pytest.raises(ft.ReadTimeout):
                await ac.get(srv.url("/d"))

    asyncio.run(main())


def test_timeout_validation():
    with pytest.raises(ValueError):
        ft.Timeout(read=-1)
    with pytest.raises(TypeError):
        ft.Timeout(connect="1")
    with pytest.raises(ValueError):
        ft.Client(timeout=-2)
    assert ft.Timeout(3, read=1) == ft.Timeout(total=3, read=1.0)


# ---- Retry -----------------------------------------------------------------


def _statuses(*codes: int, retry_after: str | None = None, cookie: bool = False):
    """A server answering with codes in turn (then 200s); it records
    every request's Cookie header."""
    seen: list = []
    lock = threading.Lock()

    def handler(conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            with lock:
                n = len(seen)
                seen.append(req)
            code = codes[n] if n < len(codes) else 200
            headers = []
            if code != 200 and retry_after is not None:
                headers.append(("Retry-After", retry_after))
            if cookie and n == 0:
                headers.append(("Set-Cookie", "gate=open"))
            conn.send(response(code, b"attempt %d" % n, headers=headers))
    return handler, seen


def test_retry_on_statuses_then_success(scripted_server):
    handler, seen = _statuses(503, 429, cookie=True)
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(total=3, backoff=0.01)) as c:
        r = c.get(srv.url("/"))
    assert r.status_code == 200 and r.content == b"attempt 2"
    assert r.retries == 2 and len(seen) == 3
    # the cookie a 503 set is sent by the retries, once
    assert [q.header("Cookie") for q in seen] == [None, "gate=open", "gate=open"]


def test_retries_used_up_return_the_last_response(scripted_server):
    handler, seen = _statuses(503, 503, 503, 503)
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(total=2, backoff=0.01)) as c:
        r = c.get(srv.url("/"))
    assert r.status_code == 503 and r.retries == 2 and len(seen) == 3


def test_retry_after_is_honoured_and_too_long_is_not_waited(scripted_server):
    handler, seen = _statuses(429, retry_after="1")
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(backoff=0.01)) as c:
        t0 = time.monotonic()
        r = c.get(srv.url("/"))
        waited = time.monotonic() - t0
    assert r.status_code == 200 and r.retries == 1
    assert waited >= 0.95      # Retry-After: 1, not the 10 ms backoff

    handler, seen = _statuses(503, retry_after="3600")
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(backoff=0.01)) as c:
        r = c.get(srv.url("/"))
    assert r.status_code == 503 and r.retries == 0 and len(seen) == 1


def test_only_replayable_requests_are_retried(scripted_server):
    handler, seen = _statuses(503, 503)
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(backoff=0.01)) as c:
        assert c.post(srv.url("/"), content=b"x").status_code == 503
        assert len(seen) == 1
        r = c.post(srv.url("/"), content=b"x", headers={"Idempotency-Key": "k1"})
        assert r.status_code == 200 and r.retries == 1 and len(seen) == 3
        assert seen[2].body == b"x"


def test_retry_never_waits_past_the_total_timeout(scripted_server):
    handler, seen = _statuses(503, 503)
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(backoff=30), timeout=1.0) as c:
        r = c.get(srv.url("/"))
    assert r.status_code == 503 and r.retries == 0 and len(seen) == 1


def test_connection_failures_are_retried_until_the_server_comes(scripted_server):
    # a port with nothing listening, then a server on it
    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()

    def late_server():
        time.sleep(0.3)
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((HOST, port))
        lst.listen(4)
        s, _ = lst.accept()
        s.recv(65536)
        s.sendall(response(200, b"up"))
        s.close()
        lst.close()

    th = threading.Thread(target=late_server)
    th.start()
    try:
        with ft.Client(retries=ft.Retry(total=8, backoff=0.1, max_backoff=0.4)) as c:
            r = c.get(f"http://{HOST}:{port}/")
        assert r.content == b"up" and r.retries >= 1
    finally:
        th.join()
    with ft.Client(retries=2) as c:          # an int: connection failures only
        with pytest.raises(ft.ConnectError):
            c.get(f"http://{HOST}:{port}/")
    assert ft.Client(retries=2).retries.statuses == frozenset()


def test_retry_in_batch_and_asyncio(scripted_server):
    handler, seen = _statuses(503, 503)
    srv = scripted_server(handler)
    with ft.Client(retries=ft.Retry(backoff=0.05)) as c:
        r = c.submit("GET", srv.url("/")).result(timeout=10)
        assert r.status_code == 200 and r.retries == 2 and len(seen) == 3

    handler, seen2 = _statuses(502, 504)
    srv2 = scripted_server(handler)

    async def main():
        async with ft.AsyncClient(retries=ft.Retry(backoff=0.05)) as ac:
            return await ac.get(srv2.url("/"))

    r = asyncio.run(main())
    assert r.status_code == 200 and r.retries == 2 and len(seen2) == 3


def test_a_cancelled_batch_item_stops_waiting_for_its_retry(scripted_server):
    handler, seen = _statuses(*([503] * 10))
    srv = scripted_server(handler)
    tok = ft.CancelToken()
    with ft.Client(retries=ft.Retry(total=5, backoff=0.3)) as c:
        fut = c.submit("GET", srv.url("/"), cancel=tok)
        assert srv.wait_for(lambda: len(seen) >= 1)
        tok.cancel()
        assert isinstance(fut.exception(timeout=5), ft.Cancelled)
    assert len(seen) <= 2


# ---- Limits and the request as sent ------------------------------------------


def test_limits_reach_the_transport(http_server):
    lim = ft.Limits(max_conns_per_host=2, max_idle_conns=7, idle_conn_timeout=None)
    with ft.Client(limits=lim) as c:
        t = c.transport
        assert (t.max_conns_per_host, t.max_idle_conns, t.idle_conn_timeout) == (2, 7, None)
        assert c.get(http_server.url("/")).status_code == 200
    with pytest.raises(TypeError):
        ft.Client(transport=ft.Transport(), limits=lim)


def test_request_headers_as_sent(http_server):
    with ft.Client(headers={"X-Default": "1"}) as c:
        r = c.post(http_server.url("/echo"), content=b"abc", params={"q": "1"},
                   cookies={"sid": "7"})
        sent = r.request.headers
        assert sent["Host"] == f"{HOST}:{http_server.address[1]}"
        assert sent["User-Agent"].startswith("fasttransport/")
        assert sent["Content-Length"] == "3"
        assert sent["Accept-Encoding"] == "gzip"
        assert sent["X-Default"] == "1" and sent["Cookie"] == "sid=7"
        assert r.request.method == "POST" and r.request.url.endswith("/echo?q=1")
        srv_seen = http_server.requests[-1][1]
        assert [k.lower() for k, _ in sent.items()] == [k.lower() for k in srv_seen.header_names]


def test_timeout_parts_cover_every_redirect_hop(scripted_server):
    def handler(conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            if req.path == "/start":
                conn.send(response(302, b"", headers=[("Location", "/slow")]))
            elif not conn.sleep(10):
                return
    srv = scripted_server(handler)
    with ft.Client(timeout=ft.Timeout(read=0.3)) as c:
        with pytest.raises(ft.ReadTimeout) as ei:
            c.get(srv.url("/start"))
    assert "/slow" in str(ei.value)


def test_read_timeout_spares_a_slow_upload_source_and_counts_per_read(scripted_server):
    def handler(conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            if req.path == "/pause":          # part of the body, a pause, the rest
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
                if not conn.sleep(1.0):
                    return
                conn.send(b"world")
            else:
                conn.send(response(200, req.body))

    srv = scripted_server(handler)

    def slow():
        for piece in (b"a", b"b", b"c"):
            time.sleep(0.5)                    # the source, not the network, is slow
            yield piece

    with ft.Client(timeout=ft.Timeout(read=0.3)) as c:
        assert c.post(srv.url("/up"), content=slow()).content == b"abc"
    with ft.Client(timeout=ft.Timeout(read=0.5)) as c:
        with c.stream("GET", srv.url("/pause")) as r:
            assert r.read(5) == b"hello"
            time.sleep(0.8)                    # the caller pauses; the server is silent too
            assert r.read() == b"world"        # this read has its own 0.5 s


def test_a_full_read_ahead_buffer_does_not_spin_the_engine(scripted_server):
    body = b"x" * (4 << 20)

    def handler(conn):
        if conn.read_request() is None:
            return
        conn.send(response(200, body))

    srv = scripted_server(handler)

    async def main():
        async with ft.AsyncClient(timeout=ft.Timeout(read=0.2), read_ahead=64 << 10) as ac:
            async with ac.stream("GET", srv.url("/")) as r:
                it = r.aiter_raw()
                got = len(await it.__anext__())
                cpu0 = time.process_time()
                await asyncio.sleep(1.5)           # the engine's buffer is full meanwhile
                idle_cpu = time.process_time() - cpu0
                async for chunk in it:
                    got += len(chunk)
        return got, idle_cpu

    got, idle_cpu = asyncio.run(main())
    assert got == len(body)
    assert idle_cpu < 0.5, idle_cpu     # spinning took about 0.6 s of CPU per second
