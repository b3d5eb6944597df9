"""One measured run: one client, one scenario, in a fresh process.

The driver starts ``python -m fasttransport.bench.worker '<spec as JSON>'``
(pinned to CPU 0 with taskset when it can) and reads the last line of its
stdout, one JSON object: the measurements, or ``{"status": ..., "error": ...}``
with status ``"not installed"`` (the library does not import),
``"not available"`` (it imports but lacks what the row needs, such as a
fasttransport adapter not written yet), ``"not supported yet"`` (the first
request failed saying so) or ``"failed"``.

Spec keys: ``kind`` (``requests``, ``scale``, ``parser``, ``wrk``), ``client``,
``url``, ``cafile``, ``expect`` (body size), ``n``, ``warmup``,
``concurrency`` (requests in flight), ``threads`` (Python threads for a
client of the ``threads`` style; ``concurrency`` when absent), ``spacing``
(seconds of sleep before each request),
``time_limit`` (seconds for the timed part), ``max_errors``, ``server_pid``
(the nginx worker, whose CPU is read around the timed part), ``seconds``
(``wrk``: how long wrk runs).

Measured around the timed part only, in this process: user + system CPU of
all threads (``getrusage(RUSAGE_SELF)``), wall time, voluntary and
involuntary context switches; and the nginx worker's CPU over the same
window. Every loop stops after ``n`` requests, after ``time_limit``
seconds, or after ``max_errors`` errors, whichever comes first (the
``multi`` runners, which drive their requests themselves, after ``n`` or
``time_limit``). The ``wrk`` kind runs the C load generator wrk for
``seconds`` instead and measures that child process (``run_wrk``).

With more than one request in flight the client's ``style`` decides how:
``threads`` (that many Python threads, each looping on a blocking fetch),
``async`` (that many tasks on one event loop; async clients run as one task
also when sequential) or ``multi`` (one thread keeps them in flight:
CurlMulti, ``Client.map``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

from . import wrk
from .clients import ADAPTERS, Adapter, AsyncFetch, Fetch, NotAvailable, Target
from .nginx import proc_cpu_seconds
from .parsers import PARSERS, empty_loop_ns


class Unsupported(Exception):
    """The client refused the scenario (for example: no HTTPS yet)."""


class Tally:
    """Requests done, errors, bodies of the wrong size, the last error text."""

    __slots__ = ("bad", "done", "errors", "last_error", "latencies")

    def __init__(self) -> None:
        self.done = self.errors = self.bad = 0
        self.last_error = ""
        self.latencies: list[float] = []

    def add(self, other: Tally) -> None:
        self.done += other.done
        self.errors += other.errors
        self.bad += other.bad
        self.last_error = other.last_error or self.last_error
        self.latencies += other.latencies


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------------
# The loops. The same shape for every client: one call per request, a length
# check on the body, a clock read to bound the time.


def loop(fetch: Fetch, n: int, expect: int, deadline: float, max_errors: int) -> Tally:
    tally = Tally()
    clock = time.perf_counter
    done = errors = bad = 0
    while done < n:
        try:
            body = fetch()
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            errors += 1
            tally.last_error = describe(exc)
        else:
            if len(body) != expect:
                bad += 1
        done += 1
        if clock() > deadline or errors >= max_errors:
            break
    tally.done, tally.errors, tally.bad = done, errors, bad
    return tally


def spaced_loop(
    fetch: Fetch, n: int, expect: int, deadline: float, max_errors: int, spacing: float
) -> Tally:
    """Like ``loop`` with a sleep before each request; records each request's latency."""
    tally = Tally()
    clock = time.perf_counter
    while tally.done < n:
        time.sleep(spacing)
        t0 = clock()
        try:
            body = fetch()
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            tally.errors += 1
            tally.last_error = describe(exc)
        else:
            if len(body) != expect:
                tally.bad += 1
        tally.latencies.append(clock() - t0)
        tally.done += 1
        if clock() > deadline or tally.errors >= max_errors:
            break
    return tally


