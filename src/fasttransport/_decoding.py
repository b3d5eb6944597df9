"""Response decoding: transparent gzip (Go's rules) and the deflate, br and
zstd decoders, pull-model and bounded by what the caller reads."""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Type

from .errors import BodyTooLarge, RemoteProtocolError
from .headers import Headers

if TYPE_CHECKING:
    from ._core import Exchange
    from .models import Request

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


def _import_first(*names: str) -> Optional[ModuleType]:
    """The first of these modules that can be imported, or None."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:  # pragma: no cover - depends on the environment
            continue
    return None  # pragma: no cover - depends on the environment


_brotli = _import_first("brotli", "brotlicffi")
_zstd = _import_first("zstandard")
# Python 3.14+ without zstandard
_zstd_std = _import_first("compression.zstd") if _zstd is None else None


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
        out: List[bytes] = []
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

    def read(self, x: Exchange, n: int) -> bytes:
        """Up to n decoded bytes (n < 0: all the rest) from exchange x."""
        if self._closed:
            raise self._error(self.closed_text)
        if n == 0:
            return b""
        if n < 0:
            pieces = [self._pending[self._pos:]]
            self._pending, self._pos = b"", 0
            while True:
                piece = self.read(x, _DECODE_PIECE)
                if not piece:
                    return b"".join(pieces)
                pieces.append(piece)
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
        self._d: Optional[zlib._Decompress] = None
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
        assert _brotli is not None           # registered only when it is there
        self._d: Any = _brotli.Decompressor()
        self._fed = False

    def pull(self, limit: int) -> bytes:
        d = self._d
        try:
            if hasattr(d, "can_accept_more_data"):
                if self._in and d.can_accept_more_data():
                    data, self._in = self._in, b""
                    self._fed = True
                    out: bytes = d.process(data, output_buffer_limit=limit)
                    if out:
                        return out
                # output the decoder still holds (it may hold some even
                # when it can take more input)
                if self._fed and not d.is_finished():
                    held: bytes = d.process(b"", output_buffer_limit=limit)
                    return held
                return b""
            if not self._in:
                return b""
            data, self._in = self._in, b""
            self._fed = True
            whole: bytes = d.process(data) if hasattr(d, "process") else d.decompress(data)
            return whole
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
                self._d = _zstd_decompressor()
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


def _zstd_decompressor() -> Any:
    """A streaming zstd decompressor: zstandard's, else compression.zstd's."""
    if _zstd is not None:
        return _zstd.ZstdDecompressor().decompressobj()
    assert _zstd_std is not None         # _ZstdDecoder is registered only with one
    return _zstd_std.ZstdDecompressor()


#: Decoded bytes asked of a decoder per call when the caller wants it all.
_DECODE_PIECE = 1 << 20
#: Raw bytes read per call to feed a decoder.
_RAW_PIECE = 16384


#: Codings decoded when the caller asked for them (and the package is there).
_ON_REQUEST: Dict[str, Type[_Decoder]] = {"deflate": _DeflateDecoder}
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


def _pick_decoder(x: Exchange, headers: Headers, request: Request,
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
