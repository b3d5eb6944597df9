"""Differential tests: our response parser (Go's rules) against h11.

Hypothesis generates response heads and chunked bodies, including edge bytes,
obsolete line folding, Content-Length/Transfer-Encoding combinations and
HEAD/1xx/204/304 responses, and feeds each to fasttransport._parser and to
an h11 client connection. Both must accept or both reject; when both accept
they must agree on the status line, the header fields and the framing.

Go's response parsing rules differ from h11's in a few
places. Each difference is a named predicate in KNOWN_DIFFERENCES below, with
the reason beside it; a disagreement is accepted only when one of them
explains it, and is then recorded with hypothesis.event so that
``pytest --hypothesis-show-statistics`` shows how often each one fired.
Everything else is compared exactly.

FT_DIFF_EXAMPLES sets the number of examples per test (default 300).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import h11
from fasttransport._parser import ChunkedDecoder, ParseError, parse_response_head
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

MAX_EXAMPLES = int(os.environ.get("FT_DIFF_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Bytes at the edges of the header grammar: HT, SP, CTLs h11 and Go treat
# differently, VT/FF (whitespace to h11's regexes), DEL, obs-text, lone CR.
EDGE = b"\t \x00\x01\x0b\x0c\x1f\x7f\x80\xa0\xff\r"
H11_REASON_RE = re.compile(rb"(?:[ \t]|[^\x00\s])*")
# A body the framing is probed with: valid chunked coding (5 data bytes)
# followed by filler, so each framing yields a different result.
PROBE = b"5\r\nhello\r\n0\r\n\r\n" + b"x" * 32
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------
# Generated cases
# --------------------------------------------------------------------------

@dataclass
class Field:
    name: bytes
    value: bytes
    folds: list = field(default_factory=list)  # continuation lines, each starts with SP/HT
    eol: bytes = b"\r\n"

    def wire(self) -> bytes:
        out = self.name + b":" + self.value + self.eol
        for f in self.folds:
            out += f + self.eol
        return out


@dataclass
class Head:
    version: bytes
    sep: bytes        # between the version and the code
    code: bytes
    reason: Optional[bytes]  # None: no reason and no space after the code
    fields: list
    eol: bytes
    method: str

    def wire(self) -> bytes:
        line = self.version + self.sep + self.code
        if self.reason is not None:
            line += b" " + self.reason
        return line + self.eol + b"".join(f.wire() for f in self.fields) + self.eol

    @property
    def status(self) -> Optional[int]:
        if len(self.code) == 3 and self.code.isdigit():
            return int(self.code)
        return None

    def version_tuple(self):
        v = self.version
        if len(v) == 8 and v.startswith(b"HTTP/") and v[6:7] == b"." and \
                v[5:6].isdigit() and v[7:8].isdigit():
            return int(v[5:6]), int(v[7:8])
        return None


FRAMING_NAMES = [b"Content-Length", b"Transfer-Encoding", b"Connection", b"Trailer"]


def _case_variants(name: bytes):
    return st.sampled_from([name, name.lower(), name.upper(), name.swapcase()])


def _bytes_from(alphabet: bytes, min_size=0, max_size=12):
    return st.lists(st.sampled_from(list(alphabet)), min_size=min_size,
                    max_size=max_size).map(bytes)


valid_value = _bytes_from(TCHAR + b" \t,;=\"/\x80\xff", max_size=16)
edge_value = _bytes_from(TCHAR[:20] + EDGE, max_size=8)
cl_values = st.sampled_from([
    b"0", b"5", b"7", b"15", b"47", b" 7 ", b"\t7", b"05", b"0000", b"+3", b"-1", b"", b"  ",
    b"1, 1", b"1,1", b"1, 2", b",", b"5 5", b"0x5", b"1e3",
    b"9223372036854775807", b"9223372036854775808", b"99999999999999999999",
    b"000000000000000000005", b"\xd9\xa5",
])
te_values = st.sampled_from([
    b"chunked", b"Chunked", b"CHUNKED", b" chunked ", b"gzip", b"gzip, chunked", b"chunked, gzip",
    b"identity", b"", b"chunked,", b"x-custom",
])
conn_values = st.sampled_from([
    b"close", b"Close", b"keep-alive", b"Keep-Alive", b"keep-alive, close", b"upgrade",
    b" close ,x", b"closed", b"", b"\xc3\xa9close",
])
trailer_values = st.sampled_from([
    b"X-Sum", b"X-Sum, X-Other", b"Content-Length", b"transfer-encoding", b"trailer", b"",
    b", ,Content-Length", b"X, Y",
])
valid_name = st.one_of(
    _bytes_from(TCHAR, min_size=1, max_size=10),
    st.sampled_from([b"X-A", b"content-type", b"set-cookie", b"a--b", b"-x", b"x-"]),
)
# spaces in the name (Go accepts them), other invalid bytes, an empty name
edge_name = st.one_of(
    st.tuples(_bytes_from(TCHAR, min_size=1, max_size=6),
              st.sampled_from([b" ", b"  ", b"\t", b"(", b"\x80", b"\x00", b""]),
              _bytes_from(TCHAR, max_size=2)).map(lambda t: t[0] + t[1] + t[2]),
    st.just(b""),
)


def _rare(draw, n=12) -> bool:
    """True about once in n draws (hypothesis still shrinks towards False)."""
    return draw(st.integers(0, n - 1)) == n - 1


@st.composite
def fields(draw, eol):
    kind = draw(st.integers(0, 9))
    if kind < 4:
        name = draw(_case_variants(FRAMING_NAMES[kind]))
        value = draw([cl_values, te_values, conn_values, trailer_values][kind])
    else:
        name = draw(edge_name if _rare(draw) else valid_name)
        value = draw(edge_value if _rare(draw) else valid_value)
    pad = draw(st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"]))
    tail = draw(st.sampled_from([b"", b"", b" ", b"\t "]))
    folds = []
    if draw(st.integers(0, 7)) == 0:
        for _ in range(draw(st.integers(1, 2))):
            lead = draw(st.sampled_from([b" ", b"\t", b"   "]))
            folds.append(lead + draw(st.one_of(valid_value, st.just(b""))) +
                         draw(st.sampled_from([b"", b" "])))
    line_eol = eol if draw(st.integers(0, 9)) else draw(st.sampled_from([b"\r\n", b"\n"]))
    return Field(name, pad + value + tail, folds, line_eol)


@st.composite
def heads(draw):
    if _rare(draw, 6):
        version = draw(st.sampled_from([b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/0.0",
                                        b"HTTP/9.9", b"http/1.1", b"HTTP/1.x", b"HTTP/11",
                                        b"HTTP/1.1\t", b"ICY"]))
    else:
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    sep = draw(st.sampled_from([b"  ", b"   "])) if _rare(draw) else b" "
    if _rare(draw, 6):
        code = draw(st.sampled_from([b"000", b"099", b"999", b"+12", b"-00", b"-12", b"20",
                                     b"2000", b"2x0", b""]))
    else:
        code = draw(st.sampled_from([b"200", b"201", b"204", b"206", b"301", b"304", b"404",
                                     b"500", b"599", b"100", b"101", b"103", b"199"]))
    if _rare(draw):
        reason = draw(_bytes_from(b"abcXYZ \t" + EDGE, max_size=6))
    else:
        reason = draw(st.sampled_from([None, b"OK", b"", b"Not Found", b"OK  ", b" x",
                                       b"\x80\xff"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    fl = draw(st.lists(fields(eol), max_size=6))
    method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD"]))
    return Head(version, sep, code, reason, fl, eol, method)


# --------------------------------------------------------------------------
# The two parsers
# --------------------------------------------------------------------------

def canonical(name: bytes) -> bytes:
    """Go's CanonicalMIMEHeaderKey for a name of token bytes."""
    out, upper = bytearray(), True
    for c in name:
        ch = bytes([c])
        out += ch.upper() if upper else ch.lower()
        upper = ch == b"-"
    return bytes(out)


