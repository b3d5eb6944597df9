/* pool.c - connection bookkeeping: the host table, idle lists (LIFO per key
 * plus a global LRU), the slot table that gives connections their engine
 * tags (watch.c), the read-buffer free list, the counters, and the
 * transport's life cycle. Everything here runs under ft_transport.mu unless
 * stated otherwise. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>

#define FT_MAX_FREE_BUFS 64

/* ---------------------------------------------------------------- hosts */

static uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int hosts_grow_locked(ft_transport *t)
{
    size_t ncap = t->hosts_cap ? t->hosts_cap * 2 : 64;
    ft_hostpool **nb = calloc(ncap, sizeof *nb);
    if (!nb)
        return -1;
    for (size_t i = 0; i < t->hosts_cap; i++) {
        ft_hostpool *hp = t->hosts[i];
        while (hp) {
            ft_hostpool *next = hp->next;
            size_t b = key_hash(hp->key) & (ncap - 1);
            hp->next = nb[b];
            nb[b] = hp;
            hp = next;
        }
    }
    free(t->hosts);
    t->hosts = nb;
    t->hosts_cap = ncap;
    return 0;
}

static ft_hostpool *host_get_locked(ft_transport *t, const char *key, int create)
{
    if (t->hosts_cap) {
        for (ft_hostpool *hp = t->hosts[key_hash(key) & (t->hosts_cap - 1)]; hp; hp = hp->next)
            if (strcmp(hp->key, key) == 0)
                return hp;
    }
    if (!create)
        return NULL;
    if ((t->nhosts + 1) * 4 > t->hosts_cap * 3 && hosts_grow_locked(t) != 0)
        return NULL;
    ft_hostpool *hp = calloc(1, sizeof *hp);
    if (!hp)
        return NULL;
    hp->key = strdup(key);
    if (!hp->key) {
        free(hp);
        return NULL;
    }
    size_t b = key_hash(key) & (t->hosts_cap - 1);
    hp->next = t->hosts[b];
    t->hosts[b] = hp;
    t->nhosts++;
    return hp;
}

/* Forget a key with no connections left, so a crawler's host table does not
 * grow without bound. */
static void host_maybe_free_locked(ft_transport *t, ft_hostpool *hp)
{
    if (hp->nconns > 0 || hp->nidle > 0 || hp->nwait > 0)
        return;
    ft_hostpool **pp = &t->hosts[key_hash(hp->key) & (t->hosts_cap - 1)];
    while (*pp && *pp != hp)
        pp = &(*pp)->next;
    if (*pp)
        *pp = hp->next;
    t->nhosts--;
    free(hp->key);
    free(hp);
}

/* ---------------------------------------------------------------- states */

static int64_t *state_counter(ft_transport *t, int state)
{
    switch (state) {
    case FT_CS_DIALING: return &t->st.dialing_conns;
    case FT_CS_ACTIVE: return &t->st.active_conns;
    case FT_CS_IDLE: return &t->st.idle_conns;
    case FT_CS_DRAINING: return &t->st.draining_conns;
    default: return NULL;
    }
}

/* A connection's read loop is live while it is open and past dialing: idle
 * (watched by its engine), in use, or draining. */
static int has_read_loop(int state)
{
    return state == FT_CS_IDLE || state == FT_CS_ACTIVE || state == FT_CS_DRAINING;
}

/* The state counts, and open_conns as their sum: a connection being closed
 * (FT_CS_CLOSING) is no longer open, so the sum holds at every instant. */
void ft_conn_set_state_locked(ft_transport *t, ft_conn *c, int state)
{
    int64_t *old = state_counter(t, c->state), *nw = state_counter(t, state);
    if (old)
        (*old)--;
    if (nw)
        (*nw)++;
    t->st.open_conns += (nw != NULL) - (old != NULL);
    t->st.read_loops += has_read_loop(state) - has_read_loop(c->state);
    c->state = state;
    c->job = NULL;                  /* a job attaches anew after every change */
    if (state == FT_CS_ACTIVE)
        c->use_id = ++t->use_seq;   /* ft_rt_interrupt tells uses apart */
}

/* ---------------------------------------------------------------- buffers */

