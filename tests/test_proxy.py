"""Proxies: the selection rules of
``fasttransport.proxy`` (environment, NO_PROXY, CGI guard), plain-http
requests through a scripted proxy (what reaches the proxy byte for byte),
and an integration test against a real forward proxy, Debian's tinyproxy."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
from servers import body_bytes, free_port, response

import fasttransport as ft
from fasttransport import proxy as fproxy
from fasttransport.proxy import ProxyConfig, parse_proxy_url

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD")


@pytest.fixture
def env(monkeypatch):
    """A clean proxy environment; set(**vars) changes it and forgets the
    cached configuration, so the next Transport reads it."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    fproxy.reset_environment_cache()

    def set_env(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        fproxy.reset_environment_cache()

    yield set_env
    fproxy.reset_environment_cache()


def recording_proxy(scripted_server, n=10, body=b"proxied"):
    """A scripted proxy answering n requests per connection."""
    return scripted_server([response(200, body)] * n, name="proxy")


# --------------------------------------------------------------------------
# selection rules (pure)


def test_lower_case_name_wins(env):
    env(HTTP_PROXY="http://upper:1", http_proxy="http://lower:2",
        HTTPS_PROXY="http://UPPER:3", https_proxy="http://lower:4",
        NO_PROXY="upper.example", no_proxy="lower.example")
    cfg = fproxy.environment_config()
    assert cfg.http_proxy.host == "lower" and cfg.http_proxy.port == 2
    assert cfg.https_proxy.port == 4
    assert cfg.proxy_for("http", "lower.example", 80) is None
    assert cfg.proxy_for("http", "upper.example", 80) is not None


def test_upper_case_used_when_lower_is_unset_or_empty(env):
    env(HTTP_PROXY="http://upper:1", http_proxy="")
    assert fproxy.environment_config().http_proxy.host == "upper"


def test_environment_is_read_once(env):
    env(HTTP_PROXY="http://first:1")
    cfg = fproxy.environment_config()
    os.environ["HTTP_PROXY"] = "http://second:2"
    assert fproxy.environment_config() is cfg and cfg.http_proxy.host == "first"
    fproxy.reset_environment_cache()
    assert fproxy.environment_config().http_proxy.host == "second"


@pytest.mark.parametrize("value,scheme,host,port", [
    ("proxy.example:3128", "http", "proxy.example", 3128),
    ("proxy.example", "http", "proxy.example", 80),
    ("10.1.2.3:8080", "http", "10.1.2.3", 8080),
    ("http://proxy.example", "http", "proxy.example", 80),
    ("https://proxy.example", "https", "proxy.example", 443),
    ("socks5://proxy.example", "socks5", "proxy.example", 1080),
    ("socks5h://proxy.example:9050", "socks5h", "proxy.example", 9050),
    ("socks4://proxy.example", "socks4", "proxy.example", 1080),
    ("socks4a://proxy.example", "socks4a", "proxy.example", 1080),
    ("HTTP://Proxy.Example:1", "http", "proxy.example", 1),
    ("http://[::1]:3128", "http", "::1", 3128),
])
def test_proxy_addresses(value, scheme, host, port):
    p = parse_proxy_url(value)
    assert (p.scheme, p.host, p.port) == (scheme, host, port)


@pytest.mark.parametrize("value,cause", [
    ("ftp://proxy.example", 'unsupported proxy scheme "ftp"'),
    ("http://proxy.example:xyz", "Port could not be cast"),
    ("http://us:er\r\n@proxy.example", "invalid control character"),
])
def test_bad_proxy_addresses(value, cause):
    with pytest.raises(ValueError, match=cause):
        parse_proxy_url(value)


def test_bad_environment_values_are_ignored(env):
    env(HTTP_PROXY="ftp://nope", HTTPS_PROXY="http://proxy.example:bad")
    cfg = fproxy.environment_config()
    assert cfg.http_proxy is None and cfg.https_proxy is None and not cfg.enabled


def test_proxy_credentials():
    p = parse_proxy_url("http://us%3Aer:p%40ss@proxy.example:3128")
    assert (p.username, p.password) == ("us:er", "p@ss")
    assert p.authorization() == "Basic dXM6ZXI6cEBzcw=="
    assert p.redacted == "http://us%3Aer:***@proxy.example:3128"
    assert "p%40ss" not in repr(p)
    assert parse_proxy_url("http://proxy.example").authorization() is None
    assert parse_proxy_url("http://user@proxy.example").authorization() == "Basic dXNlcjo="


def test_scheme_selects_the_variable():
    cfg = ProxyConfig(http_proxy="h:1", https_proxy="s:2")
    assert cfg.proxy_for("http", "example.com", 80).host == "h"
    assert cfg.proxy_for("https", "example.com", 443).host == "s"
    assert ProxyConfig(http_proxy="h:1").proxy_for("https", "example.com", 443) is None
    assert ProxyConfig(https_proxy="s:1").proxy_for("http", "example.com", 80) is None


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1",
                                  "::ffff:127.0.0.1"])
