/* parser.h - HTTP/1.x response parsing as pure functions over byte buffers.
 *
 * No I/O, no allocation, no global state: the connection's read loop owns the
 * buffer and calls these. Behaviour follows Go's net/http (ReadResponse,
 * readMIMEHeader, readTransfer/fixLength, internal/chunked.go); error texts are
 * Go's, because callers can observe them.
 *
 * All functions returning int return FT_OK (0) on success and FT_PERR (-1) on a
 * protocol error, with a NUL-terminated message written to err[0..errcap).
 */
#ifndef FT_PARSER_H
#define FT_PARSER_H

#include <stddef.h>
#include <stdint.h>

#define FT_OK 0
#define FT_PERR (-1)          /* malformed input; err holds Go's text */
#define FT_PMORE (-2)         /* header array too small: grow and call again */

/* One header field; offsets are into the buffer the head was parsed from. */
typedef struct {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
    uint32_t flags;
} ft_header;

#define FT_HDR_DELETED 1u     /* removed by the framing rules (Go deletes it) */

typedef struct {
    int version_major, version_minor;
    int status;
    uint32_t reason_off, reason_len;
    ft_header *headers;       /* caller-provided array */
    size_t nheaders;          /* filled */
    size_t cap;               /* capacity of headers */
} ft_head;

/* Locate the end of a response head (the blank line, CRLF or bare LF).
 * buf[0..len) is what has been read so far; *scan is resumable state
 * (start at 0) so that feeding a byte at a time stays linear.
 * Returns the head length including the blank line, or 0 if incomplete. */
size_t ft_find_head_end(const char *buf, size_t len, size_t *scan);

/* Parse a complete head buf[0..head_len) as returned by ft_find_head_end.
 * Rewrites buf in place: header names are canonicalised (content-type ->
 * Content-Type, unless the name holds a byte that is not a token char, as Go),
 * obsolete line folding is joined with one space. Returns FT_OK, FT_PERR, or
 * FT_PMORE when h->cap is too small (h->nheaders then says how many are needed;
 * the buffer is left parseable again). */
int ft_parse_head(char *buf, size_t head_len, ft_head *h, char *err, size_t errcap);

/* Parse header fields (no status line) in buf[off..end) and append them to
 * h->headers; used for chunked trailers. Same rules and returns as above. */
int ft_parse_fields(char *buf, size_t off, size_t end, ft_head *h, char *err, size_t errcap);

/* ---- framing (Go's readTransfer / fixLength / shouldClose) ---- */

enum { FT_BODY_NONE = 0, FT_BODY_LENGTH = 1, FT_BODY_CHUNKED = 2, FT_BODY_CLOSE = 3 };

typedef struct {
    int kind;                 /* FT_BODY_* */
    int64_t content_length;   /* Go's Response.ContentLength: -1 when unknown */
    int64_t body_length;      /* bytes to read for FT_BODY_LENGTH */
    int close;                /* response forbids reuse (shouldClose, close-delimited) */
} ft_framing;

/* Decide how the body of a parsed head is delimited. request_is_head: the
 * request method was HEAD. Marks headers Go deletes with FT_HDR_DELETED
 * (Connection when it carries "close", Content-Length under chunked,
 * Transfer-Encoding on HTTP/1.0, Trailer under chunked). */
int ft_framing_for(const char *buf, ft_head *h, int request_is_head, ft_framing *f,
                   char *err, size_t errcap);

/* Case-insensitive lookup helpers over a parsed head (skip deleted fields). */
int ft_header_eq(const char *buf, const ft_header *hd, const char *name);
/* Does any field `name` contain `token` in its comma-separated list? */
int ft_has_token(const char *buf, const ft_head *h, const char *name, const char *token);

/* ---- chunked transfer coding ---- */

typedef struct {
    int state;                /* private */
    uint64_t left;            /* data bytes left in the current chunk */
    int64_t excess;           /* overhead guard accumulator */
    size_t trailer_off;       /* on FT_CH_DONE: trailer block (may be empty) */
    size_t trailer_len;
} ft_chunked;

enum {
    FT_CH_DATA = 1,           /* *data_off, *data_len: body bytes inside buf */
    FT_CH_MORE = 2,           /* need more input; drop *consumed bytes, keep the rest */
    FT_CH_DONE = 3,           /* body and trailer read; *consumed through the final line */
};

void ft_chunked_init(ft_chunked *c);

/* Advance over buf[0..len). max_data caps the data span returned.
 * Returns FT_CH_DATA/FT_CH_MORE/FT_CH_DONE or FT_PERR. In every case *consumed
 * is how many bytes of buf were used (framing and returned data); on FT_CH_DONE
 * c->trailer_off/len locate the trailer fields relative to buf (parse them with
 * ft_parse_fields before dropping the bytes). */
int ft_chunked_next(ft_chunked *c, const char *buf, size_t len, size_t max_data,
                    size_t *consumed, size_t *data_off, size_t *data_len,
                    char *err, size_t errcap);

/* Data bytes that may be read straight from the socket into a caller buffer
 * (0 unless the decoder is inside chunk data), and accounting for them. */
uint64_t ft_chunked_data_left(const ft_chunked *c);
void ft_chunked_took_data(ft_chunked *c, uint64_t n);
/* True while the decoder is reading the trailer section (for the caller's
 * "suspiciously long trailer" check when its buffer is full). */
int ft_chunked_in_trailer(const ft_chunked *c);

/* Go's %q-style quoting of bytes into out (always NUL-terminated). */
void ft_quote(const char *s, size_t n, char *out, size_t outcap);

#endif
