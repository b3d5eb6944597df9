# Declarations of csrc/parser.h (the pure response parser). No code here.
from libc.stdint cimport uint32_t, uint64_t, int64_t

cdef extern from "parser.h" nogil:
    enum:
        FT_OK
        FT_PERR
        FT_PMORE
        FT_HDR_DELETED
        FT_BODY_NONE
        FT_BODY_LENGTH
        FT_BODY_CHUNKED
        FT_BODY_CLOSE
        FT_CH_DATA
        FT_CH_MORE
        FT_CH_DONE

    ctypedef struct ft_header:
        uint32_t name_off, name_len
        uint32_t value_off, value_len
        uint32_t flags

    ctypedef struct ft_head:
        int version_major, version_minor
        int status
        uint32_t reason_off, reason_len
        ft_header *headers
        size_t nheaders
        size_t cap

    ctypedef struct ft_framing:
        int kind
        int64_t content_length
        int64_t body_length
        int close

    ctypedef struct ft_chunked:
        uint64_t left
        size_t trailer_off
        size_t trailer_len

    size_t ft_find_head_end(const char *buf, size_t len, size_t *scan)
    int ft_parse_head(char *buf, size_t head_len, ft_head *h, char *err, size_t errcap)
    int ft_parse_fields(char *buf, size_t off, size_t end, ft_head *h, char *err, size_t errcap)
    int ft_framing_for(const char *buf, ft_head *h, int request_is_head, ft_framing *f,
                       char *err, size_t errcap)
    int ft_header_eq(const char *buf, const ft_header *hd, const char *name)
    int ft_has_token(const char *buf, const ft_head *h, const char *name, const char *token)
    void ft_chunked_init(ft_chunked *c)
    int ft_chunked_next(ft_chunked *c, const char *buf, size_t len, size_t max_data,
                        size_t *consumed, size_t *data_off, size_t *data_len,
                        char *err, size_t errcap)
    uint64_t ft_chunked_data_left(const ft_chunked *c)
    void ft_chunked_took_data(ft_chunked *c, uint64_t n)
    int ft_chunked_in_trailer(const ft_chunked *c)
    void ft_quote(const char *s, size_t n, char *out, size_t outcap)