@dataclass
class Outcome:
    ok: bool
    error: str = ""
    status: int = 0
    reason: bytes = b""
    version: tuple = ()
    headers: list = field(default_factory=list)   # (name, value) bytes
    deleted: list = field(default_factory=list)
    informational: bool = False
    body: bytes = b""          # PROBE fed after the head, then EOF
    complete_before_eof: bool = False
    complete: bool = False
    keep_alive: bool = False
    content_length: int = -1


def ours(h: Head) -> Outcome:
    try:
        r = parse_response_head(h.wire(), h.method == "HEAD")
    except ParseError as e:
        return Outcome(False, str(e))
    assert r is not None and r.head_len == len(h.wire())
    enc = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in r.headers]
    dele = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in r.deleted]
    o = Outcome(True, status=r.status, reason=r.reason.encode("latin-1"), version=r.version,
                headers=enc, deleted=dele, keep_alive=not r.close,
                content_length=r.content_length)
    o.informational = 100 <= r.status <= 199
    if r.framing == "none":
        o.body, o.complete_before_eof, o.complete = b"", True, True
    elif r.framing == "length":
        n = r.body_length
        o.body = PROBE[:n]
        o.complete_before_eof = o.complete = n <= len(PROBE)
    elif r.framing == "chunked":
        o.body, o.complete_before_eof, o.complete = b"hello", True, True
    else:
        assert r.framing == "close"
        o.body, o.complete_before_eof, o.complete = PROBE, False, True
    return o


