"""101 Switching Protocols: with Upgrade and
Connection: upgrade the response body becomes the connection itself, read
and write, detached from the pool for good (Go's
TestTransportResponseBodyWritableOnProtocolSwitch); a WebSocket library runs
over it."""

from __future__ import annotations

import base64
import hashlib
import os
import threading

import pytest

import fasttransport as ft

SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\n"
          b"Connection: Upgrade\r\n\r\n")


def test_switched_body_is_read_write_and_off_the_books(scripted_server):
    def handler(conn):
        req = conn.read_request(timeout=10)
        assert req.header("Upgrade") == "foo"
        conn.send(SWITCH + b"early bytes|")      # buffered with the head: served first
        for _ in range(3):
            data = conn.recv_raw(timeout=10)
            assert data
            conn.send(b"echo:" + data)
        conn.recv_raw(timeout=10)                # the client closes
        conn.close()

    srv = scripted_server(handler)
    with ft.Client(transport=ft.Transport(max_conns_per_host=1)) as client:
        r = client.get(srv.url("/ws"), headers={"Upgrade": "foo", "Connection": "upgrade"})
        assert r.status_code == 101
        body = r.body
        assert body.writable()
        assert body.read(12) == b"early bytes|"
        for word in (b"one", b"two", b"three"):
            assert body.write(word) == len(word)
            assert body.read(100) == b"echo:" + word
        # the transport has forgotten the connection: the host's only slot is free
        st = client.transport.stats()
        assert (st.open_conns, st.active_conns, st.write_loops) == (0, 0, 0)
        body.close()
        with pytest.raises(ValueError):
            body.write(b"late")
    srv.wait_for(lambda: srv.open_conns == 0)
    assert srv.open_conns == 0


def test_101_without_upgrade_headers_has_no_body_and_is_not_reused(scripted_server):
    def handler(conn):
        while conn.read_request(timeout=10) is not None:
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")

    srv = scripted_server(handler)
    with ft.Client() as client:
        r = client.get(srv.url("/"))
        assert r.status_code == 101 and r.content == b""
        assert not r.body.writable()
        with pytest.raises(OSError):
            r.body.write(b"x")
        client.get(srv.url("/"))
        assert srv.accepted == 2


def test_plain_body_is_not_writable(http_server):
    with ft.Client() as client:
        with client.stream("GET", http_server.url("/bytes/10")) as r:
            assert not r.body.writable()
            with pytest.raises(OSError):
                r.body.write(b"x")


# ---- a real WebSocket server (websockets) and a sans-IO client (wsproto) ----

websockets_sync = pytest.importorskip("websockets.sync.server")
wsproto_conn = pytest.importorskip("wsproto.connection")
wsproto_events = pytest.importorskip("wsproto.events")


@pytest.fixture
def ws_server():
    def echo(ws):
        for message in ws:
            ws.send(message)

    server = websockets_sync.serve(echo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="ws-server")
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        thread.join(10)
        assert not thread.is_alive()


def test_websocket_over_the_switched_body(ws_server):
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    with ft.Client(timeout=10) as client:
        r = client.get(f"http://127.0.0.1:{ws_server}/echo", headers=headers)
        assert r.status_code == 101, r.headers.items()
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert r.headers["Sec-WebSocket-Accept"] == accept
        ws = wsproto_conn.Connection(wsproto_conn.ConnectionType.CLIENT)
        body = r.body
        messages = ["hello", "x" * 100_000, "ünïcode"]
        for text in messages:
            body.write(ws.send(wsproto_events.TextMessage(data=text)))
        got, part = [], ""
        while len(got) < len(messages):
            data = body.read(65536)
            assert data, "server closed early"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsproto_events.TextMessage):
                    part += event.data
                    if event.message_finished:
                        got.append(part)
                        part = ""
        assert got == messages
        body.write(ws.send(wsproto_events.CloseConnection(code=1000)))
        closing = b""
        while True:
            data = body.read(65536)
            if not data:
                break
            closing += data
        ws.receive_data(closing or None)
        assert any(isinstance(e, wsproto_events.CloseConnection) for e in ws.events())
        body.close()
        assert client.transport.stats().open_conns == 0
