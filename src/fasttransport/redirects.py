"""Go's Client redirect rules (Client.do): how a 3xx leads to the next hop.

``follow(client, orig, orig_headers, resp)`` is the redirect loop as a
generator that blocking, batch and asyncio calls drive alike;
``_Chain`` holds what carries from one hop to the next, and each of its
methods is one rule: where to (``target``), with which method
(``method``), which headers (``headers``), and when to stop (``refuse``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Generator, List, Optional, Tuple
from urllib.parse import quote, urljoin

from ._urls import _URL, _forget_long_url, _parse_url, _url_error, _urlsplit_uncached
from .errors import (
    HTTPError,
    InvalidRequest,
    RemoteProtocolError,
    TooManyRedirects,
    UnrewindableBodyError,
)
from .headers import Headers
from .models import _REDIRECTS, Request, Response

if TYPE_CHECKING:
    from .client import Client

#: Go's sensitive headers: dropped on a redirect to another host.
_SENSITIVE = ("authorization", "www-authenticate", "cookie", "cookie2",
              "proxy-authorization", "proxy-authenticate")
#: Between hops, at most this much of a redirect body is read (Go's maxBodySlurpSize).
_SLURP = 2048
_CTL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})(.{0,2})", re.S)
_USERINFO_PW = re.compile(r"(//[^/?#@:]*:)[^/?#@]*@")
#: Printable ASCII: kept as it is when bytes >= 0x80 of a Location are escaped.
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def _redact(url: str) -> str:
    """A URL for an error message: the password of its userinfo as ***."""
    return _USERINFO_PW.sub(r"\1***@", url)


def _host_of(u: _URL) -> str:
    """The host part of a parsed URL for the sensitive-header rule: IDNA
    ASCII, lower case, no port, no brackets."""
    return u.host.lower()


def _keeps_sensitive(orig_host: str, new_host: str) -> bool:
    """Go's shouldCopyHeaderOnRedirect / isDomainOrSubdomain: the new host is
    the original one or a subdomain of it (ports ignored; an IPv6 address or
    a zone never counts as a subdomain)."""
    if orig_host == new_host:
        return True
    if ":" in new_host or "%" in new_host:
        return False
    return new_host.endswith("." + orig_host)


def _origin(u: _URL) -> str:
    """scheme://host[:port] (the port only when it is not the scheme's)."""
    return f"{u.scheme}://{u.host_header}"


def _same_origin(a: _URL, b: _URL) -> bool:
    return (a.scheme, a.host.lower(), a.port) == (b.scheme, b.host.lower(), b.port)


def _referer_of(u: _URL) -> str:
    """Go's refererForURL body: the URL without its userinfo (nor fragment)."""
    return f"{u.scheme}://{u.host_header}{u.target}"


def _parse_location(base: str, loc: str) -> str:
    """Resolve a Location value against the URL that returned it (RFC 3986).
    Bytes >= 0x80 (headers are latin-1 text here) are percent-encoded as the
    bytes they were. Raises ValueError with Go's url.Parse causes for a value
    that cannot be a URL."""
    if _CTL.search(loc):
        raise ValueError(f'parse "{loc}": net/url: invalid control character in URL')
    m = _BAD_ESCAPE.search(loc)
    if m:
        raise ValueError(f'parse "{loc}": invalid URL escape "%{m.group(1)}"')
    if not loc.isascii():
        loc = quote(loc.encode("latin-1"), safe=_PRINTABLE)
    try:
        _ = _urlsplit_uncached(loc).port
    except ValueError:
        err = _url_error(loc)
        if str(err).startswith("parse "):     # (a port out of range fails at the dial)
            raise ValueError(str(err)) from None
    joined = urljoin(base, loc)
    _forget_long_url(loc)
    return joined


def _cookie_pairs(values: List[str]) -> List[Tuple[str, str]]:
    """(name, "name=value") for every cookie of Cookie header values."""
    out = []
    for v in values:
        for item in v.split(";"):
            item = item.strip()
            if item:
                out.append((item.partition("=")[0].strip(), item))
    return out


def _set_cookie_names(headers: Headers) -> List[str]:
    return [v.partition(";")[0].partition("=")[0].strip()
            for v in headers.get_list("Set-Cookie")]


