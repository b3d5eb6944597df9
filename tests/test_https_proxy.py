"""https proxies (TLS to the proxy): absolute-form requests for http
targets and, for https targets, CONNECT inside the proxy's TLS session and
the target's TLS inside that (TLS in TLS), through the blocking, batch and
asyncio APIs.

A real one - Debian's stunnel4 terminating TLS in front of tinyproxy - and
a scripted TLS proxy that shows what arrives (SNI, CONNECT, headers) and
that can gather the target's bytes into single writes, so that decrypted
bytes of the next inner record wait in the outer session while the socket
is quiet."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest
from proxies import relay, start_daemon
from servers import LeakCheck, body_bytes, http_handler, response

import fasttransport as ft


@pytest.fixture(scope="module")
def proxy_cert(ca, tmp_path_factory):
    """The proxy's certificate and key (PEM, one file), signed by the test
    CA for 127.0.0.1, localhost and proxy.test."""
    cert = ca.issue_cert("127.0.0.1", "localhost", "proxy.test")
    path = tmp_path_factory.mktemp("proxy") / "proxy.pem"
    with open(path, "wb") as f:
        f.write(cert.private_key_pem.bytes())
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    return cert, str(path)


@pytest.fixture
def https_target(ca, ca_file, scripted_server):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return scripted_server(http_handler, name="https", ssl_context=ctx)


@pytest.fixture
def stunnel_tinyproxy(tmp_path, proxy_cert):
    """tinyproxy behind stunnel (TLS on the outside): yields the https
    proxy's port and tinyproxy's log; both stopped at teardown."""
    _, pem = proxy_cert
    started = []

    def tinyproxy_argv(port):
        conf = tmp_path / "tinyproxy.conf"
        conf.write_text(
            f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 32\nAllow 127.0.0.1\n"
            f"LogFile \"{tmp_path / 'tinyproxy.log'}\"\nLogLevel Info\n"
            f"PidFile \"{tmp_path / 'tinyproxy.pid'}\"\nViaProxyName \"tinyproxy-test\"\n")
        return ["-d", "-c", str(conf)]

    try:
        tiny = start_daemon(str(tmp_path), "tinyproxy", "tinyproxy", tinyproxy_argv)
        started.append(tiny)

        def stunnel_argv(port):
            conf = tmp_path / "stunnel.conf"
            conf.write_text(
                f"foreground = yes\npid =\nsyslog = no\n[https-proxy]\n"
                f"accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{tiny.port}\ncert = {pem}\n")
            return [str(conf)]

        st = start_daemon(str(tmp_path), "stunnel4", "stunnel4", stunnel_argv)
        started.append(st)
        yield st.port, tmp_path / "tinyproxy.log"
    finally:
        for d in started:
            d.stop()


def tls_proxy(scripted_server, proxy_cert, seen, batch=False, answer=None):
    """A scripted https proxy: records (SNI, request) in seen; CONNECT is
    relayed to the target (``batch``: the target's bytes gathered into one
    write), any other request answered with ``answer``."""
    cert, _ = proxy_cert
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    sni = []
    ctx.sni_callback = lambda sock, name, c: sni.append(name) and None

    def handler(conn):
        while True:
            req = conn.read_request(body=False)
            if req is None:
                return
            seen.append((sni[-1] if sni else None, req))
            if req.method != "CONNECT":
                conn.read_body(req)
                conn.send(answer or response(200, b"from the proxy"))
                continue
            host, _, port = req.target.rpartition(":")
            up = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            try:
                conn.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                relay(conn, conn.sock, up, batch=batch)
            finally:
                up.close()
            return

    return scripted_server(handler, name="tls-proxy", ssl_context=ctx)


# --------------------------------------------------------------------------
# a real https proxy: stunnel + tinyproxy


def test_stunnel_tinyproxy(stunnel_tinyproxy, http_server, https_target, ca_file):
    port, log = stunnel_tinyproxy
    t = ft.Transport(proxy=f"https://127.0.0.1:{port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        # http target: absolute form over TLS with the proxy
        r = c.get(http_server.url("/echo"))
        headers = {k.lower(): v for k, v in r.json()["headers"]}
        assert "tinyproxy-test" in headers["via"]
        assert r.json()["target"] == "/echo"
        # https target: CONNECT, then TLS in TLS; the tunnel is kept
        for _ in range(3):
            assert c.get(https_target.url("/bytes/300000")).content == body_bytes(300000)
        big = bytes(range(256)) * 8192            # 2 MiB up, echoed down
        r = c.post(https_target.url("/echo"), content=big)
        assert r.json()["body"].encode("latin-1") == big
        s = t.stats()
        assert s.dial_errors == 0 and s.reused_conns >= 3
        keys = t.host_stats()
    assert f"https://127.0.0.1:{port}|proxy|https://127.0.0.1:{https_target.port}" in keys
    assert "CONNECT" in log.read_text()
    t.close()


def test_stunnel_tinyproxy_engine_and_asyncio(stunnel_tinyproxy, https_target, ca_file):
    port, _ = stunnel_tinyproxy
    url = https_target.url("/bytes/200000")
    t = ft.Transport(proxy=f"https://127.0.0.1:{port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        results = list(c.map([url] * 16, concurrency=4))
        assert [r.content == body_bytes(200000) for _, r in results] == [True] * 16
        s = t.stats()
        assert s.reused_conns >= 8 and s.dial_errors == 0      # tunnels kept and reused

    async def main():
        async with ft.AsyncClient(transport=t) as ac:
            rs = await asyncio.gather(*(ac.get(url) for _ in range(4)))
            assert all(r.content == body_bytes(200000) for r in rs)
            async with ac.stream("POST", https_target.url("/echo"), content=b"z" * 500000) as r:
                body = b"".join([b async for b in r.aiter_bytes()])
            assert b'"body": "' + b"z" * 500000 + b'"' in body

    asyncio.run(main())
    t.close()


def test_proxy_certificate_is_verified(stunnel_tinyproxy, http_server, https_target):
    port, _ = stunnel_tinyproxy
    leaks = LeakCheck()
    with ft.Transport(proxy=f"https://127.0.0.1:{port}") as t:     # the default CA store
        with ft.Client(transport=t) as c:
            for url in (http_server.url("/"), https_target.url("/")):
                with pytest.raises(ft.TLSError) as ei:
                    c.get(url)
                assert str(ei.value) == (
                    f'Get "{url}": proxyconnect tcp: tls: failed to verify certificate for '
                    "127.0.0.1: certificate verify failed: unable to get local issuer "
                    "certificate")
            s = t.stats()
            assert s.open_conns == 0 and s.dialing_conns == 0 and s.dial_errors == 2
    leaks.check(timeout=2.0)
    assert http_server.accepted == 0 and https_target.accepted == 0


# --------------------------------------------------------------------------
# a scripted https proxy


def test_plain_target_absolute_form_over_tls(scripted_server, proxy_cert, ca_file):
    seen = []
    proxy = tls_proxy(scripted_server, proxy_cert, seen)
    t = ft.Transport(proxy=f"https://alice:pw@localhost:{proxy.port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        for path in ("/a", "/b?x=1"):
            assert c.get(f"http://target.invalid{path}").text == "from the proxy"
        assert c.post("http://other.invalid:8080/p", content=b"body").text == "from the proxy"
        assert t.stats().dials == 1 and t.stats().tls_handshakes == 1
    assert [(name, r.method, r.target) for name, r in seen] == [
        ("localhost", "GET", "http://target.invalid/a"),
        ("localhost", "GET", "http://target.invalid/b?x=1"),
        ("localhost", "POST", "http://other.invalid:8080/p")]
    assert {r.header("Proxy-Authorization") for _, r in seen} == {"Basic YWxpY2U6cHc="}
    assert seen[2][1].body == b"body"
    t.close()


def test_connect_inside_tls(scripted_server, proxy_cert, https_target, ca_file):
    seen = []
    proxy = tls_proxy(scripted_server, proxy_cert, seen)
    t = ft.Transport(proxy=f"https://alice:pw@localhost:{proxy.port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        for _ in range(3):
            assert c.get(https_target.url("/bytes/40000")).content == body_bytes(40000)
        s = t.stats()
        # TLS with the proxy, TLS with the target inside it: one dial
        assert s.dials == 1 and s.reused_conns == 2 and s.tls_handshakes == 2
    ((name, req),) = seen
    assert name == "localhost" and req.method == "CONNECT"
    assert req.target == f"127.0.0.1:{https_target.port}"
    assert req.header("Proxy-Authorization") == "Basic YWxpY2U6cHc="
    # the target saw an origin-form request and no proxy credentials
    _, inner = https_target.requests[-1]
    assert inner.target == "/bytes/40000" and inner.header("Proxy-Authorization") is None
    t.close()


PATHS = ["/bytes/100000", "/chunked/30000", "/bytes/10", "/status/204", "/chunked/1"]


@pytest.mark.parametrize("api", ["get", "stream", "submit", "map", "async"])
def test_inner_records_buffered_in_the_outer_session(scripted_server, proxy_cert, https_target,
                                                     ca_file, api):
    """The proxy sends the target's answer in one write: the next inner
    record is often decrypted in the outer session already while the socket
    has nothing more. Every API must read it from there (no hang)."""
    seen = []
    proxy = tls_proxy(scripted_server, proxy_cert, seen, batch=True)
    t = ft.Transport(proxy=f"https://127.0.0.1:{proxy.port}", verify=ca_file)
    urls = [https_target.url(p) for p in PATHS] * 2
    want = {"/bytes/100000": body_bytes(100000), "/chunked/30000": body_bytes(30000),
            "/bytes/10": body_bytes(10), "/status/204": b"", "/chunked/1": body_bytes(1)}
    got = []
    with ft.Client(transport=t, timeout=10) as c:
        if api == "get":
            got = [(u, c.get(u).content) for u in urls]
        elif api == "stream":
            for u in urls:
                with c.stream("GET", u) as r:
                    got.append((u, b"".join(r.iter_bytes(chunk_size=777))))
        elif api == "submit":
            for u in urls:
                got.append((u, c.submit("GET", u).result(timeout=10).content))
        elif api == "map":
            got = [(req.url, r.content) for req, r in c.map(urls, concurrency=1)]
        else:
            async def main():
                async with ft.AsyncClient(transport=t, timeout=10) as ac:
                    for u in urls:
                        async with ac.stream("GET", u) as r:
                            got.append((u, b"".join([b async for b in r.aiter_bytes()])))
            asyncio.run(main())
        assert t.stats().dials == 1
    for u, body in got:
        assert body == want[u.rsplit(str(https_target.port), 1)[1]], u
    assert len(got) == len(urls) and len(seen) == 1
    t.close()


def test_proxy_tls_handshake_timeout(scripted_server, http_server):
    def silent(conn):
        while not conn.peer_closed() and conn.sleep(0.02):
            pass

    quiet = scripted_server(silent, name="quiet")
    url = http_server.url("/")
    with ft.Transport(proxy=f"https://127.0.0.1:{quiet.port}", tls_handshake_timeout=0.3) as t:
        t0 = time.monotonic()
        with pytest.raises(ft.ConnectTimeout) as ei:
            ft.Client(transport=t).get(url)
        assert time.monotonic() - t0 < 3
        assert str(ei.value) == f'Get "{url}": proxyconnect tcp: net/http: TLS handshake timeout'
        assert t.stats().open_conns == 0


def test_connect_refused_inside_tls(scripted_server, proxy_cert, ca_file):
    seen = []
    proxy = tls_proxy(scripted_server, proxy_cert, seen)

    def refuse(conn):
        conn.read_request(body=False)
        conn.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    proxy.handler = refuse
    with ft.Transport(proxy=f"https://127.0.0.1:{proxy.port}", verify=ca_file) as t:
        with pytest.raises(ft.ConnectError) as ei:
            t.round_trip(ft.Request("GET", "https://secure.invalid/x"))
        assert str(ei.value) == 'Get "https://secure.invalid/x": Forbidden'
        assert t.stats().open_conns == 0