def test_loopback_is_never_proxied(host):
    assert ProxyConfig(http_proxy="h:1").proxy_for("http", host, 80) is None


@pytest.mark.parametrize("no_proxy,host,port,direct", [
    ("*", "anything.example", 80, True),
    ("example.com", "example.com", 80, True),
    ("example.com", "www.example.com", 80, True),
    ("example.com", "notexample.com", 80, False),
    ("example.com", "example.com.evil", 80, False),
    (".example.com", "example.com", 80, False),      # leading dot: subdomains only
    (".example.com", "a.b.example.com", 80, True),
    ("*.example.com", "example.com", 80, False),
    ("*.example.com", "www.example.com", 80, True),
    ("EXAMPLE.com", "www.Example.COM", 80, True),
    ("example.com:8080", "example.com", 8080, True),
    ("example.com:8080", "example.com", 80, False),
    ("example.com:80", "example.com", 80, True),     # default port filled in
    ("10.0.0.1", "10.0.0.1", 80, True),
    ("10.0.0.1", "10.0.0.2", 80, False),
    ("10.0.0.1:8080", "10.0.0.1", 8080, True),
    ("10.0.0.1:8080", "10.0.0.1", 80, False),
    ("10.0.0.0/8", "10.200.3.4", 80, True),
    ("10.0.0.0/8", "11.0.0.1", 80, False),
    ("192.168.1.7/24", "192.168.1.200", 80, True),   # host bits ignored
    ("2001:db8::/32", "2001:db8::5", 80, True),
    ("2001:db8::5", "2001:db8::5", 80, True),
    ("[2001:db8::5]:8080", "2001:db8::5", 8080, True),
    ("[2001:db8::5]:8080", "2001:db8::5", 80, False),
    (" foo.com , bar.com ", "bar.com", 80, True),
    ("foo.com,,", "other.com", 80, False),
    ("example.com", "10.0.0.1", 80, False),          # domain rules never match IPs
    ("bücher.example", "xn--bcher-kva.example", 80, True),
])
def test_no_proxy_rules(no_proxy, host, port, direct):
    cfg = ProxyConfig(http_proxy="proxy.example:3128", no_proxy=no_proxy)
    assert (cfg.proxy_for("http", host, port) is None) is direct


def test_cgi_guard(env):
    env(HTTP_PROXY="http://proxy.example:1", HTTPS_PROXY="http://sproxy.example:2",
        REQUEST_METHOD="GET")
    cfg = fproxy.environment_config()
    with pytest.raises(ValueError, match="refusing to use HTTP_PROXY value in CGI environment; "
                                         "see golang.org/s/cgihttpproxy"):
        cfg.proxy_for("http", "example.com", 80)
    assert cfg.proxy_for("https", "example.com", 443).host == "sproxy.example"