def _slurp_and_close(resp: Response) -> None:
    """Between hops (Go's Client.do): read at most 2 KiB of the previous body
    when its length is unknown or at most that, then close it, so a small
    redirect body leaves its connection reusable. Errors are ignored (the
    connection is then not reused). A body read whole stays readable as
    ``content``."""
    data: List[bytes] = []
    try:
        if resp._x.in_flight:
            pass            # read ahead by an engine: close() drains it there
        elif resp.content_length == -1 or resp.content_length <= _SLURP:
            left = _SLURP + 1
            while left > 0:
                chunk = resp.read(left)
                if not chunk:
                    resp._content = b"".join(data)
                    break
                data.append(chunk)
                left -= len(chunk)
    except HTTPError:
        pass
    resp.close()


def _parse_url_or_none(url: str) -> Optional[_URL]:
    """The parsed URL, or None when it is not one this client can request
    (the next Request then raises InvalidRequest with the reason)."""
    try:
        return _parse_url(url)
    except InvalidRequest:
        return None



class _Chain:
    """What one call's redirect chain carries from hop to hop."""

    __slots__ = ("client", "orig", "orig_headers", "op", "orig_host", "explicit_ref", "strip",
                 "include_body", "icookies", "history")

    def __init__(self, client: Client, orig: Request, orig_headers: Headers) -> None:
        self.client = client
        self.orig = orig
        self.orig_headers = orig_headers
        self.op = orig.method.capitalize()
        self.orig_host = _host_of(orig._u)
        self.explicit_ref = orig_headers.get("Referer")
        self.strip = False          # sensitive headers dropped for the rest of the chain
        self.include_body = True    # false once a hop dropped the body
        self.icookies: Optional[List[Tuple[str, str]]] = None
        if client.cookies is not None and "cookie" in orig_headers:
            self.icookies = _cookie_pairs(orig_headers.get_list("Cookie"))
        self.history: List[Response] = []

    def target(self, req: Request,
               resp: Response) -> Optional[Tuple[str, str, Optional[_URL]]]:
        """(Location, the URL it resolves to, that URL parsed or None), or
        None for a 3xx without a Location (a final response). Raises
        RemoteProtocolError for a Location that is not a URL."""
        locs = resp.headers.get_list("Location")
        if not locs or not locs[0]:
            return None
        loc = locs[0]
        try:
            next_url = _parse_location(req.url, loc)
            return loc, next_url, _parse_url_or_none(next_url)
        except ValueError as e:
            resp.close()
            raise RemoteProtocolError(
                f'{self.op} "{req._u.redacted}": failed to parse Location header '
                f'"{_redact(loc)}": {_redact(str(e))}',
                method=self.orig.method, url=req._u.redacted) from None

    def method(self, code: int, req: Request) -> str:
        """301/302/303 turn the method into GET (HEAD stays) and drop the
        body for the rest of the chain; 307/308 keep both."""
        if code in (301, 302, 303):
            self.include_body = False
            return "GET" if req.method not in ("GET", "HEAD") else req.method
        return req.method

    def headers(self, req: Request, resp: Response, next_u: Optional[_URL],
                loc: str) -> Headers:
        """The next hop's headers, from the original request's: a caller's
        cookie that the redirect response sets again is left out, sensitive
        headers are dropped once the host changes (see Client), a Host
        header survives only relative Locations, and the Referer is set."""
        names = _set_cookie_names(resp.headers) if self.icookies else ()
        if names and self.icookies and any(n in names for n, _ in self.icookies):
            self.icookies = [(n, c) for n, c in self.icookies if n not in names]
            self.orig_headers = Headers(self.orig_headers)
            del self.orig_headers["Cookie"]
            if self.icookies:
                self.orig_headers.add("Cookie", "; ".join(sorted(c for _, c in self.icookies)))
        orig_u = self.orig._u
        strict = self.client.strict_redirects
        if next_u is not None and not self.strip and next_u.host_header != orig_u.host_header:
            self.strip = not _keeps_sensitive(self.orig_host, _host_of(next_u))
        cross = next_u is not None and not _same_origin(next_u, req._u)
        downgrade = next_u is not None and req._u.scheme == "https" and next_u.scheme == "http"
        if strict and not self.strip and next_u is not None:
            # another scheme, host or port than the original: another
            # service, or credentials in plaintext
            self.strip = downgrade or not _same_origin(next_u, orig_u)
        headers = Headers(self.orig_headers)
        if self.strip:
            for name in _SENSITIVE:
                if name in headers:
                    del headers[name]
        if "host" in headers and _urlsplit_uncached(loc).scheme:
            del headers["host"]
        if "referer" in headers:
            del headers["referer"]
        if next_u is not None and not downgrade:
            ref = self.explicit_ref or _referer_of(req._u)
            if strict and cross and not self.explicit_ref:
                ref = _origin(req._u) + "/"    # strict-origin-when-cross-origin
            headers.add("Referer", ref)
        return headers

    def refuse(self, req: Request, resp: Response, loc: str, send_body: bool) -> None:
        """Raise when this redirect may not be followed: max_redirects
        requests made (Go's default CheckRedirect), or a one-shot body that
        would have to be sent again."""
        history, orig = self.history, self.orig
        limit = self.client.max_redirects
        if len(history) + 1 >= limit:
            _slurp_and_close(resp)
            resp.history = list(history)
            raise TooManyRedirects(
                f'{self.op} "{_redact(loc)}": stopped after {limit} redirects',
                method=orig.method, url=_redact(loc), response=resp,
                history=history + [resp])
        if send_body and orig._one_shot:
            _slurp_and_close(resp)
            resp.history = list(history)
            raise UnrewindableBodyError(
                f'{self.op} "{req._u.redacted}": cannot follow the {resp.status_code} '
                f'redirect to "{_redact(loc)}": the request body came from a one-shot source '
                "(an iterator or a file that cannot seek) and cannot be sent again",
                method=orig.method, url=req._u.redacted, response=resp,
                history=history + [resp])


