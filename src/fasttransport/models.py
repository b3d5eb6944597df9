"""Request, Response and Headers (API.md).

A Response wraps a native exchange (``_core.Exchange``): its head is parsed
in C and its headers become Python objects only on first access; its body is
read on the caller's thread with the GIL released, straight from the
connection's buffer.
"""

from __future__ import annotations

import datetime
import io
import json as _json
import warnings
import zlib
from functools import lru_cache
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from . import _core
from .errors import HTTPStatusError, InvalidRequest, RemoteProtocolError

__all__ = ["Headers", "Request", "Response"]

HeaderTypes = Union["Headers", Mapping[str, str], Sequence[Tuple[str, str]], None]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Headers:
    """Case-insensitive, order-preserving multi-map of str names and values.

    ``h[name]`` joins repeated fields with ", "; ``get_list`` returns each;
    ``items()`` yields every pair in order; iteration yields distinct names;
    ``len()`` counts pairs.
    """

    __slots__ = ("_list", "_index")

    def __init__(self, headers: HeaderTypes = None) -> None:
        if headers is None:
            self._list: List[Tuple[str, str]] = []
        elif isinstance(headers, Headers):
            self._list = list(headers._list)
        elif isinstance(headers, Mapping):
            self._list = [(str(k), str(v)) for k, v in headers.items()]
        else:
            self._list = [(str(k), str(v)) for k, v in headers]
        self._index: Optional[dict] = None

    @classmethod
    def _from_pairs(cls, pairs: List[Tuple[str, str]]) -> "Headers":
        h = cls.__new__(cls)
        h._list = pairs
        h._index = None
        return h

    def _idx(self) -> dict:
        idx = self._index
        if idx is None:
            idx = {}
            for i, (k, _) in enumerate(self._list):
                idx.setdefault(k.lower(), []).append(i)
            self._index = idx
        return idx

    def get_list(self, name: str) -> List[str]:
        ids = self._idx().get(name.lower())
        return [self._list[i][1] for i in ids] if ids else []

    def __getitem__(self, name: str) -> str:
        ids = self._idx().get(name.lower())
        if not ids:
            raise KeyError(name)
        return ", ".join(self._list[i][1] for i in ids)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._idx()

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for k, _ in self._list:
            low = k.lower()
            if low not in seen:
                seen.add(low)
                yield k

    def keys(self) -> List[str]:
        return list(self)

    def values(self) -> List[str]:
        return [self[k] for k in self]

    def items(self) -> List[Tuple[str, str]]:
        return list(self._list)

    def multi_items(self) -> List[Tuple[str, str]]:
        return list(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def __setitem__(self, name: str, value: str) -> None:
        low = name.lower()
        self._list = [(k, v) for k, v in self._list if k.lower() != low]
        self._list.append((name, value))
        self._index = None

    def add(self, name: str, value: str) -> None:
        self._list.append((name, value))
        self._index = None

    def __delitem__(self, name: str) -> None:
        low = name.lower()
        if low not in self._idx():
            raise KeyError(name)
        self._list = [(k, v) for k, v in self._list if k.lower() != low]
        self._index = None

    def pop(self, name: str, default: Any = None) -> Any:
        value = self.get(name, default)
        if name in self:
            del self[name]
        return value

    def copy(self) -> "Headers":
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            other_list = other._list
        elif isinstance(other, Mapping):
            other_list = list(other.items())
        else:
            return NotImplemented
        return sorted((k.lower(), v) for k, v in self._list) == sorted(
            (k.lower(), v) for k, v in other_list)

    def __repr__(self) -> str:
        return f"Headers({self._list!r})"


# ---- URLs -------------------------------------------------------------------


class _URL:
    """A parsed request URL: what the transport needs, computed once per
    distinct URL string."""

    __slots__ = ("raw", "scheme", "host", "port", "target", "host_header", "key",
                 "host_bytes", "redacted", "userinfo")

    def __init__(self, raw: str) -> None:
        try:
            parts: SplitResult = urlsplit(raw)
            port = parts.port
        except ValueError as e:
            raise InvalidRequest(f'parse "{raw}": {e}', url=raw) from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            what = parts.scheme if parts.scheme else ""
            raise InvalidRequest(f'unsupported protocol scheme "{what}"', url=raw)
        # The host as written: Go's canonicalAddr keeps ASCII case (the pool
        # key of "Example.com" differs from "example.com"); non-ASCII names go
        # through IDNA (Go: idna.ToASCII).
        hostport_raw = parts.netloc.rpartition("@")[2]
        if hostport_raw.startswith("["):
            host = hostport_raw[1:].partition("]")[0]
        else:
            host = hostport_raw.partition(":")[0]
        if not host:
            raise InvalidRequest("http: no Host in request URL", url=raw)
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as e:
                raise InvalidRequest(f'invalid host "{host}": {e}', url=raw) from None
        if any(c in host for c in " \r\n\t\x00/\\"):
            raise InvalidRequest(f'invalid host "{host}"', url=raw)
        self.raw = raw
        self.scheme = scheme
        self.host = host
        default_port = _DEFAULT_PORTS[scheme]
        self.port = port if port is not None else default_port
        hostport = f"[{host}]" if ":" in host else host
        self.host_header = hostport if self.port == default_port and port is None else (
            f"{hostport}:{self.port}")
        path = parts.path or "/"
        path = quote(path, safe="/%:@!$&'()*+,;=-._~")
        self.target = path + ("?" + quote(parts.query, safe="=&%:@!$'()*+,;/?-._~")
                              if parts.query else "")
        self.key = f"{scheme}://{hostport}:{self.port}".encode("ascii")
        self.host_bytes = host.encode("ascii")
        self.userinfo = None
        if parts.username is not None or parts.password is not None:
            self.userinfo = (parts.username or "", parts.password)
            shown = parts.username or ""
            if parts.password is not None:
                shown += ":***"
            netloc = f"{shown}@{parts.netloc.rpartition('@')[2]}"
            self.redacted = parts._replace(netloc=netloc).geturl()
        else:
            self.redacted = raw


@lru_cache(maxsize=2048)
def _parse_url(raw: str) -> _URL:
    return _URL(raw)


def _merge_params(url: str, params: Any) -> str:
    if not params:
        return url
    if isinstance(params, Mapping):
        params = list(params.items())
    query = urlencode(list(params), doseq=False)
    base, sep, frag = url.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith("?") or base.endswith("&"):
        joiner = ""
    return base + joiner + query + (sep + frag)


# ---- requests ---------------------------------------------------------------


def _check_headers(pairs: List[Tuple[str, str]]) -> None:
    is_token, is_valid_value = _core.is_token, _core.is_valid_value
    for name, value in pairs:
        if not is_token(name):
            raise InvalidRequest(f'net/http: invalid header field name "{name}"')
        if not is_valid_value(value):
            raise InvalidRequest(f'net/http: invalid header field value for "{name}"')


def _encode_body(content: Any, data: Any, json: Any, headers: Headers):
    """Body bytes and whether it is chunked. Iterables are framed as chunked
    transfer coding; files with a known size are sent with Content-Length."""
    if json is not None:
        if "content-type" not in headers:
            headers.add("Content-Type", "application/json")
        return _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode(), False
    if data is not None:
        if isinstance(data, (bytes, str)):
            content = data
        else:
            if "content-type" not in headers:
                headers.add("Content-Type", "application/x-www-form-urlencoded")
            items = data.items() if isinstance(data, Mapping) else data
            return urlencode(list(items), doseq=True).encode(), False
    if content is None:
        return None, False
    if isinstance(content, bytes):
        return content, False
    if isinstance(content, str):
        return content.encode("utf-8"), False
    if isinstance(content, (bytearray, memoryview)):
        return bytes(content), False
    if hasattr(content, "read"):
        data_bytes = content.read()
        if isinstance(data_bytes, str):
            data_bytes = data_bytes.encode("utf-8")
        return bytes(data_bytes), False
    if isinstance(content, Iterable):
        out = []
        for chunk in content:
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            if chunk:
                out.append(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        out.append(b"0\r\n\r\n")
        return b"".join(out), True
    raise TypeError(f"unsupported content type: {type(content).__name__}")


class Request:
    """An HTTP request. Building one validates it: a bad URL, a scheme other
    than http/https, a method or header name that is not a token, or CR, LF or
    NUL in a header value raises InvalidRequest before anything is sent."""

    __slots__ = ("method", "url", "headers", "body", "chunked", "_u", "extensions")

    def __init__(self, method: str, url: str, *, headers: HeaderTypes = None,
                 content: Any = None, data: Any = None, json: Any = None,
                 params: Any = None) -> None:
        if not isinstance(method, str) or not _core.is_token(method):
            raise InvalidRequest(f'net/http: invalid method "{method}"', method=str(method),
                                 url=str(url))
        url = _merge_params(str(url), params)
        try:
            self._u = _parse_url(url)
        except InvalidRequest as e:
            e.method = method
            raise
        self.method = method
        self.url = url
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        try:
            _check_headers(self.headers._list)
        except InvalidRequest as e:
            e.method, e.url = method, self._u.redacted
            raise
        self.body, self.chunked = _encode_body(content, data, json, self.headers)
        self.extensions: dict = {}

    def __repr__(self) -> str:
        return f"<Request [{self.method} {self._u.redacted}]>"


# ---- responses --------------------------------------------------------------


class _GzipDecoder:
    """Transparent gzip (GO_TRANSPORT_SPEC §12): concatenated members are
    joined; one level only; a member cut short is "unexpected EOF"."""

    __slots__ = ("_d", "_op", "_url", "_open")

    def __init__(self, op: str, url: str) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._op, self._url = op, url
        self._open = False

    def _error(self, cause: str) -> RemoteProtocolError:
        return RemoteProtocolError(f'{self._op} "{self._url}": gzip: {cause}',
                                   method=self._op.upper(), url=self._url)

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                out.append(self._d.decompress(data))
                if self._d.eof:
                    data = self._d.unused_data
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._open = False
                else:
                    self._open = True
                    data = b""
        except zlib.error as e:
            msg = str(e)
            if "header" in msg:
                raise self._error("invalid header") from None
            if "check" in msg:
                raise self._error("invalid checksum") from None
            raise self._error(msg) from None
        return b"".join(out)

    def finish(self) -> None:
        if self._open:
            raise self._error("unexpected EOF")


class Response:
    """An HTTP response. See API.md for the attributes. The body is read
    with read()/content/iter_bytes() or through the ``body`` file object;
    reading it to EOF returns the connection to the pool, close() before EOF
    drains a small remainder or closes the connection."""

    __slots__ = ("status_code", "reason", "http_version", "request", "url", "history",
                 "_x", "_headers", "_trailers", "_content", "_closed", "_stream",
                 "_decoder", "_elapsed", "_body", "_transport", "__weakref__")

    def __init__(self, x: Any, request: Request, *, gzip: bool, elapsed: float,
                 stream: bool, transport: Any = None) -> None:
        self._x = x
        self.status_code: int = x.status
        self.reason: str = x.reason
        self.http_version: str = x.http_version
        self.request = request
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
        self._decoder: Optional[_GzipDecoder] = None
        if gzip and x.has_body and x.has_header(b"content-encoding"):
            enc = self.headers.get_list("Content-Encoding")
            if len(enc) == 1 and enc[0].lower() == "gzip":
                self._decoder = _GzipDecoder(x.op, x.url)
                del self._headers["Content-Encoding"]
                if "Content-Length" in self._headers:
                    del self._headers["Content-Length"]

    # ---- head ---------------------------------------------------------

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
                response=self, method=self.request.method, url=self._x.url)
        return self

    # ---- body ---------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes of the (decoded) body; n < 0: the rest. The
        connection is pooled at EOF."""
        if self._content is not None:
            return b""
        x = self._x
        dec = self._decoder
        if dec is None:
            return x.read(n)
        if n < 0:
            data = dec.feed(x.read_all())
            dec.finish()
            return data
        while True:
            raw = x.read(max(n, 8192))
            if not raw:
                dec.finish()
                return b""
            out = dec.feed(raw)
            if out:
                return out

    @property
    def content(self) -> bytes:
        c = self._content
        if c is None:
            c = self._content = self.read()
            self._closed = True
        return c

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    @property
    def encoding(self) -> Optional[str]:
        ctype = self.headers.get("Content-Type", "")
        for part in ctype.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                return v.strip("\"'")
        return None

    def json(self, **kw: Any) -> Any:
        return _json.loads(self.content, **kw)

    def iter_bytes(self, chunk_size: Optional[int] = None) -> Iterator[bytes]:
        if self._content is not None:
            c = self._content
            step = chunk_size or len(c) or 1
            for i in range(0, len(c), step):
                yield c[i:i + step]
            return
        size = chunk_size or 65536
        pending = b""
        while True:
            data = self.read(size)
            if not data:
                break
            if chunk_size is None:
                yield data
                continue
            pending += data
            while len(pending) >= chunk_size:
                yield pending[:chunk_size]
                pending = pending[chunk_size:]
        if pending:
            yield pending
        self._closed = True

    def iter_lines(self) -> Iterator[str]:
        pending = ""
        enc = self.encoding or "utf-8"
        decoder = __import__("codecs").getincrementaldecoder(enc)(errors="replace")
        for chunk in self.iter_bytes():
            pending += decoder.decode(chunk)
            lines = pending.splitlines(keepends=True)
            pending = ""
            for line in lines:
                if line.endswith(("\n", "\r")):
                    yield line.rstrip("\r\n")
                else:
                    pending = line
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending

    @property
    def body(self) -> "ResponseBody":
        b = self._body
        if b is None:
            b = self._body = ResponseBody(self)
        return b

    def close(self) -> None:
        """Done with the body. Before EOF: a remainder of known size up to
        drain_limit is drained (for at most 50 ms) and the connection pooled,
        anything else closes it. Idempotent."""
        if not self._closed:
            self._closed = True
            self._x.close()

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
                f"unclosed response body: {self.request.method} {x.url} was neither read "
                "to EOF nor closed; closing it", ResourceWarning, stacklevel=1)
        self._closed = True
        x.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason}]>"


class ResponseBody(io.RawIOBase):
    """The response body as a readable binary file object."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self._r = response

    def readable(self) -> bool:
        return True

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
