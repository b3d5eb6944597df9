/* fuzz_parser.c - libFuzzer harness for csrc/parser.c.
 *
 * Build (see run.sh):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *         tests/fuzz/fuzz_parser.c csrc/parser.c
 *
 * Every input is used three ways:
 *   1. as a response head: ft_find_head_end whole and resumed over pieces,
 *      ft_parse_head with a header array that starts small and grows on
 *      FT_PMORE (compared with one parse given ample room), ft_framing_for
 *      for a GET and a HEAD request, the lookup helpers and ft_quote;
 *   2. as a chunked stream from its first byte;
 *   3. when the head frames a chunked body, the bytes after the head as that
 *      body.
 * A stream is decoded whole, in pieces whose sizes (and the max_data cap and
 * direct reads through ft_chunked_data_left/ft_chunked_took_data) come from
 * a generator seeded by a hash of the input, and byte at a time when short;
 * every run must give the same body bytes, the same end (done, error with
 * the same text, or unexpected EOF at the same point) and the same trailer
 * fields parsed with ft_parse_fields.
 *
 * Every buffer handed to the parser is an exact-size heap copy, so the
 * address sanitizer reports any read or write past its end. A broken
 * invariant prints what broke and calls abort(), which libFuzzer reports as
 * a crash with the input saved.
 */
#include "parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRCAP 512
#define MAX_CALLS_PER_BYTE 8 /* bound on decoder calls: generous, see chunk_decode */
#define BYTEWISE_LIMIT 1024  /* byte-at-a-time runs only for inputs up to this size */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void fail_invariant(const char *what, size_t a, size_t b)
{
    fprintf(stderr, "fuzz_parser: invariant broken: %s (%zu, %zu)\n", what, a, b);
    abort();
}

