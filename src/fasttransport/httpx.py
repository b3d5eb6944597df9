"""httpx transports that send requests through a fasttransport Transport.

    import httpx
    import fasttransport.httpx

    with httpx.Client(transport=fasttransport.httpx.HTTPTransport()) as client:
        r = client.get("https://example.org/")

    async with httpx.AsyncClient(
            transport=fasttransport.httpx.AsyncHTTPTransport()) as client:
        r = await client.get("https://example.org/")

AsyncHTTPTransport runs each exchange on fasttransport's engine (as
ft.AsyncClient does: completions wake the event loop through one eventfd, no
thread per request, no executor); its timeouts are asyncio's: the head must
come within ``connect + read`` seconds (``+ write`` with a body, ``+ pool``
when max_conns_per_host is set) and each body read within ``read`` seconds;
a timed-out or cancelled exchange is aborted and its connection closed. Its
request body is read into memory before it is sent (the engine never runs
Python). The rest of this page describes HTTPTransport; the two map requests,
responses and errors alike.

httpx keeps doing what a Client does (redirects, cookies, auth, default
headers, content decoding, event hooks); each single exchange goes through
``fasttransport.Transport._send`` with ``decode=False``, so the body reaches
httpx exactly as it came on the wire and httpx decodes gzip, deflate, br and
zstd itself (once). ``import fasttransport`` never imports this module: use
``import fasttransport.httpx``.

Requests
    The method, ``str(url)``, the raw header pairs (latin-1) and the body are
    copied into an ``ft.Request``. fasttransport writes Content-Length or
    Transfer-Encoding itself: an in-memory body (``httpx.ByteStream``, or any
    request already read) is sent as bytes with its length; a streamed body
    (a generator, a file, multipart) is pulled chunk by chunk while it is
    sent, with the request's ``Content-Length`` when it declares one and
    chunked otherwise. A streamed body is one-shot: it is never replayed on
    another connection.

Responses
    ``httpx.Response(status, headers=raw pairs, stream=...)`` with the
    extensions ``http_version`` and ``reason_phrase``. Header names arrive in
    Go's canonical form (``content-type`` -> ``Content-Type``); repeated
    fields stay separate pairs. The stream reads the raw body 64 KiB at a
    time; reading it to the end returns the connection to fasttransport's
    pool, closing it early drains a small remainder or closes the connection.

TLS and proxies
    verify, cert and proxy are the Transport's (``HTTPTransport(verify=...)``);
    as for any ft.Transport the proxy defaults to the environment's. httpx's
    own ``proxy=`` and ``mounts=`` send matching requests to other transports.

Timeouts (``request.extensions["timeout"]``: connect, read, write, pool)
    fasttransport has only a total per-exchange deadline, which would also
    bound the body and so cut a long but healthy download short. The timeouts
    are therefore enforced by a watchdog thread (one per HTTPTransport,
    started on the first request that has a timeout) that cancels the
    exchange through a ``CancelToken``:

    - the response head must arrive within ``connect + read`` seconds of the
      start, plus ``write`` with a request body and ``pool`` when the
      Transport limits ``max_conns_per_host``. With ``read=None`` (or
      ``write=None`` and a body) the head has no limit here. A streamed body
      restarts that clock (``write + read``) at each chunk it hands over;
    - each read of the body must return within ``read`` seconds (httpx's
      per-read meaning; time spent between reads is not counted);
    - the Transport's own ``dial_timeout`` (default 30 s),
      ``tls_handshake_timeout`` and ``response_header_timeout`` still apply.

    What is approximated: the head's budget is the sum above, so a silent
    server is detected after ``connect + read`` seconds rather than ``read``
    seconds after the request was written; and when it runs out the phase is
    judged from the Transport's live counts: a request to that host still
    waiting for a connection gives ConnectTimeout (PoolTimeout when
    ``max_conns_per_host`` is reached and nothing is dialing), a streamed
    body not yet fully handed over gives WriteTimeout, anything else
    ReadTimeout. Under concurrent requests to one host the class may be the
    wrong one of these four; the timing never depends on that judgement.
    A cancelled exchange's connection is closed, never pooled.

Errors (``raise ... from`` the fasttransport error)
    =============================  ===============================================
    fasttransport                  httpx
    =============================  ===============================================
    ConnectTimeout                 ConnectTimeout
    ConnectError, TLSError         ConnectError (TLSError while reading: ReadError;
                                   a proxy that cannot be dialled: ProxyError)
    ReadTimeout,                   ReadTimeout
    ResponseHeaderTimeout
    PoolTimeout                    PoolTimeout
    RemoteProtocolError            RemoteProtocolError
    InvalidRequest                 UnsupportedProtocol (scheme), else
                                   LocalProtocolError
    body length mismatch           LocalProtocolError
    a timeout of the watchdog      ConnectTimeout / PoolTimeout / WriteTimeout /
                                   ReadTimeout (see above)
    other TransportError           NetworkError (while reading the body: ReadError)
    =============================  ===============================================

    An exception raised by a streamed request body propagates unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, Iterator, Optional

import httpx

from ._timeouts import _exchange_timer, _Timer, _Upload, _waiting_phase, _Watchdog
from .errors import (
    Cancelled,
    ConnectError,
    ConnectTimeout,
    HTTPError,
    InvalidRequest,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ResponseHeaderTimeout,
    TLSError,
)
from .models import Request, Response, _BodyStream
from .transport import Transport

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

#: Bytes asked of the connection per read of a response body.
READ_SIZE = 65536


# ---- errors -----------------------------------------------------------------


_TIMEOUTS: Dict[str, type] = {
    "connect": httpx.ConnectTimeout,
    "pool": httpx.PoolTimeout,
    "write": httpx.WriteTimeout,
    "read": httpx.ReadTimeout,
}


def _timeout_error(timer: _Timer, request: httpx.Request, in_body: bool) -> httpx.TimeoutException:
    phase = timer.fired or "read"
    if in_body:
        what = f"no body bytes within the read timeout ({timer.seconds:g} s)"
    else:
        what = f"no response head within {timer.seconds:g} s ({phase} phase)"
    return _TIMEOUTS[phase](f'{request.method.capitalize()} "{request.url}": {what}',
                            request=request)


def _map_error(exc: HTTPError, request: httpx.Request, timer: Optional[_Timer],
               in_body: bool) -> Exception:
    """The httpx exception for a fasttransport error (see the module docstring)."""
    msg = str(exc)
    if isinstance(exc, Cancelled) and timer is not None and timer.fired is not None:
        return _timeout_error(timer, request, in_body)
    if isinstance(exc, ConnectTimeout):
        return httpx.ConnectTimeout(msg, request=request)
    if isinstance(exc, (ReadTimeout, ResponseHeaderTimeout)):
        return httpx.ReadTimeout(msg, request=request)
    if isinstance(exc, PoolTimeout):
        return httpx.PoolTimeout(msg, request=request)
    if isinstance(exc, TLSError):
        return (httpx.ReadError if in_body else httpx.ConnectError)(msg, request=request)
    if isinstance(exc, ConnectError):
        if "proxyconnect" in msg:
            return httpx.ProxyError(msg, request=request)
        return httpx.ConnectError(msg, request=request)
    if isinstance(exc, RemoteProtocolError):
        return httpx.RemoteProtocolError(msg, request=request)
    if isinstance(exc, InvalidRequest):
        if "unsupported protocol scheme" in msg:
            return httpx.UnsupportedProtocol(msg, request=request)
        return httpx.LocalProtocolError(msg, request=request)
    if "with Body length" in msg:
        return httpx.LocalProtocolError(msg, request=request)
    if in_body:
        return httpx.ReadError(msg, request=request)
    return httpx.NetworkError(msg, request=request)


# ---- the transport ----------------------------------------------------------




class _ResponseStream(httpx.SyncByteStream):
    """The body of a fasttransport response, raw (as on the wire), for
    httpx; errors become httpx exceptions, close() closes the response."""

    def __init__(self, response: Response, request: httpx.Request,
                 timer: Optional[_Timer], read_timeout: Optional[float]) -> None:
        self._response = response
        self._request = request
        self._timer = timer if read_timeout is not None else None
        self._read_timeout = read_timeout or 0.0

    def __iter__(self) -> Iterator[bytes]:
        response, timer = self._response, self._timer
        while True:
            if timer is not None:
                timer.arm(self._read_timeout, "read")
            try:
                chunk = response.read(READ_SIZE)
            except HTTPError as exc:
                raise _map_error(exc, self._request, self._timer, True) from exc
            finally:
                if timer is not None:
                    timer.disarm()
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._response.close()
        if self._timer is not None:
            self._timer.disarm()


def _head_budget(timeouts: Dict[str, Optional[float]], has_body: bool,
                 pool_limited: bool) -> Optional[float]:
    """Seconds the response head may take (see the module docstring), or None."""
    read = timeouts.get("read")
    if read is None:
        return None
    budget = read + (timeouts.get("connect") or 0.0)
    if has_body:
        write = timeouts.get("write")
        if write is None:
            return None
        budget += write
    if pool_limited:
        budget += timeouts.get("pool") or 0.0
    return budget


class HTTPTransport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` on a fasttransport Transport.

    ``HTTPTransport(**transport_kwargs)`` creates (and close() closes) an
    ``ft.Transport(**transport_kwargs)``; ``HTTPTransport(transport=t)``
    uses an existing one and leaves it open. ``transport`` is the
    ft.Transport (for ``stats()``). Thread-safe, like the Transport.
    The module docstring describes how requests, responses, timeouts and
    errors are mapped."""

    def __init__(self, *, transport: Optional[Transport] = None, **transport_kwargs: Any) -> None:
        if transport is not None and transport_kwargs:
            raise TypeError("pass either transport= or Transport keyword arguments, not both")
        self.transport: Transport = transport if transport is not None else Transport(
            **transport_kwargs)
        self._owns_transport = transport is None
        self._watchdog = _Watchdog("ft-httpx-timeouts")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: Dict[str, Optional[float]] = dict(request.extensions.get("timeout") or {})
        if isinstance(request.stream, httpx.ByteStream):
            body: Any = request.read()          # in memory already (also on redirects)
            streamed = False
        else:
            try:
                body = request.content
                streamed = False
            except httpx.RequestNotRead:
                body = request.stream
                streamed = True
        has_body = streamed or bool(body)
        ft = self.transport
        budget = _head_budget(timeouts, has_body, ft.max_conns_per_host > 0)
        read_timeout = timeouts.get("read")
        timer: Optional[_Timer] = None
        upload = _Upload(body) if streamed else None
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            ft_request = Request(request.method, str(request.url), headers=pairs,
                                 content=None if streamed or not body else body)
        except InvalidRequest as exc:
            raise _map_error(exc, request, None, False) from exc
        if budget is not None or read_timeout is not None:
            timer = _exchange_timer(self._watchdog, ft, ft_request._u.key.decode("ascii"),
                                    upload)
        if upload is not None:
            write = timeouts.get("write")
            if timer is not None and write is not None and read_timeout is not None:
                upload.time_with(timer, write + read_timeout)
            _set_streamed_body(ft_request, upload, _declared_length(request))
        if timer is not None and budget is not None:
            timer.arm(budget, "head")
        try:
            response = ft._send(ft_request, None, timer.token if timer else None, True,
                                decode=False)
        except HTTPError as exc:
            raise _map_error(exc, request, timer, False) from exc
        finally:
            if upload is not None:
                upload.stop_timing()
            if timer is not None:
                timer.disarm()
        reason = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            response.status_code,
            headers=[(k.encode("latin-1"), v.encode("latin-1"))
                     for k, v in response.headers.items()],
            stream=_ResponseStream(response, request, timer, read_timeout),
            extensions={"http_version": response.http_version.encode("ascii"),
                        "reason_phrase": reason},
        )

    def close(self) -> None:
        """Stop the timeout watchdog and close the Transport if this object
        created it (responses still open then fail)."""
        self._watchdog.close()
        if self._owns_transport:
            self.transport.close()