int ft_conn_ensure_buf(ft_transport *t, ft_conn *c)
{
    if (c->buf)
        return 0;
    char *b = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->nfree_bufs > 0)
        b = t->free_bufs[--t->nfree_bufs];
    pthread_mutex_unlock(&t->mu);
    if (!b)
        b = malloc(FT_BUF_SIZE);
    if (!b)
        return -1;
    c->buf = b;
    c->cap = FT_BUF_SIZE;
    c->rpos = c->wpos = 0;
    return 0;
}

void ft_conn_release_buf_locked(ft_transport *t, ft_conn *c)
{
    if (!c->buf)
        return;
    if (c->cap == FT_BUF_SIZE && t->nfree_bufs < FT_MAX_FREE_BUFS)
        t->free_bufs[t->nfree_bufs++] = c->buf;
    else
        free(c->buf);
    c->buf = NULL;
    c->cap = c->rpos = c->wpos = 0;
}

/* A request gets c: taken idle, handed over, or dialed for it. It counts as
 * a reuse when c was given to a request before (Go: a reused persistConn), so
 * that dials + reused_conns == requests when every request got a connection
 * and every dialed connection served one. */
static void give_locked(ft_transport *t, ft_conn *c)
{
    ft_conn_set_state_locked(t, c, FT_CS_ACTIVE);
    if (c->given)
        t->st.reused_conns++;
    c->given = 1;
}

/* ---------------------------------------------------------------- idle lists */

static void idle_link_locked(ft_transport *t, ft_conn *c)
{
    ft_hostpool *hp = c->hp;
    c->kprev = NULL;
    c->knext = hp->idle;
    if (hp->idle)
        hp->idle->kprev = c;
    hp->idle = c;
    hp->nidle++;
    c->lnext = NULL;
    c->lprev = t->lru_tail;
    if (t->lru_tail)
        t->lru_tail->lnext = c;
    else
        t->lru_head = c;
    t->lru_tail = c;
}

static void lazy_unlink_locked(ft_conn *c)
{
    ft_io *io = c->io;
    if (c->zprev)
        c->zprev->znext = c->znext;
    else
        io->lazy_head = c->znext;
    if (c->znext)
        c->znext->zprev = c->zprev;
    else
        io->lazy_tail = c->zprev;
    c->zprev = c->znext = NULL;
    c->lazy = 0;
}

/* c, pooled unwatched, joins its engine's lazy list; the engine's ticks
 * sweep it (armed once: a sequential client costs its engine one tick per
 * FT_LAZY_WATCH_NS, no wake-up per request). */
static void lazy_link_locked(ft_conn *c)
{
    ft_io *io = c->io;
    c->znext = NULL;
    c->zprev = io->lazy_tail;
    if (io->lazy_tail)
        io->lazy_tail->znext = c;
    else
        io->lazy_head = c;
    io->lazy_tail = c;
    c->lazy = 1;
    io->lazy_put = 1;
    if (!io->lazy_armed) {
        io->lazy_armed = 1;
        ft_engine_wake_at(io->e, c->idle_at + FT_LAZY_WATCH_NS);
    }
}

int64_t ft_pool_sweep_lazy_locked(ft_io *io, int64_t now, ft_conn **dead)
{
    ft_transport *t = io->t;
    ft_conn *c;
    if (!io->lazy_armed)
        return 0;
    while ((c = io->lazy_head) != NULL && now - c->idle_at >= FT_LAZY_WATCH_NS) {
        lazy_unlink_locked(c);
        if (ft_conn_watch(c, 0) != 0) {
            ft_pool_unlink_idle_locked(t, c);
            c->lnext = *dead;
            *dead = c;
        }
    }
    if (c)
        return c->idle_at + FT_LAZY_WATCH_NS;
    if (!io->lazy_put) {
        io->lazy_armed = 0;          /* quiet: the next put arms it again */
        return 0;
    }
    io->lazy_put = 0;                /* busy: look again one period later */
    return now + FT_LAZY_WATCH_NS;
}

void ft_pool_unlink_idle_locked(ft_transport *t, ft_conn *c)
{
    ft_hostpool *hp = c->hp;
    if (c->lazy)
        lazy_unlink_locked(c);
    if (c->kprev)
        c->kprev->knext = c->knext;
    else
        hp->idle = c->knext;
    if (c->knext)
        c->knext->kprev = c->kprev;
    hp->nidle--;
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        t->lru_head = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else
        t->lru_tail = c->lprev;
    c->kprev = c->knext = c->lprev = c->lnext = NULL;
    ft_conn_set_state_locked(t, c, FT_CS_CLOSING);
}

