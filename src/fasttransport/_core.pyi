"""Types of the native bridge (_core.pyx): the transport, cancel tokens,
completion queues, exchange plans and exchanges, and the request-head
helpers."""

from typing import Dict, Final, Iterable, List, Optional, Protocol, Tuple, Union, final

from _typeshed import ReadableBuffer, WriteableBuffer
from typing_extensions import Self, disjoint_base

#: Exchange.submit modes (core.h FT_JOB_*): the body read into memory, the
#: head only (the caller reads the body), the body read ahead into a buffer.
JOB_FULL: Final[int]
JOB_HEAD: Final[int]
JOB_AHEAD: Final[int]

#: Plan.socks for a SOCKS proxy URL scheme ("socks4", "socks4a", "socks5",
#: "socks5h").
SOCKS: Final[Dict[str, int]]

def monotonic_ns() -> int:
    """The clock the native deadlines use (CLOCK_MONOTONIC, ns)."""

def fork_generation() -> int:
    """How many times this process is a fork child of one using fasttransport."""

def forget_after_fork() -> None: ...
def inflight_count() -> int: ...
def is_token(s: str) -> bool:
    """RFC 9110 token: non-empty, visible ASCII, no separators."""

def is_valid_value(s: str) -> bool:
    """Header value without CR, LF, NUL or another control byte but HT."""

def build_head(method: str, target: str, host: str, headers: List[Tuple[str, str]],
               content_length: int, chunked: bool, add_gzip: bool, add_close: bool,
               default_ua: str) -> bytes:
    """A request head in Go's wire order."""

@final
class CoreTransport:
    """The native transport: idle pool, engines, counters."""

    @property
    def forked(self) -> bool: ...
    # the native __cinit__ takes them: they are __new__'s
    def __new__(cls, *, max_idle_conns: int, max_idle_conns_per_host: int,
                max_conns_per_host: int, idle_conn_timeout: Optional[float],
                disable_keep_alives: bool, dial_timeout: Optional[float],
                response_header_timeout: Optional[float], max_response_header_bytes: int,
                drain_limit: int, io_threads: int,
                tls_handshake_timeout: Optional[float] = None,
                expect_continue_timeout: Optional[float] = None, verify: bool = True,
                ca_file: Optional[bytes] = None, ca_dir: Optional[bytes] = None,
                cert_file: Optional[bytes] = None, key_file: Optional[bytes] = None) -> Self: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...
    def close_idle(self) -> None: ...
    def stats(self) -> Dict[str, int]:
        """Every counter of TransportStats by name."""

    def hosts(self) -> Dict[str, Tuple[int, int, int]]:
        """{key: (conns, idle, waiting)} for every connection key."""

@disjoint_base
class CancelToken:
    """Cancels an exchange from any thread: ``token.cancel()``.

    The exchanges using the token stop at once: a blocked wait is woken (the
    thread running the exchange is asked to stop; it closes the connection,
    never pooled, and raises ``ft.Cancelled``)."""

    cancelled: bool
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...

@final
class CompletionQueue:
    """Where engine-run exchanges report."""

    @property
    def live(self) -> int: ...
    @property
    def generation(self) -> int: ...
    def __init__(self) -> None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def clear(self) -> None: ...
    def take(self) -> List[Exchange]: ...
    def wait(self, timeout: float) -> bool: ...

@final
class Plan:
    """What one exchange of a request needs (Transport._plan)."""

    op: str
    url: str
    key: bytes
    host: bytes
    head: bytes
    tls_host: Optional[bytes]
    tunnel: Optional[bytes]
    tunnel_auth: Optional[bytes]
    proxy_key: Optional[bytes]
    socks_host: Optional[bytes]
    socks_user: Optional[bytes]
    socks_pass: Optional[bytes]
    port: int
    socks: int
    socks_port: int
    proxy_tls: bool
    #: None, bytes, or a stream of bytes (a plain file: ``pread_source``).
    body: Union[bytes, Iterable[bytes], None]
    #: The proxy route (the transport's own object) or False; the core
    #: keeps it for the Python layer and never looks at it.
    route: object
    is_head: bool
    req_close: bool
    tls: bool
    expect_continue: bool
    chunked: bool
    gzip: bool
    pump: bool
    length: int
    max_body: int
    connect_ns: int
    pool_ns: int
    read_ns: int
    write_ns: int
    def __init__(self, op: str, url: str, key: bytes, host: bytes, port: int, head: bytes,
                 body: Union[bytes, Iterable[bytes], None], length: int, chunked: bool,
                 is_head: bool, req_close: bool, tls: bool, expect_continue: bool, gzip: bool,
                 pump: bool, max_body: int, route: object = False) -> None: ...

class _Owner(Protocol):
    """What engine reports are handed to (Exchange.owner)."""

    def _report(self, __x: Exchange) -> None: ...

@final
class Exchange:
    """One request/response on the native core. ``op``, ``url`` and
    ``cancel`` are set by start() / submit()."""

    owner: Optional[_Owner]
    @property
    def op(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def cancel(self) -> Optional[CancelToken]: ...
    @property
    def cq(self) -> Optional[CompletionQueue]: ...
    @property
    def mode(self) -> int: ...
    @property
    def in_flight(self) -> bool: ...
    @property
    def head_ready(self) -> bool: ...
    def __init__(self) -> None: ...
    def start(self, tr: CoreTransport, p: Plan, deadline_ns: Optional[int],
              cancel: Optional[CancelToken] = None) -> None: ...
    def submit(self, tr: CoreTransport, cq: CompletionQueue, mode: int, limit: int, p: Plan,
               deadline_ns: Optional[int], cancel: Optional[CancelToken] = None) -> None: ...
    def error(self) -> Optional[Exception]:
        """The exception the exchange failed with, or None."""

    @property
    def ahead_buffered(self) -> int: ...
    def take_ahead(self, n: int = 65536) -> Optional[bytes]:
        """Up to n read-ahead bytes; None when none is there yet, b"" at EOF."""

    # ---- response head
    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def http_version(self) -> str: ...
    @property
    def content_length(self) -> int: ...
    @property
    def chunked(self) -> bool: ...
    @property
    def has_body(self) -> bool: ...
    @property
    def sent_head(self) -> bytes: ...
    def header_pairs(self) -> List[Tuple[str, str]]: ...
    def has_header(self, name: bytes) -> bool: ...
    def trailer_pairs(self) -> List[Tuple[str, str]]: ...

    # ---- the retry decision
    @property
    def conn_reused(self) -> bool: ...
    @property
    def nothing_written(self) -> bool: ...
    @property
    def got_response_bytes(self) -> bool: ...

    # ---- body
    @property
    def at_eof(self) -> bool: ...
    def read(self, n: int = -1) -> bytes: ...
    def readinto(self, buf: WriteableBuffer) -> int: ...
    def read_all(self) -> bytes: ...
    def close(self) -> None: ...
    def abort(self, why: str = "aborted") -> None: ...
    @property
    def upgraded(self) -> bool: ...
    def write(self, data: ReadableBuffer) -> int: ...
    @property
    def writing(self) -> bool: ...
