"""Every ```python example in docs/*.md and README.md runs here.

The examples are written for a server of the reader's own at
``http://127.0.0.1:8080`` (and ``https://127.0.0.1:8443``, a proxy at
``http://127.0.0.1:3128``, a SOCKS proxy at ``127.0.0.1:1080`` with the
user ``user:secret``); this test starts loopback servers that answer the
paths the examples use, rewrites those addresses to the servers' ports,
and runs each block on its own (a fresh namespace, a temporary working
directory holding ``ca.pem`` and ``client.pem``, the environment
restored afterwards). A block passes when it runs without an exception; it
must assert or print something (checked here), and what it prints must not
be empty.

A block that cannot run offline is marked with ``<!-- no-run -->`` on the
line before its fence; at most MAX_NO_RUN may be. Only blocks whose fence
starts a line are examples: an indented ```python fence fails the test, so
that no example is skipped unnoticed.
"""

from __future__ import annotations

import ast
import functools
import http.client
import json
import linecache
import os
import re
import select
import socket
import ssl
import sys
import zlib
from pathlib import Path
from typing import Iterator, List, NamedTuple
from urllib.parse import urlsplit

import pytest
import trustme
from proxies import SocksProxy
from servers import ScriptedServer, ServerConn, _serve_route, body_bytes, response

import fasttransport.proxy as ft_proxy

ROOT = Path(__file__).resolve().parent.parent
#: Most blocks that may be marked ``<!-- no-run -->``.
MAX_NO_RUN = 2
NO_RUN = "<!-- no-run -->"
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


class Block(NamedTuple):
    path: str      # relative to the repository
    line: int      # of the opening fence, 1-based
    code: str
    no_run: bool


def doc_files() -> List[Path]:
    return sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def python_blocks() -> List[Block]:
    """Every ```python block, with whether it is marked no-run."""
    blocks = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        rel = path.relative_to(ROOT).as_posix()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            indent, lang = m.groups()
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            i += 1
            if lang != "python":
                continue
            if indent:
                raise AssertionError(f"{rel}:{start + 1}: an indented ```python block is not "
                                     "run by tests/test_docs.py; start the fence at column 0")
            before = [ln.strip() for ln in lines[:start] if ln.strip()]
            blocks.append(Block(rel, start + 1, "\n".join(body) + "\n",
                                bool(before) and before[-1] == NO_RUN))
    return blocks


BLOCKS = python_blocks()


# --------------------------------------------------------------------------
# the servers the examples talk to


def _requests(conn: ServerConn) -> Iterator:
    """The requests that come on conn, until it closes or idles for 30 s."""
    for _ in range(100_000):
        try:
            req = conn.read_request(timeout=30)
        except TimeoutError:          # an idle keep-alive connection: let it go
            return
        if req is None:
            return
        yield req


def _page(conn: ServerConn, req, status: int, body: bytes, headers=()) -> None:
    data = response(status, body, list(headers))
    conn.send(data[: len(data) - len(body)] if req.method == "HEAD" else data)


