"""https through an http proxy: the CONNECT tunnel made by the dial state
machine on the engine, against a scripted relay
proxy and a real tinyproxy."""

from __future__ import annotations

import select
import socket
import ssl

import pytest
from servers import body_bytes, http_handler
from test_proxy import tinyproxy  # noqa: F401 - the fixture

import fasttransport as ft


@pytest.fixture
def https_target(ca, ca_file, scripted_server):
    """(server, CA file): an https server (stopped, handler errors checked, at
    teardown) and the CA that signed its certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "secure.test").configure_cert(ctx)
    return scripted_server(http_handler, name="https", ssl_context=ctx), ca_file


def relay_proxy(scripted_server, answer=None, seen=None):
    """A CONNECT proxy: records each CONNECT, answers `answer` (default 200)
    and relays bytes both ways until either side closes."""

    def handler(conn):
        req = conn.read_request(body=False)
        if req is None:
            return
        if seen is not None:
            seen.append(req)
        if answer is not None:
            conn.send(answer)
            return
        host, _, port = req.target.rpartition(":")
        up = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        try:
            conn.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            down = conn.sock
            down.setblocking(True)
            for _ in range(100000):
                r, _, _ = select.select([down, up], [], [], 0.2)
                if conn.stopping:
                    return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is down else down).sendall(data)
        finally:
            up.close()

    return scripted_server(handler)


def test_https_through_connect_tunnel(scripted_server, https_target):
    srv, ca_file = https_target
    seen = []
    proxy = relay_proxy(scripted_server, seen=seen)
    t = ft.Transport(proxy=f"http://user:pw@127.0.0.1:{proxy.port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        for _ in range(3):
            assert c.get(srv.url("/bytes/50000")).content == body_bytes(50000)
        s = t.stats()
        assert s.dials == 1 and s.tls_handshakes == 1 and s.reused_conns == 2
    assert len(seen) == 1
    req = seen[0]
    assert req.method == "CONNECT" and req.target == f"127.0.0.1:{srv.port}"
    assert req.header("Host") == f"127.0.0.1:{srv.port}"
    assert req.header("Proxy-Authorization") == "Basic dXNlcjpwdw=="
    # the target saw an origin-form request, no proxy credentials
    _, inner = srv.requests[-1]
    assert inner.target == "/bytes/50000" and inner.header("Proxy-Authorization") is None


def test_tunnel_verifies_the_target_name(scripted_server, https_target):
    srv, ca_file = https_target
    proxy = relay_proxy(scripted_server)
    with ft.Client(transport=ft.Transport(proxy=f"http://127.0.0.1:{proxy.port}")) as c:
        with pytest.raises(ft.TLSError, match="certificate verify failed"):
            c.get(srv.url("/"))          # the default store does not know the test CA


@pytest.mark.parametrize("answer,text", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "Forbidden"),
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "Proxy Authentication Required"),
    (b"HTTP/1.1 502 \r\n\r\n", "unknown status code"),
])
def test_connect_refused_by_the_proxy(scripted_server, answer, text):
    proxy = relay_proxy(scripted_server, answer=answer)
    with ft.Transport(proxy=f"http://127.0.0.1:{proxy.port}") as t:
        with pytest.raises(ft.ConnectError) as ei:
            t.round_trip(ft.Request("GET", "https://secure.test/x"))
        assert str(ei.value) == f'Get "https://secure.test/x": {text}'
        s = t.stats()
        assert s.open_conns == 0 and s.dialing_conns == 0


def test_garbage_answer_to_connect(scripted_server):
    proxy = relay_proxy(scripted_server, answer=b"SSH-2.0-x\r\n\r\n")
    with ft.Transport(proxy=f"http://127.0.0.1:{proxy.port}") as t:
        with pytest.raises(ft.ConnectError, match='proxyconnect: malformed HTTP response'):
            t.round_trip(ft.Request("GET", "https://secure.test/x"))


def test_https_through_tinyproxy(tinyproxy, https_target):  # noqa: F811 - fixture
    proxy_url, log = tinyproxy
    srv, ca_file = https_target
    with ft.Client(transport=ft.Transport(proxy=proxy_url, verify=ca_file)) as c:
        assert c.get(srv.url("/bytes/100000")).content == body_bytes(100000)
        r = c.post(srv.url("/echo"), json={"via": "tunnel"})
        assert r.json()["body"] == '{"via":"tunnel"}'
    assert "CONNECT" in log.read_text()