def h11_client(method: str, upgrade: bool) -> h11.Connection:
    c = h11.Connection(h11.CLIENT)
    hdrs = [("Host", "example")]
    if upgrade:  # h11 accepts a 101 only in answer to an upgrade proposal
        hdrs += [("Connection", "upgrade"), ("Upgrade", "example")]
    c.send(h11.Request(method=method, target="/", headers=hdrs))
    c.send(h11.EndOfMessage())
    return c


def theirs(h: Head) -> Outcome:
    c = h11_client(h.method, upgrade=h.status == 101)
    c.receive_data(h.wire())
    try:
        ev = c.next_event()
    except h11.RemoteProtocolError as e:
        return Outcome(False, str(e))
    assert isinstance(ev, (h11.Response, h11.InformationalResponse)), ev
    o = Outcome(True, status=ev.status_code, reason=bytes(ev.reason),
                version=tuple(int(x) for x in ev.http_version.split(b".")),
                headers=[(bytes(n), bytes(v)) for n, v in ev.headers.raw_items()])
    if isinstance(ev, h11.InformationalResponse):
        o.informational = True
        return o
    # Probe the framing: feed PROBE, then EOF.
    body = bytearray()
    c.receive_data(PROBE)
    eof_sent = False
    try:
        for _ in range(len(PROBE) + 8):
            ev = c.next_event()
            if isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                o.complete = True
                o.complete_before_eof = not eof_sent
                break
            elif ev is h11.NEED_DATA and not eof_sent:
                c.receive_data(b"")
                eof_sent = True
            else:
                raise AssertionError(f"unexpected h11 event {ev!r}")
    except h11.RemoteProtocolError:
        assert eof_sent, "h11 rejected the probe body before EOF"
    o.body = bytes(body)
    if o.complete:
        o.keep_alive = c.their_state is h11.DONE
    return o


# --------------------------------------------------------------------------
# Known differences between Go's rules and h11's
# --------------------------------------------------------------------------

def _field_value(f: Field) -> bytes:
    """The value bytes after the colon, continuation lines included."""
    return f.value + b"".join(f.folds)


def _trim(v: bytes) -> bytes:
    return v.strip(b" \t")


def _lines(f: Field) -> list:
    """The field's line contents as a line reader sees them: a CR that the
    generator put just before a bare LF is part of the line end."""
    out = [f.value] + list(f.folds)
    if f.eol == b"\n":
        out = [x[:-1] if x.endswith(b"\r") else x for x in out]
    return out


def _go_value(f: Field) -> bytes:
    """The value Go's readMIMEHeader gives: each line trimmed, continuation
    lines joined with one space, leading SP/HT dropped."""
    first, *rest = _lines(f)
    return (_trim(first) + b"".join(b" " + _trim(c) for c in rest)).lstrip(b" \t")


def _h11_value(f: Field) -> bytes:
    """The value h11 gives: continuation lines joined with one space after
    their leading whitespace, then the ends trimmed."""
    first, *rest = _lines(f)
    return _trim(first + b"".join(b" " + c.lstrip(b" \t") for c in rest))


def _is_go_name(n: bytes) -> bool:
    return bool(n) and n[:1] != b" " and all(c in TCHAR or c == 0x20 for c in n)


def _is_named(f: Field, name: bytes) -> bool:
    return f.name.lower() == name.lower()


def _go_honours_te(h: Head) -> bool:
    """Go reads Transfer-Encoding only from HTTP/1.1 on; 0.0 counts as 1.1."""
    v = h.version_tuple()
    return v is not None and (v == (0, 0) or v >= (1, 1))


# Each predicate says whether the case carries a feature on which Go (our
# spec) and h11 legitimately disagree.

def status_spaces(h: Head) -> bool:
    """Go tolerates extra spaces before the status code (strings.TrimLeft
    in ReadResponse); h11's status-line grammar has exactly one SP."""
    return len(h.sep) > 1


def status_sign(h: Head) -> bool:
    """Go parses the 3-byte code with strconv.Atoi, so '+12' and '-00' are
    accepted; h11 wants three digits."""
    return h.code[:1] in (b"+", b"-")


