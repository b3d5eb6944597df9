/* watch.c - the transport's side of its I/O engines. Each engine (an ft_io)
 * runs the connections assigned to it while no caller does, through the two
 * callbacks given to ft_engine_start:
 *  - on_fd: an event's tag is a connection's (slot, generation), resolved
 *    under ft_transport.mu, so a stale event finds nothing; the connection's
 *    state says what the event is for: an idle one became readable (Go's
 *    readLoopPeekFailLocked), a drain can go on, a dial can go on, a job
 *    (an exchange the engine runs, job.c) can go on, or the request body
 *    of an exchange whose caller is away can go on (parked);
 *  - on_tick: the timers: idle_conn_timeout over the global LRU (engine 0
 *    only), the lazy idle watch, drain deadlines, dial deadlines and
 *    aborted dials, job deadlines. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>

static uint64_t conn_tag(const ft_conn *c)
{
    return ((uint64_t)c->slot << 32) | c->gen;
}

static ft_conn *conn_of_tag_locked(ft_transport *t, uint64_t tag)
{
    uint32_t slot = (uint32_t)(tag >> 32), gen = (uint32_t)tag;
    return slot < t->nslots && t->slot_gen[slot] == gen ? t->slots[slot] : NULL;
}

/* Watch c for `events` in its engine's set: added, changed, or left as it
 * is when it is watched for them already (a job keeps the idle watch of a
 * connection it takes, and the pool keeps a job's). */
int ft_conn_watch_events(ft_conn *c, uint32_t events)
{
    int rc;
    if (c->registered) {
        if (c->wevents == events)
            return 0;
        rc = ft_engine_mod(c->io->e, c->fd, events, conn_tag(c));
    } else {
        rc = ft_engine_add(c->io->e, c->fd, events, conn_tag(c));
        if (rc == 0)
            c->registered = 1;
    }
    if (rc == 0)
        c->wevents = events;
    return rc;
}

int ft_conn_watch(ft_conn *c, int want_write)
{
    return ft_conn_watch_events(c, want_write ? EPOLLOUT : EPOLLIN | EPOLLRDHUP);
}

int ft_conn_rewatch(ft_conn *c, int want_write)
{
    uint32_t events = want_write ? EPOLLOUT : EPOLLIN;
    int rc = ft_engine_mod(c->io->e, c->fd, events, conn_tag(c));
    if (rc == 0)
        c->wevents = events;
    return rc;
}

void ft_conn_unwatch(ft_conn *c)
{
    if (!c->registered)
        return;
    /* fails only for an fd not in the set: nothing is left to remove */
    (void)ft_engine_del(c->io->e, c->fd);
    c->registered = 0;
}

/* An idle connection became readable and was unlinked from the idle lists:
 * the engine owns it. EOF and "HTTP/1.x 408" are expected, anything else is
 * an unsolicited response; both end it. Over TLS the bytes may be a record
 * that carries no data (a TLS 1.3 session ticket): then it goes back. */
