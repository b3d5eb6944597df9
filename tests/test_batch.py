"""Many requests in flight from one thread: Client.submit -> ft.Future,
ft.as_completed, Client.map. The engine runs every exchange; these tests
drive it through the public API against real sockets and check that no
thread is started per request, that errors and cancellation stay with their
item, and that nothing is left open afterwards."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from servers import body_bytes, http_handler, thread_count, wait_until
from test_tls import server_context

import fasttransport as ft
from fasttransport import _core


def _quiet(t: ft.Transport) -> bool:
    s = t.stats()
    return s.active_conns == 0 and s.dialing_conns == 0 and s.write_loops == 0


def test_submit_result_and_reuse(http_server, no_leaks):
    with ft.Client() as c:
        f = c.submit("GET", http_server.url("/bytes/5000"))
        r = f.result(timeout=10)
        assert r.status_code == 200 and r.content == body_bytes(5000)
        assert f.done() and not f.cancelled() and f.exception() is None
        for _ in range(20):
            assert c.submit("GET", http_server.url("/")).result().text == "hello"
        s = c.transport.stats()
        assert s.dials == 1 and s.reused_conns == 20 and s.requests == 21
        assert _quiet(c.transport)
    assert _core.inflight_count() == 0


def test_no_thread_per_request(scripted_server):
    srv = scripted_server(http_handler)
    with ft.Client(transport=ft.Transport(io_threads=1)) as c:
        before = thread_count()
        futs = [c.submit("GET", srv.url("/slow?delay=0.3")) for _ in range(100)]
        time.sleep(0.1)
        # the server runs a thread per connection; the client none per request
        client_threads = thread_count() - before - srv.open_conns
        assert client_threads <= 0
        assert c.transport.stats().io_threads == 1
        assert all(f.result(timeout=20).text == "slow" for f in futs)


def test_as_completed_in_completion_order(http_server):
    with ft.Client() as c:
        slow = c.submit("GET", http_server.url("/slow?delay=0.6"))
        fast = [c.submit("GET", http_server.url(f"/bytes/{i}")) for i in range(10)]
        order = list(ft.as_completed([slow, *fast], timeout=10))
        assert order[-1] is slow
        assert set(order[:-1]) == set(fast)
        assert [len(f.result().content) for f in fast] == list(range(10))


def test_as_completed_timeout(http_server):
    with ft.Client() as c:
        f = c.submit("GET", http_server.url("/slow?delay=2"))
        t0 = time.monotonic()
        with pytest.raises(ft.TimeoutError, match="unfinished after 0.2 s"):
            list(ft.as_completed([f], timeout=0.2))
        assert time.monotonic() - t0 < 1.5
        with pytest.raises(ft.TimeoutError, match="not ready within"):
            f.result(timeout=0.05)
        assert f.cancel() and f.cancelled()
        with pytest.raises(ft.Cancelled, match='Get "http://127.0.0.1:.*": context canceled'):
            f.result()


def test_map_errors_are_values_and_lose_nothing(http_server):
    bad = "http://127.0.0.1:1/refused"
    items = [http_server.url(f"/bytes/{i}") for i in range(50)]
    items.insert(10, bad)
    items.insert(30, ("POST", http_server.url("/echo")))
    with ft.Client() as c:
        got = {}
        for req, res in c.map(items, concurrency=8):
            got[req.url] = res
        assert len(got) == 52
        assert isinstance(got[bad], ft.ConnectError)
        assert 'Get "http://127.0.0.1:1/refused"' in str(got[bad])
        assert got[http_server.url("/echo")].json()["method"] == "POST"
        for i in range(50):
            assert got[http_server.url(f"/bytes/{i}")].content == body_bytes(i)
        assert _quiet(c.transport)


def test_map_accepts_requests_and_keeps_them(http_server):
    reqs = [ft.Request("PUT", http_server.url("/echo"), content=b"x" * i) for i in range(5)]
    with ft.Client() as c:
        out = dict(c.map(reqs, concurrency=2))
    assert set(out) == set(reqs)
    for r in reqs:
        doc = out[r].json()
        assert doc["method"] == "PUT" and doc["body"] == r.body.decode()


def test_map_is_lazy_and_bounded(http_server):
    pulled = 0

    def urls():
        nonlocal pulled
        for _ in range(1_000_000):
            pulled += 1
            yield http_server.url("/")

    with ft.Client() as c:
        done = 0
        for _req, res in c.map(urls(), concurrency=16):
            assert res.text == "hello"
            done += 1
            assert pulled <= done + 16 + 1
            if done == 500:
                break
        # leaving the loop early cancels what is still in flight
        assert wait_until(lambda: _quiet(c.transport), 5)
        assert pulled <= 500 + 16 + 1


def test_map_respects_max_conns_per_host(scripted_server):
    srv = scripted_server(http_handler)
    with ft.Client(transport=ft.Transport(max_conns_per_host=4)) as c:
        res = [r for _, r in c.map([srv.url("/slow?delay=0.05")] * 40, concurrency=32)]
        assert all(r.text == "slow" for r in res)
        assert srv.max_concurrent <= 4 and srv.accepted <= 4


def test_cancel_token_stops_a_whole_map(http_server):
    token = ft.CancelToken()
    pulled = 0

    def urls():
        nonlocal pulled
        while True:
            pulled += 1
            yield http_server.url("/slow?delay=5")

    threading.Timer(0.3, token.cancel).start()
    t0 = time.monotonic()
    with ft.Client() as c:
        results = [r for _, r in c.map(urls(), concurrency=8, cancel=token)]
        assert time.monotonic() - t0 < 3
        assert len(results) == 8 and pulled <= 9
        assert all(isinstance(r, ft.Cancelled) for r in results)
        assert wait_until(lambda: c.transport.stats().open_conns == 0, 5)


def test_future_cancel_closes_its_connection(http_server):
    with ft.Client() as c:
        f = c.submit("GET", http_server.url("/slow?delay=5"))
        assert wait_until(lambda: c.transport.stats().active_conns == 1, 5)
        assert f.running() and f.cancel()
        assert f.cancelled() and f.done()
        assert isinstance(f.exception(), ft.Cancelled)
        assert wait_until(lambda: c.transport.stats().open_conns == 0, 5)
        assert not f.cancel() or f.cancelled()


def test_ctrl_c_while_waiting(http_server):
    with ft.Client() as c:
        futs = [c.submit("GET", http_server.url("/slow?delay=5")) for _ in range(4)]
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            for _ in ft.as_completed(futs):
                pass
        assert time.monotonic() - t0 < 1.0
        for f in futs:
            f.cancel()
        assert wait_until(lambda: c.transport.stats().open_conns == 0, 5)


def test_ctrl_c_in_map_cancels_in_flight(http_server):
    with ft.Client() as c:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            for _ in c.map([http_server.url("/slow?delay=5")] * 10, concurrency=5):
                pass
        assert wait_until(lambda: c.transport.stats().open_conns == 0, 5)


def test_timeouts_and_protocol_errors_per_item(scripted_server, http_server):
    def garbage(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        conn.close()

    bad = scripted_server(garbage)
    with ft.Client() as c:
        slow = c.submit("GET", http_server.url("/slow?delay=3"), timeout=0.2)
        trunc = c.submit("GET", bad.url("/"))
        ok = c.submit("GET", http_server.url("/"))
        assert isinstance(slow.exception(timeout=5), ft.ReadTimeout)
        e = trunc.exception(timeout=5)
        assert isinstance(e, ft.RemoteProtocolError) and "unexpected EOF" in str(e)
        assert ok.result().text == "hello"
        assert wait_until(lambda: _quiet(c.transport), 5)


def test_redirects_and_cookies_hop_by_hop(scripted_server):
    def handler(conn):
        while True:
            req = conn.read_request(timeout=10)
            if req is None:
                return
            if req.path == "/start":
                conn.send(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nSet-Cookie: sid=42\r\n"
                          b"Content-Length: 0\r\n\r\n")
            else:
                body = (dict(req.headers).get("Cookie") or "none").encode()
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    srv = scripted_server(handler)
    with ft.Client() as c:
        futs = [c.submit("GET", srv.url("/start")) for _ in range(5)]
        for f in ft.as_completed(futs):
            r = f.result()
            assert r.status_code == 200 and r.text == "sid=42"
            assert [h.status_code for h in r.history] == [302]
        r = c.submit("GET", srv.url("/start"), follow_redirects=False).result()
        assert r.status_code == 302


def test_stream_true_hands_the_body_over(http_server):
    with ft.Client() as c:
        r = c.submit("GET", http_server.url("/chunked/300000"), stream=True).result()
        got = b"".join(r.iter_bytes())
        assert got == body_bytes(300000)
        assert wait_until(lambda: c.transport.stats().idle_conns == 1, 5)


def test_client_close_fails_what_is_in_flight(http_server):
    c = ft.Client()
    futs = [c.submit("GET", http_server.url("/slow?delay=5")) for _ in range(3)]
    assert wait_until(lambda: c.transport.stats().active_conns == 3, 5)
    c.close()
    for f in futs:
        assert f.done()
        assert isinstance(f.exception(), ft.TransportError)
    assert _core.inflight_count() == 0


def test_results_from_many_threads(http_server):
    with ft.Client() as c:
        futs = [c.submit("GET", http_server.url(f"/bytes/{i}")) for i in range(200)]
        errors = []

        def worker(part):
            try:
                for f in part:
                    assert len(f.result(timeout=20).content) == int(f.request.url.rsplit("/", 1)[1])
            except BaseException as e:   # noqa: BLE001
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(futs[i::4],)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors


def test_done_callbacks(http_server):
    seen = []
    with ft.Client() as c:
        f = c.submit("GET", http_server.url("/"))
        f.add_done_callback(lambda fut: seen.append(fut.result().text))
        f.result()
        assert seen == ["hello"]
        f.add_done_callback(lambda fut: seen.append("late"))
        assert seen == ["hello", "late"]


def test_streamed_body_refused_clearly(http_server):
    with ft.Client() as c:
        f = c.submit("POST", http_server.url("/echo"), content=iter([b"a", b"b"]))
        e = f.exception()
        assert isinstance(e, ft.InvalidRequest) and "needs a blocking call" in str(e)


def test_tls_batch(ca, ca_file, scripted_server):
    srv = scripted_server(http_handler, name="https", ssl_context=server_context(ca))
    with ft.Client(transport=ft.Transport(verify=ca_file)) as c:
        res = [r for _, r in c.map([srv.url(f"/bytes/{i * 100}") for i in range(40)],
                                   concurrency=8)]
        assert all(not isinstance(r, Exception) for r in res), res
        assert sorted(len(r.content) for r in res) == [i * 100 for i in range(40)]
        assert c.transport.stats().tls_handshakes <= 8
    with ft.Client() as c:    # the system store does not know the test CA
        e = c.submit("GET", srv.url("/")).exception()
        assert isinstance(e, ft.TLSError)


def test_map_returns_an_item_that_is_no_request_with_its_error(http_server):
    with ft.Client() as c:
        out = list(c.map(["nope://x", http_server.url("/"), "http://[::1"]))
    by_item = {str(req if isinstance(req, str) else req.url): r for req, r in out}
    assert isinstance(by_item["nope://x"], ft.InvalidRequest)
    assert isinstance(by_item["http://[::1"], ft.InvalidRequest)
    assert by_item[http_server.url("/")].status_code == 200
    assert len(out) == 3


def test_map_refuses_bad_arguments_at_the_call(http_server):
    pulled = []

    def items():
        pulled.append(1)
        yield http_server.url("/")

    with ft.Client() as c:
        with pytest.raises(TypeError, match="cancel must be an ft.CancelToken or None, not int"):
            c.map(items(), cancel=5)
        with pytest.raises(ValueError, match="concurrency must be >= 1, not 0"):
            c.map(items(), concurrency=0)
        assert pulled == []                   # nothing pulled, nothing sent
        assert c.transport.stats().dials == 0
        [(_, r)] = list(c.map(items(), cancel=ft.CancelToken()))
        assert r.status_code == 200


def test_callbacks_added_from_another_thread_are_never_lost(http_server):
    # a future finished by one thread while another adds callbacks to it
    import threading
    with ft.Client() as c:
        for _ in range(50):
            fut = c.submit("GET", http_server.url("/"))
            called = []
            t = threading.Thread(target=fut.result)
            t.start()
            for i in range(20):
                fut.add_done_callback(lambda f, i=i, called=called: called.append(i))
            t.join()
            fut.result()
            assert sorted(called) == list(range(20))
