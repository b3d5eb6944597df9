"""Real HTTP/1.1 servers on 127.0.0.1 for the interoperability tests.

Every server serves the same routes, so one test can run against each:

- ``GET|HEAD /bytes/N``: ``payload(N)`` with ``Content-Length``, an ``ETag``
  and ``Content-Type: application/octet-stream``; ``304`` (no body) when
  ``If-None-Match`` names the ETag;
- ``GET /stream/N``: ``payload(N)`` without ``Content-Length`` (chunked on
  HTTP/1.1, closed at the end on HTTP/1.0);
- ``GET /text.txt``: ``TEXT`` as ``text/plain``, gzip-encoded when the request
  accepts gzip;
- ``GET /status/204``: ``204 No Content``;
- ``GET /redirect``: ``302`` to ``/bytes/5``; ``POST /redirect307``: ``307``
  to ``/echo``;
- ``POST /echo``: the request body sent back (Content-Length or chunked
  request bodies), answering ``Expect: 100-continue`` where the server does.

Servers:

- :class:`Nginx`: nginx (Debian ``nginx-light``) with five listeners
  (``plain``: keep-alive without a limit; ``keepalive3``: the server closes
  every third response's connection, ``keepalive_requests 3``; ``tls``: a
  certificate from the test CA; ``tls3``: both; ``idle``: a kept connection
  is closed after 300 ms idle). Files are static, gzip is nginx's own,
  ``/stream/`` and ``/echo`` go through ``proxy_pass`` to a private
  ``http.server`` upstream (HTTP/1.0, close-delimited bodies: nginx turns
  them into chunked ones); ``/limited`` is ``/echo`` with
  ``client_max_body_size 1k`` (413 for anything larger).
- :class:`Apache`: Apache httpd (Debian ``apache2``) in the foreground with
  the event MPM, ``MaxKeepAliveRequests 2`` (it counts the requests after the
  first: it closes every third response's connection), ``mod_deflate``,
  ``mod_reflector`` for ``/echo`` and ``mod_proxy_http`` to an
  ``http.server`` upstream for ``/stream/``.
- :func:`start_python`: one Python server per child process, serving the apps
  defined here (:func:`reply` is their shared route table): ``uvicorn`` with
  its ``h11`` or ``httptools`` protocol (ASGI), ``gunicorn`` (sync workers:
  one request per connection) and ``waitress`` (WSGI), ``aiohttp.web`` and
  ``tornado`` (their own gzip), and the standard library's ``http.server``
  (HTTP/1.0: no keep-alive, close-delimited bodies).

Each server runs in its own process group, with its output in a log file in a
private temporary directory; ``stop()`` ends the group (TERM, then KILL) and
removes the directory. Starting waits until every port accepts and fails
with the server's log in the message.

``python realservers.py KIND PORT`` is the child side of
:func:`start_python`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any, Callable, NamedTuple, Optional

from servers import HOST, free_port

#: Seconds a server has to accept on all its ports.
START_TIMEOUT = 30.0
#: Sizes the static servers have files for (``/bytes/N``).
SIZES = (5, 1000, 65536, 4 << 20)
#: Size of the pieces of a streamed (``/stream/N``) body.
PIECE = 65536
#: Largest N for ``/bytes/N`` and ``/stream/N`` on the Python servers.
MAX_N = 64 << 20


def payload(n: int) -> bytes:
    """The ``n`` bytes served at ``/bytes/n``: a 251-byte cycle, so that a
    shifted, lost or repeated block never compares equal."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


#: The compressible text served at ``/text.txt`` (about 400 KB).
TEXT = b"".join(b"line %06d of the interoperability text\n" % i for i in range(10000))


def etag(n: int) -> str:
    return f'"bytes-{n}"'


# ---- the route table of the Python apps -----------------------------------


class Reply(NamedTuple):
    """A response: ``length`` False means "no Content-Length" (the server
    picks chunked or close-delimited framing)."""

    status: int
    headers: list[tuple[str, str]]
    pieces: list[bytes]
    length: bool = True


def _size(text: str) -> Optional[int]:
    return int(text) if text.isdigit() and int(text) <= MAX_N else None


