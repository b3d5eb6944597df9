"""A private nginx on 127.0.0.1 for the benchmarks.

``Nginx`` writes a config into a temporary directory (pid file, logs, temp
paths, certificates and the served files all live there), starts ``nginx`` in
the foreground with one worker, pinned to CPU 1 when the machine has two or
more cores, and stops it on exit (context manager and atexit).

One worker serves several listeners, each on its own free loopback port:

- ``plain``: keep-alive without limit (``keepalive_requests 1000000``);
- ``churn``: nginx closes every 100th response (``keepalive_requests 100``);
- ``idle``: nginx closes a connection idle for 100 ms (``keepalive_timeout 100ms``);
- ``tls``: like ``plain`` over TLS, when a certificate is given.

Served paths: ``/small`` (5 bytes), ``/1k`` (1024 bytes), ``/64k`` (65,536
bytes), ``/16m`` (16 MiB).

``worker_cpu_seconds()`` reads the worker's user + system CPU time from
``/proc/<pid>/stat``, so a benchmark can show when the server, not the
client, is the bottleneck.

``python -m fasttransport.bench.nginx`` starts one by hand and prints its
URLs (it serves for ``--seconds`` seconds, 600 by default, or until Ctrl-C).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

from . import certs

NGINX_CANDIDATES = ("/usr/sbin/nginx", "nginx")
INSTALL_HINT = "nginx not found: install it with `apt-get install nginx-light`"

FILES = {
    "small": b"hello",
    "1k": bytes(range(256)) * 4,
    "64k": bytes(range(256)) * 256,
}
BIG_NAME = "16m"
BIG_SIZE = 16 << 20

#: Listener name -> (keepalive_requests, keepalive_timeout) in nginx syntax.
LISTENERS = {
    "plain": ("1000000", "300s"),
    "churn": ("100", "300s"),
    "idle": ("1000000", "100ms"),
    "tls": ("1000000", "300s"),
}

CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
{user}
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;

events {{
    worker_connections 8192;
    multi_accept on;
}}

http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    open_file_cache max=64 inactive=300s;
    open_file_cache_valid 300s;
    etag off;
    server_tokens off;
    client_body_temp_path {root}/temp/client_body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
{servers}
}}
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port}{ssl} backlog=4096;
        server_name localhost;
        root {root}/html;
        keepalive_requests {requests};
        keepalive_timeout {timeout};
{tls}        location / {{
            try_files $uri =404;
        }}
    }}
"""

TLS = """\
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:ft_bench:1m;
"""


def find_nginx() -> Optional[str]:
    """Path of the nginx binary, or None."""
    for candidate in NGINX_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def can_pin() -> bool:
    """True when there are 2+ CPUs and ``taskset`` to pin processes to them."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (``/proc/<pid>/stat``).

    The resolution is a clock tick (usually 10 ms): measure over long runs.
    """
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields after the command name start at field 3 (state): utime is 14, stime 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


