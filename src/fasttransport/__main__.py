"""Command line: ``python -m fasttransport demo`` and ``... get URL``.

``demo`` needs no network: it starts a keep-alive server on 127.0.0.1 in this
process, shows Go's unclosed-body lesson live with Transport.stats(), then
compares sequential requests per second against http.client.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import http.server
import resource
import sys
import threading
import time
import warnings
from typing import Callable, List, Optional

import fasttransport as ft

BODY = b"x" * 2048


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # the head and the body go out in two writes: without this, Nagle's
    # algorithm and the client's delayed ACK add 40 ms to every response
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        size = len(BODY)
        if self.path.startswith("/small"):
            size = 13
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(BODY[:size])

    def log_message(self, *args: object) -> None:
        pass


def _line(label: str, t: ft.Transport) -> None:
    s = t.stats()
    print(f"  {label:<44} open={s.open_conns:<3} idle={s.idle_conns:<3} "
          f"in_use={s.active_conns:<3} dials={s.dials:<3} reused={s.reused_conns:<3} "
          f"io_threads={s.io_threads}")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measure(fn: Callable[[], object], n: int) -> tuple:
    for _ in range(min(200, n)):
        fn()
    c0, t0 = _cpu(), time.perf_counter()
    for _ in range(n):
        fn()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return n / wall, cpu / n * 1e6


def demo(n: int = 20, bench: int = 3000) -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        print(f"fasttransport {ft.__version__} demo against a loopback server at {base}\n")
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

        print(f"\nSequential GETs, {bench} each, same server, same process:")
        client = ft.Client()
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
        url = base + "/small"

        def with_ft() -> object:
            return client.get(url).content

        def with_http_client() -> object:
            conn.request("GET", "/small")
            return conn.getresponse().read()

        results = {}
        for name, fn in (("fasttransport", with_ft), ("http.client", with_http_client)):
            results[name] = _measure(fn, bench)
        client.close()
        conn.close()
        base_rps = results["http.client"][0]
        for name, (rps, cpu) in results.items():
            print(f"  {name:<14} {rps:8.0f} req/s  {cpu:6.1f} µs process CPU/request  "
                  f"{rps / base_rps:4.2f}× http.client")
        print("\n(process CPU includes the in-process Python server; benchmarks/ measures "
              "the client alone against nginx)")
    finally:
        server.shutdown()
        server.server_close()
        th.join(5)
    return 0


def get(args: argparse.Namespace) -> int:
    headers = [tuple(h.split(":", 1)) for h in args.header or []]
    headers = [(k.strip(), v.strip()) for k, v in headers]
    with ft.Client(timeout=args.timeout, follow_redirects=args.location) as c:
        try:
            with c.stream(args.request or "GET", args.url, headers=headers,
                          content=args.data.encode() if args.data else None) as r:
                if args.verbose:
                    print(f"< {r.http_version} {r.status_code} {r.reason}", file=sys.stderr)
                    for k, v in r.headers.items():
                        print(f"< {k}: {v}", file=sys.stderr)
                out = open(args.output, "wb") if args.output else sys.stdout.buffer
                try:
                    for chunk in r.iter_bytes():
                        out.write(chunk)
                finally:
                    if args.output:
                        out.close()
        except ft.HTTPError as e:
            print(f"fasttransport: {e}", file=sys.stderr)
            return 7 if isinstance(e, ft.ConnectError) else (
                28 if isinstance(e, ft.TimeoutError) else 56)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fasttransport")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="the unclosed-body lesson and a speed check, offline")
    d.add_argument("-n", type=int, default=20, help="requests per step")
    d.add_argument("--bench", type=int, default=3000, help="requests per client in the speed check")
    g = sub.add_parser("get", help="fetch a URL")
    g.add_argument("url")
    g.add_argument("-X", "--request")
    g.add_argument("-H", "--header", action="append")
    g.add_argument("-d", "--data")
    g.add_argument("-o", "--output")
    g.add_argument("-L", "--location", action="store_true")
    g.add_argument("--timeout", type=float)
    g.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "demo":
        return demo(args.n, args.bench)
    return get(args)


if __name__ == "__main__":
    sys.exit(main())