def status_below_100(h: Head) -> bool:
    """Go accepts any code 000-999 (000 included); h11 only builds events for
    100-999 (InformationalResponse or Response)."""
    return h.status is not None and h.status < 100


def reason_bytes(h: Head) -> bool:
    """Go takes the rest of the status line as the reason, whatever its bytes;
    h11's reason-phrase excludes NUL, CR, VT and FF."""
    if h.reason is None:
        return False
    r = h.reason
    if h.eol == b"\n" and r.endswith(b"\r"):
        r = r[:-1]  # that CR and the bare LF are the line end, to both
    return H11_REASON_RE.fullmatch(r) is None


def space_in_name(fields_: list) -> bool:
    """Go accepts spaces in a field name, before the colon included, and then
    leaves the name as it is (canonicalMIMEHeaderKey, go.dev/issue/34540;
    net/http TestInvalidHeaderResponse: "Foo : bar" gives key "Foo "); h11
    rejects the line."""
    return any(b" " in f.name and _is_go_name(f.name) for f in fields_)


def value_ctl(fields_: list) -> bool:
    """h11's field-vchar is [^\\x00\\s], so it takes CTL bytes 0x01-0x08,
    0x0e-0x1f and DEL in values; Go's validHeaderValueByte rejects them."""
    for f in fields_:
        v = _field_value(f)
        if any(c in v for c in b"\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x1f\x7f"):
            return True
    return False


def _go_cl_ok(v: bytes) -> bool:
    t = v.strip(b" \t")
    return t.isdigit() and t.isascii() and int(t) <= INT64_MAX


def _h11_cl_ok(v: bytes) -> bool:
    items = {x.strip() for x in _trim(v).split(b",")}
    if len(items) != 1:
        return False
    x = items.pop()
    return re.fullmatch(rb"[0-9]+", x) is not None and len(x) <= 20


def content_length_forms(h: Head) -> bool:
    """Go parses Content-Length with strconv.ParseUint(v, 10, 63): one number,
    at most 2**63-1, any number of leading zeros. h11 splits the value on
    commas ("1, 1" is 1), allows at most 20 digits and no upper bound."""
    return any(_is_named(f, b"Content-Length") and
               _go_cl_ok(_go_value(f)) != _h11_cl_ok(_h11_value(f))
               for f in h.fields)


def te_before_http11(h: Head) -> bool:
    """Go ignores (and deletes) Transfer-Encoding before HTTP/1.1, so the body
    is length- or close-delimited and an unknown coding is no error; h11
    honours the field on every version."""
    return not _go_honours_te(h) and any(_is_named(f, b"Transfer-Encoding") for f in h.fields)


def trailer_key(h: Head) -> bool:
    """Go rejects a chunked response whose Trailer field names a framing
    field (fixTrailer: "bad trailer key"); h11 ignores Trailer."""
    return any(_is_named(f, b"Trailer") for f in h.fields)


def fold_whitespace(fields_: list) -> bool:
    """Obsolete folding: Go trims each line and joins them with one space
    (so an empty continuation leaves a trailing space); h11 keeps the first
    line's trailing whitespace and trims only the ends of the joined value.
    Values of folded fields are compared with whitespace runs collapsed."""
    return any(f.folds for f in fields_)


def http10_keep_alive(h: Head) -> bool:
    """Go reuses an HTTP/1.0 connection whose response says
    "Connection: keep-alive" (shouldClose); h11 never keeps a pre-1.1
    connection alive."""
    return h.version_tuple() == (1, 0) and any(_is_named(f, b"Connection") for f in h.fields)


def folded_framing_field(h: Head) -> bool:
    """A folded framing field whose value the two join differently (see
    FOLD_WHITESPACE): an empty continuation line leaves Go's value with a
    trailing space, so "Transfer-Encoding: chunked" folded that way is
    "chunked " to Go (unsupported) and "chunked" to h11."""
    return any(f.folds and _go_value(f) != _h11_value(f) and
               any(_is_named(f, n) for n in FRAMING_NAMES) for f in h.fields)


KNOWN_DIFFERENCES = {
    # name: (predicate, direction) -- direction says who accepts: "go", "h11"
    # or "both" (the case is accepted by both but some output differs).
    "STATUS_SPACES": status_spaces,
    "STATUS_SIGN": status_sign,
    "STATUS_BELOW_100": status_below_100,
    "REASON_BYTES": reason_bytes,
    "SPACE_IN_NAME": lambda h: space_in_name(h.fields),
    "VALUE_CTL": lambda h: value_ctl(h.fields),
    "CONTENT_LENGTH_FORMS": content_length_forms,
    "TE_BEFORE_HTTP11": te_before_http11,
    "TRAILER_KEY": trailer_key,
    "FOLDED_FRAMING_FIELD": folded_framing_field,
}

