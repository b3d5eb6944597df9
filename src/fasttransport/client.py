"""Client: redirects, cookies, default headers and the total deadline on top
of a Transport (Go's http.Client); plus the one-call helpers ft.get & co,
which share one default client (Go's http.Get)."""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import threading
import urllib.request
from typing import Any, Iterator, List, Optional
from urllib.parse import urljoin, urlsplit

from . import _core
from .errors import HTTPError, RemoteProtocolError, TooManyRedirects
from .models import Headers, HeaderTypes, Request, Response
from .transport import Transport

__all__ = ["Client", "request", "get", "head", "post", "put", "patch", "delete", "options"]

_UNSET: Any = object()
_SENSITIVE = ("authorization", "www-authenticate", "cookie", "cookie2",
              "proxy-authorization", "proxy-authenticate")
_REDIRECTS = (301, 302, 303, 307, 308)


class _JarResponse:
    """What http.cookiejar needs of a response: info().get_all()."""

    __slots__ = ("_h",)

    def __init__(self, headers: Headers) -> None:
        self._h = headers

    def info(self) -> "_JarResponse":
        return self

    def get_all(self, name: str, default: Any = None) -> Any:
        values = self._h.get_list(name)
        return values if values else default


def _strip_port(host: str) -> str:
    return (urlsplit("//" + host).hostname or host).lower()


def _keeps_sensitive(orig_host: str, new_host: str) -> bool:
    """Go's shouldCopyHeaderOnRedirect: same host or a subdomain of the
    original; ports are ignored."""
    if orig_host == new_host:
        return True
    return new_host.endswith("." + orig_host)


def _referer(last_url: str, new_url: str, explicit: Optional[str]) -> Optional[str]:
    """Go's refererForURL."""
    last, new = urlsplit(last_url), urlsplit(new_url)
    if last.scheme == "https" and new.scheme == "http":
        return None
    if explicit:
        return explicit
    netloc = last.netloc.rpartition("@")[2]
    return last._replace(netloc=netloc, fragment="").geturl()


def _drain_small(resp: Response) -> None:
    """Between hops: read at most 2 KiB of the previous body (when its length
    is unknown or small), then close it, so a small redirect body leaves its
    connection reusable (Go's Client.do)."""
    try:
        if resp.content_length == -1 or resp.content_length <= 2048:
            left = 2048
            while left > 0:
                chunk = resp.read(left)
                if not chunk:
                    break
                left -= len(chunk)
    except HTTPError:
        pass
    resp.close()


