"""Request, Response and Headers.

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
import mimetypes
import os
import re
import stat
import threading
import warnings
import zlib
from functools import lru_cache
from typing import (
    Any,
    AsyncIterator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from . import _core
from .errors import BodyTooLarge, HTTPStatusError, InvalidRequest, RemoteProtocolError

__all__ = ["Headers", "Request", "Response"]

HeaderTypes = Union["Headers", Mapping[str, str], Sequence[Tuple[str, str]], None]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The redirect statuses a client follows (with a Location).
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


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
        _check_headers(((name, value),))     # what a Request would refuse
        low = name.lower()
        self._list = [(k, v) for k, v in self._list if k.lower() != low]
        self._list.append((name, value))
        self._index = None

    def add(self, name: str, value: str) -> None:
        _check_headers(((name, value),))
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


_urlsplit_uncached = getattr(urlsplit, "__wrapped__", urlsplit)
#: URLs up to this long are parsed once and kept (2,048 of them at most, so
#: the caches hold a few MiB at worst); longer ones are parsed each time.
_CACHED_URL_MAX = 2048
_URL_CTL = re.compile(r"[\x00-\x1f\x7f]")
_URL_PW = re.compile(r"(//[^/?#@:]*:)[^/?#@]*@")


class _URL:
    """A parsed request URL: what the transport needs, computed once per
    distinct URL string."""

    __slots__ = ("raw", "scheme", "host", "port", "target", "host_header", "key",
                 "host_bytes", "redacted", "userinfo")

    def __init__(self, raw: str) -> None:
        if _URL_CTL.search(raw):
            # urlsplit would strip CR, LF and TAB silently; Go refuses them
            shown = _json.dumps(_URL_PW.sub(r"\1***@", raw))
            raise InvalidRequest(f"parse {shown}: net/url: invalid control character in URL",
                                 url=_URL_PW.sub(r"\1***@", raw))
        try:
            # the standard library keeps its last 128 results (3.11+): a
            # long URL is split without that cache
            parts: SplitResult = (urlsplit if len(raw) <= _CACHED_URL_MAX
                                  else _urlsplit_uncached)(raw)
            port = parts.port
        except ValueError:
            raise _url_error(raw) from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            what = parts.scheme if parts.scheme else ""
            raise InvalidRequest(f'unsupported protocol scheme "{what}"', url=_redact_url(raw))
        # The host as written: Go's canonicalAddr keeps ASCII case (the pool
        # key of "Example.com" differs from "example.com"); non-ASCII names go
        # through IDNA (Go: idna.ToASCII).
        hostport_raw = parts.netloc.rpartition("@")[2]
        if hostport_raw.startswith("["):
            host = hostport_raw[1:].partition("]")[0]
        else:
            host = hostport_raw.partition(":")[0]
        if not host:
            raise InvalidRequest("http: no Host in request URL", url=_redact_url(raw))
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as e:
                shown = _redact_url(raw)
                raise InvalidRequest(f'parse "{shown}": invalid host name "{host}" ({e})',
                                     url=shown) from None
        bad = next((c for c in host if c in " \r\n\t\x00/\\[]"), None)
        if bad is not None:
            shown = _redact_url(raw)
            raise InvalidRequest(f'parse "{shown}": invalid character "{bad}" in host name',
                                 url=shown)
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


def _redact_url(raw: str) -> str:
    """A URL for an error: the password of its userinfo as ***."""
    return _URL_PW.sub(r"\1***@", raw)


def _url_error(raw: str) -> InvalidRequest:
    """The error for a URL the standard library cannot split, in Go's words
    (url.Parse's ``parse "<url>": <cause>``; a port out of range passes
    Go's parser and fails at the dial, as here)."""
    shown = _redact_url(raw)
    netloc = raw.partition("//")[2]
    for sep in "/?#":
        netloc = netloc.partition(sep)[0]
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("[") and "]" not in hostport:
        cause = "missing ']' in host"
    elif hostport.startswith("["):
        literal, _, rest = hostport[1:].partition("]")
        if rest and not rest.startswith(":"):
            cause = f'invalid port "{rest}" after host'
        elif rest[1:] and not rest[1:].isdigit():
            cause = f'invalid port "{rest}" after host'
        elif rest[1:]:
            return InvalidRequest(f"dial tcp: address {rest[1:]}: invalid port", url=shown)
        else:
            cause = f'invalid IP literal "[{literal}]" in host'
    elif "[" in hostport or "]" in hostport:
        bad = "[" if "[" in hostport else "]"
        cause = f'invalid character "{bad}" in host name'
    else:
        port = hostport.rpartition(":")[2]
        if port.isdigit():
            return InvalidRequest(f"dial tcp: address {port}: invalid port", url=shown)
        cause = f'invalid port ":{port}" after host'
    return InvalidRequest(f'parse "{shown}": {cause}', url=shown)


def _forget_long_url(url: str) -> None:
    """After a URL too long to keep went through the standard library
    (urljoin, the cookie jar), empty its urlsplit cache (3.11+ keeps the last
    128 results, whatever their size)."""
    if len(url) > _CACHED_URL_MAX and hasattr(urlsplit, "cache_clear"):
        urlsplit.cache_clear()


@lru_cache(maxsize=2048)
def _parse_cached_url(raw: str) -> _URL:
    return _URL(raw)


def _parse_url(raw: str) -> _URL:
    """The parsed URL, from a bounded cache for ordinary URLs (a crawler
    following multi-megabyte redirect URLs must not keep them)."""
    if len(raw) <= _CACHED_URL_MAX:
        return _parse_cached_url(raw)
    return _URL(raw)


def _merge_params(url: str, params: Any) -> str:
    """url with params appended to its query: a mapping or (key, value)
    pairs; a list or tuple value repeats its key (``b=x&b=y``), a None value
    leaves the key out, as requests and httpx do."""
    if not params:
        return url
    items = params.items() if isinstance(params, Mapping) else params
    pairs = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            pairs.extend((k, x) for x in v if x is not None)
        else:
            pairs.append((k, v))
    if not pairs:
        return url
    query = urlencode(pairs, doseq=False)
    base, sep, frag = url.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith("?") or base.endswith("&"):
        joiner = ""
    return base + joiner + query + (sep + frag)


# ---- requests ---------------------------------------------------------------


def _check_headers(pairs: Iterable[Tuple[str, str]]) -> None:
    """Raise InvalidRequest (Go's texts, the value never echoed) for a name
    that is not a token or a value with CR, LF, NUL or another control byte,
    or with a character that latin-1 cannot carry."""
    is_token, is_valid_value = _core.is_token, _core.is_valid_value
    for name, value in pairs:
        if not is_token(name):
            raise InvalidRequest(f'net/http: invalid header field name "{name}"')
        if not is_valid_value(value) or not (value.isascii() or _is_latin1(value)):
            raise InvalidRequest(f'net/http: invalid header field value for "{name}"')


def _is_latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


# ---- request bodies ----------------------------------------------------------
#
# ``_encode_body`` turns a body into what the native write loop sends: bytes
# (in memory: bytes, str, forms, JSON, multipart), or a ``_BodyStream`` that
# the write loop pulls from piece by piece while it sends (iterables and
# files: never gathered in memory; framed with the chunked coding when the
# length is unknown). What a redirect or a retry needs to know is recorded on
# the Request: ``_one_shot`` is true when the body came from a source that
# cannot be produced again (an iterator or generator, a file that cannot seek).

_CHUNK = 65536


class _BodyStream:
    """A request body produced while it is sent: each iteration starts the
    source again (a list, a seekable file from its starting position); a
    one-shot source (an iterator, a pipe) can be iterated once. ``length`` is
    the declared size, -1 when unknown (sent chunked)."""

    __slots__ = ("_make", "length")

    def __init__(self, make: Any, length: int = -1) -> None:
        self._make = make
        self.length = length

    def __iter__(self) -> Iterator[bytes]:
        return self._make()


class _FileSource(_BodyStream):
    """A regular file opened in binary mode (what ``open(path, "rb")``
    returns): the native write loop reads it itself with pread(2) from
    ``start`` - no Python per piece, and the file's own position is left
    alone - so each send starts again from ``start``. Iterating it reads it
    in Python, as any other stream."""

    __slots__ = ("file", "start")

    def __init__(self, f: Any, start: int, length: int) -> None:
        def pieces() -> Iterator[bytes]:
            f.seek(start)
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                yield chunk
        super().__init__(pieces, length)
        self.file = f
        self.start = start

    @property
    def pread_source(self) -> Tuple[int, int, int]:
        """(fd, offset, length) for the native write loop."""
        return self.file.fileno(), self.start, self.length


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"request body chunks must be bytes or str, not {type(chunk).__name__}")