# Only these may explain that one side accepts and the other rejects.
ACCEPT_DIFFERENCES = {
    "go": ["STATUS_SPACES", "STATUS_SIGN", "STATUS_BELOW_100", "REASON_BYTES",
           "SPACE_IN_NAME", "CONTENT_LENGTH_FORMS", "TE_BEFORE_HTTP11",
           "FOLDED_FRAMING_FIELD"],
    "h11": ["VALUE_CTL", "CONTENT_LENGTH_FORMS", "TE_BEFORE_HTTP11", "TRAILER_KEY",
            "FOLDED_FRAMING_FIELD"],
}


# --------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------

def _ws_collapse(v: bytes) -> bytes:
    return re.sub(rb"[ \t]+", b" ", v).strip(b" ")


def expected_go_fields(h: Head, t: Outcome):
    """h11's fields with Go's framing rules applied: the live fields and the
    lower-cased names of the deleted ones."""
    honours_te = _go_honours_te(h)
    has_te = any(n.lower() == b"transfer-encoding" for n, _ in t.headers)
    chunked = honours_te and has_te
    body_allowed = not (100 <= t.status <= 199 or t.status in (204, 304))
    ver = t.version
    live, deleted = [], []
    conn_close = any(
        n.lower() == b"connection" and
        any(x.strip(b" \t").lower() == b"close" for x in v.split(b","))
        for n, v in t.headers)
    for n, v in t.headers:
        ln = n.lower()
        gone = (
            ln == b"transfer-encoding"
            or (ln == b"content-length" and chunked and body_allowed and h.method != "HEAD")
            or (ln == b"trailer" and chunked)
            or (ln == b"connection" and conn_close and ver[0] >= 1 and ver != (1, 0))
        )
        (deleted if gone else live).append((canonical(n), v))
    return live, sorted(n.lower() for n, _ in deleted)


def check_folded(fields_: list, name: bytes, ov: bytes, tv: bytes) -> None:
    """FOLD_WHITESPACE: each side joined the lines its own way (exactly as
    _go_value and _h11_value say), and the results differ at most in runs
    of whitespace."""
    same_name = [f for f in fields_ if canonical(f.name) == name]
    go_values = {_go_value(f) for f in same_name}
    if name == b"Content-Length":  # fixLength keeps merged duplicates trimmed
        go_values |= {_trim(v) for v in go_values}
    assert ov in go_values, ov
    assert tv in {_h11_value(f) for f in same_name}, tv
    assert _ws_collapse(ov) == _ws_collapse(tv), (ov, tv)


def compare_heads(h: Head, o: Outcome, t: Outcome) -> None:
    assert o.status == t.status
    assert o.version == t.version
    # h11 strips one CR before a bare LF line end as Go does; the reason is
    # the same bytes on both sides.
    assert o.reason == t.reason
    live, deleted = expected_go_fields(h, t)
    folded = {canonical(f.name) for f in h.fields if f.folds}
    assert len(o.headers) == len(live), (o.headers, live)
    for (on, ov), (tn, tv) in zip(o.headers, live):
        assert on == tn
        if on in folded:
            event("difference: FOLD_WHITESPACE")
            check_folded(h.fields, on, ov, tv)
        else:
            assert ov == tv, (on, ov, tv)
    # Go also marks merged duplicate Content-Length fields deleted.
    go_deleted = sorted(n.lower() for n, _ in o.deleted)
    assert [n for n in go_deleted if n != b"content-length"] == \
        [n for n in deleted if n != b"content-length"]
    if o.informational or t.informational:
        assert o.informational and t.informational
        assert o.body == b"" and o.complete_before_eof
        return
    if te_before_http11(h) and any(n.lower() == b"transfer-encoding" for n, _ in t.headers) \
            and h.method != "HEAD" and h.status not in (204, 304):
        event("difference: TE_BEFORE_HTTP11")
        return
    assert (o.body, o.complete_before_eof, o.complete) == \
        (t.body, t.complete_before_eof, t.complete)
    if o.complete and not o.complete_before_eof:
        # A close-delimited body ends at EOF: no connection is left to reuse
        # and h11 reports no keep-alive state for it; Go's flag says close.
        assert not o.keep_alive
    elif o.complete and t.complete:
        if http10_keep_alive(h) and o.keep_alive != t.keep_alive:
            event("difference: HTTP10_KEEP_ALIVE")
            assert o.keep_alive and not t.keep_alive
        else:
            assert o.keep_alive == t.keep_alive
    if h.method != "HEAD" and o.content_length >= 0:
        cl = [v for n, v in t.headers if n.lower() == b"content-length"]
        if cl:
            assert o.content_length == (0 if h.status in (204, 304) else int(cl[0]))


