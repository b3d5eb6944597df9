"""Client fuzzing: a loopback server answers every request with a mutated or
truncated real response (nginx-, Go- and Apache-like heads, chunked bodies
with trailers, gzip, 1xx, keep-alive and close-delimited framing), and the
whole client takes them through the blocking, batch and asyncio APIs.

Checked for every answer: no crash (run it under ASan: the CI's sanitized
run includes this file), no hang past the request's timeout, any error is
an ft.HTTPError; and at the end threads, descriptors and the transport's
counters are back to where they started.

    python -m pytest tests/test_client_fuzz.py                 # a few seconds
    FT_FUZZ_SECONDS=3600 FT_FUZZ_SEED=7 python -m pytest tests/test_client_fuzz.py -q
"""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import time

from servers import LeakCheck, ScriptedServer, ServerConn, wait_until

import fasttransport as ft

SECONDS = float(os.environ.get("FT_FUZZ_SECONDS", "4"))
SEED = int(os.environ.get("FT_FUZZ_SEED", str(int(time.time()))))
TIMEOUT = 1.0

_GZ = gzip.compress(b"fuzz " * 400)
SEEDS = [
    # nginx
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\n"
    b"Content-Type: text/html\r\nContent-Length: 13\r\nConnection: keep-alive\r\n"
    b"ETag: \"6570-d\"\r\nAccept-Ranges: bytes\r\n\r\n<html></html>",
    # Go net/http, chunked with a trailer
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTrailer: X-Sum\r\n"
    b"Transfer-Encoding: chunked\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\n\r\n"
    b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 42\r\n\r\n",
    # Apache, gzip
    b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\nVary: Accept-Encoding\r\n"
    b"Content-Encoding: gzip\r\nContent-Length: " + str(len(_GZ)).encode() +
    b"\r\nKeep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\n\r\n" + _GZ,
    # 100 Continue then a redirect
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 301 Moved Permanently\r\nLocation: /next\r\n"
    b"Content-Length: 0\r\n\r\n",
    # HTTP/1.0, close-delimited
    b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + bytes(range(256)) * 8,
    # 204 and 304 without bodies, back to back
    b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: x\r\nContent-Length: 99\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b"\x00", b"\xff", b"0", b"-1",
          b"Content-Length: ", b"Transfer-Encoding: chunked\r\n", b"HTTP/1.1 ", b"ffffffffff",
          b";", b"\r\n\r\n", b"Connection: close\r\n", b"999999999999999999999"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:                               # flip bits
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                   # insert a token
            b[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and b:                             # delete a run
            del b[pos:pos + rng.randint(1, 16)]
        elif op == 3:                                   # truncate
            del b[pos:]
        elif op == 4 and b:                             # duplicate a run
            run = b[pos:pos + rng.randint(1, 64)]
            b[pos:pos] = run
        else:                                           # a random byte
            b[pos:pos] = bytes([rng.randrange(256)])
    return bytes(b)


def fuzz_server(seed: int) -> ScriptedServer:
    counter = [0]

    def handler(conn: ServerConn) -> None:
        while True:
            try:
                req = conn.read_request(timeout=TIMEOUT * 3)
            except Exception:   # noqa: BLE001 - the client sent junk after our junk
                return
            if req is None:
                return
            counter[0] += 1
            rng = random.Random(seed * 1_000_003 + counter[0])
            wire = mutate(rng, rng.choice(SEEDS))
            conn.send(wire)
            if rng.random() < 0.3:
                return                                  # close after it

    return ScriptedServer(handler, name="fuzz").start()


def _run(client: ft.Client, url: str, how: int) -> None:
    if how == 0:
        client.get(url)
    elif how == 1:
        with client.stream("GET", url) as r:
            for _ in r.iter_bytes(100):
                pass
    else:
        client.submit("GET", url).result(timeout=TIMEOUT * 3)


def test_mutated_responses_end_in_http_errors_and_leave_nothing():
    rng = random.Random(SEED)
    srv = fuzz_server(SEED)
    url = srv.url("/fuzz")
    leaks = LeakCheck()
    counts = {"ok": 0, "errors": 0}
    with ft.Client(timeout=TIMEOUT, follow_redirects=False) as c:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            how = rng.randrange(4)
            try:
                if how == 3:
                    async def many() -> list:
                        async with ft.AsyncClient(transport=c.transport, timeout=TIMEOUT,
                                                  follow_redirects=False) as ac:
                            return await asyncio.gather(*[ac.get(url) for _ in range(8)],
                                                        return_exceptions=True)
                    for res in asyncio.run(many()):
                        if isinstance(res, BaseException):
                            assert isinstance(res, ft.HTTPError), (SEED, repr(res))
                    counts["ok"] += 1
                else:
                    _run(c, url, how)
                    counts["ok"] += 1
            except ft.HTTPError:
                counts["errors"] += 1
            except BaseException as e:   # noqa: BLE001 - the point of the test
                raise AssertionError(f"seed {SEED}: {e!r} is not an ft.HTTPError") from e
            took = time.monotonic() - t0
            assert took < TIMEOUT * 3 + 1, f"seed {SEED}: a request took {took:.1f} s"
        assert wait_until(lambda: c.transport.stats().active_conns == 0, 3), c.transport.stats()
        s = c.transport.stats()
        assert s.write_loops == 0 and s.dialing_conns == 0 and s.waiting_requests == 0, s
    srv.stop()
    leaks.check(timeout=3)
    assert counts["ok"] + counts["errors"] >= 3, counts