def reply(method: str, path: str, body: bytes, *, accept_encoding: str = "",
          if_none_match: str = "", gzip_here: bool = True) -> Reply:
    """The answer to one request (module docstring). ``gzip_here=False``
    leaves ``/text.txt`` uncompressed for a server that gzips by itself.
    A HEAD gets the GET's body: the server must drop it."""
    octets = [("Content-Type", "application/octet-stream")]
    head = method in ("GET", "HEAD")
    kind, _, arg = path.lstrip("/").partition("/")
    n = _size(arg)
    if kind == "bytes" and head and n is not None:
        tag = [("ETag", etag(n))]
        if if_none_match == etag(n):
            return Reply(304, tag, [])
        return Reply(200, octets + tag + [("Content-Length", str(n))], [payload(n)])
    if kind == "stream" and head and n is not None:
        data = payload(n)
        return Reply(200, octets, [data[i:i + PIECE] for i in range(0, n, PIECE)], False)
    if path == "/text.txt" and head:
        headers = [("Content-Type", "text/plain"), ("Vary", "Accept-Encoding")]
        text = TEXT
        if gzip_here and "gzip" in accept_encoding:
            text = gzip.compress(TEXT)
            headers.append(("Content-Encoding", "gzip"))
        return Reply(200, headers + [("Content-Length", str(len(text)))], [text])
    if path == "/status/204":
        return Reply(204, [], [])
    if path == "/redirect":
        return Reply(302, [("Location", "/bytes/5"), ("Content-Length", "0")], [])
    if path == "/redirect307":
        return Reply(307, [("Location", "/echo"), ("Content-Length", "0")], [])
    if path == "/echo" and method == "POST":
        return Reply(200, octets + [("Content-Length", str(len(body)))], [body])
    return Reply(404, [("Content-Type", "text/plain"), ("Content-Length", "10")],
                 [b"not found\n"])


# ---- the apps, one per server interface (run in the child process) --------

REASONS = {200: "OK", 204: "No Content", 302: "Found", 304: "Not Modified",
           307: "Temporary Redirect", 404: "Not Found"}


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The routes as a WSGI application (gunicorn, waitress)."""
    body = environ["wsgi.input"].read() if environ["REQUEST_METHOD"] == "POST" else b""
    r = reply(environ["REQUEST_METHOD"], environ["PATH_INFO"], body,
              accept_encoding=environ.get("HTTP_ACCEPT_ENCODING", ""),
              if_none_match=environ.get("HTTP_IF_NONE_MATCH", ""))
    start_response(f"{r.status} {REASONS[r.status]}", r.headers)
    if environ["REQUEST_METHOD"] == "HEAD":
        return []   # waitress sends whatever the app gives, even for HEAD
    return iter(r.pieces)   # an iterator: the server cannot know the length


async def asgi_app(scope: dict[str, Any], receive: Callable[..., Any],
                   send: Callable[..., Any]) -> None:
    """The routes as an ASGI application (uvicorn)."""
    assert scope["type"] == "http"
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    body = b""
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
    r = reply(scope["method"], scope["path"], body,
              accept_encoding=headers.get("accept-encoding", ""),
              if_none_match=headers.get("if-none-match", ""))
    await send({"type": "http.response.start", "status": r.status,
                "headers": [(k.encode(), v.encode()) for k, v in r.headers]})
    for piece in r.pieces:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def aiohttp_app() -> Any:
    """The routes on aiohttp.web (its own gzip for ``/text.txt``)."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        r = reply(request.method, request.path, body,
                  accept_encoding=request.headers.get("Accept-Encoding", ""),
                  if_none_match=request.headers.get("If-None-Match", ""), gzip_here=False)
        headers = [(k, v) for k, v in r.headers if k != "Content-Length"]
        if not r.length:
            stream = web.StreamResponse(status=r.status, headers=headers)
            await stream.prepare(request)
            for piece in r.pieces:
                await stream.write(piece)
            await stream.write_eof()
            return stream
        resp = web.Response(status=r.status, headers=headers, body=b"".join(r.pieces))
        if request.path == "/text.txt":
            resp.enable_compression()
        return resp

    app = web.Application(client_max_size=MAX_N)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def tornado_app() -> Any:
    """The routes on tornado.web (``compress_response``: its own gzip)."""
    import tornado.web

    class Handler(tornado.web.RequestHandler):
        async def _any(self) -> None:
            r = reply(self.request.method or "GET", self.request.path, self.request.body,
                      accept_encoding=self.request.headers.get("Accept-Encoding", ""),
                      if_none_match=self.request.headers.get("If-None-Match", ""),
                      gzip_here=False)
            self.set_status(r.status)
            self.clear_header("Content-Type")
            for name, value in r.headers:
                if name != "Content-Length" or self.request.method == "HEAD":
                    self.set_header(name, value)
            for piece in r.pieces:
                if self.request.method != "HEAD":
                    self.write(piece)
                if not r.length:
                    await self.flush()

        get = head = post = _any

    return tornado.web.Application([(r"/.*", Handler)], compress_response=True)