class Nginx:
    """One nginx instance; use ``with Nginx() as server:``.

    ``tls=True`` adds the ``tls`` listener with a certificate made at start
    (``certs.make``; ``cafile`` is then the CA file clients must trust).
    Attributes once started: ``ports`` (listener -> port), ``pid`` (master),
    ``worker_pid``, ``pinned_cpu`` (``"1"`` or None), ``version``.
    Raises RuntimeError when nginx is missing or does not start.
    """

    def __init__(
        self, *, pin_cpu: Optional[str] = "1", tls: bool = False, start_timeout: float = 10.0
    ) -> None:
        self.binary = find_nginx()
        if self.binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.pin_cpu = pin_cpu if pin_cpu and can_pin() else None
        self.tls = tls
        self.start_timeout = start_timeout
        self.root: Optional[str] = None
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.ports: dict[str, int] = {}
        self.worker_pid: Optional[int] = None
        self.version = ""
        self.cafile: Optional[str] = None
        self.cert_tool = ""

    # -- lifecycle

    def start(self) -> Nginx:
        self.root = tempfile.mkdtemp(prefix="ft-bench-nginx-")
        atexit.register(self.stop)
        try:
            self._prepare()
            last_error = ""
            for _ in range(3):  # a free port may be taken before nginx binds it
                names = [n for n in LISTENERS if n != "tls" or self.tls]
                self.ports = {name: free_port() for name in names}
                self._write_config()
                if self._launch():
                    return self
                last_error = self._error_log()
                if "Address already in use" not in last_error:
                    break
            raise RuntimeError(f"nginx failed to start:\n{last_error}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop nginx (TERM, then KILL) and remove the temporary directory."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.worker_pid is not None:
            try:  # a worker normally exits with its master
                os.kill(self.worker_pid, signal.SIGKILL)
            except OSError:
                pass
            self.worker_pid = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use

    def url(self, path: str, listener: str = "plain") -> str:
        """URL of ``path`` on one listener (``plain``, ``churn``, ``idle``, ``tls``)."""
        scheme = "https" if listener == "tls" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[listener]}{path}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    @property
    def pinned_cpu(self) -> Optional[str]:
        return self.pin_cpu

    def worker_cpu_seconds(self) -> float:
        """CPU seconds (user + system) the worker process has used so far."""
        if self.worker_pid is None:
            raise RuntimeError("nginx is not running")
        return proc_cpu_seconds(self.worker_pid)

    @staticmethod
    def body_size(path: str) -> int:
        """Size of the file served at ``path`` (``/small``, ``/1k``, ``/64k``, ``/16m``)."""
        name = path.lstrip("/")
        return BIG_SIZE if name == BIG_NAME else len(FILES[name])

    # -- internals

    def _prepare(self) -> None:
        assert self.root is not None and self.binary is not None
        for sub in ("html", "logs", "temp", "tls"):
            os.makedirs(os.path.join(self.root, sub))
        for name, data in FILES.items():
            with open(os.path.join(self.root, "html", name), "wb") as f:
                f.write(data)
        with open(os.path.join(self.root, "html", BIG_NAME), "wb") as f:
            block = bytes(range(256)) * 4096  # 1 MiB
            f.writelines(block for _ in range(BIG_SIZE // len(block)))
        if self.tls:
            tls_dir = os.path.join(self.root, "tls")
            made = certs.make(tls_dir)
            self.cafile, self.cert_tool = made.cafile, made.tool
            self._cert, self._key = made.certfile, made.keyfile
        # A worker started by root drops to an unprivileged user unless told not
        # to; it then could not read this private directory.
        os.chmod(self.root, 0o755)
        self.version = subprocess.run(
            [self.binary, "-v"], check=False, capture_output=True, text=True, timeout=10
        ).stderr.strip()

    def _write_config(self) -> None:
        assert self.root is not None
        user = "user root root;" if os.geteuid() == 0 else ""
        servers = []
        for name, port in self.ports.items():
            requests, timeout = LISTENERS[name]
            tls = TLS.format(cert=self._cert, key=self._key) if name == "tls" else ""
            servers.append(
                SERVER.format(
                    port=port,
                    ssl=" ssl" if name == "tls" else "",
                    root=self.root,
                    requests=requests,
                    timeout=timeout,
                    tls=tls,
                )
            )
        with open(os.path.join(self.root, "nginx.conf"), "w") as f:
            f.write(CONFIG.format(root=self.root, user=user, servers="".join(servers)))
        open(os.path.join(self.root, "logs", "error.log"), "w").close()

    def _error_log(self) -> str:
        assert self.root is not None
        try:
            with open(os.path.join(self.root, "logs", "error.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def _launch(self) -> bool:
        """Start nginx and wait until every listener accepts; False if it exited."""
        assert self.root is not None and self.binary is not None
        cmd = [
            self.binary,
            "-p",
            self.root + "/",
            "-c",
            os.path.join(self.root, "nginx.conf"),
            "-e",
            os.path.join(self.root, "logs", "error.log"),
        ]
        if self.pin_cpu is not None:
            cmd = ["taskset", "-c", self.pin_cpu, *cmd]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            workers = _children(self.proc.pid)
            if workers and all(self._accepts(port) for port in self.ports.values()):
                self.worker_pid = workers[0]
                return True
            time.sleep(0.02)
        raise RuntimeError(f"nginx did not accept within {self.start_timeout}s")

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False


def main(argv: Optional[list[str]] = None) -> int:
    """Start nginx by hand and print its URLs."""
    parser = argparse.ArgumentParser(
        prog="python -m fasttransport.bench.nginx", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=600, help="serve this long")
    parser.add_argument("--tls", action="store_true", help="add the TLS listener")
    args = parser.parse_args(argv)
    try:
        server = Nginx(tls=args.tls).start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    # SIGTERM stops nginx too (the default action would leave it running).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(
            f"{server.version} pid {server.pid} worker {server.worker_pid}, "
            f"pinned to CPU {server.pinned_cpu}"
        )
        for listener in server.ports:
            for path in ("/small", "/1k", "/64k", "/16m"):
                print(f"  {listener:6s} {server.url(path, listener)}")
        if server.cafile:
            print(f"  CA file: {server.cafile}")
        started = server.worker_cpu_seconds()
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
        print(f"worker CPU: {server.worker_cpu_seconds() - started:.3f} s")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
