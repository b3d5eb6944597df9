/* sock.h - socket primitives for the loops: clock, name resolution,
 * non-blocking connect, waits. Portable POSIX (Linux first); no Python. */
#ifndef FT_SOCK_H
#define FT_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct addrinfo;

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t ft_now_ns(void);

/* Resolve host:port for TCP (getaddrinfo; blocking, call without the GIL).
 * Returns 0, or -1 with Go-like text in err ("dial tcp: lookup h: ..."). */
int ft_resolve(const char *host, int port, struct addrinfo **out, char *err, size_t errcap);

/* Start a non-blocking connect to one address. Returns the fd (>=0) with
 * *pending = 1 while the connect is in progress, or -errno. */
int ft_connect_start(const struct addrinfo *ai, int *pending);

/* After the fd became writable: 0 when connected, else errno of the failure. */
int ft_connect_result(int fd);

/* Turn on TCP_NODELAY (as Go does). */
void ft_set_nodelay(int fd);

/* poll() one fd for `events` for at most timeout_ms (-1: forever).
 * Returns revents (>0), 0 on timeout or EINTR. */
int ft_wait_fd(int fd, short events, int timeout_ms);

/* Milliseconds to wait until `deadline` (0 = none), capped at cap_ms. */
int ft_ms_until(int64_t deadline, int64_t now, int cap_ms);

/* Go's text for an errno: the C library's, first letter lower-cased
 * ("connection refused", "connection reset by peer", "broken pipe"). */
const char *ft_errstr(int e, char *buf, size_t cap);

/* "ip:port" (or "[ip6]:port") of an address, for error texts. */
void ft_addr_str(const struct addrinfo *ai, char *out, size_t outcap);

#endif
