"""System calls per request, counted with ``strace -f -c``.

strace slows every system call of the process it traces, so the counts come
from separate, untimed runs. A client's worker is run twice under
``strace -f -c`` (every thread followed), making ``N1`` and then ``N2``
requests after the same start-up and warm-up; the calls per request are
``(calls(N2) - calls(N1)) / (N2 - N1)``, which cancels what start-up,
imports, the warm-up and the exit cost. wrk is counted the same way
between a short and a longer run, divided by the difference in the requests
it reports.

Calls driven by time rather than by requests (timer wake-ups) weigh a little
more than in an untraced run, since a traced request takes longer.

- ``parse(text)``: the summary table ``strace -c -o FILE`` writes, as
  :class:`Counts` (calls and failed calls per system call);
- ``per_request(small, large, requests)``: the difference as
  :class:`PerRequest`;
- ``traced(cmd, path)``: ``cmd`` under ``strace -f -c -o path``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, Optional

INSTALL_HINT = "strace not installed (apt-get install strace)"
#: Per-request figures below this are shown as noise, not as calls.
MIN_SHOWN = 0.05


@dataclass(frozen=True)
class Counts:
    """One strace summary: calls and failed calls per system call name."""

    calls: dict[str, int]
    errors: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def parse(text: str) -> Counts:
    """Read the table ``strace -c`` prints::

        % time     seconds  usecs/call     calls    errors syscall
        ------ ----------- ----------- --------- --------- ----------------
         64.46    0.069021         389       177           epoll_wait
         14.61    0.015641           6      2303      1151 recvfrom
        ...
        100.00    0.107074          15      7135      1460 total

    The errors column is blank when a call never failed. Several tables (one
    per personality, for a process that also makes 32-bit calls) are added
    up; the ``total`` rows are checked against the sum. Raises ValueError
    when there is no table.
    """
    calls: dict[str, int] = {}
    errors: dict[str, int] = {}
    header: list[str] = []
    stated_total = 0
    for line in text.splitlines():
        if line.lstrip().startswith("% time"):
            header = line.replace("% time", "%time").split()
            continue
        fields = line.split()
        if not header or not fields or not _is_number(fields[0]):
            continue
        if len(fields) == len(header):
            failed = int(fields[header.index("errors")]) if "errors" in header else 0
        elif len(fields) == len(header) - 1 and header[-2] == "errors":
            failed = 0  # blank errors column
        else:
            raise ValueError(f"unexpected strace -c line: {line!r}")
        name, count = fields[-1], int(fields[header.index("calls")])
        if name == "total":
            stated_total += count
            continue
        calls[name] = calls.get(name, 0) + count
        errors[name] = errors.get(name, 0) + failed
    if not header:
        raise ValueError("no strace -c summary table (no '% time' header)")
    counts = Counts(calls, errors)
    if stated_total and stated_total != counts.total:
        raise ValueError(f"strace -c rows add up to {counts.total}, its total says "
                         f"{stated_total}")
    return counts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PerRequest:
    """System calls per request, total and by name (most frequent first)."""

    total: float
    #: (name, calls per request, failed calls per request), most frequent first.
    calls: list[tuple[str, float, float]]

    def describe(self, top: int = 5) -> str:
        """``"3.0: recvfrom 2.0 (1.0 failed), sendmsg 1.0"``."""
        return f"{self.total:.1f}: {self.breakdown(top)}"

    def breakdown(self, top: int = 5) -> str:
        """The ``top`` most frequent calls, ``"recvfrom 2.0 (1.0 failed), sendmsg 1.0"``."""
        parts = []
        for name, per, failed in self.calls[:top]:
            text = f"{name} {per:.1f}"
            if failed >= MIN_SHOWN:
                text += f" ({failed:.1f} failed)"
            parts.append(text)
        rest = sum(per for _, per, _ in self.calls[top:])
        if rest >= MIN_SHOWN:
            parts.append(f"others {rest:.1f}")
        return ", ".join(parts) or "none"

    def as_json(self) -> dict[str, Any]:
        return {
            "per_req": self.total,
            "calls": {name: per for name, per, _ in self.calls},
            "failed": {name: failed for name, _, failed in self.calls if failed},
            "text": self.describe(),
            "breakdown": self.breakdown(),
        }


def per_request(small: Counts, large: Counts, requests: float) -> PerRequest:
    """Calls per request between a run with fewer and one with ``requests``
    more requests. Differences that round to nothing (below ``MIN_SHOWN``
    per request, either way: noise) are left out of the breakdown but stay
    in the total."""
    if requests <= 0:
        raise ValueError(f"the longer run made no more requests ({requests})")
    rows = []
    for name in set(small.calls) | set(large.calls):
        per = (large.calls.get(name, 0) - small.calls.get(name, 0)) / requests
        failed = (large.errors.get(name, 0) - small.errors.get(name, 0)) / requests
        if per >= MIN_SHOWN:
            rows.append((name, per, max(0.0, failed)))
    rows.sort(key=lambda row: (-row[1], row[0]))
    return PerRequest((large.total - small.total) / requests, rows)


def find() -> Optional[str]:
    """Path of the strace binary, or None."""
    return shutil.which("strace")


def traced(binary: str, cmd: list[str], path: str) -> list[str]:
    """``cmd`` run under ``strace -f -c``, the summary written to ``path``."""
    return [binary, "-f", "-c", "-o", path, *cmd]
