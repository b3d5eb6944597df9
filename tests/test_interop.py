"""fasttransport against real HTTP/1.1 servers (tests/realservers.py).

Each test runs once per server: nginx (plain, ``keepalive_requests 3`` and
TLS listeners), Apache httpd (three responses per connection), uvicorn (h11
and httptools), gunicorn (sync workers: ``Connection: close`` on every
response), waitress (closes a connection after any response without
Content-Length), aiohttp.web, tornado and the standard library's http.server
(HTTP/1.0). Each server starts once for the module and always stops; a few
tests use nginx alone (idle close, early 413, TLS session resumption).

What the servers do to connections is written down per server (``Target``)
and every test that makes several requests checks ``Transport.stats()``
against it: one dial for a keep-alive server, a new dial exactly after each
response the server closed, no errors.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

import pytest
import realservers as rs
from realservers import TEXT, payload
from servers import wait_until

import fasttransport as ft


@dataclass(frozen=True)
class Target:
    """One server under test and how it treats connections."""

    name: str
    #: responses per connection before the server closes it (None: no limit)
    per_conn: Optional[int] = None
    #: the server closes after a response without Content-Length (chunked, 204, 304)
    closes_unsized: bool = False
    #: HTTP/1.0 answers (no keep-alive, close-delimited /stream/ bodies)
    http10: bool = False
    #: answers ``Expect: 100-continue`` with ``100 Continue``
    expect_100: bool = True
    tls: bool = False
    base: str = ""
    verify: Any = True

    def url(self, path: str) -> str:
        return self.base + path

    def client(self, **kw: Any) -> ft.Client:
        return ft.Client(transport=self.transport(**kw))

    def transport(self, **kw: Any) -> ft.Transport:
        return ft.Transport(verify=self.verify, **kw)

    def dials(self, exchanges: Sequence[tuple[str, int]]) -> int:
        """Connections needed for ``(path, status)`` exchanges made one after
        another, given when this server closes them."""
        dials, on_conn = 0, None
        for path, status in exchanges:
            if on_conn is None:
                dials, on_conn = dials + 1, 0
            on_conn += 1
            unsized = path.startswith("/stream/") or status in (204, 304)
            if (self.http10 or on_conn == self.per_conn
                    or (self.closes_unsized and unsized)):
                on_conn = None
        return dials


TARGETS = [
    Target("nginx"),
    Target("nginx-keepalive3", per_conn=3),
    Target("nginx-tls", tls=True),
    Target("apache", per_conn=3),
    Target("uvicorn-h11"),
    Target("uvicorn-httptools"),
    Target("gunicorn", per_conn=1),
    Target("waitress", closes_unsized=True),
    Target("aiohttp"),
    Target("tornado"),
    Target("http.server", http10=True, expect_100=False),
]
NGINX_LISTENERS = {"nginx": "plain", "nginx-keepalive3": "keepalive3", "nginx-tls": "tls"}

BIG = 4 << 20


@pytest.fixture(scope="module")
def nginx(ca: Any) -> Iterator[rs.Nginx]:
    cert = ca.issue_cert(rs.HOST, "localhost")
    server = rs.Nginx(cert.private_key_and_cert_chain_pem.bytes()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=TARGETS, ids=lambda t: t.name)
def target(request: pytest.FixtureRequest, ca_file: str) -> Iterator[Target]:
    """The server of this parameter, started (nginx: once for all three)."""
    spec: Target = request.param
    verify = ca_file if spec.tls else True
    if spec.name in NGINX_LISTENERS:
        nginx = request.getfixturevalue("nginx")
        yield replace(spec, base=nginx.base(NGINX_LISTENERS[spec.name]), verify=verify)
        return
    server: Any = rs.Apache().start() if spec.name == "apache" else rs.start_python(spec.name)
    try:
        yield replace(spec, base=server.base(), verify=verify)
    finally:
        server.stop()


def assert_stats(target: Target, client: ft.Client, exchanges: list[tuple[str, int]]) -> None:
    """Dials and reuses as the server's connection policy implies; no errors."""
    stats = client.transport.stats()
    dials = target.dials(exchanges)
    assert (stats.dials, stats.reused_conns, stats.requests, stats.dial_errors) == (
        dials, len(exchanges) - dials, len(exchanges), 0), (target.name, exchanges, stats)
    assert stats.tls_handshakes + stats.tls_resumed == (dials if target.tls else 0)


