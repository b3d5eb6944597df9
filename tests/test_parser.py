"""Tests of the response parser (csrc/parser.c) through fasttransport._parser.

Every head is checked whole, at every prefix (incomplete until its blank line),
byte at a time and split in two at every point through the resumable head
finder, and with several header-array sizes (the parser asks for more room and
is called again on the same, partly rewritten, buffer). Every chunked stream is
decoded whole, byte at a time and in two pieces split at every point, with and
without a cap on data spans and with direct data reads; all must agree.
Expected error texts are Go's (net/http, net/textproto, internal/chunked).
"""
import unicodedata

import pytest
from fasttransport._parser import (
    ChunkedDecoder,
    HeadFinder,
    ParseError,
    bench_parse,
    find_head_end,
    go_quote,
    parse_fields,
    parse_response_head,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def raw_text(b: bytes) -> str:
    """How an error text holding raw (unquoted) bytes reads in Python."""
    return b.decode("utf-8", "surrogateescape")


def head(status, *fields, eol=b"\r\n"):
    """A complete response head: status line, fields, blank line."""
    lines = [status, *fields]
    enc = [x if isinstance(x, bytes) else x.encode("latin-1") for x in lines]
    return b"".join(line + eol for line in enc) + eol


def _parse_outcome(data, request_is_head, cap):
    try:
        return parse_response_head(data, request_is_head, cap)
    except ParseError as e:
        return ("error", str(e))


def head_all_ways(raw, request_is_head=False):
    """Check raw (exactly one complete head) fed every way; return the
    ParsedHead, or ("error", text)."""
    n = len(raw)
    assert find_head_end(raw) == n
    for i in range(n):
        assert find_head_end(raw[:i]) == 0, i
        assert parse_response_head(raw[:i], request_is_head) is None, i
    finder = HeadFinder()
    for i in range(n):
        assert finder.feed(raw[i:i + 1]) == (n if i == n - 1 else 0), i
    for i in range(n + 1):
        finder = HeadFinder()
        first = finder.feed(raw[:i])
        assert first == (n if i == n else 0), i
        assert finder.feed(raw[i:]) == n, i
    outcomes = [
        _parse_outcome(data, request_is_head, cap)
        for data in (raw, raw + b"BODY\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
        for cap in (0, 1, 2, 8, 64)
    ]
    for o in outcomes:
        assert o == outcomes[0]
    if not isinstance(outcomes[0], tuple) or outcomes[0][0] != "error":
        assert outcomes[0].head_len == n
    return outcomes[0]


def ok(raw, request_is_head=False):
    r = head_all_ways(raw, request_is_head)
    assert not (isinstance(r, tuple) and r[0] == "error"), r
    return r


def err(raw, request_is_head=False):
    r = head_all_ways(raw, request_is_head)
    assert isinstance(r, tuple) and r[0] == "error", r
    return r[1]


# --------------------------------------------------------------------------
# Finding the end of the head
# --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    (b"HTTP/1.1 200 OK\r\n\r\n", 19),
    (b"HTTP/1.1 200 OK\n\n", 17),
    (b"HTTP/1.1 200 OK\r\n\n", 18),
    (b"HTTP/1.1 200 OK\n\r\n", 18),
    (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", 25),
    (b"HTTP/1.1 200 OK\r\nA: b\n\r\n", 24),
    (b"\r\n", 2),
    (b"\n", 1),
    (b"\r\n\r\n", 2),
    (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\r\n\r\n", 25),
])
def test_find_head_end(raw, expected):
    assert find_head_end(raw) == expected
    finder = HeadFinder()
    got = [finder.feed(raw[i:i + 1]) for i in range(len(raw))]
    assert got == [0] * (expected - 1) + [expected] * (len(raw) - expected + 1)


@pytest.mark.parametrize("raw", [
    b"",
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\n\r",
    b"HTTP/1.1 200 OK\r\nA: b\r\n",
    b"HTTP/1.1 200 OK\r\r\n",            # "\r\r" is not an empty line
    b"HTTP/1.1 200 OK\r\nA: b\r\n\r\r\n",
    b"HTTP/1.1 200 OK\r\n \r\n",          # a line of spaces is not empty
    b"HTTP/1.1 200 OK\r\n\t\n",
    b"\r\r\r\r",
])
def test_find_head_end_incomplete(raw):
    assert find_head_end(raw) == 0
    assert parse_response_head(raw) is None
    finder = HeadFinder()
    assert all(finder.feed(raw[i:i + 1]) == 0 for i in range(len(raw)))


def test_find_head_end_resumes_linearly_on_a_long_head():
    raw = head("HTTP/1.1 200 OK", *[f"X-{i}: {'v' * 50}" for i in range(2000)])
    finder = HeadFinder()
    step = 7
    results = [finder.feed(raw[i:i + step]) for i in range(0, len(raw), step)]
    assert results[-1] == len(raw)
    assert all(r == 0 for r in results[:-1])


# --------------------------------------------------------------------------
# Status line (ReadResponse, ParseHTTPVersion)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("line, version, status, reason", [
    ("HTTP/1.1 200 OK", (1, 1), 200, "OK"),
    ("HTTP/1.0 404 Not Found", (1, 0), 404, "Not Found"),
    ("HTTP/1.1 200", (1, 1), 200, ""),
    ("HTTP/1.1 200 ", (1, 1), 200, ""),
    ("HTTP/1.1   200 OK", (1, 1), 200, "OK"),          # spaces before the code
    ("HTTP/1.1 200  OK", (1, 1), 200, " OK"),
    ("HTTP/1.1 200 OK then more words", (1, 1), 200, "OK then more words"),
    ("HTTP/1.1 000 Zero", (1, 1), 0, "Zero"),
    ("HTTP/1.1 999 Nines", (1, 1), 999, "Nines"),
    ("HTTP/1.1 100 Continue", (1, 1), 100, "Continue"),
    ("HTTP/1.2 200 OK", (1, 2), 200, "OK"),
    ("HTTP/2.0 200 OK", (2, 0), 200, "OK"),
    ("HTTP/0.9 200 OK", (0, 9), 200, "OK"),
    ("HTTP/9.9 200 OK", (9, 9), 200, "OK"),
    ("HTTP/1.1 +12 Signed", (1, 1), 12, "Signed"),      # strconv.Atoi takes a sign
    ("HTTP/1.1 +00 Zero", (1, 1), 0, "Zero"),
    ("HTTP/1.1 -00 Zero", (1, 1), 0, "Zero"),           # -0 is not negative
    ("HTTP/1.1 200 O\tK\x01\x7f\xe9", (1, 1), 200, "O\tK\x01\x7f\xe9"),
])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_status_line_valid(line, version, status, reason, eol):
    r = ok(head(line, "Content-Length: 0", eol=eol))
    assert (r.version, r.status, r.reason) == (version, status, reason)


