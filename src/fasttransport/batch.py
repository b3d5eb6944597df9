"""Many requests in flight from one thread: ``Client.submit`` → ``Future``,
``as_completed`` and ``Client.map``.

The engine runs every exchange (dial, TLS, both loops, the body into memory)
with no Python thread per request; each exchange reports to its client's
completion queue, and whichever thread waits on a future (``result()``,
``as_completed()``, ``map()``) takes every report in one go and finishes
the futures in Python: redirects and cookies (the client's own rules, hop
by hop), retries on a reused connection, decoding. Waiting releases the GIL
and looks at signals (Ctrl-C) every 50 ms.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
    Union,
)

from . import _core
from ._core import CancelToken, CompletionQueue, Exchange, Plan
from .errors import ConnectError, ConnectTimeout, HTTPError, TimeoutError
from .models import _REDIRECTS, Request, Response
from .transport import _should_retry

if TYPE_CHECKING:
    from .client import Client
    from .headers import Headers
    from .options import TimeoutTypes

# The slice a waiter spends in native code before it looks at signals.
_SLICE = 0.05
# Most bytes preallocated for a body from its declared length.
_PREALLOC = 64 << 20

_PENDING, _RUNNING, _FINISHED, _CANCELLED = range(4)


def dispatch(cq: CompletionQueue) -> int:
    """Take every report from cq and hand each to its exchange's owner;
    after an exchange's last one, the exchange lets go of its owner."""
    xs = cq.take()
    for x in xs:
        owner = x.owner
        assert owner is not None, "an exchange reported before it had an owner"
        owner._report(x)
        if not x.in_flight:
            x.owner = None
    return len(xs)


