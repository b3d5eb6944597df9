"""Sustained load: mixed traffic from N threads on one Client against nginx.

Runs for ``--seconds`` (60 by default) and reports requests per second
(overall and per 10 s window, to show the rate holds), p50/p99/p99.9
latency per kind of request, errors, and the Transport's counters at the
end; writes the table to ``results/load.md`` next to this file.

The traffic, per request, at random (``MIX``):

- small GETs (5 bytes) and 1 KiB GETs read to EOF, some on the listener
  where nginx closes every 100th response, some on the one that closes
  connections idle for 100 ms;
- HEAD requests;
- 16 MiB bodies read to EOF;
- early closes: a 1 KiB body after 10 bytes (drained and pooled) and a
  16 MiB body after 64 KiB (closed);
- short timeouts: a 16 MiB body with a 5 ms Client timeout (a timeout is the
  expected outcome; one that completes in time counts as ok).

nginx runs from ``fasttransport.bench.nginx`` (pinned to CPU 1, the client to
CPU 0 when there are two CPUs).  Any other exception counts as an error.

    python benchmarks/load.py --seconds 60 --threads 16
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Optional

import fasttransport as ft
from fasttransport.bench.nginx import BIG_SIZE, FILES, Nginx, can_pin

HERE = os.path.dirname(os.path.abspath(__file__))

#: (kind, weight, method, path, listener)
MIX = [
    ("small", 50, "GET", "/small", "plain"),
    ("1k", 15, "GET", "/1k", "plain"),
    ("churn-1k", 10, "GET", "/1k", "churn"),
    ("idle-small", 3, "GET", "/small", "idle"),
    ("head", 5, "HEAD", "/1k", "plain"),
    ("big", 1, "GET", "/16m", "plain"),
    ("early-close-1k", 8, "GET", "/1k", "plain"),
    ("early-close-big", 3, "GET", "/16m", "plain"),
    ("short-timeout-big", 5, "GET", "/16m", "plain"),
]
SHORT_TIMEOUT = 0.005
WINDOW = 10.0


def _expected_size(path: str) -> int:
    name = path.lstrip("/")
    return BIG_SIZE if name == "16m" else len(FILES[name])


def _one(client: ft.Client, kind: str, method: str, url: str, size: int) -> str:
    """One request; returns "ok", "timeout" (expected) or raises."""
    if kind == "short-timeout-big":
        try:
            with client.stream(method, url, timeout=SHORT_TIMEOUT) as r:
                for _ in r.iter_bytes():
                    pass
        except ft.TimeoutError:
            return "timeout"
        return "ok"
    if kind.startswith("early-close"):
        with client.stream(method, url) as r:
            r.read(10 if kind == "early-close-1k" else 65536)
        return "ok"
    if kind == "big":
        got = 0
        with client.stream(method, url) as r:
            for chunk in r.iter_bytes(1 << 20):
                got += len(chunk)
        if got != size:
            raise AssertionError(f"{url}: {got} bytes, expected {size}")
        return "ok"
    r = client.request(method, url)
    want = 0 if method == "HEAD" else size
    if r.status_code != 200 or len(r.content) != want:
        raise AssertionError(f"{url}: status {r.status_code}, {len(r.content)} bytes")
    return "ok"


def percentile(sorted_values: list, q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def run(seconds: float, threads: int, seed: int) -> dict:
    with Nginx() as server:
        if can_pin():
            os.sched_setaffinity(0, {0})
        transport = ft.Transport()
        client = ft.Client(transport=transport)
        kinds = [m[0] for m in MIX]
        weights = [m[1] for m in MIX]
        spec = {m[0]: (m[2], server.url(m[3], m[4]), _expected_size(m[3])) for m in MIX}
        # warm the pool: one connection per thread
        for _ in range(threads):
            client.get(server.url("/small")).read()
        lat: dict = defaultdict(list)
        outcomes: Counter = Counter()
        errors: Counter = Counter()
        first_errors: list = []
        finished: list = []           # completion times, for the per-window rate
        lock = threading.Lock()
        start = time.monotonic()
        stop_at = start + seconds
        cpu0 = time.process_time()
        nginx_cpu0 = server.worker_cpu_seconds()

        def worker(i: int) -> None:
            rng = random.Random(seed + i)
            my_lat = defaultdict(list)
            my_out: Counter = Counter()
            my_err: Counter = Counter()
            my_done = []
            while True:
                now = time.monotonic()
                if now >= stop_at:
                    break
                kind = rng.choices(kinds, weights)[0]
                method, url, size = spec[kind]
                t0 = time.perf_counter()
                try:
                    outcome = _one(client, kind, method, url, size)
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    outcome = "error"
                    my_err[f"{kind}: {type(exc).__name__}"] += 1
                    with lock:
                        if len(first_errors) < 5:
                            first_errors.append(f"{kind}: {exc!r}")
                my_lat[kind].append(time.perf_counter() - t0)
                my_out[(kind, outcome)] += 1
                my_done.append(time.monotonic() - start)
            with lock:
                for k, v in my_lat.items():
                    lat[k].extend(v)
                outcomes.update(my_out)
                errors.update(my_err)
                finished.extend(my_done)

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        elapsed = time.monotonic() - start
        cpu = time.process_time() - cpu0
        nginx_cpu = server.worker_cpu_seconds() - nginx_cpu0
        stats = transport.stats()
        client.close()
        return {
            "seconds": seconds, "elapsed": elapsed, "threads": threads, "lat": lat,
            "outcomes": outcomes, "errors": errors, "first_errors": first_errors,
            "finished": finished, "cpu": cpu, "nginx_cpu": nginx_cpu, "stats": stats,
            "nginx": server.version, "pinned": server.pinned_cpu,
            "loadavg": os.getloadavg(),
        }


def report(res: dict) -> str:
    lat = res["lat"]
    total = sum(len(v) for v in lat.values())
    elapsed = res["elapsed"]
    errors = sum(res["errors"].values())
    timeouts = sum(n for (k, o), n in res["outcomes"].items() if o == "timeout")
    every = sorted(x for v in lat.values() for x in v)
    windows = Counter(int(t // WINDOW) for t in res["finished"] if t < res["seconds"])
    rates = [windows[i] / WINDOW for i in range(int(res["seconds"] // WINDOW))]
    s = res["stats"]
    ms = 1000.0
    lines = [
        "# Sustained load",
        "",
        f"`python benchmarks/load.py --seconds {res['seconds']:g} --threads {res['threads']}`: "
        f"{res['threads']} threads on one Client for {elapsed:.1f} s against nginx "
        f"({res['nginx']}) on loopback (nginx on CPU {res['pinned'] or 'any'}, client on CPU "
        f"{'0' if res['pinned'] else 'any'}); Python {platform.python_version()}, "
        f"load average at the end {res['loadavg'][0]:.2f}.",
        "",
        "| requests | req/s | p50 ms | p99 ms | p99.9 ms | errors | expected timeouts |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {total} | {total / elapsed:.0f} | {percentile(every, 0.5) * ms:.2f} | "
        f"{percentile(every, 0.99) * ms:.2f} | {percentile(every, 0.999) * ms:.2f} | {errors} | "
        f"{timeouts} |",
        "",
        f"req/s per {WINDOW:g} s window: " + ", ".join(f"{r:.0f}" for r in rates),
        "",
        "| kind | requests | p50 ms | p99 ms | outcomes |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, *_ in MIX:
        v = sorted(lat.get(kind, []))
        outs = ", ".join(f"{o} {n}" for (k, o), n in sorted(res["outcomes"].items())
                         if k == kind)
        lines.append(f"| {kind} | {len(v)} | {percentile(v, 0.5) * ms:.2f} | "
                     f"{percentile(v, 0.99) * ms:.2f} | {outs} |")
    lines += [
        "",
        f"Client CPU {res['cpu']:.1f} s ({res['cpu'] / elapsed * 100:.0f}% of one core), "
        f"nginx worker CPU {res['nginx_cpu']:.1f} s.",
        f"Transport at the end: {s.dials} dials, {s.reused_conns} reuses, {s.requests} "
        f"requests, {s.drained_conns} drained early closes, {s.open_conns} open "
        f"({s.idle_conns} idle, {s.active_conns} active), {s.waiting_requests} waiting.",
    ]
    if res["errors"]:
        lines += ["", "Errors: " + ", ".join(f"{k} x{n}" for k, n in res["errors"].items())]
        lines += [f"- `{e}`" for e in res["first_errors"]]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "load.md"))
    args = ap.parse_args(argv)
    res = run(args.seconds, args.threads, args.seed)
    text = report(res)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
