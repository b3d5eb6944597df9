"""The adapters' timeouts (fasttransport.httpx, fasttransport.requests):
a watchdog thread per adapter that cancels an exchange, through its
CancelToken, when the timer armed for its current step runs out."""

from __future__ import annotations

import heapq
import io
import itertools
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

from ._core import CancelToken
from .transport import Transport

#: Bytes read from a file sent as a streamed request body, per chunk.
_FILE_PIECE = 65536


class _Watchdog:
    """A thread that cancels exchanges whose timer ran out.

    Timers sit in a heap ordered by due time; a timer pushed back (armed
    again later) keeps its heap entry and is re-queued when that entry comes
    due, so a read costs one lock round trip, not a heap push. The thread
    starts with the first timer; close() joins it (a later timer starts it
    again)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._closing = False

    def _push_locked(self, timer: "_Timer", when: float) -> None:
        if self._closing:
            return
        seq = next(self._seq)
        heapq.heappush(self._heap, (when, seq, timer))
        timer._entry = (seq, when)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        elif self._heap[0][1] == seq:
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closing:
                if not self._heap:
                    self._cond.wait()
                    continue
                when, seq, timer = self._heap[0]
                now = time.monotonic()
                if when > now:
                    self._cond.wait(when - now)
                    continue
                heapq.heappop(self._heap)
                if timer._entry is not None and timer._entry[0] == seq:
                    timer._entry = None
                    timer._due_locked(now)

    def close(self) -> None:
        """Stop the thread, dropping every pending timer."""
        with self._cond:
            self._closing = True
            for _, _, timer in self._heap:
                timer._entry = None
            self._heap.clear()
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._closing = False


class _Timer:
    """The timeouts of one exchange: armed around each blocking step (the
    head, each body read), it cancels ``token`` when a step overruns.
    ``fired`` is then the phase that timed out: "connect", "pool", "write"
    or "read" (``classify()`` decides it for the head)."""

    __slots__ = ("_dog", "token", "_deadline", "_armed", "_label", "_entry", "fired",
                 "_classify", "seconds")

    def __init__(self, dog: _Watchdog, classify: Callable[[], str]) -> None:
        self._dog = dog
        self.token = CancelToken()
        self._deadline = 0.0
        self._armed = False
        self._label = ""
        self._entry: Optional[Tuple[int, float]] = None
        self.fired: Optional[str] = None
        self._classify = classify
        self.seconds = 0.0

    def arm(self, seconds: float, label: str) -> None:
        """Fire unless disarm() comes within ``seconds``; label "head" lets
        classify() name the phase when it fires."""
        deadline = time.monotonic() + seconds
        with self._dog._cond:
            if self.fired is not None:
                return
            self._deadline, self._label, self._armed = deadline, label, True
            self.seconds = seconds
            if self._entry is None or deadline < self._entry[1]:
                self._dog._push_locked(self, deadline)

    def disarm(self) -> None:
        with self._dog._cond:
            self._armed = False

    def _due_locked(self, now: float) -> None:
        if not self._armed or self.fired is not None:
            return
        if self._deadline > now:
            self._dog._push_locked(self, self._deadline)
            return
        self.fired = self._classify() if self._label == "head" else self._label
        self.token.cancel()


def _exchange_timer(dog: _Watchdog, transport: Transport, key: str,
                    upload: Optional["_Upload"]) -> _Timer:
    """A timer for one exchange to ``key``: when its head times out, the
    phase is "write" while a streamed upload is still being handed over,
    else as _waiting_phase judges, else "read"."""

    def classify() -> str:
        if upload is not None and upload.active:
            return "write"
        return _waiting_phase(transport, key) or "read"

    return _Timer(dog, classify)


def _waiting_phase(transport: Transport, key: str) -> Optional[str]:
    """"connect" or "pool" when a request to ``key`` is waiting for a
    connection right now, else None (a heuristic: fasttransport does not say
    which request waits)."""
    host = transport.host_stats().get(key)
    if host is None:                     # a proxy route: the key differs
        return "connect" if transport.stats().waiting_requests else None
    if not host["waiting"]:
        return None
    limit = transport.max_conns_per_host
    if limit > 0 and host["conns"] >= limit and not transport.stats().dialing_conns:
        return "pool"
    return "connect"


class _Upload:
    """A streamed request body handed to fasttransport chunk by chunk (a file
    read 64 KiB at a time, or an iterable of bytes or str); each chunk restarts the head
    timer, and ``active`` is true until the last chunk was taken."""

    __slots__ = ("_source", "_timer", "_seconds", "active")

    def __init__(self, source: Any) -> None:
        self._source = source
        self._timer: Optional[_Timer] = None
        self._seconds = 0.0
        self.active = True

    def time_with(self, timer: _Timer, seconds: float) -> None:
        """Restart ``timer`` for ``seconds`` at each chunk taken."""
        self._timer, self._seconds = timer, seconds

    def stop_timing(self) -> None:
        """The head arrived (or the exchange failed): later chunks, sent
        while the body is read, no longer touch the timer."""
        self._timer = None

    def __iter__(self) -> Iterator[bytes]:
        source = self._source
        if hasattr(source, "read"):
            end: Any = "" if isinstance(source, io.TextIOBase) else b""
            pieces: Any = iter(lambda: source.read(_FILE_PIECE), end)
        else:
            pieces = source
        try:
            for chunk in pieces:
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8")
                elif not isinstance(chunk, bytes):
                    chunk = bytes(chunk)
                timer = self._timer
                if timer is not None:
                    timer.arm(self._seconds, "head")
                yield chunk
        finally:
            self.active = False
