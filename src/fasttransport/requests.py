"""A requests transport adapter that sends requests through fasttransport.

    import requests
    import fasttransport.requests

    session = requests.Session()
    adapter = fasttransport.requests.HTTPAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)

requests keeps doing what a Session does (redirects, cookies, auth, proxies
from the environment, hooks); each single exchange goes through
``fasttransport.Transport._send``. ``import fasttransport`` never imports this
module: use ``import fasttransport.requests``.

Per-request settings
    fasttransport's TLS and proxy settings belong to a Transport, so the
    adapter keeps one ``ft.Transport`` per distinct (verify, cert, proxy),
    created on first use with the adapter's keyword arguments and closed by
    close(). ``proxy`` is what ``requests.utils.select_proxy`` picks from the
    ``proxies`` requests passes (it already applied the environment and
    NO_PROXY), None for a direct connection. So verify, cert and proxy are
    not adapter arguments: set them on the Session or per request.

Request bodies
    bytes and str (UTF-8) are sent as they are; a file or an iterable is
    streamed while it is sent (a regular binary file by fasttransport's native
    file path), an iterable with the request's Content-Length when it has one
    and chunked otherwise. fasttransport writes Content-Length or
    Transfer-Encoding itself. A body from an iterator or a file that cannot
    seek is one-shot: never replayed on another connection.

Decoding
    The body is fetched with ``decode=False``, exactly as on the wire, and
    ``Response.raw`` behaves as urllib3's HTTPResponse does in requests:
    ``raw.read()`` returns the wire bytes (unless ``raw.decode_content`` is
    set), while ``raw.stream(amt, decode_content=True)`` - what requests'
    ``iter_content``, ``.content``, ``.text`` and ``.json()`` use - decodes
    Content-Encoding gzip, deflate (zlib or raw), br (with the brotli
    package) and zstd (with zstandard), several codings in a row included. A
    coding that cannot be decoded leaves the body as it is. The response keeps
    its Content-Encoding and Content-Length headers, as with urllib3. (The
    alternative, fasttransport's own decoding, would decode gzip only when
    fasttransport itself asked for it, not for the Accept-Encoding requests
    sends, and would hide the wire bytes from ``raw``.)

Timeouts (``timeout=``: a float, a (connect, read) tuple, or a urllib3
Timeout)
    They become the phase parts of the ft.Request's ``extensions["timeout"]``
    (the form ``ft.Timeout`` uses), enforced by fasttransport's native loops
    on the exchange itself: no timer thread. As urllib3 applies them:

    - connect: looking the host up and dialling a new connection, TLS
      included -> ConnectTimeout. The same seconds bound the wait for a slot
      under the Transport's ``max_conns_per_host`` (requests' own adapter
      never waits for one: its pools make another connection), also
      ConnectTimeout;
    - write: urllib3 sends the request under the connect timeout, and so
      does the adapter: nothing sent for ``connect`` seconds while the
      request has bytes ready -> ConnectionError (``Connection aborted.``,
      a TimeoutError inside), as requests raises it;
    - read: nothing received for that long once the request is sent: waiting
      for the head -> ReadTimeout; between body bytes -> urllib3's
      ReadTimeoutError from ``raw``, which requests turns into
      ConnectionError;
    - the Transport's own ``dial_timeout`` (default 30 s) and
      ``tls_handshake_timeout`` still cap every connection.

    What differs from urllib3, which times each socket operation: read and
    write measure how long the exchange has made no progress, from the last
    byte that moved or the start of the current read call, whichever is
    later; an in-memory body is not bounded as a whole by the connect
    timeout (only a stall is); and while a streamed body's iterable produces
    its next piece, no part runs. The connection of an exchange that timed out
    is closed, never pooled.

Errors (``raise ... from`` the fasttransport error)
    While sending and awaiting the head:

    =============================  ===============================================
    fasttransport                  requests.exceptions
    =============================  ===============================================
    ConnectTimeout, PoolTimeout    ConnectTimeout
    ReadTimeout,                   ReadTimeout
    ResponseHeaderTimeout
    WriteTimeout                   ConnectionError (ProtocolError "Connection
                                   aborted.", as urllib3)
    TLSError                       SSLError
    ConnectError                   ConnectionError (ProxyError through a proxy)
    RemoteProtocolError, other     ConnectionError (ProxyError for a proxy the
    TransportError                 Transport cannot use)
    InvalidRequest                 InvalidSchema (scheme), InvalidHeader (header
                                   field), else InvalidURL
    a bad proxy URL                InvalidProxyURL
    a missing CA bundle or cert    OSError (as requests says it)
    =============================  ===============================================

    While reading the body, ``raw`` raises urllib3's exceptions, which
    requests turns into its own as with urllib3: a read timeout
    (ReadTimeoutError) becomes ConnectionError, a broken or truncated body
    (ProtocolError) ChunkedEncodingError, a TLS failure SSLError, corrupt
    compressed data (DecodeError) ContentDecodingError.
"""

