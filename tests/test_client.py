"""Client behaviour through the public API against loopback servers:
redirects, cookies, request bodies, auth,
trailers, and bad input that must be refused before anything is sent.

Tests that need several host names send everything through a scripted
proxy (``Transport(proxy=...)``): the proxy server sees each request's
absolute URL and answers per host, as Go's tests do with a custom Dial."""

from __future__ import annotations

import email.parser
import email.policy
import http.cookiejar
import io
import json
import os
import ssl
import threading
import time

import pytest
from servers import (
    CLOSE,
    body_bytes,
    chunked_response,
    http_handler,
    per_connection,
    response,
)

import fasttransport as ft

# --------------------------------------------------------------------------
# helpers


def redirect(status: int, location: str | None, body: bytes = b"",
             headers: list[tuple[str, str]] | None = None) -> bytes:
    h = list(headers or [])
    if location is not None:
        h.append(("Location", location))
    return response(status, body, h)


def routed(routes):
    """A keep-alive handler answering each request with ``routes(req)``
    (bytes), recorded by the server as usual."""

    def handler(conn):
        while True:
            req = conn.read_request(timeout=10)
            if req is None:
                return
            conn.send(routes(req))

    return handler


def host_and_path(req) -> tuple[str, str]:
    """(host, path+query) of a request a proxy received in absolute form."""
    target = req.target
    assert target.startswith("http://"), target
    rest = target[len("http://"):]
    host, _, path = rest.partition("/")
    return host, "/" + path


@pytest.fixture
def client():
    with ft.Client() as c:
        yield c


@pytest.fixture
def proxy_client(scripted_server):
    """(client, start) where start(routes) starts the proxy-side handler;
    every request of the client goes to that one server."""
    made = []

    def start(routes, **client_kw):
        srv = scripted_server(routed(routes), name="proxy")
        c = ft.Client(transport=ft.Transport(proxy=srv.base_url), **client_kw)
        made.append(c)
        return c, srv

    yield start
    for c in made:
        c.close()


def echoed(r: ft.Response) -> dict:
    doc = r.json()
    doc["hdrs"] = {k.lower(): v for k, v in doc["headers"]}
    return doc


# --------------------------------------------------------------------------
# redirects: which, method, body


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses_are_followed(client, http_server, status):
    r = client.get(http_server.url(f"/status/{status}?location=/bytes/10"))
    assert r.status_code == 200 and r.content == body_bytes(10)
    assert r.url == http_server.url("/bytes/10")
    assert [h.status_code for h in r.history] == [status]
    assert r.history[0].url == http_server.url(f"/status/{status}?location=/bytes/10")


@pytest.mark.parametrize("status", [300, 304, 305, 306])
def test_other_3xx_are_final(client, http_server, status):
    r = client.get(http_server.url(f"/status/{status}?location=/bytes/10"))
    assert r.status_code == status and r.history == []
    assert len(http_server.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303])
def test_post_becomes_get_without_body(client, scripted_server, status):
    srv = scripted_server([redirect(status, "/next"), response(200, b"done")])
    r = client.post(srv.url("/form"), content=b"payload",
                    headers={"Content-Type": "text/plain"})
    assert r.text == "done"
    first, second = (req for _, req in srv.requests)
    assert first.method == "POST" and first.body == b"payload"
    assert second.method == "GET" and second.path == "/next"
    assert second.body == b"" and second.header("Content-Length") is None
    assert second.header("Transfer-Encoding") is None
    # Go copies the original headers, Content-Type included.
    assert second.header("Content-Type") == "text/plain"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_head_stays_head(client, scripted_server, status):
    srv = scripted_server([redirect(status, "/next"), response(200, b"")])
    r = client.head(srv.url("/"))
    assert r.status_code == 200
    assert [req.method for _, req in srv.requests] == ["HEAD", "HEAD"]


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_307_308_keep_method_and_body(client, scripted_server, status, method):
    srv = scripted_server([redirect(status, "/again"), response(200, b"ok")])
    r = client.request(method, srv.url("/"), json={"a": 1})
    assert r.text == "ok"
    first, second = (req for _, req in srv.requests)
    assert second.method == method and second.path == "/again"
    assert second.body == first.body == b'{"a":1}'
    assert second.header("Content-Length") == "7"
    assert second.header("Content-Type") == "application/json"


def test_body_once_dropped_is_never_resent(client, scripted_server):
    srv = scripted_server([redirect(303, "/b"), redirect(307, "/c"), response(200, b"end")])
    r = client.post(srv.url("/a"), content=b"xyz")
    assert r.text == "end" and [h.status_code for h in r.history] == [303, 307]
    reqs = [req for _, req in srv.requests]
    assert [(q.method, q.path, q.body) for q in reqs] == [
        ("POST", "/a", b"xyz"), ("GET", "/b", b""), ("GET", "/c", b"")]


