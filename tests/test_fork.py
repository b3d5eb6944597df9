"""os.fork() in a process using fasttransport (gunicorn preload, Celery,
multiprocessing): the child starts with an empty pool and a fresh engine on
first use, never sends on the parent's sockets, and parent and child make
requests at the same time with no cross-talk."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

import fasttransport as ft

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def tagging(conn):
    """Each answer repeats the request's own path: a response read by the
    wrong process or request shows at once."""
    while (req := conn.read_request(timeout=10)) is not None:
        body = req.target.encode()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def _check(client: ft.Client, url: str, who: str, n: int) -> int:
    bad = 0
    for i in range(n):
        path = f"/{who}/{i}"
        if client.get(url + path).text != path:
            bad += 1
    return bad


def _child(fn) -> int:
    """Run fn in a forked child; its exit status (0 = fine)."""
    pid = os.fork()
    if pid == 0:   # pragma: no cover - runs in the child
        code = 1
        try:
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_parent_and_child_share_nothing(scripted_server):
    srv = scripted_server(tagging)
    url = srv.url("").rstrip("/")
    with ft.Client() as c:
        for round_ in range(3):
            assert _check(c, url, "warm", 5) == 0      # idle connections to inherit
            before = c.transport.stats().dials

            def child(who: str = f"child{round_}") -> int:
                s = c.transport.stats()
                if s.open_conns != 0:          # an empty pool: nothing inherited
                    return 3
                bad = _check(c, url, who, 50)
                return 0 if bad == 0 and c.transport.stats().io_threads == 1 else 4

            result: list = []
            t = threading.Thread(target=lambda out=result, fn=child: out.append(_child(fn)))
            t.start()
            bad = _check(c, url, f"parent{round_}", 50)   # at the same time
            t.join()
            assert result == [0]
            assert bad == 0
            # the parent's pooled connections survived the child (nothing was sent on them)
            assert c.transport.stats().dials == before
        srv.check_errors()


def test_batch_and_async_in_the_child(scripted_server):
    srv = scripted_server(tagging)
    url = srv.url("").rstrip("/")
    with ft.Client() as c:
        assert _check(c, url, "warm", 3) == 0
        slow = c.submit("GET", url + "/before-fork")   # may still run in the parent

        def child() -> int:
            import asyncio
            paths = [f"/m/{i}" for i in range(30)]
            got = {req.url: r.text for req, r in c.map([url + p for p in paths])}
            if got != {url + p: p for p in paths}:
                return 5

            async def main() -> bool:
                async with ft.AsyncClient() as ac:
                    rs = await asyncio.gather(*[ac.get(url + p) for p in paths])
                    return [r.text for r in rs] == paths
            return 0 if asyncio.run(main()) else 6

        assert _child(child) == 0
        assert slow.result(timeout=10).text == "/before-fork"


def test_a_response_from_before_the_fork_fails_clearly(http_server):
    with ft.Client() as c:
        r = c.get(http_server.url("/chunked/300000"), stream=True)
        first = r.read(100)
        assert first

        def child() -> int:
            try:
                r.read(1000)
            except ft.TransportError as e:
                return 0 if "the process forked" in str(e) else 7
            return 8

        assert _child(child) == 0
        # the parent reads on undisturbed
        rest = r.read()
        assert len(first) + len(rest) == 300000


def _mp_fetch(args):
    url, i = args
    return ft.get(f"{url}/mp/{i}").text


def test_multiprocessing_fork_pool(scripted_server):
    srv = scripted_server(tagging)
    url = srv.url("").rstrip("/")
    assert ft.get(url + "/parent").text == "/parent"     # the default client has a pool
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map(_mp_fetch, [(url, i) for i in range(40)])
    assert got == [f"/mp/{i}" for i in range(40)]
    assert ft.get(url + "/parent-again").text == "/parent-again"

