"""Stress: 64 threads x 2,000 requests on one Transport with
max_conns_per_host=4, each request ending at random in one of the ways a
body can end (read to EOF, closed early, abandoned to the garbage collector)
or failing (the server resets mid-exchange). Afterwards the server never saw
more than 4 connections at once, every request is accounted for, and no
thread or file descriptor is left.

FT_STRESS_SCALE scales the request count (default 1.0; the ThreadSanitizer
run in README uses a smaller scale since every native access is checked)."""

from __future__ import annotations

import gc
import os
import random
import threading
import warnings
from collections import Counter

from servers import LeakCheck, body_bytes, response

import fasttransport as ft

THREADS = 64
PER_THREAD = int(2000 * float(os.environ.get("FT_STRESS_SCALE", "1")))
LIMIT = 4


def handler(conn):
    """Keep-alive server: /bytes/N answers N bytes; /reset resets before
    answering; /cut sends the head and half the body, then resets."""
    while True:
        req = conn.read_request(timeout=30)
        if req is None:
            return
        if req.path == "/reset":
            conn.reset()
            return
        if req.path == "/cut":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + body_bytes(500))
            conn.reset()
            return
        n = int(req.path.rsplit("/", 1)[1])
        conn.send(response(200, body_bytes(n)))


def test_stress_mixed_outcomes(scripted_server):
    srv = scripted_server(handler)
    leaks = LeakCheck()
    outcomes = Counter()
    lock = threading.Lock()
    t = ft.Transport(max_conns_per_host=LIMIT)

    def worker(seed):
        rng = random.Random(seed)
        local = Counter()
        for _ in range(PER_THREAD):
            roll = rng.random()
            n = rng.choice((0, 10, 1000, 20000))
            try:
                if roll < 0.02:
                    t.round_trip(ft.Request("GET", srv.url("/reset"))).read()
                    local["unexpected-success"] += 1
                elif roll < 0.04:
                    r = t.round_trip(ft.Request("GET", srv.url("/cut")))
                    r.read()
                    local["unexpected-success"] += 1
                elif roll < 0.55:
                    r = t.round_trip(ft.Request("GET", srv.url(f"/bytes/{n}")))
                    if r.read() != body_bytes(n):
                        local["wrong-body"] += 1
                    else:
                        local["eof"] += 1
                elif roll < 0.8:
                    r = t.round_trip(ft.Request("GET", srv.url(f"/bytes/{n}")))
                    r.read(5)
                    r.close()
                    local["early-close"] += 1
                else:
                    r = t.round_trip(ft.Request("GET", srv.url(f"/bytes/{n}")))
                    r.read(3)
                    del r                      # abandoned: the finalizer releases it
                    local["abandoned"] += 1
            except ft.RemoteProtocolError:
                local["protocol-error"] += 1
        with lock:
            outcomes.update(local)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(600)
        gc.collect()

    assert not any(th.is_alive() for th in threads)
    assert sum(outcomes.values()) == THREADS * PER_THREAD, outcomes
    assert outcomes["wrong-body"] == 0 and outcomes["unexpected-success"] == 0, outcomes
    assert outcomes["protocol-error"] > 0 and outcomes["eof"] > 0
    assert srv.max_concurrent <= LIMIT, srv.max_concurrent
    s = t.stats()
    assert s.requests >= THREADS * PER_THREAD       # retries add to it
    assert s.active_conns == 0 and s.waiting_requests == 0 and s.dialing_conns == 0
    assert s.open_conns == s.idle_conns + s.draining_conns
    assert s.open_conns <= LIMIT
    t.close()
    assert t.stats().open_conns == 0
    leaks.check(timeout=5)