async def async_loop(
    fetch: AsyncFetch, n: int, expect: int, deadline: float, max_errors: int, spacing: float
) -> Tally:
    """``loop`` / ``spaced_loop`` for a coroutine fetch."""
    tally = Tally()
    clock = time.perf_counter
    while tally.done < n:
        if spacing:
            await asyncio.sleep(spacing)
        t0 = clock()
        try:
            body = await fetch()
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            tally.errors += 1
            tally.last_error = describe(exc)
        else:
            if len(body) != expect:
                tally.bad += 1
        if spacing:
            tally.latencies.append(clock() - t0)
        tally.done += 1
        if clock() > deadline or tally.errors >= max_errors:
            break
    return tally


def shares(n: int, parts: int) -> list[int]:
    """``n`` split into ``parts`` near-equal counts."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


# ---------------------------------------------------------------------------
# The meter


class Meter:
    """CPU, wall time and context switches of this process (or, with ``who``
    ``RUSAGE_CHILDREN``, of the children it waited for) over a window, and
    the server worker's CPU over the same window."""

    def __init__(self, server_pid: Optional[int], who: int = resource.RUSAGE_SELF) -> None:
        self.server_pid = server_pid
        self.who = who

    def _server(self) -> float:
        if self.server_pid is None:
            return math.nan
        try:
            return proc_cpu_seconds(self.server_pid)
        except OSError:
            return math.nan

    def start(self) -> None:
        self.s0 = self._server()
        self.ru0 = resource.getrusage(self.who)
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.t1 = time.perf_counter()
        self.ru1 = resource.getrusage(self.who)
        self.s1 = self._server()

    def result(self, tally: Tally, body_bytes: int, wall: Optional[float] = None) -> dict[str, Any]:
        """The figures; ``wall`` replaces the window's wall time (wrk's own run time)."""
        n = max(1, tally.done)
        if wall is None:
            wall = self.t1 - self.t0
        user = self.ru1.ru_utime - self.ru0.ru_utime
        system = self.ru1.ru_stime - self.ru0.ru_stime
        server = self.s1 - self.s0
        out: dict[str, Any] = {
            "requests": tally.done,
            "errors": tally.errors,
            "bad_bodies": tally.bad,
            "wall_s": wall,
            "cpu_us_per_req": (user + system) / n * 1e6,
            "user_us_per_req": user / n * 1e6,
            "sys_us_per_req": system / n * 1e6,
            "req_per_s": tally.done / wall if wall > 0 else 0.0,
            "nvcsw_per_req": (self.ru1.ru_nvcsw - self.ru0.ru_nvcsw) / n,
            "nivcsw_per_req": (self.ru1.ru_nivcsw - self.ru0.ru_nivcsw) / n,
            "mb_per_s": (tally.done - tally.errors) * body_bytes / wall / 1e6 if wall else 0.0,
            "server_us_per_req": server / n * 1e6 if not math.isnan(server) else None,
            "server_busy": server / wall if wall > 0 and not math.isnan(server) else None,
        }
        if tally.last_error:
            out["last_error"] = tally.last_error
        if tally.latencies:
            out["latency_ms_median"] = statistics.median(tally.latencies) * 1e3
            out["latency_ms_max"] = max(tally.latencies) * 1e3
        return out


# ---------------------------------------------------------------------------
# requests: sequential, concurrent, spaced


def first_request(fetch: Fetch, expect: int) -> None:
    """One request outside any loop, so that a client that cannot do the
    scenario reports why instead of a row of errors."""
    try:
        body = fetch()
    except Exception as exc:  # noqa: BLE001 - classified for the report
        if "not supported" in str(exc):
            raise Unsupported(describe(exc)) from None
        raise
    if len(body) != expect:
        raise RuntimeError(f"body of {len(body)} bytes, expected {expect}")


def run_sync(adapter: Adapter, target: Target, spec: dict[str, Any], meter: Meter) -> Tally:
    fetch, close = adapter.sync(target)
    try:
        expect, max_errors, spacing = spec["expect"], spec["max_errors"], spec["spacing"]
        first_request(fetch, expect)
        loop(fetch, spec["warmup"] - 1, expect, math.inf, max_errors)
        gc.collect()
        meter.start()
        deadline = time.perf_counter() + spec["time_limit"]
        if spacing:
            tally = spaced_loop(fetch, spec["n"], expect, deadline, max_errors, spacing)
        else:
            tally = loop(fetch, spec["n"], expect, deadline, max_errors)
        meter.stop()
        return tally
    finally:
        close()