def test_bodies_small_and_large(target: Target) -> None:
    with target.client() as client:
        for n in rs.SIZES:
            r = client.get(target.url(f"/bytes/{n}"))
            assert r.status_code == 200
            assert r.http_version == ("HTTP/1.0" if target.http10 else "HTTP/1.1")
            assert r.headers["Content-Length"] == str(n)
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert r.headers.get("ETag")
            assert r.content == payload(n)
        with client.stream("GET", target.url(f"/bytes/{BIG}")) as r:
            got = b"".join(r.iter_bytes(chunk_size=100_000))
        assert got == payload(BIG)
        assert_stats(target, client, [(f"/bytes/{n}", 200) for n in (*rs.SIZES, BIG)])


def test_keep_alive_and_server_closes(target: Target) -> None:
    """Nine requests one after another: one connection on a keep-alive
    server; on one that closes (keepalive_requests 3, gunicorn, HTTP/1.0) a
    new dial after each close, and no error."""
    paths = [f"/bytes/{(5, 65536, 1000)[i % 3]}" for i in range(9)]
    with target.client() as client:
        for path in paths:
            r = client.get(target.url(path))
            assert r.status_code == 200 and r.content == payload(int(path.split("/")[2]))
        assert_stats(target, client, [(p, 200) for p in paths])
    expected = {None: 1, 3: 3, 1: 9}[1 if target.http10 else target.per_conn]
    assert target.dials([(p, 200) for p in paths]) == expected


def test_chunked_response(target: Target) -> None:
    """``/stream/N`` has no Content-Length: chunked on HTTP/1.1 (also through
    nginx's and Apache's proxies), ended by the close on HTTP/1.0."""
    n = (1 << 20) + 7
    with target.client() as client:
        r = client.get(target.url(f"/stream/{n}"))
        assert r.status_code == 200 and "Content-Length" not in r.headers
        assert r.content == payload(n)
        assert len(r.trailers) == 0
        with client.stream("GET", target.url(f"/stream/{n}")) as r:
            pieces = list(r.iter_bytes())
        assert b"".join(pieces) == payload(n)
        r = client.get(target.url("/bytes/5"))
        assert r.content == payload(5)
        assert_stats(target, client, [(f"/stream/{n}", 200)] * 2 + [("/bytes/5", 200)])


def test_gzip(target: Target) -> None:
    """The server gzips (seen with the caller's own Accept-Encoding, which
    leaves the body encoded); by default the body comes back decoded."""
    with target.client() as client:
        r = client.get(target.url("/text.txt"))
        assert r.status_code == 200 and r.content == TEXT
        assert r.headers["Content-Type"].startswith("text/plain")
        assert r.request.headers["Accept-Encoding"] == "gzip"
        assert "Content-Encoding" not in r.headers and "Content-Length" not in r.headers
        with client.stream("GET", target.url("/text.txt")) as r:
            assert b"".join(r.iter_bytes(chunk_size=4096)) == TEXT
        r = client.get(target.url("/text.txt"), headers={"Accept-Encoding": "gzip"})
        assert r.headers["Content-Encoding"] == "gzip"
        assert len(r.content) < len(TEXT) // 4 and gzip.decompress(r.content) == TEXT
        assert_stats(target, client, [("/text.txt", 200)] * 3)


def test_head(target: Target) -> None:
    with target.client() as client:
        for n in (65536, BIG):
            r = client.head(target.url(f"/bytes/{n}"))
            assert r.status_code == 200 and r.content == b""
            assert r.headers["Content-Length"] == str(n)
        r = client.head(target.url("/text.txt"), headers={"Accept-Encoding": "gzip"})
        assert (r.status_code, r.content) == (200, b"")
        # the headers a GET would have, Content-Encoding included (tornado
        # does not compress a HEAD's absent body)
        assert r.headers.get("Content-Encoding") == (None if target.name == "tornado" else "gzip")
        r = client.get(target.url("/bytes/1000"))
        assert r.content == payload(1000)
        assert_stats(target, client, [("/bytes/65536", 200), (f"/bytes/{BIG}", 200),
                                      ("/text.txt", 200), ("/bytes/1000", 200)])


