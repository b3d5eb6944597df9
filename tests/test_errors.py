"""Bad input and failures: each raises the documented exception with a
message naming method, URL and cause; the broken connection is never reused;
the next request on the same Transport works."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest
from servers import CLOSE, RESET, free_port, per_connection, response

import fasttransport as ft

GOOD = response(200, b"fine")


@pytest.fixture
def transport():
    t = ft.Transport()
    yield t
    t.close()


def _check_recovers(srv, transport):
    """The next request works, on a new connection."""
    before = srv.accepted
    r = transport.round_trip(ft.Request("GET", srv.url("/next")))
    assert r.read() == b"fine"
    assert srv.accepted == before + 1
    s = transport.stats()
    assert s.active_conns == 0 and s.open_conns == s.idle_conns


HEAD_FAILURES = [
    (b"HTTP/1.1 20 OK\r\n\r\n", 'malformed HTTP status code "20"'),
    (b"garbage\r\n\r\n", 'malformed HTTP response "garbage"'),
    (b"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", "malformed MIME header: missing colon"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", 'bad Content-Length "+3"'),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 7\r\n\r\n",
     "multiple Content-Length headers"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     'unsupported transfer encoding: "gzip, chunked"'),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "unexpected EOF"),
]


@pytest.mark.parametrize("wire,cause", HEAD_FAILURES)
def test_malformed_head(scripted_server, transport, wire, cause):
    srv = scripted_server(per_connection([wire, CLOSE], [GOOD]))
    url = srv.url("/bad")
    with pytest.raises(ft.RemoteProtocolError) as ei:
        transport.round_trip(ft.Request("GET", url))
    msg = str(ei.value)
    assert msg.startswith(f'Get "{url}": ')
    assert cause in msg
    assert ei.value.method == "GET" and ei.value.url == url
    assert transport.stats().open_conns == 0
    _check_recovers(srv, transport)


def test_head_over_limit(scripted_server):
    big = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 5000 + b"\r\n\r\n"
    srv = scripted_server(per_connection([big, CLOSE], [GOOD]))
    with ft.Transport(max_response_header_bytes=1024) as t:
        with pytest.raises(ft.RemoteProtocolError,
                           match="server response headers exceeded 1024 bytes; aborted"):
            t.round_trip(ft.Request("GET", srv.url("/")))
        _check_recovers(srv, t)


def test_body_shorter_than_content_length(scripted_server, transport):
    srv = scripted_server(per_connection(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", CLOSE], [GOOD]))
    r = transport.round_trip(ft.Request("GET", srv.url("/short")))
    with pytest.raises(ft.RemoteProtocolError) as ei:
        r.read()
    assert str(ei.value) == f'Get "{srv.url("/short")}": unexpected EOF'
    # sticky
    with pytest.raises(ft.RemoteProtocolError):
        r.read()
    _check_recovers(srv, transport)


def test_body_data_delivered_before_truncation_error(scripted_server, transport):
    srv = scripted_server([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", CLOSE])
    r = transport.round_trip(ft.Request("GET", srv.url("/")))
    assert r.read(9) == b"only this"
    with pytest.raises(ft.RemoteProtocolError, match="unexpected EOF"):
        r.read(10)


@pytest.mark.parametrize("body,cause", [
    (b"zz\r\nhello\r\n0\r\n\r\n", "invalid byte in chunk length"),
    (b"5\nhello\r\n0\r\n\r\n", "chunked line ends with bare LF"),
    (b"5\r\nhelloXX0\r\n\r\n", "malformed chunked encoding"),
    (b"5\r\nhel", "unexpected EOF"),
])
def test_bad_chunked_body(scripted_server, transport, body, cause):
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    srv = scripted_server(per_connection([wire, CLOSE], [GOOD]))
    r = transport.round_trip(ft.Request("GET", srv.url("/c")))
    with pytest.raises(ft.RemoteProtocolError) as ei:
        r.read()
    assert cause in str(ei.value) and str(ei.value).startswith(f'Get "{srv.url("/c")}"')
    _check_recovers(srv, transport)


def test_server_closes_without_reply(scripted_server, transport):
    srv = scripted_server(per_connection([b"", CLOSE], [GOOD]))
    with pytest.raises(ft.RemoteProtocolError) as ei:
        transport.round_trip(ft.Request("GET", srv.url("/")))
    assert str(ei.value) == f'Get "{srv.url("/")}": EOF'
    _check_recovers(srv, transport)


def test_server_resets_mid_head(scripted_server, transport):
    srv = scripted_server(per_connection([b"HTTP/1.1 200 OK\r\nX: y\r\n", RESET], [GOOD]))
    with pytest.raises(ft.RemoteProtocolError):
        transport.round_trip(ft.Request("GET", srv.url("/")))
    _check_recovers(srv, transport)


def test_connection_refused(transport):
    port = free_port()
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ft.ConnectError) as ei:
        transport.round_trip(ft.Request("GET", url))
    assert str(ei.value) == f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    s = transport.stats()
    assert s.open_conns == 0 and s.active_conns == 0


def test_unknown_host(transport):
    with pytest.raises(ft.ConnectError, match='Get "http://no-such-host.invalid/": dial tcp'):
        transport.round_trip(ft.Request("GET", "http://no-such-host.invalid/"))


def test_response_header_timeout(http_server):
    with ft.Transport(response_header_timeout=0.1) as t:
        url = http_server.url("/slow?delay=2")
        t0 = time.monotonic()
        with pytest.raises(ft.ResponseHeaderTimeout) as ei:
            t.round_trip(ft.Request("GET", url))
        assert time.monotonic() - t0 < 1.5
        assert isinstance(ei.value, TimeoutError)
        assert "timeout awaiting response headers" in str(ei.value)
        assert t.stats().open_conns == 0


def test_client_timeout_covers_body(scripted_server):
    def slow_body(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.sleep(3)

    srv = scripted_server(slow_body)
    with ft.Client(timeout=0.2) as c:
        t0 = time.monotonic()
        with pytest.raises(ft.ReadTimeout, match="while reading body"):
            c.get(srv.url("/"))
        assert time.monotonic() - t0 < 2
        assert c.transport.stats().open_conns == 0


def test_cancel_token(http_server):
    import threading
    tok = ft.CancelToken()
    with ft.Client() as c:
        threading.Timer(0.1, tok.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(ft.Cancelled):
            c.get(http_server.url("/slow?delay=3"), cancel=tok)
        assert time.monotonic() - t0 < 1.0
        assert c.transport.stats().open_conns == 0


@pytest.mark.parametrize("bogus", [object(), "token", 1], ids=["object", "str", "int"])
def test_cancel_must_be_a_cancel_token(http_server, bogus):
    """The native exchange reads a CancelToken's flag directly: anything else
    given as ``cancel=`` (once a crash) is refused with TypeError, by the
    blocking, submitted and asyncio calls alike, before anything is sent."""
    import asyncio
    import threading
    url = http_server.url("/")
    text = f'Get "{url}": cancel must be an ft.CancelToken or None, not {type(bogus).__name__}'
    with ft.Client() as c:
        with pytest.raises(TypeError) as ei:
            c.get(url, cancel=bogus)
        assert str(ei.value) == text
        with pytest.raises(TypeError, match="cancel must be an ft.CancelToken"):
            c.get(url, cancel=threading.Event())
        with pytest.raises(TypeError, match="cancel must be an ft.CancelToken"):
            c.submit("GET", url, cancel=bogus).result(timeout=5)

        async def via_async():
            async with ft.AsyncClient(transport=c.transport) as ac:
                await ac.get(url, cancel=bogus)

        with pytest.raises(TypeError, match="cancel must be an ft.CancelToken"):
            asyncio.run(via_async())
        assert http_server.accepted == 0
        assert c.get(url, cancel=ft.CancelToken()).content == b"hello"


@pytest.mark.parametrize("kw,cause", [
    (dict(method="GET", url="http://h/", headers={"X": "a\r\nInjected: 1"}),
     'invalid header field value for "X"'),
    (dict(method="GET", url="http://h/", headers={"X": "a\nb"}), "invalid header field value"),
    (dict(method="GET", url="http://h/", headers={"X": "a\x00b"}), "invalid header field value"),
    (dict(method="GET", url="http://h/", headers={"Bad Name": "v"}),
     'invalid header field name "Bad Name"'),
    (dict(method="GE T", url="http://h/"), 'invalid method "GE T"'),
    (dict(method="", url="http://h/"), 'invalid method ""'),
    (dict(method="GET", url="ftp://h/"), 'unsupported protocol scheme "ftp"'),
    (dict(method="GET", url="/relative"), 'unsupported protocol scheme ""'),
    (dict(method="GET", url="http:///nohost"), "http: no Host in request URL"),
])
def test_invalid_request_refused_before_sending(kw, cause):
    with pytest.raises(ft.InvalidRequest) as ei:
        ft.Request(kw.pop("method"), kw.pop("url"), **kw)
    assert isinstance(ei.value, ValueError)
    assert cause in str(ei.value)


def test_invalid_header_sends_nothing(http_server):
    with ft.Client() as c:
        with pytest.raises(ft.InvalidRequest):
            c.get(http_server.url("/"), headers={"X": "1\r\n2"})
        assert http_server.accepted == 0
        assert c.get(http_server.url("/")).content == b"hello"


def test_credentials_not_in_messages(transport):
    with pytest.raises(ft.ConnectError) as ei:
        transport.round_trip(ft.Request("GET", "http://user:secret@127.0.0.1:1/"))
    assert "secret" not in str(ei.value)
    assert 'Get "http://user:***@127.0.0.1:1/"' in str(ei.value)


def test_transport_closed_then_request(http_server):
    t = ft.Transport()
    t.close()
    with pytest.raises(ft.TransportError, match="closed"):
        t.round_trip(ft.Request("GET", http_server.url("/")))


def test_garbage_status_line_fails_before_the_head_ends(scripted_server):
    # Go reads the status line first: no need to wait for a blank line
    def ssh_banner(conn):
        conn.read_request()
        conn.send(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.sleep(5)

    srv = scripted_server(per_connection(ssh_banner, [GOOD]))
    with ft.Transport(response_header_timeout=3) as t:
        t0 = time.monotonic()
        with pytest.raises(ft.RemoteProtocolError,
                           match='malformed HTTP response "SSH-2.0-OpenSSH_9.6"'):
            t.round_trip(ft.Request("GET", srv.url("/")))
        assert time.monotonic() - t0 < 1.5
        _check_recovers(srv, t)


def test_cancel_during_body_drops_buffered_bytes(http_server):
    tok = ft.CancelToken()
    with ft.Client() as c:
        r = c.get(http_server.url("/bytes/300000"), stream=True, cancel=tok)
        assert len(r.read(10)) == 10
        tok.cancel()
        with pytest.raises(ft.Cancelled):
            r.read()
        assert c.transport.stats().open_conns == 0


def test_deadline_during_body_drops_buffered_bytes(http_server):
    with ft.Client() as c:
        r = c.get(http_server.url("/bytes/300000"), stream=True, timeout=0.2)
        assert len(r.read(10)) == 10
        time.sleep(0.3)    # the deadline passes while the rest sits in the buffer
        with pytest.raises(ft.ReadTimeout, match="while reading body"):
            r.read()
        assert c.transport.stats().open_conns == 0


def test_cancel_after_eof_has_no_effect(http_server):
    tok = ft.CancelToken()
    with ft.Client() as c:
        r = c.get(http_server.url("/bytes/100"), stream=True, cancel=tok)
        assert len(r.read()) == 100
        tok.cancel()
        assert r.read() == b""
        assert c.transport.stats().idle_conns == 1


def test_a_huge_declared_length_with_a_short_body_is_a_protocol_error(scripted_server):
    # nothing is allocated from a length the server only declared
    srv = scripted_server([b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\nabc",
                           CLOSE])
    with ft.Client() as client:
        with pytest.raises(ft.RemoteProtocolError, match="unexpected EOF") as ei:
            client.get(srv.url("/"))
        assert 'Get "http://127.0.0.1' in str(ei.value)


@pytest.mark.parametrize("bad", ["/a\r\nX-Injected: 1", "/a\tb", "/a\x00b", "/a\x7fb"])
def test_control_characters_in_a_url_are_refused_not_stripped(http_server, bad):
    # Go's url.Parse: "net/url: invalid control character in URL"
    url = http_server.url(bad)
    with pytest.raises(ft.InvalidRequest, match="invalid control character in URL"):
        ft.Request("GET", url)
    with ft.Client() as client:
        with pytest.raises(ft.InvalidRequest, match=r'parse "http://127\.0\.0\.1'):
            client.get(url)
    assert http_server.requests == []


def test_an_already_cancelled_token_dials_nothing(http_server):
    token = ft.CancelToken()
    token.cancel()
    with ft.Client() as client:
        with pytest.raises(ft.Cancelled, match="context canceled"):
            client.get(http_server.url("/"), cancel=token)
        assert client.transport.stats().dials == 0
    assert http_server.accepted == 0


def test_a_request_changed_after_it_was_built_is_checked_again(http_server, scripted_server):
    # nothing that a change can produce reaches the wire unchecked
    req = ft.Request("GET", http_server.url("/"), headers={"X-A": "1"})
    with pytest.raises(ft.InvalidRequest, match="invalid method"):
        req.method = "GET / HTTP/1.1\r\nX-Smuggled: 1\r\n\r\nGET"
    with pytest.raises(ft.InvalidRequest, match='invalid header field value for "X-B"'):
        req.headers["X-B"] = "a\r\nX-Smuggled: 1"
    with pytest.raises(ft.InvalidRequest, match='invalid header field name'):
        req.headers.add("Bad Name", "v")
    with pytest.raises(ft.InvalidRequest, match='invalid header field value'):
        req.headers = {"X-C": "v\x00"}
    with pytest.raises(ft.InvalidRequest, match="unsupported protocol scheme"):
        req.url = "ftp://127.0.0.1/"
    assert req.method == "GET" and req.url == http_server.url("/")
    # a URL that is changed is the one the request goes to, credentials and all
    other = scripted_server(lambda conn: conn.read_request() and conn.send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nother"))
    req.url = other.url("/moved")
    req.headers["Authorization"] = "Bearer t"
    with ft.Transport() as t:
        r = t.round_trip(req)
        assert r.read() == b"other"
    assert http_server.requests == []
    (_, seen), = other.requests
    assert seen.target == "/moved" and seen.header("Authorization") == "Bearer t"
    assert [(k, v) for k, v in seen.headers if k.startswith("X-")] == [("X-A", "1")]


def _bytes_kept(work) -> int:
    """Python memory still held after work() and a collection (tracemalloc)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def test_long_unique_urls_are_not_kept():
    # the parsed-URL cache is bounded in bytes, not only in entries
    def build():
        for i in range(64):
            assert ft.Request("GET", f"http://127.0.0.1/{i}?" + "q" * (1 << 20)).url

    kept = _bytes_kept(build)
    assert kept < 8 << 20, f"{kept >> 20} MiB kept after 64 requests with 1 MiB URLs"


