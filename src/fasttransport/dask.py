"""Past one machine: fetch many URLs on a Dask cluster.

    import fasttransport.dask as ftd
    bag = ftd.fetch(urls, client_kwargs={"timeout": 10}, concurrency=64)
    results = bag.compute()            # ft.FetchResult records, in input order
    df = ftd.fetch_frame(urls, body_dir="/shared/bodies")   # a dask.dataframe

The input is split into partitions (one Dask task each). The process that
runs a task (a Dask worker, or the local process under the threaded/sync
scheduler) keeps one long-lived ``ft.Transport`` — the connection pool — per
distinct ``client_kwargs`` / ``transport_kwargs``, created on first use, and
runs the partition through ``Client.map(…, concurrency=concurrency)`` on an
``ft.Client`` over that Transport (one per worker thread, so that each
thread collects only its own completions): one thread drives all of the
partition's requests, and the pooled connections are reused by every later
task of that worker. The pool and the per-host limits
(``max_conns_per_host``) are therefore per worker: N workers may hold N
times as many connections to one host.

Clients and pools are closed when their worker shuts down, by a
``distributed.WorkerPlugin`` registered with the scheduler when ``fetch``
runs with a distributed Client active (or, failing that, by the first task
on each worker); in a process without distributed workers, at interpreter
exit or by ``close_clients()``.

Failures: a request that fails is a row whose ``error`` says why; it never
fails the task. Tasks are pure (same partition in, same requests out): when
a worker dies, Dask runs its partitions again elsewhere, so the results are
complete and each input appears once (some requests are then sent twice).

Needs ``pip install 'fasttransport[dask]'`` (dask, distributed, pandas,
pyarrow).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import pickle
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

import dask
import dask.bag as db
from dask.bag.core import finalize as _bag_finalize
from dask.base import tokenize

from ._fetchresult import FetchResult
from .client import Client
from .models import Request, Response
from .transport import Transport

try:
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:   # dask without distributed: the threaded/sync schedulers
    _WorkerPluginBase = object   # type: ignore[misc,assignment]

__all__ = ["FetchBag", "FetchResult", "Results", "WorkerClients", "close_clients", "fetch",
           "fetch_frame", "fetch_partition", "PLUGIN_NAME"]

#: The name the worker plugin is registered under.
PLUGIN_NAME = "fasttransport.dask"

Item = Union[str, Tuple[str, str], Request]

# ---- one long-lived client per (process, worker, settings) ---------------------

# (pid, worker id or None, settings token) -> Transport: the pool. A forked
# child (pid) makes its own; each distributed worker in a process (worker id)
# has its own, so that one worker's shutdown closes only its pools.
_TRANSPORTS: Dict[Tuple[int, Optional[str], str], Transport] = {}
# the same key plus a thread id -> the Client over that Transport which the
# thread drives Client.map with: one collector per thread, so that no thread
# ever finishes another thread's requests
_CLIENTS: Dict[Tuple[int, Optional[str], str, int], Client] = {}
_LOCK = threading.Lock()

#: Client arguments that configure the Transport it creates.
_TRANSPORT_ARGS = ("verify", "cert", "proxy", "trust_env")


def _current_worker() -> Any:
    """The distributed Worker running this task, or None."""
    if "distributed" not in sys.modules:   # never imported: not in a worker
        return None
    from distributed import get_worker
    try:
        return get_worker()
    except ValueError:
        return None


def _client_for(token: str, client_kwargs: Mapping[str, Any],
                transport_kwargs: Mapping[str, Any]) -> Client:
    """This thread's client over this worker's Transport for these
    settings; both created on first use."""
    worker = _current_worker()
    pool_key = (os.getpid(), None if worker is None else worker.id, token)
    key = pool_key + (threading.get_ident(),)
    client = _CLIENTS.get(key)
    if client is not None:
        return client
    with _LOCK:
        transport = _TRANSPORTS.get(pool_key)
        created = transport is None
        if transport is None:
            tkw = dict(transport_kwargs)
            tkw.update((k, v) for k, v in client_kwargs.items() if k in _TRANSPORT_ARGS)
            transport = _TRANSPORTS[pool_key] = Transport(**tkw)
        ckw = {k: v for k, v in client_kwargs.items() if k not in _TRANSPORT_ARGS}
        client = _CLIENTS[key] = Client(transport=transport, **ckw)
    if created and worker is not None and PLUGIN_NAME not in worker.plugins:
        # fetch() ran without a distributed Client active: register the
        # plugin from here (idempotent at the scheduler) so that this
        # worker still closes its pools when it shuts down
        from distributed import get_client
        get_client().register_plugin(WorkerClients(), name=PLUGIN_NAME)
    return client


def _close(worker_id: Any = ...) -> int:
    """Close this process's clients and pools (of one worker, or all); how
    many pools."""
    pid = os.getpid()

    def mine(k: Tuple[Any, ...]) -> bool:
        return k[0] == pid and (worker_id is ... or k[1] == worker_id)

    with _LOCK:
        clients = [_CLIENTS.pop(k) for k in [k for k in _CLIENTS if mine(k)]]
        transports = [_TRANSPORTS.pop(k) for k in [k for k in _TRANSPORTS if mine(k)]]
    for transport in transports:
        transport.close()        # requests still in flight fail with TransportError
    for client in clients:
        client.close()           # its completion queue
    return len(transports)


def close_clients() -> int:
    """Close every client and connection pool that ``fetch`` keeps in this
    process (they are made again on next use); returns how many pools
    (Transports) were closed. Runs at interpreter exit; a distributed
    worker's own are closed by the worker plugin when it shuts down."""
    return _close()