def test_204_and_304(target: Target) -> None:
    """No body; the connection goes on serving where the server keeps it."""
    with target.client() as client:
        tag = client.get(target.url("/bytes/5")).headers["ETag"]
        r = client.get(target.url("/status/204"))
        assert (r.status_code, r.content) == (204, b"")
        r = client.get(target.url("/bytes/5"), headers={"If-None-Match": tag})
        assert (r.status_code, r.content) == (304, b"")
        r = client.get(target.url("/bytes/5"))
        assert (r.status_code, r.content) == (200, payload(5))
        assert_stats(target, client, [("/bytes/5", 200), ("/status/204", 204),
                                      ("/bytes/5", 304), ("/bytes/5", 200)])


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_post_echo(target: Target) -> None:
    """A bytes body (Content-Length) and an iterable one (sent chunked)."""
    data = payload((1 << 20) + 3)
    with target.client() as client:
        r = client.post(target.url("/echo"), content=data)
        assert r.status_code == 200 and r.content == data
        assert r.request.headers["Content-Length"] == str(len(data))
        r = client.post(target.url("/echo"), content=_pieces(data, 50_000))
        assert r.status_code == 200 and r.content == data
        assert r.request.headers["Transfer-Encoding"] == "chunked"
        r = client.post(target.url("/echo"), content=b"")
        assert r.status_code == 200 and r.content == b""
        assert_stats(target, client, [("/echo", 200)] * 3)


def test_expect_100_continue(target: Target) -> None:
    """A server that answers ``100 Continue`` gets the body long before the
    client's 10 s wait would send it anyway; http.server (HTTP/1.0) never
    answers, and the body goes after expect_continue_timeout."""
    data = payload(300_000)
    wait = 10.0 if target.expect_100 else 0.2
    with ft.Client(transport=target.transport(expect_continue_timeout=wait)) as client:
        start = time.monotonic()
        r = client.post(target.url("/echo"), content=data, headers={"Expect": "100-continue"})
        took = time.monotonic() - start
        assert r.status_code == 200 and r.content == data
        if target.expect_100:
            assert took < wait / 2, f"{target.name}: no 100 Continue? {took:.2f}s"
        else:
            assert took >= wait
        r = client.get(target.url("/bytes/5"))
        assert r.content == payload(5)
        assert_stats(target, client, [("/echo", 200), ("/bytes/5", 200)])


def test_redirect(target: Target) -> None:
    with target.client() as client:
        r = client.get(target.url("/redirect"))
        assert (r.status_code, r.content, r.url) == (200, payload(5), target.url("/bytes/5"))
        assert [h.status_code for h in r.history] == [302]
        assert r.history[0].headers["Location"] in ("/bytes/5", target.url("/bytes/5"))
        r = client.post(target.url("/redirect307"), content=b"sent twice")
        assert (r.status_code, r.content, r.url) == (200, b"sent twice", target.url("/echo"))
        assert [h.status_code for h in r.history] == [307]
        assert_stats(target, client, [("/redirect", 302), ("/bytes/5", 200),
                                      ("/redirect307", 307), ("/echo", 200)])


def _expected(url: str) -> bytes:
    path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
    kind, _, arg = path.partition("/")
    if kind in ("bytes", "stream"):
        return payload(int(arg))
    if kind == "echo":
        return b"item %s" % url.rsplit("=", 1)[1].encode()
    assert kind == "text.txt"
    return TEXT


def _item(target: Target, i: int) -> Any:
    """Request ``i`` of the batch: each kind of request the map API takes."""
    kind = i % 4
    if kind == 0:
        return target.url(f"/bytes/1000?i={i}")
    if kind == 1:
        return ("GET", target.url(f"/stream/5000?i={i}"))
    if kind == 2:
        return ft.Request("POST", target.url(f"/echo?i={i}"), content=b"item %d" % i)
    return target.url(f"/text.txt?i={i}")


