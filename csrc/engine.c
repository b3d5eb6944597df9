/* engine.c - the I/O engine (engine.h): a thread around epoll_wait that runs
 * posted tasks, its owner's timers (on_tick) and its owner's fd callbacks
 * (on_fd). It knows nothing of the transport: connections, dials, drains and
 * the pool belong to the owner (watch.c), which uses the engine, never the
 * other way round.
 *
 * Wake-ups. The engine is awake from the end of one epoll_wait to the start
 * of the next sleep it plans. A wake asked for while it is awake is kept in
 * wake_req and folded into the plan after on_tick; one asked for while it
 * sleeps, earlier than the sleep's end, writes the eventfd. Both under mu, so
 * a wake that races with the plan is never lost. */
#include "engine.h"
#include "sock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define FT_ENGINE_STACK (256 * 1024)
#define FT_ENGINE_EVENTS 64
#define WAKE_TAG UINT64_MAX        /* the eventfd's tag in the epoll set */

struct ft_engine {
    ft_engine_ops ops;             /* set at start, read-only after */
    void *ctx;
    int epfd, wakefd;
    pthread_t thread;
    int started;                   /* the thread runs (start and stop only) */
    pthread_mutex_t mu;            /* guards the fields below, nothing else */
    ft_engine_task *head, *tail;   /* posted, not run yet */
    ft_engine_task *run;           /* this turn's tasks, not run yet */
    int sleeping;                  /* planned a sleep until sleep_until */
    int64_t sleep_until;           /* 0 = until an event */
    int64_t wake_req;              /* awake: earliest wake asked for (0 = none) */
    int stop;
};

static int ctl(ft_engine *e, int op, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = tag;
    return epoll_ctl(e->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

int ft_engine_add(ft_engine *e, int fd, uint32_t events, uint64_t tag)
{
    return ctl(e, EPOLL_CTL_ADD, fd, events, tag);
}

int ft_engine_mod(ft_engine *e, int fd, uint32_t events, uint64_t tag)
{
    return ctl(e, EPOLL_CTL_MOD, fd, events, tag);
}

int ft_engine_del(ft_engine *e, int fd)
{
    return ctl(e, EPOLL_CTL_DEL, fd, 0, 0);
}

/* Make epoll_wait return (now, or as soon as it is entered). */
static void kick(ft_engine *e)
{
    uint64_t one = 1;
    ssize_t n = write(e->wakefd, &one, sizeof one);
    (void)n;   /* fails only when the counter is full: it is readable then */
}

static void wake_at_locked(ft_engine *e, int64_t when)
{
    if (!e->sleeping) {
        if (e->wake_req == 0 || when < e->wake_req)
            e->wake_req = when;
    } else if (e->sleep_until == 0 || when < e->sleep_until) {
        e->sleeping = 0;   /* a turn follows: later wakes are folded into it */
        kick(e);
    }
}

void ft_engine_wake_at(ft_engine *e, int64_t when)
{
    pthread_mutex_lock(&e->mu);
    wake_at_locked(e, when > 0 ? when : 1);
    pthread_mutex_unlock(&e->mu);
}

void ft_engine_post(ft_engine *e, ft_engine_task *task, void (*fn)(void *), void *arg)
{
    task->fn = fn;
    task->arg = arg;
    task->next = NULL;
    pthread_mutex_lock(&e->mu);
    if (e->tail)
        e->tail->next = task;
    else
        e->head = task;
    e->tail = task;
    wake_at_locked(e, 1);   /* now */
    pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg)
{
    ft_engine *e = arg;
    struct epoll_event evs[FT_ENGINE_EVENTS];
    int n = 0;

    for (;;) {
        pthread_mutex_lock(&e->mu);
        e->sleeping = 0;
        int stop = e->stop;
        e->run = e->head;
        e->head = e->tail = NULL;
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;

        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == WAKE_TAG) {
                uint64_t v;
                ssize_t r = read(e->wakefd, &v, sizeof v);
                (void)r;   /* EAGAIN: drained already */
            } else {
                e->ops.on_fd(e->ctx, e, evs[i].data.u64, evs[i].events);
            }
        }
        for (;;) {
            /* one at a time under mu, so that ft_engine_cancel can take
             * back any task not started yet */
            pthread_mutex_lock(&e->mu);
            ft_engine_task *task = e->run;
            if (task) {
                e->run = task->next;
                task->next = NULL;
            }
            pthread_mutex_unlock(&e->mu);
            if (!task)
                break;
            task->fn(task->arg);   /* may free or repost the node */
        }
        int64_t now = ft_now_ns();
        int64_t until = e->ops.on_tick(e->ctx, e, now);

        pthread_mutex_lock(&e->mu);
        if (e->wake_req && (until == 0 || e->wake_req < until))
            until = e->wake_req;
        e->wake_req = 0;
        e->sleeping = 1;
        e->sleep_until = until;
        pthread_mutex_unlock(&e->mu);
        int ms = until ? ft_ms_until(until, ft_now_ns(), 1 << 30) : -1;
        n = epoll_wait(e->epfd, evs, FT_ENGINE_EVENTS, ms);
        if (n < 0)
            n = 0;   /* EINTR: a new turn */
    }
    return NULL;
}

