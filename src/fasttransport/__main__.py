"""The ``fasttransport`` command (also ``python -m fasttransport``).

- ``get URL``: fetch a URL, curl-style options and exit codes (``get --help``);
- ``demo``: needs no network: starts a keep-alive server on 127.0.0.1 in a
  process of its own (``fasttransport._demo_server``), shows Go's
  unclosed-body lesson live with Transport.stats(), then compares the
  client CPU per request of fasttransport, http.client and (when installed)
  pycurl;
- ``bench``: the benchmark suite against the peers (``bench --help``).

Exit codes follow curl's: 0 success, 1 unsupported protocol, 2 usage,
3 malformed URL, 6 could not resolve host, 7 failed to connect, 22 HTTP
status >= 400 with ``--fail``, 23 could not write the output, 26 could not
read the data to send, 28 timeout, 35 TLS failure, 47 too many redirects,
56 failure receiving data, 63 body larger than ``--max-filesize``,
130 interrupted.

A URL without a scheme (``localhost:8080/x``) means http://, as in curl.
Error messages have Go's form ``Get "URL": cause`` (the method as Go writes
it: ``Get``, ``Post``, ``Head``...).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, BinaryIO, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import fasttransport as ft

from ._demo_server import SMALL as SMALL_BODY


def _line(label: str, t: ft.Transport) -> None:
    s = t.stats()
    print(f"  {label:<44} open={s.open_conns:<3} idle={s.idle_conns:<3} "
          f"in_use={s.active_conns:<3} draining={s.draining_conns:<2} dials={s.dials:<3} "
          f"reused={s.reused_conns:<3} io_threads={s.io_threads}")


def _start_server() -> Tuple[subprocess.Popen[bytes], int]:
    """The demo's server (fasttransport._demo_server) in a process of its own,
    and its port. It stops when its stdin closes: see _stop_server."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                      env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "fasttransport._demo_server"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the demo server did not start (exit code {proc.wait(5)})")
        return proc, int(line)
    except BaseException:
        _stop_server(proc)
        raise


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (its cue to exit) and wait for it; kill it if
    it has not gone within 2 s. Should this process die before getting here,
    the pipe closes all the same and the server exits by itself."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


def _lesson(base: str, n: int) -> None:
    """Go's unclosed-body lesson, live, with Transport.stats() after each step."""
    print("Go's lesson: a response body that is neither read to EOF nor closed pins its")
    print("connection (and, in Go, two goroutines). Watch Transport.stats():\n")
    with ft.Transport() as t:
        held: List[ft.Response] = [t.round_trip(ft.Request("GET", base + "/"))
                                   for _ in range(n)]
        _line(f"{n} bodies left open (references kept)", t)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            del held
            gc.collect()
        _line(f"references dropped: {len(caught)} ResourceWarnings", t)
        for _ in range(n):
            t.round_trip(ft.Request("GET", base + "/")).read()
        _line(f"{n} bodies read to EOF (no close() needed)", t)
        for _ in range(n):
            r = t.round_trip(ft.Request("GET", base + "/"))
            r.read(10)
            r.close()
        time.sleep(0.06)
        _line(f"{n} bodies closed early (remainder drained)", t)
    _line("Transport.close()", t)


#: Clients of the CPU comparison (fasttransport.bench.clients' adapters, the
#: ones the benchmark suite runs); pycurl only when it can be imported.
CPU_CLIENTS = ("fasttransport", "http.client", "pycurl")
CPU_BASELINE = "http.client"
CPU_ROUNDS = 3


