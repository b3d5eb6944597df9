"""The clients under test, each wrapped the same way.

Every adapter builds its client for one :class:`Target` and exposes what a
scenario needs; imports happen inside, in the worker process, so a missing
library fails only its own row (``ImportError``).

- ``sync(target)`` -> ``(fetch, close)``: one request at a time; ``fetch()``
  returns the whole body as ``bytes``.
- ``threaded(target, threads)`` -> ``(per_thread, close)``: ``per_thread()``
  runs in each worker thread and returns that thread's ``fetch``. Thread-safe
  clients return one shared fetch (one client object for every thread);
  the others build one connection or session per thread (``sharing`` says
  which).
- ``async_session(target, concurrency)`` (``style = "async"``: aiohttp,
  fasttransport's AsyncClient, httpx's AsyncClient): an async context
  manager yielding an async ``fetch``; ``concurrency`` tasks share it.
- ``multi(target, concurrency)`` (``style = "multi"``: pycurl's CurlMulti,
  fasttransport's ``Client.map``): a :class:`MultiRunner` that keeps
  ``concurrency`` requests in flight from the calling thread.
- ``hold(target, count, ready, held)``: open ``count`` keep-alive connections
  at once (``count`` responses open together; for aiohttp ``count`` requests
  started together), read every body so that all of them go idle in the
  client's pool, call ``held()`` while they are held, then
  close. ``ready()`` is called once the client exists, before any request;
  no new connection is opened once ``time.perf_counter()`` passes ``deadline``.

``style`` says how a worker runs a client with more than one request in
flight: ``"threads"`` (``threaded``), ``"async"`` (``async_session``, also
with one request in flight) or ``"multi"`` (``multi``).

Every body is read completely and returned as ``bytes``; nothing is
configured beyond what a user would set to reach the server (a CA file for
TLS, pool sizes for the concurrent and scale scenarios).

Rows whose names end in ``-ft`` / ``-ft-threads`` / ``-async-ft`` run httpx
or requests over fasttransport's adapters (``fasttransport.httpx``,
``fasttransport.requests``). When such a module or the class a row needs is
missing, the row raises :class:`NotAvailable` and the report shows
"not available: <reason>".
"""

from __future__ import annotations

import contextlib
import io
import math
import platform
import ssl
import time
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Optional,
    Protocol,
)
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import fasttransport as ft

Fetch = Callable[[], bytes]
AsyncFetch = Callable[[], Awaitable[bytes]]
Close = Callable[[], None]


class NotAvailable(Exception):
    """The client's library is installed but lacks what the row needs (for
    example a fasttransport adapter module or class not written yet)."""


class MultiRunner(Protocol):
    """Many requests in flight driven from one thread (``Adapter.multi``).

    ``run(n, deadline, expect)`` performs up to ``n`` GETs, starting a new one
    as each finishes, and starts none once ``time.perf_counter()`` passes
    ``deadline``; it returns ``(done, errors, bad_bodies, last_error)``.
    """

    def run(self, n: int, deadline: float, expect: int) -> tuple[int, int, int, str]: ...

    def close(self) -> None: ...


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True)
class Target:
    """Where a worker sends its requests."""

    url: str
    cafile: Optional[str] = None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


class Adapter:
    """Base: a client that supports none of the request styles."""

    name = ""
    #: How threads share the client in the concurrent scenario.
    sharing = ""
    #: How many requests in flight are run: "threads", "async" or "multi".
    style = "threads"

    def version(self) -> str:
        return ""

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        raise NotImplementedError

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        raise NotImplementedError

    def async_session(
        self, target: Target, concurrency: int
    ) -> contextlib.AbstractAsyncContextManager[AsyncFetch]:
        raise NotImplementedError

    def multi(self, target: Target, concurrency: int) -> MultiRunner:
        raise NotImplementedError

    def hold(
        self,
        target: Target,
        count: int,
        ready: Callable[[], None],
        held: Callable[[], None],
        deadline: float = math.inf,
    ) -> None:
        raise NotImplementedError


def _until(count: int, deadline: float) -> Iterator[int]:
    """``range(count)`` that stops early once ``time.perf_counter()`` passes ``deadline``."""
    clock = time.perf_counter
    for i in range(count):
        if clock() > deadline:
            return
        yield i


