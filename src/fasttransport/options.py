"""Per-call policies a Client takes: Timeout (the parts of a request's time),
Retry (when a request is sent again) and Limits (the pool's sizes).
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, Optional, Tuple, Union

if TYPE_CHECKING:
    from builtins import ellipsis  # the type of ``...``

    from .models import Request, Response

__all__ = ["Timeout", "Retry", "Limits"]


def _seconds(value: Any, name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if value < 0 or value != value:
        raise ValueError(f"{name} must be >= 0 or None, got {value!r}")
    return float(value)


class Timeout:
    """The parts of a request's time, each in seconds or None (no limit):

    - total: the whole call, redirects, retries and the body included (Go's
      Client.Timeout; what a plain number given as ``timeout=`` means);
    - connect: looking the host up and dialling a new connection (TLS and
      a proxy's CONNECT included); an idle connection taken from the pool
      costs none;
    - read: nothing received for that long once the request has nothing
      more to send (waiting for the head, and between body bytes), counted
      from the last byte received or the start of the current read call;
    - write: nothing sent for that long while the request has bytes to send;
    - pool: waiting for a free slot under ``max_conns_per_host``.

    ``ft.Timeout(10, connect=2)``: 10 s in all, at most 2 s to connect.
    Errors: ConnectTimeout, ReadTimeout, WriteTimeout and PoolTimeout (the
    total as before: ReadTimeout, or ConnectTimeout / PoolTimeout while
    waiting for a connection).
    """

    __slots__ = ("total", "connect", "read", "write", "pool")

    def __init__(self, total: Optional[float] = None, *, connect: Optional[float] = None,
                 read: Optional[float] = None, write: Optional[float] = None,
                 pool: Optional[float] = None) -> None:
        self.total = _seconds(total, "Timeout total")
        self.connect = _seconds(connect, "Timeout connect")
        self.read = _seconds(read, "Timeout read")
        self.write = _seconds(write, "Timeout write")
        self.pool = _seconds(pool, "Timeout pool")

    def _parts(self) -> Optional[Dict[str, Optional[float]]]:
        """The phase parts as a request's ``extensions["timeout"]`` (the
        form httpx uses), None when none is set."""
        if self.connect is None and self.read is None and self.write is None \
                and self.pool is None:
            return None
        return {"connect": self.connect, "read": self.read, "write": self.write,
                "pool": self.pool}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timeout) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, k) for k in self.__slots__))

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__
                          if getattr(self, k) is not None)
        return f"Timeout({parts})"


#: Go's replayable methods (Request.isReplayable).
_REPLAYABLE = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))


class Retry:
    """When a Client sends a request again.

    - total: most retries of one request (each redirect hop has its own).
    - backoff: the first wait in seconds; it doubles with each retry, up to
      ``max_backoff``, and a random part (up to half of it) is taken off so
      that many clients do not come back in step.
    - statuses: responses retried (the response is closed first). When the
      retries are used up, the last response is returned as it is.
    - respect_retry_after: wait what a response's ``Retry-After`` asks
      (seconds or an HTTP date) instead of the backoff; a wait longer than
      ``max_backoff`` is not made: the response is returned.
    - Connection failures (ConnectError, ConnectTimeout: nothing was sent)
      are retried too.

    Only replayable requests are retried (Go's rule): GET, HEAD, OPTIONS,
    TRACE, or any method with an ``Idempotency-Key`` (or
    ``X-Idempotency-Key``) header, and only if the body can be sent again.
    A wait never runs past the call's total timeout, and a CancelToken ends
    it. ``Response.retries`` tells how many retries a response took.

    ``Client(retries=3)`` is ``Retry(total=3, statuses=())``: connection
    failures only.
    """

    __slots__ = ("total", "backoff", "statuses", "respect_retry_after", "max_backoff")

    def __init__(self, total: int = 3, backoff: float = 0.5,
                 statuses: Iterable[int] = (429, 502, 503, 504),
                 respect_retry_after: bool = True, max_backoff: float = 60.0) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"Retry total must be an int >= 0, got {total!r}")
        self.total = total
        self.backoff = _seconds(backoff, "Retry backoff") or 0.0
        self.statuses = frozenset(int(s) for s in statuses)
        self.respect_retry_after = bool(respect_retry_after)
        self.max_backoff = _seconds(max_backoff, "Retry max_backoff") or 0.0

    def __repr__(self) -> str:
        return (f"Retry(total={self.total}, backoff={self.backoff}, "
                f"statuses={tuple(sorted(self.statuses))}, "
                f"respect_retry_after={self.respect_retry_after}, "
                f"max_backoff={self.max_backoff})")

    def _backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1, 2, ...), jittered."""
        wait = min(self.max_backoff, self.backoff * (2.0 ** (retry - 1)))
        return wait * (1.0 - random.random() / 2)

    def _wait_for(self, req: Request, done: int, resp: Optional[Response] = None,
                  err: Optional[BaseException] = None) -> Optional[float]:
        """Seconds to wait before sending req again after ``done`` retries,
        given its response or error; None: do not retry."""
        if done >= self.total or not replayable(req):
            return None
        if err is not None:
            from .errors import ConnectError, ConnectTimeout
            return self._backoff(done + 1) if isinstance(err, (ConnectError,
                                                               ConnectTimeout)) else None
        if resp is None or resp.status_code not in self.statuses:
            return None
        if self.respect_retry_after:
            after = retry_after(resp.headers.get("Retry-After"))
            if after is not None:
                return after if after <= self.max_backoff else None
        return self._backoff(done + 1)


def as_retry(value: Union[int, Retry, None]) -> Optional[Retry]:
    """A Client's ``retries=`` (None, an int, or a Retry) as a Retry."""
    if value is None or isinstance(value, Retry):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"retries must be an int, a Retry or None, not {value!r}")
    return Retry(total=value, statuses=())


