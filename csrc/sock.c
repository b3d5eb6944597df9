/* sock.c - see sock.h. */
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t ft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int ft_resolve(const char *host, int port, struct addrinfo **out, char *err, size_t errcap)
{
    struct addrinfo hints;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, out);
    if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {
        /* AI_ADDRCONFIG hides loopback-only families on hosts without other
         * interfaces; try once more without it. */
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, portstr, &hints, out);
    }
    if (rc != 0) {
        const char *why = rc == EAI_NONAME ? "no such host"
                        : rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
        snprintf(err, errcap, "dial tcp: lookup %s: %s", host, why);
        return -1;
    }
    return 0;
}

int ft_connect_start(const struct addrinfo *ai, int *pending)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    *pending = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno == EINPROGRESS) {
            *pending = 1;
        } else {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    return fd;
}

int ft_connect_result(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        return errno;
    return soerr;
}

void ft_set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int ft_wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0)
        return 0;
    return p.revents;
}

int ft_ms_until(int64_t deadline, int64_t now, int cap_ms)
{
    if (deadline == 0)
        return cap_ms;
    int64_t left = deadline - now;
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    if (cap_ms >= 0 && ms > cap_ms)
        return cap_ms;
    return (int)ms;
}

/* strerror_r has two forms: glibc's GNU one returns the text (which may
 * not be in the buffer), the XSI one (musl) returns 0 and fills the
 * buffer. _Generic picks the reader by the return type. */
static const char *errtext_gnu(const char *r, char *tmp)
{
    (void)tmp;
    return r;
}

static const char *errtext_xsi(int r, char *tmp)
{
    return r == 0 ? tmp : "unknown error";
}

const char *ft_errstr(int e, char *buf, size_t cap)
{
    char tmp[128];
    const char *m = _Generic(strerror_r(e, tmp, sizeof tmp), int: errtext_xsi,
                             default: errtext_gnu)(strerror_r(e, tmp, sizeof tmp), tmp);
    snprintf(buf, cap, "%s", m);
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

void ft_addr_str(const struct addrinfo *ai, char *out, size_t outcap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ai->ai_addr;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
        snprintf(out, outcap, "%s:%d", ip, port);
    } else if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ai->ai_addr;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
        snprintf(out, outcap, "[%s]:%d", ip, port);
    } else {
        snprintf(out, outcap, "?");
    }
}
