"""Request URLs: the fast path for common URLs (_URL._parse_plain) gives
what the general one (_URL._parse, through urlsplit) gives, and what goes
on the wire for them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fasttransport as ft
from fasttransport._urls import _URL

SLOTS = _URL.__slots__


def _both(raw):
    """(plain, general): the two parses of raw as dicts of their slots;
    plain is None where the fast path declines, general holds the error
    where the general path raises one."""
    plain = _URL.__new__(_URL)
    plain_d = {k: getattr(plain, k) for k in SLOTS} if plain._parse_plain(raw) else None
    general = _URL.__new__(_URL)
    try:
        general._parse(raw)
    except ft.InvalidRequest as e:
        return plain_d, str(e)
    return plain_d, {k: getattr(general, k) for k in SLOTS}


# pieces that the fast path takes, and pieces that it must leave to the
# general path (or that change what the general path gives)
_PIECES = st.sampled_from([
    "http://", "https://", "HTTP://", "ftp://", "a", "Z", "0", "9", ".", "-", "_", "~", ":",
    ":80", ":443", ":8080", ":0", ":65535", ":65536", ":99999", ":080", "/", "//", "?", "#",
    "&", "=", "%", "%41", "%zz", "@", "user@", "u:p@", "!", "$", "'", "(", ")", "*", "+", ",",
    ";", "[", "]", "[::1]", " ", "\t", "\n", "\x00", "\x7f", '"', "<", ">", "\\", "^", "`",
    "{", "|", "}", "é", "ü.de", "127.0.0.1", "example.com", "Example.COM", "/p/a/t/h",
    "?q=1&r=2", "#frag",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=12).map("".join))
def test_the_fast_path_agrees_with_the_general_one(raw):
    plain, general = _both(raw)
    if plain is not None:
        assert plain == general


@settings(max_examples=500, deadline=None)
@given(scheme=st.sampled_from(["http://", "https://"]),
       host=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
       port=st.one_of(st.none(), st.integers(0, 70000)),
       rest=st.from_regex(r"[/?#][A-Za-z0-9\-._~!$&'()*+,;=:@/?#%]{0,30}", fullmatch=True))
def test_common_urls_take_the_fast_path(scheme, host, port, rest):
    raw = scheme + host + ("" if port is None else f":{port}") + rest
    plain, general = _both(raw)
    if port is not None and port > 65535:
        assert plain is None and "invalid port" in general
    else:
        assert plain is not None and plain == general


@pytest.mark.parametrize("raw", [
    "http://u:secret@example.com/",       # userinfo
    "http://[::1]:8080/",                 # an IPv6 literal
    "http://example.com/a b",             # quoted by the general path
    "http://bücher.de/",                  # IDNA
    "HTTP://example.com/",                # scheme case
    "http://example.com:/",               # an empty port
    "http://example.com/%zz[x]",          # brackets in the path are quoted
])
def test_other_urls_take_the_general_path(raw):
    plain, general = _both(raw)
    assert plain is None and isinstance(general, dict)


@pytest.mark.parametrize("tail, target", [
    ("", "/echo"),
    ("?q=1&r=a%20b;c=(d)*~", "/echo?q=1&r=a%20b;c=(d)*~"),
    ("?", "/echo"),
    ("#frag", "/echo"),
    ("?x=1#frag?y", "/echo?x=1"),
    ("?u=a@b:c/d?e!$'+,", "/echo?u=a@b:c/d?e!$'+,"),
])
def test_common_urls_on_the_wire(http_server, tail, target):
    port = http_server.port
    with ft.Client() as c:
        for url, host in ((f"http://127.0.0.1:{port}/echo{tail}", f"127.0.0.1:{port}"),
                          (f"http://LocalHost:{port}/echo{tail}", f"LocalHost:{port}")):
            seen = c.get(url).json()
            assert seen["target"] == target
            assert dict((k.lower(), v) for k, v in seen["headers"])["host"] == host