def run_threads(adapter: Adapter, target: Target, spec: dict[str, Any], meter: Meter) -> Tally:
    threads = spec.get("threads") or spec["concurrency"]
    expect, max_errors = spec["expect"], spec["max_errors"]
    per_thread, close = adapter.threaded(target, threads)
    ready = threading.Barrier(threads + 1, timeout=120)
    go = threading.Barrier(threads + 1, timeout=120)
    tallies: list[Tally] = []
    failures: list[BaseException] = []
    deadline = [math.inf]

    def work(count: int, warm: int) -> None:
        try:
            fetch = per_thread()
            first_request(fetch, expect)
            loop(fetch, warm - 1, expect, math.inf, max_errors)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
            ready.abort()
            return
        try:
            ready.wait()
            go.wait()
        except threading.BrokenBarrierError:
            return  # another thread failed; the main thread reports it
        tallies.append(loop(fetch, count, expect, deadline[0], max_errors))

    counts = shares(spec["n"], threads)
    warm = max(1, spec["warmup"] // threads)
    pool = [threading.Thread(target=work, args=(c, warm), daemon=True) for c in counts]
    try:
        for t in pool:
            t.start()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            go.abort()
            raise failures[0] if failures else RuntimeError("a thread did not start") from None
        gc.collect()
        meter.start()
        deadline[0] = time.perf_counter() + spec["time_limit"]
        go.wait()
        for t in pool:
            t.join()
        meter.stop()
    finally:
        for t in pool:
            t.join(timeout=spec["time_limit"] + 60)
        close()
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


def run_async(adapter: Adapter, target: Target, spec: dict[str, Any], meter: Meter) -> Tally:
    tasks, expect, max_errors = spec["concurrency"], spec["expect"], spec["max_errors"]
    spacing = spec["spacing"]

    async def main() -> Tally:
        async with adapter.async_session(target, tasks) as fetch:
            try:
                body = await fetch()
            except Exception as exc:  # noqa: BLE001 - classified for the report
                if "not supported" in str(exc):
                    raise Unsupported(describe(exc)) from None
                raise
            if len(body) != expect:
                raise RuntimeError(f"body of {len(body)} bytes, expected {expect}")
            warm = shares(max(tasks, spec["warmup"] - 1), tasks)
            await asyncio.gather(
                *(async_loop(fetch, w, expect, math.inf, max_errors, 0) for w in warm)
            )
            gc.collect()
            meter.start()
            deadline = time.perf_counter() + spec["time_limit"]
            results = await asyncio.gather(
                *(
                    async_loop(fetch, c, expect, deadline, max_errors, spacing)
                    for c in shares(spec["n"], tasks)
                )
            )
            meter.stop()
        total = Tally()
        for tally in results:
            total.add(tally)
        return total

    return asyncio.run(main())


def run_multi(adapter: Adapter, target: Target, spec: dict[str, Any], meter: Meter) -> Tally:
    runner = adapter.multi(target, spec["concurrency"])
    try:
        expect = spec["expect"]
        done, errors, bad, last = runner.run(max(spec["warmup"], 1), math.inf, expect)
        if errors == done:
            if "not supported" in last:
                raise Unsupported(last)
            raise RuntimeError(last)
        gc.collect()
        meter.start()
        deadline = time.perf_counter() + spec["time_limit"]
        tally = Tally()
        tally.done, tally.errors, tally.bad, tally.last_error = runner.run(
            spec["n"], deadline, expect
        )
        meter.stop()
        return tally
    finally:
        runner.close()


def run_requests(spec: dict[str, Any]) -> dict[str, Any]:
    adapter = ADAPTERS[spec["client"]]
    version = adapter.version()  # ImportError: not installed
    target = Target(spec["url"], spec.get("cafile"))
    meter = Meter(spec.get("server_pid"))
    if adapter.style == "async":
        tally = run_async(adapter, target, spec, meter)
    elif spec["concurrency"] > 1 and adapter.style == "multi":
        tally = run_multi(adapter, target, spec, meter)
    elif spec["concurrency"] > 1:
        tally = run_threads(adapter, target, spec, meter)
    else:
        tally = run_sync(adapter, target, spec, meter)
    result = meter.result(tally, spec["expect"])
    result["version"] = version
    return result


# ---------------------------------------------------------------------------
# wrk: the C load generator as a reference row


def run_wrk(spec: dict[str, Any]) -> dict[str, Any]:
    """``wrk -t1 -c<concurrency> -d<seconds>s <url>`` as a child of this
    process, which starts no other child: its CPU is the growth of
    ``RUSAGE_CHILDREN`` around it (see ``wrk.py``)."""
    binary = wrk.find()
    if binary is None:
        raise NotAvailable(wrk.INSTALL_HINT)
    version = wrk.version(binary)
    seconds = max(1, round(spec["seconds"]))
    cmd = wrk.command(binary, spec["url"], spec["concurrency"], seconds)
    meter = Meter(spec.get("server_pid"), who=resource.RUSAGE_CHILDREN)
    meter.start()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                          timeout=seconds + 60, stdin=subprocess.DEVNULL)
    meter.stop()
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"wrk exit {proc.returncode}: {tail}")
    report = wrk.parse(proc.stdout)
    if report.requests == 0:
        raise RuntimeError(f"wrk made no requests: {report.error_text() or proc.stdout}")
    tally = Tally()
    tally.done, tally.errors, tally.last_error = (report.requests, report.errors,
                                                  report.error_text())
    result = meter.result(tally, spec["expect"], wall=report.seconds)
    result["version"] = version
    result["command"] = " ".join(["wrk", *cmd[1:]])
    return result