class _Collector:
    """A client's completion queue and the lock that makes one thread at a
    time the collector; the others wait for it (Condition)."""

    __slots__ = ("cq", "lock", "cond", "collecting", "generation", "timers", "_seq")

    def __init__(self) -> None:
        self.generation = _core.fork_generation()   # a forked child makes its own
        self.cq = _core.CompletionQueue()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.collecting = False
        self.timers: List[Tuple[float, int, Callable[[], None]]] = []   # a heap
        self._seq = 0

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run fn() in the collecting thread once delay seconds have passed
        (a retry's backoff), within a wait slice (50 ms) of it."""
        with self.lock:
            self._seq += 1
            heapq.heappush(self.timers, (time.monotonic() + delay, self._seq, fn))

    def _collect(self) -> int:
        """Hand out every report, then run the timers that are due (the
        collecting thread)."""
        n = dispatch(self.cq)
        timers = self.timers
        while timers and timers[0][0] <= time.monotonic():
            with self.lock:
                fn = heapq.heappop(timers)[2] if timers else None
            if fn is not None:
                fn()
                n += 1
        return n

    def poll(self) -> None:
        """Take what is there without waiting, unless another thread collects."""
        with self.lock:
            if self.collecting:
                return
            self.collecting = True
        try:
            self._collect()
        finally:
            with self.lock:
                self.collecting = False
                self.cond.notify_all()

    def wait(self, done: Callable[[], bool], deadline: Optional[float]) -> bool:
        """Collect (or wait for the thread that does) until done() or the
        deadline (time.monotonic()). Returns done()."""
        while not done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            slice_ = _SLICE if left is None else min(_SLICE, left)
            with self.lock:
                if self.collecting:
                    self.cond.wait(slice_)
                    continue
                self.collecting = True
            try:
                if not self._collect() and not done():
                    self.cq.wait(slice_)     # GIL released; Ctrl-C seen after it
                    self._collect()
            finally:
                with self.lock:
                    self.collecting = False
                    self.cond.notify_all()
        return True


class Future:
    """The result of ``Client.submit()``: a Response, or the exception the
    request failed with (concurrent.futures' conventions).

    ``result()`` / ``exception()`` wait (GIL released, Ctrl-C noticed within
    50 ms); ``cancel()`` aborts the exchange at any phase and closes its
    connection; ``add_done_callback(fn)`` runs fn(future) in the thread that
    collects its completion (at once if it is done)."""

    __slots__ = ("_client", "_col", "_req", "_orig_headers", "_deadline", "_cancel", "_stream",
                 "_follow", "_plan", "_x", "_t0", "_steps", "_history", "_state", "_result",
                 "_exc", "_callbacks", "request", "_tries", "_hop_headers", "__weakref__")

    _plan: Plan
    _t0: float
    _tries: int
    _hop_headers: Headers

    def __init__(self, client: Client, req: Request, deadline: Optional[int],
                 cancel: Optional[CancelToken], stream: bool, follow: bool) -> None:
        self._client = client
        self._col: _Collector = client._collector()
        self.request = req
        self._req = req
        self._orig_headers = req.headers
        self._deadline = deadline
        self._cancel = cancel
        self._stream = stream
        self._follow = follow
        self._x: Optional[Exchange] = None
        self._steps: Optional[Generator[Request, Response, Response]] = None
        self._state = _PENDING
        self._result: Optional[Response] = None
        self._exc: Optional[BaseException] = None
        #: None once finished: a callback added then runs at once
        self._callbacks: Optional[List[Callable[["Future"], Any]]] = []

    # ---- the engine's side ---------------------------------------------------

    def _send(self, req: Request, tries: int = 0) -> None:
        """Submit one hop (``tries``: its retries so far); a refusal before
        anything is sent ends the future."""
        client = self._client
        self._req = req
        self._tries = tries
        self._hop_headers = req.headers
        try:
            client._before_hop(req)
            tr = client.transport
            self._plan = tr._plan(req)
            mode = _core.JOB_HEAD if self._stream else _core.JOB_FULL
            self._t0 = time.perf_counter()
            # owned and running before the engine has it: another thread
            # collecting may take its report before submit returns
            x = _core.Exchange()
            x.owner = self
            self._x = x
            self._state = _RUNNING
            tr._submit(req, self._plan, self._deadline, self._cancel, self._col.cq, mode,
                       _PREALLOC, x)
        except BaseException as e:   # noqa: BLE001 - the item's value
            self._x = None
            self._set(None, e)
            return

    def _resend(self, tries: int) -> None:
        """The current hop once more, as it was before the client added to it."""
        self._req.headers = self._hop_headers
        self._send(self._req, tries)

    def _retry_later(self, wait: float) -> None:
        """The client's Retry: the current hop again after wait seconds."""
        self._x = None

        def again() -> None:
            if self._state != _RUNNING:
                return                   # cancelled meanwhile
            if self._cancel is not None and self._cancel.cancelled:
                self._set(None, _cancelled(self._req))
                return
            self._resend(self._tries + 1)

        self._col.call_later(wait, again)

    def _report(self, x: Exchange) -> None:
        """The engine is done with the current hop (collector thread)."""
        if x.in_flight or self._state != _RUNNING or x is not self._x:
            return
        client = self._client
        err = x.error()
        if err is not None:
            if isinstance(err, HTTPError) and _should_retry(x, self._req, err):
                self._resend(self._tries)    # another connection (Go's retry rules)
                return
            err = client.transport._hop_error(err, self._plan)
            if client.retries is not None and isinstance(err, (ConnectError, ConnectTimeout)):
                wait = client._retry_wait(self._req, self._tries, self._deadline, err=err)
                if wait is not None:
                    self._retry_later(wait)
                    return
            if self._steps is not None:
                self._steps.close()
            self._set(None, err)
            return
        try:
            resp = Response(x, self._req, self._plan.gzip, time.perf_counter() - self._t0,
                            self._stream, client.transport)
            resp = client._after_hop(self._req, resp)
            if client.retries is not None:
                wait = client._retry_wait(self._req, self._tries, self._deadline, resp=resp)
                if wait is not None:
                    resp.close()
                    self._retry_later(wait)
                    return
                resp.retries = self._tries
            nxt = None
            if self._steps is not None:
                nxt = self._steps.send(resp)
            elif resp.status_code in _REDIRECTS and self._follow:
                self._steps = client._redirects(self._req, self._orig_headers, resp)
                nxt = next(self._steps)
        except StopIteration as done:
            resp = done.value
        except BaseException as e:   # noqa: BLE001 - the item's value
            self._set(None, e)
            return
        else:
            if nxt is not None:
                self._send(nxt)
                return
        if not self._stream:
            try:
                _ = resp.content      # decoded here; the bytes are in memory already
            except BaseException as e:   # noqa: BLE001
                resp.close()
                self._set(None, e)
                return
        self._set(resp, None)

    def _outcome(self) -> Union[Response, BaseException]:
        """What a finished future holds: its response or its exception."""
        if self._exc is not None:
            return self._exc
        assert self._result is not None
        return self._result

    def _set(self, result: Optional[Response], exc: Optional[BaseException]) -> None:
        self._result, self._exc = result, exc
        self._state = _FINISHED
        self._x = None
        self._finish()

    def _finish(self) -> None:
        with self._col.lock:        # against add_done_callback in another thread
            cbs, self._callbacks = self._callbacks or [], None
        for fn in cbs:
            try:
                fn(self)
            except Exception:   # noqa: BLE001 - as concurrent.futures: logged, not raised
                logging.getLogger("fasttransport").exception("exception in a done callback")

    # ---- the caller's side -----------------------------------------------------

    def done(self) -> bool:
        if self._state < _FINISHED:
            self._col.poll()
        return self._state >= _FINISHED

    def running(self) -> bool:
        return self._state == _RUNNING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def cancel(self) -> bool:
        """Abort the exchange (its connection is closed, never pooled); the
        future is then cancelled: result() raises ft.Cancelled. False if it
        had finished already."""
        if self._state >= _FINISHED:
            return self._state == _CANCELLED
        x = self._x
        if x is not None:
            x.owner = _Orphan     # its last report is taken and dropped
            x.abort("context canceled")
        if self._steps is not None:
            self._steps.close()
        self._exc = _cancelled(self._req)
        self._state = _CANCELLED
        self._x = None
        self._finish()
        return True

    def _wait(self, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._col.wait(lambda: self._state >= _FINISHED, deadline):
            raise TimeoutError(f"{self._req.method} \"{self._req._u.redacted}\": "
                               f"result not ready within {timeout} s",
                               method=self._req.method, url=self._req._u.redacted)

    def result(self, timeout: Optional[float] = None) -> Response:
        """The response (read completely unless submitted with stream=True),
        or raise what the request failed with. ``timeout``: seconds to wait
        (ft.TimeoutError after it; the request goes on)."""
        self._wait(timeout)
        outcome = self._outcome()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        self._wait(timeout)
        return self._exc

    def add_done_callback(self, fn: Callable[["Future"], Any]) -> None:
        with self._col.lock:
            if self._callbacks is not None:
                self._callbacks.append(fn)
                return
        fn(self)

    def __repr__(self) -> str:
        state = ("pending", "running", "finished", "cancelled")[self._state]
        return f"<Future {state} {self._req.method} {self._req._u.redacted}>"


class _Refused:
    """A map() item that could not become a request (a bad URL, say): it
    comes back as given, with the error."""

    __slots__ = ("request", "_exc")

    def __init__(self, item: Any, exc: BaseException) -> None:
        self.request, self._exc = item, exc

    def _outcome(self) -> BaseException:
        return self._exc


class _Orphan:
    """The owner of a cancelled future's exchange: its reports are dropped."""

    @staticmethod
    def _report(x: Exchange) -> None:
        if not x.in_flight:
            x.close()


def _cancelled(req: Request) -> BaseException:
    from .errors import Cancelled
    return Cancelled(f'{req.method.capitalize()} "{req._u.redacted}": context canceled',
                     method=req.method, url=req._u.redacted)


def as_completed(futures: Iterable[Future], timeout: Optional[float] = None) -> Iterator[Future]:
    """Yield the futures as they finish (completion order), those already
    done first. ``timeout``: seconds for all of them; ft.TimeoutError after
    it. The futures may come from different clients."""
    pending: Set[Future] = set(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    ready: Deque[Future] = deque()

    def collect() -> bool:
        for f in list(pending):
            if f._state >= _FINISHED:
                pending.discard(f)
                ready.append(f)
        return bool(ready) or not pending

    while pending or ready:
        collect()
        while ready:
            yield ready.popleft()
        if not pending:
            return
        cols = {f._col for f in pending}
        col = next(iter(cols))
        if len(cols) > 1:
            for other in cols:
                other.poll()
            step = time.monotonic() + _SLICE
            col.wait(collect, step if deadline is None else min(step, deadline))
        else:
            col.wait(collect, deadline)
        if deadline is not None and time.monotonic() >= deadline and not collect():
            f = next(iter(pending))
            raise TimeoutError(f"{len(pending)} (of {len(pending) + len(ready)}) futures "
                               f"unfinished after {timeout} s",
                               method=f._req.method, url=f._req._u.redacted)


RequestLike = Union[Request, str, Tuple[str, str]]


def run_map(client: Client, requests: Iterable[RequestLike], concurrency: int,
            timeout: TimeoutTypes, cancel: Optional[CancelToken], stream: bool,
            follow: Optional[bool]) -> Iterator[Tuple[Request, Union[Response, BaseException]]]:
    """Client.map: at most ``concurrency`` in flight, pulled lazily from
    ``requests``; (request, response or exception) in completion order.
    Client.map has checked its arguments."""
    col: _Collector = client._collector()
    it = iter(requests)
    inflight: Set[Future] = set()
    ready: Deque[Union[Future, _Refused]] = deque()
    exhausted = False

    def top_up() -> None:
        nonlocal exhausted
        # in flight plus finished but not yet yielded: never more than
        # concurrency, so a slow consumer holds the producer back
        while not exhausted and len(inflight) + len(ready) < concurrency:
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                return
            try:
                fut = client._submit_item(item, timeout, cancel, stream, follow)
            except Exception as e:   # noqa: BLE001 - the item's value
                ready.append(_Refused(item, e))
                continue
            inflight.add(fut)        # first: another thread may finish it at once
            fut.add_done_callback(_on_done)

    def _on_done(fut: Future) -> None:
        inflight.discard(fut)
        ready.append(fut)

    try:
        top_up()
        while inflight or ready:
            while ready:
                fut = ready.popleft()
                top_up()
                yield fut.request, fut._outcome()
            if inflight:
                col.wait(lambda: bool(ready), None)
            top_up()
    finally:
        # the iterator was closed early (break, an error, Ctrl-C): nothing
        # keeps running for it
        for fut in list(inflight):
            fut.cancel()