from __future__ import annotations

import builtins
import http.client
import io
import os
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Type, Union

import requests
import urllib3.exceptions
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import (
    ConnectionError,
    ConnectTimeout,
    InvalidHeader,
    InvalidProxyURL,
    InvalidSchema,
    InvalidURL,
    ProxyError,
    ReadTimeout,
    RequestException,
    SSLError,
)
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy
from urllib3._collections import HTTPHeaderDict
from urllib3.util import Timeout as Urllib3Timeout

from . import errors as ft_errors
from ._decoding import _ON_REQUEST, _Decoder, _GzipDecoder
from .models import Request, Response
from .transport import Transport

__all__ = ["HTTPAdapter"]

#: Bytes asked of the connection per read of a response body.
READ_SIZE = 65536

#: Content codings ``raw.stream(decode_content=True)`` decodes.
_DECODERS: Dict[str, Type[_Decoder]] = {"gzip": _GzipDecoder, "x-gzip": _GzipDecoder, **_ON_REQUEST}


def _seconds(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) else None


def _timeout_parts(timeout: Any) -> Optional[Dict[str, Optional[float]]]:
    """requests' ``timeout=`` as the phase parts of an ft.Request's
    ``extensions["timeout"]`` (see the module docstring), None for none."""
    connect, read = _split_timeout(timeout)
    if connect is None and read is None:
        return None
    return {"connect": connect, "pool": connect, "write": connect, "read": read}


def _split_timeout(timeout: Any) -> Tuple[Optional[float], Optional[float]]:
    """(connect, read) seconds from requests' ``timeout=``."""
    if timeout is None:
        return None, None
    if isinstance(timeout, tuple):
        try:
            connect, read = timeout
        except ValueError:
            raise ValueError(
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                "or a single float to set both timeouts to the same value.") from None
        return _seconds(connect), _seconds(read)
    if isinstance(timeout, Urllib3Timeout):
        return _seconds(timeout.connect_timeout), _seconds(timeout.read_timeout)
    return float(timeout), float(timeout)


# ---- the response body ------------------------------------------------------


class _OriginalResponse:
    """What ``requests.cookies.extract_cookies_to_jar`` reads of urllib3's
    ``_original_response``: ``msg``, the header block as an HTTPMessage."""

    __slots__ = ("msg",)

    def __init__(self, pairs: List[Tuple[str, str]]) -> None:
        self.msg = http.client.HTTPMessage()
        for name, value in pairs:
            self.msg[name] = value


def _decoders_for(codings: List[str], op: str, url: str) -> List[_Decoder]:
    """Decoders for a Content-Encoding list, innermost (last applied) first;
    none when a coding is unknown (the body then passes through as it is)."""
    names = [c.strip().lower() for value in codings for c in value.split(",")]
    names = [c for c in names if c and c != "identity"]
    if any(c not in _DECODERS for c in names):
        return []
    return [_DECODERS[c](op, url) for c in reversed(names)]