def _one_per_thread(adapter: Adapter, target: Target) -> tuple[Callable[[], Fetch], Close]:
    """For clients that are not thread-safe: each thread builds its own ``sync`` client."""
    closers: list[Close] = []

    def per_thread() -> Fetch:
        fetch, close = adapter.sync(target)
        closers.append(close)  # list.append is atomic
        return fetch

    def close_all() -> None:
        for close in closers:
            close()

    return per_thread, close_all


# ---------------------------------------------------------------------------
# fasttransport


class FastTransport(Adapter):
    """``ft.Client().get(url).content``; one Client shared by every thread."""

    name = "fasttransport"
    sharing = "one Client shared by all threads"

    def version(self) -> str:
        import fasttransport as ft

        return ft.__version__

    @staticmethod
    def _transport(target: Target, **kw: Any) -> ft.Transport:
        import fasttransport as ft

        if target.cafile:
            kw["verify"] = target.cafile
        return ft.Transport(**kw)

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        import fasttransport as ft

        client = ft.Client(transport=self._transport(target))
        get, url = client.get, target.url

        def fetch() -> bytes:
            body: bytes = get(url).content
            return body

        def close() -> None:
            client.close()
            client.transport.close()

        return fetch, close

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        fetch, close = self.sync(target)
        return (lambda: fetch), close

    def hold(
        self,
        target: Target,
        count: int,
        ready: Callable[[], None],
        held: Callable[[], None],
        deadline: float = math.inf,
    ) -> None:
        import fasttransport as ft

        transport = self._transport(
            target, max_idle_conns=0, max_idle_conns_per_host=count, idle_conn_timeout=600.0
        )
        try:
            ready()
            responses = [
                transport.round_trip(ft.Request("GET", target.url))
                for _ in _until(count, deadline)
            ]
            for response in responses:
                response.read()
                response.close()
            del responses
            held()
        finally:
            transport.close()


class FastTransportRoundTrip(FastTransport):
    """``Transport.round_trip`` without the Client layer (redirects, cookies)."""

    name = "fasttransport-transport"

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        import fasttransport as ft

        transport = self._transport(target)
        round_trip, url, request = transport.round_trip, target.url, ft.Request

        def fetch() -> bytes:
            response = round_trip(request("GET", url))
            body = response.read()
            response.close()
            return body

        return fetch, transport.close


def _ft_pool(conns: int) -> dict[str, Any]:
    """ft.Transport keyword arguments that let ``conns`` connections to one host
    be open and go idle in the pool (the default keeps 100)."""
    return {"max_idle_conns": max(100, conns), "max_idle_conns_per_host": conns}


class FastTransportThreads(FastTransport):
    """``Client.get(url).content`` from many threads sharing one Client whose
    Transport pools as many connections as there are threads."""

    name = "fasttransport-threads"
    sharing = "one Client (max_idle_conns_per_host=threads) shared by all threads"

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        import fasttransport as ft

        client = ft.Client(transport=self._transport(target, **_ft_pool(threads)))
        get, url = client.get, target.url

        def fetch() -> bytes:
            body: bytes = get(url).content
            return body

        def close() -> None:
            client.close()
            client.transport.close()

        return (lambda: fetch), close


class FastTransportMap(FastTransport):
    """``Client.map(urls, concurrency=N)`` from one thread: the engine runs the
    exchanges, the thread collects ``(request, response or exception)``."""

    name = "fasttransport-map"
    sharing = "Client.map(concurrency=N) from one thread"
    style = "multi"

    def multi(self, target: Target, concurrency: int) -> MapRunner:
        return MapRunner(self._transport(target, **_ft_pool(concurrency)), target, concurrency)