def explain(h: Head, accepted_by: str) -> Optional[str]:
    for name in ACCEPT_DIFFERENCES[accepted_by]:
        if KNOWN_DIFFERENCES[name](h):
            return name
    return None


@SETTINGS
@given(heads())
def test_heads_agree_with_h11(h):
    note(f"wire: {h.wire()!r}")
    o, t = ours(h), theirs(h)
    note(f"ours: {o}")
    note(f"h11: {t}")
    if o.ok != t.ok:
        who = "go" if o.ok else "h11"
        why = explain(h, who)
        assert why is not None, f"only {who} accepts, unexplained"
        event(f"difference: {why} ({who} accepts)")
        return
    if not o.ok:
        event("both reject")
        return
    event("both accept")
    compare_heads(h, o, t)


# --------------------------------------------------------------------------
# Chunked bodies
# --------------------------------------------------------------------------

@dataclass
class Chunked:
    chunks: list          # (size line without CRLF, data, terminator after data)
    last: bytes           # last-chunk line without CRLF
    last_eol: bytes
    trailers: list        # Field
    end: bytes            # the empty line closing the trailer section
    cut: Optional[int] = None  # truncate the stream at this many bytes

    def full(self) -> bytes:
        out = b"".join(line + b"\r\n" + data + term for line, data, term in self.chunks)
        return out + self.last + self.last_eol + b"".join(f.wire() for f in self.trailers) + \
            self.end

    def wire(self) -> bytes:
        out = self.full()
        return out if self.cut is None else out[:self.cut]

    def terminator_offsets(self):
        """Stream offsets of each chunk's data terminator, with the terminator."""
        pos, out = 0, []
        for line, data, term in self.chunks:
            pos += len(line) + 2 + len(data)
            out.append((pos, term))
            pos += len(term)
        return out

    def lines(self):
        return [line for line, _, _ in self.chunks] + [self.last]


ext_text = _bytes_from(b"abc=;\"xyz \t,\x00\x80\xff", max_size=10)
ext_text_cr = _bytes_from(b"abc=; \t\r", max_size=6)


@st.composite
def size_lines(draw, size):
    if _rare(draw, 20):
        digits = draw(st.sampled_from(["%017x", "%020x"])) % size
    else:
        digits = draw(st.sampled_from(["%x", "%X", "%04x", "%016x"])) % size
    line = digits.encode()
    if _rare(draw, 4):
        line += b";" + draw(ext_text_cr if _rare(draw, 10) else ext_text)
    line += draw(st.sampled_from([b"", b"", b"", b" ", b"\t", b" \t"]))
    if draw(st.integers(0, 30)) == 0:  # a corrupted line
        line = draw(st.sampled_from([b"", b" " + line, b"0x" + line, line + b"\r", b"g",
                                     b"-1", line.replace(b";", b" ;")]))
    return line


@st.composite
def chunked_bodies(draw):
    chunks = []
    for data in draw(st.lists(st.binary(min_size=1, max_size=24), max_size=5)):
        line = draw(size_lines(len(data)))
        term = b"\r\n" if draw(st.integers(0, 20)) else draw(
            st.sampled_from([b"\n", b"\r", b"XX", b"\r\r\n", b"", b"x\r\n"]))
        if draw(st.integers(0, 30)) == 0:  # a bare LF ends the size line
            line = line + b"\n" + data
            data = b""
        chunks.append((line, data, term))
    last = draw(size_lines(0))
    last_eol = b"\r\n" if draw(st.integers(0, 20)) else b"\n"
    trailers = draw(st.lists(fields(b"\r\n"), max_size=3))
    end = draw(st.sampled_from([b"\r\n"] * 4 + [b"\n"]))
    c = Chunked(chunks, last, last_eol, trailers, end)
    if draw(st.integers(0, 5)) == 0:
        c.cut = draw(st.integers(0, max(0, len(c.full()) - 1)))
    return c


def ours_chunked(data: bytes):
    d = ChunkedDecoder()
    try:
        body = d.feed(data)
    except ParseError as e:
        return ("error", e.partial, str(e))
    if not d.done:
        return ("incomplete", body, "")
    trailers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in d.trailers]
    return ("done", body, trailers)