def replayable(req: Request) -> bool:
    """Go's Request.isReplayable, and a body that can be sent again."""
    if req._one_shot:
        return False
    if req._method in _REPLAYABLE:
        return True
    h = req._headers
    return "idempotency-key" in h or "x-idempotency-key" in h


def retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP date, as
    seconds from now (never negative); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


#: Limits.idle_conn_timeout left unset (None means "no timeout").
_UNSET: Any = ...


class Limits:
    """The pool's sizes, for ``Client(limits=...)`` (the Transport knobs of
    the same names, Go's): max_conns_per_host (0: no limit),
    max_idle_conns, max_idle_conns_per_host, idle_conn_timeout (seconds,
    None: none). Left None: the Transport's default."""

    __slots__ = ("max_conns_per_host", "max_idle_conns", "max_idle_conns_per_host",
                 "idle_conn_timeout")

    def __init__(self, *, max_conns_per_host: Optional[int] = None,
                 max_idle_conns: Optional[int] = None,
                 max_idle_conns_per_host: Optional[int] = None,
                 idle_conn_timeout: Optional[float] = _UNSET) -> None:
        self.max_conns_per_host = max_conns_per_host
        self.max_idle_conns = max_idle_conns
        self.max_idle_conns_per_host = max_idle_conns_per_host
        #: Ellipsis when left to the Transport's default.
        self.idle_conn_timeout: Union[float, None, ellipsis] = idle_conn_timeout

    def _kwargs(self) -> Dict[str, Any]:
        """The Transport keyword arguments these limits set."""
        out = {k: getattr(self, k) for k in self.__slots__[:3] if getattr(self, k) is not None}
        if self.idle_conn_timeout is not ...:
            out["idle_conn_timeout"] = self.idle_conn_timeout
        return out

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items()) + ")"


#: What a call's ``timeout=`` takes: seconds, an ft.Timeout, or None.
TimeoutTypes = Union[float, Timeout, None]


def split_timeout(value: TimeoutTypes) -> Tuple[Optional[float],
                                                Optional[Dict[str, Optional[float]]]]:
    """A call's ``timeout=``: (total seconds or None, the phase parts or None)."""
    if value is None:
        return None, None
    if isinstance(value, Timeout):
        return value.total, value._parts()
    return _seconds(value, "timeout"), None
