"""Atheris fuzz target for the parser through its Cython layer.

    pip install atheris
    python tests/fuzz/fuzz_atheris.py -max_total_time=30 [corpus dirs...]

Any libFuzzer flag may be passed; tests/fuzz/corpus is a good seed corpus
(pass a scratch directory first to collect new inputs outside the tree).

Each input goes to fasttransport._parser as a response head (for a GET and a
HEAD request, with a small and a large header array), as a trailer block and
as a chunked body, whole and in pieces whose sizes, data cap and direct-read
mode come from the input. Only ParseError may escape; any other exception,
or two ways of feeding the same bytes that disagree, is reported as a crash.

Coverage feedback: the parser is C, so libFuzzer sees its branches only
when the _parser extension is compiled with clang's
-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp and a libFuzzer
is preloaded for atheris to use, for example one linked from clang's
runtime:

    clang++ -shared -fPIC -o libfuzzer.so -Wl,--whole-archive \
        "$(clang -print-resource-dir)"/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a \
        -Wl,--no-whole-archive
    LD_PRELOAD=$PWD/libfuzzer.so python3 tests/fuzz/fuzz_atheris.py ...

(LD_PRELOAD must reach the python binary itself, not a wrapper script.)
With an ordinary build every input is still checked, but the search is
blind.
"""
import random
import sys
import zlib

try:
    import atheris
except ImportError:
    sys.exit("fuzz_atheris.py needs atheris: pip install atheris "
             "(it builds with clang and supports CPython 3.8 and later)")

with atheris.instrument_imports(include=["fasttransport"]):
    from fasttransport._parser import (
        ChunkedDecoder,
        HeadFinder,
        ParsedHead,
        ParseError,
        find_head_end,
        go_quote,
        parse_fields,
        parse_response_head,
    )


def _head(data: bytes, request_is_head: bool, cap: int):
    try:
        r = parse_response_head(data, request_is_head, cap)
    except ParseError as e:
        assert isinstance(str(e), str) and str(e), "empty ParseError text"
        return ("error", str(e))
    if r is None:
        assert find_head_end(data) == 0
        return None
    assert isinstance(r, ParsedHead)
    assert 0 < r.head_len <= len(data)
    assert r.framing in ("none", "length", "chunked", "close")
    assert r.content_length >= -1
    if request_is_head:
        assert r.framing == "none"
    for name, value in r.headers + r.deleted:
        assert isinstance(name, str) and isinstance(value, str) and name
    return r


def _decode(data: bytes, pieces, max_data: int, direct: bool):
    d = ChunkedDecoder(max_data=max_data, direct=direct)
    out = []
    pos = 0
    try:
        for n in pieces:
            out.append(d.feed(data[pos:pos + n]))
            pos += n
        out.append(d.feed(data[pos:]))
    except ParseError as e:
        out.append(e.partial)
        try:
            d.feed(b"x")
        except ParseError as again:
            assert str(again) == str(e), "a failed decoder changed its error"
        else:
            raise AssertionError("a failed decoder accepted more input") from None
        return ("error", str(e), b"".join(out))
    return ("ok", d.done, b"".join(out), d.trailers, d.unconsumed)


def test_one_input(data: bytes) -> None:
    rnd = random.Random(zlib.crc32(data))

    # Response heads.
    found = find_head_end(data)
    finder = HeadFinder()
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 64)
        got = finder.feed(data[pos:pos + n])
        pos += n
        if got:
            break
    assert finder.feed(b"") == found or (found == 0 and pos >= len(data))
    for request_is_head in (False, True):
        small = _head(data, request_is_head, rnd.randint(0, 2))
        large = _head(data, request_is_head, 64)
        assert small == large, "header array size changed the result"

    # Trailer blocks and quoting.
    try:
        for name, value in parse_fields(data):
            assert isinstance(name, str) and isinstance(value, str)
    except ParseError:
        pass
    q = go_quote(data[:64])
    assert q.startswith('"') and q.endswith('"')

    # Chunked bodies, from the first byte and after the head.
    starts = [0] + ([found] if found else [])
    for start in starts:
        body = data[start:]
        whole = _decode(body, [], 0, False)
        cuts = []
        total = 0
        while total < len(body) and len(cuts) < 64:
            n = rnd.randint(0, 16)
            cuts.append(n)
            total += n
        other = _decode(body, cuts, rnd.choice([0, 1, 3, 100]), rnd.random() < 0.5)
        assert other == whole, "feeding in pieces changed the result"


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