# ---------------------------------------------------------------------------
# scale: many idle keep-alive connections


def snapshot() -> dict[str, int]:
    """This process's threads, resident memory (KiB) and open sockets."""
    threads = len(os.listdir("/proc/self/task"))
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return {"threads": threads, "rss_kib": rss, "sockets": sockets}


def run_scale(spec: dict[str, Any]) -> dict[str, Any]:
    adapter = ADAPTERS[spec["client"]]
    version = adapter.version()
    count = spec["n"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise RuntimeError(f"need {want} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    target = Target(spec["url"], spec.get("cafile"))

    def nothing() -> None:
        return None

    adapter.hold(target, 2, nothing, nothing)  # warm-up with a throwaway client
    marks: dict[str, Any] = {}

    def ready() -> None:
        gc.collect()
        marks["before"] = snapshot()
        marks["t0"] = time.perf_counter()

    def held() -> None:
        marks["t1"] = time.perf_counter()
        gc.collect()
        time.sleep(0.2)  # let engine threads settle
        marks["held"] = snapshot()

    adapter.hold(target, count, ready, held, time.perf_counter() + spec["time_limit"])
    before, during = marks["before"], marks["held"]
    conns = during["sockets"] - before["sockets"]
    if conns <= 0:
        raise RuntimeError(f"no connections held (sockets {before['sockets']} -> "
                           f"{during['sockets']})")
    return {
        "version": version,
        "connections": conns,
        "rss_kib_per_conn": (during["rss_kib"] - before["rss_kib"]) / conns,
        "rss_kib_before": before["rss_kib"],
        "rss_kib_held": during["rss_kib"],
        "threads_before": before["threads"],
        "threads_held": during["threads"],
        "open_s": marks["t1"] - marks["t0"],
    }


# ---------------------------------------------------------------------------
# parser


def run_parser(spec: dict[str, Any]) -> dict[str, Any]:
    factory, _how, library = PARSERS[spec["client"]]
    measure = factory()  # ImportError: not installed
    module = __import__(library)
    n = spec["n"]
    measure(max(1, n // 10))
    return {
        "version": getattr(module, "__version__", ""),
        "ns_per_head": measure(n),
        "empty_loop_ns": empty_loop_ns(n),
    }


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "requests": run_requests,
    "scale": run_scale,
    "parser": run_parser,
    "wrk": run_wrk,
}


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fasttransport.bench.worker '<spec as JSON>'", file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    try:
        result = RUNNERS[spec["kind"]](spec)
    except ImportError as exc:
        result = {"status": "not installed", "error": str(exc)}
    except NotAvailable as exc:
        result = {"status": "not available", "error": str(exc)}
    except Unsupported as exc:
        result = {"status": "not supported yet", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported in the client's row
        result = {"status": "failed", "error": describe(exc)}
    result["client"] = spec["client"]
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