static void idle_readable(ft_transport *t, ft_conn *c)
{
    char one[1], ebuf[160];
    if (c->ssl && ft_conn_recv(c, one, sizeof one, ebuf, sizeof ebuf) < 0 && errno == EAGAIN
        && !c->want_write) {
        ft_conn_unwatch(c);
        ft_pool_put(t, c);
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->st.idle_closed_by_peer++;
    pthread_mutex_unlock(&t->mu);
    ft_conn_destroy(t, c);
}

/* A connection in use whose caller parked its request body (ft_rt_park)
 * became writable: one write step, with the exchange's owner kept out
 * (park_busy) until it ends. Called with mu held; returns with it
 * released. */
static void parked_writable(ft_transport *t, ft_conn *c)
{
    ft_rt *rt = c->parked;
    if (!rt || c->park_busy) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    c->park_busy = 1;
    pthread_mutex_unlock(&t->mu);
    int stop = ft_rt_parked_step(t, rt);
    pthread_mutex_lock(&t->mu);
    c->park_busy = 0;
    if (stop) {
        c->parked = NULL;
        ft_conn_unwatch(c);
    }
    pthread_cond_broadcast(&t->park_cond);
    pthread_mutex_unlock(&t->mu);
}

static void on_fd(void *ctx, ft_engine *e, uint64_t tag, uint32_t events)
{
    ft_io *io = ctx;
    ft_transport *t = io->t;
    (void)e;
    (void)events;
    pthread_mutex_lock(&t->mu);
    ft_conn *c = conn_of_tag_locked(t, tag);
    int state = c && c->io == io ? c->state : 0;
    ft_dial *d = state == FT_CS_DIALING ? c->dial : NULL;
    if (state == FT_CS_IDLE)
        ft_pool_unlink_idle_locked(t, c);   /* no taker can have it now */
    if (state == FT_CS_ACTIVE && c->job) {
        ft_job *j = c->job->io == io ? c->job : NULL;
        pthread_mutex_unlock(&t->mu);
        if (j)
            ft_job_on_event(t, io, j);      /* this engine runs it: only it can end it */
        return;
    }
    if (state == FT_CS_ACTIVE) {
        parked_writable(t, c);              /* unlocks mu */
        return;
    }
    pthread_mutex_unlock(&t->mu);
    if (state == FT_CS_IDLE)
        idle_readable(t, c);
    else if (state == FT_CS_DRAINING)
        ft_drain_on_readable(t, c);
    else if (d)
        ft_dial_on_event(t, d);
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a == 0 || (b != 0 && b < a) ? b : a;
}

static int64_t on_tick(void *ctx, ft_engine *e, int64_t now)
{
    ft_io *io = ctx;
    ft_transport *t = io->t;
    ft_conn *dead = NULL;
    ft_dial *late = NULL;
    int64_t next = 0;
    (void)e;
    pthread_mutex_lock(&t->mu);
    if (io == &t->io[0])
        next = ft_pool_expire_idle_locked(t, now, &dead);
    next = earliest(next, ft_pool_sweep_lazy_locked(io, now, &dead));
    next = earliest(next, ft_drain_expire_locked(io, now, &dead));
    next = earliest(next, ft_dial_expire_locked(io, now, &late));
    next = earliest(next, ft_job_expire_locked(io, now));
    pthread_mutex_unlock(&t->mu);
    ft_dial_fail_late(t, late);
    ft_conn_destroy_list(t, dead);
    return next;
}

int ft_io_start(ft_transport *t, char *err, size_t errcap)
{
    static const ft_engine_ops ops = { on_fd, on_tick };
    for (int i = 0; i < t->nio; i++) {
        char name[16];
        snprintf(name, sizeof name, "ft-io-%d", i % 10000);
        t->io[i].t = t;
        t->io[i].e = ft_engine_start(name, &ops, &t->io[i], err, errcap);
        if (!t->io[i].e)
            return -1;
        pthread_mutex_lock(&t->mu);
        t->st.io_threads++;
        pthread_mutex_unlock(&t->mu);
    }
    return 0;
}

/* After ft_transport_close has closed the idle connections and failed the
 * waiters. Nothing is watched afterwards: ft_pool_put and ft_drain_start
 * check t->closed under mu, and no dial starts on a closed transport. */
void ft_io_stop(ft_transport *t)
{
    for (int i = 0; i < t->nio; i++) {
        if (!t->io[i].e)
            continue;
        ft_engine_stop(t->io[i].e);
        pthread_mutex_lock(&t->mu);
        t->st.io_threads--;
        pthread_mutex_unlock(&t->mu);
    }
    /* The engines are joined: what they drained and dialed has no owner. */
    for (int i = 0; i < t->nio; i++) {
        ft_conn *dead = NULL;
        pthread_mutex_lock(&t->mu);
        (void)ft_drain_expire_locked(&t->io[i], INT64_MAX, &dead);   /* all of them */
        pthread_mutex_unlock(&t->mu);
        ft_conn_destroy_list(t, dead);
        ft_dial_close_all(t, &t->io[i]);
        ft_job_close_all(t, &t->io[i]);
    }
    for (int i = 0; i < t->nio; i++) {
        ft_engine_free(t->io[i].e);
        t->io[i].e = NULL;
    }
}