def theirs_chunked(data: bytes):
    c = h11_client("GET", upgrade=False)
    c.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    ev = c.next_event()
    assert isinstance(ev, h11.Response)
    if data:  # receive_data(b"") would mean EOF
        c.receive_data(data)
    body = bytearray()
    eof_sent = False
    try:
        for _ in range(4 * len(data) + 8):
            ev = c.next_event()
            if isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return ("done", bytes(body), [(bytes(n), bytes(v))
                                              for n, v in ev.headers.raw_items()])
            elif ev is h11.NEED_DATA and not eof_sent:
                c.receive_data(b"")
                eof_sent = True
            else:
                raise AssertionError(f"unexpected h11 event {ev!r}")
    except h11.RemoteProtocolError as e:
        return ("incomplete" if eof_sent else "error", bytes(body), str(e))
    raise AssertionError("h11 did not finish")


def chunk_size_digits(c: Chunked) -> bool:
    """Go allows at most 16 hex digits ("http chunk length too large"); h11
    allows up to 20."""
    return any(len(re.match(rb"[0-9a-fA-F]*", x).group()) > 16 for x in c.lines())


def chunk_line_cr(c: Chunked) -> bool:
    """Go rejects a CR anywhere in a chunk-size line but before its LF
    ("invalid CR in chunked line"); h11 lets a chunk extension hold any
    byte but LF, CR included."""
    return any(b";" in x and b"\r" in x.split(b";", 1)[1] for x in c.lines())


def bare_lf_checked_early(c: Chunked) -> bool:
    """Go rejects a chunk-size line ending in a bare LF as soon as the LF
    arrives; h11 scans for CRLF and validates the line only then, so when no
    CRLF follows the stream is an error to Go and incomplete to h11."""
    return any(b"\n" in x for x in c.lines()) or c.last_eol == b"\n"


def footer_checked_early(c: Chunked) -> bool:
    """After chunk data Go reads the two-byte CRLF whole (io.ReadFull), so a
    stream cut one byte into a bad terminator is an unexpected EOF to Go;
    h11 checks the byte it has and reports a malformed footer."""
    return c.cut is not None and any(
        c.cut == off + 1 and term[:1] != b"\r" for off, term in c.terminator_offsets())


def trailer_framing_fields(c: Chunked) -> bool:
    """h11 applies its Content-Length and Transfer-Encoding rules to trailer
    fields too (it merges, validates and may reject them); Go reads trailer
    fields as plain fields."""
    return any(_is_named(f, b"Content-Length") or _is_named(f, b"Transfer-Encoding")
               for f in c.trailers)


# name: (predicate, the (ours, h11) outcomes it explains)
CHUNKED_DIFFERENCES = {
    # ("error", "error"): both fail, but h11 fails further on, after more data
    "CHUNK_SIZE_DIGITS": (chunk_size_digits, {("error", "done"), ("error", "incomplete"),
                                              ("error", "error")}),
    "CHUNK_LINE_CR": (chunk_line_cr, {("error", "done"), ("error", "incomplete"),
                                      ("error", "error")}),
    "BARE_LF_CHECKED_EARLY": (bare_lf_checked_early, {("error", "incomplete")}),
    "FOOTER_CHECKED_EARLY": (footer_checked_early, {("incomplete", "error")}),
    "TRAILER_FRAMING_FIELDS": (trailer_framing_fields, {("done", "error")}),
    # trailer fields follow the header rules, with the same differences
    "SPACE_IN_NAME": (lambda c: space_in_name(c.trailers), {("done", "error")}),
    "VALUE_CTL": (lambda c: value_ctl(c.trailers), {("error", "done")}),
}


def _drop_framing_fields(fl):
    return [(n, v) for n, v in fl if n.lower() not in (b"content-length", b"transfer-encoding")]


@SETTINGS
@given(chunked_bodies())
def test_chunked_bodies_agree_with_h11(c):
    data = c.wire()
    note(f"wire: {data!r}")
    o, t = ours_chunked(data), theirs_chunked(data)
    note(f"ours: {o!r}")
    note(f"h11: {t!r}")
    # Streams are built so that Go's own limits (4 KiB lines, the non-data
    # overhead guard) cannot trip; h11 has neither.
    assert len(data) < 4096
    why = [name for name, (pred, outcomes) in CHUNKED_DIFFERENCES.items()
           if (o[0], t[0]) in outcomes and pred(c)]
    if o[0] != t[0]:
        assert why, f"ours {o[0]}, h11 {t[0]}: unexplained"
        event(f"difference: {why[0]}")
        return
    event(f"both {o[0]}")
    # The data delivered before the end (done, error or EOF) is the same,
    # unless a difference moved where one of them stopped.
    if o[1] != t[1]:
        assert why, f"both {o[0]}, different data: unexplained"
        event(f"difference: {why[0]} (both {o[0]})")
        return
    if o[0] != "done":
        return
    ot, tt = o[2], [(canonical(n), v) for n, v in t[2]]
    if trailer_framing_fields(c):
        event("difference: TRAILER_FRAMING_FIELDS")
        ot, tt = _drop_framing_fields(ot), _drop_framing_fields(tt)
    folded = {canonical(f.name) for f in c.trailers if f.folds}
    assert [n for n, _ in ot] == [n for n, _ in tt]
    for (n, ov), (_, tv) in zip(ot, tt):
        if n in folded:
            event("difference: FOLD_WHITESPACE")
            check_folded(c.trailers, n, ov, tv)
        else:
            assert ov == tv