@functools.lru_cache(maxsize=8)
def gzipped_zeros(n: int) -> bytes:
    """n zero bytes in the gzip format, compressed a MiB at a time (the
    examples' decompression bombs; the server never holds them whole)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    piece = bytes(1 << 20)
    out = [z.compress(piece) for _ in range(n >> 20)]
    out.append(z.compress(bytes(n & ((1 << 20) - 1))))
    out.append(z.flush())
    return b"".join(out)


def docs_handler(conn: ServerConn) -> None:
    """servers.http_handler's routes, plus what the examples use:

    - ``/big``: 1 MiB; ``/gzip/N``: N zero bytes gzip-compressed (with
      ``Content-Encoding: gzip``); ``/loop``: a redirect to itself;
    - ``/cookies/set?name=value``: sets the cookies; ``/cookies``: JSON of
      the Cookie header the request had;
    - ``/whoami``: the CN of the TLS client certificate, or ``anonymous``;
    - any other path: 200, ``page <path>``.
    """
    known = ("", "bytes", "chunked", "status", "echo", "close", "slow", "nolength")
    for req in _requests(conn):
        first = req.path.strip("/").split("/")[0]
        if first in known:
            if not _serve_route(conn, req):
                return
            continue
        text = [("Content-Type", "text/plain")]
        binary = [("Content-Type", "application/octet-stream")]
        if req.path == "/big":
            _page(conn, req, 200, body_bytes(1 << 20), binary)
        elif first == "gzip":
            n = int(req.path.split("/")[2])
            _page(conn, req, 200, gzipped_zeros(n), binary + [("Content-Encoding", "gzip")])
        elif req.path == "/loop":
            _page(conn, req, 302, b"", [("Location", "/loop")])
        elif req.path == "/cookies/set":
            cookies = [("Set-Cookie", f"{k}={v}; Path=/") for k, v in req.query.items()]
            _page(conn, req, 200, b"set", cookies + text)
        elif req.path == "/cookies":
            jar = dict(c.strip().split("=", 1) for v in req.header_list("Cookie")
                       for c in v.split(";") if "=" in c)
            _page(conn, req, 200, json.dumps({"cookies": jar}).encode(),
                  [("Content-Type", "application/json")])
        elif req.path == "/whoami":
            cert = conn.sock.getpeercert() if isinstance(conn.sock, ssl.SSLSocket) else None
            cn = dict(x[0] for x in cert["subject"])["commonName"] if cert else "anonymous"
            _page(conn, req, 200, cn.encode(), text)
        else:
            _page(conn, req, 200, f"page {req.path}".encode(), text)
        if req.wants_close():
            return


def _relay(conn: ServerConn, up: socket.socket) -> None:
    down = conn.sock
    down.setblocking(True)
    for _ in range(1_000_000):
        ready, _, _ = select.select([down, up], [], [], 0.2)
        if conn.stopping:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            (up if s is down else down).sendall(data)


def proxy_handler(conn: ServerConn) -> None:
    """A forward proxy: CONNECT tunnels, and absolute-form requests passed
    on to their origin (with ``Via: 1.1 docs-proxy``)."""
    for req in _requests(conn):
        if req.method == "CONNECT":
            host, _, port = req.target.rpartition(":")
            up = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            try:
                conn.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _relay(conn, up)
            finally:
                up.close()
            return
        u = urlsplit(req.target)
        skip = {"proxy-authorization", "proxy-connection", "connection", "content-length",
                "transfer-encoding"}
        headers = {n: v for n, v in req.headers if n.lower() not in skip}
        origin = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
        try:
            origin.request(req.method, u.path + (f"?{u.query}" if u.query else ""),
                           body=req.body or None, headers=headers)
            r = origin.getresponse()
            body = r.read()
            out = [(n, v) for n, v in r.getheaders()
                   if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        finally:
            origin.close()
        conn.send(response(r.status, body, out + [("Via", "1.1 docs-proxy")], reason=r.reason))


@pytest.fixture(scope="module")
def doc_site(tmp_path_factory) -> Iterator[dict]:
    """The servers and files the examples expect: returns the address
    rewrites and the working directory."""
    work = tmp_path_factory.mktemp("docs-examples")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    client_cert = ca.issue_cert("client.example", common_name="docs-client")
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(work / "client.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    servers = [ScriptedServer(docs_handler, name="docs"),
               ScriptedServer(docs_handler, name="docs-tls", ssl_context=ctx),
               ScriptedServer(proxy_handler, name="docs-proxy"),
               ScriptedServer(SocksProxy(users={"user": "secret"},
                                         hosts={"localhost": "127.0.0.1"}), name="docs-socks")]
    for s in servers:
        s.start()
    plain, tls, proxy, socks = servers
    try:
        yield {"ports": {"8080": plain.port, "8443": tls.port, "3128": proxy.port,
                         "1080": socks.port},
               "work": work}
    finally:
        for s in servers:
            s.stop()
        for s in servers:
            s.check_errors()


ADDRESS = re.compile(r"\b(127\.0\.0\.1|localhost):(8080|8443|3128|1080)\b")


def _prints_or_asserts(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "print"):
            return True
    return False


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.no_run],
                         ids=lambda b: f"{b.path}:{b.line}")
def test_example(block: Block, doc_site: dict, monkeypatch, capsys) -> None:
    ports = doc_site["ports"]
    code = ADDRESS.sub(lambda m: f"{m.group(1)}:{ports[m.group(2)]}", block.code)
    tree = ast.parse(code, filename=f"{block.path}:{block.line}")
    assert _prints_or_asserts(tree), \
        f"{block.path}:{block.line}: an example must print or assert something"
    name = f"{block.path}:{block.line}"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # for tracebacks
    if os.environ.get("PYTHONPATH"):      # examples that start Python see the same package
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
            os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p))
    monkeypatch.chdir(doc_site["work"])
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                "all_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
                "REQUEST_METHOD"):
        monkeypatch.delenv(var, raising=False)
    saved_env = dict(os.environ)
    ft_proxy.reset_environment_cache()
    namespace = {"__name__": "__docs_example__"}
    try:
        exec(compile(tree, name, "exec"), namespace)  # noqa: S102
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        ft_proxy.reset_environment_cache()
        linecache.cache.pop(name, None)
    out = capsys.readouterr().out
    if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"
           for n in ast.walk(tree)):
        assert out.strip(), f"{block.path}:{block.line}: printed nothing"
    sys.stdout.write(out)


def test_examples_are_found() -> None:
    """The extraction sees the examples: every page but the API reference
    has some, and the README's run too."""
    pages = {b.path for b in BLOCKS}
    assert "README.md" in pages
    assert len(BLOCKS) >= 30, len(BLOCKS)


def test_few_blocks_are_not_run() -> None:
    skipped = [f"{b.path}:{b.line}" for b in BLOCKS if b.no_run]
    print(f"{len(skipped)} of {len(BLOCKS)} examples marked {NO_RUN}: {skipped}")
    assert len(skipped) <= MAX_NO_RUN, \
        f"more than {MAX_NO_RUN} examples cannot run offline: {skipped}"