def test_status_line_keeps_a_cr_that_is_not_part_of_the_line_end():
    r = ok(b"HTTP/1.1 200 OK\r\r\nContent-Length: 0\r\n\r\n")
    assert (r.status, r.reason) == (200, "OK\r")


@pytest.mark.parametrize("line, message", [
    (b"HTTP/1.1", 'malformed HTTP response "HTTP/1.1"'),
    (b"HTTP/1.1\t200", 'malformed HTTP response "HTTP/1.1\\t200"'),
    (b"HTTP/1.1\t200 OK", 'malformed HTTP status code "OK"'),
    (b"HTTP/1.1\x00200", 'malformed HTTP response "HTTP/1.1\\x00200"'),
    (b"garbage\xff", 'malformed HTTP response "garbage\\xff"'),
    (b"HTTP/1.1 20 OK", 'malformed HTTP status code "20"'),
    (b"HTTP/1.1 2000 OK", 'malformed HTTP status code "2000"'),
    (b"HTTP/1.1 ", 'malformed HTTP status code ""'),
    (b"HTTP/1.1    ", 'malformed HTTP status code ""'),
    (b"HTTP/1.1 abc OK", 'malformed HTTP status code "abc"'),
    (b"HTTP/1.1 -12 OK", 'malformed HTTP status code "-12"'),
    (b"HTTP/1.1 -01 OK", 'malformed HTTP status code "-01"'),
    (b"HTTP/1.1 +-1 OK", 'malformed HTTP status code "+-1"'),
    (b"HTTP/1.1 1+1 OK", 'malformed HTTP status code "1+1"'),
    (b"HTTP/1.1 2 0 OK", 'malformed HTTP status code "2"'),
    (b"HTTP/1.1 200\tOK", 'malformed HTTP status code "200\\tOK"'),
    (b"HTTP/1.1 20\t", 'malformed HTTP status code "20\\t"'),
    (b"HTTP/1.1 2\xc3\xa90", 'malformed HTTP status code "2\xe90"'),
    (b"HTTP/1.1 \xff\xfe\xfd", 'malformed HTTP status code "\\xff\\xfe\\xfd"'),
    (b" HTTP/1.1 200 OK", 'malformed HTTP status code "HTTP/1.1"'),   # code checked first
    (b"XYZ 20 OK", 'malformed HTTP status code "20"'),
    (b"http/1.1 200 OK", 'malformed HTTP version "http/1.1"'),
    (b"HTTP/1 200 OK", 'malformed HTTP version "HTTP/1"'),
    (b"HTTP/1.10 200 OK", 'malformed HTTP version "HTTP/1.10"'),
    (b"HTTP/11 200 OK", 'malformed HTTP version "HTTP/11"'),
    (b"HTTP/a.b 200 OK", 'malformed HTTP version "HTTP/a.b"'),
    (b"HTTP/1,1 200 OK", 'malformed HTTP version "HTTP/1,1"'),
    (b"HTTPS/1.1 200 OK", 'malformed HTTP version "HTTPS/1.1"'),
    (b"HTTP/+.1 200 OK", 'malformed HTTP version "HTTP/+.1"'),
    (b"ICY 200 OK", 'malformed HTTP version "ICY"'),
    (b"HTTP/1.1\r 200 OK", 'malformed HTTP version "HTTP/1.1\\r"'),
])
def test_status_line_errors(line, message):
    assert err(head(line)) == message


@pytest.mark.parametrize("raw", [b"\r\n", b"\n"])
def test_empty_status_line(raw):
    assert err(raw) == 'malformed HTTP response ""'


def test_status_line_error_wins_over_header_errors():
    assert err(head("HTTP/1.1 20 OK", "Bad Header")) == 'malformed HTTP status code "20"'


# --------------------------------------------------------------------------
# Header fields (readMIMEHeader)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fields, expected", [
    (["content-type: text/plain"], [("Content-Type", "text/plain")]),
    (["CONTENT-TYPE: a"], [("Content-Type", "a")]),
    (["x-custom-header: v"], [("X-Custom-Header", "v")]),
    (["WWW-AUTHENTICATE: Basic"], [("Www-Authenticate", "Basic")]),
    (["x--y: 1"], [("X--Y", "1")]),
    (["-x: 1"], [("-X", "1")]),
    (["x-1a: 1"], [("X-1a", "1")]),
    (["1x: 1"], [("1x", "1")]),
    (["a_b-c.d: 1"], [("A_b-C.d", "1")]),
    (["!#$%&'*+-.^_`|~09azAZ: 1"], [("!#$%&'*+-.^_`|~09azaz", "1")]),
    (["etag: x"], [("Etag", "x")]),
    (["Foo : bar"], [("Foo ", "bar")]),                 # space before colon kept
    (["foo : bar"], [("foo ", "bar")]),                 # ... and then not canonicalised
    (["foo bar: baz"], [("foo bar", "baz")]),
    (["X:   a  "], [("X", "a")]),
    (["X:\ta\t"], [("X", "a")]),
    (["X: \t a b\tc \t"], [("X", "a b\tc")]),
    (["X:"], [("X", "")]),
    (["X: "], [("X", "")]),
    (["X:a"], [("X", "a")]),
    (["X: a:b: c"], [("X", "a:b: c")]),
    (["X: \xe9\xff\x80 !~"], [("X", "\xe9\xff\x80 !~")]),
    (["A: 1", "B: 2", "a: 3"], [("A", "1"), ("B", "2"), ("A", "3")]),
    (["X: a", " b", "\tc"], [("X", "a b c")]),          # obsolete line folding
    (["X: a  ", "   b  ", "\t\tc\t"], [("X", "a b c")]),
    (["X: a", "   "], [("X", "a ")]),                   # blank continuation: Go keeps one space
    (["X: a", " ", " b"], [("X", "a  b")]),
    (["X:", " b"], [("X", "b")]),
    (["X: a", " b: c"], [("X", "a b: c")]),
    (["x-folded: a", " b", "y: 1", " 2", "Z: 3"],
     [("X-Folded", "a b"), ("Y", "1 2"), ("Z", "3")]),
    ([], []),
])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_header_fields_valid(fields, expected, eol):
    r = ok(head("HTTP/1.1 200 OK", *fields, "Content-Length: 0", eol=eol))
    assert r.headers == expected + [("Content-Length", "0")]


def test_header_fields_mixed_line_endings():
    raw = (b"HTTP/1.1 200 OK\nA: 1\r\nB: 2\n folded\r\n\tagain\nC: 3\r\n"
           b"Content-Length: 0\n\r\n")
    r = ok(raw)
    assert r.headers == [("A", "1"), ("B", "2 folded again"), ("C", "3"),
                         ("Content-Length", "0")]


def test_many_headers_grow_the_array():
    fields = [f"x-h{i}: value {i}" for i in range(300)]
    r = ok(head("HTTP/1.1 200 OK", *fields, "Content-Length: 0"))
    assert r.headers[:300] == [(f"X-H{i}", f"value {i}") for i in range(300)]


