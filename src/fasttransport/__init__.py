"""fasttransport: an HTTP/1.1 client whose transport mirrors Go's net/http
Transport and Client, with the hot path in native code.

    import fasttransport as ft
    r = ft.get("http://127.0.0.1:8080/")
    print(r.status_code, r.headers["Content-Type"], len(r.content))

README.md describes the public API and the design; docs/ is the full
documentation (``mkdocs serve``).
"""

from ._core import CancelToken
from ._fetchresult import FetchResult  # the record of fasttransport.dask; no Dask import
from ._version import __version__
from .aio import AsyncClient
from .batch import Future, as_completed
from .client import Client, delete, get, head, options, patch, post, put, request
from .errors import (
    BodyTooLarge,
    Cancelled,
    ConnectError,
    ConnectTimeout,
    HTTPError,
    HTTPStatusError,
    InvalidRequest,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ResponseHeaderTimeout,
    TimeoutError,
    TLSError,
    TooManyRedirects,
    TransportError,
    UnrewindableBodyError,
    WriteTimeout,
)
from .headers import Headers
from .models import Request, Response, ResponseBody
from .options import Limits, Retry, Timeout
from .transport import Transport, TransportStats

__all__ = [
    "AsyncClient", "CancelToken", "Client", "FetchResult", "Future", "as_completed", "Headers",
    "Request", "Timeout", "Retry", "Limits", "WriteTimeout",
    "Response", "ResponseBody", "Transport",
    "TransportStats", "request", "get", "head", "post", "put", "patch", "delete", "options",
    "HTTPError", "TransportError", "ConnectError", "TLSError", "RemoteProtocolError",
    "BodyTooLarge",
    "TimeoutError", "ConnectTimeout", "ResponseHeaderTimeout", "ReadTimeout", "PoolTimeout",
    "Cancelled", "TooManyRedirects", "UnrewindableBodyError", "HTTPStatusError",
    "InvalidRequest", "__version__",
]