static int unlink_task(ft_engine_task **head, ft_engine_task **tail, ft_engine_task *task)
{
    ft_engine_task *prev = NULL;
    for (ft_engine_task *p = *head; p; prev = p, p = p->next) {
        if (p != task)
            continue;
        if (prev)
            prev->next = p->next;
        else
            *head = p->next;
        if (tail && *tail == p)
            *tail = prev;
        p->next = NULL;
        return 1;
    }
    return 0;
}

int ft_engine_cancel(ft_engine *e, ft_engine_task *task)
{
    pthread_mutex_lock(&e->mu);
    int found = unlink_task(&e->head, &e->tail, task) || unlink_task(&e->run, NULL, task);
    pthread_mutex_unlock(&e->mu);
    return found;
}

ft_engine *ft_engine_start(const char *name, const ft_engine_ops *ops, void *ctx,
                           char *err, size_t errcap)
{
    ft_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errcap, "cannot create the I/O engine: out of memory");
        return NULL;
    }
    e->ops = *ops;
    e->ctx = ctx;
    pthread_mutex_init(&e->mu, NULL);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = e->epfd < 0 || e->wakefd < 0 ? -errno : ft_engine_add(e, e->wakefd, EPOLLIN, WAKE_TAG);
    if (rc != 0) {
        snprintf(err, errcap, "cannot create the I/O engine: %s", strerror(-rc));
        ft_engine_free(e);
        return NULL;
    }

    pthread_attr_t attr;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FT_ENGINE_STACK);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the thread inherits: no signals */
    rc = pthread_create(&e->thread, &attr, engine_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start an I/O engine thread: %s", strerror(rc));
        ft_engine_free(e);
        return NULL;
    }
    e->started = 1;
    pthread_setname_np(e->thread, name);   /* shows in /proc/self/task */
    return e;
}

void ft_engine_stop(ft_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    wake_at_locked(e, 1);   /* seen at the top of its next turn */
    pthread_mutex_unlock(&e->mu);
    if (e->started) {
        pthread_join(e->thread, NULL);
        e->started = 0;
    }
}

void ft_engine_abandon(ft_engine *e)
{
    /* no thread runs it here (this is a forked child); its memory is left */
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->wakefd >= 0)
        close(e->wakefd);
    e->epfd = e->wakefd = -1;
}

void ft_engine_free(ft_engine *e)
{
    if (!e)
        return;
    ft_engine_stop(e);   /* joined in any case */
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->wakefd >= 0)
        close(e->wakefd);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