def test_folded_headers_survive_a_retry_for_room():
    fields = []
    expected = []
    for i in range(40):
        if i % 3 == 0:
            fields += [f"x-f{i}: a{i}", f"  b{i}  ", "\tc"]
            expected.append((f"X-F{i}", f"a{i} b{i} c"))
        else:
            fields.append(f"x-p{i}:  plain {i} ")
            expected.append((f"X-P{i}", f"plain {i}"))
    for cap in range(0, 45):
        r = parse_response_head(head("HTTP/1.1 200 OK", *fields, "Content-Length: 0"),
                                header_cap=cap)
        assert r.headers == expected + [("Content-Length", "0")], cap


@pytest.mark.parametrize("fields, message", [
    ([b"Foo"], 'malformed MIME header: missing colon: "Foo"'),
    ([b"Foo bar  "], 'malformed MIME header: missing colon: "Foo bar  "'),
    ([b"Fo\x01o\tx"], 'malformed MIME header: missing colon: "Fo\\x01o\\tx"'),
    ([b"A: 1", b"Foo"], 'malformed MIME header: missing colon: "Foo"'),
    ([b"Foo", b" : bar"], 'malformed MIME header: missing colon: "Foo"'),
    ([b"\xc3\xa9t\xc3\xa9"], 'malformed MIME header: missing colon: "\xe9t\xe9"'),
    ([b"\xff"], 'malformed MIME header: missing colon: "\\xff"'),
    ([b"\r"], 'malformed MIME header: missing colon: "\\r"'),
    ([b": x"], "malformed MIME header line: : x"),
    ([b":"], "malformed MIME header line: :"),
    ([b"Fo\to: x"], "malformed MIME header line: Fo\to: x"),
    ([b"Foo\t: bar"], "malformed MIME header line: Foo\t: bar"),
    ([b"Fo@o: x"], "malformed MIME header line: Fo@o: x"),
    ([b"Fo(o): x"], "malformed MIME header line: Fo(o): x"),
    ([b"Fo\"o: x"], "malformed MIME header line: Fo\"o: x"),
    ([b"Fo\x7fo: x"], "malformed MIME header line: Fo\x7fo: x"),
    ([b"F\xe9o: x"], raw_text(b"malformed MIME header line: F\xe9o: x")),
    ([b"Foo\r: x"], "malformed MIME header line: Foo\r: x"),
    ([b"X: a\x7fb"], "malformed MIME header line: X: a\x7fb"),
    ([b"X: a\x01"], "malformed MIME header line: X: a\x01"),
    ([b"X: a\x1fb"], "malformed MIME header line: X: a\x1fb"),
    ([b"X: a\rb"], "malformed MIME header line: X: a\rb"),
    ([b"X: a\x0bb"], "malformed MIME header line: X: a\x0bb"),
    # the key is canonicalised before the value is checked, as in Go
    ([b"x-foo: a\x01"], "malformed MIME header line: X-Foo: a\x01"),
    # the joined (folded) line is reported
    ([b"X: a", b" b\x01"], "malformed MIME header line: X: a b\x01"),
    ([b" Foo: bar"], "malformed MIME header initial line:  Foo: bar"),
    ([b"\tFoo: bar"], "malformed MIME header initial line: \tFoo: bar"),
    ([b" " + b"x" * 79], "malformed MIME header initial line:  " + "x" * 79),
    ([b" " + b"x" * 80], "message too large"),        # Go quotes at most 80 bytes
    ([b"\tfoo", b"Bar"], "malformed MIME header initial line: \tfoo"),
])
def test_header_field_errors(fields, message):
    assert err(head("HTTP/1.1 200 OK", *fields)) == message


def test_leading_space_after_the_first_field_is_a_continuation():
    r = ok(head("HTTP/1.1 200 OK", "A: 1", " Foo: bar", "Content-Length: 0"))
    assert r.headers == [("A", "1 Foo: bar"), ("Content-Length", "0")]


def test_header_error_with_cr_before_crlf():
    raw = b"HTTP/1.1 200 OK\r\nX: a\r\r\n\r\n"
    assert err(raw) == "malformed MIME header line: X: a\r"


def test_header_error_with_nul_is_cut_at_the_nul():
    # Go's text holds the NUL byte; the C interface returns NUL-terminated
    # messages, so the text stops there.
    raw = head("HTTP/1.1 200 OK", b"X: a\x00b")
    assert err(raw) == "malformed MIME header line: X: a"


def test_bare_lf_header_block():
    r = ok(b"HTTP/1.0 200 OK\nServer: x\nContent-Length: 3\n\n")
    assert r.headers == [("Server", "x"), ("Content-Length", "3")]
    assert r.head_len == len(b"HTTP/1.0 200 OK\nServer: x\nContent-Length: 3\n\n")


# --------------------------------------------------------------------------
# Framing (readTransfer, parseTransferEncoding, fixLength, shouldClose,
# fixTrailer)
# --------------------------------------------------------------------------

def framing(*fields, status="HTTP/1.1 200 OK", request_is_head=False):
    r = ok(head(status, *fields), request_is_head)
    return r


def framing_err(*fields, status="HTTP/1.1 200 OK", request_is_head=False):
    return err(head(status, *fields), request_is_head)


def shape(r):
    return (r.framing, r.content_length, r.body_length, r.close)


@pytest.mark.parametrize("fields, expected", [
    (["Content-Length: 5"], ("length", 5, 5, False)),
    (["Content-Length: 0"], ("none", 0, 0, False)),
    (["Content-Length: 007"], ("length", 7, 7, False)),
    (["Content-Length:    12   "], ("length", 12, 12, False)),
    (["Content-Length: 9223372036854775807"],
     ("length", 9223372036854775807, 9223372036854775807, False)),
    (["content-length: 3"], ("length", 3, 3, False)),
    (["Content-Length: 5", "Content-Length: 5"], ("length", 5, 5, False)),
    ([], ("close", -1, -1, True)),
    (["Transfer-Encoding: chunked"], ("chunked", -1, -1, False)),
    (["Transfer-Encoding: CHUNKED"], ("chunked", -1, -1, False)),
    (["transfer-encoding:  Chunked  "], ("chunked", -1, -1, False)),
    (["Transfer-Encoding: chunked", "Content-Length: 10"], ("chunked", -1, -1, False)),
    (["Content-Length: 10", "Transfer-Encoding: chunked", "Content-Length: 10"],
     ("chunked", -1, -1, False)),
])
def test_framing_http11(fields, expected):
    assert shape(framing(*fields)) == expected


def test_chunked_removes_content_length_and_transfer_encoding():
    r = framing("A: 1", "Content-Length: 10", "Transfer-Encoding: chunked", "B: 2")
    assert r.headers == [("A", "1"), ("B", "2")]
    assert r.deleted == [("Content-Length", "10"), ("Transfer-Encoding", "chunked")]