/* ---------------------------------------------------------------- conns */

static int slot_alloc_locked(ft_transport *t, ft_conn *c)
{
    uint32_t s;
    if (t->nfree_slots > 0) {
        s = t->free_slots[--t->nfree_slots];
    } else {
        if (t->nslots == t->slots_cap) {
            uint32_t ncap = t->slots_cap ? t->slots_cap * 2 : 256;
            ft_conn **ns = realloc(t->slots, ncap * sizeof *ns);
            if (!ns)
                return -1;
            t->slots = ns;
            uint32_t *ng = realloc(t->slot_gen, ncap * sizeof *ng);
            if (!ng)
                return -1;
            t->slot_gen = ng;
            uint32_t *nf = realloc(t->free_slots, ncap * sizeof *nf);
            if (!nf)
                return -1;
            t->free_slots = nf;
            t->slots_cap = ncap;
        }
        s = t->nslots++;
        t->slot_gen[s] = 0;
    }
    t->slots[s] = c;
    c->slot = s;
    c->gen = ++t->slot_gen[s];
    return 0;
}

static ft_conn *conn_new_locked(ft_transport *t, ft_hostpool *hp)
{
    ft_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (slot_alloc_locked(t, c) != 0) {
        free(c);
        return NULL;
    }
    c->fd = -1;
    c->hp = hp;
    c->io = &t->io[t->next_io];
    t->next_io = (t->next_io + 1) % t->nio;
    hp->nconns++;
    c->state = 0;
    ft_conn_set_state_locked(t, c, FT_CS_DIALING);
    t->st.dials++;
    return c;
}

/* Take the most recently returned idle connection of hp (Go's
 * queueForIdleConn, first half). Expired ones are moved to *expired for the
 * caller to destroy outside the lock. */
static ft_conn *take_idle_locked(ft_transport *t, ft_hostpool *hp, ft_conn **expired)
{
    ft_conn *c;
    int64_t now = ft_now_ns();
    if (t->cfg.disable_keep_alives)
        return NULL;
    while ((c = hp->idle) != NULL) {
        ft_pool_unlink_idle_locked(t, c);
        if (t->cfg.idle_conn_timeout > 0 && now - c->idle_at >= t->cfg.idle_conn_timeout) {
            t->st.idle_timeouts++;
            c->lnext = *expired;
            *expired = c;
            continue;
        }
        give_locked(t, c);
        return c;
    }
    return NULL;
}

/* Leave the engine's idle watch: the caller owns c now. A job on c's own
 * engine (keep_io) keeps the registration: it waits on the same events. */
static ft_conn *taken(ft_conn *c, ft_io *keep_io)
{
    if (c && c->io != keep_io)
        ft_conn_unwatch(c);
    return c;
}

/* Is a connection just taken from the idle list still usable? Its engine
 * notices a FIN or stray bytes (a late body on a HEAD or 204, extra bytes
 * after a response) only when it gets to the event; a request that takes
 * the connection at once would read them as its response. So look first,
 * without blocking (stricter than Go, which can lose this race). Over TLS
 * a record that carries no data (a session ticket) is fine. */
