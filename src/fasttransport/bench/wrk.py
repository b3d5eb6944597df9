"""wrk, the C load generator, as a reference row: the floor on this machine.

wrk (Debian package ``wrk``) is not a Python client. ``wrk -t1 -cN -dSs URL``
runs one thread with one epoll loop in C that keeps N connections busy for S
seconds. It builds the request once and sends the same bytes again each
time; it runs every response through its C HTTP parser (http-parser) only to
find where the response ends and whether the connection stays open (it
reconnects after ``Connection: close``): with no Lua script the header fields
are not stored, the body is not copied or kept and no response object is
made. Over TLS it does not verify the server's certificate. It counts
responses with a 4xx or 5xx status and socket errors, and prints
``N requests in T, B read``.

Its row in a table is measured like this (``run``, in a worker process that
starts no other child): the wrk process's user + system CPU time from start
to exit, as the growth of ``getrusage(RUSAGE_CHILDREN)`` around it (start-up,
the first connect and a TLS handshake included; a few milliseconds against
seconds of requests), divided by the requests it reports; req/s are its own
requests over its own run time.

One thread also for 32 connections: the client side of the suite has one CPU
(CPU 0), where a second wrk thread would only share the core.

``parse(text)`` reads wrk's report; ``command(...)`` builds its command line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Optional

#: The row's name in the tables and in ``--clients``.
ROW = "wrk"
INSTALL_HINT = "wrk not installed (apt-get install wrk)"
#: wrk threads: one, as the clients have one CPU (see the module docstring).
THREADS = 1

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DONE = re.compile(
    r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?)B read\s*$", re.M
)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_CONFIG = re.compile(r"^\s*(\d+) threads and (\d+) connections\s*$", re.M)
_VERSION = re.compile(r"^wrk (\S+)")


@dataclass(frozen=True)
class Report:
    """What one wrk run printed."""

    requests: int
    seconds: float
    bytes_read: float
    threads: int
    connections: int
    #: connect, read, write, timeout: wrk's socket error counters.
    socket_errors: dict[str, int] = field(default_factory=dict)
    #: responses with a status of 400 or more ("Non-2xx or 3xx responses").
    bad_status: int = 0

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.bad_status

    @property
    def req_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def error_text(self) -> str:
        """The error lines in wrk's words, or ``""``."""
        parts = []
        if any(self.socket_errors.values()):
            parts.append("socket errors: " + ", ".join(
                f"{name} {count}" for name, count in self.socket_errors.items()))
        if self.bad_status:
            parts.append(f"{self.bad_status} responses with status 400 or more")
        return "; ".join(parts)


def parse(text: str) -> Report:
    """Read wrk's report (its stdout). Raises ValueError when the line
    ``N requests in T, B read`` is missing."""
    done = _DONE.search(text)
    if done is None:
        tail = " / ".join(text.strip().splitlines()[-3:]) or "nothing"
        raise ValueError(f"wrk printed no 'N requests in T' line (it printed: {tail})")
    requests, amount, unit, size, prefix = done.groups()
    config = _CONFIG.search(text)
    threads, connections = (int(config[1]), int(config[2])) if config else (0, 0)
    socket = _SOCKET.search(text)
    names = ("connect", "read", "write", "timeout")
    errors = dict(zip(names, map(int, socket.groups()))) if socket else dict.fromkeys(names, 0)
    status = _STATUS.search(text)
    return Report(
        requests=int(requests),
        seconds=float(amount) * _UNITS[unit],
        bytes_read=float(size) * _BYTES[prefix],
        threads=threads,
        connections=connections,
        socket_errors=errors,
        bad_status=int(status[1]) if status else 0,
    )


def find() -> Optional[str]:
    """Path of the wrk binary, or None."""
    return shutil.which("wrk")


def version(binary: str) -> str:
    """wrk's version (``wrk -v`` prints ``wrk debian/4.1.0-3+b2 [epoll] ...``)."""
    proc = subprocess.run([binary, "-v"], check=False, capture_output=True, text=True,
                          timeout=10, stdin=subprocess.DEVNULL)
    found = _VERSION.search(proc.stdout + proc.stderr)
    return found[1].rsplit("/", 1)[-1] if found else ""


def command(binary: str, url: str, connections: int, seconds: int) -> list[str]:
    """``wrk -t1 -cN -dSs URL`` (wrk takes whole seconds)."""
    return [binary, f"-t{THREADS}", f"-c{connections}", f"-d{max(1, int(seconds))}s", url]