def _file_size(f: Any) -> int:
    """Bytes left in a binary file from its current position: os.fstat for a
    regular file, seek/tell for another seekable one; -1 when unknown (pipes,
    sockets, streams)."""
    try:
        pos = f.tell()
    except (AttributeError, OSError, ValueError):
        return -1
    try:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode):
            return max(st.st_size - pos, 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if not f.seekable():
            return -1
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
    except (AttributeError, OSError, ValueError):
        return -1
    return max(end - pos, 0)


def _is_regular(f: Any) -> bool:
    try:
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _file_body(f: Any) -> Tuple[Any, bool, bool]:
    """(stream, chunked, one_shot) for a file object, read in 64 KiB pieces
    as the write loop sends them (a plain binary file by the native write
    loop itself, see _FileSource). A binary file of known size is sent with
    that Content-Length (a file that then yields a different number of bytes
    fails the exchange with Go's ``http: ContentLength=N with Body length
    M``); text files and files of unknown size are sent chunked. A file that
    cannot seek is a one-shot source; a seekable one starts again from its
    current position each time it is sent."""
    one_shot = not _seekable(f)
    start = None if one_shot else f.tell()
    text = isinstance(f, io.TextIOBase)
    end = "" if text else b""
    if type(f) in (io.BufferedReader, io.FileIO) and start is not None:
        size = _file_size(f)
        if size >= 0 and _is_regular(f):
            return _FileSource(f, start, size), False, False

    def pieces() -> Iterator[bytes]:
        if start is not None:
            f.seek(start)
        for chunk in iter(lambda: f.read(_CHUNK), end):
            yield _as_bytes(chunk)

    size = -1 if text else _file_size(f)
    return _BodyStream(pieces, size), size < 0, one_shot


def _iter_body(it: Iterable[Any]) -> Tuple[Any, bool, bool]:
    """(stream, chunked, one_shot) for an iterable of bytes/str, sent chunked
    as it is produced; an iterator (iter(x) is x, e.g. a generator) is a
    one-shot source, a list or tuple is not."""
    one_shot = iter(it) is it
    return _BodyStream(lambda: (_as_bytes(c) for c in it)), True, one_shot


def _quote_param(value: str) -> str:
    """A multipart name or filename parameter, escaped as browsers do (HTML
    form-data: ``"`` CR LF percent-encoded)."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _multipart_body(data: Any, files: Any,
                    boundary: Optional[str] = None) -> Tuple[bytes, str, bool]:
    """(body, content type, one_shot) of a multipart/form-data body: the
    fields of ``data`` (mapping or pairs; list values repeat the field), then
    ``files``: a mapping or pairs of name -> file object, bytes, str, or a
    tuple (filename, content[, content_type]); filename None sends a plain
    field. The filename defaults to the file's base name, else the field
    name; the part's Content-Type to a guess from the filename, else
    application/octet-stream. Raises TypeError for other values."""
    boundary = boundary or os.urandom(16).hex()
    bound = boundary.encode("ascii")
    parts: List[bytes] = []
    one_shot = False

    def part(name: str, content: bytes, filename: Optional[str], ctype: Optional[str]) -> None:
        disp = f'form-data; name="{_quote_param(str(name))}"'
        if filename is not None:
            disp += f'; filename="{_quote_param(filename)}"'
        head = f"Content-Disposition: {disp}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        parts.append(b"--" + bound + b"\r\n" + head.encode("utf-8") + b"\r\n" + content
                     + b"\r\n")

    if data:
        items = data.items() if isinstance(data, Mapping) else data
        for name, value in items:
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                content = v if isinstance(v, bytes) else str(v).encode("utf-8")
                part(name, content, None, None)
    items = files.items() if isinstance(files, Mapping) else files
    for name, value in items:
        filename: Optional[str]
        ctype: Optional[str] = None
        if isinstance(value, tuple):
            if not 2 <= len(value) <= 3:
                raise TypeError("a files= tuple is (filename, content[, content_type])")
            filename, content = value[0], value[1]
            if len(value) == 3:
                ctype = value[2]
        else:
            content = value
            fname = getattr(value, "name", None)
            if isinstance(fname, str) and fname and not fname.startswith("<"):
                filename = os.path.basename(fname)
            else:
                filename = str(name)
        if hasattr(content, "read"):
            one_shot = one_shot or not _seekable(content)
            raw = content.read()
            content = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        elif isinstance(content, str):
            content = content.encode("utf-8")
        elif isinstance(content, (bytes, bytearray, memoryview)):
            content = bytes(content)
        else:
            raise TypeError(f"files= content must be a file, bytes or str, "
                            f"not {type(content).__name__}")
        if filename is not None and ctype is None:
            ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        part(name, content, filename, ctype)
    parts.append(b"--" + bound + b"--\r\n")
    return b"".join(parts), f"multipart/form-data; boundary={boundary}", one_shot


def _encode_body(content: Any, data: Any, json: Any, files: Any,
                 headers: Headers) -> Tuple[Optional[bytes], bool, bool]:
    """(bytes to send, chunked, one_shot) of a request body, adding a
    Content-Type for json, data and files unless the caller set one.

    - json: compact JSON, ``application/json``;
    - files (with data as extra fields): multipart/form-data;
    - data: a mapping or pairs -> ``application/x-www-form-urlencoded``
      (bytes or str data are sent as they are);
    - content: bytes, str (UTF-8), a binary file (Content-Length from its size,
      chunked when unknown), or an iterable of bytes/str (chunked).
    Raises TypeError for anything else."""
    if json is not None:
        if "content-type" not in headers:
            headers.add("Content-Type", "application/json")
        return (_json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode(),
                False, False)
    if files:
        body, ctype, one_shot = _multipart_body(data, files)
        if "content-type" not in headers:
            headers.add("Content-Type", ctype)
        return body, False, one_shot
    if data is not None:
        if isinstance(data, (bytes, str)):
            content = data
        else:
            if "content-type" not in headers:
                headers.add("Content-Type", "application/x-www-form-urlencoded")
            items = data.items() if isinstance(data, Mapping) else data
            return urlencode(list(items), doseq=True).encode(), False, False
    if content is None:
        return None, False, False
    if isinstance(content, bytes):
        return content, False, False
    if isinstance(content, str):
        return content.encode("utf-8"), False, False
    if isinstance(content, (bytearray, memoryview)):
        return bytes(content), False, False
    if hasattr(content, "read"):
        return _file_body(content)
    if isinstance(content, Iterable):
        return _iter_body(content)
    raise TypeError(f"unsupported content type: {type(content).__name__}")


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

    def __init__(self, method: str, url: str, *, headers: HeaderTypes = None,
                 content: Any = None, data: Any = None, json: Any = None,
                 files: Any = None, params: Any = None,
                 max_body_size: Optional[int] = None) -> None:
        # the setters' checks, inline (this is on every request's path)
        if not isinstance(method, str) or not _core.is_token(method):
            raise InvalidRequest(f'net/http: invalid method "{method}"', method=str(method),
                                 url=str(url))
        url = _merge_params(str(url), params)
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
        self.extensions: dict = {}
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


# ---- responses --------------------------------------------------------------


# ---- transparent decompression ---------------------------------------------
#
# Go's transparent gzip: when the transport asked for gzip itself (the caller
# set no Accept-Encoding, disable_compression is off, no Range, not HEAD), a
# gzip response is decoded and its Content-Encoding and Content-Length are
# removed. A gzip response to a request whose caller set Accept-Encoding
# (gzip included) passes through unchanged, as in Go.
#
# Go never asks for deflate, br or zstd. When the caller's own
# Accept-Encoding lists one of them and the response uses it, the body is
# decoded the same way: deflate (zlib-wrapped or raw) always, br with the
# ``brotli`` (or ``brotlicffi``) package, zstd with ``zstandard`` (or the
# standard library's ``compression.zstd``); without the package the response
# passes through unchanged. Corrupt data raises RemoteProtocolError naming the
# method, the URL and the encoding, on the read that meets it.

try:
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import brotlicffi as _brotli
    except ImportError:
        _brotli = None

try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None
_zstd_std: Any = None
if _zstd is None:  # pragma: no cover - Python 3.14+ without zstandard
    try:
        from compression import zstd as _zstd_std
    except ImportError:
        pass


class _Decoder:
    """Incremental, output-bounded decoding of a response body.

    Compressed bytes go in with ``push``; ``pull(limit)`` returns decoded
    bytes, at most about ``limit`` of them (plus a small constant: one zstd
    block, 128 KiB), b"" when it needs more input; ``finish`` checks that
    the stream ended where the body did. ``read`` serves a caller n decoded
    bytes at a time this way, so a bomb costs memory in proportion to what
    is read, never to the compression ratio; ``max_size`` bounds the whole
    decoded body (BodyTooLarge). Errors are RemoteProtocolError
    ``<Op> "<url>": <name>: <cause>``."""

    __slots__ = ("_op", "_url", "_pending", "_pos", "_closed", "_in", "_total", "max_size")
    name = ""
    closed_text = "http: read on closed response body"

    def __init__(self, op: str, url: str) -> None:
        self._op, self._url = op, url
        self._pending = b""
        self._pos = 0
        self._closed = False
        self._in = b""
        self._total = 0
        self.max_size = 0

    def close(self) -> None:
        """The body was closed: decoded bytes still kept are dropped and
        later reads fail (never served after close)."""
        self._closed = True
        self._pending, self._pos, self._in = b"", 0, b""

    def _error(self, cause: str) -> RemoteProtocolError:
        return RemoteProtocolError(f'{self._op} "{self._url}": {cause}',
                                   method=self._op.upper(), url=self._url)

    def push(self, data: bytes) -> None:
        self._in = self._in + data if self._in else data

    def pull(self, limit: int) -> bytes:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def feed(self, data: bytes) -> bytes:
        """All that data decodes to (for callers that bound their input)."""
        self.push(data)
        out = []
        while True:
            piece = self._counted(self.pull(_DECODE_PIECE))
            if not piece:
                return b"".join(out)
            out.append(piece)

    def _counted(self, piece: bytes) -> bytes:
        self._total += len(piece)
        if self.max_size and self._total > self.max_size:
            self.close()
            raise BodyTooLarge(f'{self._op} "{self._url}": http: response body too large '
                               f"(max_body_size={self.max_size})",
                               method=self._op.upper(), url=self._url)
        return piece

    def read(self, x: Any, n: int) -> bytes:
        """Up to n decoded bytes (n < 0: all the rest) from exchange x."""
        if self._closed:
            raise self._error(self.closed_text)
        if n == 0:
            return b""
        if n < 0:
            out = [self._pending[self._pos:]]
            self._pending, self._pos = b"", 0
            while True:
                piece = self.read(x, _DECODE_PIECE)
                if not piece:
                    return b"".join(out)
                out.append(piece)
        pending, pos = self._pending, self._pos
        while pos >= len(pending):
            pending, pos = self._counted(self.pull(max(n, 8192))), 0
            if pending:
                break
            raw = x.read(_RAW_PIECE)
            if not raw:
                self.finish()
                return b""
            self.push(raw)
        out = pending[pos:pos + n]
        self._pending, self._pos = pending, pos + len(out)
        return out


class _GzipDecoder(_Decoder):
    """gzip: concatenated members are joined; one level only; Go's texts
    ``gzip: invalid header``, ``gzip: invalid checksum``, ``unexpected EOF``."""

    __slots__ = ("_d", "_open")
    name = "gzip"
    closed_text = "file already closed"      # Go tip, for a gzip-decoded body

    def __init__(self, op: str, url: str) -> None:
        super().__init__(op, url)
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._open = False

    def pull(self, limit: int) -> bytes:
        while True:
            d = self._d
            if not d.unconsumed_tail and not self._in:
                return b""
            self._open = True
            try:
                out = d.decompress(d.unconsumed_tail or self._in, limit)
            except zlib.error as e:
                raise self._failed(e) from None
            if not d.unconsumed_tail:
                self._in = b""
            if d.eof:                         # a member ended: the next may follow
                self._in = d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._open = False
            if out:
                return out

    def _failed(self, e: Exception) -> RemoteProtocolError:
        msg = str(e)
        if "header" in msg:
            return self._error("gzip: invalid header")
        if "check" in msg:
            return self._error("gzip: invalid checksum")
        return self._error("gzip: " + (msg.partition(": ")[2] or msg))

    def finish(self) -> None:
        if self._open or self._d.unconsumed_tail:
            raise self._error("unexpected EOF")


class _DeflateDecoder(_Decoder):
    """deflate: the zlib format (RFC 1950, what the coding names) or raw
    deflate (RFC 1951, what some servers send), told apart by the zlib
    header; bytes after the end of the stream are ignored."""

    __slots__ = ("_d", "_done")
    name = "deflate"

    def __init__(self, op: str, url: str) -> None:
        super().__init__(op, url)
        self._d = None
        self._done = False

    def pull(self, limit: int) -> bytes:
        if self._done:
            self._in = b""
            return b""
        d = self._d
        if d is None:
            if len(self._in) < 2:
                return b""
            cmf, flg = self._in[0], self._in[1]
            is_zlib = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
            d = self._d = zlib.decompressobj(zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS)
        if not d.unconsumed_tail and not self._in:
            return b""
        try:
            out = d.decompress(d.unconsumed_tail or self._in, limit)
        except zlib.error as e:
            raise self._error("deflate: " + (str(e).partition(": ")[2] or str(e))) from None
        if not d.unconsumed_tail:
            self._in = b""
        if d.eof:
            self._done = True
        return out

    def finish(self) -> None:
        if not self._done and (self._d is not None or self._in):
            raise self._error("deflate: unexpected EOF")


class _BrotliDecoder(_Decoder):
    """br, with the brotli package (output-limited calls; brotlicffi, which
    has no output limit, decodes each raw piece whole)."""

    __slots__ = ("_d", "_fed")
    name = "br"

    def __init__(self, op: str, url: str) -> None:
        super().__init__(op, url)
        self._d = _brotli.Decompressor()
        self._fed = False

    def pull(self, limit: int) -> bytes:
        d = self._d
        try:
            if hasattr(d, "can_accept_more_data"):
                if self._in and d.can_accept_more_data():
                    data, self._in = self._in, b""
                    self._fed = True
                    out = d.process(data, output_buffer_limit=limit)
                    if out:
                        return out
                # output the decoder still holds (it may hold some even
                # when it can take more input)
                if self._fed and not d.is_finished():
                    return d.process(b"", output_buffer_limit=limit)
                return b""
            if not self._in:
                return b""
            data, self._in = self._in, b""
            self._fed = True
            return d.process(data) if hasattr(d, "process") else d.decompress(data)
        except Exception as e:  # noqa: BLE001 - brotli and brotlicffi raise different types
            raise self._error(f"br: invalid data ({e})") from None

    def finish(self) -> None:
        if self._fed and not self._d.is_finished():
            raise self._error("br: unexpected EOF")


class _ZstdDecoder(_Decoder):
    """zstd, with the zstandard package (or compression.zstd). The library
    has no output limit per call, so the input is handed over one block at
    a time (frame header, then each block, found from the block headers):
    a block never decodes to more than 128 KiB. Frames follow one another;
    skippable frames are skipped."""

    __slots__ = ("_d", "_state", "_checksum", "_open")
    name = "zstd"

    def __init__(self, op: str, url: str) -> None:
        super().__init__(op, url)
        self._d: Any = None
        self._state = "frame"
        self._checksum = False
        self._open = False

    def _unit(self) -> int:
        """Bytes of input that make the next unit (0: not all known yet)."""
        b = self._in
        if self._state == "frame":
            if len(b) < 4:
                return 0
            magic = int.from_bytes(b[:4], "little")
            if magic & 0xFFFFFFF0 == 0x184D2A50:            # skippable frame
                return 8 + int.from_bytes(b[4:8], "little") if len(b) >= 8 else 0
            if magic != 0xFD2FB528 or len(b) < 5:
                return len(b) if magic != 0xFD2FB528 else 0  # garbage: the library says why
            fhd = b[4]
            if fhd & 0x08:
                return len(b)        # a reserved bit: the library says why
            single = fhd >> 5 & 1
            fcs = (1 if single else 0, 2, 4, 8)[fhd >> 6]
            did = (0, 1, 2, 4)[fhd & 3]
            self._checksum = bool(fhd >> 2 & 1)
            return 5 + (0 if single else 1) + did + fcs
        if self._state == "block":
            if len(b) < 3:
                return 0
            h = b[0] | b[1] << 8 | b[2] << 16
            kind, size = h >> 1 & 3, h >> 3
            if kind == 3 or size > 1 << 17:
                return len(b)        # not a valid block: the library says why
            return 3 + (1 if kind == 1 else size)
        return 4                                             # the checksum

    def _advance(self, unit: bytes) -> None:
        if self._state == "frame":
            magic = int.from_bytes(unit[:4], "little")
            self._state = "frame" if magic & 0xFFFFFFF0 == 0x184D2A50 else "block"
        elif self._state == "block":
            if unit[0] & 1:                                  # the frame's last block
                self._state = "checksum" if self._checksum else "frame"
        else:
            self._state = "frame"

    def pull(self, limit: int) -> bytes:
        out = b""
        while not out:
            n = self._unit()
            if n == 0 or len(self._in) < n:
                return b""
            unit, self._in = self._in[:n], self._in[n:]
            if self._state == "frame":
                if int.from_bytes(unit[:4], "little") & 0xFFFFFFF0 == 0x184D2A50:
                    self._advance(unit)
                    continue                                 # skippable: nothing to decode
                self._d = (_zstd.ZstdDecompressor().decompressobj() if _zstd is not None
                           else _zstd_std.ZstdDecompressor())
            self._open = True
            try:
                out = self._d.decompress(unit)
            except Exception as e:  # noqa: BLE001 - each library raises its own type
                raise self._error(f"zstd: invalid data ({e})") from None
            self._advance(unit)
            if self._state == "frame":
                self._open = False
        return out

    def finish(self) -> None:
        if self._open or self._in:
            raise self._error("zstd: unexpected EOF")


#: Decoded bytes asked of a decoder per call when the caller wants it all.
_DECODE_PIECE = 1 << 20
#: Raw bytes read per call to feed a decoder.
_RAW_PIECE = 16384


#: Codings decoded when the caller asked for them (and the package is there).
_ON_REQUEST = {"deflate": _DeflateDecoder}
if _brotli is not None:
    _ON_REQUEST["br"] = _BrotliDecoder
if _zstd is not None or _zstd_std is not None:
    _ON_REQUEST["zstd"] = _ZstdDecoder


def _accepts(accept_encoding: str, coding: str) -> bool:
    """Does an Accept-Encoding value list coding (with a q-value above 0)?"""
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() != coding:
            continue
        for p in params.split(";"):
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    return float(v) > 0
                except ValueError:
                    return False
        return True
    return False


def _pick_decoder(x: Any, headers: "Headers", request: "Request",
                  gzip: bool) -> Optional[_Decoder]:
    """The decoder for a response with a body and a Content-Encoding, or None
    (see the rules above)."""
    enc = headers.get_list("Content-Encoding")
    if len(enc) != 1:
        return None
    coding = enc[0].strip().lower()
    if gzip:
        return _GzipDecoder(x.op, x.url) if coding == "gzip" else None
    cls = _ON_REQUEST.get(coding)
    if cls is None:
        return None
    ae = request.headers.get("Accept-Encoding")
    if not ae or not _accepts(ae, coding):
        return None
    return cls(x.op, x.url)


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

    def __init__(self, x: Any, request: Request, *, gzip: bool, elapsed: float,
                 stream: bool, transport: Any = None, decode: bool = True) -> None:
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
        self._aio: Any = None          # the AsyncClient whose engine reads it ahead
        self._encoding: Optional[str] = None
        #: How many times the client's Retry sent this hop again.
        self.retries = 0
        self._decoder: Optional[_Decoder] = None
        if (decode and x.has_body and x.content_length != 0
                and x.has_header(b"content-encoding")):
            dec = _pick_decoder(x, self.headers, request, gzip)
            if dec is not None:
                limit = request.max_body_size
                if limit is None and transport is not None:
                    limit = transport.max_body_size
                dec.max_size = limit or 0
                self._decoder = dec
                # decoded bytes are handed out in Python: one reader at a time
                self._rlock = threading.Lock()
                del self._headers["Content-Encoding"]
                if "Content-Length" in self._headers:
                    del self._headers["Content-Length"]

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
