"""Types of the Python access to the response parser (_parser.pyx)."""

from typing import List, Literal, NamedTuple, Optional, Tuple

from _typeshed import ReadableBuffer
from typing_extensions import disjoint_base

class ParseError(ValueError):
    """Malformed response framing; str(error) is Go's text for the same input."""

    partial: bytes
    def __init__(self, message: str, partial: bytes = b"") -> None: ...

class ParsedHead(NamedTuple):
    """A parsed response head."""

    head_len: int
    version: Tuple[int, int]
    status: int
    reason: str
    headers: List[Tuple[str, str]]
    framing: Literal["none", "length", "chunked", "close"]
    content_length: int
    body_length: int
    close: bool
    deleted: List[Tuple[str, str]]
    @property
    def kind(self) -> Literal["none", "length", "chunked", "close"]: ...

def find_head_end(data: ReadableBuffer) -> int: ...

@disjoint_base
class HeadFinder:
    """Incremental head search over data fed in pieces."""

    def __init__(self) -> None: ...
    def feed(self, data: ReadableBuffer) -> int: ...

def parse_response_head(data: ReadableBuffer, request_is_head: bool = False,
                        header_cap: int = 32) -> Optional[ParsedHead]: ...
def parse_fields(data: ReadableBuffer) -> List[Tuple[str, str]]: ...
def go_quote(data: ReadableBuffer) -> str: ...

@disjoint_base
class ChunkedDecoder:
    """Decode a chunked body fed in arbitrary pieces."""

    def __init__(self, max_data: int = 0, direct: bool = False) -> None: ...
    @property
    def done(self) -> bool: ...
    @property
    def trailers(self) -> List[Tuple[str, str]]: ...
    @property
    def in_trailer(self) -> bool: ...
    @property
    def unconsumed(self) -> bytes: ...
    def feed(self, data: ReadableBuffer) -> bytes: ...

def bench_parse(data: ReadableBuffer, n: int) -> float:
    """Nanoseconds per parse of the head in data, timed in C over n runs."""