def _read_chunked(rfile: Any) -> bytes:
    """A chunked request body (http.server leaves it to the handler)."""
    out = []
    while True:
        size = int(rfile.readline().split(b";")[0], 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(out)
        out.append(rfile.read(size))
        rfile.readline()


def stdlib_handler() -> Any:
    """The routes as an http.server handler: HTTP/1.0 (its default), so the
    server closes every connection; ``/stream/`` bodies end at the close."""
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = b""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body = _read_chunked(self.rfile)
            elif self.headers.get("Content-Length"):
                body = self.rfile.read(int(self.headers["Content-Length"]))
            r = reply(self.command, self.path.split("?")[0], body,
                      accept_encoding=self.headers.get("Accept-Encoding", ""),
                      if_none_match=self.headers.get("If-None-Match", ""))
            self.send_response(r.status)
            for name, value in r.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                for piece in r.pieces:
                    self.wfile.write(piece)

        do_GET = do_HEAD = do_POST = _any

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            pass

    return Handler


def serve(kind: str, port: int) -> None:
    """Run server ``kind`` on ``127.0.0.1:port`` until killed (the child side)."""
    if kind in ("uvicorn-h11", "uvicorn-httptools"):
        import uvicorn

        uvicorn.run(asgi_app, host=HOST, port=port, http=kind.split("-")[1],
                    log_level="warning", lifespan="off", timeout_keep_alive=60)
    elif kind == "gunicorn":
        from gunicorn.app.base import BaseApplication

        class Gunicorn(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                for key, value in (("bind", f"{HOST}:{port}"), ("workers", 2),
                                   ("worker_class", "sync"), ("loglevel", "warning")):
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return wsgi_app

        Gunicorn().run()
    elif kind == "waitress":
        import waitress

        waitress.serve(wsgi_app, host=HOST, port=port, threads=8, _quiet=True)
    elif kind == "aiohttp":
        from aiohttp import web

        web.run_app(aiohttp_app(), host=HOST, port=port, print=None, access_log=None,
                    keepalive_timeout=60)
    elif kind == "tornado":
        import asyncio

        async def main() -> None:
            tornado_app().listen(port, HOST, max_body_size=MAX_N)
            await asyncio.Event().wait()

        asyncio.run(main())
    elif kind == "http.server":
        from http.server import ThreadingHTTPServer

        # a backlog of 128, not socketserver's 5: connections beyond the
        # backlog wait for SYN retransmissions (seconds) or are reset
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer((HOST, port), stdlib_handler())
        server.daemon_threads = True
        server.serve_forever()
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


# ---- the parent side: processes that always stop --------------------------


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process group with its own temporary directory.

    ``command(ports)`` gives the argv for the chosen ports (``names``, one free
    port each); a start whose log says the address was taken is tried again
    with new ports. ``stop()`` is idempotent and always removes the directory.
    """

    def __init__(self, name: str, names: Sequence[str],
                 command: Callable[[dict[str, int]], list[str]]) -> None:
        self.name = name
        self.names = list(names)
        self.command = command
        self.root: Optional[str] = tempfile.mkdtemp(prefix=f"ft-interop-{name}-")
        self.log_path = os.path.join(self.root, "server.log")
        self.ports: dict[str, int] = {}
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, *, extra_log: Optional[str] = None) -> ServerProcess:
        """Start and wait for every port; on failure stop and raise RuntimeError
        with the log (and ``extra_log``, a server's own error log file)."""
        try:
            for _ in range(3):
                self.ports = {n: free_port() for n in self.names}
                if self._launch():
                    return self
                log = self.log(extra_log)
                if "in use" not in log:
                    break
            raise RuntimeError(f"{self.name} did not start: exit {self._exit_code}\n{log}")
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> bool:
        cmd = self.command(self.ports)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.root, env=_server_env())
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._exit_code = self.proc.poll()
            if self._exit_code is not None:
                self.proc = None
                return False
            if all(_accepts(p) for p in self.ports.values()):
                return True
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not accept on {self.ports} within "
                           f"{START_TIMEOUT}s\n{self.log()}")

    _exit_code: Optional[int] = None

    def base(self, listener: str = "http") -> str:
        """``scheme://127.0.0.1:port`` of one listener (``tls*``: https)."""
        scheme = "https" if listener.startswith("tls") else "http"
        return f"{scheme}://{HOST}:{self.ports[listener]}"

    def log(self, extra: Optional[str] = None) -> str:
        """The tail of the server's output (and of ``extra``, another log file)."""
        text = ""
        for path in (self.log_path, extra):
            if path:
                try:
                    with open(path, errors="replace") as f:
                        text += f"--- {os.path.basename(path)}\n{f.read()[-4000:]}\n"
                except OSError:
                    pass
        return text

    def stop(self) -> None:
        """TERM the process group, KILL it after 5 s, remove the directory."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)   # workers left over, if any
            proc.wait(timeout=5)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


#: Left out of a server's environment: the servers are not what a sanitized
#: test run (tests/run_sanitized.sh) checks, and its runtime preloaded into
#: them would only add noise to its reports.
SANITIZER_VARS = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS")


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SANITIZER_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def start_python(kind: str) -> ServerProcess:
    """Start one of the Python servers (:func:`serve`) in its own process."""
    me = os.path.abspath(__file__)
    return ServerProcess(kind, ["http"],
                         lambda ports: [sys.executable, me, kind, str(ports["http"])]).start()


# ---- nginx and Apache httpd -------------------------------------------------


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def _docroot(root: str) -> str:
    """Static files for the routes; readable by a server's unprivileged user."""
    html = os.path.join(root, "html")
    os.makedirs(os.path.join(html, "bytes"))
    for n in SIZES:
        _write(os.path.join(html, "bytes", str(n)), payload(n))
    _write(os.path.join(html, "text.txt"), TEXT)
    for d in (root, html, os.path.join(html, "bytes")):
        os.chmod(d, 0o755)
    return html


def _find(package: str, *candidates: str) -> str:
    for c in candidates:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{candidates[-1]} is not installed: apt-get install {package}")


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    types {{ text/plain txt; }}
    sendfile on;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 1;
    client_max_body_size 64m;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    upstream app {{ server {host}:{upstream}; }}
{servers}
}}
"""

NGINX_SERVER = """
    server {{
        listen {host}:{port}{ssl};
        root {root}/html;
        keepalive_requests {keepalive_requests};
        keepalive_timeout {keepalive_timeout};
{tls}        location / {{ try_files $uri =404; }}
        location = /status/204 {{ return 204; }}
        location = /redirect {{ return 302 /bytes/5; }}
        location = /redirect307 {{ return 307 /echo; }}
        location = /limited {{ client_max_body_size 1k; proxy_pass http://app/echo; }}
        location /stream/ {{ proxy_pass http://app; }}
        location = /echo {{ proxy_pass http://app; }}
    }}
"""


class _WebServer:
    """A Debian web server with a private ``http.server`` upstream; subclasses
    give the binary, the listener names, the files and the command."""

    NAME = ""
    PACKAGE = ""                      # the Debian package that has it
    BINARIES: tuple[str, ...] = ()
    LISTENERS: dict[str, Any] = {}

    def start(self) -> _WebServer:
        binary = _find(self.PACKAGE, *self.BINARIES)
        self.upstream = start_python("http.server")
        self.process = ServerProcess(self.NAME, list(self.LISTENERS), self._command)
        self.root = self.process.root or ""
        try:
            _docroot(self.root)
            self._prepare()
            self._binary = binary
            self.process.start(extra_log=os.path.join(self.root, "error.log"))
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        """Files beyond the document root."""

    def _command(self, ports: dict[str, int]) -> list[str]:
        raise NotImplementedError

    def _write_conf(self, name: str, text: str) -> str:
        path = os.path.join(self.root, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def base(self, listener: str = "http") -> str:
        return self.process.base(listener)

    def stop(self) -> None:
        for part in ("process", "upstream"):
            proc = getattr(self, part, None)
            if proc is not None:
                proc.stop()


class Nginx(_WebServer):
    """nginx with the listeners of :attr:`LISTENERS` (module docstring);
    ``cert_pem`` holds the TLS certificate chain and key."""

    NAME = "nginx"
    PACKAGE = "nginx-light"
    BINARIES = ("/usr/sbin/nginx", "nginx")
    #: listener -> (keepalive_requests, keepalive_timeout)
    LISTENERS = {"plain": (1000, "60s"), "keepalive3": (3, "60s"), "tls": (1000, "60s"),
                 "tls3": (3, "60s"), "idle": (1000, "300ms")}

    def __init__(self, cert_pem: bytes) -> None:
        self.cert_pem = cert_pem

    def _prepare(self) -> None:
        os.makedirs(os.path.join(self.root, "tmp"))
        _write(os.path.join(self.root, "cert.pem"), self.cert_pem)

    def _command(self, ports: dict[str, int]) -> list[str]:
        root = self.root
        tls = (f"        ssl_certificate {root}/cert.pem;\n"
               f"        ssl_certificate_key {root}/cert.pem;\n")
        servers = []
        for name, port in ports.items():
            requests, timeout = self.LISTENERS[name]
            secure = name.startswith("tls")
            servers.append(NGINX_SERVER.format(
                host=HOST, port=port, root=root, ssl=" ssl" if secure else "",
                keepalive_requests=requests, keepalive_timeout=timeout,
                tls=tls if secure else ""))
        # a worker started by root would switch to nobody, who cannot write tmp/
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = self._write_conf("nginx.conf", NGINX_CONF.format(
            user=user, root=root, host=HOST, servers="".join(servers),
            upstream=self.upstream.ports["http"]))
        return [self._binary, "-p", root + "/", "-c", conf,
                "-e", os.path.join(root, "error.log")]


APACHE_CONF = """\
ServerRoot {root}
DefaultRuntimeDir {root}
PidFile {root}/httpd.pid
ErrorLog {root}/error.log
LogLevel warn
ServerName {host}
{user}
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule filter_module {mods}/mod_filter.so
LoadModule deflate_module {mods}/mod_deflate.so
LoadModule alias_module {mods}/mod_alias.so
LoadModule reflector_module {mods}/mod_reflector.so
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_http_module {mods}/mod_proxy_http.so
Listen {host}:{port}
StartServers 1
ServerLimit 1
ThreadsPerChild 32
MaxRequestWorkers 32
KeepAlive On
MaxKeepAliveRequests 2
KeepAliveTimeout 60
TypesConfig {root}/mime.types
AddType text/plain .txt
DocumentRoot {root}/html
<Directory {root}/html>
    Require all granted
</Directory>
<Directory {root}/html/bytes>
    ForceType application/octet-stream
</Directory>
AddOutputFilterByType DEFLATE text/plain
Redirect 204 /status/204
RedirectMatch 302 ^/redirect$ /bytes/5
RedirectMatch 307 ^/redirect307$ /echo
<Location /echo>
    SetHandler reflector
</Location>
ProxyPass /stream/ http://{host}:{upstream}/stream/
"""


class Apache(_WebServer):
    """Apache httpd, event MPM, one listener (module docstring)."""

    NAME = "apache2"
    PACKAGE = "apache2"
    BINARIES = ("/usr/sbin/apache2", "apache2")
    LISTENERS = {"http": 3}

    def _prepare(self) -> None:
        _write(os.path.join(self.root, "mime.types"), b"")   # types: the AddType lines

    def _command(self, ports: dict[str, int]) -> list[str]:
        # as root, httpd's threads must run as another user (it refuses root)
        user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
        conf = self._write_conf("httpd.conf", APACHE_CONF.format(
            root=self.root, host=HOST, port=ports["http"], user=user,
            mods="/usr/lib/apache2/modules", upstream=self.upstream.ports["http"]))
        return [self._binary, "-DFOREGROUND", "-f", conf]


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