static int idle_conn_usable(ft_conn *c)
{
    char one[1];
    if (c->ssl) {
        char ebuf[160];
        return ft_conn_recv(c, one, sizeof one, ebuf, sizeof ebuf) < 0 && errno == EAGAIN
               && !c->want_write;
    }
    ssize_t r = recv(c->fd, one, sizeof one, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

ft_conn *ft_pool_take_idle(ft_transport *t, const char *key, ft_io *keep_io)
{
    ft_conn *expired = NULL, *c = NULL;
    pthread_mutex_lock(&t->mu);
    t->st.requests++;
    t->close_idle_pending = 0;      /* a connection request arrived */
    for (;;) {
        ft_hostpool *hp = t->closed ? NULL : host_get_locked(t, key, 0);
        c = hp ? take_idle_locked(t, hp, &expired) : NULL;
        pthread_mutex_unlock(&t->mu);
        if (!taken(c, keep_io) || idle_conn_usable(c))
            break;
        pthread_mutex_lock(&t->mu);
        t->st.idle_closed_by_peer++;
        t->st.reused_conns--;       /* it served nobody after all */
        pthread_mutex_unlock(&t->mu);
        ft_conn_destroy(t, c);
        pthread_mutex_lock(&t->mu);
    }
    ft_conn_destroy_list(t, expired);
    return c;
}

int64_t ft_pool_expire_idle_locked(ft_transport *t, int64_t now, ft_conn **dead)
{
    int64_t timeout = t->cfg.idle_conn_timeout;
    if (timeout <= 0)
        return 0;
    while (t->lru_head && now - t->lru_head->idle_at >= timeout) {
        ft_conn *c = t->lru_head;
        ft_pool_unlink_idle_locked(t, c);
        t->st.idle_timeouts++;
        c->lnext = *dead;
        *dead = c;
    }
    return t->lru_head ? t->lru_head->idle_at + timeout : 0;
}

/* ---------------------------------------------------------------- wants */

static void iq_remove_locked(ft_hostpool *hp, ft_want *w)
{
    if (!w->in_iq)
        return;
    if (w->iq_prev) w->iq_prev->iq_next = w->iq_next; else hp->iq_head = w->iq_next;
    if (w->iq_next) w->iq_next->iq_prev = w->iq_prev; else hp->iq_tail = w->iq_prev;
    w->iq_prev = w->iq_next = NULL;
    w->in_iq = 0;
}

static void dq_remove_locked(ft_hostpool *hp, ft_want *w)
{
    if (!w->in_dq)
        return;
    if (w->dq_prev) w->dq_prev->dq_next = w->dq_next; else hp->dq_head = w->dq_next;
    if (w->dq_next) w->dq_next->dq_prev = w->dq_prev; else hp->dq_tail = w->dq_prev;
    w->dq_prev = w->dq_next = NULL;
    w->in_dq = 0;
}

/* The want stops waiting: out of both queues, its dial (if any) detached. */
static void want_finish_locked(ft_transport *t, ft_want *w, int may_free)
{
    ft_hostpool *hp = w->hp;
    w->done = 1;
    iq_remove_locked(hp, w);
    dq_remove_locked(hp, w);
    if (w->dial) {
        w->dial->want = NULL;
        w->dial = NULL;
    }
    if (w->job)
        ft_job_schedule_locked(w->job);
    else if (w->cond_ready)
        pthread_cond_signal(&w->cond);
    if (w->queued) {
        w->queued = 0;
        hp->nwait--;
        t->st.waiting_requests--;
        /* the last reference may be gone (not while closing: the transport
         * walks the host table then) */
        if (may_free && !t->closed)
            host_maybe_free_locked(t, hp);
    }
}

/* Go's wantConn.tryDeliver: the first delivery wins. */
static void deliver_conn_locked(ft_transport *t, ft_want *w, ft_conn *c)
{
    ft_conn_unwatch(c);            /* its new owner watches it if it needs to */
    give_locked(t, c);
    w->conn = c;
    want_finish_locked(t, w, 0);   /* c keeps hp alive */
}

static void deliver_err_locked(ft_transport *t, ft_want *w, int code, const char *msg,
                               int may_free)
{
    w->err_code = code;
    snprintf(w->err, sizeof w->err, "%s", msg);
    want_finish_locked(t, w, may_free);
}

/* Start a dial for w (Go's queueForDial -> startDialConnForLocked): a new
 * connection counted against the host from now on, connected by its engine. */
static int start_dial_locked(ft_transport *t, ft_hostpool *hp, ft_want *w)
{
    ft_dial *d = calloc(1, sizeof *d);
    if (d && ((w->tls && !(d->host = strdup(w->host)))
              || (w->hop && ft_dial_set_hop(d, w->hop) != 0))) {
        ft_dial_free(d);
        d = NULL;
    }
    ft_conn *c = d ? conn_new_locked(t, hp) : NULL;
    if (!c) {
        if (d)
            ft_dial_free(d);
        return -1;
    }
    d->c = c;
    d->want = w;
    d->tls = w->tls;
    if (w->tunnel) {
        d->tunneling = 1;
        size_t cap = strlen(w->tunnel) * 2 + (w->tunnel_auth ? strlen(w->tunnel_auth) : 0) + 96;
        d->tunnel_req = malloc(cap);
        if (d->tunnel_req) {
            int n = snprintf(d->tunnel_req, cap, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n",
                             w->tunnel, w->tunnel,
                             w->tunnel_auth ? "Proxy-Authorization: " : "",
                             w->tunnel_auth ? w->tunnel_auth : "",
                             w->tunnel_auth ? "\r\n" : "");
            d->tunnel_len = n > 0 ? (size_t)n : 0;
        }
    }
    d->addrs = w->addrs;       /* the dial owns the addresses now */
    w->addrs = NULL;
    w->dial = d;
    c->dial = d;
    if (t->cfg.dial_timeout > 0)
        d->deadline = ft_now_ns() + t->cfg.dial_timeout;
    ft_dial_start_locked(d);
    return 0;
}

/* A connection slot of hp was freed: the oldest request waiting for one gets
 * it and its dial starts (Go's decConnsPerHost). */
static void grant_slot_locked(ft_transport *t, ft_hostpool *hp)
{
    int max = t->cfg.max_conns_per_host;
    while (max > 0 && hp->nconns < max && hp->dq_head && !t->closed) {
        ft_want *w = hp->dq_head;
        dq_remove_locked(hp, w);
        if (start_dial_locked(t, hp, w) != 0) {
            deliver_err_locked(t, w, FT_E_NOMEM, "out of memory", 0);
        }
    }
}

/* No idle connection was taken: look once more, then wait in the key's
 * queue and dial if the per-host limit allows (Go's getConn). w->addrs must
 * hold the resolved addresses. Returns 1 with *out set when an idle
 * connection was taken after all, 0 when queued, -1 when the transport is
 * closed or out of memory. */
int ft_pool_queue(ft_transport *t, const char *key, ft_want *w, ft_conn **out, ft_io *keep_io)
{
    ft_conn *expired = NULL, *c = NULL;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    ft_hostpool *hp = t->closed ? NULL : host_get_locked(t, key, 1);
    if (!hp) {
        rc = -1;
    } else if ((c = take_idle_locked(t, hp, &expired)) != NULL) {
        rc = 1;
    } else {
        if (!w->cond_ready) {
            pthread_condattr_t a;
            pthread_condattr_init(&a);
            pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
            pthread_cond_init(&w->cond, &a);
            pthread_condattr_destroy(&a);
            w->cond_ready = 1;
        }
        w->hp = hp;
        w->done = 0;
        w->queued = 1;
        hp->nwait++;
        t->st.waiting_requests++;
        w->iq_prev = hp->iq_tail;
        w->iq_next = NULL;
        if (hp->iq_tail) hp->iq_tail->iq_next = w; else hp->iq_head = w;
        hp->iq_tail = w;
        w->in_iq = 1;
        int max = t->cfg.max_conns_per_host;
        if (max <= 0 || hp->nconns < max) {
            if (start_dial_locked(t, hp, w) != 0) {
                want_finish_locked(t, w, 1);
                rc = -1;
            }
        } else {
            w->dq_prev = hp->dq_tail;
            w->dq_next = NULL;
            if (hp->dq_tail) hp->dq_tail->dq_next = w; else hp->dq_head = w;
            hp->dq_tail = w;
            w->in_dq = 1;
        }
    }
    pthread_mutex_unlock(&t->mu);
    ft_conn_destroy_list(t, expired);
    *out = taken(c, keep_io);
    return rc;
}

/* Wait (GIL released) until w is served or `until` (ns, monotonic) passes.
 * 1 = served (w->conn or w->err_code set), 0 = still waiting. */
int ft_pool_wait(ft_transport *t, ft_want *w, int64_t until)
{
    struct timespec ts = { (time_t)(until / 1000000000LL), (long)(until % 1000000000LL) };
    pthread_mutex_lock(&t->mu);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->cond, &t->mu, &ts) == ETIMEDOUT)
            break;
    }
    int done = w->done;
    pthread_mutex_unlock(&t->mu);
    return done;
}

