/* engine.c - the I/O engine: io_threads native threads, each with an epoll
 * set, that advance every connection no caller is waiting on:
 *  - idle watch: an idle connection that becomes readable (FIN, RST or stray
 *    bytes, Go's readLoopPeekFailLocked) leaves the pool and is closed;
 *  - drains after an early close (ft_rt_close), bounded in bytes and time;
 *  - idle_conn_timeout (engine 0 walks the global LRU, oldest first).
 * An engine thread never touches Python. It is created by ft_engines_start
 * with a small stack and all signals blocked, and joined by ft_engines_stop. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define FT_ENGINE_STACK (256 * 1024)

static uint64_t conn_tag(const ft_conn *c)
{
    return ((uint64_t)c->slot << 32) | c->gen;
}

void ft_engine_watch(ft_engine *e, ft_conn *c)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = conn_tag(c);
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0)
        c->registered = 1;
}

void ft_engine_watch_out(ft_engine *e, ft_conn *c)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLOUT;
    ev.data.u64 = conn_tag(c);
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0)
        c->registered = 1;
}

void ft_engine_rewatch(ft_engine *e, ft_conn *c, int want_write)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = want_write ? EPOLLOUT : EPOLLIN;
    ev.data.u64 = conn_tag(c);
    (void)epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void ft_engine_unwatch(ft_engine *e, ft_conn *c)
{
    (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->registered = 0;
}

void ft_engine_wake_locked(ft_engine *e, int64_t when)
{
    if (e->sleep_until != 0 && when >= e->sleep_until)
        return;   /* it wakes early enough already */
    e->sleep_until = when;
    uint64_t one = 1;
    ssize_t n = write(e->wakefd, &one, sizeof one);
    (void)n;
}

void ft_engine_add_drain_locked(ft_engine *e, ft_conn *c)
{
    c->dprev = NULL;
    c->dnext = e->drains;
    if (e->drains)
        e->drains->dprev = c;
    e->drains = c;
    ft_engine_wake_locked(e, c->drain_deadline);
}

/* Queue a dial; the engine starts it at its next turn. */
void ft_engine_add_dial_locked(ft_engine *e, ft_dial *d)
{
    d->prev = NULL;
    d->nxt = e->dials;
    if (e->dials)
        e->dials->prev = d;
    e->dials = d;
    ft_engine_wake_locked(e, 1);   /* now */
}

void ft_engine_unlink_dial_locked(ft_engine *e, ft_dial *d)
{
    if (d->prev)
        d->prev->nxt = d->nxt;
    else if (e->dials == d)
        e->dials = d->nxt;
    if (d->nxt)
        d->nxt->prev = d->prev;
    d->prev = d->nxt = NULL;
}

static void drain_unlink_locked(ft_engine *e, ft_conn *c)
{
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        e->drains = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    c->dprev = c->dnext = NULL;
}

/* Read and discard what a drained body has left. The engine owns c. */
static void drain_step(ft_transport *t, ft_engine *e, ft_conn *c)
{
    int r = ft_drain_readable(c, &c->drain_left);
    if (r == FT_DRAIN_AGAIN)
        return;
    if (r == FT_DRAIN_DONE) {
        pthread_mutex_lock(&t->mu);
        drain_unlink_locked(e, c);
        t->st.drained_conns++;
        pthread_mutex_unlock(&t->mu);
        ft_engine_unwatch(e, c);
        ft_pool_put(t, c);
        return;
    }
    ft_conn_destroy(t, c);
}

/* An idle TLS connection became readable: process what arrived. True when
 * it carried no application data and the peer did not close. */
static int idle_tls_record_only(ft_conn *c)
{
    char one[1], ebuf[160];
    ssize_t n = ft_conn_recv(c, one, sizeof one, ebuf, sizeof ebuf);
    return n < 0 && errno == EAGAIN && !c->want_write;
}