class _RawResponse(io.IOBase):
    """``requests.Response.raw``: the body as urllib3's HTTPResponse offers it.

    ``read(amt, decode_content)`` returns up to ``amt`` bytes (all the rest
    for None), fewer only at the end; ``stream(amt, decode_content)`` yields
    them (with ``amt=None``, as they arrive). Bytes are the wire's unless
    decoding is asked for (``decode_content``, default the
    ``decode_content`` attribute, False). ``close()`` / ``release_conn()``
    close the fasttransport response: at the end of the body its connection
    is already back in the pool; before it, a small remainder is drained or
    the connection closed. Errors are urllib3's (see the module docstring).
    """

    def __init__(self, response: Response, url: str) -> None:
        super().__init__()
        self._response = response
        self.url = url
        self.status = response.status_code
        self.reason = response.reason
        self.version_string = response.http_version
        self.version = 10 if response.http_version == "HTTP/1.0" else 11
        self._pairs = response.headers.items()
        self.headers = HTTPHeaderDict()
        for name, value in self._pairs:
            self.headers.add(name, value)
        self.decode_content = False
        self._decoders: Optional[List[_Decoder]] = None
        self._buffer = bytearray()
        self._wire_eof = False
        self._done = False

    # ---- what requests reads besides the body -------------------------------

    @property
    def _original_response(self) -> Optional[_OriginalResponse]:
        if not any(n.lower() in ("set-cookie", "set-cookie2") for n, _ in self._pairs):
            return None
        return _OriginalResponse(self._pairs)

    def getheaders(self) -> HTTPHeaderDict:
        return self.headers

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name, default)

    def readable(self) -> bool:
        return True

    # ---- reading ----------------------------------------------------------------

    def _wire_read(self, n: int) -> bytes:
        """Up to n raw bytes (b"" at the end)."""
        try:
            data = self._response.read(n)
        except ft_errors.HTTPError as exc:
            raise self._body_error(exc) from exc
        if not data:
            self._wire_eof = True
        return data

    def _body_error(self, exc: ft_errors.HTTPError) -> Exception:
        msg = str(exc)
        if isinstance(exc, (ft_errors.ReadTimeout, ft_errors.ResponseHeaderTimeout)):
            # no connection pool here (urllib3's own HTTPResponse may pass None too)
            return urllib3.exceptions.ReadTimeoutError(
                None, self.url, f"Read timed out. ({msg})")  # type: ignore[arg-type]
        if isinstance(exc, ft_errors.TLSError):
            return urllib3.exceptions.SSLError(msg)
        return urllib3.exceptions.ProtocolError(f"Connection broken: {msg}", exc)

    def _next_piece(self, decode: bool) -> bytes:
        """The next piece of the body (decoded when asked for and possible);
        may be b"" before the end while a decoder holds its input."""
        data = self._wire_read(READ_SIZE)
        if not decode:
            return data
        decoders = self._decoders
        if decoders is None:
            decoders = self._decoders = _decoders_for(
                self._response.headers.get_list("Content-Encoding"),
                self._response.request.method.capitalize(), self.url)
        try:
            for d in decoders:
                if data:
                    data = d.feed(data)
            if self._wire_eof:
                for d in decoders:
                    d.finish()
        except ft_errors.RemoteProtocolError as exc:
            self._response.close()
            raise urllib3.exceptions.DecodeError(
                "Received response with content-encoding: "
                f"{self.headers.get('Content-Encoding', '')}, but failed to decode it.",
                exc) from exc
        return data

    def read(self, amt: Optional[int] = None, decode_content: Optional[bool] = None,
             cache_content: bool = False) -> bytes:
        """Up to ``amt`` bytes (fewer only at the end); None: the rest."""
        decode = self.decode_content if decode_content is None else decode_content
        buf = self._buffer
        if amt is not None and amt >= 0:
            if amt == 0:
                return b""
            if not buf and not decode and not self._wire_eof:
                data = self._wire_read(amt)
                if len(data) == amt or not data:
                    return data
                buf += data
            while len(buf) < amt and not self._wire_eof:
                buf += self._next_piece(decode)
            out = bytes(buf[:amt])
            del buf[:amt]
            return out
        while not self._wire_eof:
            buf += self._next_piece(decode)
        out = bytes(buf)
        buf.clear()
        return out

    def read1(self, amt: Optional[int] = None, decode_content: Optional[bool] = None) -> bytes:
        """What is there now (at most ``amt`` bytes), waiting only when
        nothing is; b"" at the end."""
        decode = self.decode_content if decode_content is None else decode_content
        buf = self._buffer
        while not buf and not self._wire_eof:
            buf += self._next_piece(decode)
        n = len(buf) if amt is None or amt < 0 else min(amt, len(buf))
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def stream(self, amt: Optional[int] = 2 ** 16,
               decode_content: Optional[bool] = None) -> Iterator[bytes]:
        """The body in pieces of ``amt`` bytes (the last may be shorter), or
        as they arrive for ``amt=None``."""
        while True:
            data = (self.read1(None, decode_content) if amt is None
                    else self.read(amt, decode_content))
            if not data:
                return
            yield data

    def drain_conn(self) -> None:
        """Read the rest of the body and drop it (the connection is pooled)."""
        try:
            while self._wire_read(READ_SIZE):
                pass
        except (urllib3.exceptions.HTTPError, OSError):
            pass

    # ---- releasing ----------------------------------------------------------------

    def release_conn(self) -> None:
        if not self._done:
            self._done = True
            self._response.close()

    def close(self) -> None:
        self.release_conn()
        super().close()