def _cpu_comparison(base: str, count: int) -> None:
    """Client CPU per request (time.process_time() of this process, every
    thread of it, around the request loop) for each client: sequential GETs
    of a 13-byte body over one keep-alive connection, in CPU_ROUNDS rounds
    that take turns between the clients; each client's median round is shown."""
    from .bench.clients import ADAPTERS, Target

    names = [name for name in CPU_CLIENTS if name != "pycurl" or _importable("pycurl")]
    per_round = max(1, count // CPU_ROUNDS)
    print(f"\nClient CPU per request: sequential GETs of a {SMALL_BODY}-byte body, "
          f"{per_round * CPU_ROUNDS} per client,")
    print(f"each over one keep-alive connection, {CPU_ROUNDS} interleaved rounds, medians. "
          "The server has")
    print("its own process, so time.process_time() here counts the client's CPU alone:")
    fetchers = {}
    try:
        for name in names:
            fetch, close = ADAPTERS[name].sync(Target(base + "/small"))
            fetchers[name] = (fetch, close)
            for _ in range(min(200, count)):   # connect, warm up
                fetch()
        cpu: Dict[str, List[float]] = {name: [] for name in names}
        wall: Dict[str, List[float]] = {name: [] for name in names}
        for _ in range(CPU_ROUNDS):
            for name in names:
                fetch = fetchers[name][0]
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(per_round):
                    fetch()
                wall[name].append((time.perf_counter() - t0) / per_round)
                cpu[name].append((time.process_time() - c0) / per_round)
    finally:
        for _, close in fetchers.values():
            close()
    base_cpu = statistics.median(cpu[CPU_BASELINE])
    for name in names:
        us = statistics.median(cpu[name]) * 1e6
        ratio = us / (base_cpu * 1e6) if base_cpu > 0 else float("nan")
        rate = 1 / statistics.median(wall[name])
        print(f"  {name:<14} {us:6.1f} µs CPU/request ({ratio:.2f}× {CPU_BASELINE})"
              f"   {rate:8,.0f} req/s wall")
    if "pycurl" not in names:
        print("  pycurl         not installed (pip install pycurl to compare with libcurl)")
    print("\n(req/s is wall time and depends on the server too; benchmarks/ has the "
          "full comparison against nginx)")


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def demo(n: int = 20, bench: int = 3000) -> int:
    """The unclosed-body lesson, then the client CPU comparison, against a
    keep-alive server in a child process that is stopped on every way out
    (Ctrl-C: exit code 130)."""
    try:
        proc, port = _start_server()
    except KeyboardInterrupt:
        return 130
    base = f"http://127.0.0.1:{port}"
    try:
        print(f"fasttransport {ft.__version__} demo against a keep-alive server in its own "
              f"process (pid {proc.pid}) at {base}\n", flush=True)
        _lesson(base, n)
        _cpu_comparison(base, bench)
    except KeyboardInterrupt:
        print("fasttransport demo: interrupted", file=sys.stderr)
        return 130
    finally:
        _stop_server(proc)
    return 0


# ---------------------------------------------------------------------------
# get: a small curl


class CliError(Exception):
    """Ends the command with curl's exit ``code`` and ``message`` on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def exit_code(exc: BaseException) -> int:
    """curl's exit code for a fasttransport error (one place for the mapping).

    An InvalidRequest is taken for a URL the library refused (the URL given,
    or a redirect's): 1 for a scheme other than http and https (curl's
    "Unsupported protocol"), else 3; get() checks the method and headers
    before the exchange, so their errors do not get here."""
    text = str(exc)
    if isinstance(exc, ft.InvalidRequest):
        return 1 if "unsupported protocol scheme" in text else 3
    if isinstance(exc, ft.TimeoutError):
        return 28
    if isinstance(exc, ft.ConnectError):
        return 6 if ": lookup " in text else 7
    if isinstance(exc, ft.TLSError):
        return 35
    if isinstance(exc, ft.TooManyRedirects):
        return 47
    if isinstance(exc, ft.BodyTooLarge):
        return 63
    if isinstance(exc, ft.TransportError) and "not supported" in text:
        return 1
    return 56


#: ``scheme://`` at the start of a URL.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: A message that already starts with Go's ``<Op> "<url>": `` (Op: Get, Post...).
_GO_PREFIX = re.compile(r'[A-Z][^ "]* "')


def with_scheme(url: str) -> str:
    """url, with ``http://`` in front when it names no scheme (curl's rule:
    ``localhost:8080/x``, ``example.com``)."""
    return url if _SCHEME.match(url) else "http://" + url


def error_text(method: str, url: str, exc: BaseException) -> str:
    """The library's message for exc in Go's form ``<Op> "<url>": <cause>``.

    Messages that already have it are kept. The library's ``parse "<url>":
    <cause>`` (url.Parse's form, for a URL it cannot split) keeps its cause
    under the method's Op, so that every failed request reads alike; ``url``
    is the exception's own (credentials removed where the library removed
    them) or, failing that, the one given, quoted as Go's ``%q`` quotes it."""
    text = str(exc)
    shown = getattr(exc, "url", None) or url
    # the URL is checked as a GET first (_check_request): that prefix, and
    # url.Parse's, give way to the request's own
    for prefix in (f'parse "{shown}": ', f"parse {json.dumps(shown)}: ",
                   f'Get "{shown}": '):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    else:
        if _GO_PREFIX.match(text):
            return text
    op = method[:1].upper() + method[1:].lower()
    return f"{op} {json.dumps(shown, ensure_ascii=False)}: {text}"


