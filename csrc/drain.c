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

static void drain_unlink_locked(ft_io *io, ft_conn *c)
{
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        io->drains = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    c->dprev = c->dnext = NULL;
}

void ft_drain_start(ft_transport *t, ft_conn *c, uint64_t left, int64_t deadline)
{
    ft_io *io = c->io;
    pthread_mutex_lock(&t->mu);
    /* watched and linked in one hold of mu: its engine's first event for it
     * finds it draining */
    int ok = !t->closed && ft_conn_watch(c, 0) == 0;
    if (ok) {
        c->drain_left = left;
        c->drain_deadline = deadline;
        ft_conn_set_state_locked(t, c, FT_CS_DRAINING);
        c->dprev = NULL;
        c->dnext = io->drains;
        if (io->drains)
            io->drains->dprev = c;
        io->drains = c;
        ft_engine_wake_at(io->e, deadline);
    }
    pthread_mutex_unlock(&t->mu);
    if (!ok)
        ft_conn_destroy(t, c);
}

/* Engine thread: c became readable while draining. */
void ft_drain_on_readable(ft_transport *t, ft_conn *c)
{
    int r = ft_drain_readable(c, &c->drain_left);
    if (r == FT_DRAIN_AGAIN)
        return;
    pthread_mutex_lock(&t->mu);
    drain_unlink_locked(c->io, c);
    if (r == FT_DRAIN_DONE)
        t->st.drained_conns++;
    pthread_mutex_unlock(&t->mu);
    ft_conn_unwatch(c);
    if (r == FT_DRAIN_DONE)
        ft_pool_put(t, c);
    else
        ft_conn_destroy(t, c);
}

int64_t ft_drain_expire_locked(ft_io *io, int64_t now, ft_conn **dead)
{
    int64_t next = 0;
    for (ft_conn *c = io->drains, *nx; c; c = nx) {
        nx = c->dnext;
        if (c->drain_deadline <= now) {
            drain_unlink_locked(io, c);
            c->lnext = *dead;
            *dead = c;
        } else if (next == 0 || c->drain_deadline < next) {
            next = c->drain_deadline;
        }
    }
    return next;
}
