"""HTTPS in the native loops: verification, names, client certificates,
resumption, timeouts, bodies, concurrency and the same pool rules as plain
HTTP. Certificates are made per test run with trustme."""

from __future__ import annotations

import datetime
import ssl
import threading
import time

import pytest
from servers import LeakCheck, body_bytes, free_port, http_handler, wait_until

import fasttransport as ft


def server_context(ca, *identities, **issue_kw):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert = ca.issue_cert(*(identities or ("127.0.0.1", "localhost")), **issue_kw)
    cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def https_server(ca, scripted_server):
    """Factory: start(handler=http_handler, ctx=None, **issue_kw) -> a started
    TLS server (stopped, and its handler errors checked, at teardown)."""

    def start(handler=http_handler, ctx=None, **issue_kw):
        return scripted_server(handler, name="https",
                               ssl_context=ctx or server_context(ca, **issue_kw))

    return start


def test_verified_get_and_reuse(https_server, ca_file):
    srv = https_server()
    with ft.Transport(verify=ca_file) as t:
        c = ft.Client(transport=t)
        for _ in range(5):
            assert c.get(srv.url("/bytes/1000")).content == body_bytes(1000)
        assert srv.accepted == 1
        s = t.stats()
        assert s.tls_handshakes == 1 and s.reused_conns == 4


def test_large_and_chunked_bodies(https_server, ca_file):
    srv = https_server()
    with ft.Client(transport=ft.Transport(verify=ca_file)) as c:
        n = 4 << 20
        assert c.get(srv.url(f"/bytes/{n}")).content == body_bytes(n)
        r = c.get(srv.url("/chunked/300000?chunk=7000&trailer=1"), stream=True)
        assert r.read() == body_bytes(300000)
        assert r.trailers["X-Trailer"] == "done"
        assert c.transport.stats().idle_conns == 1


def test_default_store_rejects_unknown_ca(https_server):
    srv = https_server()
    with ft.Transport() as t:
        with pytest.raises(ft.TLSError) as ei:
            t.round_trip(ft.Request("GET", srv.url("/")))
        msg = str(ei.value)
        assert msg.startswith(f'Get "{srv.url("/")}": ')
        assert "127.0.0.1" in msg and "certificate verify failed" in msg
        assert t.stats().open_conns == 0


def test_verify_false_accepts_anything(https_server):
    srv = https_server()
    with ft.Transport(verify=False) as t:
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"hello"


def test_ip_address_mismatch(https_server, ca_file, ca):
    srv = https_server(ctx=server_context(ca, "example.test"))
    with ft.Transport(verify=ca_file) as t:
        with pytest.raises(ft.TLSError, match="certificate verify failed: IP address mismatch"):
            t.round_trip(ft.Request("GET", srv.url("/")))


def test_hostname_mismatch(https_server, ca_file, ca):
    srv = https_server(ctx=server_context(ca, "other.test"))
    with ft.Transport(verify=ca_file) as t:
        with pytest.raises(ft.TLSError, match="certificate verify failed: hostname mismatch"):
            t.round_trip(ft.Request("GET", f"https://localhost:{srv.port}/"))


def test_expired_certificate(https_server, ca_file, ca):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    srv = https_server(ctx=server_context(
        ca, "127.0.0.1", not_before=past - datetime.timedelta(days=30), not_after=past))
    with ft.Transport(verify=ca_file) as t:
        with pytest.raises(ft.TLSError, match="certificate has expired"):
            t.round_trip(ft.Request("GET", srv.url("/")))