atexit.register(close_clients)


class WorkerClients(_WorkerPluginBase):
    """A ``distributed.WorkerPlugin`` that closes a worker's fetch clients
    (and so its pooled connections) when the worker shuts down or the
    plugin is unregistered. ``fetch`` registers it under ``PLUGIN_NAME``;
    registering again is a no-op (``idempotent``)."""

    idempotent = True

    def setup(self, worker: Any) -> None:
        pass

    def teardown(self, worker: Any) -> None:
        _close(worker.id)


def _register_plugin() -> None:
    """Register WorkerClients with the active distributed Client, if any."""
    if "distributed" not in sys.modules:
        return
    from distributed import default_client
    try:
        client = default_client()
    except ValueError:        # no distributed Client: nothing to register with
        return
    if not client.asynchronous:     # an asyncio caller: the first task registers it
        client.register_plugin(WorkerClients(), name=PLUGIN_NAME)


# ---- one partition ----------------------------------------------------------------


class Results(List["FetchResult"]):
    """A partition's results: a list. Being a subclass, distributed sends it
    to another process as one pickle, where a plain list would be
    serialized item by item (with a frame each: about 150 µs an item)."""

    __slots__ = ()


def _as_request(item: Any, base_url: Optional[str]) -> Request:
    """An input item as an ft.Request (raises InvalidRequest, TypeError)."""
    if isinstance(item, Request):
        return item
    if isinstance(item, str):
        method, url = "GET", item
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        method, url = item
    else:
        raise TypeError(f"fasttransport.dask: an item is a URL, a (method, url) pair or an "
                        f"ft.Request, not {type(item).__name__} {item!r:.80}")
    url = str(url)
    if base_url is not None and "://" not in url:
        url = base_url + url.lstrip("/")
    return Request(method, url)


def _method_url(item: Any) -> Tuple[str, str]:
    """Method and URL of an input item, for its row when it failed."""
    if isinstance(item, Request):
        return item.method, item.url
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return str(item[0]), str(item[1])
    return "GET", str(item)


def _error_name(exc: BaseException, method: str, url: str) -> str:
    """``"Class: message"``; the message is given Go's ``Method "url": ``
    prefix when it does not name the URL itself (the error's own ``url``,
    credentials removed, when it has one)."""
    msg = str(exc)
    named = getattr(exc, "url", None) or url
    if named not in msg:
        msg = f'{method.capitalize()} "{named}": {msg}'
    return f"{type(exc).__name__}: {msg}"


