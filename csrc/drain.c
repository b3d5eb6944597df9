/* drain.c - the rest of a body closed early (Go tip's maybeDrainBody), when
 * it is small and its length known: what is readable is discarded at once by
 * the closing caller (ft_rt_close), the rest by the connection's engine until
 * a deadline. A connection drained to its last byte is pooled; one that ends,
 * fails, sends more than the body or runs out of time is closed. */
#include "core.h"

#include <errno.h>

int ft_drain_readable(ft_conn *c, uint64_t *left)
{
    size_t avail = c->wpos - c->rpos;
    if (avail > *left)
        return FT_DRAIN_BROKEN;      /* bytes beyond the body are buffered */
    *left -= avail;
    c->rpos = c->wpos = 0;
    while (*left > 0) {
        char ebuf[160];
        ssize_t n = ft_conn_recv(c, c->buf, c->cap, ebuf, sizeof ebuf);
        if (n < 0 && errno == EAGAIN)
            return FT_DRAIN_AGAIN;
        if (n <= 0 || (uint64_t)n > *left)
            return FT_DRAIN_BROKEN;  /* EOF, error, or bytes beyond the body */
        *left -= (uint64_t)n;
    }
    return FT_DRAIN_DONE;
}

void ft_drain_start(ft_transport *t, ft_conn *c, uint64_t left, int64_t deadline)
{
    pthread_mutex_lock(&t->mu);
    if (t->closed) {
        pthread_mutex_unlock(&t->mu);
        ft_conn_destroy(t, c);
        return;
    }
    c->drain_left = left;
    c->drain_deadline = deadline;
    ft_conn_set_state_locked(t, c, FT_CS_DRAINING);
    ft_engine_watch(c->engine, c);
    ft_engine_add_drain_locked(c->engine, c);
    pthread_mutex_unlock(&t->mu);
}
