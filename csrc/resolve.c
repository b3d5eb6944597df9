/* resolve.c - name resolution off the caller's thread (core.h, "lookups").
 *
 * getaddrinfo() blocks for as long as the system's resolver likes (a DNS
 * server that never answers: 10 s and more) and cannot be interrupted. So it
 * runs on a small pool of resolver threads, as Go's and libuv's do: a caller
 * waits for its lookup in slices, so that its deadline, dial_timeout, a
 * cancel token and Ctrl-C apply while the name is being resolved; an engine
 * never waits at all (the lookup schedules its job when it is done). A
 * lookup nobody waits for any more finishes on its thread and is freed there.
 *
 * The pool is process-wide: at most FT_DNS_THREADS threads, started on
 * demand and ended after FT_DNS_IDLE_NS without work, so a process that
 * resolves nothing (or only IP literals, which never come here) has none.
 * Its lock is a leaf but for the notify callback, which runs under it and
 * may take ft_transport.mu (never the other way round: ft_dns_release is
 * not called with mu held). */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FT_DNS_THREADS 4
#define FT_DNS_IDLE_NS (1000 * 1000000LL)
#define FT_DNS_STACK (256 * 1024)

struct ft_dns {
    char *host;
    int port;
    int refs;                  /* the waiter's and the pool's, under pool.mu */
    int done;                  /* under pool.mu */
    int rc;
    struct addrinfo *addrs;    /* owned until taken */
    char err[256];
    void (*notify)(void *);    /* under pool.mu: run once when done, unless released */
    void *arg;
    ft_dns *next;              /* the queue */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;       /* a lookup was queued */
    pthread_cond_t done;       /* a lookup finished (waiters check their own) */
    ft_dns *head, *tail;
    int threads, idle;
    int ready;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
           NULL, NULL, 0, 0, 0 };

static void dns_free(ft_dns *d)
{
    if (d->addrs)
        freeaddrinfo(d->addrs);
    free(d->host);
    free(d);
}

static void *resolver_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.head) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t until = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + FT_DNS_IDLE_NS;
            ts.tv_sec = (time_t)(until / 1000000000LL);
            ts.tv_nsec = (long)(until % 1000000000LL);
            pool.idle++;
            int rc = pthread_cond_timedwait(&pool.work, &pool.mu, &ts);
            pool.idle--;
            if (rc == ETIMEDOUT && !pool.head) {
                pool.threads--;
                pthread_mutex_unlock(&pool.mu);
                return NULL;
            }
        }
        ft_dns *d = pool.head;
        pool.head = d->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.mu);

        struct addrinfo *addrs = NULL;
        char err[256];
        int rc = ft_resolve(d->host, d->port, &addrs, err, sizeof err);

        pthread_mutex_lock(&pool.mu);
        d->rc = rc;
        d->addrs = addrs;
        if (rc != 0)
            memcpy(d->err, err, sizeof err);
        d->done = 1;
        if (d->notify)
            d->notify(d->arg);
        pthread_cond_broadcast(&pool.done);
        if (--d->refs == 0) {
            pthread_mutex_unlock(&pool.mu);
            dns_free(d);            /* its waiter gave up */
            pthread_mutex_lock(&pool.mu);
        }
    }
}

static void pool_init_once(void)
{
    if (pool.ready)
        return;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_destroy(&pool.work);
    pthread_cond_destroy(&pool.done);
    pthread_cond_init(&pool.work, &a);
    pthread_cond_init(&pool.done, &a);
    pthread_condattr_destroy(&a);
    pool.ready = 1;
}

/* Under pool.mu: a thread for the queue if none is idle and the pool is
 * not full. 0, or -1 when no thread could start (and none runs). */
static int grow_locked(void)
{
    if (pool.idle > 0 || pool.threads >= FT_DNS_THREADS)
        return 0;
    pthread_t th;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FT_DNS_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* no signals on it */
    int rc = pthread_create(&th, &attr, resolver_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return pool.threads > 0 ? 0 : -1;
    pthread_setname_np(th, "ft-resolve");
    pool.threads++;
    return 0;
}

ft_dns *ft_dns_start(const char *host, int port, void (*notify)(void *), void *arg)
{
    ft_dns *d = calloc(1, sizeof *d);
    if (!d || !(d->host = strdup(host))) {
        free(d);
        return NULL;
    }
    d->port = port;
    d->refs = 2;
    d->notify = notify;
    d->arg = arg;
    pthread_mutex_lock(&pool.mu);
    pool_init_once();
    if (grow_locked() != 0) {
        pthread_mutex_unlock(&pool.mu);
        dns_free(d);
        return NULL;
    }
    if (pool.tail)
        pool.tail->next = d;
    else
        pool.head = d;
    pool.tail = d;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.mu);
    return d;
}

int ft_dns_wait(ft_dns *d, int64_t until)
{
    struct timespec ts = { (time_t)(until / 1000000000LL), (long)(until % 1000000000LL) };
    pthread_mutex_lock(&pool.mu);
    while (!d->done) {
        if (pthread_cond_timedwait(&pool.done, &pool.mu, &ts) == ETIMEDOUT)
            break;
    }
    int done = d->done;
    pthread_mutex_unlock(&pool.mu);
    return done;
}

int ft_dns_done(ft_dns *d)
{
    pthread_mutex_lock(&pool.mu);
    int done = d->done;
    pthread_mutex_unlock(&pool.mu);
    return done;
}

int ft_dns_take(ft_dns *d, struct addrinfo **out, char *err, size_t errcap)
{
    pthread_mutex_lock(&pool.mu);
    int rc = d->rc;
    *out = d->addrs;
    d->addrs = NULL;
    if (rc != 0)
        snprintf(err, errcap, "%s", d->err);
    pthread_mutex_unlock(&pool.mu);
    return rc;
}

void ft_dns_release(ft_dns *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&pool.mu);
    d->notify = NULL;          /* nothing is woken for it any more */
    int last = --d->refs == 0;
    pthread_mutex_unlock(&pool.mu);
    if (last)
        dns_free(d);
}

void ft_dns_after_fork_child(void)
{
    /* The pool's threads are the parent's: start over (lookups queued or
     * in flight at the fork are abandoned, their memory left). */
    pthread_mutex_init(&pool.mu, NULL);
    pool.ready = 0;
    pthread_cond_init(&pool.work, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.head = pool.tail = NULL;
    pool.threads = pool.idle = 0;
}

int ft_host_is_numeric(const char *host)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (res)
        freeaddrinfo(res);
    return rc == 0;
}
