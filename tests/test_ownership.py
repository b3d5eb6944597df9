"""Who may touch a connection: one thread advances it at a time; any other
thread - a watchdog calling Response.close(), a CancelToken, Client.close()
or Transport.close() - only asks the owner to stop. Races in every phase of
an exchange (dialing, writing, waiting for the head, reading the body,
draining) end in a documented error or a normal result, never a crash or a
hang, and leave nothing behind.

FT_STRESS_SCALE scales the rounds (CI runs 0.25 under the sanitizers);
FT_RACE_ROUNDS sets the rounds of the close/cancel race directly (the
ThreadSanitizer run uses 10,000)."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest
from servers import body_bytes

import fasttransport as ft

SCALE = float(os.environ.get("FT_STRESS_SCALE", "1"))
ROUNDS = max(4, int(24 * SCALE))
RACE_ROUNDS = int(os.environ.get("FT_RACE_ROUNDS", str(max(50, int(1000 * SCALE)))))
BIG = 32 << 20


def test_close_from_another_thread_wakes_a_blocked_reader(scripted_server):
    # the crash this file was written for: close() while read() is blocked
    def handler(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc")
        conn.sleep(10)

    srv = scripted_server(handler)
    with ft.Client(timeout=30) as client:
        r = client.get(srv.url("/"), stream=True)
        assert r.read(3) == b"abc"
        timer = threading.Timer(0.2, r.close)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(ft.RemoteProtocolError, match="read on closed response body") as ei:
            r.read(10)
        assert time.monotonic() - t0 < 1.0         # woken, not left to the server
        assert 'Get "http://127.0.0.1' in str(ei.value)
        timer.join()
        assert r.is_closed
        with pytest.raises(ft.RemoteProtocolError, match="read on closed response body"):
            r.read(1)
        st = client.transport.stats()
        assert (st.open_conns, st.active_conns, st.write_loops) == (0, 0, 0)


def test_cancel_wakes_a_blocked_reader_at_once(scripted_server):
    def handler(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        conn.sleep(10)

    srv = scripted_server(handler)
    token = ft.CancelToken()
    with ft.Client() as client:
        r = client.get(srv.url("/"), stream=True, cancel=token)
        assert r.read(2) == b"ab"
        threading.Timer(0.1, token.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(ft.Cancelled, match="context canceled"):
            r.read(5)
        assert time.monotonic() - t0 < 0.5
        assert client.transport.stats().open_conns == 0


# ---- every phase x every way of stopping it from another thread ----------

def _hold(conn):
    # until the client goes away; at most 1 s (a client that closed with an
    # upload queued sends its FIN only after the bytes nobody reads)
    end = time.monotonic() + 1
    while not conn.stopping and not conn.peer_closed() and time.monotonic() < end:
        conn.sleep(0.005)


def _phase_handler(phase):
    def handler(conn):
        if phase == "dialing":          # accepts, never answers a TLS hello
            _hold(conn)
            return
        req = conn.read_request(body=False, timeout=30)
        if req is None:
            return
        if phase == "head":             # request read, no answer
            conn.read_body(req)
        elif phase in ("body", "duplex", "parked"):  # head and a piece of the body
            if phase == "body":
                conn.read_body(req)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        elif phase == "draining":       # a small remainder, sent slowly
            conn.read_body(req)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n" + b"x" * 1000)
            for _ in range(19):
                if not conn.sleep(0.002) or conn.peer_closed():
                    return
                conn.send(b"x" * 1000)
        # "writing": never reads the upload
        _hold(conn)
    return handler


def _exchange(client, srv, phase, token, got):
    """The owner's side: one request in the given phase, read to the end."""
    try:
        if phase == "dialing":
            r = client.get(srv.url("/").replace("http:", "https:"), cancel=token)
        elif phase in ("writing", "duplex", "parked"):
            r = client.post(srv.url("/"), content=b"u" * BIG, cancel=token, stream=True)
        else:
            r = client.get(srv.url("/"), cancel=token, stream=True)
        got["response"] = r
        if phase == "parked":           # away while the engine sends the upload
            got["stopped"].wait(10)
        if phase == "draining":
            r.read(1000)
            r.close()                   # the engine drains the rest
            got["result"] = "closed"
            return
        got["result"] = r.read()
    except ft.HTTPError as e:           # the documented outcome of a stop
        got["result"] = e
    except BaseException as e:  # noqa: BLE001 - reported by the test
        got["result"] = e


