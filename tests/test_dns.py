"""Name resolution inside the deadline: a host name is looked up on a
resolver thread, so a DNS server that never answers costs a caller its
timeout (or dial_timeout), not the system resolver's 10 s, and a cancel
token, Ctrl-C and asyncio cancellation apply meanwhile; the engine never
waits for DNS, so other requests go on.

The silent DNS server runs in a private network and mount namespace
(``unshare``): its /etc/resolv.conf points at 127.0.0.1, where a UDP socket
reads queries and never answers. Skipped where namespaces are not allowed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fasttransport as ft

# the child imports the same fasttransport as this process (a checkout's src/
# or the installed package)
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ft.__file__)))

SCRIPT = textwrap.dedent(r'''
    import asyncio, json, os, signal, socket, subprocess, sys, threading, time
    import http.server
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    with open("/tmp/ft-silent-resolv.conf", "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    subprocess.run(["mount", "--bind", "/tmp/ft-silent-resolv.conf", "/etc/resolv.conf"],
                   check=True)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))            # reads nothing, answers nothing

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2")
            self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{srv.server_address[1]}/"

    import fasttransport as ft
    out = {}
    def timed(key, fn):
        t0 = time.monotonic()
        try:
            fn()
            out[key] = ["no error", time.monotonic() - t0]
        except BaseException as e:
            out[key] = [type(e).__name__ + ": " + str(e), time.monotonic() - t0]

    with ft.Client() as c:
        timed("timeout", lambda: c.get("http://silent.example/", timeout=1))
    with ft.Client(transport=ft.Transport(dial_timeout=0.5)) as c:
        timed("dial_timeout", lambda: c.get("http://silent.example/"))
    with ft.Client() as c:
        tok = ft.CancelToken()
        threading.Timer(0.3, tok.cancel).start()
        timed("cancel", lambda: c.get("http://silent.example/", cancel=tok))
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        timed("ctrl_c", lambda: c.get("http://silent.example/"))
        # the engine is not held up: a lookup hangs, other requests go on
        slow = c.submit("GET", "http://silent.example/", timeout=1.5)
        t0 = time.monotonic()
        ok = [c.submit("GET", local).result(timeout=5).text for _ in range(20)]
        out["others"] = [ok == ["ok"] * 20, time.monotonic() - t0]
        timed("batch", lambda: slow.result(timeout=5))
        out["threads"] = c.transport.stats().io_threads

    async def aio():
        async with ft.AsyncClient() as ac:
            await asyncio.wait_for(ac.get("http://silent.example/"), 0.4)
    timed("asyncio", lambda: asyncio.run(aio()))
    print(json.dumps(out))
''')


def _unshare_works() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    try:
        return subprocess.run(["unshare", "-n", "-m", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_a_silent_dns_server_costs_only_the_deadline():
    if not _unshare_works():
        pytest.skip("private network namespaces are not allowed here")
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    p = subprocess.run(["unshare", "-n", "-m", sys.executable, "-c", SCRIPT],
                       capture_output=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    err, t = out["timeout"]
    assert err.startswith("ConnectTimeout: ") and "silent.example" in err and t < 2, out
    err, t = out["dial_timeout"]
    assert "dial tcp: lookup silent.example: i/o timeout" in err and t < 1.5, out
    err, t = out["cancel"]
    assert err.startswith("Cancelled: ") and t < 1.2, out
    err, t = out["ctrl_c"]
    assert err.startswith("KeyboardInterrupt") and t < 1.2, out
    ok, t = out["others"]
    assert ok and t < 1.4, out
    err, t = out["batch"]
    assert err.startswith("ConnectTimeout: ") and t < 2.5, out
    err, t = out["asyncio"]
    assert err.startswith("TimeoutError") and t < 1.2, out
    assert out["threads"] == 1


def test_names_resolve_for_every_api(http_server):
    url = http_server.url("/").replace("127.0.0.1", "localhost")
    with ft.Client() as c:
        assert c.get(url).text == "hello"
        assert c.submit("GET", url).result(timeout=10).text == "hello"

        import asyncio

        async def main() -> str:
            async with ft.AsyncClient() as ac:
                return (await ac.get(url)).text
        assert asyncio.run(main()) == "hello"
