/* dial.c - a dial as a state machine on an engine thread: non-blocking
 * connect to each resolved address in turn until one succeeds, the dial
 * deadline passes, or every address failed. The result goes to
 * ft_pool_dial_done, which delivers it to the waiting request or pools it
 * (late binding, Go's dialConnFor). Only the engine touches a dial. */
#include "core.h"
#include "sock.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void dial_succeeded(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    if (c->registered)
        ft_engine_unwatch(c->engine, c);
    ft_set_nodelay(c->fd);
    ft_pool_dial_done(t, d, 1);
}

void ft_dial_fail(ft_transport *t, ft_dial *d, int code, const char *msg)
{
    ft_conn *c = d->c;
    char addr[80];
    if (c->registered)
        ft_engine_unwatch(c->engine, c);
    if (code == FT_E_CONNECT_TIMEOUT && !msg) {
        const struct addrinfo *ai = d->next ? d->next : d->addrs;
        if (ai)
            ft_addr_str(ai, addr, sizeof addr);
        else
            snprintf(addr, sizeof addr, "?");
        snprintf(d->err, sizeof d->err, "dial tcp %s: i/o timeout", addr);
    } else if (msg && msg != d->err) {
        snprintf(d->err, sizeof d->err, "%s", msg);
    }
    d->err_code = code;
    ft_pool_dial_done(t, d, 0);
}

/* Try addresses from d->next on: returns when a connect is pending (watched
 * for writability), has succeeded, or every address failed. */
static void try_next(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char addr[80], ebuf[128];
    while (d->next) {
        int pending = 0;
        int fd = ft_connect_start(d->next, &pending);
        if (fd < 0) {
            ft_addr_str(d->next, addr, sizeof addr);
            snprintf(d->err, sizeof d->err, "dial tcp %s: connect: %s", addr, ft_errstr(-fd, ebuf, sizeof ebuf));
            d->err_code = FT_E_CONNECT;
            d->next = d->next->ai_next;
            continue;
        }
        c->fd = fd;
        if (!pending) {
            dial_succeeded(t, d);
            return;
        }
        ft_engine_watch_out(c->engine, c);
        if (!c->registered) {
            close(fd);
            c->fd = -1;
            snprintf(d->err, sizeof d->err, "dial tcp: cannot watch the socket");
            d->err_code = FT_E_CONNECT;
            d->next = d->next->ai_next;
            continue;
        }
        return;
    }
    if (!d->err_code)
        ft_dial_fail(t, d, FT_E_CONNECT, "dial tcp: no address");
    else
        ft_dial_fail(t, d, d->err_code, d->err);
}

void ft_dial_begin(ft_transport *t, ft_dial *d)
{
    d->next = d->addrs;
    try_next(t, d);
}

void ft_dial_on_event(ft_transport *t, ft_dial *d)
{
    ft_conn *c = d->c;
    char addr[80], ebuf[128];
    int e = ft_connect_result(c->fd);
    if (e == 0) {
        dial_succeeded(t, d);
        return;
    }
    ft_engine_unwatch(c->engine, c);
    ft_addr_str(d->next, addr, sizeof addr);
    snprintf(d->err, sizeof d->err, "dial tcp %s: connect: %s", addr, ft_errstr(e, ebuf, sizeof ebuf));
    d->err_code = FT_E_CONNECT;
    close(c->fd);
    c->fd = -1;
    d->next = d->next->ai_next;
    try_next(t, d);
}
