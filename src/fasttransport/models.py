"""Request and Response (Headers are in headers.py, URLs in _urls.py,
request bodies in _bodies.py, response decoding in _decoding.py).

A Response wraps a native exchange (``_core.Exchange``): its head is parsed
in C and its headers become Python objects only on first access; its body is
read on the caller's thread with the GIL released, straight from the
connection's buffer.
"""

from __future__ import annotations

import codecs
import datetime
import io
import json as _json
import threading
import warnings
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Dict,
    Iterator,
    List,
    Optional,
)

from . import _core
from ._bodies import RequestBody, _BodyStream, _encode_body
from ._decoding import _Decoder, _pick_decoder
from ._urls import _merge_params, _parse_url
from .errors import BodyTooLarge, HTTPStatusError, InvalidRequest
from .headers import Headers, HeaderTypes, _check_headers

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .transport import Transport

__all__ = ["Headers", "Request", "Response", "ResponseBody"]

#: The redirect statuses a client follows (with a Location).
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


class Request:
    """An HTTP request. Building one validates it: a bad URL, a scheme other
    than http/https, a method or header name that is not a token, or CR, LF or
    NUL in a header value raises InvalidRequest before anything is sent.

    The body (``content``, ``data``, ``json`` or ``files``; see
    ``_encode_body``) is bytes for in-memory sources; iterables and files are
    streamed by the write loop as it sends them. A body that came from an
    iterator or a file that cannot seek is one-shot: a 307/308 redirect that
    would have to send it again raises UnrewindableBodyError, and a failed
    attempt is never retried on another connection (the error stands, as in
    Go for a body without GetBody)."""

    __slots__ = ("_method", "_url", "_headers", "body", "chunked", "_u", "_one_shot",
                 "extensions", "max_body_size")

    #: What is sent: bytes, a stream pulled while it is sent, or None.
    body: RequestBody
    #: The body is sent with the chunked coding (its length is unknown).
    chunked: bool
    extensions: Dict[str, Any]
    max_body_size: Optional[int]

    def __init__(self, method: str, url: str, *, headers: HeaderTypes = None,
                 content: Any = None, data: Any = None, json: Any = None,
                 files: Any = None, params: Any = None,
                 max_body_size: Optional[int] = None) -> None:
        # the setters' checks, inline (this is on every request's path)
        if not isinstance(method, str) or not _core.is_token(method):
            raise InvalidRequest(f'net/http: invalid method "{method}"', method=str(method),
                                 url=str(url))
        url = _merge_params(str(url), params) if params else str(url)
        try:
            self._u = _parse_url(url)
        except InvalidRequest as e:
            e.method = method
            msg = str(e)
            if not msg.startswith("parse "):   # url.Parse's own form stays (Go)
                e.args = (f'{method.capitalize()} "{e.url}": {msg}',)
            raise
        self._method = method
        self._url = url
        self._headers = headers if isinstance(headers, Headers) else Headers(headers)
        if self._headers._list:
            try:
                _check_headers(self._headers._list)
            except InvalidRequest as e:
                e.method, e.url = method, self._u.redacted
                e.args = (f'{method.capitalize()} "{self._u.redacted}": {e}',)
                raise
        if content is None and data is None and json is None and not files:
            self.body, self.chunked, self._one_shot = None, False, False
        else:
            if self._headers is headers:
                self._headers = Headers(headers)   # a Content-Type may be added
            try:
                self.body, self.chunked, self._one_shot = _encode_body(
                    content, data, json, files, self._headers)
            except InvalidRequest as e:
                e.method, e.url = method, self._u.redacted
                e.args = (f'{method.capitalize()} "{self._u.redacted}": {e}',)
                raise
        self.extensions = {}
        #: Most bytes of response body (after decoding) this request accepts;
        #: None: the Transport's max_body_size.
        self.max_body_size = max_body_size

    # Validated when set, so that nothing a change after construction can
    # produce reaches the wire unchecked (Headers checks its own additions).

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, method: str) -> None:
        if not isinstance(method, str) or not _core.is_token(method):
            u = getattr(self, "_u", None)
            raise InvalidRequest(f'net/http: invalid method "{method}"', method=str(method),
                                 url=u.redacted if u is not None else None)
        self._method = method

    @property
    def url(self) -> str:
        return self._url

    @url.setter
    def url(self, url: str) -> None:
        url = str(url)
        self._u = _parse_url(url)
        self._url = url

    @property
    def headers(self) -> Headers:
        return self._headers

    @headers.setter
    def headers(self, headers: HeaderTypes) -> None:
        h = headers if isinstance(headers, Headers) else Headers(headers)
        _check_headers(h._list)
        self._headers = h

    def _declare_length(self, length: int) -> None:
        """A streamed body's length as the caller declared it (an adapter's
        Content-Length; -1: none): sent with it rather than chunked."""
        body = self.body
        if length >= 0 and isinstance(body, _BodyStream):
            body.length = length
            self.chunked = False

    def _as_sent(self, head: bytes) -> "Request":
        """A copy whose headers are those of ``head``, the request head as
        sent (the request itself when there is none)."""
        if not head:
            return self
        sent = Request.__new__(Request)
        for name in Request.__slots__:
            setattr(sent, name, getattr(self, name))
        lines = head.decode("latin-1").split("\r\n")[1:]
        sent._headers = Headers._from_pairs(
            [(k, v) for k, _, v in (line.partition(": ") for line in lines if line)])
        return sent

    def __repr__(self) -> str:
        return f"<Request [{self.method} {self._u.redacted}]>"


