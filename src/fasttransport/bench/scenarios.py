"""The scenarios: what each one runs, and how its table and chart read.

A :class:`Scenario` says which kind of worker run it needs (``requests``,
``scale``, ``parser``), which nginx listener and path it uses, how many
requests (full and ``--quick``), which clients take part, which figures
its table and chart show and whether system calls per request are counted
(``syscalls``). ``SCENARIOS`` lists them in report order.

``seq``, ``https_seq``, ``churn`` and ``conc32`` end with a ``wrk`` row: the
C load generator wrk (``wrk.py``), the floor on this machine, not a Python
client (``ROW_KINDS`` labels it so).

The fan-out scenarios (``fan32``, ``fan256``, ``fan32_64k``, ``fan32_tls``)
keep 32 or 256 requests in flight with each client's own way of doing so
(``FAN_CLIENTS``) and compare them with pycurl's CurlMulti; ``seq_adapters``
compares httpx and requests with and without fasttransport's adapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

Summary = dict[str, Any]
Cell = Callable[[Summary, Optional[Summary]], str]

HTTP_CLIENTS = (
    "fasttransport",
    "http.client",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "pycurl",
)
#: The fan-out scenarios' rows: each client's own way to keep N requests in flight.
FAN_CLIENTS = (
    "pycurl",
    "fasttransport-map",
    "fasttransport-async",
    "fasttransport-threads",
    "aiohttp",
    "httpx-async",
    "httpx-async-ft",
    "httpx-threads",
    "httpx-ft-threads",
    "requests-threads",
    "requests-ft-threads",
)
#: Most Python threads a thread-style client uses in the fan-out scenarios.
FAN_THREADS = 32
#: Rows that are not Python clients, and what their label says they are.
ROW_KINDS = {"wrk": "C load generator, not a Python client"}
PARSER_ROWS = (
    "fasttransport C (bench_parse)",
    "fasttransport parse_response_head",
    "httptools",
    "h11",
)


@dataclass(frozen=True)
class Column:
    """A table column: its header and how to render a client's summary
    (the second argument is the baseline row's summary, or None)."""

    label: str
    cell: Cell


@dataclass(frozen=True)
class Panel:
    """One bar chart panel: a median with its min–max range per client."""

    key: str
    label: str
    higher_is_better: bool


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: str
    clients: tuple[str, ...]
    n: int
    quick_n: int
    unit: str
    primary: str
    higher_is_better: bool
    columns: tuple[Column, ...]
    panels: tuple[Panel, ...]
    listener: Optional[str] = "plain"
    path: str = "/small"
    warmup: int = 0
    quick_warmup: int = 0
    concurrency: int = 1
    #: Most Python threads a client of the ``threads`` style uses; None: ``concurrency``.
    max_threads: Optional[int] = None
    spacing: float = 0.0
    baseline: str = "fasttransport"
    note: str = ""
    #: Errors after which a run stops; None: a tenth of the requests (at least 10).
    max_errors: Optional[int] = None
    #: Seconds for one run's timed part, full and --quick; None: the suite's default.
    time_limit: Optional[float] = None
    quick_time_limit: Optional[float] = None
    #: Count system calls per request (``strace -f -c``, separate untimed runs).
    syscalls: bool = False

    @property
    def needs_nginx(self) -> bool:
        return self.listener is not None

    @property
    def needs_tls(self) -> bool:
        return self.listener == "tls"

    @property
    def threads(self) -> int:
        """Python threads for a ``threads``-style client (each has one request in flight)."""
        if self.max_threads is None:
            return self.concurrency
        return min(self.concurrency, self.max_threads)


# ---------------------------------------------------------------------------
# cells


def _num(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def median_range(key: str, spec: str) -> Cell:
    def cell(s: Summary, base: Optional[Summary]) -> str:
        text = _num(s.get(key), spec)
        if s.get("runs", 0) > 1 and s.get(f"{key}_min") is not None:
            text += f" [{_num(s[f'{key}_min'], spec)}–{_num(s[f'{key}_max'], spec)}]"
        return text

    return cell


def value(key: str, spec: str) -> Cell:
    return lambda s, base: _num(s.get(key), spec)


def ratio(key: str) -> Cell:
    def cell(s: Summary, base: Optional[Summary]) -> str:
        if not base or not base.get(key) or s.get(key) is None:
            return "—"
        return f"{s[key] / base[key]:.2f}"

    return cell


def errors(s: Summary, base: Optional[Summary]) -> str:
    text = f"{s.get('errors_total', 0):,} / {s.get('requests_total', 0):,}"
    if s.get("bad_bodies_total"):
        text += f" ({s['bad_bodies_total']:,} bad bodies)"
    return text


def server(s: Summary, base: Optional[Summary]) -> str:
    if s.get("server_us_per_req") is None or s.get("server_busy") is None:
        return "—"
    return f"{s['server_us_per_req']:.1f} ({s['server_busy']:.0%})"


def server_busy(s: Summary, base: Optional[Summary]) -> str:
    return "—" if s.get("server_busy") is None else f"{s['server_busy']:.0%}"


def threads(s: Summary, base: Optional[Summary]) -> str:
    return f"{s.get('threads_before', 0):.0f} → {s.get('threads_held', 0):.0f}"


def cpu_per_mib(s: Summary, base: Optional[Summary]) -> str:
    return _num(s.get("cpu_ms_per_mib"), ".2f")


# ---------------------------------------------------------------------------
# the scenarios

_CPU = Column("CPU µs/req median [min–max]", median_range("cpu_us_per_req", ".1f"))
_CPU_RATIO = Column("CPU × fasttransport", ratio("cpu_us_per_req"))
_RPS = Column("req/s", value("req_per_s", ",.0f"))
_CTX = Column("ctx switches/req", value("nvcsw_per_req", ".2f"))
_ERRORS = Column("errors / requests", errors)
_SERVER = Column("nginx µs/req (busy)", server)

_SEQ_COLUMNS = (_CPU, _CPU_RATIO, _RPS, _CTX, _ERRORS, _SERVER)
_SEQ_PANELS = (
    Panel("cpu_us_per_req", "client CPU µs per request", False),
    Panel("req_per_s", "requests per second", True),
)
_BIG_COLUMNS = (
    Column("MB/s median [min–max]", median_range("mb_per_s", ",.0f")),
    Column("MB/s × fasttransport", ratio("mb_per_s")),
    Column("CPU ms/MiB", cpu_per_mib),
    Column("ctx switches/body", value("nvcsw_per_req", ",.1f")),
    _ERRORS,
    Column("nginx busy", server_busy),
)
_BIG_PANELS = (Panel("mb_per_s", "MB/s (16 MiB bodies)", True),)
_CPU_NOTE = (
    "CPU is the client process's user + system time (all its threads) over the timed loop; "
    "ctx switches are voluntary ones (`ru_nvcsw`). nginx busy near 100% means the server, "
    "not the client, set the pace."
)



def _wrk_note(connections: int, extra: str = "") -> str:
    """What the ``wrk`` row is and what it does differently."""
    flags = f"-t1 -c{connections}"
    why = (" One wrk thread drives the 32 connections from one epoll loop: the clients "
           "have one CPU (CPU 0), where a second thread would only share the core."
           if connections > 1 else "")
    return (
        f" `wrk` is the C load generator wrk (`wrk {flags} -d<seconds>s URL`), not a Python "
        "client: the floor for this exchange on this machine. It builds the request once "
        "and resends the same bytes; it runs each response through its C HTTP parser "
        "(http-parser) only to find its end and whether the connection stays open, and "
        "stores no header, copies no body, makes no response object. Its CPU is the wrk "
        "process's user + system time from start to exit (start-up and first connect "
        "included: milliseconds against seconds of requests) over the requests it "
        "reports; it has no warm-up and runs for about as long as the median of the "
        f"other rows' runs (whole seconds).{why}{extra}"
    )


_FAN_NOTE = (
    _CPU_NOTE + " Ratios are to pycurl (one CurlMulti). Each client keeps the requests in "
    "flight its own way, its pool sized for them: `fasttransport-map` "
    "`Client.map(urls, concurrency=N)` from one thread; `fasttransport-async` N tasks on one "
    "`AsyncClient`; `fasttransport-threads` one `Client` shared by the threads; `pycurl` one "
    "`CurlMulti` with N easy handles (`M_MAX_HOST_CONNECTIONS` = `M_MAXCONNECTS` = N); "
    "`aiohttp` N tasks, `TCPConnector(limit=N)`; `httpx-async` N tasks on one "
    "`httpx.AsyncClient` (`Limits(max_connections=N)`); `httpx-async-ft` the same over "
    "`fasttransport.httpx.AsyncHTTPTransport`; `httpx-threads` / `httpx-ft-threads` threads "
    "sharing one `httpx.Client`, plain or over `fasttransport.httpx.HTTPTransport`; "
    "`requests-threads` / `requests-ft-threads` a `Session` per thread, plain or all with one "
    "`fasttransport.requests.HTTPAdapter` mounted. fasttransport pools: "
    "`Transport(max_idle_conns_per_host=N)`."
)
_FAN_COLUMNS = (
    Column("req/s median [min–max]", median_range("req_per_s", ",.0f")),
    Column("req/s × pycurl", ratio("req_per_s")),
    Column("CPU µs/req", value("cpu_us_per_req", ".1f")),
    Column("CPU × pycurl", ratio("cpu_us_per_req")),
    _CTX,
    _ERRORS,
    _SERVER,
)


def _fan(
    name: str,
    title: str,
    concurrency: int,
    n: int,
    *,
    path: str = "/small",
    listener: str = "plain",
    note: str = "",
) -> Scenario:
    """A fan-out scenario: ``concurrency`` GETs of ``path`` in flight, every
    client of ``FAN_CLIENTS``; thread-style clients use at most
    ``FAN_THREADS`` threads. The warm-up opens every connection (at least two
    requests each); runs are short (5 s, 2 s with --quick, where ``n`` is a fifth)
    so that the slowest clients do not make the suite long."""
    threads = min(concurrency, FAN_THREADS)
    capped = (
        f" The thread rows (`-threads`) run {threads} Python threads, so they have "
        f"{threads}, not {concurrency}, requests in flight."
        if threads < concurrency
        else ""
    )
    return Scenario(
        name=name,
        title=title,
        kind="requests",
        listener=listener,
        path=path,
        clients=FAN_CLIENTS,
        n=n,
        quick_n=n // 5,
        warmup=max(128, 2 * concurrency),
        quick_warmup=2 * concurrency,
        concurrency=concurrency,
        max_threads=FAN_THREADS,
        unit="requests",
        primary="req_per_s",
        higher_is_better=True,
        baseline="pycurl",
        columns=_FAN_COLUMNS,
        panels=(
            Panel("req_per_s", f"requests per second, {concurrency} in flight", True),
            Panel("cpu_us_per_req", "client CPU µs per request", False),
        ),
        note=_FAN_NOTE + capped + (" " + note if note else ""),
        time_limit=5.0,
        quick_time_limit=2.0,
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="seq",
        title="Sequential GET /small (5 B body) over one keep-alive connection",
        kind="requests",
        clients=("fasttransport", "fasttransport-transport", *HTTP_CLIENTS[1:], "wrk"),
        n=20000,
        quick_n=2000,
        warmup=1000,
        quick_warmup=200,
        unit="requests",
        primary="cpu_us_per_req",
        higher_is_better=False,
        columns=_SEQ_COLUMNS,
        panels=_SEQ_PANELS,
        note=_CPU_NOTE + " `fasttransport-transport` is `Transport.round_trip` without the "
        "Client layer; aiohttp runs one task on its event loop." + _wrk_note(1),
        syscalls=True,
    ),
    Scenario(
        name="seq_adapters",
        title="Sequential GET /small: httpx and requests, plain and over fasttransport's "
        "adapters",
        kind="requests",
        clients=("fasttransport", "httpx", "httpx-ft", "requests", "requests-ft"),
        n=10000,
        quick_n=1000,
        warmup=500,
        quick_warmup=100,
        unit="requests",
        primary="cpu_us_per_req",
        higher_is_better=False,
        columns=_SEQ_COLUMNS,
        panels=_SEQ_PANELS,
        note=_CPU_NOTE + " `httpx-ft`: `httpx.Client(transport=fasttransport.httpx."
        "HTTPTransport())`; `requests-ft`: a `Session` with `fasttransport.requests."
        "HTTPAdapter()` mounted for `http://` and `https://`. Compare each with its plain "
        "row: httpx and requests still do their own request and response handling; only "
        "the exchange goes through fasttransport.",
        time_limit=5.0,
        quick_time_limit=2.0,
    ),
    Scenario(
        name="conc32",
        title="GET /small with 32 requests in flight",
        kind="requests",
        clients=(*HTTP_CLIENTS, "wrk"),
        n=32000,
        quick_n=6400,
        warmup=32 * 50,
        quick_warmup=32 * 10,
        concurrency=32,
        unit="requests",
        primary="req_per_s",
        higher_is_better=True,
        columns=(
            Column("req/s median [min–max]", median_range("req_per_s", ",.0f")),
            Column("req/s × fasttransport", ratio("req_per_s")),
            Column("CPU µs/req", value("cpu_us_per_req", ".1f")),
            _CTX,
            _ERRORS,
            _SERVER,
        ),
        panels=(
            Panel("req_per_s", "requests per second, 32 in flight", True),
            Panel("cpu_us_per_req", "client CPU µs per request", False),
        ),
        note=_CPU_NOTE + " 32 Python threads share one client for fasttransport, urllib3 "
        "and httpx; http.client and requests get one connection / Session per thread; "
        "aiohttp runs 32 tasks on one event loop; pycurl one CurlMulti with 32 handles."
        + _wrk_note(32),
    ),
    _fan("fan32", "GET /small (5 B) with 32 requests in flight, each client its own way", 32,
         30000),
    _fan("fan256", "GET /small (5 B) with 256 requests in flight, each client its own way",
         256, 30000),
    _fan("fan32_64k", "GET /64k (64 KiB body) with 32 requests in flight", 32, 10000,
         path="/64k", note="MB/s = req/s × 0.0655."),
    _fan("fan32_tls", "GET /small with 32 requests in flight over TLS (32 connections)", 32,
         20000, listener="tls", note="TLS 1.3, verified against the CA made at start."),
    Scenario(
        name="big",
        title="GET /16m (16 MiB body) over one keep-alive connection, body read into memory",
        kind="requests",
        clients=HTTP_CLIENTS,
        path="/16m",
        n=30,
        quick_n=6,
        warmup=2,
        quick_warmup=1,
        unit="bodies",
        primary="mb_per_s",
        higher_is_better=True,
        columns=_BIG_COLUMNS,
        panels=_BIG_PANELS,
        note="MB/s is 10^6 bytes of body per second of wall time; CPU is the client "
        "process's user + system time per MiB of body.",
    ),
    Scenario(
        name="churn",
        title="Sequential GET /small; nginx closes every 100th response "
        "(`keepalive_requests 100`)",
        kind="requests",
        listener="churn",
        clients=(*HTTP_CLIENTS, "wrk"),
        n=20000,
        quick_n=2000,
        warmup=300,
        quick_warmup=100,
        unit="requests",
        primary="cpu_us_per_req",
        higher_is_better=False,
        columns=_SEQ_COLUMNS,
        panels=_SEQ_PANELS,
        note=_CPU_NOTE + " One new connection per 100 requests: the cost of noticing "
        "`Connection: close`, closing and dialing again."
        + _wrk_note(1, " wrk too reconnects after a response that says `Connection: close`."),
        syscalls=True,
    ),
    Scenario(
        name="idle_close",
        title="GET /small every 150 ms; nginx closes connections idle for 100 ms "
        "(`keepalive_timeout 100ms`)",
        kind="requests",
        listener="idle",
        clients=HTTP_CLIENTS,
        n=20,
        quick_n=6,
        warmup=1,
        quick_warmup=1,
        spacing=0.15,
        unit="requests",
        primary="errors_total",
        higher_is_better=False,
        max_errors=1_000_000,
        columns=(
            _ERRORS,
            Column("latency ms median", value("latency_ms_median", ".2f")),
            Column("latency ms max", value("latency_ms_max", ".2f")),
        ),
        panels=(
            Panel("errors_total", "errors the caller saw (all runs)", False),
            Panel("latency_ms_median", "ms per request (median)", False),
        ),
        note="Each request finds its pooled connection already closed by the server. A "
        "client that notices before reusing it dials a new one; one that does not sends "
        "on a dead socket and must retry or fail. Errors are what the caller saw; latency "
        "is one request's wall time, the 150 ms pause excluded. No `wrk` row: wrk can "
        "pause between requests (a Lua `delay()`), but when the server closes the "
        "connection during the pause wrk reconnects and arms a second pause timer, so its "
        "requests no longer go out one per 150 ms (41 instead of about 20 in 3 s when "
        "tried), and it counts such closes as read errors.",
    ),
    Scenario(
        name="https_seq",
        title="Sequential GET /small over one keep-alive TLS connection",
        kind="requests",
        listener="tls",
        clients=(*HTTP_CLIENTS, "wrk"),
        n=10000,
        quick_n=1000,
        warmup=200,
        quick_warmup=50,
        unit="requests",
        primary="cpu_us_per_req",
        higher_is_better=False,
        columns=_SEQ_COLUMNS,
        panels=_SEQ_PANELS,
        note=_CPU_NOTE + " TLS 1.3 with a certificate made at start; clients verify it "
        "against its CA."
        + _wrk_note(1, " Over TLS wrk does not verify the certificate (`SSL_VERIFY_NONE`)."),
        syscalls=True,
    ),
    Scenario(
        name="https_big",
        title="GET /16m (16 MiB body) over one keep-alive TLS connection",
        kind="requests",
        listener="tls",
        path="/16m",
        clients=HTTP_CLIENTS,
        n=20,
        quick_n=4,
        warmup=1,
        quick_warmup=1,
        unit="bodies",
        primary="mb_per_s",
        higher_is_better=True,
        columns=_BIG_COLUMNS,
        panels=(Panel("mb_per_s", "MB/s (16 MiB bodies over TLS)", True),),
        note="MB/s is 10^6 bytes of body per second of wall time; nginx encrypts, so its "
        "core may be the limit (see nginx busy).",
    ),
    Scenario(
        name="parser",
        title="Parsing one 391-byte response head with 11 fields",
        kind="parser",
        listener=None,
        clients=PARSER_ROWS,
        n=100000,
        quick_n=20000,
        unit="heads",
        primary="ns_per_head",
        higher_is_better=False,
        baseline="fasttransport C (bench_parse)",
        columns=(
            Column("ns/head median [min–max]", median_range("ns_per_head", ",.0f")),
            Column("× fasttransport C", ratio("ns_per_head")),
        ),
        panels=(Panel("ns_per_head", "ns per response head", False),),
        note="bench_parse loops in C (10× the iterations); h11 runs a fifth of them. For "
        "httptools and h11 the cost of creating the parser / connection is measured apart "
        "and subtracted.",
    ),
    Scenario(
        name="scale",
        title="1,000 idle keep-alive connections to one host held by one client",
        kind="scale",
        clients=("fasttransport", "urllib3", "httpx", "aiohttp"),
        n=1000,
        quick_n=250,
        time_limit=150.0,
        quick_time_limit=15.0,
        unit="connections",
        primary="rss_kib_per_conn",
        higher_is_better=False,
        columns=(
            Column("connections held", value("connections", ",.0f")),
            Column("RSS KiB/conn median [min–max]", median_range("rss_kib_per_conn", ".1f")),
            Column("RSS × fasttransport", ratio("rss_kib_per_conn")),
            Column("threads before → holding", threads),
            Column("open + read s", value("open_s", ".2f")),
        ),
        panels=(
            Panel("rss_kib_per_conn", "resident KiB per idle connection", False),
            Panel("threads_held", "process threads while holding them", False),
        ),
        note="The client opens the connections by holding that many responses open at "
        "once, reads every body so each connection goes idle in its pool, then the process's "
        "threads, resident memory and open sockets are read (`/proc/self`). RSS per "
        "connection = growth in RSS / connections held; connections held = new sockets (a "
        "client still opening when the time limit passes holds fewer). "
        "urllib3: PoolManager(maxsize=1000); httpx: Limits(max_connections=1000); aiohttp: "
        "TCPConnector(limit=1000).",
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}