# --------------------------------------------------------------------------
# plain http through a scripted proxy


def test_absolute_form_and_one_connection_for_every_target(env, scripted_server):
    proxy = recording_proxy(scripted_server)
    env(HTTP_PROXY=f"http://alice:s%40cret@127.0.0.1:{proxy.port}")
    with ft.Client() as c:
        assert c.get("http://one.example/a/b?x=1&y=%20").text == "proxied"
        assert c.get("http://two.example:8080/").text == "proxied"
        assert c.post("http://one.example/form", data={"k": "v"}).text == "proxied"
        stats = c.transport.host_stats()
    assert proxy.accepted == 1 and proxy.conn_indexes == [0, 0, 0]
    reqs = [r for _, r in proxy.requests]
    assert [(r.method, r.target) for r in reqs] == [
        ("GET", "http://one.example/a/b?x=1&y=%20"),
        ("GET", "http://two.example:8080/"),
        ("POST", "http://one.example/form"),
    ]
    assert reqs[0].header_names == ["Host", "User-Agent", "Proxy-Authorization",
                                    "Accept-Encoding"]
    assert [r.header("Host") for r in reqs] == ["one.example", "two.example:8080",
                                                "one.example"]
    assert {r.header("Proxy-Authorization") for r in reqs} == {"Basic YWxpY2U6c0BjcmV0"}
    assert reqs[2].body == b"k=v"
    # One pool key for the proxy; no target in it and no password.
    assert list(stats) == [f"http://alice@127.0.0.1:{proxy.port}|proxy"]


def test_explicit_proxy_argument(env, scripted_server):
    proxy = recording_proxy(scripted_server)
    env(HTTP_PROXY="http://127.0.0.1:1")          # ignored: the argument wins
    with ft.Client(transport=ft.Transport(proxy=f"127.0.0.1:{proxy.port}")) as c:
        # A fixed proxy serves every request, loopback included (Go's ProxyURL).
        assert c.get("http://127.0.0.1:9/x").text == "proxied"
    req = proxy.requests[0][1]
    assert req.target == "http://127.0.0.1:9/x" and req.header("Proxy-Authorization") is None


def test_proxy_none_goes_direct(env, scripted_server, http_server):
    proxy = recording_proxy(scripted_server)
    env(HTTP_PROXY=f"127.0.0.1:{proxy.port}")
    # 0.0.0.0 is not a loopback address (it would be proxied) but a dial
    # to it reaches this host's listeners.
    target = f"http://0.0.0.0:{http_server.port}/"
    with ft.Client(transport=ft.Transport(proxy=None)) as c:
        assert c.get(target).text == "hello"
    with ft.Client() as c:
        assert c.get(target).text == "proxied"
    assert [r.target for _, r in proxy.requests] == [target]


def test_loopback_and_no_proxy_targets_go_direct(env, scripted_server, http_server):
    proxy = recording_proxy(scripted_server)
    env(HTTP_PROXY=f"127.0.0.1:{proxy.port}", NO_PROXY=f"0.0.0.0:{http_server.port}")
    with ft.Client() as c:
        assert c.get(http_server.url("/")).text == "hello"                    # loopback
        assert c.get(f"http://localhost:{http_server.port}/").text == "hello"
        assert c.get(f"http://0.0.0.0:{http_server.port}/").text == "hello"   # NO_PROXY
        assert c.get("http://0.0.0.0:1/").text == "proxied"                   # other port
        assert c.get("http://other.example/").text == "proxied"
    assert [r.target for _, r in proxy.requests] == ["http://0.0.0.0:1/",
                                                     "http://other.example/"]
    assert [r.target for _, r in http_server.requests] == ["/"] * 3


def test_user_proxy_authorization_header_wins(scripted_server):
    proxy = recording_proxy(scripted_server)
    with ft.Client(transport=ft.Transport(proxy=f"http://u:p@127.0.0.1:{proxy.port}")) as c:
        c.get("http://a.example/", headers={"Proxy-Authorization": "Bearer mine"})
    assert proxy.requests[0][1].header_list("Proxy-Authorization") == ["Bearer mine"]