#: Request headers given on the command line, in order.
_HeaderList = List[Tuple[str, str]]


def _check_request(method: str, url: str, headers: _HeaderList) -> None:
    """Refuse what the library would refuse, before anything is sent or
    shown: the URL (exit 1 for its scheme, 3 otherwise), the method (exit 2,
    Go's ``net/http: invalid method "..."``), then the headers (exit 2)."""
    try:
        ft.Request("GET", url)
    except ft.InvalidRequest as e:
        raise CliError(exit_code(e), error_text(method, url, e)) from None
    try:
        ft.Request(method, url)
    except ft.InvalidRequest as e:
        raise CliError(2, str(e)) from None
    try:
        ft.Request(method, url, headers=headers)
    except ft.InvalidRequest as e:
        raise CliError(2, error_text(method, url, e)) from None


def _header_pairs(values: List[str]) -> _HeaderList:
    pairs = []
    for raw in values:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise CliError(2, f'bad header "{raw}": expected "Name: value"')
        pairs.append((name.strip(), value.strip()))
    return pairs


def _read_data(value: str, *, strip_newlines: bool) -> bytes:
    """-d/--data-binary/--json: the text itself, or ``@file`` (``@-``: stdin)."""
    if not value.startswith("@"):
        return value.encode()
    name = value[1:]
    try:
        if name == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(name, "rb") as f:
                data = f.read()
    except OSError as e:
        raise CliError(26, f"cannot read {name}: {e.strerror or e}") from None
    return data.replace(b"\r", b"").replace(b"\n", b"") if strip_newlines else data


def _request_parts(args: argparse.Namespace) -> Tuple[str, _HeaderList, Optional[bytes]]:
    """(method, headers, body) from the options, as curl combines them."""
    headers = _header_pairs(args.header or [])
    names = {name.lower() for name, _ in headers}
    body: Optional[bytes] = None
    if args.json is not None:
        body = _read_data(args.json, strip_newlines=False)
        if "content-type" not in names:
            headers.append(("Content-Type", "application/json"))
        if "accept" not in names:
            headers.append(("Accept", "application/json"))
    elif args.data is not None or args.data_binary is not None:
        if args.data is not None:
            body = b"&".join(_read_data(d, strip_newlines=True) for d in args.data)
        else:
            body = _read_data(args.data_binary, strip_newlines=False)
        if "content-type" not in names:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    if args.user_agent and "user-agent" not in names:
        headers.append(("User-Agent", args.user_agent))
    method = args.request or ("POST" if body is not None else "GET")
    return method, headers, body


def _progress(args: argparse.Namespace, total: Optional[int]) -> Any:
    """A rich progress bar for ``-o FILE`` downloads, or None.

    Shown when stderr is a terminal (or with ``-#``), never with ``-s``;
    without rich (``pip install 'fasttransport[cli]'``) there is no bar."""
    if not args.output or args.output == "-" or args.silent:
        return None
    if not (args.progress_bar or sys.stderr.isatty()):
        return None
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        if args.progress_bar:
            print("fasttransport: no progress bar: pip install 'fasttransport[cli]'",
                  file=sys.stderr)
        return None
    console = Console(stderr=True, force_terminal=True if args.progress_bar else None)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=console,
    )
    progress.start()
    progress.add_task(args.output, total=total)
    return progress


def _verbose_request(method: str, url: str, headers: _HeaderList, body: Optional[bytes],
                     insecure: bool) -> None:
    """The request head as the transport writes it:
    Host, User-Agent, the caller's headers, Accept-Encoding, Content-Length
    (url has passed _check_request)."""
    u = urlsplit(url)
    err = sys.stderr
    if insecure and u.scheme.lower() == "https":
        print("* -k: the server's certificate and host name are not verified", file=err)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    names = {name.lower() for name, _ in headers}
    print(f"> {method} {target} HTTP/1.1", file=err)
    print(f"> Host: {u.netloc.rpartition('@')[2]}", file=err)
    if "user-agent" not in names:
        print(f"> User-Agent: fasttransport/{ft.__version__}", file=err)
    for name, value in headers:
        print(f"> {name}: {value}", file=err)
    if method != "HEAD" and "accept-encoding" not in names and "range" not in names:
        print("> Accept-Encoding: gzip", file=err)
    if body is not None:
        print(f"> Content-Length: {len(body)}", file=err)
    elif method in ("POST", "PUT", "PATCH"):
        print("> Content-Length: 0", file=err)
    print(">", file=err)