def test_client_certificate_required(https_server, ca, ca_file, tmp_path):
    ctx = server_context(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(ctx)
    srv = https_server(ctx=ctx)
    client = ca.issue_cert("client@example.test")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_path))
    client.private_key_pem.write_to_path(str(key_path))
    with ft.Transport(verify=ca_file, cert=(str(cert_path), str(key_path))) as t:
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"hello"
    both = tmp_path / "both.pem"
    both.write_bytes(client.private_key_pem.bytes() + client.cert_chain_pems[0].bytes())
    with ft.Transport(verify=ca_file, cert=str(both)) as t:
        assert t.round_trip(ft.Request("GET", srv.url("/"))).read() == b"hello"
    with ft.Transport(verify=ca_file) as t:
        # TLS 1.3: the server's refusal arrives after the client's handshake
        with pytest.raises((ft.TLSError, ft.RemoteProtocolError)) as ei:
            t.round_trip(ft.Request("GET", srv.url("/"))).read()
        assert "tls" in str(ei.value).lower() or "EOF" in str(ei.value)


def test_session_resumption(https_server, ca_file):
    srv = https_server()
    with ft.Transport(verify=ca_file) as t:
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        t.close_idle_connections()
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        t.close_idle_connections()
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        s = t.stats()
        assert srv.accepted == 3
        assert s.tls_handshakes == 1 and s.tls_resumed == 2


def test_silent_server_times_out_handshake(scripted_server):
    def silent(conn):
        conn.sleep(5)

    srv = scripted_server(silent)
    url = f"https://127.0.0.1:{srv.port}/"
    with ft.Transport(tls_handshake_timeout=0.3, verify=False) as t:
        t0 = time.monotonic()
        with pytest.raises(ft.ConnectTimeout, match="net/http: TLS handshake timeout"):
            t.round_trip(ft.Request("GET", url))
        assert time.monotonic() - t0 < 2
        assert t.stats().open_conns == 0


def test_plain_http_server_on_https_url(scripted_server):
    def plain(conn):
        conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.sleep(2)

    srv = scripted_server(plain)
    with ft.Transport(verify=False) as t:
        with pytest.raises(ft.TLSError, match="http: server gave HTTP response to HTTPS client"):
            t.round_trip(ft.Request("GET", f"https://127.0.0.1:{srv.port}/"))


def test_early_close_drains_and_pools(https_server, ca_file):
    srv = https_server()
    with ft.Transport(verify=ca_file) as t:
        r = t.round_trip(ft.Request("GET", srv.url("/bytes/100000")))
        r.read(10)
        r.close()
        assert wait_until(lambda: t.stats().idle_conns == 1)
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        assert srv.accepted == 1


def test_idle_tls_connection_survives_session_tickets(https_server, ca_file):
    # TLS 1.3 servers send tickets after the handshake; an idle connection
    # that receives them is still good.
    srv = https_server()
    with ft.Transport(verify=ca_file) as t:
        t.round_trip(ft.Request("HEAD", srv.url("/"))).read()
        time.sleep(0.2)
        assert t.stats().idle_conns == 1
        t.round_trip(ft.Request("GET", srv.url("/"))).read()
        assert srv.accepted == 1


def test_16_threads_200_requests(https_server, ca_file):
    srv = https_server()
    leaks = LeakCheck()
    errors = []
    t = ft.Transport(verify=ca_file)
    c = ft.Client(transport=t)

    def worker(k):
        for i in range(200):
            n = (k * 200 + i) % 5000
            if c.get(srv.url(f"/bytes/{n}")).content != body_bytes(n):
                errors.append((k, i))

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    assert not errors
    # Go's late binding: every request that found no idle connection started
    # a dial; the ones that lost the race still finish and are pooled.
    assert wait_until(lambda: t.stats().dialing_conns == 0, timeout=30, interval=0.01)
    s = t.stats()
    assert s.requests == 3200 and s.active_conns == 0 and s.dialing_conns == 0
    assert s.tls_handshakes + s.tls_resumed == s.dials - s.dial_errors
    assert s.tls_resumed > 0
    t.close()
    srv.stop()
    leaks.check(timeout=5)


def test_refused_https_port():
    port = free_port()
    with ft.Transport() as t:
        with pytest.raises(ft.ConnectError, match="connection refused"):
            t.round_trip(ft.Request("GET", f"https://127.0.0.1:{port}/"))