class MapRunner:
    """A :class:`MultiRunner` on ``ft.Client.map``: the URLs come from a
    generator that stops after ``n`` or at the deadline (``map`` pulls it
    lazily, never more than ``concurrency`` ahead)."""

    def __init__(self, transport: ft.Transport, target: Target, concurrency: int) -> None:
        import fasttransport as ft

        self.client = ft.Client(transport=transport)
        self.url = target.url
        self.concurrency = concurrency

    def run(self, n: int, deadline: float, expect: int) -> tuple[int, int, int, str]:
        clock, url = time.perf_counter, self.url

        def urls() -> Iterator[str]:
            for _ in range(n):
                if clock() > deadline:
                    return
                yield url

        done = errors = bad = 0
        last_error = ""
        for _request, result in self.client.map(urls(), concurrency=self.concurrency):
            done += 1
            if isinstance(result, BaseException):
                errors += 1
                last_error = _error_text(result)
            elif len(result.content) != expect:
                bad += 1
        return done, errors, bad, last_error

    def close(self) -> None:
        self.client.close()
        self.client.transport.close()


class FastTransportAsync(FastTransport):
    """``(await AsyncClient.get(url)).content``; tasks share one AsyncClient."""

    name = "fasttransport-async"
    sharing = "one AsyncClient, N tasks on one event loop"
    style = "async"

    @contextlib.asynccontextmanager
    async def async_session(self, target: Target, concurrency: int) -> AsyncIterator[AsyncFetch]:
        """An async fetch for ``concurrency`` tasks sharing one AsyncClient."""
        import fasttransport as ft

        transport = self._transport(target, **_ft_pool(concurrency))
        try:
            async with ft.AsyncClient(transport=transport) as client:
                get, url = client.get, target.url

                async def fetch() -> bytes:
                    return (await get(url)).content

                yield fetch
        finally:
            transport.close()


# ---------------------------------------------------------------------------
# the standard library


class HttpClient(Adapter):
    """One ``http.client.HTTPConnection``: ``request`` + ``getresponse().read()``."""

    name = "http.client"
    sharing = "one HTTPConnection per thread"

    def version(self) -> str:
        return platform.python_version()

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        import http.client

        parts = urlsplit(target.url)
        if parts.hostname is None:
            raise ValueError(f"no host in {target.url!r}")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, context=target.ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port)
        path = parts.path
        request, getresponse = conn.request, conn.getresponse

        def fetch() -> bytes:
            request("GET", path)
            return getresponse().read()

        return fetch, conn.close

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        return _one_per_thread(self, target)


# ---------------------------------------------------------------------------
# urllib3, requests, httpx


class Urllib3(Adapter):
    """``PoolManager().request("GET", url).data``; one PoolManager for all threads."""

    name = "urllib3"
    sharing = "one PoolManager(maxsize=32) shared by all threads"

    def version(self) -> str:
        from urllib3._version import __version__  # (not re-exported by urllib3's types)

        return __version__

    @staticmethod
    def _pool(target: Target, **kw: Any) -> Any:
        import urllib3

        if target.cafile:
            kw["ca_certs"] = target.cafile
        return urllib3.PoolManager(**kw)

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        pool = self._pool(target)
        request, url = pool.request, target.url

        def fetch() -> bytes:
            body: bytes = request("GET", url).data
            return body

        return fetch, pool.clear

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        pool = self._pool(target, maxsize=threads)
        request, url = pool.request, target.url

        def fetch() -> bytes:
            body: bytes = request("GET", url).data
            return body

        return (lambda: fetch), pool.clear

    def hold(
        self,
        target: Target,
        count: int,
        ready: Callable[[], None],
        held: Callable[[], None],
        deadline: float = math.inf,
    ) -> None:
        pool = self._pool(target, maxsize=count)
        try:
            ready()
            responses = [
                pool.request("GET", target.url, preload_content=False)
                for _ in _until(count, deadline)
            ]
            for response in responses:
                response.read()
                response.release_conn()
            del responses
            held()
        finally:
            pool.clear()


class Requests(Adapter):
    """``Session().get(url).content``; one Session per thread (not documented thread-safe)."""

    name = "requests"
    sharing = "one Session per thread"

    def version(self) -> str:
        from requests.__version__ import __version__  # (not re-exported by requests's types)

        return __version__

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        import requests

        session = requests.Session()
        return self._fetch(session, target), session.close

    @staticmethod
    def _fetch(session: Any, target: Target) -> Fetch:
        """``session.get(url).content``, verifying against the target's CA file."""
        get, url = session.get, target.url
        if target.cafile:
            # Per request: REQUESTS_CA_BUNDLE in the environment overrides Session.verify.
            cafile = target.cafile

            def fetch_verified() -> bytes:
                body: bytes = get(url, verify=cafile).content
                return body

            return fetch_verified

        def fetch() -> bytes:
            body: bytes = get(url).content
            return body

        return fetch

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        return _one_per_thread(self, target)


