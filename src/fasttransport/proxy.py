"""Proxy selection (Go's http.ProxyFromEnvironment and x/net's httpproxy),
pure Python: which proxy, if any, a request goes through.

- ``HTTPS_PROXY`` is used for https URLs and ``HTTP_PROXY`` for http URLs;
  ``ALL_PROXY`` (curl's) for either when its own variable is unset or
  empty. When both the upper- and the lower-case name are set, the
  lower-case one wins (curl, requests and Go's documentation agree on that).
- A value without a scheme gets ``http://``. Proxy kinds (default port):
  ``http://`` (80) and ``https://`` (443: TLS to the proxy, verified with
  the transport's verify/CA settings, then absolute-form requests for http
  targets and a CONNECT tunnel with the target's own TLS inside it for
  https targets); ``socks4://`` (the client resolves the target, IPv4
  only), ``socks4a://`` (the proxy resolves the name), ``socks5://`` (the
  client resolves the target, as curl does) and ``socks5h://`` (the proxy
  resolves the name), all on port 1080. ``user:password@`` in the URL is
  sent as ``Proxy-Authorization: Basic`` to http(s) proxies, as RFC 1929
  username/password to SOCKS5 proxies and as the user id (the password
  unused) to SOCKS4 proxies. A value that is not a URL, or of another
  scheme, is ignored, as in Go.
- The environment is read once per process (``environment_config``);
  ``reset_environment_cache()`` makes the next Transport read it again.
- ``localhost`` and loopback addresses are never proxied.
- ``NO_PROXY`` is a comma-separated list: ``*`` (nothing is proxied),
  ``example.com`` (that host and its subdomains), ``.example.com`` or
  ``*.example.com`` (subdomains only), IP addresses, CIDR ranges, each
  optionally with ``:port``.
- In a CGI program (``REQUEST_METHOD`` set) ``HTTP_PROXY`` may come from the
  client's ``Proxy:`` header, so http requests refuse it with Go's error
  ``refusing to use HTTP_PROXY value in CGI environment; see
  golang.org/s/cgihttpproxy`` (``ALL_PROXY`` is no header's name: used).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import threading
from typing import List, Mapping, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

__all__ = ["ProxyURL", "ProxyConfig", "environment_config", "reset_environment_cache",
           "parse_proxy_url", "CGI_REFUSAL"]

CGI_REFUSAL = ("refusing to use HTTP_PROXY value in CGI environment; "
               "see golang.org/s/cgihttpproxy")

#: Default ports of proxy schemes (Go's canonicalAddr portMap).
_PROXY_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks4a": 1080, "socks5": 1080,
                "socks5h": 1080}
_TARGET_PORTS = {"http": 80, "https": 443}
_CTL = frozenset(chr(c) for c in range(0x20)) | {"\x7f"}

_IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class ProxyURL:
    """A parsed proxy URL: ``scheme`` (lower case), ``host`` (no brackets),
    ``port`` (the scheme's default when absent), ``username`` and
    ``password`` (percent-decoded, None when absent), ``url`` (as given) and
    ``redacted`` (the password as ``***``)."""

    __slots__ = ("scheme", "host", "port", "username", "password", "url", "redacted")

    def __init__(self, scheme: str, host: str, port: int, username: Optional[str],
                 password: Optional[str], url: str, redacted: str) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.username, self.password = username, password
        self.url, self.redacted = url, redacted

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def authorization(self) -> Optional[str]:
        """``Basic base64(user:password)`` from the userinfo (Go's
        connectMethod.proxyAuth), or None without userinfo."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProxyURL) and self.url == other.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __repr__(self) -> str:
        return f"<ProxyURL {self.redacted}>"


def parse_proxy_url(value: str) -> ProxyURL:
    """Parse a proxy address (Go's httpproxy parseProxy): a URL, or
    ``host:port`` to which ``http://`` is prepended. Raises ValueError
    ``invalid proxy address "…": …`` (the password shown as ***) for control
    characters, an unknown scheme, no host, or a bad port."""
    if any(c in _CTL for c in value):
        raise ValueError(f'invalid proxy address "{_redact(value)}": '
                         "net/url: invalid control character in URL")
    raw = value.strip()
    parts = urlsplit(raw)
    if not parts.scheme or not parts.netloc:
        parts = urlsplit("http://" + raw)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
        host = parts.hostname
    except ValueError as e:
        raise ValueError(f'invalid proxy address "{_redact(value)}": {e}') from None
    if scheme not in _PROXY_PORTS:
        raise ValueError(f'invalid proxy address "{_redact(value)}": '
                         f'unsupported proxy scheme "{scheme}"')
    if not host:
        raise ValueError(f'invalid proxy address "{_redact(value)}": no host')
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(scheme, host, port if port is not None else _PROXY_PORTS[scheme],
                    username, password, raw, _redact(raw))


def _redact(url: str) -> str:
    head, sep, rest = url.partition("//")
    if not sep:
        head, rest = "", url
    userinfo, at, hostpart = rest.partition("@")
    if not at or "/" in userinfo:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{head}{sep}{user}{':***' if colon else ''}@{hostpart}"


def _split_host_port(entry: str) -> Tuple[str, str]:
    """Go's net.SplitHostPort for a NO_PROXY entry: (host, port) or
    (entry, "") when it has no port."""
    if entry.startswith("["):
        end = entry.find("]")
        if end > 0 and entry[end + 1:end + 2] == ":":
            return entry[1:end], entry[end + 2:]
        return entry.strip("[]"), ""
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, ""


def _parse_ip(host: str) -> Optional[_IP]:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(ip: _IP) -> bool:
    if ip.is_loopback:
        return True
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped is not None and mapped.is_loopback


class ProxyConfig:
    """Which proxy a request goes through (Go's httpproxy.Config).

    ``http_proxy`` / ``https_proxy``: proxy addresses ("" for none; invalid
    ones are ignored, as in Go); ``all_proxy``: for the scheme whose own
    address is "" (curl's ALL_PROXY); ``no_proxy``: the exclusion list;
    ``cgi``: refuse ``http_proxy`` (not ``all_proxy``) for http requests."""

    def __init__(self, http_proxy: str = "", https_proxy: str = "", no_proxy: str = "",
                 cgi: bool = False, all_proxy: str = "") -> None:
        self.http_proxy = _parse_or_none(http_proxy)
        self.https_proxy = _parse_or_none(https_proxy)
        fallback = _parse_or_none(all_proxy)
        self.cgi = cgi and self.http_proxy is not None
        if self.http_proxy is None:
            self.http_proxy = fallback
        if self.https_proxy is None:
            self.https_proxy = fallback
        self._all = False
        self._ips: List[Tuple[_IP, str]] = []
        self._nets: List[Union[ipaddress.IPv4Network, ipaddress.IPv6Network]] = []
        self._domains: List[Tuple[str, str, bool]] = []
        for entry in no_proxy.split(","):
            self._add_no_proxy(entry.strip().lower())

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "ProxyConfig":
        """Read HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY (lower-case
        names win when both are set and non-empty) and REQUEST_METHOD."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name.lower()) or env.get(name) or ""

        return cls(get("HTTP_PROXY"), get("HTTPS_PROXY"), get("NO_PROXY"),
                   bool(env.get("REQUEST_METHOD")), get("ALL_PROXY"))

    @property
    def enabled(self) -> bool:
        """Is any proxy configured at all?"""
        return self.http_proxy is not None or self.https_proxy is not None

    def _add_no_proxy(self, p: str) -> None:
        if not p:
            return
        if p == "*":
            self._all = True
            return
        if "/" in p:
            try:
                self._nets.append(ipaddress.ip_network(p, strict=False))
            except ValueError:
                pass
            return
        host, port = _split_host_port(p)
        if not host:
            return
        ip = _parse_ip(host)
        if ip is not None:
            self._ips.append((ip, port))
            return
        if host.startswith("*."):
            host = host[1:]
        match_host = not host.startswith(".")
        if match_host:
            host = "." + host
        if not host.isascii():
            try:
                host = "." + host[1:].encode("idna").decode("ascii")
            except UnicodeError:
                pass
        self._domains.append((host, port, match_host))

    def use_proxy(self, host: str, port: int) -> bool:
        """Go's useProxy: False for localhost, loopback addresses and targets
        NO_PROXY matches."""
        host = host.strip().lower()
        if not host:
            return True
        if host == "localhost":
            return False
        ip = _parse_ip(host)
        if ip is not None and _is_loopback(ip):
            return False
        if self._all:
            return False
        sport = str(port)
        if ip is not None:
            for pip, pport in self._ips:
                if pip == ip and (not pport or pport == sport):
                    return False
            for net in self._nets:
                if ip.version == net.version and ip in net:
                    return False
            return True
        for suffix, pport, match_host in self._domains:
            if host.endswith(suffix) or (match_host and host == suffix[1:]):
                if not pport or pport == sport:
                    return False
        return True

    def proxy_for(self, scheme: str, host: str, port: Optional[int] = None) -> Optional[ProxyURL]:
        """The proxy for a request to scheme://host:port, or None to go
        direct. Raises ValueError with Go's CGI text when an http request
        would use HTTP_PROXY in a CGI environment."""
        if scheme == "https":
            proxy = self.https_proxy
        elif scheme == "http":
            proxy = self.http_proxy
            if proxy is not None and self.cgi:
                raise ValueError(CGI_REFUSAL)
        else:
            return None
        if proxy is None:
            return None
        if not self.use_proxy(host, port if port is not None else _TARGET_PORTS[scheme]):
            return None
        return proxy


class FixedProxy:
    """One proxy for every request (Go's http.ProxyURL): no NO_PROXY, no
    loopback exception."""

    enabled = True

    def __init__(self, proxy: ProxyURL) -> None:
        self.proxy = proxy

    def proxy_for(self, scheme: str, host: str, port: Optional[int] = None) -> Optional[ProxyURL]:
        return self.proxy


def _parse_or_none(value: str) -> Optional[ProxyURL]:
    if not value:
        return None
    try:
        return parse_proxy_url(value)
    except ValueError:
        return None


_env_config: Optional[ProxyConfig] = None
_env_lock = threading.Lock()


def environment_config() -> ProxyConfig:
    """The process's proxy configuration from the environment, read at the
    first call and cached (Go's envProxyFunc)."""
    global _env_config
    cfg = _env_config
    if cfg is None:
        with _env_lock:
            if _env_config is None:
                _env_config = ProxyConfig.from_environment()
            cfg = _env_config
    return cfg


def reset_environment_cache() -> None:
    """Forget the cached environment configuration: Transports created
    afterwards read the environment again (for tests and long-running
    programs that change it)."""
    global _env_config
    with _env_lock:
        _env_config = None
