"""SOCKS proxies: socks4, socks4a, socks5 and socks5h as phases of the dial
on the engine, through the blocking, batch (submit/map) and asyncio APIs.

Against real proxies started here on 127.0.0.1 - Debian's microsocks
(SOCKS5 with RFC 1929 username/password) and dante (danted: SOCKS4 and
SOCKS5; it does not speak SOCKS4a) - some in a mount namespace of their own
whose /etc/hosts knows a name this process cannot resolve; and against a
scripted SOCKS server (tests/proxies.py) for the bytes the client sends and
for hostile proxies: garbage, refusals, short and oversized replies, a
proxy that never answers."""

from __future__ import annotations

import asyncio
import os
import ssl
import time

import pytest
from proxies import Daemon, SocksProxy, exact, start_daemon
from servers import LeakCheck, body_bytes, http_handler

import fasttransport as ft
from fasttransport import proxy as fproxy

UNRESOLVABLE = "target.invalid"      # .invalid never resolves (RFC 6761)


@pytest.fixture
def https_target(ca, ca_file, scripted_server):
    """(server, CA file): an https origin whose certificate the test CA
    signed for 127.0.0.1, localhost and target.invalid."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", UNRESOLVABLE).configure_cert(ctx)
    return scripted_server(http_handler, name="https", ssl_context=ctx), ca_file


@pytest.fixture
def daemons(tmp_path):
    """start(name, package, argv(port), hosts=None) -> Daemon; all stopped
    at teardown."""
    started: list[Daemon] = []

    def start(name, package, argv, hosts=None):
        d = start_daemon(str(tmp_path), name, package, argv, hosts)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def microsocks(daemons, user=None, password=None, hosts=None) -> Daemon:
    auth = ["-u", user, "-P", password] if user else []
    return daemons("microsocks", "microsocks",
                   lambda port: ["-i", "127.0.0.1", "-p", str(port)] + auth, hosts)


def danted(daemons, tmp_path) -> Daemon:
    """dante without authentication (its username method checks system
    accounts), SOCKS4 and SOCKS5 for loopback clients and targets."""
    root = os.geteuid() == 0

    def argv(port):
        conf = tmp_path / f"danted-{port}.conf"
        conf.write_text(
            "logoutput: stderr\n"
            f"internal: 127.0.0.1 port = {port}\n"
            "external: 127.0.0.1\n"
            "clientmethod: none\nsocksmethod: none\n"
            + ("user.privileged: root\nuser.unprivileged: nobody\n" if root else "")
            + "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}\n"
            "socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  protocol: tcp\n"
            "  command: connect\n}\n")
        return ["-f", str(conf), "-N", "1", "-p", str(tmp_path / f"danted-{port}.pid")]

    return daemons("danted", "dante-server", argv)


def socks_server(scripted_server, **kw) -> tuple:
    proxy = SocksProxy(**kw)
    return proxy, scripted_server(proxy, name="socks")


def idle_after(t: ft.Transport) -> None:
    """Nothing dialing or in use is left (a failed dial closed its socket)."""
    s = t.stats()
    assert s.dialing_conns == 0 and s.active_conns == 0 and s.waiting_requests == 0, s


# --------------------------------------------------------------------------
# real proxies


def test_socks5_microsocks_with_password(daemons, http_server, https_target):
    srv, ca_file = https_target
    d = microsocks(daemons, "alice", "s3cret")
    t = ft.Transport(proxy=f"socks5://alice:s3cret@127.0.0.1:{d.port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        for _ in range(3):
            assert c.get(http_server.url("/bytes/100000")).content == body_bytes(100000)
        r = c.post(http_server.url("/echo"), json={"via": "socks5"})
        doc = r.json()
        # a plain target gets origin-form requests, no proxy header
        assert doc["target"] == "/echo" and doc["body"] == '{"via":"socks5"}'
        assert "proxy-authorization" not in {k.lower() for k, _ in doc["headers"]}
        for _ in range(2):
            assert c.get(srv.url("/bytes/70000")).content == body_bytes(70000)
        # the engine-run APIs take the same pooled connections
        assert c.submit("GET", srv.url("/bytes/9000")).result(timeout=10).content == (
            body_bytes(9000))

        async def main():
            async with ft.AsyncClient(transport=t) as ac:
                r = await ac.get(srv.url("/bytes/8000"))
                assert r.content == body_bytes(8000)
                r = await ac.post(http_server.url("/echo"), content=b"a" * 100000)
                assert r.json()["body"] == "a" * 100000

        asyncio.run(main())
        s = t.stats()
        # one dial per target, reused after
        assert s.dials == 2 and s.reused_conns == 7 and s.tls_handshakes == 1
        keys = set(t.host_stats())
    assert keys == {f"socks5://alice@127.0.0.1:{d.port}|proxy|http://127.0.0.1:{http_server.port}",
                    f"socks5://alice@127.0.0.1:{d.port}|proxy|https://127.0.0.1:{srv.port}"}
    assert all("s3cret" not in k for k in keys)


def test_socks5_microsocks_wrong_password(daemons, http_server, no_leaks):
    d = microsocks(daemons, "alice", "s3cret")
    url = http_server.url("/x")
    with ft.Transport(proxy=f"socks5://alice:nope@127.0.0.1:{d.port}") as t:
        with ft.Client(transport=t) as c:
            for _ in range(2):
                with pytest.raises(ft.ConnectError) as ei:
                    c.get(url)
                assert str(ei.value) == (
                    f'Get "{url}": proxyconnect tcp: socks connect tcp 127.0.0.1:{d.port}->'
                    f"127.0.0.1:{http_server.port}: username/password authentication failed")
            idle_after(t)
            assert t.stats().open_conns == 0 and t.stats().dial_errors == 2
    assert http_server.accepted == 0


def test_socks5_without_credentials_to_a_proxy_that_wants_them(daemons, http_server):
    d = microsocks(daemons, "alice", "s3cret")
    with ft.Client(transport=ft.Transport(proxy=f"socks5://127.0.0.1:{d.port}")) as c:
        with pytest.raises(ft.ConnectError, match="no acceptable authentication methods$"):
            c.get(http_server.url("/"))


@pytest.mark.parametrize("scheme", ["socks5h", "socks5"])
def test_name_only_the_proxy_knows(daemons, http_server, https_target, scheme):
    """socks5h sends the name: a target this process cannot resolve works
    through a proxy that can; socks5 resolves it here first, and fails."""
    srv, ca_file = https_target
    d = microsocks(daemons, hosts={UNRESOLVABLE: "127.0.0.1"})
    t = ft.Transport(proxy=f"{scheme}://127.0.0.1:{d.port}", verify=ca_file)
    plain = f"http://{UNRESOLVABLE}:{http_server.port}/bytes/5000"
    secure = f"https://{UNRESOLVABLE}:{srv.port}/bytes/5000"
    with ft.Client(transport=t) as c:
        if scheme == "socks5h":
            assert c.get(plain).content == body_bytes(5000)
            # TLS with the target's name (SNI and certificate check)
            assert c.get(secure).content == body_bytes(5000)
            host = http_server.requests[-1][1].header("Host")
            assert host == f"{UNRESOLVABLE}:{http_server.port}"
        else:
            with pytest.raises(ft.ConnectError) as ei:
                c.get(plain)
            assert str(ei.value).startswith(
                f'Get "{plain}": proxyconnect tcp: socks connect tcp 127.0.0.1:{d.port}->'
                f"{UNRESOLVABLE}:{http_server.port}: lookup {UNRESOLVABLE}")
            assert http_server.accepted == 0
        idle_after(t)
    t.close()


@pytest.mark.parametrize("scheme", ["socks4", "socks5", "socks5h"])
def test_dante(daemons, tmp_path, http_server, https_target, scheme):
    srv, ca_file = https_target
    d = danted(daemons, tmp_path)
    t = ft.Transport(proxy=f"{scheme}://tester@127.0.0.1:{d.port}", verify=ca_file)
    with ft.Client(transport=t) as c:
        for host in ("127.0.0.1", "localhost"):
            for _ in range(2):
                r = c.get(f"http://{host}:{http_server.port}/bytes/200000")
                assert r.content == body_bytes(200000)
            r = c.post(f"https://{host}:{srv.port}/echo", content=b"x" * 300000)
            assert r.json()["body"] == "x" * 300000
        s = t.stats()
        assert s.dials == 4 and s.dial_errors == 0 and s.reused_conns == 2
    t.close()


# --------------------------------------------------------------------------
# the bytes on the wire (scripted proxy)


def test_socks5h_sends_the_name(scripted_server, http_server):
    proxy, ps = socks_server(scripted_server, hosts={UNRESOLVABLE: "127.0.0.1"})
    with ft.Client(proxy=f"socks5h://127.0.0.1:{ps.port}") as c:
        assert c.get(f"http://{UNRESOLVABLE}:{http_server.port}/").text == "hello"
        assert c.get(f"http://127.0.0.1:{http_server.port}/").text == "hello"
    hs, ip = proxy.seen
    assert hs.raw == b"" and hs.methods == b"\x00" and hs.auth is None
    assert (hs.atyp, hs.address, hs.port) == (3, UNRESOLVABLE.encode(), http_server.port)
    assert (ip.atyp, ip.address) == (1, "127.0.0.1")


def test_socks5_resolves_here(scripted_server, http_server):
    proxy, ps = socks_server(scripted_server)
    with ft.Client(proxy=f"socks5://127.0.0.1:{ps.port}") as c:
        assert c.get(f"http://localhost:{http_server.port}/").text == "hello"
    (hs,) = proxy.seen
    # the address looked up here, IPv4 first (even where localhost lists ::1 too)
    assert (hs.atyp, hs.address) == (1, "127.0.0.1")


def test_socks5_username_password_subnegotiation(scripted_server, http_server):
    proxy, ps = socks_server(scripted_server, users={"us:er": "p@ss wörd"})
    url = f"socks5h://us%3Aer:p%40ss%20w%C3%B6rd@127.0.0.1:{ps.port}"
    with ft.Client(proxy=url) as c:
        assert c.get(http_server.url("/")).text == "hello"
    (hs,) = proxy.seen
    # Go's and curl's offer: no authentication, username/password
    assert hs.methods == b"\x00\x02"
    pw = "p@ss wörd".encode()
    assert hs.auth == b"\x01\x05us:er" + bytes([len(pw)]) + pw


@pytest.mark.parametrize("scheme", ["socks4", "socks4a"])
def test_socks4_request(scripted_server, http_server, scheme):
    proxy, ps = socks_server(scripted_server,
                             hosts={UNRESOLVABLE: "127.0.0.1", "localhost": "127.0.0.1"})
    with ft.Client(proxy=f"{scheme}://bob:ignored@127.0.0.1:{ps.port}") as c:
        assert c.get(f"http://localhost:{http_server.port}/").text == "hello"
        if scheme == "socks4a":
            # the name goes to the proxy, never resolved here
            assert c.get(f"http://{UNRESOLVABLE}:{http_server.port}/").text == "hello"
    first = proxy.seen[0]
    assert first.version == 4 and first.userid == b"bob" and first.port == http_server.port
    if scheme == "socks4":
        assert first.address == "127.0.0.1"
    else:
        assert [h.address for h in proxy.seen] == [b"localhost", UNRESOLVABLE.encode()]


def test_socks4a_through_the_engine_and_asyncio(scripted_server, http_server):
    proxy, ps = socks_server(scripted_server, hosts={UNRESOLVABLE: "127.0.0.1"})
    url = f"http://{UNRESOLVABLE}:{http_server.port}/bytes/30000"
    with ft.Client(proxy=f"socks4a://127.0.0.1:{ps.port}") as c:
        results = list(c.map([url] * 12, concurrency=4))
        assert all(r.content == body_bytes(30000) for _, r in results)
        assert c.submit("GET", url).result(timeout=10).content == body_bytes(30000)

    async def main():
        async with ft.AsyncClient(proxy=f"socks4a://127.0.0.1:{ps.port}") as ac:
            rs = await asyncio.gather(*(ac.get(url) for _ in range(6)))
            assert all(r.content == body_bytes(30000) for r in rs)
            async with ac.stream("GET", url) as r:
                got = b"".join([b async for b in r.aiter_bytes()])
            assert got == body_bytes(30000)

    asyncio.run(main())
    assert {h.address for h in proxy.seen} == {UNRESOLVABLE.encode()}


def test_environment_all_proxy(monkeypatch, scripted_server, http_server):
    proxy, ps = socks_server(scripted_server, hosts={UNRESOLVABLE: "127.0.0.1"})
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", f"socks5h://127.0.0.1:{ps.port}")
    fproxy.reset_environment_cache()
    try:
        with ft.Client() as c:
            assert c.get(f"http://{UNRESOLVABLE}:{http_server.port}/").text == "hello"
    finally:
        fproxy.reset_environment_cache()
    assert proxy.seen[0].address == UNRESOLVABLE.encode()


# --------------------------------------------------------------------------
# hostile proxies: each ends in a ConnectError / ConnectTimeout naming the
# request, the way through the proxy and the cause; nothing is left over


def _greet(conn, proxy):
    n = exact(conn, 2)[1]
    exact(conn, n)


def _connect_request(conn):
    _, _, _, atyp = exact(conn, 4)
    exact(conn, {1: 4, 4: 16}.get(atyp) or exact(conn, 1)[0])
    exact(conn, 2)


def _replying(method_reply, connect_reply=None, close=True):
    def script(conn, proxy):
        _greet(conn, proxy)
        conn.send(method_reply)
        if connect_reply is not None:
            _connect_request(conn)
            conn.send(connect_reply)
        if not close:
            _silent(conn)
    return script


def _garbage(conn, proxy):
    exact(conn, 3)
    conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def _silent(conn):
    """Say nothing more until the client goes."""
    while not conn.peer_closed() and conn.sleep(0.02):
        pass


def _hang(conn, proxy):
    _silent(conn)


def _auth_refused(conn, proxy):
    _greet(conn, proxy)
    conn.send(b"\x05\x02")
    exact(conn, 2 + 4 + 1 + 2)          # \x01 \x04 "user" \x02 "pw"
    conn.send(b"\x01\x01")


HOSTILE = [
    ("garbage", _garbage, "unexpected protocol version 72", False),
    ("no method", _replying(b"\x05\xff"), "no acceptable authentication methods", False),
    ("gssapi", _replying(b"\x05\x01"), "unsupported authentication method 1", False),
    ("auth refused", _auth_refused, "username/password authentication failed", False),
    ("refused", _replying(b"\x05\x00", b"\x05\x05\x00\x01" + bytes(6)),
     "unknown error connection refused", False),
    ("odd code", _replying(b"\x05\x00", b"\x05\x33\x00\x01" + bytes(6)),
     "unknown error unknown code: 51", False),
    ("reserved", _replying(b"\x05\x00", b"\x05\x00\x07\x01" + bytes(6)),
     "non-zero reserved field", False),
    ("bad address type", _replying(b"\x05\x00", b"\x05\x00\x00\x09"),
     "unknown address type 9", False),
    ("short reply", _replying(b"\x05\x00", b"\x05\x00\x00"), "unexpected EOF", False),
    ("closed at once", lambda conn, proxy: None, "EOF", False),
    ("closed after hello", _replying(b"\x05\x00", b""), "EOF", False),
    ("huge name then EOF", _replying(b"\x05\x00", b"\x05\x00\x00\x03\xff" + b"a" * 40),
     "unexpected EOF", False),
    ("huge name then silence",
     _replying(b"\x05\x00", b"\x05\x00\x00\x03\xff" + b"a" * 40, close=False),
     "i/o timeout", True),
    ("silence", _hang, "i/o timeout", True),
]


# every case through the blocking API, a representative few through the
# engine-run ones (submit, asyncio)
ENGINE_CASES = ("garbage", "refused", "short reply", "huge name then silence", "silence")
CASES = [("get",) + h for h in HOSTILE] + [
    (api,) + h for h in HOSTILE if h[0] in ENGINE_CASES for api in ("submit", "async")]


@pytest.mark.parametrize("api,name,script,cause,timeout", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_hostile_socks5_proxy(scripted_server, http_server, api, name, script, cause, timeout):
    _, ps = socks_server(scripted_server, script=script)
    leaks = LeakCheck()      # threads and fds, the servers' included
    url = f"http://{UNRESOLVABLE}:{http_server.port}/x"
    t = ft.Transport(proxy=f"socks5h://user:pw@127.0.0.1:{ps.port}", dial_timeout=0.5)
    c = ft.Client(transport=t)
    t0 = time.monotonic()
    try:
        if api == "get":
            with pytest.raises(ft.TransportError) as ei:
                c.get(url)
        elif api == "submit":
            with pytest.raises(ft.TransportError) as ei:
                c.submit("GET", url).result(timeout=10)
        else:
            async def main():
                async with ft.AsyncClient(transport=t) as ac:
                    await ac.get(url)
            with pytest.raises(ft.TransportError) as ei:
                asyncio.run(main())
        assert type(ei.value) is (ft.ConnectTimeout if timeout else ft.ConnectError)
        assert str(ei.value) == (
            f'Get "{url}": proxyconnect tcp: socks connect tcp 127.0.0.1:{ps.port}->'
            f"{UNRESOLVABLE}:{http_server.port}: {cause}")
        assert time.monotonic() - t0 < 5
        idle_after(t)
        assert t.stats().open_conns == 0 and t.stats().dial_errors == 1
    finally:
        c.close()
        t.close()
    leaks.check(timeout=2.0)
    assert http_server.accepted == 0


def test_request_deadline_while_the_proxy_says_nothing(scripted_server, http_server):
    """The request's own deadline ends the wait for a hanging SOCKS
    handshake (naming the proxy); the dial itself ends at dial_timeout."""
    _, ps = socks_server(scripted_server, script=_hang)
    url = http_server.url("/x")
    with ft.Transport(proxy=f"socks5://u:secret@127.0.0.1:{ps.port}", dial_timeout=1.0) as t:
        with ft.Client(transport=t, timeout=0.3) as c:
            t0 = time.monotonic()
            with pytest.raises(ft.ConnectTimeout) as ei:
                c.get(url)
            assert time.monotonic() - t0 < 0.9
        assert str(ei.value) == (
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            f"headers) (connecting through proxy socks5://u:***@127.0.0.1:{ps.port})")
        # the dial, on its own now, ends at its deadline
        deadline = time.monotonic() + 5
        while t.stats().dialing_conns and time.monotonic() < deadline:
            time.sleep(0.02)
        s = t.stats()
        assert s.dialing_conns == 0 and s.open_conns == 0 and s.dial_errors == 1


def test_cancel_during_the_socks_handshake(scripted_server, http_server):
    _, ps = socks_server(scripted_server, script=_hang)
    with ft.Transport(proxy=f"socks5h://127.0.0.1:{ps.port}") as t:
        with ft.Client(transport=t) as c:
            token = ft.CancelToken()
            fut = c.submit("GET", http_server.url("/"), cancel=token)
            time.sleep(0.2)
            token.cancel()
            with pytest.raises(ft.Cancelled):
                fut.result(timeout=5)
            # nobody waits for the dial any more: close_idle_connections ends it
            c.transport.close_idle_connections()
            deadline = time.monotonic() + 5
            while t.stats().dialing_conns and time.monotonic() < deadline:
                time.sleep(0.02)
            assert t.stats().dialing_conns == 0 and t.stats().open_conns == 0


@pytest.mark.parametrize("proxy,cause", [
    ("socks5://{}:pw@127.0.0.1:1080".format("u" * 256), "invalid username/password"),
    ("socks5h://user:{}@127.0.0.1:1080".format("p" * 256), "invalid username/password"),
    ("socks4://{}@127.0.0.1:1080".format("u" * 256), "SOCKS4 user id longer than 255 bytes"),
    ("socks5://us%00er:pw@127.0.0.1:1080", "a NUL byte in the SOCKS user name"),
])
def test_credentials_the_protocol_cannot_carry(proxy, cause):
    with ft.Client(proxy=proxy) as c:
        with pytest.raises(ft.TransportError, match=cause) as ei:
            c.get("http://a.example/")
    assert str(ei.value).startswith('Get "http://a.example/": proxy socks')
    assert "pw" not in str(ei.value) and "ppp" not in str(ei.value)


def test_socks4_cannot_reach_an_ipv6_target(scripted_server):
    proxy, ps = socks_server(scripted_server)
    with ft.Client(proxy=f"socks4://127.0.0.1:{ps.port}") as c:
        with pytest.raises(ft.ConnectError) as ei:
            c.get("http://[::1]:80/")
    assert str(ei.value) == (f'Get "http://[::1]:80/": proxyconnect tcp: socks connect tcp '
                             f"127.0.0.1:{ps.port}->[::1]:80: SOCKS4 cannot connect to an IPv6 "
                             "address")


def test_default_port_and_schemes():
    for scheme in ("socks4", "socks4a", "socks5", "socks5h"):
        p = fproxy.parse_proxy_url(f"{scheme}://proxy.example")
        assert (p.scheme, p.port) == (scheme, 1080)