def test_duplicate_content_lengths_are_merged():
    r = framing("Content-Length: 5", "X: y", "Content-Length: 5")
    assert r.headers == [("Content-Length", "5"), ("X", "y")]
    assert r.deleted == [("Content-Length", "5")]
    # equal once trimmed: the merged field holds the trimmed value
    r = framing("Content-Length: 5", " ", "Content-Length: 5")
    assert r.headers == [("Content-Length", "5")]
    assert shape(r) == ("length", 5, 5, False)


@pytest.mark.parametrize("fields, message", [
    (["Content-Length: 10", "Content-Length: 7"],
     'http: message cannot contain multiple Content-Length headers; got ["10" "7"]'),
    (["Content-Length: 1", "Content-Length: 1", "Content-Length: 2"],
     'http: message cannot contain multiple Content-Length headers; got ["1" "1" "2"]'),
    (["Content-Length: 5", " ", "Content-Length: 6"],
     'http: message cannot contain multiple Content-Length headers; got ["5 " "6"]'),
    (["Content-Length: +3"], 'bad Content-Length "+3"'),
    (["Content-Length: -1"], 'bad Content-Length "-1"'),
    (["Content-Length: 3 4"], 'bad Content-Length "3 4"'),
    (["Content-Length: 0x10"], 'bad Content-Length "0x10"'),
    (["Content-Length: 1_000"], 'bad Content-Length "1_000"'),
    (["Content-Length: 1.0"], 'bad Content-Length "1.0"'),
    (["Content-Length: 9223372036854775808"], 'bad Content-Length "9223372036854775808"'),
    (["Content-Length: 99999999999999999999999"], 'bad Content-Length "99999999999999999999999"'),
    ([b"Content-Length: \xef\xbc\x95"], 'bad Content-Length "\uff15"'),
    ([b"Content-Length: \xff"], 'bad Content-Length "\\xff"'),
    (["Content-Length: x", "Content-Length: x"], 'bad Content-Length "x"'),
    (["Content-Length:"], 'invalid empty Content-Length ""'),
    (["Content-Length:    "], 'invalid empty Content-Length ""'),
    (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
     'too many transfer encodings: ["chunked" "chunked"]'),
    (["Transfer-Encoding: gzip", "Transfer-Encoding: chunked", "Transfer-Encoding: x"],
     'too many transfer encodings: ["gzip" "chunked" "x"]'),
    (["Transfer-Encoding: gzip, chunked"], 'unsupported transfer encoding: "gzip, chunked"'),
    (["Transfer-Encoding: chunked, chunked"],
     'unsupported transfer encoding: "chunked, chunked"'),
    (["Transfer-Encoding: identity"], 'unsupported transfer encoding: "identity"'),
    (["Transfer-Encoding:"], 'unsupported transfer encoding: ""'),
    (["Transfer-Encoding: chunk\xe9d"], 'unsupported transfer encoding: "chunk\\xe9d"'),
    # Transfer-Encoding is checked before Content-Length
    (["Content-Length: +3", "Transfer-Encoding: gzip"],
     'unsupported transfer encoding: "gzip"'),
    # Content-Length is checked even when chunked wins
    (["Transfer-Encoding: chunked", "Content-Length: x"], 'bad Content-Length "x"'),
    (["Transfer-Encoding: chunked", "Content-Length: 1", "Content-Length: 2"],
     'http: message cannot contain multiple Content-Length headers; got ["1" "2"]'),
])
def test_framing_errors(fields, message):
    assert framing_err(*fields) == message


@pytest.mark.parametrize("status", ["HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified",
                                    "HTTP/1.1 100 Continue", "HTTP/1.1 199 X"])
@pytest.mark.parametrize("request_is_head", [False, True])
@pytest.mark.parametrize("fields, message", [
    (["Content-Length: +3"], 'bad Content-Length "+3"'),
    (["Content-Length: abc"], 'bad Content-Length "abc"'),
    (["Content-Length:"], 'invalid empty Content-Length ""'),
    (["Content-Length: 10", "Content-Length: 7"],
     'http: message cannot contain multiple Content-Length headers; got ["10" "7"]'),
    (["Transfer-Encoding: gzip"], 'unsupported transfer encoding: "gzip"'),
])
def test_content_length_checked_without_body(status, request_is_head, fields, message):
    assert framing_err(*fields, status=status, request_is_head=request_is_head) == message


def test_content_length_checked_for_head():
    assert framing_err("Content-Length: +3", request_is_head=True) == 'bad Content-Length "+3"'


@pytest.mark.parametrize("fields, expected, kept", [
    (["Content-Length: 42"], ("none", 42, 0, False), [("Content-Length", "42")]),
    ([], ("none", -1, 0, False), []),
    (["Content-Length: 0"], ("none", 0, 0, False), [("Content-Length", "0")]),
    (["Transfer-Encoding: chunked"], ("none", -1, 0, False), []),
    (["Transfer-Encoding: chunked", "Content-Length: 10"], ("none", 10, 0, False),
     [("Content-Length", "10")]),
    (["Content-Length: 7", "Content-Length: 7"], ("none", 7, 0, False),
     [("Content-Length", "7")]),
])
def test_framing_head_request(fields, expected, kept):
    r = framing(*fields, request_is_head=True)
    assert shape(r) == expected
    assert r.headers == kept


@pytest.mark.parametrize("status", ["HTTP/1.1 100 Continue", "HTTP/1.1 101 Switching Protocols",
                                    "HTTP/1.1 103 Early Hints", "HTTP/1.1 199 X",
                                    "HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified"])
@pytest.mark.parametrize("fields, kept", [
    ([], []),
    (["Content-Length: 10"], [("Content-Length", "10")]),
    (["Transfer-Encoding: chunked"], []),
    (["Transfer-Encoding: chunked", "Content-Length: 10"], [("Content-Length", "10")]),
])
def test_framing_status_without_body(status, fields, kept):
    r = framing(*fields, status=status)
    assert shape(r) == ("none", 0, 0, False)
    assert r.headers == kept


@pytest.mark.parametrize("status", ["HTTP/1.1 200 OK", "HTTP/1.1 205 Reset",
                                    "HTTP/1.1 099 X", "HTTP/1.1 300 M", "HTTP/1.1 500 E",
                                    "HTTP/1.1 000 Z", "HTTP/1.1 999 Z"])
def test_framing_close_delimited(status):
    assert shape(framing(status=status)) == ("close", -1, -1, True)