# ---- requests -----------------------------------------------------------------




def _text(value: Union[str, bytes]) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _declared_length(headers: Mapping[str, Any]) -> int:
    """The request's Content-Length, or -1 (none, chunked, or not a number)."""
    if "Transfer-Encoding" in headers:
        return -1
    value = headers.get("Content-Length")
    try:
        n = int(_text(value)) if value is not None else -1
    except ValueError:
        return -1
    return n if n >= 0 else -1


def _send_error(exc: ft_errors.HTTPError, request: requests.PreparedRequest,
                proxied: bool) -> RequestException:
    """The requests exception for a failure before the response head (see
    the module docstring)."""
    msg = str(exc)
    if isinstance(exc, ft_errors.WriteTimeout):
        # urllib3's socket.timeout while sending: "Connection aborted."
        return ConnectionError(urllib3.exceptions.ProtocolError(
            "Connection aborted.", builtins.TimeoutError(msg)), request=request)
    if isinstance(exc, (ft_errors.ConnectTimeout, ft_errors.PoolTimeout)):
        return ConnectTimeout(msg, request=request)
    if isinstance(exc, (ft_errors.ReadTimeout, ft_errors.ResponseHeaderTimeout)):
        return ReadTimeout(msg, request=request)
    if isinstance(exc, ft_errors.TLSError):
        return SSLError(msg, request=request)
    if isinstance(exc, ft_errors.InvalidRequest):
        if "unsupported protocol scheme" in msg:
            return InvalidSchema(msg, request=request)
        if "header field" in msg:
            return InvalidHeader(msg, request=request)
        return InvalidURL(msg, request=request)
    if proxied and (isinstance(exc, ft_errors.ConnectError) or "proxy" in msg):
        return ProxyError(msg, request=request)
    return ConnectionError(msg, request=request)