def _verbose_response(r: ft.Response) -> None:
    err = sys.stderr
    for hop in r.history:
        print(f"< {hop.http_version} {hop.status_code} {hop.reason}", file=err)
        print(f"* redirect to {hop.headers.get('Location', '?')}", file=err)
    print(f"< {r.http_version} {r.status_code} {r.reason}", file=err)
    for name, value in r.headers.items():
        print(f"< {name}: {value}", file=err)
    print("<", file=err)


def _verbose_summary(before: ft.TransportStats, after: ft.TransportStats, t0: float,
                     t_head: float, t_end: float, received: int) -> None:
    err = sys.stderr
    dials = after.dials - before.dials
    reused = after.reused_conns - before.reused_conns
    conn = "reused an idle connection" if reused and not dials else (
        f"{dials} new connection{'s' if dials != 1 else ''}"
        + (f", {reused} reuse{'s' if reused != 1 else ''}" if reused else ""))
    print(f"* connection: {conn}", file=err)
    total = t_end - t0
    big = received >= 1 << 20 and t_end > t_head
    rate = received / (t_end - t_head) / 1e6 if big else 0.0
    print(f"* time: response head {(t_head - t0) * 1e3:.2f} ms, body "
          f"{(t_end - t_head) * 1e3:.2f} ms, total {total * 1e3:.2f} ms; {received:,} bytes"
          + (f" ({rate:,.1f} MB/s)" if rate else ""), file=err)
    s = after
    print(f"* Transport.stats(): open={s.open_conns} idle={s.idle_conns} "
          f"active={s.active_conns} dials={s.dials} reused={s.reused_conns} "
          f"requests={s.requests} io_threads={s.io_threads}", file=err)


def _open_output(args: argparse.Namespace) -> BinaryIO:
    if not args.output or args.output == "-":
        return sys.stdout.buffer
    try:
        return open(args.output, "wb")
    except OSError as e:
        raise CliError(23, f"cannot write {args.output}: {e.strerror or e}") from None