/* The request gives up (timeout, cancel, Ctrl-C). Go's wantConn.cancel: a
 * connection delivered meanwhile goes back to the pool. Its dial, if any,
 * goes on and its result is pooled. (Whether it still had a dial of its own
 * in flight is read from w->dial before calling, as fail_wait_timeout does.) */
void ft_pool_cancel_want(ft_transport *t, ft_want *w)
{
    ft_conn *c = NULL;
    pthread_mutex_lock(&t->mu);
    if (!w->done)
        want_finish_locked(t, w, 1);
    c = w->conn;
    w->conn = NULL;
    pthread_mutex_unlock(&t->mu);
    if (c)
        ft_pool_put(t, c);
}

void ft_want_free(ft_want *w)
{
    if (w->cond_ready) {
        pthread_cond_destroy(&w->cond);
        w->cond_ready = 0;
    }
    if (w->addrs) {
        freeaddrinfo(w->addrs);
        w->addrs = NULL;
    }
}

/* An engine finished a dial (Go's dialConnFor). ok: d->c is connected. The
 * engine owns d and d->c here; d is freed. */
void ft_pool_dial_done(ft_transport *t, ft_dial *d, int ok)
{
    ft_conn *c = d->c;
    pthread_mutex_lock(&t->mu);
    ft_dial_unlink_locked(d);
    c->dial = NULL;
    if (ok) {
        ft_want *w = d->want;
        if (w) {
            w->dial = NULL;
            d->want = NULL;
            if (!w->done && !t->closed) {
                deliver_conn_locked(t, w, c);
                c = NULL;
            }
        }
    } else {
        t->st.dial_errors++;
    }
    pthread_mutex_unlock(&t->mu);
    if (c && ok) {
        ft_pool_put(t, c);          /* nobody waits for it: pool it */
    } else if (c) {
        /* Close first, so that the stats and the host's slot are settled
         * when the waiter hears of the failure. d->want stays linked until
         * then: a waiter that gives up meanwhile unlinks itself. */
        ft_conn_destroy(t, c);
        pthread_mutex_lock(&t->mu);
        ft_want *w = d->want;
        if (w) {
            w->dial = NULL;
            d->want = NULL;
            if (!w->done)
                deliver_err_locked(t, w, d->err_code, d->err, 1);
        }
        pthread_mutex_unlock(&t->mu);
    }
    ft_dial_free(d);
}