# --------------------------------------------------------------------------
# Fixed examples of each documented difference (they must stay true)
# --------------------------------------------------------------------------

def _h(status_line: bytes, *lines: bytes, method: str = "GET") -> Head:
    version, rest = status_line.split(b" ", 1)
    sep = b" " * (len(rest) - len(rest.lstrip(b" ")) + 1)
    rest = rest.lstrip(b" ")
    code, _, reason = rest.partition(b" ")
    flds = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            flds[-1].folds.append(line)
            continue
        n, _, v = line.partition(b":")
        flds.append(Field(n, v))
    return Head(version, sep, code, reason if b" " in rest else None, flds, b"\r\n", method)


def test_documented_differences_hold():
    cases = [
        ("STATUS_SPACES", _h(b"HTTP/1.1   200 OK"), "go"),
        ("STATUS_SIGN", _h(b"HTTP/1.1 +20 OK"), "go"),
        ("STATUS_BELOW_100", _h(b"HTTP/1.1 000 Zero"), "go"),
        ("REASON_BYTES", _h(b"HTTP/1.1 200 O\x00K"), "go"),
        ("SPACE_IN_NAME", _h(b"HTTP/1.1 200 OK", b"Foo : bar", b"Content-Length: 0"), "go"),
        ("VALUE_CTL", _h(b"HTTP/1.1 200 OK", b"X: a\x01b", b"Content-Length: 0"), "h11"),
        ("CONTENT_LENGTH_FORMS", _h(b"HTTP/1.1 200 OK", b"Content-Length: 1, 1"), "h11"),
        ("CONTENT_LENGTH_FORMS", _h(b"HTTP/1.1 200 OK", b"Content-Length: 000000000000000000005"),
         "go"),
        ("CONTENT_LENGTH_FORMS", _h(b"HTTP/1.1 200 OK", b"Content-Length: 9223372036854775808"),
         "h11"),
        ("TE_BEFORE_HTTP11", _h(b"HTTP/1.0 200 OK", b"Transfer-Encoding: gzip"), "go"),
        ("TRAILER_KEY", _h(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked",
                           b"Trailer: Content-Length"), "h11"),
    ]
    for name, h, who in cases:
        o, t = ours(h), theirs(h)
        assert (o.ok, t.ok) == ((True, False) if who == "go" else (False, True)), name
        assert KNOWN_DIFFERENCES[name](h), name
        assert explain(h, who) is not None, name
    # Accepted by both, with different results:
    h = _h(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked")
    o, t = ours(h), theirs(h)
    assert o.body == PROBE and t.body == b"hello"  # TE_BEFORE_HTTP11
    h = _h(b"HTTP/1.0 200 OK", b"Connection: keep-alive", b"Content-Length: 0")
    o, t = ours(h), theirs(h)
    assert o.keep_alive and not t.keep_alive  # HTTP10_KEEP_ALIVE
    # FOLD_WHITESPACE
    h = _h(b"HTTP/1.1 200 OK", b"X: a  ", b" b", b"Content-Length: 0")
    o, t = ours(h), theirs(h)
    assert o.headers[0] == (b"X", b"a b") and t.headers[0] == (b"X", b"a   b")
    h = _h(b"HTTP/1.1 200 OK", b"X: a", b" ", b"Content-Length: 0")
    o, t = ours(h), theirs(h)
    assert o.headers[0] == (b"X", b"a ") and t.headers[0] == (b"X", b"a")
    # chunked
    assert ours_chunked(b"00000000000000000005\r\nhello\r\n0\r\n\r\n")[0] == "error"
    assert theirs_chunked(b"00000000000000000005\r\nhello\r\n0\r\n\r\n")[0] == "done"
    assert ours_chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n")[0] == "error"
    assert theirs_chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n")[0] == "done"