#define CHECK(cond, a, b)                                 \
    do {                                                  \
        if (!(cond))                                      \
            fail_invariant(#cond, (size_t)(a), (size_t)(b)); \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n); /* malloc(0) gives a live zero-size block under ASan */
    if (p == NULL && n != 0) {
        fprintf(stderr, "fuzz_parser: out of memory\n");
        abort();
    }
    return p;
}

/* An exact-size heap copy of s[0..n). */
static char *dup_exact(const uint8_t *s, size_t n)
{
    char *p = xmalloc(n);
    if (n)
        memcpy(p, s, n);
    return p;
}

/* splitmix64 seeded with FNV-1a of the input: choices depend on the input
 * only, so every crash reproduces from its file alone. */
typedef struct {
    uint64_t s;
} rng;

static void rng_seed(rng *r, const uint8_t *d, size_t n, uint64_t salt)
{
    uint64_t h = 1469598103934665603ull ^ salt;
    for (size_t i = 0; i < n; i++) {
        h ^= d[i];
        h *= 1099511628211ull;
    }
    r->s = h;
}

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform-ish in [lo, hi]. */
static size_t rng_range(rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* A growable byte string. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void bytes_add(bytes *b, const void *s, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            fprintf(stderr, "fuzz_parser: out of memory\n");
            abort();
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void bytes_drop_front(bytes *b, size_t n)
{
    CHECK(n <= b->len, n, b->len);
    if (n == 0)
        return;
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void bytes_free(bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int bytes_eq(const bytes *a, const bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* err must be a NUL-terminated string inside err[0..cap). */
static size_t check_err(const char *err, size_t cap)
{
    size_t n = 0;
    while (n < cap && err[n] != '\0')
        n++;
    CHECK(n < cap, n, cap);
    return n;
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ieq_lit(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        if (a != b)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Header blocks                                                             */
/* ------------------------------------------------------------------------ */

/* What a parse produced, comparable across runs: the return code, the error
 * text, and each field as name NUL value NUL flags. */
typedef struct {
    int rc;
    char err[ERRCAP];
    bytes fields;
    int status, major, minor;
    bytes reason;
} parse_out;

static void parse_out_free(parse_out *o)
{
    bytes_free(&o->fields);
    bytes_free(&o->reason);
}

static int parse_out_eq(const parse_out *a, const parse_out *b)
{
    return a->rc == b->rc && strcmp(a->err, b->err) == 0 && bytes_eq(&a->fields, &b->fields) &&
           a->status == b->status && a->major == b->major && a->minor == b->minor &&
           bytes_eq(&a->reason, &b->reason);
}

/* Invariants of the fields h->headers[from..nheaders) over buf[lo..hi). */
static void check_fields(const char *buf, size_t lo, size_t hi, const ft_head *h, size_t from)
{
    CHECK(h->nheaders <= h->cap, h->nheaders, h->cap);
    for (size_t i = from; i < h->nheaders; i++) {
        const ft_header *hd = &h->headers[i];
        size_t no = hd->name_off, nl = hd->name_len, vo = hd->value_off, vl = hd->value_len;
        CHECK(no >= lo && no + nl <= hi, no, nl);
        CHECK(vo >= lo && vo + vl <= hi, vo, vl);
        CHECK(nl > 0, i, nl);
        CHECK(no + nl < vo + 1, no + nl, vo); /* the colon sits between them */
        CHECK(buf[no + nl] == ':', no + nl, i);
        int has_space = 0;
        for (size_t k = 0; k < nl; k++) {
            unsigned char c = (unsigned char)buf[no + k];
            CHECK(is_tchar(c) || c == ' ', no + k, c);
            has_space |= (c == ' ');
        }
        CHECK(buf[no] != ' ', no, i);
        if (!has_space) { /* canonical: upper after start or '-', lower elsewhere */
            int upper = 1;
            for (size_t k = 0; k < nl; k++) {
                unsigned char c = (unsigned char)buf[no + k];
                if (upper)
                    CHECK(!(c >= 'a' && c <= 'z'), no + k, c);
                else
                    CHECK(!(c >= 'A' && c <= 'Z'), no + k, c);
                upper = (c == '-');
            }
        }
        for (size_t k = 0; k < vl; k++) {
            unsigned char c = (unsigned char)buf[vo + k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), vo + k, c);
        }
        if (vl)
            CHECK(buf[vo] != ' ' && buf[vo] != '\t', vo, i);
        CHECK(hd->flags == 0, i, hd->flags);
    }
}

static void record_fields(parse_out *o, const char *buf, const ft_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const ft_header *hd = &h->headers[i];
        bytes_add(&o->fields, buf + hd->name_off, hd->name_len);
        bytes_add(&o->fields, "\0", 1);
        bytes_add(&o->fields, buf + hd->value_off, hd->value_len);
        bytes_add(&o->fields, "\0", 1);
        uint8_t fl = (uint8_t)hd->flags;
        bytes_add(&o->fields, &fl, 1);
    }
}

/* Call parse (ft_parse_head when is_head, else ft_parse_fields over the whole
 * buffer) on an exact copy of src, starting with room for cap0 fields and
 * growing to what FT_PMORE asks for. Returns the parsed buffer (caller frees)
 * and the header array in *hv. */
static char *parse_block(const uint8_t *src, size_t n, int is_head, size_t cap0, size_t errcap,
                         ft_head *h, parse_out *o)
{
    char *buf = dup_exact(src, n);
    char *err = xmalloc(errcap);
    size_t cap = cap0;
    int rc = FT_PERR;

    memset(o, 0, sizeof *o);
    memset(h, 0, sizeof *h);
    h->headers = xmalloc(cap * sizeof(ft_header));
    h->cap = cap;
    /* Each FT_PMORE strictly grows the array (checked), and the count it asks
     * for is bounded by the number of lines, so n + 2 rounds suffice. */
    for (size_t round = 0; round < n + 2; round++) {
        h->nheaders = 0;
        if (is_head)
            rc = ft_parse_head(buf, n, h, err, errcap);
        else
            rc = ft_parse_fields(buf, 0, n, h, err, errcap);
        CHECK(rc == FT_OK || rc == FT_PERR || rc == FT_PMORE, rc, round);
        if (rc != FT_PMORE)
            break;
        CHECK(h->nheaders > h->cap, h->nheaders, h->cap);
        CHECK(h->nheaders <= n + 1, h->nheaders, n);
        cap = h->nheaders;
        free(h->headers);
        h->headers = xmalloc(cap * sizeof(ft_header));
        h->cap = cap;
    }
    CHECK(rc != FT_PMORE, rc, n);
    o->rc = rc;
    if (errcap) {
        size_t el = check_err(err, errcap);
        if (rc == FT_PERR)
            CHECK(el > 0 || errcap == 1, el, errcap);
        else
            CHECK(el == 0, el, rc);
        memcpy(o->err, err, el < ERRCAP ? el : ERRCAP - 1);
    }
    free(err);
    if (rc == FT_OK) {
        check_fields(buf, 0, n, h, 0);
        if (is_head) {
            CHECK(h->version_major >= 0 && h->version_major <= 9, h->version_major, 0);
            CHECK(h->version_minor >= 0 && h->version_minor <= 9, h->version_minor, 0);
            CHECK(h->status >= 0 && h->status <= 999, h->status, 0);
            CHECK((size_t)h->reason_off + h->reason_len <= n, h->reason_off, h->reason_len);
            o->status = h->status;
            o->major = h->version_major;
            o->minor = h->version_minor;
            bytes_add(&o->reason, buf + h->reason_off, h->reason_len);
        }
        record_fields(o, buf, h);
    }
    return buf;
}

/* ft_parse_fields over buf[off..end) of a larger buffer must keep every
 * offset inside the range and agree with a parse of an exact copy. */
static void check_fields_in_place(const uint8_t *src, size_t n, size_t off, size_t end,
                                  const parse_out *expect)
{
    char *buf = dup_exact(src, n);
    char err[ERRCAP];
    ft_head h;
    size_t cap = 1;
    int rc = FT_PERR;

    memset(&h, 0, sizeof h);
    h.headers = xmalloc(cap * sizeof(ft_header));
    h.cap = cap;
    for (size_t round = 0; round < end - off + 2; round++) {
        h.nheaders = 0;
        rc = ft_parse_fields(buf, off, end, &h, err, sizeof err);
        if (rc != FT_PMORE)
            break;
        CHECK(h.nheaders > h.cap, h.nheaders, h.cap);
        cap = h.nheaders;
        free(h.headers);
        h.headers = xmalloc(cap * sizeof(ft_header));
        h.cap = cap;
    }
    CHECK(rc == expect->rc, rc, expect->rc);
    CHECK(strcmp(err, expect->err) == 0, rc, 0);
    if (rc == FT_OK) {
        check_fields(buf, off, end, &h, 0);
        parse_out o;
        memset(&o, 0, sizeof o);
        record_fields(&o, buf, &h);
        CHECK(bytes_eq(&o.fields, &expect->fields), o.fields.len, expect->fields.len);
        bytes_free(&o.fields);
    }
    free(h.headers);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* Head finding                                                              */
/* ------------------------------------------------------------------------ */

/* Reference: the end of the first line whose content (a trailing CR
 * dropped) is empty; 0 if there is none. */
static size_t ref_head_end(const uint8_t *d, size_t n)
{
    size_t s = 0;
    while (s < n) {
        const uint8_t *nl = memchr(d + s, '\n', n - s);
        if (nl == NULL)
            return 0;
        size_t e = (size_t)(nl - d);
        if (e == s || (e == s + 1 && d[s] == '\r'))
            return e + 1;
        s = e + 1;
    }
    return 0;
}

static size_t find_head(const uint8_t *d, size_t n, rng *r)
{
    size_t scan = 0, whole = 0;
    if (n > 0) {
        char *buf = dup_exact(d, n);
        whole = ft_find_head_end(buf, n, &scan);
        free(buf);
    }
    CHECK(whole == ref_head_end(d, n), whole, ref_head_end(d, n));
    CHECK(scan <= n, scan, n);

    /* Resumed over growing prefixes, each an exact-size copy. */
    size_t len = 0, found = 0;
    scan = 0;
    while (len < n && found == 0) {
        size_t step = rng_range(r, 1, 1 + (rng_next(r) & 1 ? 8 : 200));
        len = len + step > n ? n : len + step;
        char *buf = dup_exact(d, len);
        size_t before = scan;
        found = ft_find_head_end(buf, len, &scan);
        free(buf);
        CHECK(scan >= before && scan <= len, scan, len);
        if (found == 0)
            CHECK(whole == 0 || whole > len, whole, len);
    }
    CHECK(found == whole, found, whole);
    return whole;
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                   */
/* ------------------------------------------------------------------------ */

static void check_framing(const uint8_t *d, size_t head_len, int request_is_head, rng *r)
{
    ft_head h;
    parse_out o;
    char *buf = parse_block(d, head_len, 1, 64, ERRCAP, &h, &o);
    char err[ERRCAP];
    ft_framing f;

    if (o.rc == FT_OK) {
        size_t nh = h.nheaders;
        int rc = ft_framing_for(buf, &h, request_is_head, &f, err, sizeof err);
        CHECK(rc == FT_OK || rc == FT_PERR, rc, 0);
        CHECK(h.nheaders == nh, h.nheaders, nh);
        size_t el = check_err(err, sizeof err);
        if (rc == FT_PERR) {
            CHECK(el > 0, el, 0);
        } else {
            CHECK(el == 0, el, 0);
            int st = h.status, nobody = (st >= 100 && st <= 199) || st == 204 || st == 304;
            CHECK(f.kind >= FT_BODY_NONE && f.kind <= FT_BODY_CLOSE, f.kind, 0);
            CHECK(f.content_length >= -1, (size_t)f.content_length, 0);
            CHECK(f.close == 0 || f.close == 1, f.close, 0);
            if (request_is_head || nobody)
                CHECK(f.kind == FT_BODY_NONE, f.kind, st);
            if (!request_is_head && nobody)
                CHECK(f.content_length == 0, (size_t)f.content_length, st);
            switch (f.kind) {
            case FT_BODY_NONE:
                CHECK(f.body_length == 0, (size_t)f.body_length, 0);
                break;
            case FT_BODY_LENGTH:
                CHECK(f.body_length > 0 && f.content_length == f.body_length,
                      (size_t)f.body_length, (size_t)f.content_length);
                break;
            case FT_BODY_CHUNKED:
                CHECK(f.body_length == -1 && f.content_length == -1, (size_t)f.body_length, 0);
                break;
            default:
                CHECK(f.body_length == -1 && f.content_length == -1 && f.close,
                      (size_t)f.body_length, 0);
            }
            size_t live_cl = 0;
            for (size_t i = 0; i < h.nheaders; i++) {
                const ft_header *hd = &h.headers[i];
                const char *nm = buf + hd->name_off;
                size_t nl = hd->name_len;
                CHECK(hd->value_off + (size_t)hd->value_len <= head_len, hd->value_off,
                      hd->value_len);
                CHECK((hd->flags & ~FT_HDR_DELETED) == 0, i, hd->flags);
                if (hd->flags & FT_HDR_DELETED) {
                    CHECK(ieq_lit(nm, nl, "Connection") || ieq_lit(nm, nl, "Content-Length") ||
                              ieq_lit(nm, nl, "Transfer-Encoding") || ieq_lit(nm, nl, "Trailer"),
                          i, nl);
                    CHECK(!ft_header_eq(buf, hd, "Connection"), i, 0);
                    continue;
                }
                CHECK(!ieq_lit(nm, nl, "Transfer-Encoding"), i, 0);
                if (ieq_lit(nm, nl, "Content-Length"))
                    live_cl++;
                if (f.kind == FT_BODY_CHUNKED)
                    CHECK(!ieq_lit(nm, nl, "Content-Length") && !ieq_lit(nm, nl, "Trailer"), i, 0);
                CHECK(ft_header_eq(buf, hd, "Content-Length") == ieq_lit(nm, nl, "Content-Length"),
                      i, 0);
            }
            CHECK(live_cl <= 1, live_cl, 0);
            /* The lookup helpers on arbitrary names and tokens. */
            static const char *const names[] = {"Connection", "Keep-Alive", "X", "Content-Length"};
            static const char *const toks[] = {"close", "keep-alive", "", "chunked"};
            int pick = (int)(rng_next(r) & 3);
            int ht = ft_has_token(buf, &h, names[pick], toks[(pick + 1) & 3]);
            CHECK(ht == 0 || ht == 1, ht, 0);
        }
    }
    free(h.headers);
    free(buf);
    parse_out_free(&o);
}

/* ------------------------------------------------------------------------ */
/* Chunked decoding                                                          */
/* ------------------------------------------------------------------------ */

enum { END_DONE = 1, END_ERROR = 2, END_EOF = 3 };

typedef struct {
    int end;
    char err[ERRCAP];
    bytes body;
    size_t end_pos;   /* stream offset just past the final line, on END_DONE */
    parse_out trailer;
} chunk_out;

static void chunk_out_free(chunk_out *o)
{
    bytes_free(&o->body);
    parse_out_free(&o->trailer);
}

/* Decode d[0..n) as a chunked stream. piece_max 0: the whole stream in one
 * piece; otherwise pieces of 1..piece_max bytes drawn from r. direct: take
 * chunk data straight from a new piece while nothing is buffered. */
static void chunk_decode(const uint8_t *d, size_t n, size_t piece_max, size_t max_data, int direct,
                         rng *r, chunk_out *o)
{
    ft_chunked c;
    bytes pend = {0};
    size_t fed = 0;      /* input bytes handed to the decoder side */
    size_t base = 0;     /* stream offset of pend.p[0] */
    size_t calls = 0;
    char err[ERRCAP];

    memset(o, 0, sizeof *o);
    ft_chunked_init(&c);
    CHECK(ft_chunked_data_left(&c) == 0, 0, 0);
    CHECK(!ft_chunked_in_trailer(&c), 0, 0);

    for (;;) {
        /* Each call either returns data (at least one byte consumed, which
         * can happen at most n times), asks for more (then a piece is fed or
         * the run ends), or finishes: the loop is bounded by that. */
        CHECK(++calls <= MAX_CALLS_PER_BYTE * (n + 2), calls, n);

        char *buf = dup_exact(pend.p, pend.len);
        size_t consumed = SIZE_MAX, doff = SIZE_MAX, dlen = SIZE_MAX;
        int rc = ft_chunked_next(&c, buf, pend.len, max_data, &consumed, &doff, &dlen, err,
                                 sizeof err);
        CHECK(consumed <= pend.len, consumed, pend.len);
        size_t el = check_err(err, sizeof err);

        if (rc == FT_CH_DATA) {
            CHECK(el == 0, el, 0);
            CHECK(dlen > 0, dlen, 0);
            CHECK(doff + dlen == consumed, doff + dlen, consumed);
            CHECK(max_data == 0 || dlen <= max_data, dlen, max_data);
            bytes_add(&o->body, buf + doff, dlen);
            uint64_t left = ft_chunked_data_left(&c);
            CHECK(left == 0 || left == c.left, (size_t)left, (size_t)c.left);
            CHECK(!ft_chunked_in_trailer(&c), 0, 0);
            free(buf);
            bytes_drop_front(&pend, consumed);
            base += consumed;
            continue;
        }
        if (rc == FT_CH_DONE) {
            CHECK(el == 0, el, 0);
            CHECK(c.trailer_off + c.trailer_len <= consumed, c.trailer_off, c.trailer_len);
            CHECK(consumed > c.trailer_off + c.trailer_len, consumed, c.trailer_len);
            CHECK(buf[consumed - 1] == '\n', consumed, 0);
            CHECK(!ft_chunked_in_trailer(&c) && ft_chunked_data_left(&c) == 0, 0, 0);
            /* The trailer block: an exact copy, then in place. */
            const uint8_t *tb = (const uint8_t *)buf + c.trailer_off;
            ft_head th;
            char *tbuf = parse_block(tb, c.trailer_len, 0, rng_range(r, 0, 2), ERRCAP, &th,
                                     &o->trailer);
            free(th.headers);
            free(tbuf);
            check_fields_in_place((const uint8_t *)buf, pend.len, c.trailer_off,
                                  c.trailer_off + c.trailer_len, &o->trailer);
            o->end = END_DONE;
            o->end_pos = base + consumed;
            /* Once done, the decoder stays done and consumes nothing. */
            size_t c2, o2, l2;
            int again = ft_chunked_next(&c, buf, pend.len, max_data, &c2, &o2, &l2, err, sizeof err);
            CHECK(again == FT_CH_DONE && c2 == 0 && l2 == 0, again, c2);
            ft_chunked_took_data(&c, 1); /* no data is left to take: a no-op */
            CHECK(ft_chunked_data_left(&c) == 0 && !ft_chunked_in_trailer(&c), 0, 0);
            free(buf);
            break;
        }
        if (rc == FT_PERR) {
            CHECK(el > 0, el, 0);
            memcpy(o->err, err, el + 1);
            o->end = END_ERROR;
            size_t c2, o2, l2;
            char err2[ERRCAP];
            int again = ft_chunked_next(&c, buf, pend.len, max_data, &c2, &o2, &l2, err2,
                                        sizeof err2);
            CHECK(again == FT_PERR && c2 == 0, again, c2);
            free(buf);
            break;
        }
        CHECK(rc == FT_CH_MORE, rc, 0);
        CHECK(el == 0, el, 0);
        free(buf);
        bytes_drop_front(&pend, consumed);
        base += consumed;
        if (fed >= n) {
            o->end = END_EOF;
            break;
        }
        size_t take = piece_max == 0 ? n - fed : rng_range(r, 1, piece_max);
        if (take > n - fed)
            take = n - fed;
        const uint8_t *piece = d + fed;
        fed += take;
        if (direct && pend.len == 0) {
            uint64_t left = ft_chunked_data_left(&c);
            if (left > 0) {
                size_t k = left < take ? (size_t)left : take;
                bytes_add(&o->body, piece, k);
                ft_chunked_took_data(&c, k);
                CHECK(ft_chunked_data_left(&c) == left - k || (left == k && ft_chunked_data_left(&c) == 0),
                      (size_t)ft_chunked_data_left(&c), (size_t)(left - k));
                piece += k;
                take -= k;
                base += k;
            }
        }
        bytes_add(&pend, piece, take);
    }
    bytes_free(&pend);
}

static void chunk_out_check_eq(const chunk_out *a, const chunk_out *b)
{
    CHECK(a->end == b->end, a->end, b->end);
    CHECK(strcmp(a->err, b->err) == 0, a->end, b->end);
    CHECK(bytes_eq(&a->body, &b->body), a->body.len, b->body.len);
    CHECK(a->end_pos == b->end_pos, a->end_pos, b->end_pos);
    CHECK(parse_out_eq(&a->trailer, &b->trailer), a->trailer.rc, b->trailer.rc);
}

static void check_chunked(const uint8_t *d, size_t n, rng *r)
{
    chunk_out whole, other;

    chunk_decode(d, n, 0, 0, 0, r, &whole);
    CHECK(whole.body.len <= n, whole.body.len, n);
    CHECK(whole.end != END_DONE || whole.end_pos <= n, whole.end_pos, n);

    for (int run = 0; run < 3; run++) {
        size_t piece_max = rng_range(r, 1, run == 0 ? 4 : run == 1 ? 64 : 4096);
        size_t max_data = (rng_next(r) & 1) ? 0 : rng_range(r, 1, 16);
        int direct = (int)(rng_next(r) & 1);
        chunk_decode(d, n, piece_max, max_data, direct, r, &other);
        chunk_out_check_eq(&whole, &other);
        chunk_out_free(&other);
    }
    if (n <= BYTEWISE_LIMIT) {
        chunk_decode(d, n, 1, 1, 1, r, &other);
        chunk_out_check_eq(&whole, &other);
        chunk_out_free(&other);
    }
    chunk_out_free(&whole);
}

/* ------------------------------------------------------------------------ */
/* Quoting and short error buffers                                           */
/* ------------------------------------------------------------------------ */

static void check_quote(const uint8_t *d, size_t n, rng *r)
{
    size_t m = n < 64 ? n : 64;
    size_t cap = rng_range(r, 0, 4 * m + 4);
    char *out = xmalloc(cap);
    ft_quote((const char *)d, m, out, cap);
    if (cap) {
        size_t ql = check_err(out, cap);
        if (cap >= 4 * m + 3) /* room for the longest form: "\xNN" per byte, quotes, NUL */
            CHECK(ql >= 2 && out[0] == '"' && out[ql - 1] == '"', ql, cap);
    }
    free(out);
}

/* An error text written into a short buffer is a prefix of the full text. */
static void check_short_err(const uint8_t *d, size_t head_len, const parse_out *full, rng *r)
{
    ft_head h;
    parse_out o;
    size_t errcap = rng_range(r, 0, 40);
    char *buf = parse_block(d, head_len, 1, 4, errcap, &h, &o);
    CHECK(o.rc == full->rc, o.rc, full->rc);
    if (errcap)
        CHECK(strncmp(o.err, full->err, strlen(o.err)) == 0, strlen(o.err), errcap);
    free(h.headers);
    free(buf);
    parse_out_free(&o);
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */
/* ------------------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rng r;
    rng_seed(&r, data, size, 0);

    check_quote(data, size, &r);

    size_t head_len = find_head(data, size, &r);
    if (head_len > 0) {
        /* Small starting capacities exercise FT_PMORE and the re-parse of a
         * partly rewritten buffer; the result must match ample room. */
        ft_head h1, h2;
        parse_out o1, o2;
        char *b1 = parse_block(data, head_len, 1, rng_range(&r, 0, 3), ERRCAP, &h1, &o1);
        char *b2 = parse_block(data, head_len, 1, head_len + 1, ERRCAP, &h2, &o2);
        CHECK(parse_out_eq(&o1, &o2), o1.rc, o2.rc);
        check_short_err(data, head_len, &o2, &r);
        free(h1.headers);
        free(h2.headers);
        free(b1);
        free(b2);

        if (o2.rc == FT_OK) {
            check_framing(data, head_len, 0, &r);
            check_framing(data, head_len, 1, &r);

            /* The body after a chunked head. */
            ft_head h;
            parse_out o;
            char *b = parse_block(data, head_len, 1, 64, ERRCAP, &h, &o);
            ft_framing f;
            char err[ERRCAP];
            if (ft_framing_for(b, &h, 0, &f, err, sizeof err) == FT_OK &&
                f.kind == FT_BODY_CHUNKED)
                check_chunked(data + head_len, size - head_len, &r);
            free(h.headers);
            free(b);
            parse_out_free(&o);
        }
        parse_out_free(&o1);
        parse_out_free(&o2);
    }

    /* The input as a header block of its own, which need not end in a
     * line break (ft_parse_fields takes any range). */
    {
        ft_head h;
        parse_out o;
        char *b = parse_block(data, size, 0, rng_range(&r, 0, 2), ERRCAP, &h, &o);
        free(h.headers);
        free(b);
        parse_out_free(&o);
    }

    check_chunked(data, size, &r);
    return 0;
}
