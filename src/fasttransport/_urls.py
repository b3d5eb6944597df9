"""Request URLs: parsing (Go's url.Parse and canonicalAddr rules and error
texts, a bounded cache), query parameters, and what the transport needs of
a URL (_URL: pool key, host, port, request target, redacted form)."""

from __future__ import annotations

import json as _json
import re
import urllib.parse
from functools import lru_cache
from typing import Any, List, Mapping, Optional, Tuple
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from .errors import InvalidRequest

_DEFAULT_PORTS = {"http": 80, "https": 443}

_clear_cache: Any = getattr(urllib.parse, "clear_cache", None)   # 3.9 and 3.10

_cached_split: Any = urlsplit
if hasattr(_cached_split, "__wrapped__"):
    # 3.11+: urlsplit is an lru_cache (its last 128 results) around this
    _urlsplit_uncached: Any = _cached_split.__wrapped__
else:
    def _urlsplit_uncached(url: str) -> SplitResult:
        """3.9 and 3.10 keep urlsplit's last 20 results in a dict that no
        call can bypass: split, then empty it."""
        try:
            return urlsplit(url)
        finally:
            _clear_cache()

#: URLs up to this long are parsed once and kept (2,048 of them at most, so
#: the caches hold a few MiB at worst); longer ones are parsed each time.
_CACHED_URL_MAX = 2048
_URL_CTL = re.compile(r"[\x00-\x1f\x7f]")
#: The common URL, taken apart without urlsplit: http(s) in lower case, a
#: host name or IPv4 address without userinfo, an optional port, and from
#: the path on only characters that neither urlsplit nor quote() changes
#: (RFC 3986's unreserved, sub-delims, ":", "@", "/", "?", "#" and "%").
#: Anything else (userinfo, an IPv6 literal, a space, non-ASCII, a port out
#: of range...) takes the general path below, which gives the same result.
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9._-]+)(?::([0-9]{1,5}))?"
                        r"([/?#][A-Za-z0-9\-._~!$&'()*+,;=:@/?#%]*)?")
_URL_PW = re.compile(r"(//[^/?#@:]*:)[^/?#@]*@")


class _URL:
    """A parsed request URL: what the transport needs, computed once per
    distinct URL string."""

    __slots__ = ("raw", "scheme", "host", "port", "target", "host_header", "key",
                 "host_bytes", "redacted", "userinfo")

    #: (user, password or None) from the URL, or None
    userinfo: Optional[Tuple[str, Optional[str]]]

    def __init__(self, raw: str) -> None:
        if not self._parse_plain(raw):
            self._parse(raw)

    def _parse_plain(self, raw: str) -> bool:
        """The common URL (_PLAIN_URL) at a fifth of _parse's cost; False
        for any other, which _parse takes."""
        m = _PLAIN_URL.fullmatch(raw)
        if m is None:
            return False
        scheme, host, port_s, rest = m.groups()
        port = int(port_s) if port_s is not None else _DEFAULT_PORTS[scheme]
        if port > 65535:
            return False
        path, _, query = (rest or "").partition("#")[0].partition("?")
        self.raw = self.redacted = raw
        self.scheme, self.host, self.port = scheme, host, port
        self.host_header = host if port_s is None else f"{host}:{port}"
        self.target = (path or "/") + ("?" + query if query else "")
        self.key = f"{scheme}://{host}:{port}".encode("ascii")
        self.host_bytes = host.encode("ascii")
        self.userinfo = None
        return True

    def _parse(self, raw: str) -> None:
        """Any URL, through urlsplit, with Go's checks and error texts."""
        if _URL_CTL.search(raw):
            # urlsplit would strip CR, LF and TAB silently; Go refuses them
            shown = _json.dumps(_URL_PW.sub(r"\1***@", raw))
            raise InvalidRequest(f"parse {shown}: net/url: invalid control character in URL",
                                 url=_URL_PW.sub(r"\1***@", raw))
        try:
            # the standard library keeps its last results (128 on 3.11+,
            # 20 before): a long URL is split without that cache
            parts: SplitResult = (urlsplit if len(raw) <= _CACHED_URL_MAX
                                  else _urlsplit_uncached)(raw)
            port = parts.port
        except ValueError:
            raise _url_error(raw) from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            what = parts.scheme if parts.scheme else ""
            raise InvalidRequest(f'unsupported protocol scheme "{what}"', url=_redact_url(raw))
        # The host as written: Go's canonicalAddr keeps ASCII case (the pool
        # key of "Example.com" differs from "example.com"); non-ASCII names go
        # through IDNA (Go: idna.ToASCII).
        hostport_raw = parts.netloc.rpartition("@")[2]
        if hostport_raw.startswith("["):
            host = hostport_raw[1:].partition("]")[0]
        else:
            host = hostport_raw.partition(":")[0]
        if not host:
            raise InvalidRequest("http: no Host in request URL", url=_redact_url(raw))
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as e:
                shown = _redact_url(raw)
                raise InvalidRequest(f'parse "{shown}": invalid host name "{host}" ({e})',
                                     url=shown) from None
        bad = next((c for c in host if c in " \r\n\t\x00/\\[]"), None)
        if bad is not None:
            shown = _redact_url(raw)
            raise InvalidRequest(f'parse "{shown}": invalid character "{bad}" in host name',
                                 url=shown)
        self.raw = raw
        self.scheme = scheme
        self.host = host
        default_port = _DEFAULT_PORTS[scheme]
        self.port = port if port is not None else default_port
        hostport = f"[{host}]" if ":" in host else host
        self.host_header = hostport if self.port == default_port and port is None else (
            f"{hostport}:{self.port}")
        path = parts.path or "/"
        path = quote(path, safe="/%:@!$&'()*+,;=-._~")
        self.target = path + ("?" + quote(parts.query, safe="=&%:@!$'()*+,;/?-._~")
                              if parts.query else "")
        self.key = f"{scheme}://{hostport}:{self.port}".encode("ascii")
        self.host_bytes = host.encode("ascii")
        self.userinfo = None
        if parts.username is not None or parts.password is not None:
            self.userinfo = (parts.username or "", parts.password)
            shown = parts.username or ""
            if parts.password is not None:
                shown += ":***"
            netloc = f"{shown}@{parts.netloc.rpartition('@')[2]}"
            self.redacted = parts._replace(netloc=netloc).geturl()
        else:
            self.redacted = raw