def _stop(action, client, token, got):
    if action == "cancel":
        token.cancel()
    elif action == "close_response":
        r = got.get("response")
        if r is not None:
            r.close()
    else:
        client.transport.close()


@pytest.mark.parametrize("phase", ["dialing", "writing", "head", "body", "duplex", "parked",
                                   "draining"])
@pytest.mark.parametrize("action", ["cancel", "close_response", "close_transport"])
def test_stop_from_another_thread_in_every_phase(scripted_server, phase, action):
    srv = scripted_server(_phase_handler(phase))
    rng = random.Random(f"{phase}/{action}")
    outcomes = set()
    for _ in range(ROUNDS):
        client = ft.Client(timeout=20, transport=ft.Transport(verify=False, drain_limit=1 << 20))
        token = ft.CancelToken()
        got = {"stopped": threading.Event()}
        owner = threading.Thread(target=_exchange, args=(client, srv, phase, token, got))
        owner.start()
        # stop it at a random moment in (or just after) the phase
        time.sleep(rng.uniform(0, 0.02))
        _stop(action, client, token, got)
        got["stopped"].set()
        client.transport.close()        # ends phases that the action cannot reach
        owner.join(10)
        assert not owner.is_alive(), f"{phase}/{action}: the owner did not stop"
        res = got["result"]
        assert not isinstance(res, Exception) or isinstance(res, ft.HTTPError), repr(res)
        if isinstance(res, ft.HTTPError):
            assert "127.0.0.1" in str(res)     # names the URL
        outcomes.add(type(res).__name__)
        st = client.transport.stats()
        assert (st.open_conns, st.active_conns, st.write_loops, st.io_threads) == (0, 0, 0, 0)
        client.close()
    assert srv.wait_for(lambda: srv.open_conns == 0, timeout=5)
    # every phase can be stopped: an error is what the owner saw at least once
    if phase != "draining":
        assert outcomes & {"Cancelled", "RemoteProtocolError", "TransportError", "TLSError",
                           "ConnectError"}, outcomes


def test_close_and_cancel_race_the_reader(http_server, no_leaks):
    """Many rounds of close()/cancel() from a second thread at random moments
    while the owner reads a 256 KiB body: each read ends with the body or the
    documented error, and the connection accounting stays exact."""
    url = http_server.url("/bytes/262144")
    expected = body_bytes(262144)
    rng = random.Random(7)
    errors = {"Cancelled": 0, "RemoteProtocolError": 0, "complete": 0}
    with ft.Client(timeout=20) as client:
        for i in range(RACE_ROUNDS):
            token = ft.CancelToken()
            r = client.get(url, stream=True, cancel=token)
            stop = token.cancel if i % 2 else r.close
            delay = rng.choice([0, 0, 0.0001, 0.0005, 0.001])
            t = threading.Timer(delay, stop)
            t.start()
            try:
                data = r.read()
            except ft.Cancelled:
                errors["Cancelled"] += 1
            except ft.RemoteProtocolError as e:
                assert "read on closed response body" in str(e)
                errors["RemoteProtocolError"] += 1
            else:
                assert data == expected
                errors["complete"] += 1
            t.join()
            r.close()
            st = client.transport.stats()
            assert st.active_conns == 0 and st.write_loops == 0, st
        assert sum(errors.values()) == RACE_ROUNDS
        assert client.transport.stats().open_conns <= 1
