"""Fault injection: a server that misbehaves in each way of ``faults.py``.

For every fault: the documented exception within the configured
timeout, a message naming method, URL and cause, a consistent pool afterwards
(nothing active, waiting or dialing; every open connection idle or draining)
and a next request on the same Transport that works.  Then cancellation from
another thread in each phase of an exchange (waiting for a connection,
dialing, awaiting headers, reading the body): ``ft.Cancelled`` within the
cancel poll interval (50 ms) plus scheduling slack, and the connection closed,
never pooled.

Time bounds are generous: the lower bound proves a timeout did not fire
early, the upper one that it fired at all (the machine may be busy)."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import faults
import pytest
from faults import FullListener
from servers import ServerConn, per_connection, response, wait_until

import fasttransport as ft

#: Added to every upper time bound: scheduling on a busy 2-core machine.
SLACK = 1.5
#: How soon after cancel() the exception must arrive: the 50 ms poll
#: interval of a waiting caller plus scheduling slack.
CANCEL_BOUND = 0.05 + 0.25
TIMEOUT = 0.5


# ---------------------------------------------------------------- helpers


def pool_consistent(t: ft.Transport) -> ft.TransportStats:
    """Nothing in use, waiting or dialing; every open connection idle or draining."""
    s = t.stats()
    assert s.active_conns == 0, s
    assert s.waiting_requests == 0, s
    assert s.dialing_conns == 0, s
    assert s.open_conns == s.idle_conns + s.draining_conns, s
    return s


def next_request_works(t: ft.Transport, srv: Any) -> None:
    r = t.round_trip(ft.Request("GET", srv.url("/next")))
    assert r.status_code == 200 and r.read() == b"fine"
    pool_consistent(t)


def check_message(err: ft.HTTPError, method: str, url: str, cause: str) -> None:
    msg = str(err)
    op = method.capitalize()
    assert msg.startswith(f'{op} "{url}": '), msg
    assert cause in msg, msg
    assert err.method == method and err.url == url


@pytest.fixture(scope="module")
def tls_context(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


# ---------------------------------------------------------------- the fault table


@dataclass
class Fault:
    """One fault: ``handler`` serves the first connection (later ones answer
    ``faults.GOOD``); the exchange fails with ``exc`` whose message contains
    ``cause``, in the head phase (``round_trip`` raises) or the body phase
    (reading raises), after at least ``at_least`` and at most ``at_most``
    (+ SLACK) seconds."""

    handler: Callable[[ServerConn], None]
    exc: type
    cause: str
    phase: str = "head"
    transport: dict = field(default_factory=dict)
    timeout: Optional[float] = None       # Client timeout (None: round_trip)
    method: str = "GET"
    content: Optional[bytes] = None
    at_least: float = 0.0
    at_most: float = 0.5
    server_sees_close: bool = True


BROKEN = "net/http: HTTP/1.x transport connection broken: "
RHT = dict(response_header_timeout=TIMEOUT)
AWAITING = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
READING = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"

FAULTS = {
    "rst_mid_head": Fault(faults.rst_mid_head, ft.RemoteProtocolError,
                          BROKEN + "read: connection reset by peer"),
    "rst_mid_body": Fault(faults.rst_mid_body, ft.RemoteProtocolError,
                          "read: connection reset by peer", phase="body"),
    "truncated_body": Fault(faults.truncated_body, ft.RemoteProtocolError,
                            "unexpected EOF", phase="body"),
    "truncated_body_client": Fault(faults.truncated_body, ft.RemoteProtocolError,
                                   "unexpected EOF", timeout=30),
    "slowloris_header_timeout": Fault(faults.slowloris_head, ft.ResponseHeaderTimeout,
                                      "net/http: timeout awaiting response headers",
                                      transport=RHT, at_least=TIMEOUT, at_most=TIMEOUT),
    "slowloris_client_timeout": Fault(faults.slowloris_head, ft.ReadTimeout, AWAITING,
                                      timeout=TIMEOUT, at_least=TIMEOUT, at_most=TIMEOUT),
    "endless_headers_small_limit": Fault(
        faults.endless_headers, ft.RemoteProtocolError,
        BROKEN + "net/http: server response headers exceeded 65536 bytes; aborted",
        transport=dict(max_response_header_bytes=65536)),
    "endless_headers_default_limit": Fault(
        faults.endless_headers, ft.RemoteProtocolError,
        BROKEN + "net/http: server response headers exceeded 10485760 bytes; aborted",
        at_most=2.0),
    "garbage_binary": Fault(faults.garbage(b"\x00\xff\x16\x03\x01garbage\r\n\r\n"),
                            ft.RemoteProtocolError,
                            BROKEN + 'malformed HTTP response "\\x00\\xff\\x16\\x03\\x01garbage"'),
    "garbage_other_protocol": Fault(faults.garbage(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"),
                                    ft.RemoteProtocolError,
                                    BROKEN + 'malformed HTTP version "RTSP/1.0"'),
    "garbage_no_line_end_limit": Fault(faults.garbage(b"\x7f" * 20000), ft.RemoteProtocolError,
                                       "server response headers exceeded 4096 bytes; aborted",
                                       transport=dict(max_response_header_bytes=4096)),
    "garbage_no_line_end_timeout": Fault(faults.garbage(b"NOT-HTTP " * 100),
                                         ft.ResponseHeaderTimeout, "timeout awaiting response",
                                         transport=RHT, at_least=TIMEOUT, at_most=TIMEOUT),
    "huge_content_length": Fault(faults.huge_content_length, ft.ReadTimeout, READING,
                                 timeout=TIMEOUT, at_least=TIMEOUT, at_most=TIMEOUT),
    "never_answer_header_timeout": Fault(faults.never_answer, ft.ResponseHeaderTimeout,
                                         "net/http: timeout awaiting response headers",
                                         transport=RHT, at_least=TIMEOUT, at_most=TIMEOUT),
    "never_answer_client_timeout": Fault(faults.never_answer, ft.ReadTimeout, AWAITING,
                                         timeout=TIMEOUT, at_least=TIMEOUT, at_most=TIMEOUT),
    # The request body cannot be written: response_header_timeout has not
    # started (Go starts it after the write), the client's timeout applies.
    # The client's FIN stays queued behind the unsent body: the server cannot
    # see the close.
    "never_answer_big_upload": Fault(faults.never_answer, ft.ReadTimeout, AWAITING,
                                     timeout=TIMEOUT, method="POST", content=b"u" * (16 << 20),
                                     transport=RHT, at_least=TIMEOUT, at_most=TIMEOUT,
                                     server_sees_close=False),
}


def _exchange(t: ft.Transport, fault: Fault, url: str) -> tuple[BaseException, float]:
    """Run the faulty exchange; returns (exception, seconds taken)."""
    t0 = time.monotonic()
    with pytest.raises(fault.exc) as ei:
        if fault.timeout is not None:
            c = ft.Client(transport=t, timeout=fault.timeout)
            c.request(fault.method, url, content=fault.content)
        else:
            r = t.round_trip(ft.Request(fault.method, url, content=fault.content))
            assert fault.phase == "body", f"round_trip returned {r.status_code}"
            r.read()
    return ei.value, time.monotonic() - t0


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(scripted_server, name):
    fault = FAULTS[name]
    srv = scripted_server(per_connection(fault.handler, faults.good))
    with ft.Transport(**fault.transport) as t:
        url = srv.url(f"/{name}")
        err, elapsed = _exchange(t, fault, url)
        check_message(err, fault.method, url, fault.cause)
        assert fault.at_least <= elapsed < fault.at_most + SLACK, elapsed
        s = pool_consistent(t)
        assert s.open_conns == 0, s      # a failed connection is never pooled
        if fault.server_sees_close:     # the client closed its end: the handler ended
            assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3), srv.open_conns
        next_request_works(t, srv)
        assert srv.accepted == 2


def test_every_fault_is_an_http_error_in_the_batch_and_async_apis(scripted_server):
    """The same faults through Client.submit and AsyncClient, all at once:
    each ends in the documented ft.HTTPError subclass (or, with the
    client's 3 s cap on a fault that has no timeout of its own, a timeout),
    naming its URL; nothing is left in use."""
    import asyncio

    cases = []
    for name, fault in FAULTS.items():
        srv = scripted_server(per_connection(fault.handler, fault.handler, faults.good))
        t = ft.Transport(**fault.transport)
        cases.append((name, fault, srv.url(f"/{name}"), t))
    try:
        futs = []
        for _, fault, url, t in cases:
            c = ft.Client(transport=t, timeout=fault.timeout or 3.0)
            futs.append(c.submit(fault.method, url, content=fault.content))

        async def all_async() -> list:
            out = []
            for _, fault, url, t in cases:
                c = ft.AsyncClient(transport=t, timeout=fault.timeout or 3.0)
                out.append(c.request(fault.method, url, content=fault.content))
            return await asyncio.gather(*out, return_exceptions=True)

        async_results = asyncio.run(all_async())
        for (name, fault, url, t), fut, ares in zip(cases, futs, async_results):
            for err in (fut.exception(timeout=30), ares):
                assert isinstance(err, (fault.exc, ft.TimeoutError)), (name, repr(err))
                assert isinstance(err, ft.HTTPError) and url in str(err), (name, repr(err))
            assert wait_until(lambda t=t: t.stats().active_conns == 0, 5), (name, t.stats())
    finally:
        for _, _, _, t in cases:
            t.close()


# ---------------------------------------------------------------- faults with a success


def test_huge_content_length_closed_early_is_not_drained(scripted_server):
    srv = scripted_server(per_connection(faults.huge_content_length, faults.good))
    with ft.Transport() as t:
        r = t.round_trip(ft.Request("GET", srv.url("/huge")))
        assert r.headers["Content-Length"] == str(faults.HUGE_LENGTH)
        assert len(r.read(1000)) == 1000
        t0 = time.monotonic()
        r.close()                        # 2 GiB left: beyond drain_limit, closed at once
        assert time.monotonic() - t0 < 0.5
        assert pool_consistent(t).open_conns == 0
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)
        next_request_works(t, srv)


@pytest.mark.parametrize("attempts", [40])
@pytest.mark.parametrize("handler", [faults.fin_after_response, faults.rst_after_response],
                         ids=["fin", "rst"])
@pytest.mark.parametrize("method,headers", [("GET", {}), ("POST", {"Idempotency-Key": "k"})])
def test_dead_idle_connection_just_before_reuse(scripted_server, handler, method, headers,
                                                attempts):
    # Every connection answers once and is then closed by the server while
    # the client pools it; the next request races the FIN/RST. A replayable
    # request never fails: either the idle watch dropped the connection, or
    # the request failed on it before any response byte and was retried.
    srv = scripted_server(handler)
    with ft.Transport() as t:
        for i in range(attempts):
            r = t.round_trip(ft.Request(method, srv.url(f"/{i}"), headers=headers,
                                        content=b"p" if method == "POST" else None))
            assert r.read() == b"fine"
        pool_consistent(t)
    assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)


@pytest.mark.parametrize("delimited", [True, False], ids=["content-length", "close-delimited"])
def test_half_close(scripted_server, delimited):
    # The server shuts its write side after the answer and keeps reading: the
    # client gets the whole body, does not reuse the connection and closes
    # its own end (the server sees EOF).
    srv = scripted_server(per_connection(lambda c: faults.half_close(c, delimited),
                                         faults.good))
    with ft.Transport() as t:
        r = t.round_trip(ft.Request("GET", srv.url("/half")))
        assert r.read() == b"half-closed"
        # a Content-Length answer is pooled, then the idle watch sees the FIN
        assert wait_until(lambda: t.stats().open_conns == 0, timeout=3)
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)
        pool_consistent(t)
        next_request_works(t, srv)
        assert srv.accepted == 2


def test_early_response_while_body_is_written_server_stalls(scripted_server):
    # The server answers after the head and reads nothing more: the client
    # gets the answer (Go: the response beats the unfinished write), does not
    # pool the connection and closes it at once instead of finishing the write.
    # (The server may not see that close: the FIN waits behind unsent bytes.)
    srv = scripted_server(per_connection(faults.early_response(413, "stall"), faults.good))
    with ft.Transport() as t:
        r = t.round_trip(ft.Request("POST", srv.url("/up"), content=b"u" * (16 << 20)))
        assert r.status_code == 413 and r.read() == b"early"
        assert wait_until(lambda: t.stats().open_conns == 0, timeout=3)
        next_request_works(t, srv)


def test_early_response_then_reset(scripted_server):
    # Go's TestIssue3595: the server answers early, then resets while the
    # client is still writing; the response wins over the write error.
    srv = scripted_server(per_connection(faults.early_response(413, "reset"), faults.good))
    with ft.Transport() as t:
        r = t.round_trip(ft.Request("POST", srv.url("/up"), content=b"u" * (16 << 20)))
        assert r.status_code == 413
        assert r.read() == b"early"
        assert pool_consistent(t).open_conns == 0
        next_request_works(t, srv)


# ---------------------------------------------------------------- TLS


TLS_FAULTS = {
    "silent_after_handshake_header_timeout": Fault(
        faults.silent_after_handshake, ft.ResponseHeaderTimeout,
        "net/http: timeout awaiting response headers", transport=RHT,
        at_least=TIMEOUT, at_most=TIMEOUT),
    "silent_after_handshake_client_timeout": Fault(
        faults.silent_after_handshake, ft.ReadTimeout, AWAITING, timeout=TIMEOUT,
        at_least=TIMEOUT, at_most=TIMEOUT),
    "rst_mid_head": Fault(faults.rst_mid_head, ft.RemoteProtocolError,
                          BROKEN + "read: "),
    "rst_mid_body": Fault(faults.rst_mid_body, ft.RemoteProtocolError, "read: ", phase="body"),
    "truncated_body": Fault(faults.truncated_body, ft.RemoteProtocolError, "unexpected EOF",
                            phase="body"),
    "huge_content_length": Fault(faults.huge_content_length, ft.ReadTimeout, READING,
                                 timeout=TIMEOUT, at_least=TIMEOUT, at_most=TIMEOUT),
}


@pytest.mark.parametrize("name", list(TLS_FAULTS))
def test_tls_fault(scripted_server, ca_file, tls_context, name):
    fault = TLS_FAULTS[name]
    srv = scripted_server(per_connection(fault.handler, faults.good), ssl_context=tls_context)
    with ft.Transport(verify=ca_file, **fault.transport) as t:
        url = srv.url(f"/{name}")
        err, elapsed = _exchange(t, fault, url)
        check_message(err, fault.method, url, fault.cause)
        assert fault.at_least <= elapsed < fault.at_most + SLACK, elapsed
        assert pool_consistent(t).open_conns == 0
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)
        next_request_works(t, srv)
        assert srv.accepted == 2


@pytest.mark.parametrize("handler,cause", [
    (faults.reset_during_handshake, "tls: handshake with 127.0.0.1 failed: "),
    (faults.close_during_handshake, "tls: handshake with 127.0.0.1 failed: EOF"),
], ids=["rst", "fin"])
def test_tls_handshake_cut(scripted_server, ca_file, tls_context, handler, cause):
    # A plain server: the first connection sees the ClientHello and hangs up;
    # the second one is wrapped in TLS by hand and answers.
    def tls_good(conn):
        conn.sock = tls_context.wrap_socket(conn.sock, server_side=True)
        faults.good(conn)

    srv = scripted_server(per_connection(handler, tls_good))
    url = f"https://127.0.0.1:{srv.port}/hs"
    with ft.Transport(verify=ca_file) as t:
        t0 = time.monotonic()
        with pytest.raises(ft.TLSError) as ei:
            t.round_trip(ft.Request("GET", url))
        assert time.monotonic() - t0 < 0.5 + SLACK
        check_message(ei.value, "GET", url, cause)
        s = pool_consistent(t)
        assert s.open_conns == 0 and s.dial_errors == 1
        r = t.round_trip(ft.Request("GET", f"https://127.0.0.1:{srv.port}/next"))
        assert r.read() == b"fine"
        pool_consistent(t)


# ---------------------------------------------------------------- cancellation


class Canceller:
    """Cancels ``token`` from its own thread as soon as ``ready()`` holds
    (polled every 2 ms, for at most 10 s) and records when."""

    def __init__(self, token: ft.CancelToken, ready: Callable[[], bool]) -> None:
        self.token = token
        self.ready = ready
        self.at: Optional[float] = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if wait_until(self.ready, timeout=10):
            self.at = time.monotonic()
            self.token.cancel()

    def latency(self) -> float:
        """Seconds from cancel() to now."""
        self._thread.join(10)
        assert self.at is not None, "the phase to cancel in was never reached"
        return time.monotonic() - self.at


def expect_cancelled(call: Callable[[], Any], canceller: Canceller) -> ft.Cancelled:
    with pytest.raises(ft.Cancelled) as ei:
        call()
    latency = canceller.latency()
    assert latency < CANCEL_BOUND, f"Cancelled {latency * 1000:.0f} ms after cancel()"
    return ei.value


def test_cancel_while_waiting_for_a_connection(scripted_server):
    srv = scripted_server(faults.good)
    with ft.Transport(max_conns_per_host=1) as t:
        c = ft.Client(transport=t)
        held = c.get(srv.url("/held"), stream=True)     # holds the only slot
        tok = ft.CancelToken()
        canceller = Canceller(tok, lambda: t.stats().waiting_requests == 1)
        url = srv.url("/waiting")
        err = expect_cancelled(lambda: c.get(url, cancel=tok), canceller)
        check_message(err, "GET", url, "")
        s = t.stats()
        assert s.waiting_requests == 0 and s.active_conns == 1
        held.close()
        pool_consistent(t)
        assert c.get(srv.url("/next")).content == b"fine"
        assert srv.accepted == 1
        assert [q.target for _, q in srv.requests] == ["/held", "/next"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_cancel_while_dialing(ca_file, scheme):
    with FullListener() as listener, ft.Transport(dial_timeout=5, verify=ca_file) as t:
        c = ft.Client(transport=t)
        tok = ft.CancelToken()
        canceller = Canceller(tok, lambda: t.stats().dialing_conns == 1)
        url = listener.url("/dial", scheme)
        err = expect_cancelled(lambda: c.get(url, cancel=tok), canceller)
        check_message(err, "GET", url, "")
        s = t.stats()
        assert s.waiting_requests == 0 and s.active_conns == 0
        assert s.dialing_conns <= 1
        # Go detaches dials from cancellation; close_idle_connections aborts
        # the ones nobody waits for.
        t.close_idle_connections()
        assert wait_until(lambda: t.stats().dialing_conns == 0, timeout=3)
        s = pool_consistent(t)
        assert s.open_conns == 0


def test_cancel_during_tls_handshake(scripted_server, ca_file):
    srv = scripted_server(faults.never_answer)          # accepts, never says hello
    url = f"https://127.0.0.1:{srv.port}/hs"
    with ft.Transport(verify=ca_file) as t:
        c = ft.Client(transport=t)
        tok = ft.CancelToken()
        canceller = Canceller(tok, lambda: srv.accepted == 1)
        expect_cancelled(lambda: c.get(url, cancel=tok), canceller)
        t.close_idle_connections()
        assert wait_until(lambda: t.stats().open_conns == 0, timeout=3)
        pool_consistent(t)
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)


def test_cancel_awaiting_headers(scripted_server):
    srv = scripted_server(per_connection(faults.silent_after_handshake, faults.good))
    with ft.Transport() as t:
        c = ft.Client(transport=t)
        tok = ft.CancelToken()
        canceller = Canceller(tok, lambda: len(srv.requests) == 1)
        url = srv.url("/headers")
        err = expect_cancelled(lambda: c.get(url, cancel=tok), canceller)
        check_message(err, "GET", url, "context canceled")
        assert pool_consistent(t).open_conns == 0
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)   # closed, not pooled
        next_request_works(t, srv)
        assert srv.accepted == 2


def _head_then_stall(conn: ServerConn) -> None:
    if conn.read_request() is not None:
        conn.send(response(200, headers=[("Content-Length", "100000")]) + b"x" * 1000)
        faults.hold(conn)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_cancel_reading_the_body(scripted_server, ca_file, tls_context, tls):
    srv = scripted_server(per_connection(_head_then_stall, faults.good),
                          ssl_context=tls_context if tls else None)
    with ft.Transport(verify=ca_file) as t:
        c = ft.Client(transport=t)
        tok = ft.CancelToken()
        url = srv.url("/body")
        r = c.get(url, stream=True, cancel=tok)
        assert r.read(1000) == b"x" * 1000
        reading = threading.Event()
        canceller = Canceller(tok, reading.is_set)
        reading.set()
        err = expect_cancelled(lambda: r.read(1000), canceller)
        check_message(err, "GET", url, "context canceled")
        with pytest.raises(ft.Cancelled):                # sticky
            r.read()
        r.close()
        assert pool_consistent(t).open_conns == 0
        assert srv.wait_for(lambda: srv.open_conns == 0, timeout=3)
        next_request_works(t, srv)


def test_cancel_after_eof_has_no_effect(scripted_server):
    srv = scripted_server(faults.good)
    with ft.Transport() as t:
        c = ft.Client(transport=t)
        tok = ft.CancelToken()
        r = c.get(srv.url("/done"), stream=True, cancel=tok)
        assert r.read() == b"fine"
        tok.cancel()
        assert r.read() == b""
        r.close()
        s = pool_consistent(t)
        assert s.idle_conns == 1