/* Go's tryPutIdleConn. The caller owns c (active or draining) and has
 * consumed every byte of the last response. Pools it or destroys it. */
void ft_pool_put(ft_transport *t, ft_conn *c)
{
    ft_conn *evict = NULL;
    ft_hostpool *hp = c->hp;
    int refuse = 0;
    pthread_mutex_lock(&t->mu);
    /* 1. keep-alives off, or a broken connection (unread bytes, no socket) */
    if (t->closed || t->cfg.disable_keep_alives || t->cfg.max_idle_conns_per_host < 0
        || c->rpos != c->wpos || c->fd < 0 || (c->ssl && ft_tls_pending(c->ssl) > 0))
        refuse = 1;
    if (!refuse) {
        /* 2. */
        c->reused = 1;
        /* 3. the oldest request still waiting for this key gets it */
        if (hp->iq_head) {
            deliver_conn_locked(t, hp->iq_head, c);
            pthread_mutex_unlock(&t->mu);
            return;
        }
        /* 4. close_idle_connections ran and no request came since; 5. full;
         * or it cannot be watched while idle (see 6) */
        if (t->close_idle_pending || hp->nidle >= t->cfg.max_idle_conns_per_host
            || (c->registered && ft_conn_watch(c, 0) != 0))
            refuse = 1;
    }
    if (refuse) {
        ft_conn_set_state_locked(t, c, FT_CS_CLOSING);
        pthread_mutex_unlock(&t->mu);
        ft_conn_destroy(t, c);
        return;
    }
    /* 6. Watched while idle: a FIN or stray bytes remove it. One a job
     * kept registered is watched at once (above, under mu, so that no
     * taker sees it idle before it is); one a caller returns is watched
     * once idle for FT_LAZY_WATCH_NS (lazy_link_locked), so that the next
     * request of a sequential client takes it back with no epoll_ctl at
     * all; until then the check a taker makes (idle_conn_usable) covers
     * it. */
    ft_conn_set_state_locked(t, c, FT_CS_IDLE);
    c->idle_at = ft_now_ns();
    idle_link_locked(t, c);
    if (!c->registered)
        lazy_link_locked(c);
    ft_conn_release_buf_locked(t, c);
    if (t->cfg.max_idle_conns > 0 && t->st.idle_conns > t->cfg.max_idle_conns) {
        evict = t->lru_head;
        ft_pool_unlink_idle_locked(t, evict);
    }
    /* 7. engine 0 runs idle_conn_timeout */
    if (t->cfg.idle_conn_timeout > 0)
        ft_engine_wake_at(t->io[0].e, c->idle_at + t->cfg.idle_conn_timeout);
    pthread_mutex_unlock(&t->mu);
    if (evict)
        ft_conn_destroy(t, evict);
}