def test_proxy_credentials_with_crlf_are_encoded(scripted_server):
    proxy = recording_proxy(scripted_server)
    url = f"http://a%0D%0AX-Injected:%201:p@127.0.0.1:{proxy.port}"
    with ft.Client(transport=ft.Transport(proxy=url)) as c:
        assert c.get("http://a.example/").text == "proxied"
    req = proxy.requests[0][1]
    assert req.header("X-Injected") is None
    assert req.header("Proxy-Authorization") == "Basic YQ0KWC1JbmplY3RlZDogMTpw"


def test_proxy_url_with_raw_control_characters_is_refused():
    with pytest.raises(ValueError, match="invalid control character"):
        ft.Transport(proxy="http://127.0.0.1:3128\r\nX-Injected: 1")


def test_unreachable_proxy_is_a_proxyconnect_error(env):
    port = free_port()
    with ft.Client(transport=ft.Transport(proxy=f"http://u:secret@127.0.0.1:{port}")) as c:
        with pytest.raises(ft.ConnectError) as ei:
            c.get("http://target.example/path")
    msg = str(ei.value)
    assert msg.startswith('Get "http://target.example/path": proxyconnect tcp: ')
    assert "connection refused" in msg and "secret" not in msg


@pytest.mark.parametrize("proxy,url,via", [
    ("https://u:secret@127.0.0.1:{port}", "http://a.example/", ""),
    ("https://127.0.0.1:{port}", "https://a.example/", ""),
    ("socks5://127.0.0.1:{port}", "http://127.0.0.2/", "socks connect tcp 127.0.0.1:{port}"
     "->127.0.0.2:80: "),
    ("socks5h://u:secret@127.0.0.1:{port}", "https://a.example/",
     "socks connect tcp 127.0.0.1:{port}->a.example:443: "),
    ("socks4a://127.0.0.1:{port}", "http://a.example:8080/",
     "socks connect tcp 127.0.0.1:{port}->a.example:8080: "),
])
def test_unreachable_proxy_of_each_kind(proxy, url, via):
    port = free_port()
    with ft.Client(transport=ft.Transport(proxy=proxy.format(port=port))) as c:
        with pytest.raises(ft.ConnectError) as ei:
            c.get(url)
    assert str(ei.value) == (f'Get "{url}": proxyconnect tcp: {via.format(port=port)}'
                             f"dial tcp 127.0.0.1:{port}: connect: connection refused")


def test_all_proxy_is_the_fallback(env):
    env(ALL_PROXY="socks5h://all.example", HTTPS_PROXY="http://s.example:2")
    cfg = fproxy.environment_config()
    assert cfg.proxy_for("http", "a.example", 80).scheme == "socks5h"
    assert cfg.proxy_for("https", "a.example", 443).host == "s.example"
    env(all_proxy="socks4://lower.example", ALL_PROXY="socks4://upper.example")
    assert fproxy.environment_config().http_proxy.host == "lower.example"


def test_cgi_guard_spares_all_proxy(env):
    env(ALL_PROXY="socks5://all.example", REQUEST_METHOD="GET")
    assert fproxy.environment_config().proxy_for("http", "a.example", 80).host == "all.example"


def test_https_proxy_from_environment(env):
    # https targets use HTTPS_PROXY: the CONNECT goes to the proxy (refused here)
    env(HTTPS_PROXY="http://127.0.0.1:9")
    with ft.Client() as c:
        with pytest.raises(ft.ConnectError,
                           match=r"proxyconnect tcp: dial tcp 127\.0\.0\.1:9"):
            c.get("https://secure.example/")


