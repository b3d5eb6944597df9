"""asyncio: ``ft.AsyncClient``, the Client surface with async methods.

The engine runs every exchange (core.h, engine-run exchanges), as for the
batch API; completions reach the event loop through one eventfd per
AsyncClient registered with ``loop.add_reader``: no thread-pool executor,
no thread per request, and one wake-up of the loop serves every exchange
reported since the last. Works with asyncio's default loop and with uvloop.

A streamed body (``client.stream(...)``) is read ahead by the engine into a
bounded buffer (``read_ahead`` bytes, 256 KiB by default); ``aiter_bytes()``
and friends take from it, and the engine stops reading while it is full: a
slow consumer holds back the server (TCP flow control), never memory.

Cancelling the task that awaits (``task.cancel()``, ``asyncio.timeout``)
aborts the exchange and closes its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Mapping, Optional, Tuple

from . import _core
from ._core import CancelToken, Exchange
from .batch import _cancelled, _Orphan, dispatch
from .client import _UNSET, Client, CookieJarLike
from .errors import BodyTooLarge, ConnectError, ConnectTimeout, HTTPError
from .headers import Headers, HeaderTypes
from .models import _REDIRECTS, Request, Response, _Rechunk
from .options import TimeoutTypes
from .transport import Transport, _should_retry

_READ_AHEAD = 256 << 10
_PREALLOC = 64 << 20
_CHUNK = 65536


class _Waiter:
    """The owner of an exchange while a task awaits its next report."""

    __slots__ = ("fut",)

    def __init__(self, fut: asyncio.Future[None]) -> None:
        self.fut = fut

    def _report(self, x: Exchange) -> None:
        if not self.fut.done():
            self.fut.set_result(None)


class AsyncClient:
    """``async with ft.AsyncClient(**client_kwargs) as client:`` — takes the
    same arguments as ft.Client (transport, timeout, follow_redirects,
    max_redirects, cookies, headers, auth) plus ``read_ahead``: the most a
    streamed body's engine buffers before the consumer takes it.

    ``await client.get(url)`` (and request/head/post/put/patch/delete/
    options) returns a Response read completely; ``async with
    client.stream(method, url) as r:`` a streamed one, read with
    ``r.aiter_bytes()``, ``r.aiter_lines()``, ``r.aiter_raw()``,
    ``r.aread()`` and closed with ``r.aclose()``. Redirects, cookies,
    retries and errors are the Client's. Use one AsyncClient from one event
    loop at a time."""

    def __init__(self, *, read_ahead: int = _READ_AHEAD, **kw: Any) -> None:
        if read_ahead < 1:
            raise ValueError("read_ahead must be >= 1")
        self._c = Client(**kw)
        self._cq = _core.CompletionQueue()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._read_ahead = read_ahead
        self._closed = False

    # ---- the client's parts, shared with the blocking Client --------------------

    @property
    def transport(self) -> Transport:
        return self._c.transport

    @property
    def cookies(self) -> Optional[CookieJarLike]:
        return self._c.cookies

    @property
    def headers(self) -> Headers:
        return self._c.headers

    # ---- the event loop ------------------------------------------------------------

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._cq.generation != _core.fork_generation():
            # a forked child: the parent's queue and loop are not ours
            self._cq = _core.CompletionQueue()
            self._loop = None
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._cq.fileno())
            loop.add_reader(self._cq.fileno(), self._on_ready)
            self._loop = loop
        return loop

    def _on_ready(self) -> None:
        self._cq.clear()      # first: a report after this writes the fd again
        dispatch(self._cq)

    async def _next_report(self, x: Exchange) -> None:
        """Until x's next report. A cancelled task aborts the exchange (its
        connection is closed) and its later reports are dropped."""
        fut = self._attach().create_future()
        x.owner = _Waiter(fut)
        try:
            await fut
        except asyncio.CancelledError:
            x.owner = _Orphan
            x.abort("context canceled")
            raise

    async def _read_chunk(self, x: Exchange, n: int) -> bytes:
        """Up to n raw body bytes the engine read ahead; b"" at EOF."""
        while True:
            data = x.take_ahead(n)
            if data is not None:
                return data
            await self._next_report(x)

    # ---- requests --------------------------------------------------------------------

    async def request(self, method: str, url: str, *, params: Any = None,
                      headers: HeaderTypes = None, content: Any = None, data: Any = None,
                      files: Any = None, json: Any = None,
                      auth: Optional[Tuple[Any, Any]] = _UNSET,
                      timeout: TimeoutTypes = _UNSET, follow_redirects: Optional[bool] = None,
                      stream: bool = False, cancel: Optional[CancelToken] = None,
                      max_body_size: Optional[int] = None,
                      cookies: Optional[Mapping[str, str]] = None) -> Response:
        """As Client.request; the body is read before it returns unless
        ``stream=True`` (prefer ``stream()``, which closes it). A request
        body must be bytes, str, form data, JSON or a plain binary file."""
        if self._closed:
            raise RuntimeError("the AsyncClient is closed")
        c = self._c
        req, deadline = c._new_request(method, url, params, headers, content, data, files,
                                       json, auth, timeout, max_body_size, cookies)
        follow = c.follow_redirects if follow_redirects is None else follow_redirects
        orig_headers = req.headers
        resp = await self._hop(req, deadline, cancel, stream)
        if resp.status_code in _REDIRECTS and follow:
            steps = c._redirects(req, orig_headers, resp)
            try:
                nxt = next(steps)
                while True:
                    nxt = steps.send(await self._hop(nxt, deadline, cancel, stream))
            except StopIteration as done:
                resp = done.value
            finally:
                steps.close()
        if not stream:
            try:
                _ = resp.content     # decoded here; the bytes are in memory already
            except BaseException:
                resp.close()
                raise
        return resp

    async def _hop(self, req: Request, deadline: Optional[int], cancel: Optional[CancelToken],
                   stream: bool, decode: bool = True) -> Response:
        """One hop, sent again as the client's Retry says (Client._send_one)."""
        c = self._c
        if c.retries is None:
            return await self._hop_once(req, deadline, cancel, stream, decode)
        headers = req.headers
        done = 0
        while True:
            try:
                resp = await self._hop_once(req, deadline, cancel, stream, decode)
            except (ConnectError, ConnectTimeout) as err:
                wait = c._retry_wait(req, done, deadline, err=err)
                if wait is None:
                    raise
            else:
                wait = c._retry_wait(req, done, deadline, resp=resp)
                if wait is None:
                    resp.retries = done
                    return resp
                await resp.aclose()
            await asyncio.sleep(wait)
            if cancel is not None and cancel.cancelled:
                raise _cancelled(req)
            done += 1
            req.headers = headers        # the jar's cookies are added again

    async def _hop_once(self, req: Request, deadline: Optional[int],
                        cancel: Optional[CancelToken],
                        stream: bool, decode: bool = True) -> Response:
        """One exchange, retried on another connection where Go would;
        ``decode=False``: the body as it came on the wire."""
        c = self._c
        tr = c.transport
        self._attach()
        c._before_hop(req)
        plan = tr._plan(req)
        mode, limit = ((_core.JOB_AHEAD, self._read_ahead) if stream
                       else (_core.JOB_FULL, _PREALLOC))
        while True:
            t0 = time.perf_counter()
            x = tr._submit(req, plan, deadline, cancel, self._cq, mode, limit)
            while not x.head_ready and x.in_flight:
                await self._next_report(x)
            err = None if x.in_flight else x.error()
            if err is not None and not (stream and x.head_ready):
                if isinstance(err, HTTPError) and _should_retry(x, req, err):
                    continue
                raise tr._hop_error(err, plan) from None
            resp = Response(x, req, plan.gzip, time.perf_counter() - t0, stream, tr, decode)
            resp._aio = self
            return c._after_hop(req, resp)

    async def get(self, url: str, **kw: Any) -> Response:
        return await self.request("GET", url, **kw)

    async def head(self, url: str, **kw: Any) -> Response:
        return await self.request("HEAD", url, **kw)

    async def post(self, url: str, **kw: Any) -> Response:
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> Response:
        return await self.request("PUT", url, **kw)

    async def patch(self, url: str, **kw: Any) -> Response:
        return await self.request("PATCH", url, **kw)

    async def delete(self, url: str, **kw: Any) -> Response:
        return await self.request("DELETE", url, **kw)

    async def options(self, url: str, **kw: Any) -> Response:
        return await self.request("OPTIONS", url, **kw)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, **kw: Any) -> AsyncIterator[Response]:
        """``async with client.stream("GET", url) as r:`` — a streamed
        response, closed on exit."""
        kw["stream"] = True
        resp = await self.request(method, url, **kw)
        try:
            yield resp
        finally:
            await resp.aclose()

    # ---- life --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the transport if this client created it; requests in
        flight then fail with TransportError."""
        if self._closed:
            return
        self._closed = True
        self._c.close()
        self._on_ready()    # the engines reported every request they ran
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._cq.fileno())
        self._loop = None
        self._cq.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


async def aread_all(resp: Response) -> bytes:
    """Response.aread: the rest of the body, decoded."""
    return b"".join([chunk async for chunk in aiter_body(resp, None, decode=True)])


async def aiter_body(resp: Response, chunk_size: Optional[int], *,
                     decode: bool) -> AsyncIterator[bytes]:
    """The body in pieces of chunk_size (None: as they come), decoded or raw."""
    if resp._content is not None:
        for piece in _Rechunk.whole(resp._content, chunk_size):
            yield piece
        return
    aio: Optional[AsyncClient] = resp._aio
    if aio is None:
        raise RuntimeError("async body reads need a response from ft.AsyncClient")
    dec = resp._decoder if decode else None
    pieces = _Rechunk(chunk_size)
    while True:
        if dec is None:
            data = await aio._read_chunk(resp._x, chunk_size or _CHUNK)
            if not data:
                break
        else:
            # bounded by what is asked, whatever the compression ratio
            try:
                data = dec._counted(dec.pull(chunk_size or _CHUNK))
            except BodyTooLarge:
                resp._closed = True
                resp._x.close()      # the engine closes it: the rest is never read
                raise
            if not data:
                raw = await aio._read_chunk(resp._x, _CHUNK)
                if not raw:
                    dec.finish()
                    break
                dec.push(raw)
                continue
        for piece in pieces.feed(data):
            yield piece
    for piece in pieces.feed(b"", final=True):
        yield piece
    resp._closed = True

