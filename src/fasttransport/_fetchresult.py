"""``ft.FetchResult``: the outcome of one request fetched by
``fasttransport.dask`` — a small picklable record with no dependency, so
that ``fasttransport`` imports it without importing Dask."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple


class FetchResult(NamedTuple):
    """One request's outcome, as ``fasttransport.dask.fetch`` returns it.

    - url: the URL requested (base_url applied), as given.
    - method: the request method.
    - status: the final response's status code (after redirects); None when
      the request failed. A 4xx or 5xx status is a response, not an error.
    - final_url: the URL of the final response (differs from ``url`` after
      redirects); None when the request failed.
    - headers: the final response's headers, ``(name, value)`` pairs in
      wire order (repeated names kept); ``()`` when the request failed.
    - body: the response body (decoded as the Client decodes it); None when
      the request failed or the body was written to a file.
    - path: the file the body was written to (``body_dir=``), else None.
    - error: None, or ``"ExceptionClass: message"`` (the message names the
      method, the URL and the cause) when the request failed.
    - elapsed: seconds from the request's submission to its result,
      redirects included.
    """

    url: str
    method: str
    status: Optional[int]
    final_url: Optional[str]
    headers: Tuple[Tuple[str, str], ...]
    body: Optional[bytes]
    path: Optional[str]
    error: Optional[str]
    elapsed: float
