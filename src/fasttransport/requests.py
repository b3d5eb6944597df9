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
    streamed while it is sent, with the request's Content-Length when it has
    one and chunked otherwise (a binary file without a timeout goes to
    fasttransport's native file path). fasttransport writes Content-Length or
    Transfer-Encoding itself. A streamed body is one-shot: never replayed on
    another connection.

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
    fasttransport's total per-exchange deadline would also bound the body and
    cut long downloads short, so the timeouts are enforced by a watchdog
    thread (one per adapter, started on the first request with a timeout)
    that cancels the exchange through a ``CancelToken``:

    - the response head must arrive within ``connect + read`` seconds of the
      start, plus another ``read`` for a request body (urllib3 applies the
      read timeout to sending too); a streamed body restarts that clock
      (``2 * read``) at each chunk it hands over. ``read=None``: no limit;
    - each read of the body must return within ``read`` seconds (time spent
      between reads is not counted);
    - the Transport's own ``dial_timeout`` (default 30 s) and
      ``tls_handshake_timeout`` still cap every connection.

    What is approximated: the head's budget is the sum above, so a silent
    server is detected after ``connect + read`` seconds, not ``read`` seconds
    after the request was written; and when it runs out the phase is judged
    from the Transport's live counts: a request to that host still waiting
    for a connection gives ConnectTimeout, a streamed body not yet fully
    handed over gives Timeout, anything else ReadTimeout. Under concurrent
    requests to one host the class may be the wrong one of these; the timing
    never depends on it.

Errors (``raise ... from`` the fasttransport error)
    While sending and awaiting the head:

    =============================  ===============================================
    fasttransport                  requests.exceptions
    =============================  ===============================================
    ConnectTimeout, PoolTimeout    ConnectTimeout
    ReadTimeout,                   ReadTimeout
    ResponseHeaderTimeout
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

import http.client
import io
import os
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

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
    Timeout,
)
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy
from urllib3._collections import HTTPHeaderDict
from urllib3.util import Timeout as Urllib3Timeout

from . import errors as ft_errors
from ._timeouts import _exchange_timer, _Timer, _Upload, _Watchdog
from .models import _ON_REQUEST, Request, Response, _BodyStream, _Decoder, _GzipDecoder
from .transport import Transport

__all__ = ["HTTPAdapter"]

#: Bytes asked of the connection per read of a response body, and per chunk
#: of a file sent as a request body.
READ_SIZE = 65536

#: Content codings ``raw.stream(decode_content=True)`` decodes.
_DECODERS: Dict[str, Any] = {"gzip": _GzipDecoder, "x-gzip": _GzipDecoder, **_ON_REQUEST}


def _seconds(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) else None


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

    def __init__(self, response: Response, url: str, timer: Optional["_Timer"],
                 read_timeout: Optional[float]) -> None:
        super().__init__()
        self._response = response
        self.url = url
        self._timer = timer if read_timeout is not None else None
        self._read_timeout = read_timeout or 0.0
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
        """Up to n raw bytes (b"" at the end), the read timeout armed."""
        timer = self._timer
        if timer is not None:
            timer.arm(self._read_timeout, "read")
        try:
            data = self._response.read(n)
        except ft_errors.HTTPError as exc:
            raise self._body_error(exc) from exc
        finally:
            if timer is not None:
                timer.disarm()
        if not data:
            self._wire_eof = True
        return data

    def _body_error(self, exc: ft_errors.HTTPError) -> Exception:
        msg = str(exc)
        timer = self._timer
        if (isinstance(exc, (ft_errors.ReadTimeout, ft_errors.ResponseHeaderTimeout))
                or (isinstance(exc, ft_errors.Cancelled) and timer is not None
                    and timer.fired is not None)):
            return urllib3.exceptions.ReadTimeoutError(
                None, self.url, f"Read timed out. (read timeout={self._read_timeout:g})")
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
            if self._timer is not None:
                self._timer.disarm()

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
                timer: Optional[_Timer], proxied: bool) -> RequestException:
    """The requests exception for a failure before the response head (see
    the module docstring)."""
    msg = str(exc)
    if isinstance(exc, ft_errors.Cancelled) and timer is not None and timer.fired is not None:
        what = f"{msg.rpartition(': ')[0]}: no response head within {timer.seconds:g} s"
        if timer.fired in ("connect", "pool"):
            return ConnectTimeout(f"{what} (connect timeout)", request=request)
        if timer.fired == "write":
            return Timeout(f"{what} (write timed out)", request=request)
        return ReadTimeout(f"{what} (read timeout)", request=request)
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
        self._watchdog = _Watchdog("ft-requests-timeouts")

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
        connect, read = _split_timeout(timeout)
        pairs = [(_text(k), _text(v)) for k, v in request.headers.items()]
        body: Any = request.body
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if isinstance(body, (bytes, str)) and not body:
            body = None
        timer: Optional[_Timer] = None
        upload: Optional[_Upload] = None
        if (body is not None and not isinstance(body, (bytes, str))
                and (read is not None or not hasattr(body, "read"))):
            upload = _Upload(body)
        try:
            ft_request = Request(request.method or "GET", url, headers=pairs,
                                 content=body if upload is None else None)
        except ft_errors.InvalidRequest as exc:
            raise _send_error(exc, request, None, proxy is not None) from exc
        if read is not None:
            timer = _exchange_timer(self._watchdog, transport,
                                    ft_request._u.key.decode("ascii"), upload)
        if upload is not None:
            if timer is not None and read is not None:
                upload.time_with(timer, 2 * read)
            length = _declared_length(request.headers)
            chunks = iter(upload)
            ft_request.body = _BodyStream(lambda: chunks, length)
            ft_request.chunked = length < 0
            ft_request._one_shot = True
        budget = None
        if read is not None:
            budget = read + (connect or 0.0) + (read if body is not None else 0.0)
        if timer is not None and budget is not None:
            timer.arm(budget, "head")
        try:
            response = transport._send(ft_request, None, timer.token if timer else None,
                                       True, decode=False)
        except ft_errors.HTTPError as exc:
            raise _send_error(exc, request, timer, proxy is not None) from exc
        finally:
            if upload is not None:
                upload.stop_timing()
            if timer is not None:
                timer.disarm()
        return self.build_response(request, response, timer, read)

    def build_response(self, request: requests.PreparedRequest, response: Response,
                       timer: Optional[_Timer] = None,
                       read_timeout: Optional[float] = None) -> requests.Response:
        """A requests.Response as requests' own HTTPAdapter.build_response
        makes it: status, case-insensitive headers (repeated fields joined
        with ", "), encoding from Content-Type, ``raw``, reason, url, cookies
        into ``response.cookies``, request and ``connection=self``."""
        url = _text(request.url or "")
        raw = _RawResponse(response, url, timer, read_timeout)
        resp = requests.Response()
        resp.status_code = response.status_code
        resp.headers = CaseInsensitiveDict(raw.headers)
        resp.encoding = get_encoding_from_headers(resp.headers)
        resp.raw = raw
        resp.reason = raw.reason
        resp.url = url
        extract_cookies_to_jar(resp.cookies, request, raw)
        resp.request = request
        resp.connection = self
        return resp

    def close(self) -> None:
        """Close every Transport made so far (responses still open then
        fail) and stop the timeout watchdog. The adapter stays usable: the
        next request creates a Transport again."""
        with self._lock:
            transports = list(self._transports.values())
            self._transports.clear()
        self._watchdog.close()
        for transport in transports:
            transport.close()
