"""The driver: ``fasttransport bench`` / ``python -m fasttransport.bench``.

It starts one private nginx (``nginx.py``) when a selected scenario needs
one, then for each scenario runs every client ``--reps`` times, interleaved
(rep 1 of each client, then rep 2, ...), each run a fresh Python process
(``worker.py``) pinned to CPU 0 while nginx is pinned to CPU 1. A client that
is not installed, cannot do the scenario or fails on its first run keeps its
row with the reason and is not run again. nginx is always stopped, also on
Ctrl-C.

The ``wrk`` row of some scenarios runs the C load generator wrk in its worker
instead of a Python client, for about as long as the median of the other
rows' runs in that scenario (``wrk_seconds``). After the timed runs, scenarios
with ``syscalls`` count each row's system calls per request in separate,
untimed runs under ``strace -f -c`` (``Suite.count_syscalls``, see
``syscalls.py``); not under ``--quick`` unless ``--syscalls`` is given, and
not when strace is missing (the table says why).

Results go to ``--out``: ``bench.md`` (every table of this run),
``bench.json`` (every run's raw figures), and per scenario ``NAME.md``,
``NAME.json`` and ``NAME.png``. ``--readme FILE`` also writes each table into
that file between ``<!-- bench:NAME -->`` markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from . import report, syscalls, wrk
from .clients import ADAPTERS
from .nginx import INSTALL_HINT, Nginx, can_pin, find_nginx
from .parsers import PARSERS
from .scenarios import BY_NAME, SCENARIOS, Scenario

DEFAULT_REPS = 3
QUICK_REPS = 1
DEFAULT_TIME_LIMIT = 20.0
QUICK_TIME_LIMIT = 3.0
#: Seconds a worker may take beyond its time limit (start-up, imports, warm-up).
WORKER_GRACE = 90.0
#: System call counts: requests in the shorter and the longer traced run of a
#: Python client (after the same warm-up), and wrk's two run lengths in seconds.
SYSCALL_REQUESTS = (200, 1200)
SYSCALL_WARMUP = 100
SYSCALL_WRK_SECONDS = (1, 3)
#: Seconds a traced run may take (strace slows a client several times).
SYSCALL_TIME_LIMIT = 300.0


def known_clients() -> list[str]:
    names = [*ADAPTERS, wrk.ROW]
    for _, _, library in PARSERS.values():
        if library not in names:
            names.append(library)
    return names


def wrk_seconds(runs: dict[str, list[dict[str, Any]]], limit: float) -> int:
    """How long wrk runs: the median wall time of the other rows' runs so far
    in this scenario (whole seconds, at least 1, at most the time limit
    rounded up), or the time limit when there is none."""
    walls = [r["wall_s"] for row, rs in runs.items() if row != wrk.ROW for r in rs
             if "status" not in r and r.get("wall_s")]
    cap = max(1, math.ceil(limit))
    return min(cap, max(1, round(statistics.median(walls)))) if walls else cap


def _row_client(scenario: Scenario, row: str) -> str:
    """The library a row belongs to (parser rows name their parser)."""
    return PARSERS[row][2] if scenario.kind == "parser" else row


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _parse_counts(text: str, parser: argparse.ArgumentParser) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, number = item.partition("=")
        if not sep or name not in BY_NAME or not number.isdigit() or int(number) < 1:
            parser.error(f"--n takes SCENARIO=COUNT items, got {item!r}")
        counts[name] = int(number)
    return counts


def build_parser(default_out: str, default_readme: Optional[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fasttransport bench",
        description="Every scenario, every installed client, side by side against a private "
        "nginx; tables, JSON and charts.",
        epilog="Scenarios: " + ", ".join(s.name for s in SCENARIOS) + ". Clients: "
        + ", ".join(known_clients()) + ".",
    )
    p.add_argument("--scenarios", default="all", help="comma-separated names, or all")
    p.add_argument("--clients", default="all", help="comma-separated names, or all")
    p.add_argument("--reps", type=int, help=f"runs per client, interleaved "
                   f"(default {DEFAULT_REPS}, --quick {QUICK_REPS})")
    p.add_argument("--n", default="", metavar="SCENARIO=COUNT,...",
                   help="requests (bodies, heads, connections) per run, e.g. seq=50000,big=10")
    p.add_argument("--time-limit", type=float, help="seconds for one run's timed part "
                   f"(default {DEFAULT_TIME_LIMIT:.0f}, --quick {QUICK_TIME_LIMIT:.0f})")
    p.add_argument("--quick", action="store_true",
                   help="fewer requests and one run each: about a minute for everything")
    p.add_argument("--out", default=default_out, help=f"results folder (default {default_out})")
    p.add_argument("--readme", default=default_readme,
                   help="also write the tables into this markdown file")
    p.add_argument("--no-readme", action="store_true", help="do not touch any README")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    p.add_argument("--syscalls", action="store_true",
                   help="count system calls per request (strace) also under --quick")
    p.add_argument("--no-syscalls", action="store_true",
                   help="do not count system calls per request (done by default, not "
                   "under --quick: separate runs under strace -f -c, about a minute per "
                   "scenario)")
    p.add_argument("--list", action="store_true", help="list scenarios and clients, then exit")
    return p


def _select(text: str, known: list[str], what: str, parser: argparse.ArgumentParser) -> list[str]:
    if text.strip() in ("", "all"):
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


class Suite:
    """One invocation: options resolved, server started on demand, runs kept."""

    def __init__(self, args: argparse.Namespace, scenarios: list[Scenario],
                 clients: list[str]) -> None:
        self.args = args
        self.scenarios = scenarios
        self.clients = clients
        self.quick = args.quick
        self.reps = args.reps or (QUICK_REPS if self.quick else DEFAULT_REPS)
        self.time_limit = args.time_limit or (QUICK_TIME_LIMIT if self.quick
                                              else DEFAULT_TIME_LIMIT)
        self.counts = args.counts
        self.pin = not args.no_pin and can_pin()
        self.load_at_start = round(os.getloadavg()[0], 2)
        self.server: Optional[Nginx] = None
        self.server_error = ""
        self.tls_error = ""

    # -- per scenario

    def count(self, s: Scenario) -> int:
        return self.counts.get(s.name) or (s.quick_n if self.quick else s.n)

    def limit(self, s: Scenario) -> float:
        if self.args.time_limit:
            given: float = self.args.time_limit
            return given
        own = s.quick_time_limit if self.quick else s.time_limit
        return own or self.time_limit

    def warmup(self, s: Scenario) -> int:
        return s.quick_warmup if self.quick else s.warmup

    def rows(self, s: Scenario) -> list[str]:
        return [row for row in s.clients if _row_client(s, row) in self.clients]

    def spec(self, s: Scenario, row: str) -> dict[str, Any]:
        n = self.count(s)
        spec: dict[str, Any] = {
            "kind": s.kind, "client": row, "n": n, "warmup": self.warmup(s),
            "concurrency": s.concurrency, "threads": s.threads, "spacing": s.spacing,
            "time_limit": self.limit(s),
            "max_errors": s.max_errors or max(10, n // 10),
        }
        if s.needs_nginx and self.server is not None:
            spec["url"] = self.server.url(s.path, s.listener or "plain")
            spec["expect"] = self.server.body_size(s.path)
            spec["server_pid"] = self.server.worker_pid
            spec["cafile"] = self.server.cafile if s.needs_tls else None
        if row == wrk.ROW:
            spec["kind"] = "wrk"
        return spec

    def pinned(self, cmd: list[str]) -> list[str]:
        """``cmd`` on CPU 0 (``taskset``), where every client runs."""
        return ["taskset", "-c", "0", *cmd] if self.pin else cmd

    def run_one(self, spec: dict[str, Any], trace: Optional[str] = None) -> dict[str, Any]:
        """One worker process; with ``trace`` (a path) it runs under
        ``strace -f -c`` writing its summary there."""
        cmd = [sys.executable, "-m", "fasttransport.bench.worker", json.dumps(spec)]
        if trace:
            cmd = syscalls.traced(syscalls.find() or "strace", cmd, trace)
        timeout = (spec["time_limit"] + WORKER_GRACE + spec["warmup"] * spec.get("spacing", 0)
                   + spec.get("seconds", 0))
        try:
            proc = subprocess.run(self.pinned(cmd), check=False, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {"client": spec["client"], "status": "failed",
                    "error": f"timed out after {timeout:.0f} s"}
        try:
            result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
            return result
        except (IndexError, ValueError):
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"client": spec["client"], "status": "failed",
                    "error": f"worker exit {proc.returncode}: {tail}"}

    def unavailable(self, s: Scenario) -> str:
        if not s.needs_nginx:
            return ""
        if self.server is None:
            return self.server_error
        if s.needs_tls and self.server.cafile is None:
            return self.tls_error or "no TLS listener"
        return ""

    def run_scenario(self, s: Scenario) -> dict[str, Any]:
        rows = self.rows(s)
        runs: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
        reason = self.unavailable(s)
        if reason:
            print(f"[{s.name}] skipped: {reason}", flush=True)
            return {"rows": rows, "runs": runs, "skipped": reason}
        stop: set[str] = set()
        for rep in range(self.reps):
            for row in rows:
                if row in stop:
                    continue
                t0 = time.monotonic()
                spec = self.spec(s, row)
                if row == wrk.ROW:
                    spec["seconds"] = wrk_seconds(runs, self.limit(s))
                result = self.run_one(spec)
                took = time.monotonic() - t0
                runs[row].append(result)
                if "status" in result:
                    if rep == 0 or result["status"] != "failed":
                        stop.add(row)  # it would fail the same way every time
                    status = f"{result['status']}: {result.get('error', '')}"
                else:
                    status = progress(s, result)
                print(f"[{s.name}] rep {rep + 1}/{self.reps} {row:34s} {status} "
                      f"({took:.1f} s)", flush=True)
        out: dict[str, Any] = {"rows": rows, "runs": runs}
        if s.syscalls:
            out["syscalls"] = self.count_syscalls(s, rows, runs)
        return out

    # -- system calls per request

    def syscalls_skipped(self) -> str:
        """Why system calls are not counted in this invocation, or ``""``."""
        if self.args.no_syscalls:
            return "`--no-syscalls`"
        if self.quick and not self.args.syscalls:
            return "not under `--quick` (add `--syscalls`)"
        if syscalls.find() is None:
            return syscalls.INSTALL_HINT
        return ""

    def count_syscalls(self, s: Scenario, rows: list[str],
                       runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """System calls per request of every row that ran, in separate runs
        under ``strace -f -c``: ``{"requests": (N1, N2), "wrk_seconds": ...,
        "rows": {row: PerRequest.as_json() or {"error": ...}}}`` or
        ``{"skipped": reason}``."""
        skipped = self.syscalls_skipped()
        if skipped:
            print(f"[{s.name}] system calls not counted: {skipped}", flush=True)
            return {"skipped": skipped}
        info: dict[str, Any] = {"requests": list(SYSCALL_REQUESTS),
                                "wrk_seconds": list(SYSCALL_WRK_SECONDS), "rows": {}}
        for row in rows:
            if not any("status" not in r for r in runs[row]):
                continue  # not installed, not available or failed: its row says so
            t0 = time.monotonic()
            try:
                per = self.syscalls_per_request(s, row)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                info["rows"][row] = {"error": str(exc)}
                text = f"not counted: {exc}"
            else:
                info["rows"][row] = per.as_json()
                text = per.describe()
            print(f"[{s.name}] syscalls/req {row:34s} {text} ({time.monotonic() - t0:.1f} s)",
                  flush=True)
        return info

    def syscalls_per_request(self, s: Scenario, row: str) -> syscalls.PerRequest:
        """Two traced runs of one row, the second with more requests."""
        with tempfile.TemporaryDirectory(prefix="ft-bench-strace-") as tmp:
            counts, made = [], []
            for i in range(2):
                path = os.path.join(tmp, f"run{i}.txt")
                if row == wrk.ROW:
                    made.append(self._traced_wrk(s, SYSCALL_WRK_SECONDS[i], path))
                else:
                    made.append(self._traced_client(s, row, SYSCALL_REQUESTS[i], path))
                with open(path) as f:
                    counts.append(syscalls.parse(f.read()))
        return syscalls.per_request(counts[0], counts[1], made[1] - made[0])

    def _traced_client(self, s: Scenario, row: str, n: int, path: str) -> int:
        spec = self.spec(s, row)
        spec.update(n=n, warmup=SYSCALL_WARMUP, time_limit=SYSCALL_TIME_LIMIT,
                    max_errors=n + SYSCALL_WARMUP)
        result = self.run_one(spec, trace=path)
        if "status" in result:
            raise RuntimeError(f"traced run {result['status']}: {result.get('error', '')}")
        if result["requests"] != n or result["errors"]:
            raise RuntimeError(f"the traced run made {result['requests']} requests with "
                               f"{result['errors']} errors, expected {n} without error")
        return n

    def _traced_wrk(self, s: Scenario, seconds: int, path: str) -> int:
        binary, strace = wrk.find(), syscalls.find()
        if binary is None or strace is None:
            raise RuntimeError(wrk.INSTALL_HINT if binary is None else syscalls.INSTALL_HINT)
        spec = self.spec(s, wrk.ROW)
        cmd = wrk.command(binary, spec["url"], s.concurrency, seconds)
        proc = subprocess.run(self.pinned(syscalls.traced(strace, cmd, path)), check=False,
                              capture_output=True, text=True, timeout=seconds + WORKER_GRACE,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or "no output").splitlines()[-1]
            raise RuntimeError(f"traced wrk exit {proc.returncode}: {tail}")
        return wrk.parse(proc.stdout).requests

    # -- server

    def start_server(self) -> None:
        if not any(s.needs_nginx for s in self.scenarios):
            return
        if find_nginx() is None:
            self.server_error = INSTALL_HINT
            print(INSTALL_HINT, flush=True)
            return
        tls = any(s.needs_tls for s in self.scenarios)
        pin = None if self.args.no_pin else "1"
        try:
            self.server = Nginx(pin_cpu=pin, tls=tls).start()
        except RuntimeError as exc:
            if not tls:
                self.server_error = str(exc)
                return
            self.tls_error = f"no TLS listener: {exc}"
            try:
                self.server = Nginx(pin_cpu=pin).start()
            except RuntimeError as exc2:
                self.server_error = str(exc2)
                return
        print(f"{self.server.version}, worker pid {self.server.worker_pid}, CPU "
              f"{self.server.pinned_cpu or 'any'}; clients on CPU {'0' if self.pin else 'any'}",
              flush=True)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()

    def meta(self) -> dict[str, Any]:
        server = self.server
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu_model": cpu_model(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "nginx": server.version.replace("nginx version: ", "") if server else None,
            "certificate": server.cert_tool if server and server.cafile else None,
            "client_cpu": "0" if self.pin else "any",
            "server_cpu": (server.pinned_cpu if server else None) or "any",
            "reps": self.reps,
            "quick": self.quick,
            "time_limit_s": self.time_limit,
            "load_average_at_start": self.load_at_start,
        }

    def how(self, s: Scenario, meta: dict[str, Any]) -> str:
        n, warm = self.count(s), self.warmup(s)
        runs = f"{self.reps} interleaved run{'s' if self.reps > 1 else ''} per client"
        if s.kind == "parser":
            text = f"{n:,} {s.unit} per run, {runs}, each in a fresh process"
        elif s.kind == "scale":
            text = (f"{n:,} {s.unit} (opened within {self.limit(s):g} s), {runs}, each in a "
                    "fresh process")
        else:
            text = (f"Up to {n:,} {s.unit} per run (at most {self.limit(s):g} s) after "
                    f"{warm:,} warm-up, {runs}, each in a fresh process")
        if s.kind != "parser" and self.server is not None:
            text += (f"; client on CPU {meta['client_cpu']}, nginx on CPU "
                     f"{meta['server_cpu']}")
        elif self.pin:
            text += "; pinned to CPU 0"
        text += f". {meta['date']} · {meta['cpu_model']} × {meta['nproc']} · Python " \
                f"{meta['python']}"
        if s.kind != "parser" and meta["nginx"]:
            text += f" · {meta['nginx']}"
        text += f" · load average {meta['load_average_at_start']:.2f} at start"
        if self.quick:
            text += " · `--quick`: few requests, one run, no range: indicative only"
        return text + "."


def progress(s: Scenario, r: dict[str, Any]) -> str:
    if s.kind == "parser":
        return f"{r['ns_per_head']:,.0f} ns/head"
    if s.kind == "scale":
        return (f"{r['connections']} conns, {r['rss_kib_per_conn']:.1f} KiB/conn, "
                f"threads {r['threads_before']} -> {r['threads_held']}")
    text = (f"{r['cpu_us_per_req']:.1f} µs CPU/req, {r['req_per_s']:,.0f} req/s, "
            f"{r['nvcsw_per_req']:.2f} ctx/req, errors {r['errors']}/{r['requests']}")
    if s.unit == "bodies":
        text = f"{r['mb_per_s']:,.0f} MB/s, " + text
    return text


def finish_summary(s: Scenario, summary: dict[str, Any], body_bytes: int) -> dict[str, Any]:
    """Figures derived from the medians (CPU per MiB for large bodies)."""
    if "cpu_us_per_req" in summary and body_bytes >= 1 << 20:
        summary["cpu_ms_per_mib"] = summary["cpu_us_per_req"] / 1e3 / (body_bytes / (1 << 20))
    return summary


def main(argv: Optional[list[str]] = None, *, default_out: Optional[str] = None,
         default_readme: Optional[str] = None) -> int:
    """Run the suite; returns the exit status (0 when some scenario produced a table)."""
    if default_out is None:
        default_out = (os.path.join("benchmarks", "results") if os.path.isdir("benchmarks")
                       else "fasttransport-bench-results")
    parser = build_parser(default_out, default_readme)
    args = parser.parse_args(argv)
    if args.list:
        width = max(len(s.name) for s in SCENARIOS)
        for s in SCENARIOS:
            print(f"{s.name:{width}s} {s.title}\n{'':{width}s} clients: {', '.join(s.clients)}")
        return 0
    if (args.reps is not None and args.reps < 1) or (
            args.time_limit is not None and args.time_limit <= 0):
        parser.error("--reps and --time-limit must be positive")
    args.counts = _parse_counts(args.n, parser)
    names = _select(args.scenarios, [s.name for s in SCENARIOS], "scenarios", parser)
    scenarios = [BY_NAME[n] for n in names]
    clients = _select(args.clients, known_clients(), "clients", parser)
    if not args.no_pin and shutil.which("taskset") is None:
        print("taskset not found: running unpinned", flush=True)
    suite = Suite(args, scenarios, clients)
    if suite.load_at_start > 0.5:
        print(f"the machine is busy (load average {suite.load_at_start:.2f}): other processes "
              "share the CPUs and the results will be noisy", flush=True)
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        suite.start_server()
        for s in scenarios:
            results[s.name] = suite.run_scenario(s)
        meta = suite.meta()
        body_sizes = {s.name: Nginx.body_size(s.path) for s in scenarios}
    finally:
        suite.stop_server()
    return write_results(suite, scenarios, results, meta, body_sizes,
                         time.monotonic() - started)


def write_results(suite: Suite, scenarios: list[Scenario], results: dict[str, Any],
                  meta: dict[str, Any], body_sizes: dict[str, int], elapsed: float) -> int:
    args = suite.args
    os.makedirs(args.out, exist_ok=True)
    sections: dict[str, str] = {}
    all_json: dict[str, Any] = {"meta": meta, "scenarios": {}}
    produced = 0
    for s in scenarios:
        res = results[s.name]
        if res.get("skipped"):
            text = (f"### `{s.name}`: {s.title}\n\nNot run: {res['skipped']}\n")
            summaries: list[dict[str, Any]] = []
        else:
            summaries = [finish_summary(s, report.summarise(row, res["runs"][row]),
                                        body_sizes[s.name]) for row in res["rows"]]
            counted = res.get("syscalls", {}).get("rows", {})
            for summary in summaries:
                if "per_req" in counted.get(summary["client"], {}):
                    summary["syscalls_per_req"] = counted[summary["client"]]["per_req"]
            text = report.markdown(s, summaries, {"how": suite.how(s, meta),
                                                  "syscalls": res.get("syscalls")})
            if any("status" not in x for x in summaries):
                produced += 1
        data = {"meta": meta, "scenario": s.name, "title": s.title, "count": suite.count(s),
                "skipped": res.get("skipped"), "summary": summaries, "runs": res["runs"],
                "syscalls": res.get("syscalls")}
        all_json["scenarios"][s.name] = data
        with open(os.path.join(args.out, f"{s.name}.json"), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        png = os.path.join(args.out, f"{s.name}.png")
        if summaries and not args.no_charts:
            why = report.chart(s, summaries, png)
            if why:
                print(why, flush=True)
                args.no_charts = True  # say it once
            elif args.readme and not args.no_readme:
                rel = os.path.relpath(png, os.path.dirname(os.path.abspath(args.readme)))
                text += f"\n![{s.name}]({rel})\n"
        with open(os.path.join(args.out, f"{s.name}.md"), "w") as f:
            f.write(text)
        sections[s.name] = text
        print()
        print(text, flush=True)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write("\n".join(sections.values()))
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(all_json, f, indent=1)
        f.write("\n")
    if args.readme and not args.no_readme:
        if os.path.exists(args.readme):
            report.update_readme(args.readme, sections)
            print(f"tables written into {args.readme}")
        else:
            print(f"{args.readme} does not exist: README not updated")
    print(f"results in {args.out} ({elapsed:.0f} s)")
    return 0 if produced else 1