def _failed(method: str, url: str, exc: BaseException, elapsed: float) -> FetchResult:
    return FetchResult(url, method, None, None, (), None, None, _error_name(exc, method, url),
                       elapsed)


def _body_path(body_dir: str, req: Request) -> str:
    """Where a request's body is written: the same file for the same request,
    so that a task run again overwrites what its first run wrote."""
    name = hashlib.sha256(f"{req.method} {req.url}".encode("utf-8", "surrogatepass"))
    return os.path.join(body_dir, name.hexdigest())


def _write_body(path: str, body: bytes) -> None:
    """Write whole or not at all (a worker killed mid-write leaves no partial file)."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(body)
    os.replace(tmp, path)


def _result(req: Request, resp: Response, elapsed: float,
            body_dir: Optional[str]) -> FetchResult:
    try:
        body: Optional[bytes] = resp.content
        headers = tuple(resp.headers.multi_items())
    finally:
        resp.close()
    path = None
    error = None
    if body_dir is not None:
        path = _body_path(body_dir, req)
        try:
            _write_body(path, body or b"")
        except OSError as e:
            path, error = None, f"{type(e).__name__}: writing the body of {req.method} " \
                                f"{req.url} to {body_dir}: {e}"
        body = None
    return FetchResult(req.url, req.method, resp.status_code, resp.url, headers, body, path,
                       error, elapsed)


def fetch_partition(items: Iterable[Item], client_kwargs: Optional[Mapping[str, Any]] = None,
                    concurrency: int = 64, *,
                    transport_kwargs: Optional[Mapping[str, Any]] = None,
                    body_dir: Optional[str] = None,
                    token: Optional[str] = None) -> "Results":
    """Fetch one partition in this process: a list (``Results``) of
    FetchResult in the order of ``items``, one each. Uses this worker's
    (this process's) long-lived Transport for these settings, through this
    thread's Client; at most ``concurrency`` requests in flight. A failed
    request (or an item that is no request) is a result with ``error``
    set; nothing is raised for it. ``token``: the
    settings' key (computed from the kwargs when None)."""
    client_kwargs = client_kwargs or {}
    transport_kwargs = transport_kwargs or {}
    if token is None:
        token = tokenize(client_kwargs, transport_kwargs)
    client = _client_for(token, client_kwargs, transport_kwargs)
    if body_dir is not None:
        os.makedirs(body_dir, exist_ok=True)
    items = list(items)
    out: List[Optional[FetchResult]] = [None] * len(items)
    # id(request) -> (index, request, submitted at); holding the request
    # keeps its id unique until its result is in
    started: Dict[int, Tuple[int, Request, float]] = {}
    base_url = client.base_url

    def feed() -> Iterable[Request]:
        # made as map pulls it, so that the client's own parse of the URL
        # finds it in the URL cache
        for i, item in enumerate(items):
            try:
                req = _as_request(item, base_url)
            except Exception as e:   # noqa: BLE001 - the item's row
                out[i] = _failed(*_method_url(item), e, 0.0)
                continue
            started[id(req)] = (i, req, time.perf_counter())
            yield req

    try:
        for req, res in client.map(feed(), concurrency=concurrency):
            i, _, t0 = started.pop(id(req))
            elapsed = time.perf_counter() - t0
            if isinstance(res, BaseException):
                out[i] = _failed(req.method, req.url, res, elapsed)
            else:
                out[i] = _result(req, res, elapsed, body_dir)
    except Exception as e:   # noqa: BLE001 - the run failed, not one request
        # (a client setting every request trips on, say): each item not yet
        # answered gets the error, so the partition is still whole
        now = time.perf_counter()
        t0s = {i: t0 for i, _, t0 in started.values()}
        for i, item in enumerate(items):
            if out[i] is None:
                out[i] = _failed(*_method_url(item), e, now - t0s.get(i, now))
    return Results(cast(List[FetchResult], out))    # every item has its row by now


# ---- the graph ----------------------------------------------------------------------


def _check(client_kwargs: Optional[Mapping[str, Any]],
           transport_kwargs: Optional[Mapping[str, Any]], concurrency: int) -> None:
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if client_kwargs and "transport" in client_kwargs:
        raise ValueError("client_kwargs: a Transport cannot be sent to the workers; give its "
                         "arguments as transport_kwargs=")
    both = sorted(set(client_kwargs or ()) & set(transport_kwargs or ()))
    if both:
        raise ValueError(f"{', '.join(both)}: given in both client_kwargs and transport_kwargs")


def _chunks(seq: List[Any], concurrency: int, npartitions: Optional[int],
            partition_size: Optional[int]) -> List[List[Any]]:
    """The input cut into partitions (never none: an empty input is one)."""
    if npartitions is not None and partition_size is not None:
        raise ValueError("give npartitions or partition_size, not both")
    if npartitions is not None:
        if npartitions < 1:
            raise ValueError("npartitions must be >= 1")
        size = -(-len(seq) // npartitions)
    elif partition_size is not None:
        if partition_size < 1:
            raise ValueError("partition_size must be >= 1")
        size = partition_size
    else:
        # about 100 partitions (Dask's default), never much smaller than
        # the concurrency one task keeps in flight
        size = max(concurrency, -(-len(seq) // 100))
    size = max(size, 1)
    return [seq[i:i + size] for i in range(0, len(seq), size)] or [[]]


def _fetch_packed(blob: bytes, client_kwargs: Mapping[str, Any], concurrency: int,
                  transport_kwargs: Mapping[str, Any], body_dir: Optional[str],
                  token: str) -> "Results":
    """A task: fetch_partition over a pickled partition."""
    return fetch_partition(pickle.loads(blob), client_kwargs, concurrency,
                           transport_kwargs=transport_kwargs, body_dir=body_dir, token=token)


def _finalize(parts: Any) -> Any:
    """What Bag.compute() returns (dask's finalize), as a Results list when
    it is a list. A bag made from a FetchBag (``map``, ``filter``, ...) is a
    FetchBag too, and so comes here with partitions of anything."""
    out = _bag_finalize(parts)
    return Results(out) if type(out) is list else out


class FetchBag(db.Bag):
    """The dask.bag ``fetch`` returns: a Bag whose ``compute()`` gives one
    ``Results`` list. (distributed sends a plain list item by item, at a
    cost of over 100 µs each; a list subclass goes in one pickle.)"""

    def __dask_postcompute__(self) -> Tuple[Any, Tuple[()]]:
        return _finalize, ()


def fetch(urls_or_requests: Union[Sequence[Item], Iterable[Item], db.Bag],
          client_kwargs: Optional[Mapping[str, Any]] = None, concurrency: int = 64, *,
          transport_kwargs: Optional[Mapping[str, Any]] = None,
          npartitions: Optional[int] = None, partition_size: Optional[int] = None,
          body_dir: Optional[str] = None) -> FetchBag:
    """A dask.bag of ``ft.FetchResult``, one per input and in input order
    (lazy: ``.compute()`` runs it, on the active scheduler, and returns a
    list).

    - urls_or_requests: a sequence (or iterable, read at once) or a
      dask.bag of URL strings (GET), ``(method, url)`` pairs or
      ``ft.Request`` objects (with headers and a bytes body, if any).
    - client_kwargs: arguments of the ``ft.Client`` each worker creates
      (``timeout``, ``headers``, ``follow_redirects``, ``base_url``,
      ``verify``, ...); must pickle. One Transport (pool) per worker and per
      distinct settings, kept for the worker's life, so its connections are
      reused by every task.
    - transport_kwargs: arguments of that ``ft.Transport``
      (``max_conns_per_host``, ``max_idle_conns_per_host``, ...). Limits
      apply per worker.
    - concurrency: requests in flight per task (``Client.map``); a worker
      running T tasks at once (``threads_per_worker``) has up to T times
      as many.
    - npartitions / partition_size: how the input is split into tasks
      (default: about 100 partitions of at least ``concurrency`` items);
      for a bag input, npartitions repartitions it.
    - body_dir: write each body to a file in this directory (on the
      worker's machine: use a shared filesystem on a cluster), named by a
      hash of method and URL, and put its path in ``path`` instead of the
      body in ``body``.

    A failed request is a result whose ``error`` says why; it never fails
    the task, and a task killed with its worker runs again elsewhere.
    Raises ValueError/TypeError for bad arguments before anything runs.
    """
    _check(client_kwargs, transport_kwargs, concurrency)
    client_kwargs = dict(client_kwargs or {})
    transport_kwargs = dict(transport_kwargs or {})
    token = tokenize(client_kwargs, transport_kwargs)
    items = urls_or_requests
    if isinstance(items, db.Bag):
        if partition_size is not None:
            raise ValueError("partition_size: not for a dask.bag input (use npartitions=)")
        if npartitions is not None:
            items = items.repartition(npartitions)
        bag = items.map_partitions(fetch_partition, client_kwargs, concurrency,
                                   transport_kwargs=transport_kwargs, body_dir=body_dir,
                                   token=token)
    else:
        if isinstance(items, (str, bytes)):
            raise TypeError("urls_or_requests: a sequence of URLs (or requests), not one URL")
        # each partition goes into the graph as one pickle: Dask would
        # otherwise look into every item of a list argument
        try:
            blobs = [pickle.dumps(c, protocol=pickle.HIGHEST_PROTOCOL)
                     for c in _chunks(list(items), concurrency, npartitions, partition_size)]
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise TypeError(f"urls_or_requests: the items must pickle ({e})") from e
        name = "fetch-" + tokenize(blobs, token, concurrency, body_dir)
        task = dask.delayed(_fetch_packed, pure=True)
        bag = db.from_delayed([task(b, client_kwargs, concurrency, transport_kwargs, body_dir,
                                    token, dask_key_name=(name, i))
                               for i, b in enumerate(blobs)])
    _register_plugin()
    return FetchBag(bag.dask, bag.name, bag.npartitions)


# ---- as a dataframe -------------------------------------------------------------------


def _frame(results: Iterable[FetchResult], body_column: str) -> Any:
    """A partition's results as a pandas DataFrame with Arrow-backed columns
    (bytes stay bytes: Dask's string conversion leaves them alone)."""
    import pandas as pd
    import pyarrow as pa

    rows = list(results)
    text = pd.StringDtype("pyarrow")
    body: Any
    if body_column == "path":
        body = pd.array([r.path for r in rows], dtype=text)
    else:
        body = pd.array([r.body for r in rows], dtype=pd.ArrowDtype(pa.binary()))
    return pd.DataFrame({
        "url": pd.array([r.url for r in rows], dtype=text),
        "method": pd.array([r.method for r in rows], dtype=text),
        "status": pd.array([r.status for r in rows], dtype="Int64"),
        "final_url": pd.array([r.final_url for r in rows], dtype=text),
        "headers": pd.array([json.dumps(r.headers) if r.error is None or r.headers else None
                             for r in rows], dtype=text),
        body_column: body,
        "error": pd.array([r.error for r in rows], dtype=text),
        "elapsed": pd.array([r.elapsed for r in rows], dtype="float64"),
    })


def fetch_frame(urls_or_requests: Union[Sequence[Item], Iterable[Item], db.Bag],
                client_kwargs: Optional[Mapping[str, Any]] = None, concurrency: int = 64,
                **kw: Any) -> Any:
    """``fetch(...)`` as a dask.dataframe, one row per input, with columns
    url, method (strings), status (Int64, <NA> on error), final_url,
    headers (a JSON list of ``[name, value]`` pairs, wire order), body
    (Arrow binary) — or path (string) with ``body_dir=`` —, error (string,
    <NA> when the request succeeded) and elapsed (float seconds). The
    columns are Arrow-backed, so ``to_parquet`` keeps the bytes as they
    are. Same arguments as ``fetch``."""
    import dask.dataframe as dd

    bag = fetch(urls_or_requests, client_kwargs, concurrency, **kw)
    column = "path" if kw.get("body_dir") is not None else "body"
    parts = [dask.delayed(_frame, pure=True)(p, column) for p in bag.to_delayed()]
    return dd.from_delayed(parts, meta=_frame([], column), verify_meta=False)