def _declared_length(request: httpx.Request) -> int:
    """The request's Content-Length, or -1 (none, chunked, or not a number)."""
    if "transfer-encoding" in request.headers:
        return -1
    value = request.headers.get("content-length")
    try:
        n = int(value) if value is not None else -1
    except ValueError:
        return -1
    return n if n >= 0 else -1


def _set_streamed_body(ft_request: Request, source: Any, length: int) -> None:
    """Give ft_request a one-shot streamed body: sent with Content-Length
    ``length`` when it is >= 0 (a body that then yields another number of
    bytes fails the exchange), chunked otherwise."""
    chunks = iter(source)
    ft_request.body = _BodyStream(lambda: chunks, length)
    ft_request.chunked = length < 0
    ft_request._one_shot = True


# ---- asyncio ------------------------------------------------------------------


class _AsyncResponseStream(httpx.AsyncByteStream):
    """The raw body of a response of the engine, for httpx.AsyncClient."""

    def __init__(self, response: Response, request: httpx.Request,
                 read_timeout: Optional[float]) -> None:
        self._response = response
        self._request = request
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._response.aiter_raw(READ_SIZE)
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), self._read_timeout)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise httpx.ReadTimeout(
                    f'{self._request.method.capitalize()} "{self._request.url}": no body bytes '
                    f"within the read timeout ({self._read_timeout:g} s)",
                    request=self._request) from None
            except HTTPError as exc:
                raise _map_error(exc, self._request, None, True) from exc
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class AsyncHTTPTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` on a fasttransport Transport (the
    module docstring says how it maps requests, timeouts and errors).
    ``AsyncHTTPTransport(**transport_kwargs)`` creates (and aclose() closes)
    an ``ft.Transport``; ``transport=`` uses an existing one."""

    def __init__(self, *, transport: Optional[Transport] = None,
                 **transport_kwargs: Any) -> None:
        if transport is not None and transport_kwargs:
            raise TypeError("pass either transport= or Transport keyword arguments, not both")
        from .aio import AsyncClient
        self.transport: Transport = transport if transport is not None else Transport(
            **transport_kwargs)
        self._owns_transport = transport is None
        # the engine-run exchanges and their eventfd; httpx keeps redirects
        # and cookies, so the inner client has neither
        self._client = AsyncClient(transport=self.transport, follow_redirects=False,
                                   cookies=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: Dict[str, Optional[float]] = dict(request.extensions.get("timeout") or {})
        body = await request.aread()
        ft = self.transport
        budget = _head_budget(timeouts, bool(body), ft.max_conns_per_host > 0)
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            ft_request = Request(request.method, str(request.url), headers=pairs,
                                 content=body or None)
        except InvalidRequest as exc:
            raise _map_error(exc, request, None, False) from exc
        try:
            response = await asyncio.wait_for(
                self._client._hop(ft_request, None, None, True, decode=False), budget)
        except asyncio.TimeoutError:
            phase = _waiting_phase(ft, ft_request._u.key.decode("ascii")) or "read"
            raise _TIMEOUTS[phase](
                f'{request.method.capitalize()} "{request.url}": no response head within '
                f"{budget:g} s ({phase} phase)", request=request) from None
        except HTTPError as exc:
            raise _map_error(exc, request, None, False) from exc
        return httpx.Response(
            response.status_code,
            headers=[(k.encode("latin-1"), v.encode("latin-1"))
                     for k, v in response.headers.items()],
            stream=_AsyncResponseStream(response, request, timeouts.get("read")),
            extensions={"http_version": response.http_version.encode("ascii"),
                        "reason_phrase": response.reason.encode("latin-1", "replace")},
        )

    async def aclose(self) -> None:
        """Close the Transport if this object created it (requests in flight
        then fail)."""
        if self._owns_transport:
            self.transport.close()
        await self._client.aclose()