class _Rechunk:
    """Cuts a body into pieces of chunk_size as its bytes come (None: as
    they come, empty ones dropped); the last piece may be shorter."""

    __slots__ = ("_size", "_pending")

    def __init__(self, chunk_size: Optional[int]) -> None:
        self._size = chunk_size
        self._pending = b""

    def feed(self, data: bytes, final: bool = False) -> List[bytes]:
        size = self._size
        if size is None:
            return [data] if data else []
        pending = self._pending + data if self._pending else data
        out = [pending[i:i + size] for i in range(0, len(pending) - size + 1, size)]
        pending = pending[len(out) * size:]
        if final and pending:
            out.append(pending)
            pending = b""
        self._pending = pending
        return out

    @staticmethod
    def whole(content: bytes, chunk_size: Optional[int]) -> List[bytes]:
        """A body already in memory, in pieces."""
        step = chunk_size or len(content) or 1
        return [content[i:i + step] for i in range(0, len(content), step)]


class _Lines:
    """Splits a body into text lines as its bytes come (any of \\n, \\r\\n,
    \\r ends a line; the last line may lack one)."""

    __slots__ = ("_decoder", "_pending")

    def __init__(self, encoding: Optional[str]) -> None:
        try:
            make = codecs.getincrementaldecoder(encoding or "utf-8")
        except LookupError:                  # as Response.text: UTF-8 then
            make = codecs.getincrementaldecoder("utf-8")
        self._decoder = make(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes, final: bool = False) -> List[str]:
        text = self._pending + self._decoder.decode(chunk, final=final)
        lines = text.splitlines(keepends=True)
        self._pending = ""
        if lines and not final and not lines[-1].endswith(("\n", "\r")):
            self._pending = lines.pop()
        return [line.rstrip("\r\n") for line in lines]