class Httpx(Adapter):
    """``httpx.Client().get(url).content``; one Client shared by all threads."""

    name = "httpx"
    sharing = "one Client (max_connections=32) shared by all threads"

    def version(self) -> str:
        import httpx

        return httpx.__version__

    @staticmethod
    def _client(target: Target, **kw: Any) -> Any:
        import httpx

        if target.cafile:
            kw["verify"] = target.ssl_context()
        return httpx.Client(**kw)

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        client = self._client(target)
        get, url = client.get, target.url

        def fetch() -> bytes:
            body: bytes = get(url).content
            return body

        return fetch, client.close

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        import httpx

        limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
        client = self._client(target, limits=limits)
        get, url = client.get, target.url

        def fetch() -> bytes:
            body: bytes = get(url).content
            return body

        return (lambda: fetch), client.close

    def hold(
        self,
        target: Target,
        count: int,
        ready: Callable[[], None],
        held: Callable[[], None],
        deadline: float = math.inf,
    ) -> None:
        import httpx

        limits = httpx.Limits(
            max_connections=count, max_keepalive_connections=count, keepalive_expiry=600.0
        )
        client = self._client(target, limits=limits)
        try:
            ready()
            responses = [
                client.send(client.build_request("GET", target.url), stream=True)
                for _ in _until(count, deadline)
            ]
            for response in responses:
                response.read()
                response.close()
            del responses
            held()
        finally:
            client.close()


class HttpxThreads(Httpx):
    """``httpx`` under the fan-out scenarios' name for its thread rows."""

    name = "httpx-threads"
    sharing = "one Client (max_connections=threads) shared by all threads"


class HttpxAsync(Httpx):
    """``(await httpx.AsyncClient().get(url)).content``; tasks share one AsyncClient."""

    name = "httpx-async"
    sharing = "one AsyncClient (max_connections=N), N tasks on one event loop"
    style = "async"

    @staticmethod
    def _async_client(target: Target, conns: int) -> Any:
        import httpx

        kw: dict[str, Any] = {}
        if target.cafile:
            kw["verify"] = target.ssl_context()
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        return httpx.AsyncClient(limits=limits, **kw)

    @contextlib.asynccontextmanager
    async def async_session(self, target: Target, concurrency: int) -> AsyncIterator[AsyncFetch]:
        """An async fetch for ``concurrency`` tasks sharing one AsyncClient."""
        async with self._async_client(target, concurrency) as client:
            get, url = client.get, target.url

            async def fetch() -> bytes:
                body: bytes = (await get(url)).content
                return body

            yield fetch


def _ft_adapter(module: str, attr: str) -> Any:
    """``fasttransport.<module>.<attr>`` (an adapter class), or NotAvailable
    saying why not: the module may still be being written."""
    import importlib

    try:
        found = importlib.import_module(f"fasttransport.{module}")
    except Exception as exc:  # noqa: BLE001 - a module being written may fail in any way
        raise NotAvailable(f"import fasttransport.{module} failed: {_error_text(exc)}") from None
    cls = getattr(found, attr, None)
    if cls is None:
        raise NotAvailable(f"fasttransport.{module} has no {attr}")
    return cls


class HttpxFt(Httpx):
    """``httpx.Client(transport=fasttransport.httpx.HTTPTransport()).get(url).content``."""

    name = "httpx-ft"
    sharing = "one Client over HTTPTransport(max_idle_conns_per_host=threads), all threads"

    def version(self) -> str:
        version = super().version()  # ImportError when httpx itself is missing
        _ft_adapter("httpx", "HTTPTransport")
        return version

    @staticmethod
    def _client(target: Target, **kw: Any) -> Any:
        """httpx.Client over fasttransport; a ``limits`` argument sizes its pool."""
        import httpx

        transport_cls = _ft_adapter("httpx", "HTTPTransport")
        limits = kw.pop("limits", None)
        transport_kw = _ft_pool(limits.max_connections) if limits is not None else {}
        if target.cafile:
            transport_kw["verify"] = target.cafile
        return httpx.Client(transport=transport_cls(**transport_kw), **kw)