class HTTPAdapter(BaseAdapter):
    """A requests transport adapter on fasttransport Transports.

    ``HTTPAdapter(**transport_kwargs)``: the keyword arguments of
    ``fasttransport.Transport`` (pool sizes, ``dial_timeout``,
    ``idle_conn_timeout``, ...) except verify, cert and proxy, which come
    from requests per request. ``transports`` lists the Transports made so
    far (for ``stats()``). Thread-safe. The module docstring describes how
    requests, bodies, timeouts and errors are mapped."""

    def __init__(self, **transport_kwargs: Any) -> None:
        for name in ("verify", "cert", "proxy"):
            if name in transport_kwargs:
                raise TypeError(f"HTTPAdapter: {name} comes from requests (the Session's "
                                f"or the request's {name if name != 'proxy' else 'proxies'}), "
                                "not from the adapter")
        super().__init__()
        self._transport_kwargs = transport_kwargs
        self._transports: Dict[Tuple[Any, Any, Optional[str]], Transport] = {}
        self._lock = threading.Lock()

    @property
    def transports(self) -> List[Transport]:
        with self._lock:
            return list(self._transports.values())

    def transport_for(self, verify: Union[bool, str] = True, cert: Any = None,
                      proxy: Optional[str] = None) -> Transport:
        """The Transport for these settings, created on first use. Raises
        ValueError for a CA bundle or certificate file that does not exist
        or a proxy URL that cannot be parsed."""
        key = (verify if isinstance(verify, bool) else os.fspath(verify),
               tuple(cert) if isinstance(cert, (list, tuple)) else cert, proxy)
        with self._lock:
            transport = self._transports.get(key)
            if transport is None:
                transport = self._transports[key] = Transport(
                    **self._transport_kwargs, verify=verify, cert=cert, proxy=proxy)
        return transport

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Union[bool, str] = True, cert: Any = None,
             proxies: Optional[Mapping[str, str]] = None) -> requests.Response:
        """Send one request (no redirects: the Session follows them) and
        return its response, the body not yet read."""
        url = _text(request.url or "")
        proxy = select_proxy(url, dict(proxies)) if proxies else None
        try:
            transport = self.transport_for(verify, cert, proxy)
        except ValueError as exc:
            cause = str(exc)
            if cause.startswith("verify:"):
                raise OSError("Could not find a suitable TLS CA certificate bundle, "
                              f"invalid path: {verify}") from exc
            if cause.startswith("cert:"):
                raise OSError("Could not find the TLS certificate file, "
                              f"invalid path: {cert}") from exc
            raise InvalidProxyURL(f"Please check proxy URL. It is malformed and could be "
                                  f"missing the host: {cause}", request=request) from exc
        pairs = [(_text(k), _text(v)) for k, v in request.headers.items()]
        body: Any = request.body
        if isinstance(body, (bytes, str, bytearray, memoryview)) and not body:
            body = None
        try:
            ft_request = Request(request.method or "GET", url, headers=pairs, content=body)
        except ft_errors.InvalidRequest as exc:
            raise _send_error(exc, request, proxy is not None) from exc
        if ft_request.chunked and not hasattr(body, "read"):
            # an iterable: requests' Content-Length when it declared one
            ft_request._declare_length(_declared_length(request.headers))
        parts = _timeout_parts(timeout)
        if parts is not None:
            ft_request.extensions["timeout"] = parts
        try:
            response = transport._send(ft_request, None, None, True, decode=False)
        except ft_errors.HTTPError as exc:
            raise _send_error(exc, request, proxy is not None) from exc
        return self.build_response(request, response)

    def build_response(self, request: requests.PreparedRequest,
                       response: Response) -> requests.Response:
        """A requests.Response as requests' own HTTPAdapter.build_response
        makes it: status, case-insensitive headers (repeated fields joined
        with ", "), encoding from Content-Type, ``raw``, reason, url, cookies
        into ``response.cookies``, request and ``connection=self``."""
        url = _text(request.url or "")
        raw = _RawResponse(response, url)
        resp = requests.Response()
        resp.status_code = response.status_code
        resp.headers = CaseInsensitiveDict(raw.headers)
        resp.encoding = get_encoding_from_headers(resp.headers)
        resp.raw = raw
        resp.reason = raw.reason
        resp.url = url
        extract_cookies_to_jar(resp.cookies, request, raw)
        resp.request = request
        # requests types it as its own HTTPAdapter; what it calls on it
        # (send(), to resend after digest auth) is BaseAdapter's
        resp.connection = self  # type: ignore[assignment]
        return resp

    def close(self) -> None:
        """Close every Transport made so far (responses still open then
        fail). The adapter stays usable: the next request creates a
        Transport again."""
        with self._lock:
            transports = list(self._transports.values())
            self._transports.clear()
        for transport in transports:
            transport.close()
