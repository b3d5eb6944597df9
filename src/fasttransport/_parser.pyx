# cython: language_level=3
"""Python access to the response parser in csrc/parser.c.

This module exists for the parser's tests and its micro-benchmark; the
transport itself calls the C functions directly. Every function raises
``ParseError`` carrying Go's error text when the input is malformed.
"""
from collections import namedtuple

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.string cimport memcpy, strlen
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from fasttransport._cparser cimport *
from fasttransport._names cimport header_name

cdef enum:
    _ERRCAP = 1024


class ParseError(ValueError):
    """Malformed response framing; str(error) is Go's text for the same input.

    ``partial`` holds body bytes decoded by the failing ``ChunkedDecoder.feed``
    call before the error (empty for head errors).
    """

    def __init__(self, message, partial=b""):
        super().__init__(message)
        self.partial = partial


_KINDS = {FT_BODY_NONE: "none", FT_BODY_LENGTH: "length",
          FT_BODY_CHUNKED: "chunked", FT_BODY_CLOSE: "close"}


class ParsedHead(namedtuple("ParsedHead", [
        "head_len", "version", "status", "reason", "headers", "framing",
        "content_length", "body_length", "close", "deleted"])):
    """A parsed response head.

    headers: (name, value) pairs in wire order, latin-1 decoded, names
    canonicalised, without the fields the framing rules delete (those are in
    ``deleted``). framing: "none", "length", "chunked" or "close".
    """
    __slots__ = ()

    @property
    def kind(self):
        return self.framing


cdef str _err_text(const char *err):
    return err[:strlen(err)].decode("utf-8", "surrogateescape")


cdef inline str _latin1(const char *buf, size_t off, size_t n):
    # straight from the buffer: no intermediate bytes object
    return PyUnicode_DecodeLatin1(buf + off, <Py_ssize_t>n, NULL)


def find_head_end(data) -> int:
    """Length of the response head in data, blank line included; 0 if the
    head is not complete yet."""
    cdef const unsigned char[:] view = bytes(data)
    cdef size_t scan = 0
    if view.shape[0] == 0:
        return 0
    return ft_find_head_end(<const char *>&view[0], view.shape[0], &scan)


cdef class HeadFinder:
    """Incremental head search over data fed in pieces (resumable scan)."""
    cdef bytearray _buf
    cdef size_t _scan
    cdef size_t _found

    def __init__(self):
        self._buf = bytearray()
        self._scan = 0
        self._found = 0

    def feed(self, data) -> int:
        """Append data; return the head length once known, else 0."""
        if self._found:
            return self._found
        self._buf += data
        if len(self._buf) == 0:
            return 0
        cdef char *p = self._buf
        self._found = ft_find_head_end(p, len(self._buf), &self._scan)
        return self._found


cdef class _Fields:
    """Owns a growable ft_header array."""
    cdef ft_head h
    cdef size_t cap

    def __cinit__(self, size_t cap):
        self.cap = cap
        self.h.headers = <ft_header *>malloc((cap if cap else 1) * sizeof(ft_header))
        if self.h.headers == NULL:
            raise MemoryError()
        self.h.cap = cap
        self.h.nheaders = 0

    def __dealloc__(self):
        free(self.h.headers)

    cdef grow(self, size_t need):
        cdef ft_header *p
        if need <= self.cap:
            need = self.cap * 2 + 1
        p = <ft_header *>realloc(self.h.headers, need * sizeof(ft_header))
        if p == NULL:
            raise MemoryError()
        self.h.headers = p
        self.cap = need
        self.h.cap = need

    cdef tuple split(self, const char *buf):
        cdef list live = [], gone = []
        cdef size_t i
        cdef ft_header *hd
        for i in range(self.h.nheaders):
            hd = &self.h.headers[i]
            pair = (header_name(buf + hd.name_off, hd.name_len),
                    _latin1(buf, hd.value_off, hd.value_len))
            if hd.flags & FT_HDR_DELETED:
                gone.append(pair)
            else:
                live.append(pair)
        return live, gone