def test_307_with_seekable_file_body_is_resent(client, scripted_server, tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(b"0123456789" * 100)
    srv = scripted_server([redirect(307, "/b"), response(200, b"ok")])
    with open(path, "rb") as f:
        r = client.put(srv.url("/a"), content=f)
    assert r.text == "ok"
    for _, req in srv.requests:
        assert req.body == b"0123456789" * 100 and req.header("Content-Length") == "1000"


def one_shot_bodies():
    yield "generator", lambda: (c for c in (b"ab", b"cd"))
    yield "iterator", lambda: iter([b"ab", b"cd"])

    def pipe():
        r, w = os.pipe()
        os.write(w, b"abcd")
        os.close(w)
        return os.fdopen(r, "rb")

    yield "pipe", pipe


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("kind,make", list(one_shot_bodies()),
                         ids=[k for k, _ in one_shot_bodies()])
def test_307_with_one_shot_body_stops(client, scripted_server, status, kind, make):
    srv = scripted_server([redirect(status, "/next", b"moved"), response(200, b"ok")])
    body = make()
    try:
        with pytest.raises(ft.UnrewindableBodyError) as ei:
            client.post(srv.url("/up"), content=body)
    finally:
        if hasattr(body, "close"):
            body.close()
    e = ei.value
    assert f'Post "{srv.url("/up")}": cannot follow the {status} redirect to "/next"' in str(e)
    assert e.response.status_code == status and e.response.is_closed
    assert [h.status_code for h in e.history] == [status]
    assert len(srv.requests) == 1 and srv.requests[0][1].body == b"abcd"
    # The client keeps working, on the same connection (the body was read).
    assert client.get(srv.url("/")).text == "ok"
    assert srv.accepted == 1


def test_one_shot_body_with_303_is_fine(client, scripted_server):
    srv = scripted_server([redirect(303, "/next"), response(200, b"ok")])
    r = client.post(srv.url("/"), content=(c for c in [b"a", b"b"]))
    assert r.text == "ok" and srv.requests[1][1].method == "GET"


# --------------------------------------------------------------------------
# Location


@pytest.mark.parametrize("loc,want", [
    ("/abs/path?q=1", "/abs/path?q=1"),
    ("rel", "/dir/rel"),
    ("../up", "/up"),
    ("?only=query", "/dir/page?only=query"),
    ("//127.0.0.1:{port}/netpath", "/netpath"),
    ("http://127.0.0.1:{port}/full", "/full"),
    ("/a b", "/a%20b"),
])
def test_location_is_resolved(client, scripted_server, loc, want):
    srv = scripted_server([])
    srv.handler = routed(lambda req: response(200, b"final") if req.target != "/dir/page"
                         else redirect(302, loc.format(port=srv.port)))
    r = client.get(srv.url("/dir/page"))
    assert r.text == "final"
    assert srv.requests[1][1].target == want


def test_location_bytes_above_ascii_are_escaped_as_sent(client, scripted_server):
    # "caf\xc3\xa9" is UTF-8 for café: the next request line carries the
    # same bytes, percent-encoded once.
    head = (b"HTTP/1.1 302 Found\r\nLocation: /caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n")
    srv = scripted_server([head, response(200, b"ok")])
    assert client.get(srv.url("/")).text == "ok"
    assert srv.requests[1][1].target == "/caf%C3%A9"


def test_3xx_without_location_is_final(client, scripted_server):
    srv = scripted_server([redirect(302, None, b"no location"), response(200, b"x")])
    r = client.get(srv.url("/"))
    assert r.status_code == 302 and r.text == "no location" and r.history == []
    assert len(srv.requests) == 1


def test_empty_location_is_final(client, scripted_server):
    srv = scripted_server([redirect(301, "", b"empty")])
    r = client.get(srv.url("/"))
    assert r.status_code == 301 and r.text == "empty"


@pytest.mark.parametrize("loc,cause", [
    ("http://[::1/x", "missing ']' in host"),
    ("http://host:abc/", 'invalid port ":abc" after host'),
    ("/bad%zzescape", 'invalid URL escape "%zz"'),
    ("/tab\there", "net/url: invalid control character in URL"),
])
def test_unparsable_location(client, scripted_server, loc, cause):
    srv = scripted_server([redirect(302, loc, b"body"), response(200, b"ok")])
    url = srv.url("/start")
    with pytest.raises(ft.RemoteProtocolError) as ei:
        client.get(url)
    assert str(ei.value) == (
        f'Get "{url}": failed to parse Location header "{loc}": parse "{loc}": {cause}')
    assert len(srv.requests) == 1
    assert client.get(srv.url("/")).text == "ok"


def test_location_with_credentials_is_redacted_in_errors(client, scripted_server):
    srv = scripted_server([redirect(302, "http://user:secret@host:bad/")])
    with pytest.raises(ft.RemoteProtocolError) as ei:
        client.get(srv.url("/"))
    assert "secret" not in str(ei.value) and "user:***@host:bad" in str(ei.value)


def test_location_with_unsupported_scheme(client, scripted_server):
    srv = scripted_server([redirect(302, "ftp://files.example/x")])
    with pytest.raises(ft.InvalidRequest, match='unsupported protocol scheme "ftp"'):
        client.get(srv.url("/"))
    assert len(srv.requests) == 1


# --------------------------------------------------------------------------
# limits, loops, history


def counting_redirects(req):
    n = int(req.query.get("n", "0"))
    return redirect(302, f"/?n={n + 1}", b"go on")


def test_redirect_loop_stops_after_10(client, scripted_server):
    srv = scripted_server(routed(counting_redirects))
    with pytest.raises(ft.TooManyRedirects) as ei:
        client.get(srv.url("/"))
    e = ei.value
    assert str(e) == 'Get "/?n=10": stopped after 10 redirects'
    assert e.url == "/?n=10" and e.method == "GET"
    assert e.response.status_code == 302 and e.response.is_closed
    assert e.response.headers["Location"] == "/?n=10"
    assert len(e.history) == 10 and e.history[-1] is e.response
    assert len(srv.requests) == 10
    assert srv.accepted == 1          # every small redirect body was read


def test_self_redirect_loop(client, scripted_server):
    srv = scripted_server(routed(lambda req: redirect(307, req.target)))
    with pytest.raises(ft.TooManyRedirects, match=r'^Post "/loop": stopped after 3 redirects$'):
        ft.Client(max_redirects=3, transport=client.transport).post(
            srv.url("/loop"), content=b"b")
    assert [r.body for _, r in srv.requests] == [b"b"] * 3


def test_history_keeps_small_bodies(client, scripted_server):
    srv = scripted_server([redirect(302, "/2", b"first"), redirect(301, "/3", b"second"),
                           response(200, b"third")])
    r = client.get(srv.url("/1"))
    assert [h.content for h in r.history] == [b"first", b"second"]
    assert [h.url for h in r.history] == [srv.url("/1"), srv.url("/2")]
    assert r.history[1].history == []


def test_follow_redirects_false(scripted_server):
    srv = scripted_server([redirect(302, "/next", b"moved"), redirect(302, "/next"),
                           response(200, b"x")])
    with ft.Client(follow_redirects=False) as c:
        r = c.get(srv.url("/"))
        assert r.status_code == 302 and r.text == "moved" and r.is_redirect
        r = c.get(srv.url("/"), follow_redirects=True)
        assert r.text == "x" and [h.status_code for h in r.history] == [302]
    srv2 = scripted_server([redirect(307, "/next")])
    with ft.Client() as c:
        r = c.get(srv2.url("/"), follow_redirects=False)
        assert r.status_code == 307 and len(srv2.requests) == 1


def test_redirect_eats_small_body_so_the_connection_is_reused(client, scripted_server):
    # TestClientRedirectEatsBody_h1: 1 KiB of redirect body, chunked or not.
    srv = scripted_server([redirect(302, "/b", b"x" * 1024),
                           chunked_response([b"y" * 700, b"z" * 300], status=302,
                                            headers=[("Location", "/c")]),
                           response(200, b"done")])
    assert client.get(srv.url("/a")).text == "done"
    assert srv.accepted == 1 and srv.conn_indexes == [0, 0, 0]


def test_redirect_with_large_body_is_not_read(scripted_server):
    # Over 2 KiB: closed unread (drain_limit=0 makes that a close).
    srv = scripted_server(per_connection([redirect(302, "/b", b"x" * 100000)],
                                         [response(200, b"done")]))
    with ft.Client(transport=ft.Transport(drain_limit=0)) as c:
        assert c.get(srv.url("/a")).text == "done"
    assert srv.accepted == 2


def test_streaming_final_response_after_redirects(client, http_server):
    with client.stream("GET", http_server.url("/status/302?location=/chunked/5000")) as r:
        assert r.history[0].status_code == 302
        assert b"".join(r.iter_bytes(1000)) == body_bytes(5000)


# --------------------------------------------------------------------------
# timeouts and cancellation over several hops


def slow_redirects(delay):
    def routes(req):
        time.sleep(delay)
        return redirect(302, "/again", b"")

    return routes


def test_total_timeout_spans_every_hop(client, scripted_server):
    srv = scripted_server(routed(slow_redirects(0.15)))
    t0 = time.monotonic()
    with pytest.raises(ft.TimeoutError):
        client.get(srv.url("/"), timeout=0.5)
    took = time.monotonic() - t0
    assert 0.4 < took < 1.5
    assert 3 <= len(srv.requests) <= 5


def test_client_timeout_spans_every_hop(scripted_server):
    srv = scripted_server(routed(slow_redirects(0.15)))
    with ft.Client(timeout=0.4) as c:
        with pytest.raises(ft.TimeoutError):
            c.get(srv.url("/"))


def test_cancel_carries_over_to_later_hops(client, scripted_server):
    srv = scripted_server(routed(slow_redirects(0.1)))
    token = ft.CancelToken()
    timer = threading.Timer(0.35, token.cancel)
    timer.start()
    try:
        with pytest.raises(ft.Cancelled):
            client.get(srv.url("/"), cancel=token)
    finally:
        timer.cancel()
    assert len(srv.requests) >= 2


# --------------------------------------------------------------------------
# headers on redirects: sensitive ones, Referer, Host


SENSITIVE = {"Authorization": "Bearer t", "Www-Authenticate": "x", "Cookie": "c=1",
             "Cookie2": "c2", "Proxy-Authorization": "Basic p", "Proxy-Authenticate": "y",
             "X-Other": "kept"}


def hop_routes(chain):
    """routes answering host+path in ``chain`` (a dict) with a redirect to
    the given URL, anything else with 200."""

    def routes(req):
        host, path = host_and_path(req)
        nxt = chain.get(host + path)
        return redirect(302, nxt) if nxt else response(200, b"end")

    return routes


def sent_headers(srv):
    return [(host_and_path(r)[0], {k: v for k, v in r.headers}) for _, r in srv.requests]


@pytest.mark.parametrize("start,to,kept", [
    ("foo.com", "foo.com:4321", True),            # ports are ignored
    ("foo.com", "sub.foo.com", True),             # a subdomain
    ("foo.com", "a.b.foo.com", True),
    ("sub.foo.com", "foo.com", False),            # a parent domain is another host
    ("foo.com", "xfoo.com", False),
    ("foo.com", "bar.com", False),
    ("Foo.COM", "foo.com", True),                 # host names compare without case
    ("foo.com", "[::1]", False),
])
def test_sensitive_headers_on_host_change(proxy_client, start, to, kept):
    c, srv = proxy_client(hop_routes({f"{start}/": f"http://{to}/next"}))
    c.cookies = None
    c.get(f"http://{start}/", headers=SENSITIVE)
    (_, first), (_, second) = sent_headers(srv)
    for name, value in SENSITIVE.items():
        assert first[name] == value
        if name == "X-Other" or kept:
            assert second.get(name) == value, name
        else:
            assert name not in second, name


def test_sensitive_headers_stay_stripped(proxy_client):
    # TestClientStripHeadersOnRepeatedRedirect: a.com -> b.com -> a.com.
    c, srv = proxy_client(hop_routes({"a.com/": "http://b.com/1", "b.com/1": "http://a.com/2",
                                      "a.com/2": "http://sub.a.com/3"}))
    c.cookies = None
    r = c.get("http://a.com/", headers={"Authorization": "secret", "X-Keep": "1"})
    assert r.text == "end" and len(r.history) == 3
    seen = sent_headers(srv)
    assert [h for h, _ in seen] == ["a.com", "b.com", "a.com", "sub.a.com"]
    assert [hdrs.get("Authorization") for _, hdrs in seen] == ["secret", None, None, None]
    assert all(hdrs["X-Keep"] == "1" for _, hdrs in seen)


def test_auth_option_is_sensitive_too(proxy_client):
    c, srv = proxy_client(hop_routes({"a.com/": "http://evil.com/"}))
    c.get("http://a.com/", auth=("user", "pw"))
    (_, first), (_, second) = sent_headers(srv)
    assert first["Authorization"] == "Basic dXNlcjpwdw=="
    assert "Authorization" not in second


def test_referer(proxy_client):
    c, srv = proxy_client(hop_routes({"a.com/x?q=1": "http://b.com/y", "b.com/y": "/z"}))
    c.get("http://user:pw@a.com/x?q=1#frag")
    refs = [r.header("Referer") for _, r in srv.requests]
    assert refs == [None, "http://a.com/x?q=1", "http://b.com/y"]


def test_explicit_referer_is_kept(proxy_client):
    c, srv = proxy_client(hop_routes({"a.com/": "http://b.com/", "b.com/": "/c"}))
    c.get("http://a.com/", headers={"Referer": "http://origin.example/"})
    assert [r.header_list("Referer") for _, r in srv.requests] == [
        ["http://origin.example/"]] * 3


def test_custom_host_survives_only_relative_redirects(proxy_client):
    chain = {"/": "/rel", "/rel": "http://b.com/abs"}

    def routes(req):
        nxt = chain.get(host_and_path(req)[1])
        return redirect(302, nxt) if nxt else response(200, b"end")

    c, srv = proxy_client(routes)
    c.get("http://a.com/", headers={"Host": "virtual.example"})
    assert [r.header("Host") for _, r in srv.requests] == [
        "virtual.example", "virtual.example", "b.com"]
    # Through a proxy the request line names the Host in use (Go: r.Host).
    assert [r.target for _, r in srv.requests] == [
        "http://virtual.example/", "http://virtual.example/rel", "http://b.com/abs"]


def test_https_to_http_downgrade_drops_referer(scripted_server, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    plain = scripted_server([response(200, b"plain"), response(200, b"plain")])
    secure = scripted_server(
        [redirect(302, plain.url("/down")), redirect(302, plain.url("/down"))],
        ssl_context=ctx)
    with ft.Client(transport=ft.Transport(verify=str(ca_file))) as c:
        r = c.get(secure.url("/top"), headers={"Authorization": "tok"})
        assert r.text == "plain" and r.history[0].url.startswith("https://")
        # Same host (ports ignored): Authorization is kept, as in Go; no Referer.
        first = plain.requests[0][1]
        assert first.header("Referer") is None and first.header("Authorization") == "tok"
        # An explicit Referer is dropped on https -> http too.
        c.get(secure.url("/top"), headers={"Referer": "https://secret.example/page"})
        assert plain.requests[1][1].header("Referer") is None


@pytest.mark.parametrize("start,to,kept", [
    ("foo.com", "foo.com:4321", False),           # another port: another service
    ("foo.com", "sub.foo.com", False),            # a subdomain is another origin
    ("foo.com", "foo.com", True),
    ("Foo.COM", "foo.com:80", True),              # the same origin, written otherwise
])
def test_strict_redirects_drop_credentials_on_another_origin(proxy_client, start, to, kept):
    c, srv = proxy_client(hop_routes({f"{start}/": f"http://{to}/next"}))
    c.cookies = None
    c.strict_redirects = True
    c.get(f"http://{start}/", headers=SENSITIVE)
    (_, first), (_, second) = sent_headers(srv)
    assert first["Authorization"] == "Bearer t"
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        assert (second.get(name) == SENSITIVE[name]) is kept, name
    assert second["X-Other"] == "kept"


def test_strict_redirects_referer_is_the_origin_across_origins(proxy_client):
    c, srv = proxy_client(hop_routes({"a.com/x?api_key=s3cret": "http://b.com/y",
                                      "b.com/y": "/z"}))
    c.strict_redirects = True
    c.get("http://a.com/x?api_key=s3cret")
    refs = [r.header("Referer") for _, r in srv.requests]
    assert refs == [None, "http://a.com/", "http://b.com/y"]


def test_strict_redirects_https_to_http(scripted_server, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    plain = scripted_server([response(200, b"plain")])
    secure = scripted_server([redirect(302, plain.url("/down"))], ssl_context=ctx)
    with ft.Client(transport=ft.Transport(verify=str(ca_file)), strict_redirects=True) as c:
        r = c.get(secure.url("/top"), headers={"Authorization": "tok", "Cookie": "k=v"})
        assert r.text == "plain"
        sent = plain.requests[0][1]
        assert sent.header("Authorization") is None and sent.header("Cookie") is None
        assert sent.header("Referer") is None


# --------------------------------------------------------------------------
# cookies


def test_cookie_jar_by_default(client, scripted_server):
    srv = scripted_server([response(200, b"", [("Set-Cookie", "sid=abc; Path=/")]),
                           response(200, b"")])
    client.get(srv.url("/login"))
    client.get(srv.url("/page"))
    assert srv.requests[1][1].header_list("Cookie") == ["sid=abc"]
    assert [c.name for c in client.cookies] == ["sid"]


def test_cookies_set_and_sent_on_every_hop(client, scripted_server):
    srv = scripted_server([redirect(302, "/b", headers=[("Set-Cookie", "one=1; Path=/")]),
                           redirect(302, "/c", headers=[("Set-Cookie", "two=2; Path=/")]),
                           response(200, b"")])
    client.get(srv.url("/a"))
    assert [r.header("Cookie") for _, r in srv.requests] == [None, "one=1", "one=1; two=2"]


def test_cookies_false_disables_the_jar(scripted_server):
    srv = scripted_server([response(200, b"", [("Set-Cookie", "sid=abc")]),
                           response(200, b"")])
    with ft.Client(cookies=False) as c:
        assert c.cookies is None
        c.get(srv.url("/"))
        c.get(srv.url("/"), headers={"Cookie": "mine=1"})
    assert srv.requests[1][1].header_list("Cookie") == ["mine=1"]


def test_explicit_cookie_header_and_jar_make_one_header(client, scripted_server):
    srv = scripted_server([response(200, b"", [("Set-Cookie", "jar=1")]), response(200, b"")])
    client.get(srv.url("/"))
    client.get(srv.url("/"), headers={"Cookie": "mine=2"})
    assert srv.requests[1][1].header_list("Cookie") == ["mine=2; jar=1"]


def test_any_cookiejar_is_accepted(scripted_server, tmp_path):
    jar = http.cookiejar.MozillaCookieJar(str(tmp_path / "cookies.txt"))
    srv = scripted_server([response(200, b"", [("Set-Cookie", "k=v; Max-Age=3600")]),
                           response(200, b"")])
    with ft.Client(cookies=jar) as c:
        c.get(srv.url("/"))
        c.get(srv.url("/"))
    jar.save()
    assert "\tk\tv" in (tmp_path / "cookies.txt").read_text()
    assert srv.requests[1][1].header("Cookie") == "k=v"


class RecordingJar(http.cookiejar.CookieJar):
    """Go's RecordingJar: logs every Cookies / SetCookies call."""

    def __init__(self):
        super().__init__()
        self.log = []

    def add_cookie_header(self, request):
        self.log.append(f"Cookies({request.get_full_url()})")
        super().add_cookie_header(request)

    def extract_cookies(self, response, request):
        names = [v.split(";")[0] for v in response.info().get_all("Set-Cookie", [])]
        self.log.append(f"SetCookie({request.get_full_url()}, {names})")
        super().extract_cookies(response, request)


def test_jar_calls(proxy_client):
    # TestJarCalls: SetCookies only for responses that have Set-Cookie.
    def routes(req):
        host, path = host_and_path(req)
        if path == "/nosetcookie":
            return response(200, b"")
        cookie = [("Set-Cookie", f"name{path[1:]}=val{path[1:]}")]
        if path == "/":
            return redirect(302, "http://secondhost.fake/secondpath", headers=cookie)
        return response(200, b"", cookie)

    jar = RecordingJar()
    c, srv = proxy_client(routes, cookies=jar)
    c.get("http://firsthost.fake/")
    c.get("http://firsthost.fake/nosetcookie")
    assert jar.log == [
        "Cookies(http://firsthost.fake/)",
        "SetCookie(http://firsthost.fake/, ['name=val'])",
        "Cookies(http://secondhost.fake/secondpath)",
        "SetCookie(http://secondhost.fake/secondpath, ['namesecondpath=valsecondpath'])",
        "Cookies(http://firsthost.fake/nosetcookie)",
    ]


def test_jar_subclass_is_asked_on_every_hop(scripted_server):
    jar = RecordingJar()
    srv = scripted_server([redirect(302, "/b"), response(200, b"")])
    with ft.Client(cookies=jar) as c:
        c.get(srv.url("/a"))
    assert jar.log == [f"Cookies({srv.url('/a')})", f"Cookies({srv.url('/b')})"]


def test_client_alters_cookies_on_redirect(client, scripted_server):
    # TestClientAltersCookiesOnRedirect: cookies the caller put in a Cookie
    # header are replaced by the jar's once a redirect sets the same name.
    wants = {
        "0": {"Cookie1": ["OldValue1a", "OldValue1b"], "Cookie2": ["OldValue2"],
              "Cookie3": ["OldValue3a", "OldValue3b"], "Cookie4": ["OldValue4"],
              "Cycle": ["0"]},
        "1": {"Cookie1": ["OldValue1a", "OldValue1b"], "Cookie3": ["OldValue3a", "OldValue3b"],
              "Cookie4": ["OldValue4"], "Cycle": ["1"]},
        "2": {"Cookie1": ["OldValue1a", "OldValue1b"], "Cookie3": ["NewValue3"],
              "Cookie4": ["NewValue4"], "Cycle": ["2"]},
        "3": {"Cookie1": ["OldValue1a", "OldValue1b"], "Cookie3": ["NewValue3"],
              "Cookie4": ["NewValue4"], "Cookie5": ["NewValue5"], "Cycle": ["3"]},
    }
    sets = {
        "0": ["Cycle=1; Path=/", "Cookie2=; Path=/; Max-Age=0"],
        "1": ["Cycle=2; Path=/", "Cookie3=NewValue3; Path=/", "Cookie4=NewValue4; Path=/"],
        "2": ["Cycle=3; Path=/", "Cookie5=NewValue5; Path=/"],
    }
    got = {}

    def routes(req):
        cookies = {}
        for v in req.header_list("Cookie"):
            for item in v.split(";"):
                k, _, val = item.strip().partition("=")
                cookies.setdefault(k, []).append(val)
        cycle = cookies["Cycle"][0]
        got[cycle] = {k: sorted(v) for k, v in cookies.items()}
        if cycle == "3":
            return response(200, b"done")
        return redirect(302, "/", headers=[("Set-Cookie", s) for s in sets[cycle]])

    srv = scripted_server(routed(routes))
    jar = client.cookies
    for name, value in (("Cookie4", "OldValue4"), ("Cycle", "0")):
        jar.set_cookie(http.cookiejar.Cookie(
            0, name, value, None, False, "127.0.0.1", False, False, "/", True, False,
            None, False, None, None, {}))
    cookie = ("Cookie1=OldValue1a; Cookie1=OldValue1b; Cookie2=OldValue2; "
              "Cookie3=OldValue3a; Cookie3=OldValue3b")
    r = client.get(srv.url("/"), headers={"Cookie": cookie})
    assert r.text == "done"
    assert got == wants
    assert all(len(r.header_list("Cookie")) == 1 for _, r in srv.requests)


def test_cookie_for_another_domain_is_rejected(client, scripted_server):
    srv = scripted_server([response(200, b"", [("Set-Cookie", "evil=1; Domain=evil.example"),
                                               ("Set-Cookie", "good=1")]),
                           response(200, b"")])
    client.get(srv.url("/"))
    client.get(srv.url("/"))
    assert [c.name for c in client.cookies] == ["good"]
    assert srv.requests[1][1].header_list("Cookie") == ["good=1"]


def test_folded_set_cookie_cannot_inject_a_header(client, scripted_server):
    # An obs-fold continuation is joined with a space: one Cookie line out.
    head = (b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\n X-Injected: 1\r\n"
            b"Content-Length: 0\r\n\r\n")
    srv = scripted_server([head, response(200, b"")])
    client.get(srv.url("/"))
    client.get(srv.url("/"))
    second = srv.requests[1][1]
    assert second.header("X-Injected") is None
    assert len(second.header_list("Cookie")) == 1
    assert "\r" not in second.header("Cookie") and "\n" not in second.header("Cookie")


def test_set_cookie_with_bare_cr_is_refused(client, scripted_server):
    srv = scripted_server(
        [b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\rX: 1\r\nContent-Length: 0\r\n\r\n"])
    with pytest.raises(ft.RemoteProtocolError):
        client.get(srv.url("/"))
    assert len(client.cookies) == 0


def test_jar_cookie_with_crlf_is_never_sent(client, scripted_server):
    srv = scripted_server([response(200, b"ok")])
    client.cookies.set_cookie(http.cookiejar.Cookie(
        0, "bad", "v\r\nX-Injected: 1", None, False, "127.0.0.1", False, False, "/", True,
        False, None, False, None, None, {}))
    with pytest.raises(ft.InvalidRequest, match='invalid header field value for "Cookie"'):
        client.get(srv.url("/"))
    assert srv.requests == [] and srv.accepted == 0
    client.cookies.clear()
    assert client.get(srv.url("/")).text == "ok"


# --------------------------------------------------------------------------
# request bodies


def test_bytes_and_str_bodies(client, http_server):
    d = echoed(client.post(http_server.url("/echo"), content=b"\x00\xffraw"))
    assert d["body"] == "\x00\xffraw" and d["hdrs"]["content-length"] == "5"
    d = echoed(client.put(http_server.url("/echo"), content="héllo"))
    assert d["body"].encode("latin-1") == "héllo".encode() and d["hdrs"]["content-length"] == "6"


def test_form_and_json_bodies(client, http_server):
    d = echoed(client.post(http_server.url("/echo"), data={"a": "1 2", "b": ["x", "y"]}))
    assert d["body"] == "a=1+2&b=x&b=y"
    assert d["hdrs"]["content-type"] == "application/x-www-form-urlencoded"
    d = echoed(client.post(http_server.url("/echo"), json={"k": [1, "é"]}))
    assert json.loads(d["body"].encode("latin-1")) == {"k": [1, "é"]}
    assert d["hdrs"]["content-type"] == "application/json"
    d = echoed(client.post(http_server.url("/echo"), json=[], headers={"Content-Type": "x/y"}))
    assert d["hdrs"]["content-type"] == "x/y"


def parse_multipart(req) -> list:
    """(name, filename, content type, payload bytes) of each part."""
    ctype = req.header("Content-Type")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
    assert msg.is_multipart()
    out = []
    for part in msg.iter_parts():
        out.append((part.get_param("name", header="content-disposition"),
                    part.get_filename(), part.get("Content-Type"),
                    part.get_payload(decode=True)))
    return out


def test_multipart_files(client, scripted_server, tmp_path):
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    srv = scripted_server([response(200, b"")])
    with open(path, "rb") as f:
        client.post(srv.url("/upload"), data={"title": "Q3", "tags": ["x", "y"]}, files={
            "report": f,
            "raw": b"\x00\x01",
            "named": ("notes.txt", b"hello"),
            "typed": ("data.bin", io.BytesIO(b"\xff" * 10), "application/x-thing"),
            "text": ("plain", "ünïcode"),
            "field": (None, b"no filename"),
        })
    req = srv.requests[0][1]
    assert req.header("Content-Type").startswith("multipart/form-data; boundary=")
    assert req.header("Content-Length") == str(len(req.body))
    assert parse_multipart(req) == [
        ("title", None, None, b"Q3"),
        ("tags", None, None, b"x"),
        ("tags", None, None, b"y"),
        ("report", "report.csv", "text/csv", b"a,b\n1,2\n"),
        ("raw", "raw", "application/octet-stream", b"\x00\x01"),
        ("named", "notes.txt", "text/plain", b"hello"),
        ("typed", "data.bin", "application/x-thing", b"\xff" * 10),
        ("text", "plain", "application/octet-stream", "ünïcode".encode()),
        ("field", None, None, b"no filename"),
    ]


def test_multipart_as_pairs_and_quoting(client, scripted_server):
    srv = scripted_server([response(200, b"")])
    client.post(srv.url("/"), files=[("f", ('we"ird\r\nname.txt', b"1")), ("f", b"2")])
    req = srv.requests[0][1]
    assert b'filename="we%22ird%0D%0Aname.txt"' in req.body
    assert [p[3] for p in parse_multipart(req)] == [b"1", b"2"]


def test_multipart_boundaries_differ(client, scripted_server):
    srv = scripted_server([response(200, b""), response(200, b"")])
    client.post(srv.url("/"), files={"a": b"1"})
    client.post(srv.url("/"), files={"a": b"1"})
    a, b = (r.header("Content-Type") for _, r in srv.requests)
    assert a != b


def test_file_bodies_with_known_size(client, scripted_server, tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 70000)
    srv = scripted_server([response(200, b"")] * 3)
    with open(path, "rb") as f:
        f.read(1000)                                  # sent from the current position
        client.post(srv.url("/"), content=f)
    client.post(srv.url("/"), content=io.BytesIO(b"memory"))
    with open(path, "rb", buffering=0) as f:
        client.post(srv.url("/"), content=f)
    bodies = [(r.header("Content-Length"), r.header("Transfer-Encoding"), len(r.body))
              for _, r in srv.requests]
    assert bodies == [("69000", None, 69000), ("6", None, 6), ("70000", None, 70000)]


def test_unknown_length_bodies_are_chunked(client, scripted_server, tmp_path):
    srv = scripted_server([response(200, b"")] * 3)
    r, w = os.pipe()
    os.write(w, b"from a pipe")
    os.close(w)
    with os.fdopen(r, "rb") as f:
        client.post(srv.url("/"), content=f)
    client.post(srv.url("/"), content=(b"%d," % i for i in range(5)))
    (tmp_path / "t.txt").write_text("text mode")
    with open(tmp_path / "t.txt") as f:
        client.post(srv.url("/"), content=f)
    got = [(q.is_chunked, q.header("Content-Length"), q.body) for _, q in srv.requests]
    assert got == [(True, None, b"from a pipe"), (True, None, b"0,1,2,3,4,"),
                   (True, None, b"text mode")]


def test_bad_body_types(client, http_server):
    with pytest.raises(TypeError):
        client.post(http_server.url("/"), content=12)
    with pytest.raises(TypeError):
        client.post(http_server.url("/"), files={"a": 12})
    with pytest.raises(TypeError):
        client.post(http_server.url("/"), content=[b"a", 1])
    assert http_server.requests == []


# --------------------------------------------------------------------------
# auth


def test_auth_on_client_and_per_request(scripted_server):
    srv = scripted_server([response(200, b"")] * 4)
    with ft.Client(auth=("alice", "s3cret")) as c:
        c.get(srv.url("/"))
        c.get(srv.url("/"), auth=("bob", "pw"))
        c.get(srv.url("/"), auth=None)
        c.get(srv.url("/"), headers={"Authorization": "Bearer x"}, auth=None)
    assert [r.header_list("Authorization") for _, r in srv.requests] == [
        ["Basic YWxpY2U6czNjcmV0"], ["Basic Ym9iOnB3"], [], ["Bearer x"]]


def test_url_userinfo_becomes_basic_auth(client, scripted_server):
    srv = scripted_server([response(200, b"")] * 3)
    client.get(f"http://us%40er:p%3Ass@127.0.0.1:{srv.port}/")
    client.get(f"http://only-user@127.0.0.1:{srv.port}/")
    client.get(f"http://u:p@127.0.0.1:{srv.port}/", headers={"Authorization": "Token t"})
    assert [r.header("Authorization") for _, r in srv.requests] == [
        "Basic dXNAZXI6cDpzcw==", "Basic b25seS11c2VyOg==", "Token t"]


def test_credentials_never_in_error_messages(client, scripted_server):
    with pytest.raises(ft.ConnectError) as ei:
        client.get("http://user:hunter2@127.0.0.1:1/")
    assert "hunter2" not in str(ei.value) and "user:***@127.0.0.1:1" in str(ei.value)
    srv = scripted_server(routed(lambda req: redirect(302, "http://a:hunter2@127.0.0.1:1/")))
    with pytest.raises(ft.TooManyRedirects) as ei:
        ft.Client(max_redirects=1, transport=client.transport).get(srv.url("/"))
    assert "hunter2" not in str(ei.value) and "a:***@" in str(ei.value)


# --------------------------------------------------------------------------
# trailers


def test_trailers_after_eof_through_client_stream(client, http_server):
    with client.stream("GET", http_server.url("/chunked/3000?chunk=1000&trailer=1")) as r:
        assert len(r.trailers) == 0
        assert "Trailer" not in r.headers
        first = r.read(1000)
        assert len(r.trailers) == 0
        rest = r.read()
        assert first + rest == body_bytes(3000)
        assert r.trailers["X-Trailer"] == "done"
    r = client.get(http_server.url("/chunked/10?trailer=1"))
    assert r.trailers.get_list("X-Trailer") == ["done"]
    assert len(client.get(http_server.url("/bytes/10")).trailers) == 0


# --------------------------------------------------------------------------
# header values with CR/LF through every path


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb",
                                   "€"])
def test_bad_header_values_are_refused(client, http_server, value):
    with pytest.raises(ft.InvalidRequest, match='invalid header field value for "X-Test"'):
        client.get(http_server.url("/"), headers={"X-Test": value})
    with pytest.raises(ft.InvalidRequest):
        ft.Client(headers={"X-Test": value})
    assert http_server.requests == []
    assert client.get(http_server.url("/")).text == "hello"


def test_bad_header_names_are_refused(client, http_server):
    for name in ("X Test", "X:Test", "", "X\r\nY"):
        with pytest.raises(ft.InvalidRequest, match="invalid header field name"):
            client.get(http_server.url("/"), headers={name: "v"})
    assert http_server.requests == []


def test_location_with_encoded_crlf_stays_encoded(client, scripted_server):
    srv = scripted_server([redirect(302, "/x%0d%0aX-Injected:%201"),
                           response(200, b"ok")])
    assert client.get(srv.url("/")).text == "ok"
    second = srv.requests[1][1]
    assert second.target == "/x%0d%0aX-Injected:%201"
    assert second.header("X-Injected") is None
    assert second.header("Referer") == srv.url("/")


def test_userinfo_with_crlf_is_encoded(client, scripted_server):
    srv = scripted_server([response(200, b"ok")])
    client.get(f"http://a%0d%0aX-Injected:%201:pw@127.0.0.1:{srv.port}/")
    req = srv.requests[0][1]
    assert req.header("X-Injected") is None
    assert req.header("Authorization") == "Basic YQ0KWC1JbmplY3RlZDogMTpwdw=="


def test_server_closing_mid_redirect_chain(client, scripted_server):
    srv = scripted_server(per_connection([redirect(302, "/b"), b"", CLOSE], [CLOSE]))
    with pytest.raises(ft.TransportError):
        client.get(srv.url("/a"))
    srv2 = scripted_server(http_handler)
    assert client.get(srv2.url("/")).text == "hello"


def test_redirects_and_refusals_leak_nothing(scripted_server, http_server, no_leaks):
    loop = scripted_server(routed(counting_redirects))
    bad = scripted_server(routed(lambda req: redirect(302, "http://[::1/x", b"b")))
    gz = scripted_server(routed(lambda req: response(200, b"not gzip",
                                                     [("Content-Encoding", "gzip")])))
    with ft.Client() as c:
        for _ in range(3):
            r = c.get(http_server.url("/status/301?location=/status/302%3Flocation%3D/"))
            assert r.text == "hello" and len(r.history) == 2
            with pytest.raises(ft.TooManyRedirects):
                c.get(loop.url("/"))
            with pytest.raises(ft.RemoteProtocolError):
                c.get(bad.url("/"))
            with pytest.raises(ft.UnrewindableBodyError):
                c.post(http_server.url("/status/307?location=/echo"), content=iter([b"x"]))
            with pytest.raises(ft.RemoteProtocolError):
                c.get(gz.url("/"))
            with pytest.raises(ft.InvalidRequest):
                c.get(http_server.url("/"), headers={"X": "a\r\nb"})
        assert c.get(http_server.url("/")).text == "hello"
    for srv in (loop, bad, gz):       # started after no_leaks counted: stop them first
        srv.stop()


# --------------------------------------------------------------------------
# cookie limits against a hostile server


def test_cookie_jar_limits(scripted_server):
    import time as _time

    many = "".join(f"Set-Cookie: c{i}=v{i}; Path=/\r\n" for i in range(200_000)).encode()
    big = "Set-Cookie: big=" + "x" * 5000 + "; Path=/\r\n"
    srv = scripted_server([
        b"HTTP/1.1 200 OK\r\n" + many + big.encode() + b"Content-Length: 0\r\n\r\n",
        response(200, b"a"), response(200, b"b")])
    with ft.Client() as c:
        c.get(srv.url("/set"))
        # browsers' per-domain limit: the last 180 Set-Cookie headers are
        # looked at, and one of them is too big to keep
        assert len(c.cookies) == 179
        t0 = _time.perf_counter()
        c.get(srv.url("/next"))
        assert _time.perf_counter() - t0 < 0.5
        sent = srv.requests[1][1].header("Cookie")
        assert sent.count("=") == 179 and len(sent) < 4000
        assert "big=" not in sent              # larger than 4096 bytes: ignored
        # the most recent ones are kept
        assert "c199999=v199999" in sent and "c0=v0" not in sent


def test_cookie_jar_total_limit():
    jar = ft.client.BoundedCookieJar()
    import http.cookiejar as cj

    for d in range(40):
        for i in range(100):
            jar.set_cookie(cj.Cookie(0, f"n{i}", "v", None, False, f"d{d}.example", True,
                                     False, "/", True, False, None, False, None, None, {}))
    assert len(jar) == 3000
    assert not any(c.domain == "d0.example" for c in jar)     # the oldest went first
    assert sum(1 for c in jar if c.domain == "d39.example") == 100


# --------------------------------------------------------------------------
# what requests and httpx users reach for


def test_params_lists_and_none(http_server):
    r = ft.get(http_server.url("/echo?x=1"), params={"b": ["x", "y"], "a": None, "c": 3,
                                                     "d": ("p", None, "q")})
    assert r.json()["target"] == "/echo?x=1&b=x&b=y&c=3&d=p&d=q"
    r = ft.get(http_server.url("/echo"), params=[("k", "v"), ("k", None), ("z", ["1", "2"])])
    assert r.json()["target"] == "/echo?k=v&z=1&z=2"
    assert ft.get(http_server.url("/echo"), params={"a": None}).json()["target"] == "/echo"


def test_helpers_keep_no_cookies(scripted_server):
    srv = scripted_server([response(200, b"", [("Set-Cookie", "sid=1; Path=/")]),
                           response(200, b"")])
    ft.get(srv.url("/login"))
    ft.get(srv.url("/other"))
    assert srv.requests[1][1].header("Cookie") is None


def test_encoding_is_settable_and_unknown_charsets_fall_back(scripted_server):
    body = "café".encode("latin-1")
    srv = scripted_server([
        response(200, body, [("Content-Type", "text/plain; charset=latin-1")]),
        response(200, "é\n".encode(), [("Content-Type", "text/plain; charset=no-such-charset")]),
        response(200, "é\n".encode(), [("Content-Type", "text/plain; charset=no-such-charset")]),
    ])
    with ft.Client() as c:
        r = c.get(srv.url("/"))
        assert r.encoding == "latin-1" and r.text == "café"
        r.encoding = "utf-8"
        assert r.encoding == "utf-8" and r.text == "caf\ufffd"
        r = c.get(srv.url("/"), stream=True)
        assert r.encoding == "no-such-charset"
        assert list(r.iter_lines()) == ["é"]
        assert c.get(srv.url("/")).text == "é\n"


def test_base_url_params_and_cookies_per_request(http_server):
    with ft.Client(base_url=http_server.url("/"), params={"k": "1"}) as c:
        doc = c.get("echo", params={"q": ["a", "b"]}, cookies={"s": "x", "t": "y"}).json()
        assert doc["target"] == "/echo?k=1&q=a&q=b"
        assert ["Cookie", "s=x; t=y"] in doc["headers"]
        r = c.get("/bytes/3")
        assert r.url == http_server.url("/bytes/3?k=1") and len(r.content) == 3
        assert c.get(http_server.url("/")).text == "hello"      # absolute URLs as they are


def test_event_hooks_see_every_hop(http_server):
    seen = []
    hooks = {"request": [lambda r: seen.append(("req", r.url))],
             "response": [lambda r: seen.append(("resp", r.status_code))]}
    target = http_server.url("/status/302?location=/")
    with ft.Client(event_hooks=hooks) as c:
        assert c.get(target).text == "hello"
        assert seen == [("req", target), ("resp", 302), ("req", http_server.url("/")),
                        ("resp", 200)]
        seen.clear()
        assert c.submit("GET", http_server.url("/")).result().text == "hello"
        assert seen == [("req", http_server.url("/")), ("resp", 200)]
    with pytest.raises(ValueError, match="event_hooks"):
        ft.Client(event_hooks={"before": []})


def test_tls_settings_on_the_client(ca_file, scripted_server, ca, monkeypatch):
    import ssl as _ssl

    from servers import http_handler
    from test_tls import server_context

    srv = scripted_server(http_handler, name="https", ssl_context=server_context(ca))
    with ft.Client(verify=ca_file) as c:
        assert c.get(srv.url("/")).text == "hello"
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    with ft.Client() as c:                      # trust_env: SSL_CERT_FILE
        assert c.get(srv.url("/")).text == "hello"
    with ft.Client(trust_env=False) as c:
        with pytest.raises(ft.TLSError):
            c.get(srv.url("/"))
    with pytest.raises(TypeError, match="not an ssl.SSLContext"):
        ft.Client(verify=_ssl.create_default_context())
    with ft.Transport() as t, pytest.raises(TypeError, match="give them to the Transport"):
        ft.Client(transport=t, verify=False)