/* Leave the engine's watch and the drain list: the caller alone holds c. */
static void conn_unwatch(ft_transport *t, ft_conn *c)
{
    ft_conn_unwatch(c);
    /* Closing: no longer shut down by ft_transport_close, ignored by engines. */
    pthread_mutex_lock(&t->mu);
    ft_conn_set_state_locked(t, c, FT_CS_CLOSING);
    pthread_mutex_unlock(&t->mu);
}

/* Strike c from the books: its slot, its per-host count (the first waiter
 * for a slot gets it), the counters; its buffer too unless keep_buf. */
static void conn_forget(ft_transport *t, ft_conn *c, int keep_buf)
{
    pthread_mutex_lock(&t->mu);
    t->slots[c->slot] = NULL;
    t->slot_gen[c->slot]++;
    t->free_slots[t->nfree_slots++] = c->slot;
    ft_hostpool *hp = c->hp;
    c->hp = NULL;
    hp->nconns--;
    grant_slot_locked(t, hp);
    host_maybe_free_locked(t, hp);
    t->st.closed_conns++;
    if (!keep_buf)
        ft_conn_release_buf_locked(t, c);
    pthread_mutex_unlock(&t->mu);
}

static void conn_close_socket(ft_conn *c)
{
    if (c->ssl) {
        ft_tls_close(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Close a connection the caller owns (any state but idle-in-list) and free
 * it. Releases its slot and per-host count. */
void ft_conn_destroy(ft_transport *t, ft_conn *c)
{
    conn_unwatch(t, c);
    /* The socket is closed before its per-host slot is given to a waiter
     * (Go: closeLocked, then decConnsPerHost), so the host never sees more
     * than max_conns_per_host connections, even for an instant. */
    conn_close_socket(c);
    conn_forget(t, c, 0);
    free(c);
}

/* A 101 Switching Protocols: the transport drops c from its books for good
 * (Go's hijacked persistConn); the caller keeps the socket, TLS session and
 * buffer, and ends them with ft_conn_close_detached. */
void ft_conn_detach(ft_transport *t, ft_conn *c)
{
    conn_unwatch(t, c);
    conn_forget(t, c, 1);
}

void ft_conn_close_detached(ft_conn *c)
{
    conn_close_socket(c);
    free(c->buf);
    free(c);
}

/* ---------------------------------------------------------------- transport */

ft_transport *ft_transport_new(const ft_config *cfg, char *err, size_t errcap)
{
    ft_transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    t->cfg = *cfg;
    if (t->cfg.io_threads < 1)
        t->cfg.io_threads = 1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->park_cond, NULL);
    pthread_mutex_init(&t->tls_mu, NULL);
    pthread_mutex_init(&t->spare_mu, NULL);
    /* own copies of the TLS paths */
    const char **paths[] = { &t->cfg.tls.ca_file, &t->cfg.tls.ca_dir, &t->cfg.tls.cert_file,
                             &t->cfg.tls.key_file };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (*paths[i])
            *paths[i] = strdup(*paths[i]);
    t->free_bufs = calloc(FT_MAX_FREE_BUFS, sizeof *t->free_bufs);
    t->nio = t->cfg.io_threads;
    t->io = calloc((size_t)t->nio, sizeof *t->io);
    if (!t->free_bufs || !t->io || hosts_grow_locked(t) != 0) {
        snprintf(err, errcap, "out of memory");
        ft_transport_free(t);
        return NULL;
    }
    if (ft_io_start(t, err, errcap) != 0) {
        ft_transport_close(t);
        ft_transport_free(t);
        return NULL;
    }
    return t;
}

static ft_conn *take_all_idle_locked(ft_transport *t)
{
    ft_conn *list = NULL;
    while (t->lru_head) {
        ft_conn *c = t->lru_head;
        ft_pool_unlink_idle_locked(t, c);
        c->lnext = list;
        list = c;
    }
    return list;
}

void ft_conn_destroy_list(ft_transport *t, ft_conn *list)
{
    while (list) {
        ft_conn *next = list->lnext;
        list->lnext = NULL;
        ft_conn_destroy(t, list);
        list = next;
    }
}

/* Go's CloseIdleConnections: close the idle ones now, close (rather than
 * pool) connections that finish before the next request, and abort dials
 * whose requester has gone away. In-use connections are left alone. */
void ft_transport_close_idle(ft_transport *t)
{
    pthread_mutex_lock(&t->mu);
    ft_conn *list = take_all_idle_locked(t);
    t->close_idle_pending = 1;
    for (int i = 0; i < t->nio; i++)
        ft_dial_abort_orphans_locked(&t->io[i]);
    pthread_mutex_unlock(&t->mu);
    ft_conn_destroy_list(t, list);
}

void ft_transport_close(ft_transport *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->closed) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    t->closed = 1;
    ft_conn *list = take_all_idle_locked(t);
    /* Requests waiting for a connection fail now. */
    for (size_t i = 0; i < t->hosts_cap; i++)
        for (ft_hostpool *hp = t->hosts[i]; hp; hp = hp->next)
            while (hp->iq_head)
                deliver_err_locked(t, hp->iq_head, FT_E_CLOSED, "transport is closed", 0);
    /* Wake the owners of connections in use: their next read fails. (A
     * dial belongs to its engine, which ends it when it stops; only the
     * engine touches a dialing connection's fd.) */
    for (uint32_t i = 0; i < t->nslots; i++) {
        ft_conn *c = t->slots[i];
        if (c && c->state == FT_CS_ACTIVE && c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&t->mu);
    ft_conn_destroy_list(t, list);
    ft_io_stop(t);
}

void ft_transport_abandon(ft_transport *t)
{
    /* A forked child: no engine thread is there and any lock may be held
     * by a thread that is not. Close every descriptor, sending nothing (the
     * sockets stay open in the parent, which goes on using them: no TLS
     * close_notify, no shutdown), and leave all memory as it is. */
    for (uint32_t i = 0; i < t->nslots; i++) {
        ft_conn *c = t->slots[i];
        if (c && c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
    }
    for (int i = 0; i < t->nio; i++)
        if (t->io[i].e)
            ft_engine_abandon(t->io[i].e);
}

void ft_transport_free(ft_transport *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->hosts_cap; i++) {
        ft_hostpool *hp = t->hosts[i];
        while (hp) {
            ft_hostpool *next = hp->next;
            free(hp->key);
            free(hp);
            hp = next;
        }
    }
    for (int i = 0; i < t->nfree_bufs; i++)
        free(t->free_bufs[i]);
    for (int i = 0; i < t->nspare_bodies; i++)
        free(t->spare_bodies[i]);
    free(t->free_bufs);
    free(t->hosts);
    free(t->slots);
    free(t->slot_gen);
    free(t->free_slots);
    free(t->io);
    ft_tls_ctx_free(t->tls);
    free((char *)t->cfg.tls.ca_file);
    free((char *)t->cfg.tls.ca_dir);
    free((char *)t->cfg.tls.cert_file);
    free((char *)t->cfg.tls.key_file);
    pthread_mutex_destroy(&t->tls_mu);
    pthread_mutex_destroy(&t->spare_mu);
    pthread_cond_destroy(&t->park_cond);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void ft_transport_stats(ft_transport *t, ft_stats *out)
{
    pthread_mutex_lock(&t->mu);
    *out = t->st;
    pthread_mutex_unlock(&t->mu);
    out->write_loops = __atomic_load_n(&t->write_loops, __ATOMIC_RELAXED);
    pthread_mutex_lock(&t->tls_mu);
    if (t->tls)
        ft_tls_counts(t->tls, &out->tls_handshakes, &out->tls_resumed);
    pthread_mutex_unlock(&t->tls_mu);
}

/* The TLS context, made at the first https dial (loading a CA bundle costs
 * milliseconds that plain-HTTP users should not pay). */
ft_tls_ctx *ft_transport_tls(ft_transport *t, char *err, size_t errcap)
{
    pthread_mutex_lock(&t->tls_mu);
    if (!t->tls && !t->tls_err[0])
        t->tls = ft_tls_ctx_new(&t->cfg.tls, t->tls_err, sizeof t->tls_err);
    ft_tls_ctx *x = t->tls;
    if (!x)
        snprintf(err, errcap, "%s", t->tls_err);
    pthread_mutex_unlock(&t->tls_mu);
    return x;
}

size_t ft_transport_hosts(ft_transport *t, ft_host_stat *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->hosts_cap; i++) {
        for (ft_hostpool *hp = t->hosts[i]; hp; hp = hp->next, n++) {
            if (n >= cap)
                continue;
            snprintf(out[n].key, sizeof out[n].key, "%s", hp->key);
            out[n].conns = hp->nconns;
            out[n].idle = hp->nidle;
            out[n].waiting = hp->nwait;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}