class HttpxFtThreads(HttpxFt):
    """``httpx-ft`` under the fan-out scenarios' name for its thread rows."""

    name = "httpx-ft-threads"


class HttpxAsyncFt(HttpxAsync):
    """``httpx.AsyncClient(transport=fasttransport.httpx.AsyncHTTPTransport())``."""

    name = "httpx-async-ft"
    sharing = "one AsyncClient over AsyncHTTPTransport(max_idle_conns_per_host=N), N tasks"

    def version(self) -> str:
        version = super().version()
        _ft_adapter("httpx", "AsyncHTTPTransport")
        return version

    @staticmethod
    def _async_client(target: Target, conns: int) -> Any:
        import httpx

        transport_cls = _ft_adapter("httpx", "AsyncHTTPTransport")
        transport_kw = _ft_pool(conns)
        if target.cafile:
            transport_kw["verify"] = target.cafile
        return httpx.AsyncClient(transport=transport_cls(**transport_kw))


class RequestsThreads(Requests):
    """``requests`` under the fan-out scenarios' name for its thread rows."""

    name = "requests-threads"


class RequestsFt(Requests):
    """``Session().get(url).content`` with ``fasttransport.requests.HTTPAdapter``
    mounted for ``http://`` and ``https://``. Threads each have a Session; one
    adapter (one ft.Transport, one pool) is mounted on all of them."""

    name = "requests-ft"
    sharing = "one Session per thread, one fasttransport HTTPAdapter mounted on all"

    def version(self) -> str:
        version = super().version()
        _ft_adapter("requests", "HTTPAdapter")
        return version

    @staticmethod
    def _session(adapter: Any) -> Any:
        import requests

        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        session = self._session(_ft_adapter("requests", "HTTPAdapter")())
        return self._fetch(session, target), session.close

    def threaded(self, target: Target, threads: int) -> tuple[Callable[[], Fetch], Close]:
        adapter = _ft_adapter("requests", "HTTPAdapter")(**_ft_pool(threads))
        sessions: list[Any] = []

        def per_thread() -> Fetch:
            session = self._session(adapter)
            sessions.append(session)  # list.append is atomic
            return self._fetch(session, target)

        def close_all() -> None:
            for session in sessions:
                session.close()
            adapter.close()

        return per_thread, close_all


class RequestsFtThreads(RequestsFt):
    """``requests-ft`` under the fan-out scenarios' name for its thread rows."""

    name = "requests-ft-threads"


# ---------------------------------------------------------------------------
# aiohttp


class Aiohttp(Adapter):
    """``async with session.get(url) as r: await r.read()``; tasks share one ClientSession."""

    name = "aiohttp"
    sharing = "one ClientSession (TCPConnector(limit=N)), N tasks on one event loop"
    style = "async"

    def version(self) -> str:
        import aiohttp

        version: str = aiohttp.__version__
        return version

    @staticmethod
    def _session(target: Target, limit: int, **kw: Any) -> Any:
        import aiohttp

        ssl_arg: Any = target.ssl_context() if target.cafile else True
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ssl=ssl_arg, **kw)
        return aiohttp.ClientSession(connector=connector)

    @contextlib.asynccontextmanager
    async def async_session(self, target: Target, concurrency: int) -> AsyncIterator[AsyncFetch]:
        """An async fetch for ``concurrency`` tasks sharing one session."""
        session = self._session(target, concurrency)
        get, url = session.get, target.url

        async def fetch() -> bytes:
            async with get(url) as response:
                body: bytes = await response.read()
                return body

        try:
            yield fetch
        finally:
            await session.close()

    def hold(
        self,
        target: Target,
        count: int,
        ready: Callable[[], None],
        held: Callable[[], None],
        deadline: float = math.inf,
    ) -> None:
        import asyncio

        async def run() -> None:
            session = self._session(target, count, keepalive_timeout=600.0)
            try:
                ready()
                # aiohttp hands a connection back as soon as a small body has
                # arrived, so holding responses does not hold connections:
                # start every request at once instead.
                await asyncio.gather(*(self._get(session, target.url) for _ in range(count)))
                held()
            finally:
                await session.close()

        asyncio.run(run())

    @staticmethod
    async def _get(session: Any, url: str) -> bytes:
        async with session.get(url) as response:
            body: bytes = await response.read()
            return body


