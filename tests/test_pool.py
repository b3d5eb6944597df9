"""Go's connection management, one
test per rule, through the public API against loopback servers. Names follow
the Go tests they mirror where the spec names one."""

from __future__ import annotations

import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers import CLOSE, free_port, per_connection, response, wait_until

import fasttransport as ft

OK = response(200, b"ok")


def conn_of(server, tag):
    """Index of the server connection that carried the request with ?id=tag."""
    for idx, req in server.requests:
        if req.query.get("id") == tag:
            return idx
    raise AssertionError(f"no request with id={tag}")


class StalledListener:
    """A listener that accepts one connection (served with `OK` per request)
    and then stops accepting with a full accept queue, so that further
    connects stay pending: a dial that cannot finish, deterministically.
    An exception in its serving thread is kept for check_errors()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        self.served = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def _run(self):
        try:
            self._serve_one()
        except BaseException:  # noqa: BLE001 - reported by check_errors()
            if not self._stop.is_set():
                self.errors.append(traceback.format_exc())

    def _serve_one(self):
        conn, _ = self.sock.accept()
        self.served.append(conn)
        conn.settimeout(0.05)
        buf = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                conn.sendall(OK)

    def fill_accept_queue(self):
        """Connect until a connect stays pending: the queue is full."""
        for _ in range(16):
            s = socket.socket()
            s.setblocking(False)
            self.fillers.append(s)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            if self._pending(s):
                return
        raise AssertionError("could not fill the accept queue")

    @staticmethod
    def _pending(s):
        import select
        _, w, _ = select.select([], [s], [], 0.2)
        return not w

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for s in self.fillers + self.served:
            s.close()
        self.sock.close()

    def check_errors(self):
        assert not self._thread.is_alive(), "the serving thread did not stop"
        assert not self.errors, "the serving thread failed:\n" + self.errors[0]


@pytest.fixture
def stalled():
    s = StalledListener()
    yield s
    s.close()
    s.check_errors()


# ---- connection keys -------------------------------------------------


def test_key_fills_default_port_and_shares_connection(http_server):
    with ft.Transport() as t:
        port = http_server.port
        t.round_trip(ft.Request("GET", f"http://127.0.0.1:{port}/")).read()
        t.round_trip(ft.Request("GET", f"http://127.0.0.1:{port}")).read()
        assert http_server.accepted == 1
        assert list(t.host_stats()) == [f"http://127.0.0.1:{port}"]


def test_key_keeps_ascii_case_of_host(http_server):
    # Go's canonicalAddr does not lower-case ASCII names: two keys.
    with ft.Transport() as t:
        port = http_server.port
        t.round_trip(ft.Request("GET", f"http://localhost:{port}/")).read()
        t.round_trip(ft.Request("GET", f"http://LOCALHOST:{port}/")).read()
        assert http_server.accepted == 2
        assert set(t.host_stats()) == {f"http://localhost:{port}", f"http://LOCALHOST:{port}"}


# ---- getting a connection ----------------------------------------------


def test_idle_reuse_is_lifo(http_server):
    with ft.Transport() as t:
        held = [t.round_trip(ft.Request("GET", http_server.url(f"/bytes/5?id={i}")))
                for i in "abc"]
        for r in held:          # returned a, then b, then c
            r.read()
        assert t.stats().idle_conns == 3
        t.round_trip(ft.Request("GET", http_server.url("/bytes/5?id=next"))).read()
        assert conn_of(http_server, "next") == conn_of(http_server, "c")


def test_late_binding_released_conn_beats_pending_dial(stalled):
    with ft.Transport(dial_timeout=1.0) as t:
        a = t.round_trip(ft.Request("GET", stalled.url("/a")))
        stalled.fill_accept_queue()
        result = {}

        def second():
            r = t.round_trip(ft.Request("GET", stalled.url("/b")))
            result["body"] = r.read()

        th = threading.Thread(target=second)
        th.start()
        assert wait_until(lambda: t.stats().dialing_conns == 1
                          and t.stats().waiting_requests == 1)
        assert a.read() == b"ok"          # released: handed to the waiter
        th.join(5)
        assert result["body"] == b"ok"
        assert len(stalled.served) == 1
        # the losing dial fails later; nobody waits for it, nobody sees it
        assert wait_until(lambda: t.stats().dial_errors == 1, timeout=3)
        s = t.stats()
        assert s.open_conns == 1 and s.idle_conns == 1 and s.dialing_conns == 0


def test_cancelled_wait_leaves_its_dial_running(stalled):
    with ft.Transport(dial_timeout=5.0) as t:
        t.round_trip(ft.Request("GET", stalled.url("/a"))).read()
        t.close_idle_connections()
        stalled.fill_accept_queue()
        c = ft.Client(transport=t)
        with pytest.raises(ft.ConnectTimeout):
            c.get(stalled.url("/x"), timeout=0.2)
        s = t.stats()
        assert s.dialing_conns == 1 and s.waiting_requests == 0
        # close_idle_connections aborts dials whose requester has gone away
        t.close_idle_connections()
        assert wait_until(lambda: t.stats().dialing_conns == 0, timeout=1)
        assert t.stats().open_conns == 0


def test_read_loops_count_connections_past_dialing(stalled):
    # A connection still dialing has no read loop yet; idle, in use and
    # draining ones have one each.
    with ft.Transport(dial_timeout=5.0) as t:
        a = t.round_trip(ft.Request("GET", stalled.url("/a")))
        s = t.stats()
        assert s.open_conns == s.active_conns == s.read_loops == 1
        stalled.fill_accept_queue()
        with pytest.raises(ft.ConnectTimeout):
            ft.Client(transport=t).get(stalled.url("/x"), timeout=0.2)
        s = t.stats()
        assert s.open_conns == 2 and s.dialing_conns == 1 and s.read_loops == 1
        assert a.read() == b"ok"
        s = t.stats()
        assert s.idle_conns == 1 and s.dialing_conns == 1 and s.read_loops == 1
        t.close_idle_connections()      # closes the idle one, aborts the dial
        assert wait_until(lambda: t.stats().open_conns == 0)
        assert t.stats().read_loops == 0


def test_dial_error_reaches_the_waiter():
    port = free_port()
    with ft.Transport() as t:
        with pytest.raises(ft.ConnectError, match="connection refused"):
            t.round_trip(ft.Request("GET", f"http://127.0.0.1:{port}/"))
        st = t.stats()
        assert st.dial_errors == 1 and st.open_conns == 0 and st.waiting_requests == 0
        assert t.host_stats() == {}


# ---- max_conns_per_host --------------------------------------------------


def test_max_conns_per_host_bounds_connections(http_server):
    errors = []
    with ft.Transport(max_conns_per_host=2) as t:
        c = ft.Client(transport=t)

        def worker():
            for _ in range(25):
                r = c.get(http_server.url("/bytes/100"))
                if len(r.content) != 100:
                    errors.append(r)

        ths = [threading.Thread(target=worker) for _ in range(8)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        assert not errors
        assert http_server.max_concurrent <= 2
        assert t.stats().requests == 200
        assert t.host_stats()[http_server.base_url]["conns"] <= 2


def test_reused_conns_counts_hand_offs(http_server):
    # A connection handed straight to a waiting request is reused as much as
    # one taken idle: each connection's first request is its dial's, every
    # later one a reuse, so dials + reused_conns == requests when every dialed
    # connection served (a dial whose requester was served first may not).
    n = 320
    with ft.Transport(max_conns_per_host=2) as t, ThreadPoolExecutor(8) as pool:
        c = ft.Client(transport=t)
        bodies = list(pool.map(lambda _: c.get(http_server.url("/")).content, range(n)))
        assert bodies == [b"hello"] * n
        s = t.stats()
        served = len({idx for idx, _ in http_server.requests})
        assert s.requests == n
        assert s.dials == http_server.accepted <= 2 and served <= s.dials
        assert s.reused_conns == s.requests - served
        assert s.dials + s.reused_conns == s.requests + (s.dials - served)


def test_unclosed_body_keeps_its_slot_pool_timeout(http_server):
    # The Go lesson: with a limit of 1, a body never closed blocks the host.
    with ft.Transport(max_conns_per_host=1) as t:
        c = ft.Client(transport=t)
        held = c.get(http_server.url("/bytes/10"), stream=True)
        t0 = time.monotonic()
        with pytest.raises(ft.PoolTimeout) as ei:
            c.get(http_server.url("/"), timeout=0.2)
        assert time.monotonic() - t0 < 1.5
        msg = str(ei.value)
        assert msg.startswith(f'Get "{http_server.url("/")}": ')
        assert f"127.0.0.1:{http_server.port}" in msg and "max_conns_per_host=1" in msg
        assert isinstance(ei.value, TimeoutError)
        held.close()
        assert c.get(http_server.url("/")).content == b"hello"
        assert http_server.accepted == 1


def test_waiters_served_fifo(http_server):
    with ft.Transport(max_conns_per_host=1) as t:
        first = t.round_trip(ft.Request("GET", http_server.url("/bytes/3")))
        order = []

        def waiter(name):
            r = t.round_trip(ft.Request("GET", http_server.url("/bytes/3")))
            order.append(name)
            r.read()

        ths = []
        for i, name in enumerate(["b", "c", "d"]):
            th = threading.Thread(target=waiter, args=(name,))
            th.start()
            ths.append(th)
            assert wait_until(lambda n=i + 1: t.stats().waiting_requests == n)
        first.read()
        for th in ths:
            th.join(10)
        assert order == ["b", "c", "d"]
        assert http_server.accepted == 1


def test_waiter_that_gave_up_is_skipped(http_server):
    with ft.Transport(max_conns_per_host=1) as t:
        c = ft.Client(transport=t)
        first = t.round_trip(ft.Request("GET", http_server.url("/bytes/3")))
        with pytest.raises(ft.PoolTimeout):
            c.get(http_server.url("/"), timeout=0.1)
        got = {}
        th = threading.Thread(target=lambda: got.setdefault("r", c.get(http_server.url("/"))))
        th.start()
        assert wait_until(lambda: t.stats().waiting_requests == 1)
        first.read()
        th.join(5)
        assert got["r"].content == b"hello"
        assert t.stats().waiting_requests == 0


def test_closed_connection_passes_its_slot_to_a_waiter(scripted_server):
    srv = scripted_server([response(200, b"x", [("Connection", "close")]), CLOSE])
    with ft.Transport(max_conns_per_host=1) as t:
        first = t.round_trip(ft.Request("GET", srv.url("/")))
        got = {}
        th = threading.Thread(
            target=lambda: got.setdefault("b", t.round_trip(ft.Request("GET", srv.url("/")))))
        th.start()
        assert wait_until(lambda: t.stats().waiting_requests == 1)
        assert first.read() == b"x"     # Connection: close -> closed -> slot to the waiter
        th.join(5)
        assert got["b"].read() == b"x"
        assert srv.accepted == 2


# ---- idle pool -------------------------------------------------------------


def test_max_idle_conns_evicts_globally_oldest(scripted_server):
    servers = [scripted_server([OK]) for _ in range(3)]
    with ft.Transport(max_idle_conns=2) as t:
        for srv in servers:
            t.round_trip(ft.Request("GET", srv.url("/"))).read()
        s = t.stats()
        assert s.idle_conns == 2 and s.open_conns == 2
        # the first host's connection, the oldest idle one, was closed
        assert servers[0].wait_for(lambda: servers[0].open_conns == 0, timeout=3)
        assert set(t.host_stats()) == {servers[1].base_url, servers[2].base_url}


def test_unsolicited_bytes_on_idle_connection_close_it(scripted_server):
    def handler(conn):
        conn.read_request()
        conn.send(OK)
        conn.sleep(0.05)
        conn.send(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        conn.sleep(2)

    srv = scripted_server(per_connection(handler, [OK]))
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        # (the connection stops counting as open when the engine takes it,
        # a moment before the close is counted)
        assert wait_until(lambda: t.stats().open_conns == 0
                          and t.stats().idle_closed_by_peer == 1)
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"ok"


def test_bytes_after_body_make_connection_unusable(scripted_server):
    srv = scripted_server([OK + b"HTTP/1.1 200 OK\r\n"])
    with ft.Transport() as t:
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"ok"
        assert t.stats().open_conns == 0


# ---- reuse rules --------------------------------------------------------------


def test_request_connection_close_header_not_reused(http_server):
    with ft.Transport() as t:
        r = t.round_trip(ft.Request("GET", http_server.url("/"), headers={"Connection": "close"}))
        r.read()
        assert t.stats().open_conns == 0
        _, req = http_server.requests[-1]
        assert req.header_list("Connection") == ["close"]


def test_early_response_before_body_written_not_reused(scripted_server):
    def handler(conn):
        conn.read_request(body=False)
        conn.send(response(413, b"too big"))
        conn.sleep(2)

    srv = scripted_server(per_connection(handler, [OK]))
    with ft.Transport() as t:
        body = b"x" * (8 << 20)
        r = t.round_trip(ft.Request("POST", srv.url("/upload"), content=body))
        assert r.status_code == 413 and r.read() == b"too big"
        assert t.stats().open_conns == 0
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"ok"
        assert srv.accepted == 2


def test_101_switching_protocols_not_pooled(scripted_server):
    srv = scripted_server([b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                           b"Connection: upgrade\r\n\r\n"])
    with ft.Transport() as t:
        r = t.round_trip(ft.Request("GET", srv.url("/")))
        assert r.status_code == 101
        r.close()
        assert t.stats().open_conns == 0 and t.stats().idle_conns == 0


# ---- retries -------------------------------------------------------------------


def _stale_after_first():
    """Connection 0 answers once, then reads the next request and hangs up
    without a byte; later connections answer normally."""
    return per_connection([OK, b"", CLOSE], [OK])


@pytest.mark.parametrize("method,headers", [
    ("GET", {}), ("HEAD", {}), ("OPTIONS", {}), ("POST", {"Idempotency-Key": "k1"}),
    ("PUT", {"X-Idempotency-Key": "k2"}),
])
def test_replayable_request_retried_on_new_connection(scripted_server, method, headers):
    srv = scripted_server(_stale_after_first())
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        r = t.round_trip(ft.Request(method, srv.url("/again"), headers=headers,
                                    content=b"data" if method in ("POST", "PUT") else None))
        assert r.status_code == 200
        r.read()
        assert srv.accepted == 2
        # the request reached the server twice: once on each connection
        assert [i for i, q in srv.requests if q.target == "/again"] == [0, 1]


def test_post_without_key_not_retried(scripted_server):
    srv = scripted_server(_stale_after_first())
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        with pytest.raises(ft.RemoteProtocolError) as ei:
            t.round_trip(ft.Request("POST", srv.url("/p"), content=b"data"))
        assert str(ei.value) == f'Post "{srv.url("/p")}": EOF'
        assert srv.accepted == 1


def test_fresh_connection_never_retried(scripted_server):
    srv = scripted_server([b"", CLOSE])
    with ft.Transport() as t:
        with pytest.raises(ft.RemoteProtocolError, match=": EOF$"):
            t.round_trip(ft.Request("GET", srv.url("/")))
        assert srv.accepted == 1


def test_failure_after_response_bytes_not_retried(scripted_server):
    srv = scripted_server(per_connection([OK, b"HTTP/1.1 200 OK\r\nX-Partial", CLOSE], [OK]))
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        with pytest.raises(ft.RemoteProtocolError, match="unexpected EOF"):
            t.round_trip(ft.Request("GET", srv.url("/")))
        assert srv.accepted == 1


# ---- close_idle_connections ---------------------------------------------------


def test_close_idle_conns_then_return(http_server):
    # TestTransportCloseIdleConnsThenReturn
    with ft.Transport() as t:
        held = t.round_trip(ft.Request("GET", http_server.url("/bytes/5")))
        t.close_idle_connections()
        held.read()                  # finishes after closeIdle: closed, not pooled
        assert t.stats().open_conns == 0
        t.round_trip(ft.Request("GET", http_server.url("/bytes/5"))).read()
        assert t.stats().idle_conns == 1   # a request arrived: pooling again


def test_close_idle_leaves_in_use_alone(http_server):
    with ft.Transport() as t:
        t.round_trip(ft.Request("GET", http_server.url("/"))).read()
        held = t.round_trip(ft.Request("GET", http_server.url(f"/bytes/{1 << 20}")))
        t.close_idle_connections()
        s = t.stats()
        assert s.idle_conns == 0 and s.active_conns == 1
        assert len(held.read()) == 1 << 20


def test_stray_bytes_after_a_response_are_never_read_as_the_next_one(scripted_server):
    # A body on a HEAD response arrives a moment late: whoever sees it first
    # - the engine's idle watch or the non-blocking check a request makes
    # before it reuses an idle connection - the next request gets its own
    # response, never the stray bytes.
    sent = threading.Event()
    rounds = 100

    def handler(conn):
        while True:
            req = conn.read_request(timeout=10)
            if req is None:
                return
            if req.method == "HEAD":
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                conn.sleep(0.002)    # after the client has pooled the connection
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
                sent.set()
            else:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nright")

    srv = scripted_server(handler)
    with ft.Transport() as t:
        for _ in range(rounds):
            sent.clear()
            t.round_trip(ft.Request("HEAD", srv.url("/"))).read()
            assert sent.wait(5)
            r = t.round_trip(ft.Request("GET", srv.url("/")))
            assert r.read() == b"right"
        s = t.stats()
    assert s.requests == 2 * rounds
    # every connection that carried stray bytes was closed, not reused
    assert srv.accepted == rounds + 1 or s.idle_closed_by_peer >= rounds - 1, (srv.accepted, s)
