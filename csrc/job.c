/* job.c - exchanges an engine runs while no caller waits (core.h, "engine-
 * run exchanges"): the batch and asyncio APIs put hundreds of requests in
 * flight from one Python thread, and no thread is started for any of them.
 *
 * A job is an ft_rt in nowait mode: conn.c's two loops never wait in it,
 * they return FT_R_AGAIN where a caller's thread would poll. The engine then
 * waits for the job on what it needs: its connection's events (the idle
 * watch the connection had is kept when it is on the same engine, so a
 * reused connection costs no epoll_ctl), its deadline (io->jobs, scanned in
 * on_tick), the delivery of a connection (ft_job_schedule_locked from the
 * pool), or an interrupt. Every wake-up runs job_step on the job's engine,
 * which is the only thread that touches the exchange until it is finished
 * and handed to its completion queue. */
#include "core.h"
#include "sock.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define FULL_PREALLOC_MIN 16384
#define READ_PIECE 65536

struct ft_cq {
    pthread_mutex_t mu;
    ft_job *head, *tail;
    int efd;
    int armed;                 /* under mu: reported since the queue was
                                  last emptied (the fd was or is written) */
    int signalling;            /* atomic: engines writing the fd after their
                                  unlock; ft_cq_free waits for them */
};

/* ---------------------------------------------------------------- queue */

