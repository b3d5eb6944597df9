"""Shared fixtures: loopback servers that always stop, and leak checks.

- ``scripted_server(handler, **kw)``: start a :class:`servers.ScriptedServer`
  (function or script handler); every server started is stopped at teardown
  and its handler errors fail the test.
- ``http_server``: a started keep-alive HTTP/1.1 server (:func:`servers.http_handler`).
- ``no_leaks``: fails the test if threads or file descriptors are left over.
- ``outside_server``: a keep-alive server in a child process (its threads
  and sockets do not blur this process's counts, and it answers at once
  whatever this process's GIL is doing); yields its base URL.
- ``ca``, ``ca_file``: a trustme certificate authority for the run, and its
  certificate as a PEM file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import trustme
from servers import LeakCheck, ScriptedServer, http_handler


def _stop_all(servers: list[ScriptedServer]) -> None:
    """Stop every server, then report the first failure (stop or handler error)."""
    failures: list[BaseException] = []
    for server in servers:
        try:
            server.stop()
        except BaseException as exc:  # noqa: BLE001 - keep stopping the others
            failures.append(exc)
    for server in servers:
        try:
            server.check_errors()
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: ``scripted_server(handler, **kw) -> ScriptedServer`` (started)."""
    started: list[ScriptedServer] = []

    def start(handler: Any, **kw: Any) -> ScriptedServer:
        server = ScriptedServer(handler, **kw)
        started.append(server)
        return server.start()

    yield start
    _stop_all(started)


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    """A started keep-alive HTTP/1.1 server; see :func:`servers.http_handler`."""
    server = ScriptedServer(http_handler, name="http")
    server.start()
    yield server
    _stop_all([server])


@pytest.fixture
def no_leaks() -> Iterator[LeakCheck]:
    """Assert that the test leaves no extra threads or file descriptors.

    Counts ``/proc/self/task`` and ``/proc/self/fd`` before the test and,
    after it, waits up to 2 s for both to be back at (or below) those counts.
    Request it *after* the server fixtures so that the server's per-connection
    threads still count at the check: a connection the client leaked keeps one
    alive.  Lazily created process-wide resources (a shared default client's
    engine thread) count as a leak: create them before the test.
    """
    check = LeakCheck()
    yield check
    check.check(timeout=2.0)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority made for this test run (trustme)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA's certificate as a PEM file, for ``verify=``."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


HERE = os.path.dirname(__file__)


@pytest.fixture
def outside_server():
    """A loopback server in a child process; yields its base URL. At teardown
    the child must exit cleanly having written nothing to stderr (where
    asyncio reports a handler's exception)."""
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "loopback_server.py")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            _, err = p.communicate(timeout=5)   # closes stdin: the child's cue to stop
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    assert p.returncode == 0 and not err, f"loopback server exit {p.returncode}:\n{err}"
