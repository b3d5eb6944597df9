"""Sequential small GETs over one keep-alive connection, client against client.

The driver starts a private nginx (``nginx.py``, pinned to CPU 1), then runs
every client ``--reps`` times, interleaved (rep 1 of each client, then rep 2,
...), each run in a fresh Python process pinned to CPU 0.  A run makes
``--warmup`` requests, then times ``--n`` more, reading every body fully.

Per run the worker measures, around its timed loop only:

- CPU µs per request: ``getrusage(RUSAGE_SELF)`` user + system, all threads;
- requests per second (wall clock);
- voluntary context switches per request (``ru_nvcsw``).

The driver adds nginx's worker CPU per request, so a saturated server shows.
Results: a markdown table on stdout and in ``results/seq.md``, raw runs in
``results/seq.json``.  A client that is not installed or fails is reported in
its row; the others still run.

    python benchmarks/bench_seq.py [--n 20000] [--reps 5] [--clients a,b,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import nginx  # noqa: E402 - the benchmark directory is not a package

Fetch = Callable[[], bytes]

# ---------------------------------------------------------------------------
# Clients: each builds (fetch, close, version) for one URL.  Imports happen
# inside, in the worker process, so a missing library fails only its own row.


def _fasttransport(url: str) -> tuple[Fetch, Callable[[], None], str]:
    import fasttransport as ft

    client = ft.Client()

    def fetch() -> bytes:
        return client.get(url).content

    return fetch, client.close, getattr(ft, "__version__", "?")


def _fasttransport_transport(url: str) -> tuple[Fetch, Callable[[], None], str]:
    import fasttransport as ft

    transport = ft.Transport()

    def fetch() -> bytes:
        response = transport.round_trip(ft.Request("GET", url))
        body = response.read()
        response.close()
        return body

    return fetch, transport.close, getattr(ft, "__version__", "?")


def _http_client(url: str) -> tuple[Fetch, Callable[[], None], str]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    path = parts.path

    def fetch() -> bytes:
        conn.request("GET", path)
        return conn.getresponse().read()

    return fetch, conn.close, platform.python_version()


def _pycurl(url: str) -> tuple[Fetch, Callable[[], None], str]:
    import io

    import pycurl

    curl = pycurl.Curl()
    buf = io.BytesIO()
    curl.setopt(pycurl.URL, url)
    curl.setopt(pycurl.WRITEDATA, buf)

    def fetch() -> bytes:
        buf.seek(0)
        buf.truncate()
        curl.perform()
        return buf.getvalue()

    return fetch, curl.close, pycurl.version.split()[0]


def _urllib3(url: str) -> tuple[Fetch, Callable[[], None], str]:
    import urllib3

    pool = urllib3.PoolManager()

    def fetch() -> bytes:
        return pool.request("GET", url).data

    return fetch, pool.clear, urllib3.__version__


def _requests(url: str) -> tuple[Fetch, Callable[[], None], str]:
    import requests

    session = requests.Session()

    def fetch() -> bytes:
        return session.get(url).content

    return fetch, session.close, requests.__version__


CLIENTS: dict[str, Callable[[str], tuple[Fetch, Callable[[], None], str]]] = {
    "fasttransport": _fasttransport,
    "fasttransport-transport": _fasttransport_transport,
    "http.client": _http_client,
    "pycurl": _pycurl,
    "urllib3": _urllib3,
    "requests": _requests,
}

BASELINES = ("fasttransport", "pycurl")

# ---------------------------------------------------------------------------
# Worker: one client, one run, one JSON line on stdout.

EXIT_MISSING = 3


def run_worker(name: str, url: str, n: int, warmup: int, expect: int) -> int:
    try:
        fetch, close, version = CLIENTS[name](url)
    except ImportError as exc:
        print(json.dumps({"client": name, "error": f"not installed ({exc})"}))
        return EXIT_MISSING
    try:
        for _ in range(max(1, warmup)):
            body = fetch()
            if len(body) != expect:
                raise RuntimeError(f"body of {len(body)} bytes, expected {expect}")
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for _ in range(n):
            body = fetch()
        t1 = time.perf_counter()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if len(body) != expect:
            raise RuntimeError(f"last body of {len(body)} bytes, expected {expect}")
        close()
    except Exception as exc:  # noqa: BLE001 - reported in the client's row
        print(json.dumps({"client": name, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    wall = t1 - t0
    print(
        json.dumps(
            {
                "client": name,
                "version": version,
                "n": n,
                "wall_s": wall,
                "cpu_us_per_req": cpu / n * 1e6,
                "user_us_per_req": (ru1.ru_utime - ru0.ru_utime) / n * 1e6,
                "sys_us_per_req": (ru1.ru_stime - ru0.ru_stime) / n * 1e6,
                "req_per_s": n / wall,
                "nvcsw_per_req": (ru1.ru_nvcsw - ru0.ru_nvcsw) / n,
                "nivcsw_per_req": (ru1.ru_nivcsw - ru0.ru_nivcsw) / n,
            }
        )
    )
    return 0


# ---------------------------------------------------------------------------
# Driver


def run_one(
    server: nginx.Nginx, name: str, url: str, args: argparse.Namespace, expect: int
) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--url", url]
    cmd += ["--n", str(args.n), "--warmup", str(args.warmup), "--expect", str(expect)]
    if not args.no_pin and nginx.can_pin():
        cmd = ["taskset", "-c", "0", *cmd]
    timeout = 120 + args.n * 0.01
    cpu0 = server.worker_cpu_seconds()
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"client": name, "error": f"timed out after {timeout:.0f}s"}
    server_cpu = server.worker_cpu_seconds() - cpu0
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"client": name, "error": f"exit {proc.returncode}: {tail}"}
    if "error" not in result:
        per_req = server_cpu / (args.n + args.warmup) * 1e6
        result["server_us_per_req"] = per_req
        result["server_busy"] = per_req * result["req_per_s"] / 1e6
    result["exit"] = proc.returncode
    return result


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"client": name, "error": runs[-1]["error"] if runs else "not run"}

    def med(key: str) -> float:
        return statistics.median(r[key] for r in good)

    cpu = [r["cpu_us_per_req"] for r in good]
    out = {
        "client": name,
        "version": good[0].get("version", "?"),
        "runs": len(good),
        "cpu_us_per_req": statistics.median(cpu),
        "cpu_us_min": min(cpu),
        "cpu_us_max": max(cpu),
        "req_per_s": med("req_per_s"),
        "nvcsw_per_req": med("nvcsw_per_req"),
        "server_us_per_req": med("server_us_per_req"),
        "server_busy": med("server_busy"),
    }
    failed = [r for r in runs if "error" in r]
    if failed:
        out["failed_runs"] = len(failed)
        out["last_error"] = failed[-1]["error"]
    return out


def ratio(summary: dict[str, Any], base: dict[str, Any] | None) -> str:
    if base is None or "error" in base or "error" in summary:
        return "—"
    return f"{summary['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}"


def markdown(summaries: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    by_name = {s["client"]: s for s in summaries}
    lines = [
        (
            f"Sequential GET {meta['path']} ({meta['body_bytes']} B body) over one keep-alive "
            f"connection to nginx: {meta['n']} requests per run after {meta['warmup']} warm-up, "
            f"{meta['reps']} interleaved runs per client; client pinned to CPU "
            f"{meta['client_cpu']}, nginx to CPU {meta['server_cpu']}."
        ),
        "",
        (
            f"{meta['date']} · {meta['cpu_model']} × {meta['nproc']} · Python "
            f"{meta['python']} · {meta['nginx']}"
        ),
        "",
        (
            "| client | CPU µs/req median [min–max] | req/s | ctx switches/req "
            "| CPU × fasttransport | CPU × pycurl | nginx µs/req (busy) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        if "error" in s:
            lines.append(f"| {s['client']} | {s['error']} | | | | | |")
            continue
        note = f" ({s['failed_runs']} runs failed)" if s.get("failed_runs") else ""
        lines.append(
            f"| {s['client']} {s['version']}{note} "
            f"| {s['cpu_us_per_req']:.1f} [{s['cpu_us_min']:.1f}–{s['cpu_us_max']:.1f}] "
            f"| {s['req_per_s']:,.0f} | {s['nvcsw_per_req']:.2f} "
            f"| {ratio(s, by_name.get('fasttransport'))} | {ratio(s, by_name.get('pycurl'))} "
            f"| {s['server_us_per_req']:.1f} ({s['server_busy']:.0%}) |"
        )
    lines += [
        "",
        (
            "CPU is the client process's user + system time (all its threads) over the timed "
            "loop; ctx switches are voluntary ones (`ru_nvcsw`). nginx busy near 100% means "
            "the server, not the client, limited req/s."
        ),
    ]
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_driver(args: argparse.Namespace) -> int:
    names = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLIENTS]
    if unknown:
        print(f"unknown clients: {', '.join(unknown)}; known: {', '.join(CLIENTS)}")
        return 2
    try:
        server = nginx.Nginx(pin_cpu=None if args.no_pin else "1")
    except RuntimeError as exc:
        print(exc)
        return 2
    pinned = not args.no_pin and nginx.can_pin()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with server:
        url = server.url(args.path)
        expect = server.body_size(args.path)
        skip: set[str] = set()
        for rep in range(args.reps):
            for name in names:
                if name in skip:
                    continue
                result = run_one(server, name, url, args, expect)
                runs[name].append(result)
                if "error" in result:
                    status = f"error: {result['error']}"
                    if result.get("exit") == EXIT_MISSING or rep == 0:
                        skip.add(name)  # fails the same way every time
                else:
                    status = (
                        f"{result['cpu_us_per_req']:.1f} µs CPU/req, "
                        f"{result['req_per_s']:,.0f} req/s, "
                        f"{result['nvcsw_per_req']:.2f} ctx/req"
                    )
                print(f"rep {rep + 1}/{args.reps} {name:24s} {status}", flush=True)
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu_model": cpu_model(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "nginx": server.version.replace("nginx version: ", ""),
            "path": args.path,
            "body_bytes": expect,
            "n": args.n,
            "warmup": args.warmup,
            "reps": args.reps,
            "client_cpu": "0" if pinned else "any",
            "server_cpu": server.pinned_cpu or "any",
        }
    summaries = [summarise(name, runs[name]) for name in names]
    table = markdown(summaries, meta)
    print()
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "seq.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "seq.json"), "w") as f:
        json.dump({"meta": meta, "summary": summaries, "runs": runs}, f, indent=1)
        f.write("\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Sequential keep-alive GETs against nginx, one row per client."
    )
    parser.add_argument("--n", type=int, default=20000, help="timed requests per run")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed requests first")
    parser.add_argument("--reps", type=int, default=5, help="runs per client, interleaved")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    parser.add_argument("--path", default="/small", choices=["/small", "/1k", "/16m"])
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 1 or args.reps < 1 or args.warmup < 0:
        parser.error("--n and --reps must be positive, --warmup not negative")
    if args.worker:
        return run_worker(args.worker, args.url, args.n, args.warmup, args.expect)
    if shutil.which("taskset") is None and not args.no_pin:
        print("taskset not found: running unpinned")
        args.no_pin = True
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
