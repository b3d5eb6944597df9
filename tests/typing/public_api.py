"""fasttransport's public API as a user's code meets it, checked by
``mypy --strict`` (``assert_type`` fails the check wherever the library
gives a wider type than the one written, ``Any`` included) and run by
tests/test_typing.py against a loopback server (``run_all(base_url)``).

Routes used (tests/servers.py ``http_handler``): ``/`` (``hello``),
``/bytes/N``, ``/chunked/N?trailer=1``, ``/status/N?location=...``,
``/echo`` (the request as JSON), ``/slow?delay=S``.
"""

from __future__ import annotations

import asyncio
import datetime
import http.cookiejar
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple, Union

import httpx
import requests

import fasttransport as ft
import fasttransport.httpx
import fasttransport.requests

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value: object, _type: object) -> object:
        return value


def responses(base: str) -> None:
    """A Client, its verbs and every part of a Response."""
    with ft.Client(timeout=ft.Timeout(10.0, connect=5.0), headers={"X-Example": "1"},
                   follow_redirects=True, max_redirects=5) as client:
        r = client.get(base + "/", params={"q": "1"})
        assert_type(r, ft.Response)
        assert_type(r.status_code, int)
        assert_type(r.reason, str)
        assert_type(r.http_version, str)
        assert_type(r.url, str)
        assert_type(r.headers, ft.Headers)
        assert_type(r.trailers, ft.Headers)
        assert_type(r.history, List[ft.Response])
        assert_type(r.request, ft.Request)
        assert_type(r.elapsed, datetime.timedelta)
        assert_type(r.content, bytes)
        assert_type(r.text, str)
        assert_type(r.encoding, Optional[str])
        assert_type(r.content_length, int)
        assert_type(r.is_success, bool)
        assert_type(r.is_redirect, bool)
        assert_type(r.is_closed, bool)
        assert_type(r.retries, int)
        assert_type(r.raise_for_status(), ft.Response)
        assert r.status_code == 200 and r.text == "hello" and r.is_success

        echoed = client.post(base + "/echo", json={"a": [1, 2]})
        doc = echoed.json()
        assert doc["method"] == "POST"
        for verb in (client.put, client.patch, client.delete, client.options):
            assert_type(verb(base + "/echo", content=b"x"), ft.Response)
        assert client.head(base + "/").content == b""
        assert client.request("GET", base + "/echo", data={"k": "v"}).status_code == 200

        with client.stream("GET", base + "/chunked/3000?trailer=1") as s:
            assert_type(s, ft.Response)
            pieces: Iterator[bytes] = s.iter_bytes(1000)
            assert sum(len(p) for p in pieces) == 3000
            assert_type(s.trailers.get("X-Trailer"), Optional[str])
        with client.stream("GET", base + "/bytes/10") as s:
            first: bytes = s.read(4)
            assert len(first) == 4 and s.read() and not s.read()
        with client.stream("GET", base + "/bytes/10") as s:
            body = s.body
            assert_type(body, ft.ResponseBody)
            buf = bytearray(10)
            assert_type(body.readinto(buf), int)
            assert_type(body.read(), bytes)
            body.close()
            assert body.closed
        lines = client.get(base + "/").iter_lines()
        assert_type(lines, Iterator[str])
        assert list(lines) == ["hello"]


def headers_and_requests(base: str) -> None:
    """Headers, Request and Transport.round_trip."""
    h = ft.Headers([("Accept", "text/plain"), ("X-Many", "1")])
    h.add("X-Many", "2")
    h["User-Agent"] = "example"
    assert_type(h["x-many"], str)
    assert_type(h.get("Missing"), Optional[str])
    assert_type(h.get("Missing", 0), Union[str, int])
    assert_type(h.get_list("X-Many"), List[str])
    assert_type(h.items(), List[Tuple[str, str]])
    assert_type(h.pop("Accept"), Optional[str])
    assert "x-many" in h and len(h) == 3 and list(h) == ["X-Many", "User-Agent"]
    del h["User-Agent"]
    assert h.copy() == h and h.get_list("x-many") == ["1", "2"]

    req = ft.Request("POST", base + "/echo", headers=h, content=b"payload",
                     max_body_size=1 << 20)
    assert_type(req.method, str)
    assert_type(req.url, str)
    assert_type(req.headers, ft.Headers)
    with ft.Transport(max_conns_per_host=4, idle_conn_timeout=30.0, dial_timeout=5.0,
                      response_header_timeout=5.0, max_body_size=1 << 20) as t:
        resp = t.round_trip(req)
        assert_type(resp, ft.Response)
        assert resp.json()["body"] == "payload"
        stats = t.stats()
        assert_type(stats, ft.TransportStats)
        assert_type(stats.requests, int)
        assert_type(stats.as_dict(), Dict[str, int])
        assert_type(t.host_stats(), Dict[str, Dict[str, int]])
        t.close_idle_connections()


