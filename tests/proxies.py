"""Proxies for the proxy tests, all on 127.0.0.1:

- :func:`start_daemon` runs a real proxy (microsocks, danted, stunnel,
  tinyproxy) as a child process on a free port, optionally in a mount
  namespace of its own whose ``/etc/hosts`` maps names only the proxy knows
  (``unshare -m``, as root); :class:`Daemon` stops it.
- :class:`SocksProxy` is a scripted SOCKS4/4a/5 server on a
  :class:`servers.ScriptedServer`: it records every handshake byte for
  byte-level assertions (``seen``), resolves names from its own table
  (``hosts``) and relays to the target, or runs a hostile ``script``
  instead.
- :func:`relay` copies bytes both ways between two sockets (TLS ones too,
  with ``batch``: the target's bytes gathered and sent in one write, so that
  several inner TLS records share one outer record).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from servers import ServerConn, free_port

__all__ = ["Daemon", "SocksProxy", "exact", "relay", "start_daemon"]


class Daemon:
    """A proxy process started by :func:`start_daemon`."""

    def __init__(self, proc: subprocess.Popen, port: int, log: str) -> None:
        self.proc, self.port, self.log = proc, port, log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def _exe(name: str, package: str) -> str:
    for path in (shutil.which(name), f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if path and os.path.exists(path):
            return path
    raise AssertionError(f"{name} is not installed: apt-get install {package}")


def start_daemon(tmp: str, name: str, package: str, argv: Callable[[int], list],
                 hosts: Optional[dict] = None, ready: float = 10.0) -> Daemon:
    """Start ``name`` (argv(port) is its command line past the program) on a
    free port and wait until the port accepts connections; retried on
    another port if it does not come up. ``hosts``: {name: ip} the process
    alone resolves (a private /etc/hosts in a mount namespace)."""
    exe = _exe(name, package)
    log = os.path.join(tmp, f"{name}.log")
    prefix: list = []
    if hosts:
        hosts_file = os.path.join(tmp, "hosts")
        with open("/etc/hosts", encoding="utf-8") as f:
            base = f.read()
        with open(hosts_file, "w", encoding="utf-8") as f:
            f.write(base + "".join(f"{ip} {n}\n" for n, ip in hosts.items()))
        prefix = [_exe("unshare", "util-linux"), "-m", "sh", "-c",
                  f'mount --bind "{hosts_file}" /etc/hosts && exec "$0" "$@"']
    # not this process's sanitizer runtime (tests/run_sanitized.sh preloads it)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    last = ""
    for _ in range(5):
        port = free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(prefix + [exe] + argv(port), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
        d = Daemon(proc, port, log)
        deadline = time.monotonic() + ready
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return d
            except OSError:
                time.sleep(0.02)
        d.stop()
        last = d.log_text()[-2000:]
    raise AssertionError(f"{name} did not start:\n{last}")


def exact(conn: ServerConn, n: int, timeout: float = 5.0) -> bytes:
    """Exactly n bytes from the client (EOFError if it closes first)."""
    out = b""
    while len(out) < n:
        data = conn.recv_raw(n - len(out), timeout)
        if not data:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += data
    return out


def _until_nul(conn: ServerConn, limit: int = 1024) -> bytes:
    out = b""
    while not out.endswith(b"\0"):
        out += exact(conn, 1)
        if len(out) > limit:
            raise ValueError("no NUL")
    return out[:-1]


def relay(conn: ServerConn, a: Any, b: Any, batch: bool = False) -> None:
    """Copy bytes both ways between a (the client's side) and b until one
    side closes or the server stops. batch: what b sends is gathered until
    it has been quiet for 30 ms, then written to a at once."""
    a.settimeout(5)
    b.settimeout(5)
    for _ in range(200000):
        if conn.stopping:
            return
        ready = [s for s in (a, b) if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not ready:
            ready, _, _ = select.select([a, b], [], [], 0.2)
        for s in ready:
            try:
                data = s.recv(65536)
            except ssl.SSLWantReadError:
                continue
            if not data:
                return
            if s is b and batch:
                while select.select([b], [], [], 0.03)[0]:
                    more = b.recv(65536)
                    if not more:
                        break
                    data += more
            (b if s is a else a).sendall(data)


@dataclass
class Handshake:
    """What a client sent a :class:`SocksProxy` on one connection."""

    version: int = 0
    methods: bytes = b""               # SOCKS5: the methods offered
    auth: Optional[bytes] = None       # SOCKS5: the RFC 1929 message, whole
    atyp: int = 0                      # SOCKS5 address type (1, 3, 4); SOCKS4: 0
    address: Any = None                # str IP, or bytes name
    port: int = 0
    userid: Optional[bytes] = None     # SOCKS4
    raw: bytes = b""


@dataclass
class SocksProxy:
    """A scripted SOCKS server (SOCKS4, 4a and 5, no-auth and RFC 1929).

    ``users``: {user: password} required for SOCKS5 (None: no auth);
    ``hosts``: names it resolves itself (others: refused, reply 4);
    ``script(conn, proxy)``: run instead of the honest handshake (hostile
    proxies). Records each handshake in ``seen``."""

    users: Optional[dict] = None
    hosts: dict = field(default_factory=dict)
    script: Optional[Callable[[ServerConn, "SocksProxy"], Any]] = None
    seen: list = field(default_factory=list)

    def __call__(self, conn: ServerConn) -> None:
        if self.script is not None:
            self.script(conn, self)
            return
        hs = Handshake()
        self.seen.append(hs)
        hs.version = exact(conn, 1)[0]
        if hs.version == 4:
            target = self._socks4(conn, hs)
        elif hs.version == 5:
            target = self._socks5(conn, hs)
        else:
            raise ValueError(f"not SOCKS: {hs.version}")
        if target is None:
            return
        host, port = target
        up = socket.create_connection((host, port), timeout=5)
        try:
            if hs.version == 4:
                conn.send(b"\0\x5a" + port.to_bytes(2, "big") + socket.inet_aton("0.0.0.0"))
            else:
                conn.send(b"\x05\0\0\x01" + socket.inet_aton("127.0.0.1") + b"\x12\x34")
            relay(conn, conn.sock, up)
        finally:
            up.close()

    def _resolve(self, name: str) -> Optional[str]:
        return self.hosts.get(name)

    def _socks4(self, conn: ServerConn, hs: Handshake) -> Any:
        head = exact(conn, 7)
        hs.port = int.from_bytes(head[1:3], "big")
        ip = socket.inet_ntoa(head[3:7])
        hs.userid = _until_nul(conn)
        hs.address = ip
        if ip.startswith("0.0.0.") and ip != "0.0.0.0":
            hs.address = _until_nul(conn)
            ip = self._resolve(hs.address.decode())
        if ip is None:
            conn.send(b"\0\x5b" + bytes(6))
            return None
        return ip, hs.port

    def _socks5(self, conn: ServerConn, hs: Handshake) -> Any:
        hs.methods = exact(conn, exact(conn, 1)[0])
        if self.users is not None:
            if 2 not in hs.methods:
                conn.send(b"\x05\xff")
                return None
            conn.send(b"\x05\x02")
            ver, ulen = exact(conn, 2)
            user = exact(conn, ulen)
            plen = exact(conn, 1)[0]
            password = exact(conn, plen)
            hs.auth = bytes([ver, ulen]) + user + bytes([plen]) + password
            ok = self.users.get(user.decode()) == password.decode()
            conn.send(b"\x01" + (b"\0" if ok else b"\x01"))
            if not ok:
                return None
        else:
            conn.send(b"\x05\x00")
        ver, cmd, _, hs.atyp = exact(conn, 4)
        if hs.atyp == 1:
            hs.address = socket.inet_ntoa(exact(conn, 4))
            ip = hs.address
        elif hs.atyp == 4:
            hs.address = socket.inet_ntop(socket.AF_INET6, exact(conn, 16))
            ip = hs.address
        else:
            hs.address = exact(conn, exact(conn, 1)[0])
            ip = self._resolve(hs.address.decode())
        hs.port = int.from_bytes(exact(conn, 2), "big")
        if ip is None:
            conn.send(b"\x05\x04\0\x01" + bytes(6))   # host unreachable
            return None
        return ip, hs.port