def _redact_url(raw: str) -> str:
    """A URL for an error: the password of its userinfo as ***."""
    return _URL_PW.sub(r"\1***@", raw)


def _url_error(raw: str) -> InvalidRequest:
    """The error for a URL the standard library cannot split, in Go's words
    (url.Parse's ``parse "<url>": <cause>``; a port out of range passes
    Go's parser and fails at the dial, as here)."""
    shown = _redact_url(raw)
    netloc = raw.partition("//")[2]
    for sep in "/?#":
        netloc = netloc.partition(sep)[0]
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("[") and "]" not in hostport:
        cause = "missing ']' in host"
    elif hostport.startswith("["):
        literal, _, rest = hostport[1:].partition("]")
        if rest and not rest.startswith(":"):
            cause = f'invalid port "{rest}" after host'
        elif rest[1:] and not rest[1:].isdigit():
            cause = f'invalid port "{rest}" after host'
        elif rest[1:]:
            return InvalidRequest(f"dial tcp: address {rest[1:]}: invalid port", url=shown)
        else:
            cause = f'invalid IP literal "[{literal}]" in host'
    elif "[" in hostport or "]" in hostport:
        bad = "[" if "[" in hostport else "]"
        cause = f'invalid character "{bad}" in host name'
    else:
        port = hostport.rpartition(":")[2]
        if port.isdigit():
            return InvalidRequest(f"dial tcp: address {port}: invalid port", url=shown)
        cause = f'invalid port ":{port}" after host'
    return InvalidRequest(f'parse "{shown}": {cause}', url=shown)


def _forget_long_url(url: str) -> None:
    """After a URL too long to keep went through the standard library
    (urljoin, the cookie jar), empty its urlsplit cache (the last 128
    results on 3.11+, 20 before, whatever their size)."""
    if len(url) > _CACHED_URL_MAX:
        cache_clear = getattr(urlsplit, "cache_clear", None)
        if cache_clear is not None:
            cache_clear()
        elif _clear_cache is not None:
            _clear_cache()


@lru_cache(maxsize=2048)
def _parse_cached_url(raw: str) -> _URL:
    return _URL(raw)


def _parse_url(raw: str) -> _URL:
    """The parsed URL, from a bounded cache for ordinary URLs (a crawler
    following multi-megabyte redirect URLs must not keep them)."""
    if len(raw) <= _CACHED_URL_MAX:
        return _parse_cached_url(raw)
    return _URL(raw)


def _merge_params(url: str, params: Any) -> str:
    """url with params appended to its query: a mapping or (key, value)
    pairs; a list or tuple value repeats its key (``b=x&b=y``), a None value
    leaves the key out, as requests and httpx do."""
    if not params:
        return url
    items = params.items() if isinstance(params, Mapping) else params
    pairs: List[Tuple[Any, Any]] = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            pairs.extend((k, x) for x in v if x is not None)
        else:
            pairs.append((k, v))
    if not pairs:
        return url
    query = urlencode(pairs, doseq=False)
    base, sep, frag = url.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith("?") or base.endswith("&"):
        joiner = ""
    return base + joiner + query + (sep + frag)