def follow(client: Client, orig: Request, orig_headers: Headers,
           resp: Response) -> Generator[Request, Response, Response]:
    """Go's Client.do redirect loop, from the first response, a 3xx, as a
    generator: it yields the next hop's request, is sent that hop's
    response, and returns the final response:

    - 301/302/303, 307, 308 with a Location are followed; a 3xx without
      one is the final response; an unparsable one raises
      RemoteProtocolError ``failed to parse Location header "…": …``;
    - 301/302/303: the method becomes GET unless it is GET or HEAD, and
      the body is dropped; 307/308 keep both, but once a hop dropped the
      body no later hop sends it; a one-shot body that would have to be
      sent again raises UnrewindableBodyError;
    - every hop starts from the original request's headers; the sensitive
      ones are dropped once the host is neither the original one nor a
      subdomain of it (ports ignored), for the rest of the chain; a Host
      header survives only relative Locations;
    - Referer: the previous URL without userinfo, or the caller's
      explicit Referer; none on an https -> http hop;
    - with a jar, a cookie the caller set in a Cookie header is left out
      once a redirect response sets a cookie of that name;
    - the previous body is read (2 KiB at most) and closed; the deadline,
      the cancel token and the timeout's parts cover every hop;
    - after max_redirects requests: TooManyRedirects ``<Op> "<Location>":
      stopped after N redirects`` with ``response`` (body closed) and
      ``history``.
    """
    chain = _Chain(client, orig, orig_headers)
    req = orig
    while True:
        target = chain.target(req, resp)
        if target is None:
            break                   # a 3xx without Location is a final response
        loc, next_url, next_u = target
        method = chain.method(resp.status_code, req)
        send_body = chain.include_body and orig.body is not None
        headers = chain.headers(req, resp, next_u, loc)
        chain.refuse(req, resp, loc, send_body)
        _slurp_and_close(resp)
        chain.history.append(resp)
        req = Request(method, next_url, headers=headers, max_body_size=orig.max_body_size)
        req.extensions = orig.extensions
        if send_body:
            req.body, req.chunked = orig.body, orig.chunked
        resp = yield req
        if resp.status_code not in _REDIRECTS:
            break
    resp.history = chain.history
    return resp
