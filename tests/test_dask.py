"""fasttransport.dask: fetching on a Dask cluster (a LocalCluster of two
worker processes) against servers in this process that log every request
and every accepted connection.

What is checked on the server's side: every URL asked for exactly once,
connections reused within a worker (far fewer connections than requests, and
none new for a second run), clients closed by the worker plugin; on the
results' side: one row per input in input order, errors as rows, a worker
killed mid-run losing nothing and duplicating nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import dask
import dask.bag as db
import pandas as pd
import pytest
from distributed import Client as DaskClient
from distributed import LocalCluster
from servers import RESET, ScriptedServer, body_bytes, free_port, response

import fasttransport as ft
import fasttransport.dask as ftd

pytestmark = pytest.mark.timeout(120)


def targets(server: ScriptedServer) -> Counter:
    """How many times the server was asked for each target."""
    return Counter(r.target for _, r in server.requests)


def binary_handler(conn) -> None:
    """Keep-alive: answer every request with bytes that are not UTF-8."""
    while (req := conn.read_request(timeout=30)) is not None:
        conn.send(response(200, b"\xff\x00\xfe" + req.target.encode()))


# ---- without a distributed Client: the threaded scheduler, in this process ------------
# (first in the file: no distributed Client exists yet)


def test_threaded_scheduler_without_distributed(http_server, tmp_path):
    urls = [f"{http_server.base_url}/bytes/{i}" for i in range(120)]
    bag = ftd.fetch(urls, concurrency=4, partition_size=30)
    assert bag.npartitions == 4
    results = bag.compute(scheduler="threads", num_workers=2)

    assert [r.url for r in results] == urls        # one each, in input order
    assert all(isinstance(r, ft.FetchResult) for r in results)
    for i, r in enumerate(results):
        assert (r.status, r.error, r.body) == (200, None, body_bytes(i))
        assert r.method == "GET" and r.final_url == urls[i] and r.elapsed > 0
        assert ("Content-Length", str(i)) in r.headers
    assert set(targets(http_server).values()) == {1}
    # one pool in this process, shared by both scheduler threads
    assert http_server.accepted <= 2 * 4

    # bags made from it compute as bags do (to_textfiles' partitions are None)
    assert dict(bag.pluck(2).frequencies().compute(scheduler="sync")) == {200: 120}
    assert bag.filter(lambda r: len(r.body) < 3).map(len).compute(scheduler="sync") == [9] * 3
    out = tmp_path / "lines"
    bag.map(lambda r: f"{r.status} {r.url}").to_textfiles(str(out / "*.txt"), scheduler="sync")
    assert sorted(os.listdir(out)) == ["0.txt", "1.txt", "2.txt", "3.txt"]
    assert (out / "0.txt").read_text().splitlines()[0] == f"200 {urls[0]}"
    assert set(targets(http_server).values()) == {4}

    # it stays open for the next run, and close_clients() ends it
    results = ftd.fetch(urls[:10], concurrency=4).compute(scheduler="sync")
    assert [r.status for r in results] == [200] * 10
    assert http_server.accepted <= 2 * 4
    assert ftd.close_clients() == 1
    assert http_server.wait_for(lambda: http_server.open_conns == 0, 5)


def test_fetchresult_without_dask():
    """FetchResult is ft's; importing fasttransport imports no Dask."""
    code = ("import sys, pickle, fasttransport as ft\n"
            "assert 'dask' not in sys.modules and 'fasttransport.dask' not in sys.modules\n"
            "r = ft.FetchResult('http://h/', 'GET', 200, 'http://h/', (('A', 'b'),), b'x',"
            " None, None, 0.5)\n"
            "assert pickle.loads(pickle.dumps(r)) == r\n"
            "print(r.status)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "200\n"


def test_bad_arguments():
    with pytest.raises(ValueError, match="concurrency"):
        ftd.fetch(["http://127.0.0.1:1/"], concurrency=0)
    with pytest.raises(ValueError, match="transport_kwargs"):
        ftd.fetch(["http://127.0.0.1:1/"], client_kwargs={"transport": ft.Transport()})
    with pytest.raises(ValueError, match="verify: given in both"):
        ftd.fetch(["http://127.0.0.1:1/"], {"verify": False}, transport_kwargs={"verify": True})
    with pytest.raises(ValueError, match="not both"):
        ftd.fetch(["http://127.0.0.1:1/"], npartitions=2, partition_size=2)
    with pytest.raises(TypeError, match="not one URL"):
        ftd.fetch("http://127.0.0.1:1/")


# ---- on a LocalCluster -------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as c, DaskClient(c) as client:
        yield client


@pytest.fixture
def dclient(cluster):
    cluster.wait_for_workers(2, timeout=30)
    return cluster


def worker_pids(dclient) -> dict:
    return dclient.run(os.getpid)


def test_every_url_once_and_connections_reused(dclient, http_server):
    urls = [f"{http_server.base_url}/bytes/{i % 64}?i={i}" for i in range(600)]
    results = ftd.fetch(urls, concurrency=4, partition_size=50).compute()

    assert [r.url for r in results] == urls
    assert all(r.status == 200 and r.error is None for r in results)
    assert [r.body for r in results] == [body_bytes(i % 64) for i in range(600)]
    seen = targets(http_server)
    assert len(seen) == 600 and set(seen.values()) == {1}       # each exactly once
    # each worker's one client keeps at most `concurrency` connections open
    assert http_server.accepted <= 2 * 4
    # the clients outlive the run: a second one dials nothing new
    accepted = http_server.accepted
    again = ftd.fetch(urls[:200], concurrency=4, partition_size=50).compute()
    assert [r.status for r in again] == [200] * 200
    assert http_server.accepted == accepted
    assert http_server.request_count == 800

    # different client_kwargs: a client of their own on each worker
    tagged = ftd.fetch(urls[:100], {"headers": {"X-Run": "tagged"}}, concurrency=2,
                       partition_size=25).compute()
    assert [r.status for r in tagged] == [200] * 100
    runs = [r.header("X-Run") for _, r in http_server.requests]
    assert runs.count("tagged") == 100 and runs.count(None) == 800
    assert accepted < http_server.accepted <= accepted + 2 * 2


def test_per_host_limit_is_per_worker(dclient, scripted_server):
    """transport_kwargs reach each worker's Transport: max_conns_per_host=1
    lets each worker hold one connection, so the server sees two at most."""
    server = scripted_server(binary_handler)
    urls = [f"{server.base_url}/n{i}" for i in range(200)]
    results = ftd.fetch(urls, concurrency=8, partition_size=25,
                        transport_kwargs={"max_conns_per_host": 1}).compute()
    assert [r.status for r in results] == [200] * 200
    assert sum(targets(server).values()) == 200
    assert 1 <= server.accepted <= 2 and server.max_concurrent <= 2


def test_errors_are_rows(dclient, http_server, scripted_server):
    resetting = scripted_server([b"", RESET])
    refused = f"http://127.0.0.1:{free_port()}/gone"
    good = [f"{http_server.base_url}/bytes/{i}" for i in range(20)]
    post = ft.Request("POST", f"{http_server.base_url}/echo", content=b"posted")
    items = good[:10] + [refused, "not a url", ("GET", f"{http_server.base_url}/status/503"),
                         f"{resetting.base_url}/reset", 42, post] + good[10:]
    results = ftd.fetch(items, concurrency=4, npartitions=2).compute()

    assert len(results) == len(items)
    assert [r.url for r in results[:10] + results[16:]] == good
    assert all(r.status == 200 and r.error is None for r in results[:10] + results[16:])
    gone, bad, unavailable, reset, number, posted = results[10:16]
    assert gone.status is None and gone.body is None and gone.headers == ()
    assert gone.error.startswith("ConnectError: ") and refused in gone.error
    assert "connection refused" in gone.error
    assert bad.error.startswith("InvalidRequest: ") and '"not a url"' in bad.error
    # a status is a response, not an error
    assert (unavailable.status, unavailable.error, unavailable.body) == (503, None,
                                                                        b"status 503")
    assert reset.status is None and reset.url == f"{resetting.base_url}/reset"
    assert reset.error.split(":")[0] in ("RemoteProtocolError", "TransportError")
    assert reset.url in reset.error
    assert number.error.startswith("TypeError: ") and "int" in number.error
    assert posted.method == "POST" and posted.status == 200
    assert json.loads(posted.body)["body"] == "posted"


def test_frame_body_and_path(dclient, scripted_server, tmp_path):
    server = scripted_server(binary_handler)
    urls = [f"{server.base_url}/b{i}" for i in range(40)]
    refused = f"http://127.0.0.1:{free_port()}/gone"
    df = ftd.fetch_frame(urls + [refused], concurrency=4, npartitions=3)
    assert list(df.columns) == ["url", "method", "status", "final_url", "headers", "body",
                                "error", "elapsed"]
    frame = df.compute()
    assert list(frame["url"]) == urls + [refused]
    assert list(frame["body"][:40]) == [b"\xff\x00\xfe/b%d" % i for i in range(40)]
    assert list(frame["status"][:40]) == [200] * 40 and pd.isna(frame["status"].iloc[40])
    assert frame["error"][:40].isna().all() and "ConnectError" in frame["error"].iloc[40]
    assert json.loads(frame["headers"].iloc[0]) == [["Content-Length", "6"]]
    # Arrow-backed: the bytes survive Parquet unchanged
    frame.to_parquet(str(tmp_path / "frame.parquet"))
    back = pd.read_parquet(str(tmp_path / "frame.parquet"))
    assert list(back["body"][:40]) == list(frame["body"][:40])
    assert back["body"].dtype == frame["body"].dtype

    # body_dir: the body goes to a file, its path into the frame
    bodies = tmp_path / "bodies"
    frame = ftd.fetch_frame(urls, concurrency=4, body_dir=str(bodies)).compute()
    assert "body" not in frame.columns and frame["error"].isna().all()
    for url, path in zip(frame["url"], frame["path"]):
        assert os.path.dirname(path) == str(bodies)
        with open(path, "rb") as f:
            assert f.read() == b"\xff\x00\xfe" + url[len(server.base_url):].encode()
    assert len(os.listdir(bodies)) == 40         # no temporary file left over
    assert targets(server) == Counter({f"/b{i}": 2 for i in range(40)})     # two runs


def test_bag_input_and_requests(dclient, http_server):
    bag = db.from_sequence([("HEAD", f"{http_server.base_url}/bytes/{i}") for i in range(30)],
                           npartitions=5)
    results = ftd.fetch(bag, {"base_url": http_server.base_url}, concurrency=3,
                        npartitions=2).compute()
    assert [r.method for r in results] == ["HEAD"] * 30
    assert [r.body for r in results] == [b""] * 30
    assert sorted(r.target for _, r in http_server.requests) == \
        sorted(f"/bytes/{i}" for i in range(30))
    # relative URLs against the client's base_url
    rel = ftd.fetch(["bytes/3", "/bytes/4"], {"base_url": http_server.base_url}).compute()
    assert [(r.url, r.body) for r in rel] == [(f"{http_server.base_url}/bytes/3", b"abc"),
                                              (f"{http_server.base_url}/bytes/4", b"abcd")]


def test_worker_plugin_closes_clients(dclient, http_server):
    urls = [f"{http_server.base_url}/bytes/8?i={i}" for i in range(80)]
    bag = ftd.fetch(urls, concurrency=4, partition_size=20)      # registers the plugin
    assert bag.compute()[-1].status == 200
    assert all(dclient.run(lambda dask_worker: ftd.PLUGIN_NAME in dask_worker.plugins)
               .values())
    pids = worker_pids(dclient)
    assert http_server.open_conns > 0
    # the plugin's teardown (as at worker shutdown) closes every pooled connection
    dclient.unregister_worker_plugin(ftd.PLUGIN_NAME)
    assert http_server.wait_for(lambda: http_server.open_conns == 0, 10)
    assert worker_pids(dclient) == pids          # the workers themselves live on
    assert not any(dclient.run(lambda dask_worker: ftd.PLUGIN_NAME in dask_worker.plugins)
                   .values())
    # the bag built earlier runs again: new clients, and the first task on a
    # worker without the plugin registers it
    accepted = http_server.accepted
    assert [r.status for r in bag.compute()] == [200] * 80
    assert http_server.accepted > accepted
    assert all(dclient.run(lambda dask_worker: ftd.PLUGIN_NAME in dask_worker.plugins)
               .values())


def test_worker_killed_mid_run(dclient, http_server):
    """SIGKILL one worker while it runs: Dask runs its partitions again on
    the other; the results are complete and unique (the server may see a
    request twice)."""
    n = 240
    urls = [f"{http_server.base_url}/slow?delay=0.03&i={i}" for i in range(n)]
    pids = worker_pids(dclient)
    victim = sorted(pids.values())[0]
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        future = dclient.compute(ftd.fetch(urls, concurrency=4, partition_size=12))
    assert http_server.wait_for(lambda: http_server.request_count >= 60, 30)
    os.kill(victim, signal.SIGKILL)
    results = future.result(timeout=90)

    assert [r.url for r in results] == urls          # complete, unique, in order
    assert all(r.status == 200 and r.error is None and r.body == b"slow" for r in results)
    seen = targets(http_server)
    assert set(seen) == {u[len(http_server.base_url):] for u in urls}
    # the kill landed mid-run: what the dead worker had done was done again
    assert sum(seen.values()) > n
    assert victim not in worker_pids(dclient).values()
