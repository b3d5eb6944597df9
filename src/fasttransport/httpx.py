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
thread per request, no executor); its request body is read into memory
before it is sent (the engine never runs Python). Requests, responses,
timeouts and errors are mapped alike by both transports.

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
    The dict is handed as it is to the ft.Request (its
    ``extensions["timeout"]``, the form ``ft.Timeout`` uses), and
    fasttransport's native loops enforce each part on the exchange itself,
    blocking or engine-run alike: no timer thread, no cancelled exchanges.

    - connect: looking the host up and dialling a new connection (TLS and a
      proxy's CONNECT included, as httpcore counts the handshake) ->
      ConnectTimeout. A pooled connection costs none;
    - pool: waiting for a free slot under the Transport's
      ``max_conns_per_host`` (httpx's ``max_connections``) -> PoolTimeout;
    - write: nothing could be sent for that long while the request has bytes
      ready to send -> WriteTimeout;
    - read: nothing received for that long once the request has nothing more
      to send: waiting for the head, and between body bytes -> ReadTimeout;
    - the Transport's own ``dial_timeout`` (default 30 s),
      ``tls_handshake_timeout`` and ``response_header_timeout`` still apply.

    What differs from httpx, whose transport times each socket operation:
    read and write measure how long the exchange has made no progress, from
    the last byte that moved or the start of the current read call,
    whichever is later; a read call that waits in several slices is one
    read. While a streamed request body's generator produces its next
    piece, no part runs (httpx counts that time nowhere either).
    AsyncHTTPTransport's engine reads the body ahead of the consumer (up to
    256 KiB); the read part does not run while that buffer is full, and a
    timeout met while filling it is raised when the consumer reaches it. The connection of an
    exchange that timed out is closed, never pooled.

Errors (``raise ... from`` the fasttransport error)
    =============================  ===============================================
    fasttransport                  httpx
    =============================  ===============================================
    ConnectTimeout                 ConnectTimeout
    PoolTimeout                    PoolTimeout
    WriteTimeout                   WriteTimeout
    ConnectError, TLSError         ConnectError (TLSError while reading: ReadError;
                                   a proxy that cannot be dialled: ProxyError)
    ReadTimeout,                   ReadTimeout
    ResponseHeaderTimeout
    RemoteProtocolError            RemoteProtocolError
    InvalidRequest                 UnsupportedProtocol (scheme), else
                                   LocalProtocolError
    body length mismatch           LocalProtocolError
    other TransportError           NetworkError (while reading the body: ReadError)
    =============================  ===============================================

    An exception raised by a streamed request body propagates unchanged.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator, Optional, Tuple, Type, Union

import httpx

from .errors import (
    ConnectError,
    ConnectTimeout,
    HTTPError,
    InvalidRequest,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ResponseHeaderTimeout,
    TLSError,
    WriteTimeout,
)
from .models import Request, Response
from .transport import Transport

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

#: Bytes asked of the connection per read of a response body.
READ_SIZE = 65536


# ---- errors -----------------------------------------------------------------


#: fasttransport's timeouts and the httpx exception each becomes.
_TIMEOUTS: Tuple[Tuple[Type[HTTPError], Type[httpx.TimeoutException]], ...] = (
    (ConnectTimeout, httpx.ConnectTimeout),
    (PoolTimeout, httpx.PoolTimeout),
    (WriteTimeout, httpx.WriteTimeout),
    (ReadTimeout, httpx.ReadTimeout),
    (ResponseHeaderTimeout, httpx.ReadTimeout),
)


def _map_error(exc: HTTPError, request: httpx.Request, in_body: bool) -> Exception:
    """The httpx exception for a fasttransport error (see the module docstring)."""
    msg = str(exc)
    for ours, theirs in _TIMEOUTS:
        if isinstance(exc, ours):
            return theirs(msg, request=request)
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


# ---- requests and responses ---------------------------------------------------


def _ft_request(request: httpx.Request, body: Any, streamed: bool) -> Request:
    """The ft.Request for an httpx request: its method, URL, raw headers,
    body (bytes, or a one-shot stream: with the declared Content-Length, else
    chunked) and ``extensions["timeout"]``."""
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    try:
        ft_request = Request(request.method, str(request.url), headers=pairs,
                             content=iter(body) if streamed else body or None)
    except InvalidRequest as exc:
        raise _map_error(exc, request, False) from exc
    if streamed:
        ft_request._declare_length(_declared_length(request))
    timeout = request.extensions.get("timeout")
    if timeout:
        ft_request.extensions["timeout"] = timeout
    return ft_request


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


def _httpx_response(response: Response,
                    stream: Union[httpx.SyncByteStream, httpx.AsyncByteStream]) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=[(k.encode("latin-1"), v.encode("latin-1"))
                 for k, v in response.headers.items()],
        stream=stream,
        extensions={"http_version": response.http_version.encode("ascii"),
                    "reason_phrase": response.reason.encode("latin-1", "replace")},
    )


# ---- the transport ----------------------------------------------------------


class _ResponseStream(httpx.SyncByteStream):
    """The body of a fasttransport response, raw (as on the wire), for
    httpx; errors become httpx exceptions, close() closes the response."""

    def __init__(self, response: Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        read = self._response.read
        while True:
            try:
                chunk = read(READ_SIZE)
            except HTTPError as exc:
                raise _map_error(exc, self._request, True) from exc
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._response.close()


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

    def handle_request(self, request: httpx.Request) -> httpx.Response:
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
        ft_request = _ft_request(request, body, streamed)
        try:
            response = self.transport._send(ft_request, None, None, True, decode=False)
        except HTTPError as exc:
            raise _map_error(exc, request, False) from exc
        return _httpx_response(response, _ResponseStream(response, request))

    def close(self) -> None:
        """Close the Transport if this object created it (responses still
        open then fail)."""
        if self._owns_transport:
            self.transport.close()


# ---- asyncio ------------------------------------------------------------------


class _AsyncResponseStream(httpx.AsyncByteStream):
    """The raw body of a response of the engine, for httpx.AsyncClient."""

    def __init__(self, response: Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._response.aiter_raw(READ_SIZE)
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except HTTPError as exc:
                raise _map_error(exc, self._request, True) from exc
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
        ft_request = _ft_request(request, await request.aread(), False)
        try:
            response = await self._client._hop(ft_request, None, None, True, decode=False)
        except HTTPError as exc:
            raise _map_error(exc, request, False) from exc
        return _httpx_response(response, _AsyncResponseStream(response, request))

    async def aclose(self) -> None:
        """Close the Transport if this object created it (requests in flight
        then fail)."""
        if self._owns_transport:
            self.transport.close()
        await self._client.aclose()