def get(args: argparse.Namespace) -> int:
    """Fetch one URL; returns curl's exit code (messages go to stderr)."""
    try:
        return _get(args)
    except CliError as e:
        if not args.silent or args.show_error:
            print(f"fasttransport: ({e.code}) {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


def _get(args: argparse.Namespace) -> int:
    method, headers, body = _request_parts(args)
    url = with_scheme(args.url)
    _check_request(method, url, headers)
    try:
        transport = ft.Transport(
            verify=not args.insecure,
            dial_timeout=args.connect_timeout if args.connect_timeout is not None else 30.0,
            max_body_size=args.max_filesize,
        )
    except ValueError as e:
        raise CliError(2, str(e)) from None
    client = ft.Client(transport=transport, timeout=args.timeout,
                       follow_redirects=args.location, max_redirects=args.max_redirs)
    out = None
    progress = None
    try:
        if args.verbose:
            _verbose_request(method, url, headers, body, args.insecure)
        before = transport.stats()
        t0 = time.perf_counter()
        try:
            with client.stream(method, url, headers=headers, content=body) as r:
                t_head = time.perf_counter()
                if args.verbose:
                    _verbose_response(r)
                if args.fail and r.status_code >= 400:
                    raise CliError(22, f"The requested URL returned error: {r.status_code}")
                out = _open_output(args)
                received = 0
                length = r.headers.get("Content-Length")
                progress = _progress(args, int(length) if length else None)
                try:
                    if args.include:
                        head = [f"{r.http_version} {r.status_code} {r.reason}"]
                        head += [f"{k}: {v}" for k, v in r.headers.items()]
                        out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                    for chunk in r.iter_bytes():
                        out.write(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress.advance(progress.task_ids[0], len(chunk))
                    out.flush()
                except OSError as e:
                    raise CliError(23, f"failure writing output: {e.strerror or e}") from None
        except ft.HTTPError as e:
            raise CliError(exit_code(e), error_text(method, url, e)) from None
        t_end = time.perf_counter()
        if args.verbose:
            _verbose_summary(before, transport.stats(), t0, t_head, t_end, received)
    finally:
        if progress is not None:
            progress.stop()
        if out is not None and out is not sys.stdout.buffer:
            out.close()
        client.close()
        transport.close()
    return 0


# ---------------------------------------------------------------------------
# the command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fasttransport",
        description="fasttransport: an HTTP/1.1 client with Go's transport in native code.",
        epilog="Exit codes follow curl's (see `fasttransport get --help`).",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{get,demo,bench}")
    g = sub.add_parser(
        "get", help="fetch a URL (curl-like)",
        description="Fetch URL (http:// or https://; http:// when no scheme is given) and "
        "write the body to stdout (or -o FILE).",
        epilog="Exit codes (curl's): 0 ok, 1 unsupported protocol, 2 usage, 3 malformed URL, "
        "6 could not resolve host, 7 failed to connect, 22 HTTP >= 400 with --fail, "
        "23 write error, 26 read error (-d @file), 28 timeout, 35 TLS failure, "
        "47 too many redirects, 56 receive failure, 63 body larger than --max-filesize, "
        "130 interrupted.",
    )
    g.add_argument("url", help="http:// or https:// URL; without a scheme, http:// is "
                   "assumed (as curl does)")
    g.add_argument("-X", "--request", metavar="METHOD", help="method (default GET, or POST "
                   "with a body)")
    g.add_argument("-H", "--header", action="append", metavar="'NAME: VALUE'",
                   help="add a request header (repeatable)")
    g.add_argument("-d", "--data", action="append", metavar="DATA",
                   help="send DATA (or @FILE, newlines removed) as a form body; repeats are "
                   "joined with &")
    g.add_argument("--data-binary", metavar="DATA", help="send DATA or @FILE exactly")
    g.add_argument("--json", metavar="DATA", help="send DATA or @FILE as JSON (sets "
                   "Content-Type and Accept)")
    g.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE ('-': stdout)")
    g.add_argument("-i", "--include", action="store_true", help="write the response head "
                   "before the body")
    g.add_argument("-L", "--location", action="store_true", help="follow redirects")
    g.add_argument("--max-redirs", type=int, default=10, metavar="N",
                   help="redirect limit with -L (default 10)")
    g.add_argument("-m", "--timeout", "--max-time", dest="timeout", type=float,
                   metavar="SECONDS", help="limit for the whole exchange, body included")
    g.add_argument("--max-filesize", type=int, metavar="BYTES",
                   help="fail (exit 63) when the body, decoded, is longer than BYTES")
    g.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                   help="limit for connecting (default 30)")
    g.add_argument("-k", "--insecure", action="store_true",
                   help="HTTPS: do not verify the server's certificate or host name")
    g.add_argument("-A", "--user-agent", metavar="NAME", help="User-Agent header")
    g.add_argument("-f", "--fail", action="store_true",
                   help="exit 22 without writing the body when the status is >= 400")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="show the request and response heads, connection reuse "
                   "(Transport.stats()) and timings on stderr; with -k and an https:// "
                   "URL, that the certificate is not verified")
    g.add_argument("-s", "--silent", action="store_true",
                   help="no progress bar and no error message")
    g.add_argument("-S", "--show-error", action="store_true", help="with -s, still show errors")
    g.add_argument("-#", "--progress-bar", action="store_true",
                   help="show the download bar for -o even when stderr is not a terminal "
                   "(needs rich: pip install 'fasttransport[cli]')")
    d = sub.add_parser("demo", help="the unclosed-body lesson and a client CPU comparison, "
                       "offline")
    d.add_argument("-n", type=int, default=20, help="requests per step of the lesson")
    d.add_argument("--bench", type=int, default=3000,
                   help="requests per client in the CPU comparison")
    sub.add_parser("bench", add_help=False,
                   help="benchmark suite against the peers (fasttransport bench --help)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``fasttransport`` console script; returns the exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["bench"]:
        from .bench import main as bench_main

        return bench_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.cmd == "demo":
        return demo(args.n, args.bench)
    return get(args)


if __name__ == "__main__":
    sys.exit(main())
