/* engine.h - the I/O engine: one native thread with an epoll set, a timer
 * and a queue of posted tasks; a small reactor in the manner of libuv's loop.
 * It knows file descriptors, deadlines and callbacks, nothing of what they
 * stand for: its owner (the transport, watch.c) gives it two callbacks and a
 * context when it starts, and decides what every event means.
 *
 *  - on_fd(ctx, e, tag, events): a watched fd is ready. `tag` is the value
 *    the owner gave ft_engine_add/mod (any but UINT64_MAX, which the engine
 *    keeps for itself); `events` the EPOLL* bits. The event may be stale: the
 *    fd was removed, closed or reused after epoll reported it, so the owner
 *    resolves the tag under its own lock and ignores what it does not know.
 *  - on_tick(ctx, e, now): once a turn. The owner runs what is due at `now`
 *    and returns its nearest deadline (ns, ft_now_ns clock; 0 = none).
 *
 * A turn: run the tasks posted since the last turn, in order; on_tick; sleep
 * in epoll_wait until on_tick's deadline or an earlier ft_engine_wake_at;
 * call on_fd for each ready fd.
 *
 * Locking: ft_engine has its own mutex, which guards its own fields only
 * (the post queue, the sleep plan, the stop flag). It is a leaf: the engine
 * never calls out while holding it and never takes a lock of the owner's, so
 * every function here may be called under the owner's locks, and from the
 * callbacks, which run on the engine thread with no engine lock held. */
#ifndef FT_ENGINE_H
#define FT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ft_engine ft_engine;

typedef struct {
    void (*on_fd)(void *ctx, ft_engine *e, uint64_t tag, uint32_t events);
    int64_t (*on_tick)(void *ctx, ft_engine *e, int64_t now);
} ft_engine_ops;

/* A task for ft_engine_post: fn(arg) runs once on the engine thread. The
 * node belongs to the caller (embed it in what the task works on), so that
 * posting cannot fail; it must stay alive until fn runs or the engine stops. */
typedef struct ft_engine_task {
    void (*fn)(void *arg);
    void *arg;
    struct ft_engine_task *next;   /* the engine's queue */
} ft_engine_task;

/* Create the epoll set and start the thread, named `name` (at most 15
 * characters), with a small stack and every signal blocked. NULL with the
 * reason in err when it cannot. */
ft_engine *ft_engine_start(const char *name, const ft_engine_ops *ops, void *ctx,
                           char *err, size_t errcap);
/* Stop the thread and join it; not from a callback. Idempotent. Afterwards
 * no callback runs and tasks still queued are dropped without running; the
 * calls below remain safe (add/mod/del still edit the set) until
 * ft_engine_free. */
void ft_engine_stop(ft_engine *e);
/* Stop it if that was not done, close the epoll set, free the engine. */
void ft_engine_free(ft_engine *e);

/* Watch fd for `events` (EPOLL* bits), reported to on_fd with `tag`; change
 * what is watched; stop watching. 0, or -errno. */
int ft_engine_add(ft_engine *e, int fd, uint32_t events, uint64_t tag);
int ft_engine_mod(ft_engine *e, int fd, uint32_t events, uint64_t tag);
int ft_engine_del(ft_engine *e, int fd);

/* Run a turn (on_tick) no later than `when`: for a deadline the engine does
 * not know of yet. A later `when` than it planned changes nothing. */
void ft_engine_wake_at(ft_engine *e, int64_t when);

/* Run fn(arg) on the engine thread at its next turn, after the tasks posted
 * before it. */
void ft_engine_post(ft_engine *e, ft_engine_task *task, void (*fn)(void *), void *arg);

/* In a child after fork(): the engine's thread is not there. Close its
 * descriptors without touching its lock (which that thread may have held)
 * and leave its memory. Nothing else may be called on it afterwards. */
void ft_engine_abandon(ft_engine *e);

/* Take back a posted task that has not started: 1 if it was still queued
 * (it will not run), 0 if it is running or ran (or was never posted). */
int ft_engine_cancel(ft_engine *e, ft_engine_task *task);

#endif
