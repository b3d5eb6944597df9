"""httpx and requests used as usual, through fasttransport's adapters
(``fasttransport.httpx.HTTPTransport``, ``fasttransport.requests.HTTPAdapter``),
against loopback servers: bodies both ways, streaming, redirects and cookies
(done by the host library), content decoding done exactly once, headers and
encodings, connection reuse, timeouts, connection errors and HTTPS.

Every client fixture checks at teardown that no connection is left in use
(``stats().active_conns == 0``) before it closes anything."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any, Callable

import httpx
import pytest
import requests
from servers import (
    Request,
    ScriptedServer,
    ServerConn,
    body_bytes,
    free_port,
    http_handler,
    response,
    wait_until,
)

import fasttransport as ft
import fasttransport.httpx
import fasttransport.requests

PAYLOAD = ("héllo wörld, " * 3000).encode("utf-8")
DOC = {"hello": "wörld", "n": [1, 2, 3]}


# --------------------------------------------------------------------------
# the test application


def _compress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "br":
        import brotli
        return brotli.compress(data)
    if coding == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(coding)


def _json(doc: Any, headers: list[tuple[str, str]] | None = None) -> bytes:
    return response(200, json.dumps(doc).encode(),
                    [("Content-Type", "application/json")] + (headers or []))


def _linger(conn: ServerConn) -> None:
    """Send nothing more until the client leaves (or 10 s, or the server stops)."""
    deadline = time.monotonic() + 10
    while not conn.peer_closed() and time.monotonic() < deadline and conn.sleep(0.02):
        pass


def _answer(conn: ServerConn, req: Request) -> bool:
    """Answer one request; False: close the connection."""
    path, query = req.path, req.query
    if path == "/json":
        conn.send(_json(DOC))
    elif path == "/echo":
        conn.send(_json({"method": req.method, "headers": req.headers,
                         "body": req.body.decode("latin-1"), "chunked": req.is_chunked}))
    elif path == "/redirect":
        conn.send(response(302, b"moved", [("Location", "/landing"),
                                           ("Set-Cookie", "session=s3cret; Path=/")]))
    elif path == "/307":
        conn.send(response(307, b"again", [("Location", "/echo")]))
    elif path == "/landing":
        conn.send(_json({"cookie": req.header("Cookie")}))
    elif path == "/encoded":
        coding = query["coding"]
        conn.send(response(200, _compress(coding, PAYLOAD),
                           [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Encoding", coding)]))
    elif path == "/headers":
        conn.send(response(200, "café".encode("latin-1"), [
            ("Content-Type", "text/plain; charset=iso-8859-1"),
            ("X-Multi", "a"), ("x-multi", "b"),
            ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]))
    elif path == "/drip":
        # n chunks, gap seconds apart: slow overall, never silent for long
        n, gap = int(query["n"]), float(query["gap"])
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(n):
            if not conn.sleep(gap):
                return False
            piece = b"%d;" % i
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    elif path == "/silent":
        _linger(conn)
        return False
    elif path == "/stall":
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        _linger(conn)
        return False
    else:
        conn.send(response(404, b"not found"))
    return True


def app(conn: ServerConn) -> None:
    while True:
        try:
            req = conn.read_request(timeout=30)
        except TimeoutError:
            return
        if req is None or not _answer(conn, req):
            return


# --------------------------------------------------------------------------
# fixtures


def _no_active(transport: ft.Transport) -> None:
    assert wait_until(lambda: transport.stats().active_conns == 0, 2.0), transport.stats()


@pytest.fixture
def app_server(scripted_server: Callable[..., ScriptedServer]) -> ScriptedServer:
    return scripted_server(app, name="app")


@pytest.fixture
def https_server(ca: Any, scripted_server: Callable[..., ScriptedServer]) -> ScriptedServer:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return scripted_server(http_handler, name="https", ssl_context=ctx)


@pytest.fixture
def ft_httpx() -> Iterator[fasttransport.httpx.HTTPTransport]:
    transport = fasttransport.httpx.HTTPTransport(proxy=None)
    yield transport
    transport.close()


@pytest.fixture
def client(ft_httpx: fasttransport.httpx.HTTPTransport) -> Iterator[httpx.Client]:
    with httpx.Client(transport=ft_httpx) as c:
        yield c
        _no_active(ft_httpx.transport)


@pytest.fixture
def adapter() -> Iterator[fasttransport.requests.HTTPAdapter]:
    a = fasttransport.requests.HTTPAdapter()
    yield a
    a.close()


@pytest.fixture
def session(adapter: fasttransport.requests.HTTPAdapter) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        yield s
        for transport in adapter.transports:
            _no_active(transport)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose TCP connect never completes: a listener that never
    accepts, its listen queue already full (new SYNs are dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    addr = listener.getsockname()
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        fillers.append(s)
    time.sleep(0.2)
    yield f"http://127.0.0.1:{addr[1]}/"
    for s in fillers:
        s.close()
    listener.close()


def _server_saw(server: ScriptedServer, path: str) -> Request:
    return [r for _, r in server.requests if r.path == path][-1]


# --------------------------------------------------------------------------
# packaging


def test_adapters_are_imported_only_on_request() -> None:
    src = os.path.dirname(os.path.dirname(ft.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    code = (
        "import sys, fasttransport\n"
        "assert 'httpx' not in sys.modules and 'requests' not in sys.modules, 'eager'\n"
        "import fasttransport.httpx, fasttransport.requests\n"
        "import httpx, requests\n"
        "assert httpx.Client and requests.Session, 'not the third-party packages'\n"
        "assert issubclass(fasttransport.httpx.HTTPTransport, httpx.BaseTransport)\n"
        "assert issubclass(fasttransport.requests.HTTPAdapter,"
        " requests.adapters.BaseAdapter)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------
# httpx


def test_httpx_get_and_post(client: httpx.Client, app_server: ScriptedServer) -> None:
    r = client.get(app_server.url("/json"))
    assert r.status_code == 200 and r.json() == DOC
    assert r.http_version == "HTTP/1.1" and r.reason_phrase == "OK"

    r = client.post(app_server.url("/echo"), content=b"raw bytes")
    seen = r.json()
    assert seen["method"] == "POST" and seen["body"] == "raw bytes" and not seen["chunked"]
    assert ["Content-Length", "9"] in seen["headers"]

    r = client.post(app_server.url("/echo"), json={"k": "vä"})
    assert json.loads(r.json()["body"].encode("latin-1")) == {"k": "vä"}
    r = client.put(app_server.url("/echo"), data={"a": "1", "b": "x y"})
    assert r.json()["method"] == "PUT" and r.json()["body"] == "a=1&b=x+y"


def test_httpx_streaming_response(client: httpx.Client, ft_httpx: Any,
                                  http_server: ScriptedServer) -> None:
    n = 300_000
    with client.stream("GET", http_server.url(f"/chunked/{n}?chunk=1000")) as r:
        assert r.status_code == 200
        assert ft_httpx.transport.stats().active_conns == 1      # nothing read yet
        chunks = list(r.iter_bytes())
    assert b"".join(chunks) == body_bytes(n)
    assert len(chunks) > 1
    s = ft_httpx.transport.stats()
    assert s.active_conns == 0 and s.idle_conns == 1


def test_httpx_streaming_upload(client: httpx.Client, app_server: ScriptedServer) -> None:
    def parts() -> Iterator[bytes]:
        for i in range(5):
            yield b"part%d-" % i

    seen = client.post(app_server.url("/echo"), content=parts()).json()
    assert seen["chunked"] and seen["body"] == "part0-part1-part2-part3-part4-"

    # a declared Content-Length is kept: no chunked framing
    seen = client.post(app_server.url("/echo"), content=parts(),
                       headers={"Content-Length": "30"}).json()
    assert not seen["chunked"] and ["Content-Length", "30"] in seen["headers"]
    assert seen["body"] == "part0-part1-part2-part3-part4-"

    seen = client.post(app_server.url("/echo"), files={"f": ("a.txt", b"file body")}).json()
    assert "file body" in seen["body"] and 'filename="a.txt"' in seen["body"]


def test_httpx_redirect_sets_cookie_for_next_hop(client: httpx.Client,
                                                  app_server: ScriptedServer) -> None:
    r = client.get(app_server.url("/redirect"), follow_redirects=True)
    assert r.status_code == 200 and [h.status_code for h in r.history] == [302]
    assert r.json()["cookie"] == "session=s3cret"
    assert client.cookies["session"] == "s3cret"
    assert app_server.accepted == 1               # both hops on one connection


def test_httpx_307_sends_the_body_again(client: httpx.Client,
                                        app_server: ScriptedServer) -> None:
    r = client.post(app_server.url("/307"), content=b"twice", follow_redirects=True)
    seen = r.json()
    assert [h.status_code for h in r.history] == [307]
    assert seen["method"] == "POST" and seen["body"] == "twice" and not seen["chunked"]
    assert ["Content-Length", "5"] in seen["headers"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_httpx_decodes_content_once(client: httpx.Client, app_server: ScriptedServer,
                                    coding: str) -> None:
    pytest.importorskip({"br": "brotli", "zstd": "zstandard"}.get(coding, "zlib"))
    url = app_server.url(f"/encoded?coding={coding}")
    r = client.get(url)
    assert r.headers["content-encoding"] == coding
    assert r.content == PAYLOAD
    assert r.text == PAYLOAD.decode("utf-8")
    with client.stream("GET", url) as r:
        wire = b"".join(r.iter_raw())
    assert wire == _compress(coding, PAYLOAD) != PAYLOAD


def test_httpx_headers_and_encoding(client: httpx.Client, app_server: ScriptedServer) -> None:
    r = client.get(app_server.url("/headers"))
    assert r.headers.get_list("X-MULTI") == ["a", "b"]
    assert r.headers["x-multi"] == "a, b"
    assert r.encoding == "iso-8859-1" and r.text == "café"
    assert r.headers["content-type"] == "text/plain; charset=iso-8859-1"
    assert dict(client.cookies) == {"a": "1", "b": "2"}


def test_httpx_connection_reuse(client: httpx.Client, ft_httpx: Any,
                                http_server: ScriptedServer) -> None:
    for _ in range(5):
        assert client.get(http_server.url("/bytes/1000")).content == body_bytes(1000)
    assert http_server.accepted == 1
    assert ft_httpx.transport.stats().reused_conns >= 4


def test_httpx_read_timeout_awaiting_head(client: httpx.Client,
                                          app_server: ScriptedServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as ei:
        client.get(app_server.url("/silent"), timeout=0.3)
    elapsed = time.monotonic() - t0
    assert 0.3 <= elapsed < 2.0
    assert isinstance(ei.value.__cause__, ft.ReadTimeout)
    assert "read timeout: nothing received for 0.3s" in str(ei.value)
    # the read part counts from the request written: connect is not added
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get(app_server.url("/silent"), timeout=httpx.Timeout(0.3, connect=3.0))
    assert 0.3 <= time.monotonic() - t0 < 2.0


def test_httpx_read_timeout_in_body(client: httpx.Client, app_server: ScriptedServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get(app_server.url("/stall"), timeout=0.3)
    assert time.monotonic() - t0 < 2.0
    with client.stream("GET", app_server.url("/stall"), timeout=0.3) as r:
        assert r.status_code == 200
        got = bytearray()
        with pytest.raises(httpx.ReadTimeout):
            for chunk in r.iter_raw():
                got += chunk
    assert bytes(got) == b"x" * 10


def test_httpx_timeout_is_per_read_not_total(client: httpx.Client,
                                             app_server: ScriptedServer) -> None:
    n, gap = 10, 0.1
    t0 = time.monotonic()
    r = client.get(app_server.url(f"/drip?n={n}&gap={gap}"), timeout=0.3)
    assert time.monotonic() - t0 >= n * gap * 0.9     # longer than 3 x the read timeout
    assert r.text == "".join(f"{i};" for i in range(n))


def test_httpx_connection_refused(client: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError) as ei:
        client.get(f"http://127.0.0.1:{free_port()}/")
    assert isinstance(ei.value.__cause__, ft.ConnectError)
    assert "refused" in str(ei.value)


def test_httpx_connect_timeout(client: httpx.Client, blackhole: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        client.get(blackhole, timeout=httpx.Timeout(0.3))
    assert time.monotonic() - t0 < 2.0


def test_httpx_https(https_server: ScriptedServer, ca_file: str) -> None:
    with fasttransport.httpx.HTTPTransport(verify=ca_file) as t, \
            httpx.Client(transport=t) as c:
        for _ in range(3):
            assert c.get(https_server.url("/bytes/5000")).content == body_bytes(5000)
        s = t.transport.stats()
        assert s.tls_handshakes == 1 and s.reused_conns == 2 and s.active_conns == 0
    with fasttransport.httpx.HTTPTransport() as t, httpx.Client(transport=t) as c:
        with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            c.get(https_server.url("/"))
        assert t.transport.stats().active_conns == 0


def test_httpx_existing_transport_is_left_open(http_server: ScriptedServer) -> None:
    with ft.Transport(proxy=None) as shared:
        with httpx.Client(transport=fasttransport.httpx.HTTPTransport(transport=shared)) as c:
            assert c.get(http_server.url("/")).text == "hello"
        # closing the httpx client closed the adapter, not the shared Transport
        r = shared.round_trip(ft.Request("GET", http_server.url("/")))
        assert r.read() == b"hello"
        s = shared.stats()
        assert s.reused_conns == 1 and s.active_conns == 0


# --------------------------------------------------------------------------
# requests


def test_requests_get_and_post(session: requests.Session, app_server: ScriptedServer) -> None:
    r = session.get(app_server.url("/json"))
    assert r.status_code == 200 and r.json() == DOC and r.reason == "OK"
    assert r.url == app_server.url("/json")
    assert r.connection is session.get_adapter(r.url)

    seen = session.post(app_server.url("/echo"), data=b"raw bytes").json()
    assert seen["method"] == "POST" and seen["body"] == "raw bytes" and not seen["chunked"]
    seen = session.post(app_server.url("/echo"), json={"k": "vä"}).json()
    assert json.loads(seen["body"].encode("latin-1")) == {"k": "vä"}
    seen = session.put(app_server.url("/echo"), data={"a": "1", "b": "x y"}).json()
    assert seen["method"] == "PUT" and seen["body"] == "a=1&b=x+y"
    seen = session.post(app_server.url("/echo"), files={"f": ("a.txt", b"file body")}).json()
    assert "file body" in seen["body"] and 'filename="a.txt"' in seen["body"]


def test_requests_streaming_response(session: requests.Session, adapter: Any,
                                     http_server: ScriptedServer) -> None:
    n = 300_000
    r = session.get(http_server.url(f"/chunked/{n}?chunk=1000"), stream=True)
    assert sum(t.stats().active_conns for t in adapter.transports) == 1
    chunks = list(r.iter_content(chunk_size=10_000))
    assert b"".join(chunks) == body_bytes(n)
    assert {len(c) for c in chunks[:-1]} == {10_000}
    r.close()
    (transport,) = adapter.transports
    assert transport.stats().idle_conns == 1

    r = session.get(http_server.url("/bytes/70000"), stream=True)
    assert r.raw.read(5) == body_bytes(5)
    assert r.raw.read() == body_bytes(70000)[5:]
    r.close()

    # closed early: the connection is not left in use
    r = session.get(http_server.url("/bytes/5000000"), stream=True)
    assert next(r.iter_content(100)) == body_bytes(100)
    r.close()


def test_requests_streaming_upload(session: requests.Session, http_server: ScriptedServer,
                                   tmp_path: Any) -> None:
    def parts() -> Iterator[bytes]:
        for i in range(5):
            yield b"part%d-" % i

    for timeout in (None, 5):
        seen = session.post(http_server.url("/echo"), data=parts(), timeout=timeout).json()
        assert ["Transfer-Encoding", "chunked"] in seen["headers"]
        assert seen["body"] == "part0-part1-part2-part3-part4-"

    path = tmp_path / "upload.bin"
    path.write_bytes(body_bytes(200_000))
    for timeout in (None, 5):            # native file path / timed chunks
        with open(path, "rb") as f:
            seen = session.put(http_server.url("/echo"), data=f, timeout=timeout).json()
        assert ["Content-Length", "200000"] in seen["headers"]
        assert seen["body"].encode("latin-1") == body_bytes(200_000)


def test_requests_redirect_sets_cookie_for_next_hop(session: requests.Session,
                                                     app_server: ScriptedServer) -> None:
    r = session.get(app_server.url("/redirect"))
    assert r.status_code == 200 and [h.status_code for h in r.history] == [302]
    assert r.history[0].cookies["session"] == "s3cret"
    assert r.json()["cookie"] == "session=s3cret"
    assert session.cookies["session"] == "s3cret"
    assert app_server.accepted == 1


def test_requests_307_sends_the_body_again(session: requests.Session,
                                           app_server: ScriptedServer) -> None:
    r = session.post(app_server.url("/307"), data=b"twice")
    seen = r.json()
    assert [h.status_code for h in r.history] == [307]
    assert seen["method"] == "POST" and seen["body"] == "twice" and not seen["chunked"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_requests_decodes_content_once(session: requests.Session, app_server: ScriptedServer,
                                       coding: str) -> None:
    pytest.importorskip({"br": "brotli", "zstd": "zstandard"}.get(coding, "zlib"))
    url = app_server.url(f"/encoded?coding={coding}")
    r = session.get(url, headers={"Accept-Encoding": coding})
    assert r.headers["Content-Encoding"] == coding          # kept, as with urllib3
    assert r.content == PAYLOAD
    assert r.text == PAYLOAD.decode("utf-8") and r.encoding == "utf-8"

    r = session.get(url, stream=True)
    assert b"".join(r.iter_content(chunk_size=1000)) == PAYLOAD

    r = session.get(url, stream=True)
    wire = r.raw.read()                                     # raw: as on the wire
    assert wire == _compress(coding, PAYLOAD) != PAYLOAD
    r.close()


def test_requests_corrupt_gzip(session: requests.Session, scripted_server: Any) -> None:
    bad = response(200, b"\x1f\x8b\x08\x00garbage-not-gzip", [("Content-Encoding", "gzip")])
    srv = scripted_server([bad])
    with pytest.raises(requests.exceptions.ContentDecodingError):
        session.get(srv.url("/"))


def test_requests_headers_and_encoding(session: requests.Session,
                                       app_server: ScriptedServer) -> None:
    r = session.get(app_server.url("/headers"))
    assert r.headers["X-MULTI"] == "a, b"
    assert r.raw.headers.getlist("x-multi") == ["a", "b"]
    assert r.encoding == "iso-8859-1" and r.text == "café"
    assert r.cookies.get_dict() == {"a": "1", "b": "2"}
    assert session.cookies.get_dict() == {"a": "1", "b": "2"}


def test_requests_connection_reuse(session: requests.Session, adapter: Any,
                                   http_server: ScriptedServer) -> None:
    for _ in range(5):
        assert session.get(http_server.url("/bytes/1000")).content == body_bytes(1000)
    assert http_server.accepted == 1
    (transport,) = adapter.transports
    assert transport.stats().reused_conns >= 4


def test_requests_read_timeouts(session: requests.Session, app_server: ScriptedServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(app_server.url("/silent"), timeout=0.3)
    assert 0.3 <= time.monotonic() - t0 < 2.0
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(app_server.url("/silent"), timeout=(3.0, 0.3))  # connect is not added
    assert 0.3 <= time.monotonic() - t0 < 2.0
    # in the body, as requests reports urllib3's read timeout there
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        session.get(app_server.url("/stall"), timeout=0.3)
    assert time.monotonic() - t0 < 2.0


def test_requests_timeout_is_per_read_not_total(session: requests.Session,
                                                app_server: ScriptedServer) -> None:
    n, gap = 10, 0.1
    t0 = time.monotonic()
    r = session.get(app_server.url(f"/drip?n={n}&gap={gap}"), timeout=0.3)
    assert time.monotonic() - t0 >= n * gap * 0.9
    assert r.text == "".join(f"{i};" for i in range(n))


def test_requests_connection_refused(session: requests.Session) -> None:
    with pytest.raises(requests.exceptions.ConnectionError) as ei:
        session.get(f"http://127.0.0.1:{free_port()}/")
    assert not isinstance(ei.value, requests.exceptions.Timeout)
    assert isinstance(ei.value.__cause__, ft.ConnectError)


def test_requests_connect_timeout(session: requests.Session, blackhole: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectTimeout):
        session.get(blackhole, timeout=0.3)
    assert time.monotonic() - t0 < 2.0


def test_requests_https_verify_per_request(session: requests.Session, adapter: Any,
                                           https_server: ScriptedServer, ca_file: str) -> None:
    for _ in range(3):
        r = session.get(https_server.url("/bytes/5000"), verify=ca_file)
        assert r.content == body_bytes(5000)
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        session.get(https_server.url("/"))            # verify=True: certifi's bundle
    assert len(adapter.transports) == 2
    verified = adapter.transport_for(ca_file)
    assert verified.stats().tls_handshakes == 1 and verified.stats().reused_conns == 2
    with pytest.raises(OSError, match="invalid path"):
        session.get(https_server.url("/"), verify="/nonexistent/ca.pem")


def test_requests_proxies_per_request(session: requests.Session, adapter: Any,
                                      scripted_server: Any) -> None:
    def proxy(conn: ServerConn) -> None:
        while (req := conn.read_request(timeout=10)) is not None:
            conn.send(_json({"target": req.target, "host": req.header("Host")}))

    srv = scripted_server(proxy, name="proxy")
    r = session.get("http://example.test/path?q=1", proxies={"http": srv.url("")})
    assert r.json() == {"target": "http://example.test/path?q=1", "host": "example.test"}
    direct_or_not = {t.proxy for t in adapter.transports}
    assert direct_or_not == {srv.url("")}


def test_requests_adapter_refuses_tls_and_proxy_arguments() -> None:
    for name in ("verify", "cert", "proxy"):
        with pytest.raises(TypeError, match=name):
            fasttransport.requests.HTTPAdapter(**{name: None})


# ---- httpx.AsyncClient over fasttransport.httpx.AsyncHTTPTransport ----------


def test_httpx_async_transport(http_server: ScriptedServer, app_server: ScriptedServer) -> None:
    import asyncio

    async def main() -> None:
        tr = fasttransport.httpx.AsyncHTTPTransport()
        async with httpx.AsyncClient(transport=tr, base_url=http_server.url("")) as client:
            rs = await asyncio.gather(*[client.get(f"/bytes/{i}") for i in range(40)])
            assert [len(r.content) for r in rs] == list(range(40))
            r = await client.post("/echo", json={"k": "v"})
            assert json.loads(r.json()["body"]) == {"k": "v"}
            async with client.stream("GET", "/bytes/200000") as r:
                got = b"".join([c async for c in r.aiter_bytes()])
            assert got == body_bytes(200000)
            r = await client.get(app_server.url("/redirect"), follow_redirects=True)
            assert r.json() == {"cookie": "session=s3cret"} and len(r.history) == 1
            s = tr.transport.stats()
            assert s.active_conns == 0 and s.requests >= 44
            t0 = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow?delay=3", timeout=0.2)
            assert time.monotonic() - t0 < 1.5
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1:1/")
        assert tr.transport.stats().open_conns == 0

    asyncio.run(main())


# ---- timeouts: each part through httpx.Client, httpx.AsyncClient, requests ---

KINDS = ["httpx", "httpx-async", "requests"]

#: The exception each client raises for a part that ran out (requests: as
#: urllib3 raises it, see fasttransport.requests).
RAISES: dict[str, dict[str, type]] = {
    "httpx": {"connect": httpx.ConnectTimeout, "read": httpx.ReadTimeout,
              "write": httpx.WriteTimeout, "pool": httpx.PoolTimeout},
    "requests": {"connect": requests.exceptions.ConnectTimeout,
                 "read": requests.exceptions.ReadTimeout,
                 "body": requests.exceptions.ConnectionError,
                 "write": requests.exceptions.ConnectionError,
                 "pool": requests.exceptions.ConnectTimeout},
}
RAISES["httpx-async"] = RAISES["httpx"]


def _timeout(kind: str, part: str, seconds: float) -> Any:
    """``seconds`` for one part and 5 s for the others, in the client's form
    (requests: connect bounds write and pool too, read only itself)."""
    if kind == "requests":
        return (5.0, seconds) if part == "read" else (seconds, 5.0)
    return httpx.Timeout(5.0, **{part: seconds})


def _fetch(kind: str, method: str, url: str, timeout: Any, *, content: bytes | None = None,
           hold: str | None = None, **transport_kw: Any) -> tuple[int, bytes]:
    """(status, body) of one request through ``kind``'s client over a fresh
    adapter (closed after, with no connection left in use); ``hold``: first
    open a streamed response to that URL and keep it open meanwhile."""
    if kind == "requests":
        adapter = fasttransport.requests.HTTPAdapter(**transport_kw)
        try:
            with requests.Session() as s:
                s.trust_env = False
                s.mount("http://", adapter)
                held = s.get(hold, stream=True) if hold else None
                try:
                    r = s.request(method, url, data=content, timeout=timeout)
                    return r.status_code, r.content
                finally:
                    if held is not None:
                        held.close()
                    for t in adapter.transports:
                        _no_active(t)
        finally:
            adapter.close()
    if kind == "httpx":
        with fasttransport.httpx.HTTPTransport(proxy=None, **transport_kw) as t, \
                httpx.Client(transport=t) as c:
            try:
                if hold:
                    with c.stream("GET", hold):
                        r = c.request(method, url, content=content, timeout=timeout)
                else:
                    r = c.request(method, url, content=content, timeout=timeout)
                return r.status_code, r.content
            finally:
                _no_active(t.transport)

    async def main() -> tuple[int, bytes]:
        t = fasttransport.httpx.AsyncHTTPTransport(proxy=None, **transport_kw)
        async with httpx.AsyncClient(transport=t) as c:
            try:
                if hold:
                    async with c.stream("GET", hold):
                        r = await c.request(method, url, content=content, timeout=timeout)
                else:
                    r = await c.request(method, url, content=content, timeout=timeout)
                return r.status_code, r.content
            finally:
                _no_active(t.transport)

    return asyncio.run(main())


def _unread(conn: ServerConn) -> None:
    """Take the request head, then read nothing more."""
    conn.recv_raw(1024)
    _linger(conn)


@pytest.mark.parametrize("kind", KINDS)
def test_connect_timeout_part(kind: str, blackhole: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(RAISES[kind]["connect"]) as ei:
        _fetch(kind, "GET", blackhole, _timeout(kind, "connect", 0.3))
    assert 0.3 <= time.monotonic() - t0 < 2.0
    assert isinstance(ei.value.__cause__, ft.ConnectTimeout)
    assert "i/o timeout (connect timeout 0.3s)" in str(ei.value)
    assert f'Get "{blackhole}"' in str(ei.value)


@pytest.mark.parametrize("kind", KINDS)
def test_read_timeout_part_awaiting_the_head(kind: str, app_server: ScriptedServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(RAISES[kind]["read"]) as ei:
        _fetch(kind, "GET", app_server.url("/silent"), _timeout(kind, "read", 0.3))
    assert 0.3 <= time.monotonic() - t0 < 2.0
    assert isinstance(ei.value.__cause__, ft.ReadTimeout)
    assert "nothing received for 0.3s" in str(ei.value)


@pytest.mark.parametrize("kind", KINDS)
def test_read_timeout_part_between_body_bytes(kind: str, app_server: ScriptedServer) -> None:
    expected = RAISES[kind].get("body", RAISES[kind]["read"])
    t0 = time.monotonic()
    with pytest.raises(expected, match="nothing received for 0.3s"):
        _fetch(kind, "GET", app_server.url("/stall"), _timeout(kind, "read", 0.3))
    assert 0.3 <= time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_steady_body_outlasts_the_read_timeout(kind: str,
                                                      app_server: ScriptedServer) -> None:
    n, gap = 10, 0.1                      # 1 s in all, never 0.3 s silent
    t0 = time.monotonic()
    status, body = _fetch(kind, "GET", app_server.url(f"/drip?n={n}&gap={gap}"),
                          _timeout(kind, "read", 0.3))
    assert time.monotonic() - t0 >= n * gap * 0.9
    assert status == 200 and body == "".join(f"{i};" for i in range(n)).encode()


@pytest.mark.parametrize("kind", KINDS)
def test_write_timeout_part(kind: str, scripted_server: Callable[..., ScriptedServer]) -> None:
    srv = scripted_server(_unread, name="unread")
    t0 = time.monotonic()
    with pytest.raises(RAISES[kind]["write"]) as ei:
        _fetch(kind, "POST", srv.url("/up"), _timeout(kind, "write", 0.3),
               content=b"x" * (64 << 20))
    assert 0.3 <= time.monotonic() - t0 < 3.0
    assert "write timeout: nothing sent for 0.3s" in str(ei.value)
    assert f'Post "{srv.url("/up")}"' in str(ei.value)
    if kind == "requests":                # as urllib3: a socket timeout while sending
        assert not isinstance(ei.value, requests.exceptions.Timeout)
        assert "Connection aborted." in str(ei.value)
    else:
        assert isinstance(ei.value.__cause__, ft.WriteTimeout)


@pytest.mark.parametrize("kind", KINDS)
def test_pool_timeout_part(kind: str, http_server: ScriptedServer) -> None:
    url = http_server.url("/bytes/10")
    t0 = time.monotonic()
    with pytest.raises(RAISES[kind]["pool"]) as ei:
        _fetch(kind, "GET", url, _timeout(kind, "pool", 0.3), max_conns_per_host=1,
               hold=http_server.url("/bytes/5000000"))
    assert 0.3 <= time.monotonic() - t0 < 2.0
    assert isinstance(ei.value.__cause__, ft.PoolTimeout)
    assert "max_conns_per_host=1, pool timeout 0.3s" in str(ei.value)
    # with the slot free, the same parts pass
    assert _fetch(kind, "GET", url, _timeout(kind, "pool", 0.3),
                  max_conns_per_host=1) == (200, body_bytes(10))


def test_timeouts_start_no_thread(app_server: ScriptedServer, http_server: ScriptedServer) -> None:
    """Timeouts cost no thread: after timed requests (one timing out) through
    every adapter, still open, the process has the threads it had before
    (the servers' own aside)."""
    ports = (f":{app_server.address[1]}", f":{http_server.address[1]}")

    def threads() -> set[Any]:
        return {t for t in threading.enumerate() if not t.name.endswith(ports)}

    before = threads()
    url, silent = http_server.url("/bytes/100"), app_server.url("/silent")
    sync = fasttransport.httpx.HTTPTransport(proxy=None)
    aio = fasttransport.httpx.AsyncHTTPTransport(proxy=None)
    adapter = fasttransport.requests.HTTPAdapter()
    try:
        with httpx.Client(transport=sync) as c:
            assert c.get(url, timeout=5.0).content == body_bytes(100)
            with pytest.raises(httpx.ReadTimeout):
                c.get(silent, timeout=0.2)
            assert threads() == before

        async def main() -> None:
            async with httpx.AsyncClient(transport=aio) as c:
                assert (await c.get(url, timeout=5.0)).content == body_bytes(100)
                with pytest.raises(httpx.ReadTimeout):
                    await c.get(silent, timeout=0.2)
                assert threads() == before

        asyncio.run(main())
        with requests.Session() as s:
            s.mount("http://", adapter)
            assert s.get(url, timeout=5.0).content == body_bytes(100)
            with pytest.raises(requests.exceptions.ReadTimeout):
                s.get(silent, timeout=0.2)
            assert threads() == before
    finally:
        sync.close()
        adapter.close()