def parse_response_head(data, bint request_is_head=False, size_t header_cap=32):
    """Parse the response head at the start of data.

    Returns None while the head is incomplete, else a ParsedHead. Raises
    ParseError with Go's text for a malformed status line, header block or
    framing headers. header_cap is the initial size of the header array (it
    grows when the parser asks for more).
    """
    cdef bytes b = bytes(data)
    cdef size_t scan = 0, head_len
    cdef char err[_ERRCAP]
    cdef char small[2048]
    cdef char *buf = NULL
    cdef int rc
    cdef ft_framing f
    cdef _Fields fields
    if len(b) == 0:
        return None
    head_len = ft_find_head_end(b, len(b), &scan)
    if head_len == 0:
        return None
    fields = _Fields(header_cap)
    # the parser rewrites the head in place: work on a copy
    if head_len <= sizeof(small):
        buf = small
    else:
        buf = <char *>malloc(head_len)
    if buf == NULL:
        raise MemoryError()
    try:
        memcpy(buf, <const char *>b, head_len)
        while True:
            rc = ft_parse_head(buf, head_len, &fields.h, err, _ERRCAP)
            if rc != FT_PMORE:
                break
            fields.grow(fields.h.nheaders)
        if rc == FT_PERR:
            raise ParseError(_err_text(err))
        rc = ft_framing_for(buf, &fields.h, request_is_head, &f, err, _ERRCAP)
        if rc == FT_PERR:
            raise ParseError(_err_text(err))
        live, gone = fields.split(buf)
        # tuple.__new__ skips the named tuple's Python-level __new__
        return tuple.__new__(ParsedHead, (
            head_len, (fields.h.version_major, fields.h.version_minor),
            fields.h.status,
            _latin1(buf, fields.h.reason_off, fields.h.reason_len),
            live, _KINDS[f.kind], f.content_length, f.body_length,
            bool(f.close), gone))
    finally:
        if buf != small:
            free(buf)


cdef list _parse_fields_block(bytearray block):
    """Header fields (no status line) in block, as ft_parse_fields sees them."""
    cdef _Fields fields = _Fields(4)
    cdef char err[_ERRCAP]
    cdef int rc
    cdef char *p
    if len(block) == 0:
        return []
    p = block
    while True:
        fields.h.nheaders = 0
        rc = ft_parse_fields(p, 0, len(block), &fields.h, err, _ERRCAP)
        if rc != FT_PMORE:
            break
        fields.grow(fields.h.nheaders)
    if rc == FT_PERR:
        raise ParseError(_err_text(err))
    return fields.split(p)[0]


def parse_fields(data) -> list:
    """Parse header fields without a status line (a trailer block)."""
    return _parse_fields_block(bytearray(data))


def go_quote(data) -> str:
    """Go's %q rendering of the bytes in data."""
    cdef bytes b = bytes(data)
    cdef size_t cap = len(b) * 10 + 3
    cdef char *out = <char *>malloc(cap)
    if out == NULL:
        raise MemoryError()
    try:
        ft_quote(b, len(b), out, cap)
        return out[:strlen(out)].decode("utf-8")
    finally:
        free(out)