def test_cgi_environment_refuses_http_proxy(env, scripted_server):
    proxy = recording_proxy(scripted_server)
    env(HTTP_PROXY=f"127.0.0.1:{proxy.port}", REQUEST_METHOD="POST")
    with ft.Client() as c:
        for _ in range(2):
            with pytest.raises(ft.TransportError) as ei:
                c.get("http://a.example/")
            assert str(ei.value) == (
                'Get "http://a.example/": refusing to use HTTP_PROXY value in CGI '
                "environment; see golang.org/s/cgihttpproxy")
    assert proxy.accepted == 0


def test_redirect_between_hosts_through_the_proxy(scripted_server):
    proxy = scripted_server([response(302, b"", [("Location", "http://b.example/next")]),
                             response(200, b"at b")], name="proxy")
    with ft.Client(transport=ft.Transport(proxy=proxy.base_url)) as c:
        r = c.get("http://a.example/")
    assert r.text == "at b" and r.url == "http://b.example/next"
    assert [q.target for _, q in proxy.requests] == ["http://a.example/",
                                                     "http://b.example/next"]
    assert proxy.accepted == 1


# --------------------------------------------------------------------------
# a real forward proxy: tinyproxy


@pytest.fixture
def tinyproxy(tmp_path):
    """tinyproxy in the foreground on a free loopback port, configured in a
    temporary directory (log there too); stopped at teardown."""
    exe = shutil.which("tinyproxy") or (
        "/usr/bin/tinyproxy" if os.path.exists("/usr/bin/tinyproxy") else None)
    if exe is None:
        pytest.fail("tinyproxy is not installed: apt-get install tinyproxy")
    for _ in range(5):
        port = free_port()
        conf = tmp_path / "tinyproxy.conf"
        log = tmp_path / "tinyproxy.log"
        conf.write_text(
            f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 32\n"
            f"Allow 127.0.0.1\nLogFile \"{log}\"\nLogLevel Info\n"
            f"PidFile \"{tmp_path / 'tinyproxy.pid'}\"\nViaProxyName \"tinyproxy-test\"\n")
        proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                up = True
                break
            except OSError:
                time.sleep(0.02)
        if up:
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail(f"tinyproxy did not start: {proc.stderr.read().decode(errors='replace')}")
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_through_tinyproxy(tinyproxy, http_server):
    proxy_url, log = tinyproxy
    with ft.Client(transport=ft.Transport(proxy=proxy_url)) as c:
        r = c.get(http_server.url("/bytes/100000"))
        assert r.status_code == 200 and r.content == body_bytes(100000)
        # tinyproxy closes every client connection after one response without
        # saying so: a request may meet that close on the pooled connection
        # after writing. GETs are replayable; the POST is made so with an
        # Idempotency-Key (Go's isReplayable), as a caller of such a proxy must.
        r = c.post(http_server.url("/echo"), json={"via": "proxy"},
                   headers={"Idempotency-Key": "k1"})
        doc = r.json()
        assert doc["body"] == '{"via":"proxy"}' and doc["target"] == "/echo"
        headers = {k.lower(): v for k, v in doc["headers"]}
        assert "tinyproxy-test" in headers["via"]
        assert headers["host"] == f"127.0.0.1:{http_server.port}"
        r = c.get(http_server.url("/chunked/5000?trailer=1"))
        assert r.content == body_bytes(5000)
        r = c.get(http_server.url("/status/302?location=/bytes/10"))
        assert r.content == body_bytes(10) and len(r.history) == 1
    assert len(http_server.requests) == 5
    assert f"127.0.0.1:{http_server.port}" in log.read_text()


def test_tinyproxy_error_responses(tinyproxy):
    proxy_url, _ = tinyproxy
    port = free_port()
    with ft.Client(transport=ft.Transport(proxy=proxy_url)) as c:
        r = c.get(f"http://127.0.0.1:{port}/")
        assert r.status_code in (500, 502, 503)
        # The client keeps working after the proxy's error page.
        r = c.get(f"http://127.0.0.1:{port}/")
        assert r.status_code in (500, 502, 503)