def test_map_200_requests(target: Target) -> None:
    n = 200
    with target.client() as client:
        results = list(client.map((_item(target, i) for i in range(n)), concurrency=16))
        stats = client.transport.stats()
    assert len(results) == n
    seen = set()
    for req, resp in results:
        assert isinstance(resp, ft.Response), f"{target.name} {req.method} {req.url}: {resp!r}"
        assert resp.status_code == 200 and resp.content == _expected(req.url), req.url
        seen.add(req.url)
    assert len(seen) == n
    assert stats.dial_errors == 0
    if target.http10 or target.per_conn == 1:
        assert (stats.dials, stats.reused_conns) == (n, 0)
    else:   # most requests on a kept connection (a dial may finish unused: Go's race)
        assert stats.reused_conns >= n // 2 and stats.dials + stats.reused_conns >= n


def test_submit_as_completed(target: Target) -> None:
    with target.client() as client:
        futures = {client.submit("GET", target.url(f"/bytes/{n}")): n for n in rs.SIZES}
        futures[client.submit("POST", target.url("/echo"), content=b"submitted")] = -1
        done = list(ft.as_completed(futures, timeout=30))
    assert sorted(map(futures.get, done)) == sorted(futures.values())
    for fut in done:
        n = futures[fut]
        assert fut.result().content == (payload(n) if n >= 0 else b"submitted")


def test_async_client(target: Target) -> None:
    async def run() -> None:
        async with ft.AsyncClient(verify=target.verify) as client:
            sizes = [5, 1000, 65536] * 6
            rs_ = await asyncio.gather(*(client.get(target.url(f"/bytes/{n}?a={i}"))
                                         for i, n in enumerate(sizes)))
            assert [r.content for r in rs_] == [payload(n) for n in sizes]
            async with client.stream("GET", target.url(f"/stream/{BIG}")) as r:
                got = b"".join([piece async for piece in r.aiter_bytes()])
            assert r.status_code == 200 and got == payload(BIG)
            r = await client.post(target.url("/echo"), content=payload(70_000))
            assert r.content == payload(70_000)
            r = await client.get(target.url("/text.txt"))
            assert r.content == TEXT
            r = await client.head(target.url("/bytes/65536"))
            assert (r.status_code, r.content) == (200, b"")

    asyncio.run(run())



# ---- nginx alone: what only its extra listeners and locations show ---------


def test_nginx_closes_idle_connection(nginx: rs.Nginx) -> None:
    """``keepalive_timeout 300ms``: the pool sees nginx close the idle
    connection, and a POST (never retried) goes on a new one, no error."""
    base = nginx.base("idle")
    with ft.Client() as client:
        assert client.get(base + "/bytes/5").content == payload(5)
        assert wait_until(lambda: client.transport.stats().idle_closed_by_peer == 1, 10)
        r = client.post(base + "/echo", content=b"after the close")
        assert (r.status_code, r.content) == (200, b"after the close")
        stats = client.transport.stats()
    assert (stats.dials, stats.reused_conns, stats.idle_closed_by_peer) == (2, 0, 1)


@pytest.mark.parametrize("expect", [False, True], ids=["no-expect", "expect"])
def test_nginx_refuses_upload_early(nginx: rs.Nginx, expect: bool) -> None:
    """``client_max_body_size 1k``: nginx answers 413 to a 4 MiB upload
    without reading it (with ``Expect: 100-continue``, before any of it is
    sent); the caller gets the 413, and the next upload goes through."""
    url = nginx.base("plain") + "/limited"
    headers = {"Expect": "100-continue"} if expect else {}
    transport = ft.Transport(expect_continue_timeout=10.0)
    with ft.Client(transport=transport) as client:
        start = time.monotonic()
        r = client.post(url, content=payload(BIG), headers=headers)
        assert r.status_code == 413 and b"413" in r.content
        assert time.monotonic() - start < 5.0
        r = client.post(url, content=b"small enough")
        assert (r.status_code, r.content) == (200, b"small enough")


def test_nginx_tls_sessions_resumed(nginx: rs.Nginx, ca_file: str) -> None:
    """``keepalive_requests 3`` over TLS: the two later connections resume
    the first one's session; a client without the test CA gets TLSError."""
    base = nginx.base("tls3")
    with ft.Client(verify=ca_file) as client:
        for _ in range(9):
            assert client.get(base + "/bytes/1000").content == payload(1000)
        stats = client.transport.stats()
    assert (stats.dials, stats.tls_handshakes, stats.tls_resumed) == (3, 1, 2)
    with ft.Client() as client, pytest.raises(ft.TLSError, match=base):
        client.get(base + "/bytes/5")
