"""Request bodies: what the native write loop sends for ``content=``,
``data=``, ``json=`` and ``files=`` (bytes in memory, or a stream pulled
while it is sent), multipart/form-data included."""

from __future__ import annotations

import io
import json as _json
import mimetypes
import os
import stat
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlencode

from .headers import Headers

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

    def __init__(self, make: Callable[[], Iterator[bytes]], length: int = -1) -> None:
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
        pos: int = f.tell()
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
        end: int = f.seek(0, io.SEEK_END)
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


def _file_body(f: Any) -> Tuple[_BodyStream, bool, bool]:
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


def _iter_body(it: Iterable[Any]) -> Tuple[_BodyStream, bool, bool]:
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


#: A request body as the write loop takes it: bytes in memory, a stream
#: pulled while it is sent, or None.
RequestBody = Union[bytes, _BodyStream, None]


def _encode_body(content: Any, data: Any, json: Any, files: Any,
                 headers: Headers) -> Tuple[RequestBody, bool, bool]:
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
