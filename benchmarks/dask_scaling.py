"""What Dask adds per request: ``fasttransport.dask.fetch`` on a LocalCluster
against ``Client.map`` in one process, same nginx, same 100,000 small GETs.

Runs, each in a fresh Python process, interleaved ``--reps`` times:

- ``map``: one process, ``for req, r in Client.map(urls, concurrency=C)``
  reading status and body (the batch API alone);
- ``partition``: one process, ``fasttransport.dask.fetch_partition(urls)``
  (the same plus building an ``ft.FetchResult`` per request, no Dask);
- ``dask-Wwk-pP``: a LocalCluster of W worker processes (1 thread each),
  ``fetch(urls, concurrency=C, partition_size=P).compute()``: every result
  gathered into the calling process;
- ``dask-2wk-pP-reduce``: the same, but only a count of statuses comes back
  (``bag.pluck(2).frequencies()``): the results stay on the workers.

Each Dask run starts its cluster and makes a warm-up fetch (workers import
fasttransport, create their client, open their connections) before the timed
one. Timed: wall seconds of the fetch; client CPU = user + system seconds of
the run's process (the caller, and a LocalCluster's scheduler and nannies) and
of every process under it (the workers; ``psutil``); nginx CPU from
``/proc``. Nothing is pinned: the workers, the driver and nginx share the
machine's cores. On a shared machine the wall figures are taken from each
run's fastest repetition (the least disturbed), the CPU figures are medians.

    python benchmarks/dask_scaling.py                 # 100,000 GETs, 3 reps
    python benchmarks/dask_scaling.py --n 20000 --reps 1

Writes ``results/dask_scaling.md`` and ``.json`` next to this file;
``--render A.json B.json`` writes the table again from the runs of earlier
result files, together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))


def _cpu_tree() -> Dict[str, float]:
    """User + system CPU seconds of this process ("driver": the caller, and
    for a LocalCluster its scheduler and nannies, which run in it) and of
    every process under it ("workers": a LocalCluster's worker processes)."""
    import psutil

    me = psutil.Process()
    out = {"driver": 0.0, "workers": 0.0}
    for role, procs in (("driver", [me]), ("workers", me.children(recursive=True))):
        for p in procs:
            try:
                t = p.cpu_times()
                out[role] += t.user + t.system
            except psutil.Error:
                pass
    return out


def _proc_cpu(pid: int) -> float:
    from fasttransport.bench.nginx import proc_cpu_seconds
    return proc_cpu_seconds(pid)


def _run_one(kind: str, url: str, n: int, concurrency: int, workers: int, psize: int,
             nginx_pid: int) -> Dict[str, Any]:
    """One timed run in this (fresh) process; its figures as a dict."""
    import fasttransport as ft

    urls = [f"{url}?i={i}" for i in range(n)]
    ok = 0
    cluster = client = None
    extra: Dict[str, Any] = {}
    if kind in ("map", "partition"):
        fc = ft.Client(transport=ft.Transport(max_idle_conns_per_host=concurrency))
        for _ in fc.map(urls[:concurrency * 4], concurrency=concurrency):
            pass                                            # warm-up: the pool is full
        if kind == "partition":
            import fasttransport.dask as ftd
            ftd.fetch_partition(urls[:concurrency * 4], concurrency=concurrency,
                                transport_kwargs={"max_idle_conns_per_host": concurrency})
    else:
        import logging

        from distributed import Client, LocalCluster

        import fasttransport.dask as ftd

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
        extra["cluster_start_s"] = time.perf_counter() - t
        tkw = {"max_idle_conns_per_host": concurrency}
        warm = ftd.fetch(urls[:workers * concurrency * 8], concurrency=concurrency,
                         transport_kwargs=tkw, npartitions=workers * 4).compute()
        assert all(r.status == 200 for r in warm)

    cpu0, ng0, t0 = _cpu_tree(), _proc_cpu(nginx_pid), time.perf_counter()
    if kind == "map":
        for _req, r in fc.map(urls, concurrency=concurrency):
            if not isinstance(r, BaseException) and r.status_code == 200 and r.content:
                ok += 1
    elif kind == "partition":
        res = ftd.fetch_partition(urls, concurrency=concurrency,
                                  transport_kwargs={"max_idle_conns_per_host": concurrency})
        ok = sum(1 for r in res if r.status == 200 and r.body)
    else:
        bag = ftd.fetch(urls, concurrency=concurrency, transport_kwargs=tkw,
                        partition_size=psize)
        if kind.endswith("reduce"):
            ok = dict(bag.pluck(2).frequencies().compute()).get(200, 0)
        else:
            ok = sum(1 for r in bag.compute() if r.status == 200 and r.body)
    wall = time.perf_counter() - t0
    cpu1, ng = _cpu_tree(), _proc_cpu(nginx_pid) - ng0
    parts = {f"cpu_{k}_s": cpu1[k] - cpu0[k] for k in cpu1}
    cpu = sum(parts.values())
    if client is not None:
        client.close()
        cluster.close()
    return {"kind": kind, "n": n, "ok": ok, "wall_s": wall, "cpu_s": cpu, "nginx_cpu_s": ng,
            "workers": workers, "partition_size": psize, "concurrency": concurrency, **parts,
            **extra}


CONFIGS = [
    # (label, kind, workers, partition_size)
    ("map", "map", 0, 0),
    ("partition", "partition", 0, 0),
    ("dask-1wk-p1000", "dask", 1, 1000),
    ("dask-2wk-p1000", "dask", 2, 1000),
    ("dask-2wk-p250", "dask", 2, 250),
    ("dask-2wk-p5000", "dask", 2, 5000),
    ("dask-2wk-p1000-reduce", "dask-reduce", 2, 1000),
]


def _median(runs: List[Dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _table(results: Dict[str, List[Dict[str, Any]]], n: int) -> List[str]:
    best_wall = min(r["wall_s"] for r in results["map"])
    base_cpu = _median(results["map"], "cpu_s")
    rows = ["| run | req/s best [median] | wall µs/req (best) | wall × `map` "
            "| client CPU µs/req | of it driver / workers | CPU µs/req over `map` "
            "| nginx busy |",
            "|---|---|---|---|---|---|---|---|"]
    for label, *_ in CONFIGS:
        runs = results.get(label)
        if not runs:
            continue
        rates = sorted(r["ok"] / r["wall_s"] for r in runs)
        wall = min(r["wall_s"] for r in runs)
        cpu = _median(runs, "cpu_s")
        busy = _median(runs, "nginx_cpu_s") / _median(runs, "wall_s")
        drv, wk = _median(runs, "cpu_driver_s"), _median(runs, "cpu_workers_s")
        split = f"{drv / n * 1e6:.1f} / {wk / n * 1e6:.1f}" if wk else "all"
        rows.append(f"| {label} | {rates[-1]:,.0f} [{statistics.median(rates):,.0f}] | "
                    f"{wall / n * 1e6:.1f} | {wall / best_wall:.2f} | {cpu / n * 1e6:.1f} | "
                    f"{split} | {(cpu - base_cpu) / n * 1e6:+.1f} | {busy:.0%} |")
    return rows


def _write(results: Dict[str, List[Dict[str, Any]]], n: int, head: str) -> str:
    """The table as Markdown, written to results/dask_scaling.md."""
    starts = [r["cluster_start_s"] for runs in results.values() for r in runs
              if "cluster_start_s" in r]
    foot = ("Client CPU: every process of the run (for Dask: driver and scheduler, nannies, "
            "workers); driver / workers splits it (the driver process runs the caller, the "
            "scheduler and the nannies). `CPU µs/req over map`: client CPU per request minus "
            "`map`'s. Wall figures: each run's fastest repetition; CPU: medians. "
            "nginx busy: nginx's CPU seconds / wall seconds (one worker process).")
    if starts:
        foot += (f" Starting a LocalCluster took {statistics.median(starts):.1f} s (median; "
                 "not timed above).")
    md = "\n".join([f"### `dask_scaling`: {head}", "", *_table(results, n), "", foot, ""])
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "dask_scaling.md"), "w") as f:
        f.write(md)
    return md


def _save(doc: Dict[str, Any]) -> None:
    with open(os.path.join(HERE, "results", "dask_scaling.json"), "w") as f:
        json.dump(doc, f, indent=1)


def _render(paths: List[str]) -> int:
    """The table from the runs of earlier result files, together."""
    merged: Dict[str, List[Dict[str, Any]]] = {}
    docs = []
    for path in paths:
        with open(path) as f:
            docs.append(json.load(f))
        for label, runs in docs[-1]["runs"].items():
            merged.setdefault(label, []).extend(runs)
    reps = sum(d["reps"] for d in docs)
    head = docs[0]["head"]
    if len(docs) > 1:
        head = head.replace(f"{docs[0]['reps']} interleaved runs each",
                            f"{reps} interleaved runs each (in {len(docs)} sittings)")
    print(_write(merged, docs[0]["n"], head))
    _save({"started": docs[0]["started"], "n": docs[0]["n"], "reps": reps, "head": head,
           "runs": merged})
    return 0


def _machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} × {os.cpu_count()} · Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="GETs per run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64, help="in flight per process/task")
    ap.add_argument("--only", default="", help="comma-separated run labels")
    ap.add_argument("--render", nargs="+", metavar="JSON",
                    help="write the table from these result files' runs; run nothing")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.render:
        return _render(args.render)
    if args.child:
        print(json.dumps(_run_one(**json.loads(args.child))))
        return 0

    from fasttransport.bench.nginx import Nginx

    configs = [c for c in CONFIGS if not args.only or c[0] in args.only.split(",")]
    results: Dict[str, List[Dict[str, Any]]] = {}
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with Nginx(pin_cpu=None) as server:
        url = server.url("/small")
        for rep in range(args.reps):
            for label, kind, workers, psize in configs:
                spec = {"kind": kind, "url": url, "n": args.n, "concurrency": args.concurrency,
                        "workers": workers, "psize": psize, "nginx_pid": server.worker_pid}
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                     capture_output=True, text=True, timeout=900)
                if out.returncode != 0:
                    print(f"{label}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
                    return 1
                run = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(label, []).append(run)
                print(f"rep {rep + 1} {label:24s} {run['ok'] / run['wall_s']:9,.0f} req/s  "
                      f"wall {run['wall_s']:6.2f} s  cpu {run['cpu_s']:6.2f} s  "
                      f"nginx {run['nginx_cpu_s']:5.2f} s  ok {run['ok']}", flush=True)
    head = (f"{args.n:,} GETs of /small (5 bytes, a distinct URL each) per run, {args.reps} "
            f"interleaved runs each, every run a fresh process; concurrency "
            f"{args.concurrency} per process or task. {started} · {_machine()} · "
            f"{server.version} · load average {load:.2f} at start. Nothing pinned.")
    print(_write(results, args.n, head))
    _save({"started": started, "n": args.n, "reps": args.reps, "head": head,
           "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