class Client:
    """An HTTP client (Go's http.Client). Thread-safe: share one.

    - transport: a Transport; default: a new one owned (and closed) by the client.
    - timeout: seconds for the whole exchange including redirects and the body
      (Go's Client.Timeout); None = no limit. Per request: ``timeout=``.
    - follow_redirects / max_redirects: redirect policy (default: follow, 10).
    - cookies: an http.cookiejar.CookieJar (default: a new one); False: none.
    - headers: default headers sent with every request.
    """

    def __init__(self, *, transport: Optional[Transport] = None,
                 timeout: Optional[float] = None, follow_redirects: bool = True,
                 max_redirects: int = 10, cookies: Any = None,
                 headers: HeaderTypes = None) -> None:
        self._own_transport = transport is None
        self.transport = transport if transport is not None else Transport()
        self.timeout = timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        if cookies is None:
            cookies = http.cookiejar.CookieJar()
        self.cookies = cookies if cookies is not False else None
        self.headers = Headers(headers)

    # ---- the request path ---------------------------------------------------

    def request(self, method: str, url: str, *, params: Any = None,
                headers: HeaderTypes = None, content: Any = None, data: Any = None,
                json: Any = None, timeout: Any = _UNSET,
                follow_redirects: Optional[bool] = None, stream: bool = False,
                cancel: Optional[_core.CancelToken] = None) -> Response:
        """Send a request and return its response. With stream=False (the
        default) the body is read before returning and the connection is
        recycled; with stream=True the caller reads and closes it.

        Raises InvalidRequest before sending a bad request, TransportError
        subclasses when the exchange fails, TooManyRedirects."""
        if self.headers._list:
            merged = Headers(self.headers)
            if headers:
                extra = Headers(headers)._list
                for k, _ in extra:
                    if k in merged:
                        del merged[k]
                for k, v in extra:
                    merged.add(k, v)
            headers = merged
        req = Request(method, url, headers=headers, content=content, data=data, json=json,
                      params=params)
        if timeout is _UNSET:
            timeout = self.timeout
        deadline = None
        if timeout is not None:
            deadline = _core.monotonic_ns() + int(float(timeout) * 1e9)
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        resp = self._send_chain(req, deadline, cancel, follow, stream)
        if not stream:
            try:
                _ = resp.content   # read and kept: the connection is recycled
            except BaseException:
                resp.close()
                raise
        return resp

    def _send_one(self, req: Request, deadline: Optional[int], cancel: Any,
                  stream: bool) -> Response:
        jar = self.cookies
        if jar is not None and len(jar):
            ureq = urllib.request.Request(req.url)
            jar.add_cookie_header(ureq)
            cookie = ureq.unredirected_hdrs.get("Cookie")
            if cookie:
                req.headers.add("Cookie", cookie)
        u = req._u
        if u.userinfo is not None and "authorization" not in req.headers:
            user, pw = u.userinfo
            token = base64.b64encode(f"{user}:{pw or ''}".encode("latin-1")).decode("ascii")
            req.headers.add("Authorization", "Basic " + token)
        resp = self.transport._send(req, deadline, cancel, True)
        if jar is not None and resp._x.has_header(b"set-cookie"):
            jar.extract_cookies(_JarResponse(resp.headers), urllib.request.Request(req.url))
        return resp

    def _send_chain(self, req: Request, deadline: Optional[int], cancel: Any,
                    follow: bool, stream: bool) -> Response:
        """Go's Client.do: the redirect loop (GO_TRANSPORT_SPEC §14)."""
        orig = req
        orig_host = orig._u.host.lower()
        strip = False          # sensitive headers dropped for the rest of the chain
        body_dropped = False   # once a hop drops the body, no later hop sends it
        history: List[Response] = []
        method, body, chunked = req.method, req.body, req.chunked
        while True:
            resp = self._send_one(req, deadline, cancel, stream)
            if not follow or resp.status_code not in _REDIRECTS:
                break
            loc = resp.headers.get("Location")
            if loc is None:
                break           # a 3xx without Location is a final response
            code = resp.status_code
            if code in (307, 308) and body is not None and body_dropped:
                body = None
            try:
                next_url = urljoin(resp.url, loc)
                next_u = urlsplit(next_url)
                _ = next_u.port    # validates the port
            except ValueError as e:
                resp.close()
                raise RemoteProtocolError(
                    f'{req.method.capitalize()} "{req._u.redacted}": '
                    f'failed to parse Location header "{loc}": {e}',
                    method=req.method, url=req._u.redacted) from None
            if code in (301, 302, 303):
                if method not in ("GET", "HEAD"):
                    method = "GET"
                if body is not None:
                    body_dropped = True
                body, chunked = None, False
            if len(history) + 1 >= self.max_redirects:
                # Go's default CheckRedirect: refuse once max_redirects
                # requests were made; the caller gets the last response too.
                _drain_small(resp)
                resp.history = list(history)
                raise TooManyRedirects(
                    f'{orig.method.capitalize()} "{loc}": stopped after {self.max_redirects} '
                    "redirects", method=orig.method, url=loc, response=resp,
                    history=history + [resp])
            new_host = (next_u.hostname or "").lower()
            if not strip and not _keeps_sensitive(orig_host, new_host):
                strip = True
            headers = Headers(orig.headers)
            if strip:
                for name in _SENSITIVE:
                    if name in headers:
                        del headers[name]
            if body is None:
                for name in ("content-length", "transfer-encoding"):
                    if name in headers:
                        del headers[name]
            ref = _referer(resp.url, next_url, orig.headers.get("Referer"))
            if "referer" in headers:
                del headers["referer"]
            if ref:
                headers.add("Referer", ref)
            _drain_small(resp)
            history.append(resp)
            nreq = Request(method, next_url, headers=headers)
            nreq.body, nreq.chunked = body, chunked
            req = nreq
        if history:
            resp.history = history
        return resp

    # ---- verbs --------------------------------------------------------------

    def get(self, url: str, **kw: Any) -> Response:
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> Response:
        return self.request("HEAD", url, **kw)

    def post(self, url: str, **kw: Any) -> Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> Response:
        return self.request("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> Response:
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> Response:
        return self.request("DELETE", url, **kw)

    def options(self, url: str, **kw: Any) -> Response:
        return self.request("OPTIONS", url, **kw)

    @contextlib.contextmanager
    def stream(self, method: str, url: str, **kw: Any) -> Iterator[Response]:
        """``with client.stream("GET", url) as r:`` — a streaming response,
        closed on exit."""
        kw["stream"] = True
        resp = self.request(method, url, **kw)
        try:
            yield resp
        finally:
            resp.close()

    def close(self) -> None:
        """Close the transport if this client created it."""
        if self._own_transport:
            self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- one-call helpers (Go's http.Get and DefaultClient) ----------------------

_default: Optional[Client] = None
_default_lock = threading.Lock()


def _default_client() -> Client:
    global _default
    c = _default
    if c is None:
        with _default_lock:
            if _default is None:
                _default = Client()
            c = _default
    return c


def request(method: str, url: str, **kw: Any) -> Response:
    """One request through the shared default client."""
    return _default_client().request(method, url, **kw)


def get(url: str, **kw: Any) -> Response:
    return request("GET", url, **kw)


def head(url: str, **kw: Any) -> Response:
    return request("HEAD", url, **kw)


def post(url: str, **kw: Any) -> Response:
    return request("POST", url, **kw)


def put(url: str, **kw: Any) -> Response:
    return request("PUT", url, **kw)


def patch(url: str, **kw: Any) -> Response:
    return request("PATCH", url, **kw)


def delete(url: str, **kw: Any) -> Response:
    return request("DELETE", url, **kw)


def options(url: str, **kw: Any) -> Response:
    return request("OPTIONS", url, **kw)
