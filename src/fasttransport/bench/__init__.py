"""The benchmark suite: fasttransport against its peers, side by side.

``fasttransport bench`` (or ``python -m fasttransport bench``,
``python -m fasttransport.bench``) runs every scenario for every installed
client against a private nginx on loopback ports, each run in a fresh pinned
process, repetitions interleaved, and writes markdown tables with ratios to
fasttransport, a JSON file with every run and PNG charts. ``--help`` lists
the options; ``--quick`` finishes in about a minute.

Modules: ``runner`` (the driver and its options), ``scenarios`` (what each
scenario runs and reports), ``worker`` (one measured run in its own process),
``clients`` (the clients under test, wrapped alike), ``wrk`` (the C load
generator wrk as a reference row), ``syscalls`` (system calls per request
with ``strace -f -c``), ``parsers`` (the response-head parser rows),
``nginx`` (the server), ``certs`` (its TLS certificate), ``report`` (tables,
JSON, charts, README).
"""

from .runner import main

__all__ = ["main"]