@pytest.mark.parametrize("status, fields, expected, headers, deleted", [
    # HTTP/1.0: Transfer-Encoding is removed and ignored
    ("HTTP/1.0 200 OK", ["Transfer-Encoding: chunked"], ("close", -1, -1, True), [],
     [("Transfer-Encoding", "chunked")]),
    ("HTTP/1.0 200 OK", ["Transfer-Encoding: chunked", "Content-Length: 5"],
     ("length", 5, 5, True), [("Content-Length", "5")], [("Transfer-Encoding", "chunked")]),
    ("HTTP/1.0 200 OK", ["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
     ("close", -1, -1, True), [],
     [("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]),
    ("HTTP/1.0 200 OK", ["Transfer-Encoding: chunked", "Connection: keep-alive",
                         "Content-Length: 3"],
     ("length", 3, 3, False), [("Connection", "keep-alive"), ("Content-Length", "3")],
     [("Transfer-Encoding", "chunked")]),
    ("HTTP/0.9 200 OK", ["Transfer-Encoding: chunked"], ("close", -1, -1, True), [],
     [("Transfer-Encoding", "chunked")]),
    # version 0.0 is taken as 1.1 for Transfer-Encoding (but still closes)
    ("HTTP/0.0 200 OK", ["Transfer-Encoding: chunked"], ("chunked", -1, -1, True), [],
     [("Transfer-Encoding", "chunked")]),
    ("HTTP/1.2 200 OK", ["Transfer-Encoding: chunked"], ("chunked", -1, -1, False), [],
     [("Transfer-Encoding", "chunked")]),
    ("HTTP/2.0 200 OK", ["Transfer-Encoding: chunked"], ("chunked", -1, -1, False), [],
     [("Transfer-Encoding", "chunked")]),
])
def test_framing_versions(status, fields, expected, headers, deleted):
    r = framing(*fields, status=status)
    assert shape(r) == expected
    assert r.headers == headers
    assert r.deleted == deleted


@pytest.mark.parametrize("status, fields, close, headers", [
    ("HTTP/1.1 200 OK", ["Connection: close"], True, []),
    ("HTTP/1.1 200 OK", ["Connection: Close"], True, []),
    ("HTTP/1.1 200 OK", ["Connection: keep-alive, close"], True, []),
    ("HTTP/1.1 200 OK", ["Connection: foo,close ,bar"], True, []),
    ("HTTP/1.1 200 OK", ["Connection: x", "Connection: close"], True, []),
    ("HTTP/1.1 200 OK", ["Connection: closed"], False, [("Connection", "closed")]),
    ("HTTP/1.1 200 OK", ["Connection: clos\xe9"], False, [("Connection", "clos\xe9")]),
    ("HTTP/1.1 200 OK", ["Connection: upgrade"], False, [("Connection", "upgrade")]),
    ("HTTP/1.1 200 OK", ["Connection: keep-alive"], False, [("Connection", "keep-alive")]),
    ("HTTP/1.1 200 OK", [], False, []),
    ("HTTP/2.0 200 OK", ["Connection: close"], True, []),
    ("HTTP/1.0 200 OK", [], True, []),
    ("HTTP/1.0 200 OK", ["Connection: keep-alive"], False, [("Connection", "keep-alive")]),
    ("HTTP/1.0 200 OK", ["Connection: Keep-Alive"], False, [("Connection", "Keep-Alive")]),
    ("HTTP/1.0 200 OK", ["Connection: x, keep-alive"], False, [("Connection", "x, keep-alive")]),
    # HTTP/1.0 keeps the Connection field even when it says close
    ("HTTP/1.0 200 OK", ["Connection: keep-alive, close"], True,
     [("Connection", "keep-alive, close")]),
    ("HTTP/1.0 200 OK", ["Connection: close"], True, [("Connection", "close")]),
    ("HTTP/0.9 200 OK", ["Connection: keep-alive"], True, [("Connection", "keep-alive")]),
])
def test_should_close(status, fields, close, headers):
    r = framing(*fields, "Content-Length: 4", status=status)
    assert r.close is close
    assert r.framing == "length"
    assert r.headers == headers + [("Content-Length", "4")]


def test_connection_close_also_applies_to_bodyless_responses():
    r = framing("Connection: close", status="HTTP/1.1 204 No Content")
    assert shape(r) == ("none", 0, 0, True)
    r = framing("Connection: close", "Content-Length: 3", request_is_head=True)
    assert shape(r) == ("none", 3, 0, True)


@pytest.mark.parametrize("fields, headers", [
    (["Transfer-Encoding: chunked", "Trailer: X-Sum"], []),
    (["Transfer-Encoding: chunked", "Trailer: X-Sum, x-other", "Trailer: Y"], []),
    (["Transfer-Encoding: chunked", "Trailer: Content-Length2, content length"], []),
    (["Transfer-Encoding: chunked", "Trailer:"], []),
    (["Transfer-Encoding: chunked", "Trailer: ,,"], []),
])
def test_trailer_field_removed_under_chunked(fields, headers):
    r = framing(*fields)
    assert r.framing == "chunked"
    assert r.headers == headers
    assert [n for n, _ in r.deleted] == ["Transfer-Encoding"] + ["Trailer"] * (len(fields) - 1)


@pytest.mark.parametrize("trailer, key", [
    ("Content-Length", "Content-Length"),
    ("content-length", "Content-Length"),
    ("trailer", "Trailer"),
    ("X, transfer-encoding", "Transfer-Encoding"),
    (" x ,  CONTENT-LENGTH  ,y", "Content-Length"),
    ("Trailer, Content-Length", "Trailer"),
])
def test_bad_trailer_key(trailer, key):
    msg = f'bad trailer key "{key}"'
    assert framing_err("Transfer-Encoding: chunked", f"Trailer: {trailer}") == msg
    # also when no body follows (Go still parses the Trailer field)
    assert framing_err("Transfer-Encoding: chunked", f"Trailer: {trailer}",
                       request_is_head=True) == msg
    assert framing_err("Transfer-Encoding: chunked", f"Trailer: {trailer}",
                       status="HTTP/1.1 304 Not Modified") == msg


def test_trailer_field_is_ordinary_without_chunking():
    r = framing("Trailer: Content-Length", "Content-Length: 2")
    assert r.headers == [("Trailer", "Content-Length"), ("Content-Length", "2")]
    r = framing("Trailer: Content-Length", "Transfer-Encoding: chunked", status="HTTP/1.0 200 OK")
    assert r.headers == [("Trailer", "Content-Length")]
    assert shape(r) == ("close", -1, -1, True)


def test_content_length_error_comes_before_trailer_error():
    assert framing_err("Transfer-Encoding: chunked", "Trailer: Trailer",
                       "Content-Length: z") == 'bad Content-Length "z"'


def test_framing_fields_with_space_in_name_are_not_framing():
    r = framing("Content-Length : 5", "Transfer-Encoding : chunked")
    assert shape(r) == ("close", -1, -1, True)
    assert r.headers == [("Content-Length ", "5"), ("Transfer-Encoding ", "chunked")]


# --------------------------------------------------------------------------
# Go's %q
# --------------------------------------------------------------------------

@pytest.mark.parametrize("data, quoted", [
    (b"", '""'),
    (b"plain text", '"plain text"'),
    (b'a"b\\c', '"a\\"b\\\\c"'),
    (b"\x07\x08\x0c\n\r\t\x0b", '"\\a\\b\\f\\n\\r\\t\\v"'),
    (b"\x00\x01\x1f\x7f", '"\\x00\\x01\\x1f\\x7f"'),
    (b"\x80\xff\xfe", '"\\x80\\xff\\xfe"'),
    ("é ÿ ¡".encode(), '"é ÿ ¡"'),
    ("\u00ad\u0085\u00a0".encode(), '"\\u00ad\\u0085\\u00a0"'),
    ("\u200b\u2028\u2029\ufeff\u3000".encode(), '"\\u200b\\u2028\\u2029\\ufeff\\u3000"'),
    ("\ue000".encode(), '"\\ue000"'),
    ("日本語 😀 \ufffd".encode(), '"日本語 😀 \ufffd"'),
    ("\U000e0001\U0010ffff".encode(), '"\\U000e0001\\U0010ffff"'),
    ("\U0001e4d0".encode(), '"\U0001e4d0"'),          # assigned in Unicode 15.0
    ("\U0001e4fa".encode(), '"\\U0001e4fa"'),         # unassigned
    (b"\xc0\x80", '"\\xc0\\x80"'),                    # overlong
    (b"\xed\xa0\x80", '"\\xed\\xa0\\x80"'),           # surrogate
    (b"\xe2\x82", '"\\xe2\\x82"'),                    # truncated
    (b"\xf4\x90\x80\x80", '"\\xf4\\x90\\x80\\x80"'),  # above U+10FFFF
    (b"\xf5", '"\\xf5"'),
])
def test_go_quote(data, quoted):
    assert go_quote(data) == quoted


def _reference_quote(data: bytes) -> str:
    out = ['"']
    i = 0
    while i < len(data):
        ch = None
        for width in (1, 2, 3, 4):
            try:
                ch = data[i:i + width].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        if ch is None or len(ch) != 1:
            out.append("\\x%02x" % data[i])
            i += 1
            continue
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                        "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\x%02x" % cp)
        elif cp < 0x10000:
            out.append("\\u%04x" % cp)
        else:
            out.append("\\U%08x" % cp)
        i += len(ch.encode())
    out.append('"')
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40)
       | st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_go_quote_matches_reference(data):
    try:
        text = data.decode("utf-8", "ignore")
    except UnicodeDecodeError:  # pragma: no cover - "ignore" never raises
        text = ""
    # Python's tables are older than Go's: skip code points unassigned here
    assume(all(unicodedata.category(c) != "Cn" for c in text))
    assert go_quote(data) == _reference_quote(data)


# --------------------------------------------------------------------------
# Chunked transfer coding (internal/chunked.go, body.readTrailer)
# --------------------------------------------------------------------------

def decode(pieces, **kw):
    """Feed pieces; return (body, done, trailers, unconsumed) or
    ("error", text, body-before-the-error)."""
    d = ChunkedDecoder(**kw)
    out = []
    try:
        for p in pieces:
            out.append(d.feed(p))
    except ParseError as e:
        out.append(e.partial)
        with pytest.raises(ParseError) as again:
            d.feed(b"more")
        assert str(again.value) == str(e)
        return ("error", str(e), b"".join(out))
    return (b"".join(out), d.done, d.trailers, d.unconsumed)


def chunked_all_ways(stream, splits=True):
    whole = decode([stream])
    variants = [dict(), dict(max_data=1), dict(max_data=3), dict(direct=True),
                dict(direct=True, max_data=2)]
    for kw in variants:
        assert decode([stream], **kw) == whole, kw
        assert decode([stream[i:i + 1] for i in range(len(stream))], **kw) == whole, kw
    if splits:
        for i in range(len(stream) + 1):
            assert decode([stream[:i], stream[i:]]) == whole, i
            assert decode([stream[:i], stream[i:]], direct=True) == whole, i
    return whole


def chunked_ok(stream, **kw):
    r = chunked_all_ways(stream, **kw)
    assert r[0] != "error", r
    return r


def chunked_err(stream, **kw):
    r = chunked_all_ways(stream, **kw)
    assert r[0] == "error", r
    return r[1], r[2]


@pytest.mark.parametrize("stream, body, trailers, rest", [
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello", [], b""),
    (b"0\r\n\r\n", b"", [], b""),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", [], b""),
    (b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", b"0123456789abcdefghij", [], b""),
    (b"0005\r\nhello\r\n0000\r\n\r\n", b"hello", [], b""),
    (b"0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", b"hello", [], b""),
    (b"5;name=val\r\nhello\r\n0;last\r\n\r\n", b"hello", [], b""),
    (b'5;name="quoted ;str"\r\nhello\r\n0\r\n\r\n', b"hello", [], b""),
    (b"5;\r\nhello\r\n0\r\n\r\n", b"hello", [], b""),
    (b"5 \r\nhello\r\n0\t \r\n\r\n", b"hello", [], b""),
    (b"5; ext \t\r\nhello\r\n0\r\n\r\n", b"hello", [], b""),
    (b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n", [], b""),
    (b"1\r\n\n\r\n0\r\n\r\n", b"\n", [], b""),
    (b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", b"hello", [], b"HTTP/1.1 200 OK\r\n"),
    (b"0\r\nX-Sum: 1\r\nx-other:  two \r\n\r\n", b"", [("X-Sum", "1"), ("X-Other", "two")], b""),
    (b"3\r\nabc\r\n0\r\nX: a\r\n b\r\n\r\nnext", b"abc", [("X", "a b")], b"next"),
    (b"0\r\nContent-Length: 9\r\nX: 1\r\nX: 2\r\n\r\n", b"",
     [("Content-Length", "9"), ("X", "1"), ("X", "2")], b""),
    (b"0\r\nFoo : bar\r\n\r\n", b"", [("Foo ", "bar")], b""),
    # bare LF is accepted in the trailer section, as in a header block
    (b"0\r\nX: 1\n\n", b"", [("X", "1")], b""),
    (b"0\r\n\n", b"", [], b""),
    (b"0\r\nX: 1\r\n\nrest", b"", [("X", "1")], b"rest"),
])
def test_chunked_valid(stream, body, trailers, rest):
    assert chunked_ok(stream) == (body, True, trailers, rest)


@pytest.mark.parametrize("stream, body", [
    (b"", b""),
    (b"5", b""),
    (b"5\r", b""),
    (b"5\r\nhel", b"hel"),
    (b"5\r\nhello", b"hello"),
    (b"5\r\nhello\r", b"hello"),
    (b"5\r\nhello\r\n", b"hello"),
    (b"5\r\nhello\r\n0\r\n", b"hello"),
    (b"5\r\nhello\r\n0\r\nX: 1\r\n", b"hello"),
    (b"5\r\nhello\r\n0\r\n\r", b"hello"),
    (b"ffffffffffffffff\r\nsome data", b"some data"),
])
def test_chunked_incomplete(stream, body):
    r = chunked_ok(stream)
    assert r[0] == body
    assert r[1] is False


def test_chunked_trailer_state_is_visible():
    d = ChunkedDecoder()
    assert d.feed(b"2\r\nab\r\n0\r\nX: 1\r\n") == b"ab"
    assert d.in_trailer and not d.done
    assert d.unconsumed == b"X: 1\r\n"
    assert d.feed(b"\r\n") == b""
    assert d.done and not d.in_trailer and d.trailers == [("X", "1")]


@pytest.mark.parametrize("stream, message, body", [
    (b"5\nhello\r\n0\r\n\r\n", "chunked line ends with bare LF", b""),
    (b"\n", "chunked line ends with bare LF", b""),
    (b"5;x\n", "chunked line ends with bare LF", b""),
    (b"5\r\nhello\r\n0\n\r\n", "chunked line ends with bare LF", b"hello"),
    (b"5\r\r\n", "invalid CR in chunked line", b""),
    (b"\r5\r\n", "invalid CR in chunked line", b""),
    (b"5;a\rb\r\n", "invalid CR in chunked line", b""),
    (b"5\r\r\r\n", "invalid CR in chunked line", b""),
    (b"\r\n", "empty hex number for chunk length", b""),
    (b";ext\r\n", "empty hex number for chunk length", b""),
    (b"  \r\n", "empty hex number for chunk length", b""),
    (b"\t;x\r\n", "invalid byte in chunk length", b""),
    (b" 5\r\n", "invalid byte in chunk length", b""),
    (b"5 ;x\r\n", "invalid byte in chunk length", b""),
    (b"0x5\r\n", "invalid byte in chunk length", b""),
    (b"g\r\n", "invalid byte in chunk length", b""),
    (b"-1\r\n", "invalid byte in chunk length", b""),
    (b"+5\r\n", "invalid byte in chunk length", b""),
    (b"5\x00\r\n", "invalid byte in chunk length", b""),
    (b"\xff\r\n", "invalid byte in chunk length", b""),
    (b"10000000000000000\r\n", "http chunk length too large", b""),
    (b"00000000000000000\r\n", "http chunk length too large", b""),
    (b"0000000000000000g\r\n", "invalid byte in chunk length", b""),
    (b"5\r\nhelloXX", "malformed chunked encoding", b"hello"),
    (b"5\r\nhello\n0\r\n\r\n", "malformed chunked encoding", b"hello"),
    (b"5\r\nhello\r0", "malformed chunked encoding", b"hello"),
    (b"5\r\nhello\n\r", "malformed chunked encoding", b"hello"),
    (b"3\r\nabcd\r\n", "malformed chunked encoding", b"abc"),
    (b"2\r\nab\r\n2\r\ncdX\r\n", "malformed chunked encoding", b"abcd"),
    (b"0\r\n Foo: x\r\n\r\n", "malformed MIME header initial line:  Foo: x", b""),
    (b"0\r\nFoo\r\n\r\n", 'malformed MIME header: missing colon: "Foo"', b""),
    (b"1\r\nz\r\n0\r\nX: a\x01\r\n\r\n", "malformed MIME header line: X: a\x01", b"z"),
])
def test_chunked_errors(stream, message, body):
    assert chunked_err(stream) == (message, body)


def test_chunk_size_line_length_limit():
    # A size line (CRLF included) must fit Go's 4096-byte read buffer.
    fits = b"1;" + b"e" * (4096 - 4) + b"\r\n"
    assert len(fits) == 4096
    assert chunked_ok(fits + b"z\r\n0\r\n\r\n", splits=False) == (b"z", True, [], b"")
    too_long = b"1;" + b"e" * (4096 - 3) + b"\r\n"
    assert chunked_err(too_long + b"z\r\n0\r\n\r\n", splits=False) == ("header line too long", b"")
    # no newline at all: fails once 4096 bytes are buffered
    assert decode([b"1;" + b"e" * 4093]) == (b"", False, [], b"1;" + b"e" * 4093)
    assert decode([b"1;" + b"e" * 4094]) == ("error", "header line too long", b"")
    d = ChunkedDecoder()
    for _ in range(4095):
        assert d.feed(b"9") == b""
    with pytest.raises(ParseError, match="^header line too long$"):
        d.feed(b"9")
    # a bare LF past the limit reports the length, as Go's buffer fills first
    assert decode([b"1" * 4096 + b"\n"]) == ("error", "header line too long", b"")
    for i in range(0, len(too_long), 97):
        assert decode([too_long[:i], too_long[i:]]) == ("error", "header line too long", b"")


def _overhead_model(chunks):
    """Go's accounting: returns how many chunk lines are accepted."""
    excess = 0
    for i, (line, size) in enumerate(chunks):
        excess += len(line) + 2
        excess -= 16 + 2 * size
        excess = max(excess, 0)
        if excess > 16 * 1024:
            return i
    return len(chunks)


def test_chunked_overhead_guard_trips_at_the_exact_chunk():
    ext = b";" + b"x" * 100
    line = b"1" + ext
    stream = b"".join(line + b"\r\nz\r\n" for _ in range(400)) + b"0\r\n\r\n"
    accepted = _overhead_model([(line, 1)] * 400)
    assert 0 < accepted < 400
    message, body = chunked_err(stream, splits=False)
    assert message == "chunked encoding contains too much non-data"
    assert body == b"z" * accepted
    # the same, fed in uneven pieces
    pieces = [stream[i:i + 61] for i in range(0, len(stream), 61)]
    assert decode(pieces) == ("error", message, b"z" * accepted)


def test_chunked_overhead_guard_counts_the_last_chunk():
    # excess just under the limit, then a long extension on the 0-size chunk
    line = b"1;" + b"x" * 4000
    chunks = [(line, 1)] * 4
    assert _overhead_model(chunks) == 4
    last = b"0;" + b"y" * 500
    assert _overhead_model(chunks + [(last, 0)]) == 4
    stream = b"".join(line + b"\r\nz\r\n" for _ in range(4)) + last + b"\r\n\r\n"
    assert chunked_err(stream, splits=False) == ("chunked encoding contains too much non-data",
                                                 b"zzzz")
    # without the long extension the body ends cleanly
    ok_stream = b"".join(line + b"\r\nz\r\n" for _ in range(4)) + b"0\r\n\r\n"
    assert chunked_ok(ok_stream, splits=False) == (b"zzzz", True, [], b"")


def test_chunked_overhead_guard_allows_one_byte_chunks_and_real_data():
    stream = b"1\r\nX\r\n" * 20000 + b"0\r\n\r\n"
    assert decode([stream]) == (b"X" * 20000, True, [], b"")
    # a long extension is fine when the chunk carries enough data
    line = b"800;" + b"e" * 3000
    stream = (line + b"\r\n" + b"d" * 0x800 + b"\r\n") * 20 + b"0\r\n\r\n"
    assert _overhead_model([(line, 0x800)] * 20) == 20
    assert decode([stream]) == (b"d" * 0x800 * 20, True, [], b"")


def test_chunked_large_chunk_with_small_data_cap():
    data = bytes(range(256)) * 64
    stream = b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"
    d = ChunkedDecoder(max_data=100)
    assert d.feed(stream) == data
    assert d.done


def test_chunked_direct_reads_take_data_from_the_feed():
    d = ChunkedDecoder(direct=True)
    assert d.feed(b"a\r\n") == b""
    assert d.feed(b"0123456789\r\n0\r\n\r\n") == b"0123456789"
    assert d.done and d.unconsumed == b""


def test_chunked_feed_after_done_keeps_bytes():
    d = ChunkedDecoder()
    assert d.feed(b"0\r\n\r\nab") == b""
    assert d.feed(b"cd") == b""
    assert d.unconsumed == b"abcd"


# --------------------------------------------------------------------------
# Trailer blocks (ft_parse_fields)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("block, fields", [
    (b"", []),
    (b"\r\n", []),
    (b"X: 1\r\n", [("X", "1")]),
    (b"x-a: 1\r\nx-b: 2\r\n\r\n", [("X-A", "1"), ("X-B", "2")]),
    (b"X: a\n b\n", [("X", "a b")]),
])
def test_parse_fields(block, fields):
    assert parse_fields(block) == fields


def test_parse_fields_errors():
    with pytest.raises(ParseError, match="^malformed MIME header initial line:  X: 1$"):
        parse_fields(b" X: 1\r\n")
    with pytest.raises(ParseError, match='^malformed MIME header: missing colon: "X"$'):
        parse_fields(b"X\r\n")


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

def _canonical(name: str) -> str:
    if any(c not in TCHAR for c in name):
        return name
    out, upper = [], True
    for c in name:
        if upper and "a" <= c <= "z":
            c = c.upper()
        elif not upper and "A" <= c <= "Z":
            c = c.lower()
        out.append(c)
        upper = c == "-"
    return "".join(out)


FRAMING_NAMES = {"content-length", "transfer-encoding", "connection", "trailer"}
names = st.text(alphabet=TCHAR, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in FRAMING_NAMES)
value_chars = st.sampled_from(
    [chr(c) for c in range(0x21, 0x7F)] + [chr(c) for c in range(0x80, 0x100)])
values = st.builds(
    lambda first, rest: (first + rest) if first else "",
    st.text(alphabet=value_chars, max_size=1),
    st.text(alphabet=st.one_of(value_chars, st.sampled_from([" ", "\t"])), max_size=20)
    .map(lambda s: s.rstrip(" \t")),
)
fields_st = st.lists(st.tuples(names, values), max_size=12)
pads = st.sampled_from(["", " ", "  ", "\t", " \t "])
eols = st.sampled_from([b"\r\n", b"\n"])


def _pieces(data: bytes, cuts):
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for c in cuts:
        out.append(data[prev:c])
        prev = c
    out.append(data[prev:])
    return out


@settings(max_examples=200, deadline=None)
@given(
    fields=fields_st,
    pad_before=pads,
    pad_after=pads,
    eol=eols,
    fold_at=st.lists(st.integers(min_value=0, max_value=11), max_size=3),
    body=st.binary(max_size=300),
    chunk_sizes=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=12),
    extensions=st.lists(st.sampled_from([b"", b";a", b";a=b", b'; q="x;y"', b" ", b"; z \t"]),
                        min_size=1, max_size=4),
    trailers=fields_st,
    use_length=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
    cap=st.integers(min_value=0, max_value=16),
)
def test_round_trip(fields, pad_before, pad_after, eol, fold_at, body, chunk_sizes,
                    extensions, trailers, use_length, cuts, cap):
    lines = [b"HTTP/1.1 200 OK"]
    expected = []
    for i, (n, v) in enumerate(fields):
        enc = n.encode() + b":" + (pad_before + v + pad_after).encode("latin-1")
        if i in fold_at and v:
            # split the value over a continuation line at its first space
            head_part, _, tail = v.partition(" ")
            if tail.strip(" \t"):
                enc = (n.encode() + b":" + (pad_before + head_part).encode("latin-1")
                       + eol + b" \t" + tail.encode("latin-1"))
                v = head_part.rstrip(" \t") + " " + tail.strip(" \t")
        lines.append(enc)
        expected.append((_canonical(n), v))
    if use_length:
        lines.append(b"content-length: %d" % len(body))
        expected.append(("Content-Length", str(len(body))))
        wire_body = body
    else:
        lines.append(b"transfer-encoding: chunked")
        parts, pos, k = [], 0, 0
        while pos < len(body):
            size = chunk_sizes[k % len(chunk_sizes)]
            ext = extensions[k % len(extensions)]
            piece = body[pos:pos + size]
            parts.append(b"%x" % len(piece) + ext + b"\r\n" + piece + b"\r\n")
            pos += size
            k += 1
        parts.append(b"0" + extensions[-1] + b"\r\n")
        parts += [n.encode() + b": " + v.encode("latin-1") + b"\r\n" for n, v in trailers]
        parts.append(b"\r\n")
        wire_body = b"".join(parts)
    raw_head = eol.join(lines) + eol + eol
    wire = raw_head + wire_body + b"HTTP/1.1 204 No Content\r\n\r\n"

    finder = HeadFinder()
    found = 0
    for piece in _pieces(wire, cuts):
        found = finder.feed(piece)
        if found:
            break
    assert found == len(raw_head)
    r = parse_response_head(wire, header_cap=cap)
    assert r.head_len == len(raw_head)
    assert (r.version, r.status, r.reason) == ((1, 1), 200, "OK")
    if use_length:
        assert r.headers == expected
        assert shape(r) == ("length" if body else "none", len(body), len(body), False)
        return
    assert r.headers == expected
    assert r.deleted == [("Transfer-Encoding", "chunked")]
    assert shape(r) == ("chunked", -1, -1, False)
    rest = wire[len(raw_head):]
    d = ChunkedDecoder(direct=bool(cap % 2), max_data=cap // 2)
    got = b"".join(d.feed(p) for p in _pieces(rest, cuts))
    assert got == body
    assert d.done
    assert d.trailers == [(_canonical(n), v) for n, v in trailers]
    assert d.unconsumed == b"HTTP/1.1 204 No Content\r\n\r\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data):
    for prefix in (b"", b"HTTP/1.1 200 OK\r\n"):
        try:
            r = parse_response_head(prefix + data, header_cap=1)
        except ParseError as e:
            assert str(e)
        else:
            assert r is None or r.head_len <= len(prefix + data)
    whole = decode([data])
    assert decode([data[i:i + 1] for i in range(len(data))]) == whole


# --------------------------------------------------------------------------
# Micro-benchmark entry point
# --------------------------------------------------------------------------

def test_bench_parse_reports_time_per_parse():
    raw = head("HTTP/1.1 200 OK", "Content-Type: text/plain", "Content-Length: 5",
               *[f"X-{i}: {i}" for i in range(100)])
    ns = bench_parse(raw, 200)
    assert 0 < ns < 1e7
    with pytest.raises(ParseError):
        bench_parse(b"HTTP/1.1 200 OK\r\n", 10)
    with pytest.raises(ValueError):
        bench_parse(raw, 0)