def policies(base: str) -> None:
    """Timeout, Retry, Limits, cookies, hooks and the one-call helpers."""
    seen: List[str] = []

    def on_request(request: ft.Request) -> None:
        seen.append(request.method)

    jar = http.cookiejar.CookieJar()
    with ft.Client(timeout=5.0, retries=ft.Retry(total=2, backoff=0.01, statuses=(503,)),
                   limits=ft.Limits(max_conns_per_host=8, idle_conn_timeout=None),
                   cookies=jar, auth=("user", "secret"), base_url=base,
                   event_hooks={"request": [on_request]}) as client:
        r = client.get("echo", timeout=ft.Timeout(connect=2.0, read=2.0),
                       cookies={"session": "1"})
        assert r.json()["target"] == "/echo" and seen == ["GET"]
    assert_type(ft.Retry().total, int)
    assert_type(ft.Timeout(1.0).total, Optional[float])
    assert ft.get(base + "/").text == "hello"
    assert ft.post(base + "/echo", content=b"x").json()["body"] == "x"


def errors(base: str) -> None:
    """The exception tree: what each error carries."""
    with ft.Client(max_redirects=1) as client:
        try:
            client.get(base + "/status/404").raise_for_status()
        except ft.HTTPStatusError as e:
            assert_type(e.response, ft.Response)
            assert e.response.status_code == 404
            assert_type(e.method, Optional[str])
            assert_type(e.url, Optional[str])
        else:
            raise AssertionError("404 did not raise")
        try:
            client.get(base + "/status/302?location=/")
        except ft.TooManyRedirects as e:
            assert_type(e.response, ft.Response)
            assert_type(e.history, List[ft.Response])
            assert e.response.status_code == 302
        else:
            raise AssertionError("no TooManyRedirects")
        try:
            client.get(base + "/slow?delay=2", timeout=0.05)
        except ft.TimeoutError as e:
            assert isinstance(e, TimeoutError) and isinstance(e, ft.ReadTimeout)
        else:
            raise AssertionError("no timeout")
        try:
            ft.Request("GET", "ftp://example.com/")
        except ft.InvalidRequest as e:
            assert isinstance(e, ValueError) and isinstance(e, ft.HTTPError)
        else:
            raise AssertionError("an ftp URL was accepted")
        try:
            client.get("http://127.0.0.1:1/")
        except ft.ConnectError as e:
            assert isinstance(e, ft.TransportError) and e.url == "http://127.0.0.1:1/"
        else:
            raise AssertionError("port 1 answered")


def batch(base: str) -> None:
    """submit, map, as_completed, Future and CancelToken."""
    with ft.Client() as client:
        futures = [client.submit("GET", base + f"/bytes/{n}") for n in (1, 2, 3)]
        assert_type(futures[0], ft.Future)
        done: List[ft.Future] = []
        futures[0].add_done_callback(done.append)
        for fut in ft.as_completed(futures, timeout=10.0):
            assert_type(fut, ft.Future)
            assert_type(fut.result(), ft.Response)
            assert_type(fut.exception(), Optional[BaseException])
            assert fut.done() and not fut.running() and not fut.cancelled()
        assert done == [futures[0]]
        items: List[Union[ft.Request, str, Tuple[str, str]]] = [
            base + "/", ("POST", base + "/echo"), ft.Request("GET", base + "/bytes/5")]
        for req, outcome in client.map(items, concurrency=2):
            assert_type(req, ft.Request)
            assert_type(outcome, Union[ft.Response, BaseException])
            assert isinstance(outcome, ft.Response) and outcome.status_code == 200
        token = ft.CancelToken()
        slow = client.submit("GET", base + "/slow?delay=2", cancel=token)
        token.cancel()
        assert_type(token.cancelled, bool)
        assert isinstance(slow.exception(timeout=10.0), ft.Cancelled)
        assert_type(slow.cancel(), bool)


async def _async_calls(base: str) -> None:
    async with ft.AsyncClient(read_ahead=1 << 16, timeout=10.0) as client:
        r = await client.get(base + "/")
        assert_type(r, ft.Response)
        assert r.content == b"hello"
        async with client.stream("GET", base + "/chunked/5000") as s:
            assert_type(s, ft.Response)
            total = 0
            async for chunk in s.aiter_bytes(1024):
                assert_type(chunk, bytes)
                total += len(chunk)
            assert total == 5000
        async with client.stream("GET", base + "/") as s:
            assert [line async for line in s.aiter_lines()] == ["hello"]
        async with client.stream("GET", base + "/bytes/7") as s:
            assert_type(await s.aread(), bytes)
            await s.aclose()
        assert (await client.post(base + "/echo", content=b"z")).json()["body"] == "z"


def asyncio_client(base: str) -> None:
    """ft.AsyncClient: requests, streamed bodies."""
    asyncio.run(_async_calls(base))


def adapters(base: str) -> None:
    """httpx and requests through fasttransport's transports."""
    transport: ft.Transport = ft.Transport()
    try:
        with httpx.Client(transport=fasttransport.httpx.HTTPTransport(transport=transport)) as c:
            assert c.get(base + "/").text == "hello"

        async def async_httpx() -> str:
            async with httpx.AsyncClient(
                    transport=fasttransport.httpx.AsyncHTTPTransport()) as ac:
                return (await ac.get(base + "/")).text

        assert asyncio.run(async_httpx()) == "hello"
        adapter = fasttransport.requests.HTTPAdapter(max_idle_conns=10)
        with requests.Session() as session:
            session.mount("http://", adapter)
            assert session.get(base + "/").text == "hello"
        assert_type(adapter.transports, List[ft.Transport])
    finally:
        transport.close()


def run_all(base: str) -> None:
    """Every part above, against the server at base (``http://host:port``)."""
    for part in (responses, headers_and_requests, policies, errors, batch, asyncio_client,
                 adapters):
        part(base)
