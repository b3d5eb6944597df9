# Header names as Python str without an allocation for the common ones: the
# parser has canonicalised names in place (Content-Type, not content-type),
# so an exact match returns a str constant created once per module.
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.string cimport memcmp


cdef inline str header_name(const char *p, size_t n):
    if n == 4:
        if memcmp(p, b"Date", 4) == 0: return "Date"
        if memcmp(p, b"Vary", 4) == 0: return "Vary"
        if memcmp(p, b"Etag", 4) == 0: return "Etag"
    elif n == 6:
        if memcmp(p, b"Server", 6) == 0: return "Server"
    elif n == 7:
        if memcmp(p, b"Expires", 7) == 0: return "Expires"
    elif n == 8:
        if memcmp(p, b"Location", 8) == 0: return "Location"
    elif n == 10:
        if memcmp(p, b"Connection", 10) == 0: return "Connection"
        if memcmp(p, b"Set-Cookie", 10) == 0: return "Set-Cookie"
        if memcmp(p, b"Keep-Alive", 10) == 0: return "Keep-Alive"
    elif n == 12:
        if memcmp(p, b"Content-Type", 12) == 0: return "Content-Type"
    elif n == 13:
        if memcmp(p, b"Cache-Control", 13) == 0: return "Cache-Control"
        if memcmp(p, b"Last-Modified", 13) == 0: return "Last-Modified"
        if memcmp(p, b"Accept-Ranges", 13) == 0: return "Accept-Ranges"
    elif n == 14:
        if memcmp(p, b"Content-Length", 14) == 0: return "Content-Length"
    elif n == 15:
        if memcmp(p, b"X-Frame-Options", 15) == 0: return "X-Frame-Options"
    elif n == 16:
        if memcmp(p, b"Content-Encoding", 16) == 0: return "Content-Encoding"
    elif n == 17:
        if memcmp(p, b"Transfer-Encoding", 17) == 0: return "Transfer-Encoding"
    elif n == 22:
        if memcmp(p, b"X-Content-Type-Options", 22) == 0: return "X-Content-Type-Options"
    elif n == 25:
        if memcmp(p, b"Strict-Transport-Security", 25) == 0:
            return "Strict-Transport-Security"
    return PyUnicode_DecodeLatin1(p, <Py_ssize_t>n, NULL)
