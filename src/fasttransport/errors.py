"""The exception hierarchy.

Every message has Go's form ``<Op> "<url>": <cause>`` (the URL without
credentials); the exception also carries ``method`` and ``url``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:
    from .models import Response

__all__ = [
    "HTTPError",
    "TransportError",
    "ConnectError",
    "TLSError",
    "RemoteProtocolError",
    "BodyTooLarge",
    "TimeoutError",
    "ConnectTimeout",
    "ResponseHeaderTimeout",
    "ReadTimeout",
    "PoolTimeout",
    "WriteTimeout",
    "Cancelled",
    "TooManyRedirects",
    "UnrewindableBodyError",
    "HTTPStatusError",
    "InvalidRequest",
]


class HTTPError(Exception):
    """Base of every fasttransport error."""

    def __init__(self, message: str, *, method: Optional[str] = None,
                 url: Optional[str] = None, **extra: Any) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        for k, v in extra.items():
            setattr(self, k, v)


class TransportError(HTTPError):
    """The exchange failed: nothing, or only part of a response, arrived."""


class ConnectError(TransportError):
    """DNS failure, connection refused, unreachable host."""


class TLSError(TransportError):
    """TLS handshake or certificate verification failed."""


class RemoteProtocolError(TransportError):
    """Malformed or truncated response, bad chunking, header block too large,
    connection closed or reset by the server mid-exchange."""


class BodyTooLarge(RemoteProtocolError):
    """The response body (after decoding) is longer than ``max_body_size``;
    the connection is closed."""


class TimeoutError(TransportError, builtins.TimeoutError):  # noqa: A001 - API name
    """A deadline passed; also a builtins.TimeoutError."""


class ConnectTimeout(TimeoutError):
    """dial_timeout, the connect part of an ft.Timeout (or the total
    timeout) passed while looking the host up or connecting."""


class ResponseHeaderTimeout(TimeoutError):
    """response_header_timeout passed after the request was written."""


class ReadTimeout(TimeoutError):
    """The total timeout passed while awaiting headers or reading the body,
    or nothing was received for the read part of an ft.Timeout."""


class WriteTimeout(TimeoutError):
    """Nothing could be sent for the write part of an ft.Timeout."""


class PoolTimeout(TimeoutError):
    """The timeout (total, or the pool part of an ft.Timeout) passed while
    waiting for a connection slot (max_conns_per_host)."""


class Cancelled(TransportError):
    """The exchange was cancelled through a CancelToken."""


class TooManyRedirects(HTTPError):
    """The redirect limit was reached; ``response`` is the last response and
    ``history`` the chain."""

    response: Response
    history: List[Response]


class UnrewindableBodyError(HTTPError):
    """A 307/308 redirect asks for the request body again, but it came from a
    one-shot source (an iterator, a generator, a file that cannot seek);
    ``response`` is the redirect response (body closed) and ``history`` the
    chain. Send a bytes body (or a seekable file) to have it followed."""

    response: Response
    history: List[Response]


class HTTPStatusError(HTTPError):
    """Raised by Response.raise_for_status() for 4xx and 5xx; has ``response``."""

    def __init__(self, message: str, *, response: Response, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.response = response


class InvalidRequest(HTTPError, ValueError):
    """The request was refused before anything was sent."""