class Response:
    """An HTTP response. The body is read
    with read()/content/iter_bytes() or through the ``body`` file object;
    reading it to EOF returns the connection to the pool, close() before EOF
    drains a small remainder or closes the connection."""

    __slots__ = ("status_code", "reason", "http_version", "_request", "_sent", "url", "history",
                 "_x", "_headers", "_trailers", "_content", "_closed", "_stream",
                 "_decoder", "_elapsed", "_body", "_transport", "_rlock", "_aio",
                 "_encoding", "retries", "__weakref__")

    # positional at the three places that make one (a keyword call of a
    # class builds a dict each time)
    def __init__(self, x: _core.Exchange, request: Request, gzip: bool, elapsed: float,
                 stream: bool, transport: Optional[Transport] = None,
                 decode: bool = True) -> None:
        self._x = x
        self.status_code: int = x.status
        self.reason: str = x.reason
        self.http_version: str = x.http_version
        self._request = request
        self._sent: Optional[Request] = None
        self.url: str = request.url
        self.history: List[Response] = []
        self._headers: Optional[Headers] = None
        self._trailers: Optional[Headers] = None
        self._content: Optional[bytes] = None
        self._closed = False
        self._stream = stream
        self._elapsed = elapsed
        self._body: Optional[ResponseBody] = None
        self._transport = transport
        self._aio: Optional[AsyncClient] = None   # the AsyncClient whose engine reads it ahead
        self._encoding: Optional[str] = None
        #: How many times the client's Retry sent this hop again.
        self.retries = 0
        self._decoder: Optional[_Decoder] = None
        if (decode and x.has_body and x.content_length != 0
                and x.has_header(b"content-encoding")):
            headers = self.headers
            dec = _pick_decoder(x, headers, request, gzip)
            if dec is not None:
                limit = request.max_body_size
                if limit is None and transport is not None:
                    limit = transport.max_body_size
                dec.max_size = limit or 0
                self._decoder = dec
                # decoded bytes are handed out in Python: one reader at a time
                self._rlock = threading.Lock()
                del headers["Content-Encoding"]
                if "Content-Length" in headers:
                    del headers["Content-Length"]

    # ---- head ---------------------------------------------------------

    @property
    def request(self) -> Request:
        """The request this response answers, as it was sent: its headers
        are the head that went on the wire (Host, User-Agent,
        Content-Length, Accept-Encoding, cookies from the jar, ...)."""
        sent = self._sent
        if sent is None:
            sent = self._sent = self._request._as_sent(self._x.sent_head)
        return sent

    @request.setter
    def request(self, request: Request) -> None:
        self._request = request
        self._sent = request

    @property
    def headers(self) -> Headers:
        h = self._headers
        if h is None:
            h = self._headers = Headers._from_pairs(self._x.header_pairs())
        return h

    @property
    def trailers(self) -> Headers:
        t = self._trailers
        if t is None:
            if not self._x.at_eof:
                return Headers()
            t = self._trailers = Headers._from_pairs(self._x.trailer_pairs())
        return t

    @property
    def content_length(self) -> int:
        """Go's ContentLength: -1 when unknown (chunked, close-delimited,
        transparently decompressed)."""
        return -1 if self._decoder is not None else self._x.content_length

    @property
    def elapsed(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self._elapsed)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "location" in self.headers

    def raise_for_status(self) -> "Response":
        if self.status_code >= 400:
            kind = "Client error" if self.status_code < 500 else "Server error"
            raise HTTPStatusError(
                f"{kind} '{self.status_code} {self.reason}' for url '{self._x.url}'",
                response=self, method=self._request.method, url=self._x.url)
        return self

    # ---- body ---------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes of the (decoded) body; n < 0: the rest. The
        connection is pooled at EOF."""
        if self._content is not None:
            return b""
        dec = self._decoder
        if dec is None:
            return self._x.read(n)
        if not self._rlock.acquire(blocking=False):
            raise RuntimeError("response body read from two threads at once")
        try:
            return dec.read(self._x, n)
        except BodyTooLarge:
            self._closed = True
            self._x.abort("body too large")    # the rest is never read: not pooled
            raise
        finally:
            self._rlock.release()

    @property
    def content(self) -> bytes:
        c = self._content
        if c is None:
            c = self._content = self.read()
            self._closed = True
        return c

    @property
    def text(self) -> str:
        """The body decoded with ``encoding``; an encoding Python does not
        know (a server's typo) falls back to UTF-8, bytes that do not decode
        become U+FFFD: text never raises for what a server sent."""
        enc = self.encoding or "utf-8"
        try:
            return self.content.decode(enc, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    @property
    def encoding(self) -> Optional[str]:
        """The charset of Content-Type, or None; settable (as in requests
        and httpx) to decode ``text`` and ``iter_lines`` otherwise."""
        if self._encoding is not None:
            return self._encoding
        ctype = self.headers.get("Content-Type", "")
        for part in ctype.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                return v.strip("\"'")
        return None

    @encoding.setter
    def encoding(self, value: Optional[str]) -> None:
        self._encoding = value

    def json(self, **kw: Any) -> Any:
        return _json.loads(self.content, **kw)

    def iter_bytes(self, chunk_size: Optional[int] = None) -> Iterator[bytes]:
        if self._content is not None:
            yield from _Rechunk.whole(self._content, chunk_size)
            return
        pieces = _Rechunk(chunk_size)
        while True:
            data = self.read(chunk_size or 65536)
            if not data:
                break
            yield from pieces.feed(data)
        yield from pieces.feed(b"", final=True)
        self._closed = True

    def iter_lines(self) -> Iterator[str]:
        lines = _Lines(self.encoding)
        for chunk in self.iter_bytes():
            yield from lines.feed(chunk)
        yield from lines.feed(b"", final=True)

    # ---- asyncio (a response of ft.AsyncClient) ------------------------------

    async def aread(self) -> bytes:
        """The rest of the body, decoded (kept as ``content``)."""
        if self._content is None:
            from .aio import aread_all
            self._content = await aread_all(self)
            self._closed = True
        return self._content

    def aiter_bytes(self, chunk_size: Optional[int] = None) -> AsyncIterator[bytes]:
        """The decoded body in pieces (chunk_size, or as they come)."""
        from .aio import aiter_body
        return aiter_body(self, chunk_size, decode=True)

    def aiter_raw(self, chunk_size: Optional[int] = None) -> AsyncIterator[bytes]:
        """The body as it came on the wire (no content decoding)."""
        from .aio import aiter_body
        return aiter_body(self, chunk_size, decode=False)

    async def aiter_lines(self) -> AsyncIterator[str]:
        lines = _Lines(self.encoding)
        async for chunk in self.aiter_bytes():
            for line in lines.feed(chunk):
                yield line
        for line in lines.feed(b"", final=True):
            yield line

    async def aclose(self) -> None:
        """close(), for async code (it never blocks: the engine drains or
        closes the connection)."""
        self.close()

    @property
    def body(self) -> "ResponseBody":
        b = self._body
        if b is None:
            b = self._body = ResponseBody(self)
        return b

    def close(self) -> None:
        """Done with the body. Before EOF: a remainder of known size up to
        drain_limit is drained (for at most 50 ms) and the connection pooled,
        anything else closes it. Idempotent. Safe from any thread: a read
        blocked in another thread is woken and raises RemoteProtocolError
        ("read on closed response body"); that thread releases the
        connection."""
        if not self._closed:
            self._closed = True
            self._x.close()
        if self._decoder is not None and self._content is None:
            self._decoder.close()

    @property
    def is_closed(self) -> bool:
        return self._closed or self._x.at_eof

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        x = getattr(self, "_x", None)
        if x is None or self._closed:
            return
        if not x.at_eof and x.has_body:
            warnings.warn(
                f"unclosed response body: {self._request.method} {x.url} was neither read "
                "to EOF nor closed; closing it", ResourceWarning, stacklevel=1)
        self._closed = True
        x.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason}]>"


class ResponseBody(io.RawIOBase):
    """The response body as a readable binary file object.

    After ``101 Switching Protocols`` (with ``Upgrade`` and ``Connection:
    upgrade``) it is the connection itself, both ways, as in Go: ``read()``
    returns what the server sends (bytes that came with the response head
    first), ``write()`` sends, ``close()`` closes the connection. The
    connection has left the transport's pool for good. One thread at a time
    may use it."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self._r = response

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return bool(self._r._x.upgraded)

    def write(self, b: Any) -> int:
        if self.closed:
            raise ValueError("write to closed file")
        if not self._r._x.upgraded:
            raise io.UnsupportedOperation("write: only the body of a 101 Switching Protocols "
                                          "response is writable")
        return self._r._x.write(bytes(b) if not isinstance(b, bytes) else b)

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of closed file")
        return self._r.read(n)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        if self.closed:
            raise ValueError("read of closed file")
        r = self._r
        if r._decoder is None and r._content is None:
            return r._x.readinto(b)
        data = r.read(len(b))
        n = len(data)
        memoryview(b).cast("B")[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()
