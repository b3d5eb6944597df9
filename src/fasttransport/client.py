"""Client: redirects, cookies, default headers and the total deadline on top
of a Transport (Go's http.Client); plus the one-call helpers ft.get & co,
which share one default client (Go's http.Get)."""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import threading
import time
import urllib.request
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
    cast,
)
from urllib.parse import unquote

from . import _core
from ._core import CancelToken
from ._urls import _CACHED_URL_MAX, _forget_long_url
from .batch import Future, RequestLike, _cancelled, _Collector, run_map
from .errors import (
    ConnectError,
    ConnectTimeout,
    InvalidRequest,
)
from .headers import Headers, HeaderTypes, _check_headers
from .models import _REDIRECTS, Request, Response
from .options import Limits, Retry, TimeoutTypes, as_retry, split_timeout
from .redirects import follow
from .transport import CertTypes, Transport

__all__ = ["Client", "request", "get", "head", "post", "put", "patch", "delete", "options"]

_UNSET: Any = object()
#: Stdlib jars whose emptiness is checked before any cookie work.
_PLAIN_JARS: Tuple[type, ...] = (http.cookiejar.CookieJar, http.cookiejar.FileCookieJar,
               http.cookiejar.MozillaCookieJar, http.cookiejar.LWPCookieJar)


class CookieJarLike(Protocol):
    """What a Client needs of its cookie jar (http.cookiejar.CookieJar's
    methods)."""

    def add_cookie_header(self, request: urllib.request.Request) -> None: ...

    def extract_cookies(self, response: Any, request: urllib.request.Request) -> None: ...


#: A cookie as http.cookiejar keeps it: {domain: {path: {name: Cookie}}}.
_CookieTree = Dict[str, Dict[str, Dict[str, http.cookiejar.Cookie]]]


class _StdlibJar(Protocol):
    """What a standard library jar keeps (private, not in its type stubs)."""

    _cookies: _CookieTree


class _JarResponse:
    """What http.cookiejar needs of a response: info().get_all()."""

    __slots__ = ("_h",)

    def __init__(self, headers: Headers) -> None:
        self._h = headers

    def info(self) -> "_JarResponse":
        return self

    def get_all(self, name: str, default: Any = None) -> Any:
        values = self._h.get_list(name)
        if len(values) > COOKIES_PER_DOMAIN:
            values = values[-COOKIES_PER_DOMAIN:]    # the rest would be evicted anyway
        return values if values else default


#: Browsers' limits, which a cookie jar of Client keeps too: a cookie's
#: name and value of at most 4096 bytes, 180 cookies per domain, 3000 in all
#: (the oldest set goes first). A server cannot make every later request
#: slow or its Cookie header huge.
COOKIE_MAX_BYTES = 4096
COOKIES_PER_DOMAIN = 180
COOKIES_TOTAL = 3000


class BoundedCookieJar(http.cookiejar.CookieJar):
    """An http.cookiejar.CookieJar with browsers' limits (COOKIE_MAX_BYTES,
    COOKIES_PER_DOMAIN, COOKIES_TOTAL): a bigger cookie is ignored, and the
    oldest cookies are evicted past the counts. The default jar of Client."""

    # CookieJar's own, not in its type stubs: the cookies and their lock
    _cookies: _CookieTree
    _cookies_lock: threading.RLock

    def __init__(self, policy: Optional[http.cookiejar.CookiePolicy] = None) -> None:
        super().__init__(policy)
        self._seq = 0
        self._count = 0

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        if len(cookie.name or "") + len(cookie.value or "") > COOKIE_MAX_BYTES:
            return
        with self._cookies_lock:
            paths = self._cookies.get(cookie.domain, {})
            replaces = cookie.name in paths.get(cookie.path, {})
            super().set_cookie(cookie)
            self._seq += 1
            cookie._ft_seq = self._seq          # type: ignore[attr-defined]
            if not replaces:
                self._count += 1
            domain = self._cookies[cookie.domain]
            if sum(len(names) for names in domain.values()) > COOKIES_PER_DOMAIN:
                self._evict_oldest(domain)
            while self._count > COOKIES_TOTAL:
                self._evict_oldest(None)

    def _evict_oldest(self, domain: Optional[Dict[str, Dict[str, http.cookiejar.Cookie]]],
                      ) -> None:
        """Under the jar's lock: drop the oldest cookie (of one domain's
        {path: {name: cookie}}, or of the whole jar)."""
        scopes = [domain] if domain is not None else list(self._cookies.values())
        oldest = None
        for paths in scopes:
            for names in paths.values():
                for c in names.values():
                    if oldest is None or getattr(c, "_ft_seq", 0) < getattr(oldest, "_ft_seq", 0):
                        oldest = c
        if oldest is not None:
            self.clear(oldest.domain, oldest.path, oldest.name)

    def clear(self, domain: Optional[str] = None, path: Optional[str] = None,
              name: Optional[str] = None) -> None:
        super().clear(domain, path, name)
        self._count = sum(len(names) for paths in self._cookies.values()
                          for names in paths.values())

    def clear_expired_cookies(self) -> None:
        super().clear_expired_cookies()
        self._count = sum(len(names) for paths in self._cookies.values()
                          for names in paths.values())