# ---------------------------------------------------------------------------
# pycurl


class Pycurl(Adapter):
    """One ``Curl`` handle, ``perform()`` into a ``BytesIO``; CurlMulti with 32 handles."""

    name = "pycurl"
    sharing = "one CurlMulti with N easy handles"
    style = "multi"

    def version(self) -> str:
        import pycurl

        version: str = pycurl.version.split()[0]
        return version

    @staticmethod
    def _handle(target: Target) -> Any:
        import pycurl

        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, target.url)
        if target.cafile:
            curl.setopt(pycurl.CAINFO, target.cafile)
        return curl

    def sync(self, target: Target) -> tuple[Fetch, Close]:
        import pycurl

        curl = self._handle(target)
        buf = io.BytesIO()
        curl.setopt(pycurl.WRITEDATA, buf)
        perform, seek, truncate, getvalue = curl.perform, buf.seek, buf.truncate, buf.getvalue

        def fetch() -> bytes:
            seek(0)
            truncate()
            perform()
            return getvalue()

        return fetch, curl.close

    def multi(self, target: Target, concurrency: int) -> CurlMultiRunner:
        return CurlMultiRunner(target, concurrency)


class CurlMultiRunner:
    """``handles`` easy handles driven by one ``CurlMulti`` on one thread.

    ``run(n, deadline, expect)`` performs ``n`` GETs with every handle busy
    until fewer than ``handles`` remain (a handle that finishes starts the next
    request); it stops starting new ones once ``time.perf_counter()`` passes
    ``deadline``. Returns ``(done, errors, bad_bodies, last_error)``.
    The multi handle may keep ``handles`` connections to the host, open and
    cached (``M_MAX_HOST_CONNECTIONS``, ``M_MAXCONNECTS``).
    """

    def __init__(self, target: Target, handles: int) -> None:
        import pycurl

        self._pycurl = pycurl
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, handles)
        self.multi.setopt(pycurl.M_MAXCONNECTS, handles)
        self.handles = []
        for _ in range(handles):
            curl = Pycurl._handle(target)
            buf = io.BytesIO()
            curl.setopt(pycurl.WRITEDATA, buf)
            curl.buf = buf
            self.handles.append(curl)

    def run(self, n: int, deadline: float, expect: int) -> tuple[int, int, int, str]:
        pycurl, multi = self._pycurl, self.multi
        done = errors = bad = 0
        last_error = ""
        remaining = n
        active = 0
        clock = time.perf_counter

        def start(curl: Any) -> None:
            curl.buf.seek(0)
            curl.buf.truncate()
            multi.add_handle(curl)

        for curl in self.handles[: min(n, len(self.handles))]:
            start(curl)
            remaining -= 1
            active += 1
        while active:
            while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                pass
            while True:
                queued, ok, failed = multi.info_read()
                finished = list(ok)
                for curl, errno, message in failed:
                    errors += 1
                    last_error = f"pycurl error {errno}: {message}"
                    finished.append(curl)
                for curl in ok:
                    if len(curl.buf.getvalue()) != expect:
                        bad += 1
                for curl in finished:
                    multi.remove_handle(curl)
                    active -= 1
                    done += 1
                    if remaining > 0 and clock() < deadline:
                        start(curl)
                        remaining -= 1
                        active += 1
                if not queued:
                    break
            if active:
                multi.select(1.0)
        return done, errors, bad, last_error

    def close(self) -> None:
        for curl in self.handles:
            curl.close()
        self.multi.close()


ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        FastTransport(),
        FastTransportRoundTrip(),
        HttpClient(),
        Urllib3(),
        Requests(),
        Httpx(),
        Aiohttp(),
        Pycurl(),
        FastTransportMap(),
        FastTransportAsync(),
        FastTransportThreads(),
        HttpxAsync(),
        HttpxAsyncFt(),
        HttpxThreads(),
        HttpxFt(),
        HttpxFtThreads(),
        RequestsThreads(),
        RequestsFt(),
        RequestsFtThreads(),
    )
}