cdef class ChunkedDecoder:
    """Decode a chunked body fed in arbitrary pieces.

    max_data caps each data span the C decoder returns (0: no cap). With
    direct=True, chunk data that arrives while no framing is buffered is
    taken straight from the fed bytes through ft_chunked_data_left /
    ft_chunked_took_data, the way a caller reads data into its own buffer.
    """
    cdef ft_chunked c
    cdef bytearray _buf
    cdef size_t _max_data
    cdef bint _direct
    cdef bint _done
    cdef object _error
    cdef list _trailers

    def __init__(self, size_t max_data=0, bint direct=False):
        ft_chunked_init(&self.c)
        self._buf = bytearray()
        self._max_data = max_data
        self._direct = direct
        self._done = False
        self._error = None
        self._trailers = []

    @property
    def done(self) -> bool:
        return self._done

    @property
    def trailers(self) -> list:
        return list(self._trailers)

    @property
    def in_trailer(self) -> bool:
        return bool(ft_chunked_in_trailer(&self.c))

    @property
    def unconsumed(self) -> bytes:
        """Bytes held back: an incomplete line, or what follows the body."""
        return bytes(self._buf)

    def feed(self, data) -> bytes:
        """Add data; return the body bytes it completed. Raises ParseError."""
        cdef bytes b = bytes(data)
        cdef list out = []
        cdef uint64_t left
        cdef size_t take, pos = 0, consumed, doff, dlen
        cdef char err[_ERRCAP]
        cdef char *p
        cdef int rc
        if self._error is not None:
            raise ParseError(self._error)
        if self._done:
            self._buf += b
            return b""
        if self._direct and len(self._buf) == 0:
            left = ft_chunked_data_left(&self.c)
            if left:
                take = <size_t>min(left, <uint64_t>len(b))
                out.append(b[:take])
                ft_chunked_took_data(&self.c, take)
                b = b[take:]
        self._buf += b
        while True:
            p = self._buf
            rc = ft_chunked_next(&self.c, p + pos, len(self._buf) - pos,
                                 self._max_data, &consumed, &doff, &dlen,
                                 err, _ERRCAP)
            if rc == FT_CH_DATA:
                out.append(bytes(self._buf[pos + doff:pos + doff + dlen]))
                pos += consumed
            elif rc == FT_CH_MORE:
                pos += consumed
                break
            elif rc == FT_CH_DONE:
                block = self._buf[pos + self.c.trailer_off:
                                  pos + self.c.trailer_off + self.c.trailer_len]
                pos += consumed
                del self._buf[:pos]
                try:
                    self._trailers = _parse_fields_block(block)
                except ParseError as e:
                    self._error = str(e)
                    raise ParseError(self._error, b"".join(out)) from None
                self._done = True
                return b"".join(out)
            else:
                self._error = _err_text(err)
                del self._buf[:pos]
                raise ParseError(self._error, b"".join(out))
        del self._buf[:pos]
        return b"".join(out)


def bench_parse(data, Py_ssize_t n) -> float:
    """Nanoseconds per ft_find_head_end + ft_parse_head + ft_framing_for on
    the head in data, measured over n runs in C without the GIL (the head is
    copied into a scratch buffer first each time, as parsing rewrites it)."""
    cdef bytes b = bytes(data)
    cdef size_t L = len(b), scan, hl
    cdef char *scratch
    cdef char err[_ERRCAP]
    cdef ft_framing f
    cdef _Fields fields = _Fields(64)
    cdef timespec t0, t1
    cdef Py_ssize_t i
    cdef int rc
    cdef const char *src = b
    if n <= 0:
        raise ValueError("n must be positive")
    if parse_response_head(b) is None:
        raise ParseError("incomplete response head")
    scratch = <char *>malloc(L if L else 1)
    if scratch == NULL:
        raise MemoryError()
    try:
        while True:  # size the header array outside the timed loop
            memcpy(scratch, <const char *>b, L)
            scan = 0
            hl = ft_find_head_end(scratch, L, &scan)
            rc = ft_parse_head(scratch, hl, &fields.h, err, _ERRCAP)
            if rc != FT_PMORE:
                break
            fields.grow(fields.h.nheaders)
        with nogil:
            clock_gettime(CLOCK_MONOTONIC, &t0)
            for i in range(n):
                memcpy(scratch, src, L)
                scan = 0
                hl = ft_find_head_end(scratch, L, &scan)
                ft_parse_head(scratch, hl, &fields.h, err, _ERRCAP)
                ft_framing_for(scratch, &fields.h, 0, &f, err, _ERRCAP)
            clock_gettime(CLOCK_MONOTONIC, &t1)
    finally:
        free(scratch)
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n