_PLAIN_JARS += (BoundedCookieJar,)


def _basic(user: Any, password: Any) -> str:
    """``Basic base64(user:password)``; str parts are sent as UTF-8 (Go sends
    the bytes of its strings), bytes as they are."""
    u = user if isinstance(user, bytes) else str(user).encode("utf-8")
    p = password if isinstance(password, bytes) else str(password).encode("utf-8")
    return "Basic " + base64.b64encode(u + b":" + p).decode("ascii")


class Client:
    """An HTTP client (Go's http.Client). Thread-safe: share one.

    - transport: a Transport; default: a new one owned (and closed) by the client.
    - timeout: seconds for the whole exchange including every redirect and the
      body (Go's Client.Timeout); None = no limit; or an ft.Timeout with
      separate connect, read, write and pool parts. Per request: ``timeout=``.
    - follow_redirects / max_redirects: redirect policy (default: follow; at
      most 10 requests per call, Go's default CheckRedirect). Per request:
      ``follow_redirects=``.
    - cookies: an http.cookiejar.CookieJar, or any object with its
      ``add_cookie_header`` and ``extract_cookies`` (default: a new empty
      CookieJar); False: no cookies (Go's Client.Jar).
    - headers: default headers sent with every request (a request's own
      headers of the same name replace them). Raises InvalidRequest for a
      name or value that could not be sent.
    - auth: ``(user, password)`` sent as ``Authorization: Basic`` with every
      request (a request's ``auth=`` replaces it).

    - base_url: a URL that relative request URLs are appended to
      (``base_url="http://h/api"``, ``get("items")`` -> ``http://h/api/items``).
    - params: query parameters added to every request (before its own).
    - event_hooks: ``{"request": [fn], "response": [fn]}``: fn(request)
      before each hop is sent, fn(response) after each hop's head (redirects
      included), as in httpx; plain callables, also for AsyncClient.
    - verify, cert, proxy, trust_env, limits (an ft.Limits: the pool's
      sizes): given to the Transport the client creates (see Transport);
      not with ``transport=``.
    - retries: an ft.Retry (backoff, statuses, Retry-After), or an int:
      that many retries of connection failures only. Only replayable
      requests are retried (see Retry); ``Response.retries`` counts them.
    - strict_redirects: stricter than Go (and as curl and browsers are):
      ``Authorization``, ``Proxy-Authorization`` and a caller-set ``Cookie``
      (Go's sensitive headers) are dropped once a redirect goes to another
      scheme, host or port than the original request's, or from https to
      http; a cross-origin Referer carries the origin only
      (strict-origin-when-cross-origin). Default False: Go's rules (ports
      ignored, subdomains keep the headers, the full previous URL as
      Referer).

    Redirects, cookies and the Referer follow Go's Client: see ``_redirects``.
    """

    def __init__(self, *, transport: Optional[Transport] = None,
                 timeout: TimeoutTypes = None, follow_redirects: bool = True,
                 max_redirects: int = 10,
                 cookies: Union[CookieJarLike, Literal[False], None] = None,
                 headers: HeaderTypes = None, auth: Optional[Tuple[Any, Any]] = None,
                 strict_redirects: bool = False, base_url: Optional[str] = None,
                 params: Any = None,
                 event_hooks: Optional[Mapping[str, Iterable[Callable[[Any], object]]]] = None,
                 verify: Union[bool, str] = _UNSET, cert: CertTypes = _UNSET,
                 proxy: Optional[str] = _UNSET, trust_env: bool = _UNSET,
                 retries: Union[int, Retry, None] = None,
                 limits: Optional[Limits] = None) -> None:
        self.headers = Headers(headers)
        _check_headers(self.headers._list)
        given = (("verify", verify), ("cert", cert), ("proxy", proxy), ("trust_env", trust_env))
        tkw: Dict[str, Any] = {k: v for k, v in given if v is not _UNSET}
        if limits is not None:
            if not isinstance(limits, Limits):
                raise TypeError(f"limits must be an ft.Limits, not {limits!r}")
            tkw.update(limits._kwargs())
        if transport is not None and tkw:
            raise TypeError(f"{', '.join(tkw)}: give them to the Transport when passing "
                            "transport=")
        self.retries: Optional[Retry] = as_retry(retries)
        self._own_transport = transport is None
        self.transport = transport if transport is not None else Transport(**tkw)
        self.base_url = base_url.rstrip("/") + "/" if base_url else None
        self.params = params
        hooks = event_hooks or {}
        unknown = set(hooks) - {"request", "response"}
        if unknown:
            raise ValueError(f"event_hooks: unknown kind(s) {sorted(unknown)}; "
                             "use 'request' and 'response'")
        self._request_hooks = list(hooks.get("request", ()))
        self._response_hooks = list(hooks.get("response", ()))
        split_timeout(timeout)           # checked now, not at the first request
        self.timeout = timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        if cookies is None:
            cookies = BoundedCookieJar()
        self.cookies: Optional[CookieJarLike] = cookies if cookies is not False else None
        self._jar_check_empty = type(self.cookies) in _PLAIN_JARS
        self.auth = auth
        self.strict_redirects = strict_redirects
        self._col: Optional[_Collector] = None

    # ---- the request path ---------------------------------------------------

    def request(self, method: str, url: str, *, params: Any = None,
                headers: HeaderTypes = None, content: Any = None, data: Any = None,
                files: Any = None, json: Any = None, auth: Optional[Tuple[Any, Any]] = _UNSET,
                timeout: TimeoutTypes = _UNSET, follow_redirects: Optional[bool] = None,
                stream: bool = False, cancel: Optional[CancelToken] = None,
                max_body_size: Optional[int] = None,
                cookies: Optional[Mapping[str, str]] = None) -> Response:
        """Send a request and return its response. With stream=False (the
        default) the body is read before returning and the connection is
        recycled; with stream=True the caller reads and closes it.

        Body: ``content`` (bytes, str, a binary file, an iterable of bytes),
        ``data`` (form fields), ``files`` (multipart/form-data, with ``data``
        as extra fields) or ``json``. ``auth=(user, password)``: Basic auth
        (None: none, even if the client has some).

        Raises InvalidRequest before sending a bad request, TransportError
        subclasses when an exchange fails, TooManyRedirects past
        max_redirects, UnrewindableBodyError when a 307/308 needs a one-shot
        body again, RemoteProtocolError for an unparsable Location."""
        req, deadline = self._new_request(method, url, params, headers, content, data, files,
                                          json, auth, timeout, max_body_size, cookies)
        orig_headers = req._headers
        resp = self._send_one(req, deadline, cancel)
        if resp.status_code in _REDIRECTS and (
                self.follow_redirects if follow_redirects is None else follow_redirects):
            resp = self._follow(req, orig_headers, resp, deadline, cancel)
        if not stream and not resp._x.upgraded:
            try:
                _ = resp.content   # read and kept: the connection is recycled
            except BaseException:
                resp.close()
                raise
        return resp

    def _new_request(self, method: str, url: str, params: Any, headers: HeaderTypes,
                     content: Any, data: Any, files: Any, json: Any,
                     auth: Optional[Tuple[Any, Any]], timeout: TimeoutTypes,
                     max_body_size: Optional[int] = None,
                     cookies: Optional[Mapping[str, str]] = None,
                     ) -> Tuple[Request, Optional[int]]:
        """The Request of a call and its deadline, the client's defaults
        applied (base_url, params, headers, auth); ``cookies``: a mapping
        sent in this request's Cookie header."""
        if self.base_url is not None and "://" not in url:
            url = self.base_url + url.lstrip("/")
        if self.params:
            params = _join_params(self.params, params)
        if cookies:
            headers = Headers(headers)
            mine = "; ".join(f"{k}={v}" for k, v in dict(cookies).items())
            have = "; ".join(headers.get_list("Cookie"))
            headers["Cookie"] = f"{have}; {mine}" if have else mine
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
        if auth is _UNSET:
            auth = self.auth
        if auth is not None:
            headers = Headers(headers)
            headers["Authorization"] = _basic(*auth)
        if content is None and data is None and json is None and files is None \
                and params is None and max_body_size is None:
            req = Request(method, url, headers=headers)   # the common call: a smaller dict
        else:
            req = Request(method, url, headers=headers, content=content, data=data, json=json,
                          files=files, params=params, max_body_size=max_body_size)
        if timeout is _UNSET:
            timeout = self.timeout
        deadline = None
        if timeout is not None:
            total, parts = split_timeout(timeout)
            if total is not None:
                deadline = _core.monotonic_ns() + int(total * 1e9)
            if parts is not None:
                req.extensions["timeout"] = parts
        return req, deadline

    def _send_one(self, req: Request, deadline: Optional[int],
                  cancel: Optional[CancelToken]) -> Response:
        """One hop (Go's Client.send): cookies from the jar for this URL are
        appended to the Cookie header, URL userinfo becomes Authorization
        unless one is set, and a response with Set-Cookie updates the jar.
        The caller's Headers object is never changed: ``req.headers`` is
        replaced by a copy when something is added. Raises InvalidRequest if
        the jar produces a Cookie value that could not be sent (nothing is
        sent then). With ``retries``, the hop is sent again as the policy
        says (_retry_wait)."""
        if self.retries is None:
            self._before_hop(req)
            return self._after_hop(req, self.transport._send(req, deadline, cancel, True))
        headers = req.headers
        done = 0
        while True:
            self._before_hop(req)
            try:
                resp = self._after_hop(req, self.transport._send(req, deadline, cancel, True))
            except (ConnectError, ConnectTimeout) as err:
                wait = self._retry_wait(req, done, deadline, err=err)
                if wait is None:
                    raise
            else:
                wait = self._retry_wait(req, done, deadline, resp=resp)
                if wait is None:
                    resp.retries = done
                    return resp
                resp.close()
            _pause(req, wait, cancel)
            done += 1
            req.headers = headers        # the jar's cookies are added again

    def _retry_wait(self, req: Request, done: int, deadline: Optional[int], *,
                    resp: Optional[Response] = None,
                    err: Optional[BaseException] = None) -> Optional[float]:
        """Seconds to wait before sending req again after ``done`` retries
        (the client's Retry), or None: not again (no retries left, not
        replayable, not a failure it retries, or the wait would end past
        the call's total timeout)."""
        retry = self.retries
        if retry is None:
            return None
        wait = retry._wait_for(req, done, resp, err)
        if wait is not None and deadline is not None and \
                _core.monotonic_ns() + int(wait * 1e9) >= deadline:
            return None
        return wait

    def _before_hop(self, req: Request) -> None:
        """What _send_one adds to a hop's request before it is sent (the
        jar's cookies; URL userinfo as Authorization unless one is set);
        then the request hooks. The common request (an empty jar, no
        userinfo) makes no call here."""
        jar = self.cookies
        if jar is not None and (not self._jar_check_empty or cast(_StdlibJar, jar)._cookies):
            self._add_jar_cookies(req, jar)
        u = req._u
        if u.userinfo is not None and "authorization" not in req._headers:
            user, pw = u.userinfo
            h = Headers(req._headers)
            h.add("Authorization", _basic(unquote(user), unquote(pw or "")))
            req.headers = h
        for hook in self._request_hooks:
            hook(req)

    @staticmethod
    def _add_jar_cookies(req: Request, jar: CookieJarLike) -> None:
        ureq = urllib.request.Request(req.url)
        jar.add_cookie_header(ureq)
        cookie = ureq.get_header("Cookie")
        if cookie:
            h = Headers(req._headers)
            have = "; ".join(h.get_list("Cookie"))
            try:
                h["Cookie"] = f"{have}; {cookie}" if have else cookie
            except InvalidRequest as e:
                e.method, e.url = req.method, req._u.redacted
                e.args = (f'{req.method.capitalize()} "{req._u.redacted}": '
                          f"{e.args[0]} (from the cookie jar)",)
                raise
            req.headers = h

    def _after_hop(self, req: Request, resp: Response) -> Response:
        """What _send_one does with a hop's response: the jar learns its
        cookies; then the response hooks."""
        for hook in self._response_hooks:
            hook(resp)
        jar = self.cookies
        if jar is not None:
            if resp._x.has_header(b"set-cookie"):
                jar.extract_cookies(_JarResponse(resp.headers), urllib.request.Request(req.url))
            if len(req._url) > _CACHED_URL_MAX:
                _forget_long_url(req._url)
        return resp

    def _follow(self, orig: Request, orig_headers: Headers, resp: Response,
                deadline: Optional[int], cancel: Optional[CancelToken]) -> Response:
        """Follow the redirects from resp, a 3xx, hop by hop (_redirects)."""
        steps = self._redirects(orig, orig_headers, resp)
        try:
            req = next(steps)
            while True:
                req = steps.send(self._send_one(req, deadline, cancel))
        except StopIteration as done:
            final: Response = done.value
            return final

    def _redirects(self, orig: Request, orig_headers: Headers,
                   resp: Response) -> Generator[Request, Response, Response]:
        """Go's redirect loop from resp, a 3xx (redirects.follow)."""
        return follow(self, orig, orig_headers, resp)

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

    # ---- many in flight from one thread (batch.py) ----------------------------

    def submit(self, method: str, url: str, *, params: Any = None, headers: HeaderTypes = None,
               content: Any = None, data: Any = None, files: Any = None, json: Any = None,
               auth: Optional[Tuple[Any, Any]] = _UNSET, timeout: TimeoutTypes = _UNSET,
               follow_redirects: Optional[bool] = None, stream: bool = False,
               cancel: Optional[CancelToken] = None,
               max_body_size: Optional[int] = None,
               cookies: Optional[Mapping[str, str]] = None) -> Future:
        """Start a request and return at once: an ft.Future of its Response.
        The engine runs the exchange (no thread is started); redirects,
        cookies and retries follow the same rules as request(). The body is
        read into memory unless ``stream=True`` (then the response is handed
        over at its head; read and close it as after request(stream=True)).
        A request body must be bytes, str, form data, JSON or a plain binary
        file: a streamed (iterator) body needs request()."""
        req, deadline = self._new_request(method, url, params, headers, content, data, files,
                                          json, auth, timeout, max_body_size, cookies)
        return self._start_future(req, deadline, cancel, stream, follow_redirects)

    def _start_future(self, req: Request, deadline: Optional[int],
                      cancel: Optional[CancelToken], stream: bool,
                      follow_redirects: Optional[bool]) -> Future:
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        fut = Future(self, req, deadline, cancel, stream, follow)
        fut._send(req)
        return fut

    def _submit_item(self, item: RequestLike, timeout: TimeoutTypes,
                     cancel: Optional[CancelToken], stream: bool,
                     follow_redirects: Optional[bool]) -> Future:
        """map()'s item: an ft.Request, a URL (GET) or a (method, url) pair."""
        if isinstance(item, Request):
            req, deadline = self._new_request(item.method, item.url, None, item.headers,
                                              None, None, None, None, _UNSET, timeout)
            req.body, req.chunked = item.body, item.chunked
            req._one_shot = item._one_shot
            req = item if not self.headers._list and self.auth is None else req
        else:
            method, url = ("GET", item) if isinstance(item, str) else item
            req, deadline = self._new_request(method, url, None, None, None, None, None, None,
                                              _UNSET, timeout)
        fut = self._start_future(req, deadline, cancel, stream, follow_redirects)
        fut.request = item if isinstance(item, Request) else req
        return fut

    def map(self, requests: Iterable[RequestLike], *, concurrency: int = 64,
            timeout: TimeoutTypes = _UNSET, cancel: Optional[CancelToken] = None,
            stream: bool = False, follow_redirects: Optional[bool] = None,
            ) -> Iterator[Tuple[Request, Union[Response, BaseException]]]:
        """Run many requests with at most ``concurrency`` in flight, from this
        thread: yields ``(request, response_or_exception)`` in completion
        order. ``requests``: any iterable (pulled lazily, never more than
        ``concurrency`` ahead) of ft.Request objects, URL strings (GET) or
        ``(method, url)`` pairs. An error is the item's value and never
        stops the others (an item that cannot become a request, a bad URL
        say, comes back as given with its InvalidRequest); ``cancel`` (a
        CancelToken) stops the whole run; leaving the loop early cancels
        what is still in flight.
        ``timeout``: per request, as in request(). A wrong ``concurrency``
        or ``cancel`` raises here, before anything is pulled or sent."""
        if concurrency < 1:
            raise ValueError(f"map: concurrency must be >= 1, not {concurrency!r}")
        if cancel is not None and not isinstance(cancel, CancelToken):
            raise TypeError("map: cancel must be an ft.CancelToken or None, "
                            f"not {type(cancel).__name__}")
        if cancel is not None:
            return run_map(self, _until_cancelled(requests, cancel), concurrency, timeout,
                           cancel, stream, follow_redirects)
        return run_map(self, requests, concurrency, timeout, cancel, stream, follow_redirects)

    def _collector(self) -> _Collector:
        col = self._col
        if col is None or col.generation != _core.fork_generation():
            with _COLLECTOR_LOCK:
                col = self._col
                if col is None or col.generation != _core.fork_generation():
                    col = self._col = _Collector()
        return col

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
        """Close the transport if this client created it (requests still in
        flight then fail with TransportError)."""
        if self._own_transport:
            self.transport.close()
        if self._col is not None:
            if self._own_transport:
                self._col.poll()    # the engines reported every request they ran
            self._col.cq.close()    # its fd, once nothing in flight reports to it

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_COLLECTOR_LOCK = threading.Lock()


def _pause(req: Request, seconds: float, cancel: Optional[CancelToken]) -> None:
    """Sleep before a retry; a CancelToken ends the wait with ft.Cancelled."""
    end = time.monotonic() + seconds
    while True:
        if cancel is not None and cancel.cancelled:
            raise _cancelled(req)
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _join_params(first: Any, then: Any) -> List[Any]:
    """The client's params, then a request's (mappings or pairs)."""
    out: List[Any] = []
    for p in (first, then):
        if p:
            out.extend(p.items() if isinstance(p, dict) else p)
    return out


def _until_cancelled(items: Iterable[RequestLike],
                     cancel: CancelToken) -> Iterator[RequestLike]:
    """items, until the token is cancelled (a cancelled map pulls no more)."""
    for item in items:
        if cancel.cancelled:
            return
        yield item


# ---- one-call helpers (Go's http.Get and DefaultClient) ----------------------

_default: Optional[Client] = None
_default_lock = threading.Lock()


def _default_client() -> Client:
    global _default
    c = _default
    if c is None:
        with _default_lock:
            if _default is None:
                # Go's DefaultClient and requests' helpers keep no cookies:
                # unrelated calls share connections, never cookies
                _default = Client(cookies=False)
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