static void *engine_main(void *arg)
{
    ft_engine *e = arg;
    ft_transport *t = e->t;
    int first = (e == &t->engines[0]);
    struct epoll_event evs[64];

    for (;;) {
        int64_t next = 0;
        pthread_mutex_lock(&t->mu);
        if (e->stop) {
            pthread_mutex_unlock(&t->mu);
            break;
        }
        if (first && t->cfg.idle_conn_timeout > 0 && t->lru_head)
            next = t->lru_head->idle_at + t->cfg.idle_conn_timeout;
        for (ft_conn *c = e->drains; c; c = c->dnext)
            if (next == 0 || c->drain_deadline < next)
                next = c->drain_deadline;
        /* dials queued since the last turn start now */
        ft_dial *fresh = NULL;
        for (ft_dial *d = e->dials; d; d = d->nxt) {
            if (!d->started) {
                d->started = 1;
                d->work = fresh;
                fresh = d;
            }
            if (d->deadline && (next == 0 || d->deadline < next))
                next = d->deadline;
        }
        e->sleep_until = next;
        pthread_mutex_unlock(&t->mu);
        while (fresh) {
            ft_dial *d = fresh;
            fresh = d->work;
            ft_dial_begin(t, d);
        }

        int ms = next ? ft_ms_until(next, ft_now_ns(), 1 << 30) : -1;
        int n = epoll_wait(e->epfd, evs, 64, ms);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == FT_EPOLL_WAKE) {
                uint64_t v;
                ssize_t r = read(e->wakefd, &v, sizeof v);
                (void)r;
                continue;
            }
            uint32_t slot = (uint32_t)(tag >> 32), gen = (uint32_t)tag;
            pthread_mutex_lock(&t->mu);
            ft_conn *c = (slot < t->nslots && t->slot_gen[slot] == gen) ? t->slots[slot] : NULL;
            if (c && c->state == FT_CS_IDLE) {
                /* Go: readLoopPeekFailLocked. EOF and "HTTP/1.x 408" are
                 * expected; anything else is an unsolicited response. Both
                 * end the connection. Over TLS the bytes may be a record
                 * that carries no data (a TLS 1.3 session ticket): then the
                 * connection stays. */
                ft_pool_unlink_idle_locked(t, c);
                pthread_mutex_unlock(&t->mu);
                if (c->ssl && idle_tls_record_only(c)) {
                    ft_engine_unwatch(e, c);
                    ft_pool_put(t, c);
                    continue;
                }
                pthread_mutex_lock(&t->mu);
                t->st.idle_closed_by_peer++;
                pthread_mutex_unlock(&t->mu);
                ft_conn_destroy(t, c);
            } else if (c && c->state == FT_CS_DRAINING && c->engine == e) {
                pthread_mutex_unlock(&t->mu);
                drain_step(t, e, c);
            } else if (c && c->state == FT_CS_DIALING && c->dial && c->engine == e) {
                ft_dial *d = c->dial;
                pthread_mutex_unlock(&t->mu);
                ft_dial_on_event(t, d);
            } else {
                pthread_mutex_unlock(&t->mu);
            }
        }

        /* timers */
        int64_t now = ft_now_ns();
        ft_conn *dead = NULL;
        pthread_mutex_lock(&t->mu);
        if (first && t->cfg.idle_conn_timeout > 0) {
            while (t->lru_head && now - t->lru_head->idle_at >= t->cfg.idle_conn_timeout) {
                ft_conn *c = t->lru_head;
                ft_pool_unlink_idle_locked(t, c);
                t->st.idle_timeouts++;
                c->lnext = dead;
                dead = c;
            }
        }
        for (ft_conn *c = e->drains, *nx; c; c = nx) {
            nx = c->dnext;
            if (c->drain_deadline <= now) {
                drain_unlink_locked(e, c);
                c->lnext = dead;
                dead = c;
            }
        }
        ft_dial *late = NULL;
        for (ft_dial *d = e->dials; d; d = d->nxt) {
            if (d->started && ((d->deadline && d->deadline <= now) || (d->abort && !d->want))) {
                d->work = late;
                late = d;
            }
        }
        pthread_mutex_unlock(&t->mu);
        while (late) {
            ft_dial *d = late;
            late = d->work;
            if (d->abort && !d->want)
                ft_dial_fail(t, d, FT_E_CANCELLED, "dial aborted by close_idle_connections");
            else
                ft_dial_fail(t, d, FT_E_CONNECT_TIMEOUT, NULL);
        }
        while (dead) {
            ft_conn *nx = dead->lnext;
            dead->lnext = NULL;
            ft_conn_destroy(t, dead);
            dead = nx;
        }
    }
    return NULL;
}

int ft_engines_start(ft_transport *t, char *err, size_t errcap)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc = 0;

    for (int i = 0; i < t->nengines; i++) {
        ft_engine *e = &t->engines[i];
        e->t = t;
        e->epfd = epoll_create1(EPOLL_CLOEXEC);
        e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (e->epfd < 0 || e->wakefd < 0) {
            snprintf(err, errcap, "cannot create the I/O engine: %s", strerror(errno));
            return -1;
        }
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u64 = FT_EPOLL_WAKE;
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) != 0) {
            snprintf(err, errcap, "cannot create the I/O engine: %s", strerror(errno));
            return -1;
        }
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FT_ENGINE_STACK);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* engines inherit: no signals */
    for (int i = 0; i < t->nengines; i++) {
        rc = pthread_create(&t->engines[i].thread, &attr, engine_main, &t->engines[i]);
        if (rc != 0) {
            snprintf(err, errcap, "cannot start an I/O engine thread: %s", strerror(rc));
            break;
        }
        t->engines[i].started = 1;
        t->st.io_threads++;
        char name[16];
        snprintf(name, sizeof name, "ft-io-%d", i % 10000);
        pthread_setname_np(t->engines[i].thread, name);   /* shows in /proc/self/task */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc ? -1 : 0;
}

void ft_engines_stop(ft_transport *t)
{
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->nengines; i++) {
        ft_engine *e = &t->engines[i];
        e->stop = 1;
        if (e->wakefd > 0) {
            uint64_t one = 1;
            ssize_t n = write(e->wakefd, &one, sizeof one);
            (void)n;
        }
    }
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->nengines; i++) {
        if (t->engines[i].started) {
            pthread_join(t->engines[i].thread, NULL);
            t->engines[i].started = 0;
            pthread_mutex_lock(&t->mu);
            t->st.io_threads--;
            pthread_mutex_unlock(&t->mu);
        }
    }
}