def test_long_unique_redirect_urls_are_not_kept(scripted_server):
    # a crawler led through redirects with huge unique Locations (and a
    # cookie jar that parses each URL) keeps none of them once done

    runs = []

    def handler(conn):
        while True:
            req = conn.read_request(timeout=10)
            if req is None:
                return
            if req.target == "/":
                runs.append(1)
            n = int(req.target.split("/")[1][:3] or 0) if req.target != "/" else 0
            if n < 24:   # every Location unique: the run's number in it
                loc = f"/{n + 1:03d}?{len(runs)}" + "q" * (512 << 10)
                conn.send(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nSet-Cookie: a=%d\r\n"
                          b"Content-Length: 0\r\n\r\n" % (loc.encode(), n))
            else:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")

    srv = scripted_server(handler, keep_requests=False)   # (the server keeps nothing)
    with ft.Client(max_redirects=30) as client:
        client.get(srv.url("/")).read()       # warm-up: imports, pools, the jar

        def crawl():
            r = client.get(srv.url("/"))
            assert r.content == b"done" and len(r.history) == 24

        kept = _bytes_kept(crawl)
    assert kept < 4 << 20, f"{kept >> 20} MiB kept after 24 redirects through 512 KiB URLs"


@pytest.mark.parametrize("url, text", [
    ("http://[::1", 'parse "http://[::1": missing \']\' in host'),
    ("http://host:abc/", 'parse "http://host:abc/": invalid port ":abc" after host'),
    ("http://[::1]:80a/", 'parse "http://[::1]:80a/": invalid port ":80a" after host'),
    ("http://bad url/", 'parse "http://bad url/": invalid character " " in host name'),
    ("http://ho[st/", 'parse "http://ho[st/": invalid character "[" in host name'),
    ("http://u:secret@host:abc/", 'parse "http://u:***@host:abc/": invalid port ":abc" after host'),
    ("http://u:secret@host:99999/",
     'Post "http://u:***@host:99999/": dial tcp: address 99999: invalid port'),
    ("ftp://h/x", 'Post "ftp://h/x": unsupported protocol scheme "ftp"'),
    ("http:///p", 'Post "http:///p": http: no Host in request URL'),
])
def test_bad_urls_in_gos_words_without_the_password(url, text):
    with pytest.raises(ft.InvalidRequest) as ei:
        ft.Request("POST", url)
    assert str(ei.value) == text
    assert "secret" not in str(ei.value) and "secret" not in (ei.value.url or "")
    assert ei.value.method == "POST"


def test_a_bad_header_names_method_and_url():
    with pytest.raises(ft.InvalidRequest) as ei:
        ft.Request("GET", "http://h/", headers={"Bad Name": "x"})
    assert str(ei.value) == 'Get "http://h/": net/http: invalid header field name "Bad Name"'