ft_cq *ft_cq_new(char *err, size_t errcap)
{
    ft_cq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        snprintf(err, errcap, "cannot create a completion queue: %s", strerror(errno));
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

void ft_cq_free(ft_cq *q)
{
    if (!q)
        return;
    /* whoever frees q took its last report, under mu, after the engine
     * that made it counted itself here: wait for that engine's write */
    while (__atomic_load_n(&q->signalling, __ATOMIC_ACQUIRE))
        sched_yield();
    close(q->efd);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int ft_cq_fd(const ft_cq *q)
{
    return q->efd;
}

/* The eventfd's protocol keeps both system calls out of the lock (the
 * engine and the collector would otherwise meet on it at every report):
 *   - a report into a queue that is not armed arms it and writes the fd,
 *     after the unlock;
 *   - a collector woken by the fd reads it (ft_cq_clear) before it takes;
 *   - a take that empties the queue disarms it; one that leaves reports
 *     writes the fd again.
 * A report is never left behind a quiet fd: its write comes after it is
 * queued, and a read that consumes that write comes before a take that
 * finds it. A write that lands after the take that emptied the queue makes
 * the fd readable with nothing to take: one spare wake-up, which clears it. */
static void cq_signal(ft_cq *q)
{
    uint64_t one = 1;
    ssize_t w = write(q->efd, &one, sizeof one);
    (void)w;   /* fails only when the count is full: readable then */
}

/* Report j; `last`: the engine is done with it (the caller may free it
 * once it takes this report: nothing touches j after the unlock). */
static void cq_push(ft_cq *q, ft_job *j, int last)
{
    int signal = 0;
    pthread_mutex_lock(&q->mu);
    if (last)
        j->last = 1;
    if (!j->in_cq) {
        j->in_cq = 1;
        j->cq_next = NULL;
        if (q->tail)
            q->tail->cq_next = j;
        else
            q->head = j;
        q->tail = j;
    }
    if (!q->armed) {
        q->armed = 1;
        signal = 1;
        __atomic_add_fetch(&q->signalling, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&q->mu);
    if (signal) {
        /* j may be taken and freed from here on, and q with it once its
         * owner has all its reports: ft_cq_free waits for this write */
        cq_signal(q);
        __atomic_sub_fetch(&q->signalling, 1, __ATOMIC_RELEASE);
    }
}

void ft_cq_clear(ft_cq *q)
{
    uint64_t v;
    ssize_t r = read(q->efd, &v, sizeof v);
    (void)r;   /* EAGAIN: a spare wake-up was cleared already */
}

size_t ft_cq_take(ft_cq *q, ft_job **out, int *last, size_t max)
{
    size_t n = 0;
    int left;
    pthread_mutex_lock(&q->mu);
    while (n < max && q->head) {
        ft_job *j = q->head;
        q->head = j->cq_next;
        if (!q->head)
            q->tail = NULL;
        j->in_cq = 0;
        j->cq_next = NULL;
        last[n] = j->last;
        out[n++] = j;
    }
    left = q->head != NULL;
    if (!left)
        q->armed = 0;
    pthread_mutex_unlock(&q->mu);
    if (left)
        cq_signal(q);
    return n;
}

/* ---------------------------------------------------------------- life */

void ft_job_init(ft_job *j, ft_transport *t, ft_rt *rt, ft_cq *q, int mode, size_t limit)
{
    memset(j, 0, sizeof *j);
    j->t = t;
    j->rt = rt;
    j->cq = q;
    j->mode = mode;
    j->limit = limit;
    pthread_mutex_init(&j->bmu, NULL);
    rt->nowait = 1;
    rt->job = j;
}

#define SPARE_MAX_CAP (1u << 20)

/* A body buffer of at least `want` bytes: a spare one if there is, else
 * NULL (allocate). */
static char *spare_take(ft_transport *t, size_t want, size_t *cap)
{
    char *buf = NULL;
    pthread_mutex_lock(&t->spare_mu);
    for (int i = t->nspare_bodies - 1; i >= 0; i--) {
        if (t->spare_caps[i] < want)
            continue;
        buf = t->spare_bodies[i];
        *cap = t->spare_caps[i];
        t->nspare_bodies--;
        t->spare_bodies[i] = t->spare_bodies[t->nspare_bodies];
        t->spare_caps[i] = t->spare_caps[t->nspare_bodies];
        break;
    }
    pthread_mutex_unlock(&t->spare_mu);
    return buf;
}

void ft_job_free(ft_job *j)
{
    ft_transport *t = j->t;
    int kept = 0;
    if (j->buf && j->bcap <= SPARE_MAX_CAP) {
        pthread_mutex_lock(&t->spare_mu);
        int n = t->nspare_bodies;
        if (n < (int)(sizeof t->spare_bodies / sizeof t->spare_bodies[0])) {
            t->spare_bodies[n] = j->buf;
            t->spare_caps[n] = j->bcap;
            t->nspare_bodies = n + 1;
            kept = 1;
        }
        pthread_mutex_unlock(&t->spare_mu);
    }
    if (!kept)
        free(j->buf);
    j->buf = NULL;
    j->bpos = j->blen = j->bcap = 0;
    pthread_mutex_destroy(&j->bmu);
}

static void job_task(void *arg);

void ft_job_schedule_locked(ft_job *j)
{
    if (j->scheduled || !j->io || !j->io->e)
        return;
    j->scheduled = 1;
    j->posted_to = j->io;
    ft_engine_post(j->io->e, &j->task, job_task, j);
}

static void list_locked(ft_job *j)
{
    ft_io *io = j->io;
    j->jprev = NULL;
    j->jnext = io->jobs;
    if (io->jobs)
        io->jobs->jprev = j;
    io->jobs = j;
    j->listed = 1;
}

static void unlist_locked(ft_job *j)
{
    if (!j->listed)
        return;
    if (j->jprev)
        j->jprev->jnext = j->jnext;
    else
        j->io->jobs = j->jnext;
    if (j->jnext)
        j->jnext->jprev = j->jprev;
    j->jprev = j->jnext = NULL;
    j->listed = 0;
}

/* The engine is done with the exchange: its connection (still held when
 * the caller reads the body itself, or after a 101) leaves the engine's
 * watch, and the job goes to its queue. Nothing touches j afterwards. */
static void finish(ft_transport *t, ft_job *j)
{
    ft_rt *rt = j->rt;
    ft_conn *c = rt->conn;
    int deferred = 0;
    pthread_mutex_lock(&t->mu);
    if (c)
        c->job = NULL;
    unlist_locked(j);
    rt->job = NULL;            /* no interrupt schedules it any more */
    if (j->scheduled) {
        /* a wake-up posted meanwhile must not run after the caller freed
         * j: take it back, or, when its engine has started it, let it
         * make the last report (job_task) */
        if (ft_engine_cancel(j->posted_to->e, &j->task))
            j->scheduled = 0;
        else
            deferred = j->finish_deferred = 1;
    }
    pthread_mutex_unlock(&t->mu);
    if (c)
        ft_conn_unwatch(c);   /* the caller's thread waits with poll() from now on */
    rt->nowait = 0;
    pthread_mutex_lock(&j->bmu);
    j->finished = 1;
    pthread_mutex_unlock(&j->bmu);
    if (!deferred)
        cq_push(j->cq, j, 1);
}

void ft_job_wake(void *job)
{
    ft_job *j = job;
    pthread_mutex_lock(&j->t->mu);
    ft_job_schedule_locked(j);
    pthread_mutex_unlock(&j->t->mu);
}

void ft_job_submit(ft_transport *t, ft_job *j)
{
    ft_rt *rt = j->rt;
    pthread_mutex_lock(&t->mu);
    if (t->closed) {
        pthread_mutex_unlock(&t->mu);
        ft_rt_abort(t, rt, FT_E_CLOSED, "transport is closed");
        finish(t, j);
        return;
    }
    j->io = &t->io[t->next_job_io];
    t->next_job_io = (t->next_job_io + 1) % t->nio;
    list_locked(j);
    ft_job_schedule_locked(j);
    pthread_mutex_unlock(&t->mu);
}

/* ---------------------------------------------------------------- waiting */

/* The step could not go on: wait for the connection's events and the next
 * deadline. A connection of another engine moves the job there. */
static void job_wait(ft_transport *t, ft_job *j, int stalled)
{
    ft_rt *rt = j->rt;
    ft_conn *c = rt->conn;
    int64_t wake = 0;
    int ev = ft_rt_wait_events(rt, !stalled, &wake);
    if (stalled)
        ev &= ~1;
    int moved = 0;
    pthread_mutex_lock(&t->mu);
    if (c) {
        c->job = j;
        if (c->io != j->io) {
            unlist_locked(j);
            j->io = c->io;
            list_locked(j);
            moved = 1;
        }
    }
    j->wake = wake;
    if (wake) {
        if (j->io->jobs_wake == 0 || wake < j->io->jobs_wake)
            j->io->jobs_wake = wake;
        ft_engine_wake_at(j->io->e, wake);
    }
    if (moved)
        ft_job_schedule_locked(j);   /* its new engine watches it */
    pthread_mutex_unlock(&t->mu);
    if (!c || moved)
        return;
    uint32_t events = (ev & 1 ? EPOLLIN | EPOLLRDHUP : 0) | (ev & 2 ? EPOLLOUT : 0);
    if (events == 0) {
        ft_conn_unwatch(c);   /* nothing to wait for on it (a HUP would spin) */
        return;
    }
    if (ft_conn_watch_events(c, events) != 0) {
        ft_rt_abort(t, rt, FT_E_PROTOCOL, "cannot watch the connection");
        finish(t, j);
    }
}

/* ---------------------------------------------------------------- the step */

/* Room for the next read: dst and its size; 0 when FT_JOB_AHEAD's buffer
 * is at its limit (then stalled). */
static size_t body_room(ft_job *j, char **dst, int *nomem)
{
    ft_rt *rt = j->rt;
    size_t room;
    *nomem = 0;
    pthread_mutex_lock(&j->bmu);
    if (j->bpos == j->blen)
        j->bpos = j->blen = 0;
    size_t held = j->blen - j->bpos;
    if (j->mode == FT_JOB_AHEAD && held >= j->limit) {
        j->stalled = 1;
        pthread_mutex_unlock(&j->bmu);
        return 0;
    }
    if (j->bcap - j->blen < READ_PIECE / 4) {
        if (j->bpos > 0 && j->bpos >= j->bcap / 2) {
            memmove(j->buf, j->buf + j->bpos, held);
            j->bpos = 0;
            j->blen = held;
        }
    }
    if (j->bcap == j->blen) {
        size_t ncap;
        if (j->bcap == 0 && rt->framing.kind == FT_BODY_LENGTH && rt->framing.body_length > 0) {
            /* sized from the declared length, up to a bound: a server may
             * declare a petabyte and send three bytes */
            uint64_t want = (uint64_t)rt->framing.body_length;
            if (rt->max_body && want > rt->max_body)
                want = rt->max_body;     /* it fails at the first read */
            ncap = want < j->limit ? (size_t)want : j->limit;
            if (ncap == 0)
                ncap = 1;
        } else {
            ncap = j->bcap ? j->bcap * 2 : FULL_PREALLOC_MIN;
        }
        if (j->mode == FT_JOB_AHEAD && ncap > j->limit + READ_PIECE)
            ncap = j->limit + READ_PIECE;
        if (ncap <= j->bcap)
            ncap = j->bcap + READ_PIECE;
        if (!j->buf) {
            size_t cap = 0;
            char *spare = ncap <= SPARE_MAX_CAP ? spare_take(j->t, ncap, &cap) : NULL;
            if (spare) {
                j->buf = spare;
                j->bcap = cap;
                goto have_room;
            }
        }
        char *nb = realloc(j->buf, ncap);
        if (!nb) {
            pthread_mutex_unlock(&j->bmu);
            *nomem = 1;
            return 0;
        }
        j->buf = nb;
        j->bcap = ncap;
    }
have_room:
    room = j->bcap - j->blen;
    if (j->mode == FT_JOB_AHEAD && room > j->limit - held)
        room = j->limit - held;
    *dst = j->buf + j->blen;
    pthread_mutex_unlock(&j->bmu);
    return room;
}

/* n bytes landed at the buffer's end; report them to a caller waiting. */
static void body_got(ft_job *j, size_t n)
{
    int report = 0;
    pthread_mutex_lock(&j->bmu);
    j->blen += n;
    if (j->want_data) {
        j->want_data = 0;
        report = 1;
    }
    pthread_mutex_unlock(&j->bmu);
    if (report)
        cq_push(j->cq, j, 0);
}

static void job_step(ft_transport *t, ft_job *j)
{
    ft_rt *rt = j->rt;
    pthread_mutex_lock(&t->mu);
    int close_req = j->close_req;
    pthread_mutex_unlock(&t->mu);
    if (close_req) {
        ft_rt_close(t, rt);           /* drain and pool, or close */
        finish(t, j);
        return;
    }
    if (!j->head_done) {
        int r = ft_rt_run(t, rt, 0);
        if (r == FT_R_AGAIN || r == FT_R_NEED_BODY) {
            job_wait(t, j, 0);
            return;
        }
        if (r == FT_R_FAIL || j->mode == FT_JOB_HEAD || rt->upgraded) {
            finish(t, j);
            return;
        }
        j->head_done = 1;
        if (j->mode == FT_JOB_AHEAD)
            cq_push(j->cq, j, 0);     /* the head is in: reported, not finished */
    }
    for (;;) {
        if (ft_rt_at_eof(rt)) {
            finish(t, j);
            return;
        }
        char *dst = NULL;
        int nomem;
        size_t room = body_room(j, &dst, &nomem);
        if (nomem) {
            ft_rt_abort(t, rt, FT_E_NOMEM, "out of memory");
            finish(t, j);
            return;
        }
        if (room == 0) {
            j->was_stalled = 1;
            job_wait(t, j, 1);        /* stalled until the caller takes some */
            return;
        }
        if (j->was_stalled) {         /* the caller took some: a new read */
            j->was_stalled = 0;
            ft_rt_read_begins(rt);
        }
        ssize_t n = ft_rt_read(t, rt, dst, room, 0);
        if (n > 0) {
            body_got(j, (size_t)n);
            continue;
        }
        if (n == FT_R_AGAIN || n == FT_R_NEED_BODY) {
            job_wait(t, j, 0);
            return;
        }
        finish(t, j);                 /* EOF (settled) or failed */
        return;
    }
}

/* A posted task: run the step on the engine the job belongs to now. */
static void job_task(void *arg)
{
    ft_job *j = arg;
    ft_transport *t = j->t;
    pthread_mutex_lock(&t->mu);
    j->scheduled = 0;
    if (j->finish_deferred) {         /* finished while this task was starting */
        pthread_mutex_unlock(&t->mu);
        cq_push(j->cq, j, 1);
        return;
    }
    if (j->posted_to != j->io) {
        ft_job_schedule_locked(j);    /* it moved meanwhile */
        pthread_mutex_unlock(&t->mu);
        return;
    }
    pthread_mutex_unlock(&t->mu);
    j->rt->ev_in = 0;
    job_step(t, j);
}

void ft_job_on_event(ft_transport *t, ft_io *io, ft_job *j)
{
    (void)io;
    j->rt->ev_in = 1;
    job_step(t, j);
}

int64_t ft_job_expire_locked(ft_io *io, int64_t now)
{
    if (io->jobs_wake == 0 || now < io->jobs_wake)
        return io->jobs_wake;
    int64_t next = 0;
    for (ft_job *j = io->jobs; j; j = j->jnext) {
        if (j->wake && j->wake <= now) {
            j->wake = 0;
            ft_job_schedule_locked(j);
        } else if (j->wake && (next == 0 || j->wake < next)) {
            next = j->wake;
        }
    }
    io->jobs_wake = next;
    return next;
}

void ft_job_close_all(ft_transport *t, ft_io *io)
{
    for (;;) {
        pthread_mutex_lock(&t->mu);
        ft_job *j = io->jobs;
        if (j)
            unlist_locked(j);
        pthread_mutex_unlock(&t->mu);
        if (!j)
            return;
        ft_rt_abort(t, j->rt, FT_E_CLOSED, "transport is closed");
        finish(t, j);
    }
}

/* ---------------------------------------------------------------- the caller's side */

size_t ft_job_take(ft_job *j, char *dst, size_t n, int *finished)
{
    int resume = 0;
    pthread_mutex_lock(&j->bmu);
    size_t held = j->blen - j->bpos;
    size_t m = held < n ? held : n;
    if (m > 0)
        memcpy(dst, j->buf + j->bpos, m);
    j->bpos += m;
    *finished = j->finished;
    if (!j->finished) {
        if (j->blen == j->bpos)
            j->want_data = 1;
        if (j->stalled && j->blen - j->bpos < j->limit) {
            j->stalled = 0;
            resume = 1;
        }
    }
    pthread_mutex_unlock(&j->bmu);
    if (resume) {
        pthread_mutex_lock(&j->t->mu);
        if (j->listed)                /* not finished meanwhile */
            ft_job_schedule_locked(j);
        pthread_mutex_unlock(&j->t->mu);
    }
    return m;
}

size_t ft_job_buffered(ft_job *j)
{
    pthread_mutex_lock(&j->bmu);
    size_t held = j->blen - j->bpos;
    pthread_mutex_unlock(&j->bmu);
    return held;
}

void ft_job_close(ft_transport *t, ft_job *j)
{
    pthread_mutex_lock(&t->mu);
    if (j->listed) {
        j->close_req = 1;
        ft_job_schedule_locked(j);
    }
    pthread_mutex_unlock(&t->mu);
}
