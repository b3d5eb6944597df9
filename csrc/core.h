/* core.h - the native transport: persist conns with their read and write
 * loops, the idle pool, the dials and drains its I/O engines run.
 *
 * Modules. The dependency on the engine runs one way: pool.c, dial.c,
 * drain.c and watch.c call the engine (engine.h); engine.c calls none of
 * them and knows none of their types. conn.c reaches it through pool.c and
 * drain.c only.
 *   conn.c   one exchange on a connection: write loop and read loop
 *   pool.c   host table, idle lists, waiting requests (Go's getConn), the
 *            slot table, counters, the transport's life cycle
 *   dial.c   a dial as a state machine on an engine
 *   drain.c  the rest of a body closed early: discarded by the caller, then
 *            by an engine
 *   job.c    exchanges an engine runs whole (batch, asyncio), and the
 *            completion queues they report to
 *   resolve.c host names looked up on a small pool of resolver threads
 *   watch.c  the transport's side of the engines: their two callbacks (fd
 *            events dispatched by connection state; the timers) and their
 *            start and stop
 *   engine.c a reactor (engine.h): an epoll set, a timer, posted tasks
 *
 * Who may touch a connection:
 *  - A connection is advanced by exactly one thread at a time, its owner.
 *    While a request uses it (FT_CS_ACTIVE) the owner is the caller's thread,
 *    which runs the write loop and the read loop itself with the GIL
 *    released, waiting on both directions at once. While it is idle
 *    (FT_CS_IDLE), dialing or draining after an early close (FT_CS_DRAINING)
 *    it belongs to its engine thread (c->io), which watches it through epoll.
 *  - Ownership changes hands only under ft_transport.mu, which guards the
 *    host table, the idle lists and LRU, the slot table, every ft_io's drain
 *    and dial lists, the buffer free list and every counter in ft_stats (but
 *    write_loops,
 *    kept in ft_transport.write_loops and changed atomically by the owner of
 *    each exchange without the lock).
 *  - Any other thread (a watchdog closing a response, a cancel token, a
 *    transport closing) never touches an ft_rt or an ft_conn it does not own:
 *    it calls ft_rt_interrupt, which only sets rt->intr and wakes the owner
 *    (shutdown() of the socket, found under mu by slot and use id, or a
 *    signal to the condition it waits on for a connection). The owner
 *    notices at its next wake-up, fails the exchange and releases the
 *    connection itself. Memory is freed only by its owner.
 *  - A connection's tag in its engine's epoll set is its (slot, generation)
 *    pair, resolved by watch.c under mu, so a stale event never touches freed
 *    memory.
 *  - Each engine has a lock of its own for its post queue and sleep plan
 *    (engine.h). It is a leaf: taken inside mu, never the other way round.
 */
#ifndef FT_CORE_H
#define FT_CORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "parser.h"
#include "tls.h"

struct addrinfo;

/* ---- configuration (Transport's knobs; Go field names in brackets) ---- */
typedef struct {
    int max_idle_conns;            /* [MaxIdleConns] 0 = no global cap */
    int max_idle_conns_per_host;   /* [MaxIdleConnsPerHost] <0: never keep idle */
    int max_conns_per_host;        /* [MaxConnsPerHost] 0 = no limit */
    int64_t idle_conn_timeout;     /* [IdleConnTimeout] ns, 0 = none */
    int disable_keep_alives;       /* [DisableKeepAlives] */
    int64_t dial_timeout;          /* ns, 0 = none */
    int64_t response_header_timeout; /* [ResponseHeaderTimeout] ns, 0 = none */
    size_t max_response_header_bytes; /* [MaxResponseHeaderBytes] */
    size_t drain_limit;            /* bytes drained on early close; 0 = never */
    int64_t expect_continue_timeout; /* [ExpectContinueTimeout] ns; 0 = do not wait */
    int io_threads;                /* engine threads, >= 1 */
    int64_t tls_handshake_timeout; /* [TLSHandshakeTimeout] ns, 0 = none */
    ft_tls_config tls;             /* strings owned by the transport */
} ft_config;

typedef struct {
    int64_t open_conns, idle_conns, active_conns, draining_conns, dialing_conns;
    int64_t read_loops, write_loops;
    int64_t dials, dial_errors, reused_conns, requests, closed_conns;
    int64_t idle_closed_by_peer, idle_timeouts, drained_conns;
    int64_t io_threads;
    int64_t waiting_requests;      /* requests waiting for a connection now */
    int64_t tls_handshakes, tls_resumed;   /* full and abbreviated handshakes */
} ft_stats;

/* Result codes of the run/read calls. */
#define FT_R_DONE 0
#define FT_R_FAIL (-1)
#define FT_R_AGAIN (-2)
#define FT_R_NEED_BODY (-3)   /* the write loop sent its segment: set the next
                                 (ft_rt_set_body), or ft_rt_wait_body() to wait
                                 for rt->body_fd in the next call */

/* Requests from other threads (ft_rt_interrupt). */
enum { FT_INTR_NONE = 0, FT_INTR_CANCEL, FT_INTR_CLOSE };

/* Error classes (mapped to Python exceptions in one place, _core.pyx). */
enum {
    FT_E_NONE = 0,
    FT_E_CONNECT,          /* DNS, refused, unreachable */
    FT_E_CONNECT_TIMEOUT,
    FT_E_PROTOCOL,         /* malformed or truncated response, I/O error mid-exchange */
    FT_E_HEADER_TIMEOUT,   /* response_header_timeout */
    FT_E_READ_TIMEOUT,     /* total deadline */
    FT_E_CANCELLED,
    FT_E_CLOSED,           /* transport closed */
    FT_E_NOMEM,
    FT_E_POOL_TIMEOUT,     /* deadline passed waiting for a max_conns_per_host slot */
    FT_E_TLS,              /* handshake or certificate failure */
    FT_E_BODY,             /* the request body's source failed or lied about its length */
    FT_E_TOO_LARGE,        /* the response body is longer than max_body */
    FT_E_WRITE_TIMEOUT,    /* write_to: nothing sent for that long */
};

/* Connection states (ft_conn.state). */
enum { FT_CS_DIALING = 1, FT_CS_ACTIVE, FT_CS_IDLE, FT_CS_DRAINING, FT_CS_CLOSING };

/* A dial's way through a proxy besides the CONNECT tunnel (dial.c). The
 * strings are borrowed: the exchange's while it waits (ft_want.hop), the
 * dial's own copies once it starts. */
enum { FT_SOCKS_NONE = 0, FT_SOCKS4, FT_SOCKS4A, FT_SOCKS5, FT_SOCKS5H };

typedef struct {
    int socks;                 /* FT_SOCKS_*: the handshake after the TCP connect */
    const char *socks_host;    /* the target: a name or an IP literal (no brackets) */
    int socks_port;
    const char *socks_user;    /* SOCKS5: RFC 1929 user name; SOCKS4: the user id */
    const char *socks_pass;    /* SOCKS5: its password ("" when none) */
    const char *proxy_host;    /* the proxy as dialed (error texts; its TLS name) */
    int proxy_port;
    int proxy_tls;             /* TLS with the proxy (an https proxy) before the
                                  CONNECT: the target's TLS then runs inside it */
    const char *proxy_key;     /* that session's cache key */
} ft_hop;

typedef struct ft_hostpool ft_hostpool;
typedef struct ft_io ft_io;
typedef struct ft_transport ft_transport;
typedef struct ft_dial ft_dial;
typedef struct ft_conn ft_conn;
typedef struct ft_job ft_job;

/* A request waiting for a connection (Go's wantConn). It sits in its key's
 * idle-wait queue and, when the per-host limit is reached, in the dial-wait
 * queue too; the first connection delivered wins (late binding). Lives in
 * the request's ft_rt; every field is guarded by ft_transport.mu. */
typedef struct ft_want {
    ft_hostpool *hp;
    struct ft_want *iq_prev, *iq_next;   /* idle-wait FIFO */
    struct ft_want *dq_prev, *dq_next;   /* dial-wait FIFO (MaxConnsPerHost) */
    int in_iq, in_dq;
    int queued;               /* counted in hp->nwait */
    int done;                 /* delivered (conn or error) or given up */
    ft_conn *conn;            /* the delivered connection */
    int err_code;
    char err[256];
    ft_dial *dial;            /* its own dial while in flight */
    struct addrinfo *addrs;   /* resolved addresses for its dial */
    const char *host;         /* for TLS (SNI, name check); copied by the dial */
    int tls;
    const char *tunnel;       /* CONNECT authority through a proxy, or NULL */
    const char *tunnel_auth;  /* its Proxy-Authorization value, or NULL */
    const ft_hop *hop;        /* SOCKS / TLS to the proxy, or NULL */
    ft_job *job;              /* an engine runs the request: schedule it on delivery */
    pthread_cond_t cond;      /* signalled on delivery (CLOCK_MONOTONIC) */
    int cond_ready;
} ft_want;

/* A dial in flight, advanced by its engine thread only (posted to it by
 * ft_dial_start_locked). Detached from its request when that request gives
 * up or is served by another connection: the result then goes to the pool
 * (Go's dialConnFor). */
struct ft_dial {
    ft_conn *c;
    ft_want *want;            /* NULL once detached */
    struct addrinfo *addrs, *next;
    int64_t deadline;         /* 0 = none */
    char *host;               /* TLS server name (owned) */
    int tls;                  /* handshake after connect */
    int phase;                /* DP_* (dial.c), engine thread only */
    char *tunnel_req;         /* the CONNECT request while it is sent (owned) */
    size_t tunnel_len, tunnel_off;
    int tunneling;            /* a CONNECT tunnel comes after the proxy's TCP (and TLS) */
    /* through a SOCKS or https proxy (ft_hop; strings owned) */
    int socks;                /* FT_SOCKS_* */
    char *socks_host, *socks_user, *socks_pass;
    int socks_port;
    char *proxy_host;         /* the proxy (texts; its TLS name) */
    int proxy_port;
    int proxy_tls;            /* TLS with the proxy first */
    char *proxy_key;          /* its session cache key */
    struct ft_dns *dns;       /* the target's lookup (socks4, socks5) */
    ft_engine *dns_engine;    /* where that lookup's end is posted */
    ft_engine_task dns_task;  /* ... as this task */
    struct addrinfo *target_addrs;
    int sstate;               /* the SOCKS exchange: the message in sbuf */
    int ssend;                /* sending sbuf[soff..slen), else reading into it */
    size_t slen, soff, sneed; /* its length and progress; the reply's size */
    unsigned char sbuf[600];
    int started;              /* its task ran (engine thread only) */
    int abort;                /* close_idle_connections ended it (detached only) */
    int err_code;
    char err[256];
    ft_dial *prev, *nxt;      /* its ft_io's dial list, under mu */
    ft_dial *work;            /* the engine's private list of dials to fail */
    ft_engine_task task;      /* starts it on the engine */
};

struct ft_conn {
    int fd;
    int state;                 /* FT_CS_*; changes under mu */
    uint32_t slot, gen;        /* identity: its tag in the engine's epoll set */
    ft_io *io;                 /* the engine that dials, watches and drains it */
    ft_hostpool *hp;           /* its key's pool entry */
    int registered;            /* in its engine's epoll set */
    uint32_t wevents;          /* the events watched while registered */
    ft_job *job;               /* under mu: the engine-run exchange using it, whose
                                  engine gets its events (job.c) */
    struct ft_rt *parked;      /* under mu: its engine sends this exchange's
                                  request body while the caller is away */
    int park_busy;             /* under mu: the engine is in that write now */
    ft_dial *dial;             /* while dialing */
    SSL *ssl;                  /* TLS session, NULL for plain TCP */
    int want_write;            /* TLS: the last read/write needs writability */
    int reused;                /* has completed an exchange before (Go: isReused) */
    uint64_t use_id;           /* set under mu each time it becomes FT_CS_ACTIVE */
    int given;                 /* has been given to a request (reused_conns); under mu */
    /* read buffer: unread bytes are buf[rpos..wpos) */
    char *buf;
    size_t cap, rpos, wpos;
    int64_t idle_at;           /* when it became idle (ns) */
    struct ft_conn *kprev, *knext; /* per-key idle list, head = most recent */
    struct ft_conn *lprev, *lnext; /* global idle LRU, head = oldest */
    struct ft_conn *zprev, *znext; /* its ft_io's unwatched idle list (lazy watch) */
    int lazy;                  /* idle and not watched yet: in that list */
    int blocking;              /* O_NONBLOCK cleared, SO_RCVTIMEO set: a caller may
                                  wait in recv itself (every other I/O on it
                                  passes MSG_DONTWAIT) */
    /* drain after an early close (FT_BODY_LENGTH only) */
    uint64_t drain_left;
    int64_t drain_deadline;
    struct ft_conn *dprev, *dnext; /* its ft_io's drain list, under mu */
};

/* One request/response exchange. Owned by the caller (embedded in the Python
 * response object); only the caller's thread touches it. */
typedef struct ft_rt {
    /* --- request, set by the caller before ft_rt_run --- */
    const char *key;           /* pool key, NUL-terminated (scheme://host:port) */
    const char *host;          /* host to dial (no brackets) */
    int port;
    const char *head;          /* serialised request head */
    size_t head_len;
    const char *body;          /* the body segment being sent (may be NULL) */
    size_t body_len;
    int body_more;             /* more segments follow (ft_rt_run returns
                                  FT_R_NEED_BODY when this one is sent) */
    int expect_continue;       /* Expect: 100-continue with a body */
    int is_head;               /* method is HEAD */
    int tls;                   /* https: TLS on the connection */
    const char *tls_host;      /* TLS name when it is not `host` (a tunnel) */
    const char *tunnel;        /* "host:port" to CONNECT to through the proxy
                                  at host:port, or NULL */
    const char *tunnel_auth;   /* Proxy-Authorization for the CONNECT */
    ft_hop hop;                /* a SOCKS proxy, TLS to an https proxy */
    int req_close;             /* request carries Connection: close */
    int64_t deadline;          /* absolute ns for the whole exchange, 0 = none */
    /* ft.Timeout's parts for this exchange, ns, 0 = none:
     * connect_to: the host's lookup and our dial of a new connection;
     * pool_to: waiting for a slot under max_conns_per_host;
     * read_to: nothing received for that long while nothing is to be sent
     *   (a byte sent restarts this clock too);
     * write_to: nothing sent for that long while bytes are to be sent. */
    int64_t connect_to, pool_to, read_to, write_to;
    uint64_t max_body;         /* most body bytes read before it fails, 0 = no limit */
    struct ft_dns *dns;        /* the host's lookup in flight (PH_RESOLVE) */
    int64_t dns_deadline;      /* dial_timeout for it, 0 = none */
    uint64_t body_read;        /* body bytes read so far (counted with a max_body) */
    int nowait;                /* run by an engine (job.c): never wait, keep
                                  the idle watch of a connection taken */
    struct ft_job *job;        /* that engine-run exchange, or NULL */
    int ev_in;                 /* job: this step was woken by its connection (not
                                  a task): worth a read while awaiting the head */
    int block_next;            /* the next receive waits in recv (conn.c, may_block) */
    int body_fd;               /* -1, or an fd that becomes readable when the
                                  next body segment is ready (see FT_R_NEED_BODY) */
    int body_file;             /* -1, or a regular file the body is read from
                                  (pread, no Python): file_left bytes from
                                  file_off; the caller keeps it open */
    uint64_t file_off, file_left, file_len;

    /* --- progress (the owner's) --- */
    int phase;                 /* connection, then read loop state; private */
    ft_conn *conn;
    ft_want want;
    int wstate;                /* write loop state, private */
    int wl_live;               /* counted in ft_transport.write_loops */
    int is_parked;             /* ft_rt_park handed the write to the engine */
    int body_wait;             /* the caller has no segment ready: wait on body_fd */
    int write_errno;           /* why the write loop failed (0 = it did not) */
    int body_failed;           /* the body's source failed (error in err_code/err) */
    size_t head_off, body_off; /* progress in head and in the current segment */
    size_t nwritten;           /* bytes of this request written, in all */
    char *stage;               /* file bytes read but not sent yet (heap) */
    int64_t continue_deadline; /* waiting for 100 Continue until then */
    int64_t settle_until;      /* response complete: the write may finish until then */
    int64_t header_deadline;
    int64_t conn_deadline;     /* connect_to from PH_START, 0 = none (or no longer ours) */
    int64_t pool_deadline;     /* pool_to from PH_WAIT, 0 = none (or no longer ours) */
    int64_t last_in, last_out; /* read_to / write_to: the last progress */
    size_t head_budget_used, scan;
    int status_line_ok;        /* the current head's first line was checked */

    /* --- response --- */
    int status, vmajor, vminor;
    uint32_t reason_off, reason_len; /* in head_copy */
    ft_framing framing;
    ft_chunked chunked;
    uint64_t body_left;        /* FT_BODY_LENGTH: bytes still to read */
    int reuse_ok;              /* may the connection be pooled at EOF */
    int conn_reused;           /* the connection had served a request before */
    int got_response_bytes;    /* any byte of the response was read */
    int upgraded;              /* 101 Switching Protocols: a read/write stream
                                  on a connection off the transport's books */
    char *head_copy;           /* head bytes (points at head_inline or heap) */
    size_t head_copy_len;
    ft_header *hdrs;           /* offsets into head_copy */
    size_t nhdrs, hdrs_cap;
    char *trailer;             /* trailer block (heap), offsets in thdrs */
    ft_header *thdrs;
    size_t nthdrs;

    /* --- error --- */
    int err_code;              /* FT_E_* */
    char err[512];

    /* --- the only fields other threads touch (atomics, ft_rt_interrupt) --- */
    int intr;                  /* FT_INTR_*: why the owner must stop */
    uint64_t wake_tag;         /* slot and use id of the connection in use, 0 = none */

    char head_inline[1024];
    ft_header hdr_inline[24];
} ft_rt;

/* ---- transport ---- */
ft_transport *ft_transport_new(const ft_config *cfg, char *err, size_t errcap);
/* Close every connection, stop and join the engine threads. Idempotent.
 * Connections in use are shut down; their owners finish with an error. */
void ft_transport_close(ft_transport *t);
/* Free after ft_transport_close, once no ft_rt refers to it. */
void ft_transport_free(ft_transport *t);
/* In a child after fork(): close the transport's descriptors without
 * sending anything on them and without taking a lock; its memory is left
 * (nothing may be called on it afterwards). */
void ft_transport_abandon(ft_transport *t);
void ft_transport_close_idle(ft_transport *t);
void ft_transport_stats(ft_transport *t, ft_stats *out);

/* Per-key view: up to cap entries; returns how many keys there are. */
typedef struct {
    char key[256];
    int conns, idle, waiting;
} ft_host_stat;
size_t ft_transport_hosts(ft_transport *t, ft_host_stat *out, size_t cap);

/* ---- exchanges ---- */
void ft_rt_init(ft_rt *rt);
/* Advance the exchange until the response head is read (FT_R_DONE), it
 * failed (FT_R_FAIL, rt->err_code/err set, connection released), or
 * slice_ms passed (FT_R_AGAIN: call again). Blocks without the GIL. */
int ft_rt_run(ft_transport *t, ft_rt *rt, int slice_ms);
/* A caller's read of the body begins: the read part of its Timeout counts
 * from now (as httpx and urllib3 time each read). */
void ft_rt_read_begins(ft_rt *rt);

/* Read body bytes into dst: >0 bytes, 0 at EOF (connection already
 * recycled), FT_R_AGAIN after slice_ms with nothing read, FT_R_FAIL. */
ssize_t ft_rt_read(ft_transport *t, ft_rt *rt, char *dst, size_t n, int slice_ms);
/* The next body segment after FT_R_NEED_BODY (more = 0: the last one).
 * Both ft_rt_run and ft_rt_read return FT_R_NEED_BODY: the request body
 * keeps flowing while the response is read (full duplex). */
void ft_rt_set_body(ft_rt *rt, const char *seg, size_t len, int more);
/* After FT_R_NEED_BODY with no segment ready: the next call waits for
 * rt->body_fd as well as the socket, and returns FT_R_NEED_BODY when it is
 * readable (the response head may arrive first). */
void ft_rt_wait_body(ft_rt *rt);
/* Write to an upgraded (101) stream: bytes written (>0), FT_R_AGAIN after
 * slice_ms with nothing written, FT_R_FAIL. */
ssize_t ft_rt_write(ft_transport *t, ft_rt *rt, const char *src, size_t n, int slice_ms);
/* Is the write loop still live (head or body left to send on a connection
 * the exchange holds)? */
int ft_rt_writing(const ft_rt *rt);
/* The caller goes back to Python with the request body still being sent:
 * its engine goes on sending it (in-memory and plain-file bodies; never
 * Python) until the caller's next call on the exchange takes it back. */
void ft_rt_park(ft_transport *t, ft_rt *rt);
/* Engine side of a parked write (watch.c): one non-blocking write step;
 * 1 when the engine should stop watching (written, failed, or blocked on
 * something other than writability). */
int ft_rt_parked_step(ft_transport *t, ft_rt *rt);
/* From any thread: ask the exchange's owner to stop (FT_INTR_CANCEL: the
 * exchange fails with "context canceled"; FT_INTR_CLOSE: the body was
 * closed, reads fail with "read on closed response body"). Wakes the owner
 * if it is blocked; never touches the connection's memory. The first
 * request wins. */
void ft_rt_interrupt(ft_transport *t, ft_rt *rt, int why);
/* The caller is done with the body before EOF: drain a small known
 * remainder (now, or on the engine) and pool, else close. Idempotent. */
void ft_rt_close(ft_transport *t, ft_rt *rt);
/* Abort: close the connection (cancel, timeout, error found above). */
void ft_rt_abort(ft_transport *t, ft_rt *rt, int code, const char *msg);
/* Free the exchange's own memory. The connection must be released. */
void ft_rt_free(ft_rt *rt);
/* Has the body reached EOF / has the exchange released its connection? */
int ft_rt_at_eof(const ft_rt *rt);

/* ---- engine-run exchanges (job.c) ----
 * A job is an exchange that an engine runs from start to finish while no
 * caller waits on it: getting a connection, both loops and then, by mode,
 *   FT_JOB_FULL   the whole body into memory (buf), then finished;
 *   FT_JOB_HEAD   finished at the response head: the caller takes the
 *                 exchange back and reads the body itself (ft_rt_read);
 *   FT_JOB_AHEAD  reported at the head, then the body is read ahead into
 *                 buf up to `limit` bytes not yet taken (ft_job_take);
 *                 reported again whenever data comes that the caller waits
 *                 for, and finished at EOF, on an error or after
 *                 ft_job_close.
 * Reports go to a completion queue (ft_cq): a list and an eventfd that is
 * readable while the list is not empty (and at times, once, when it is),
 * so that one wake-up of whoever collects serves every job reported since
 * the last ft_cq_take.
 *
 * Ownership: from ft_job_submit until the caller takes the job from its
 * queue finished, its engine owns the ft_rt. The caller only asks:
 * ft_rt_interrupt (cancel), ft_job_close, ft_job_take. A job runs on the
 * engine of its connection (it moves there when it gets one); its
 * connection's events and its deadlines (io->jobs) wake it. */
enum { FT_JOB_FULL = 0, FT_JOB_HEAD, FT_JOB_AHEAD };

typedef struct ft_cq ft_cq;

struct ft_job {
    void *user;                /* the caller's */
    ft_transport *t;
    ft_rt *rt;
    ft_cq *cq;
    int mode;
    /* the engine's side; under ft_transport.mu where said */
    ft_io *io;                 /* under mu: the engine that runs it */
    ft_io *posted_to;          /* under mu: where its task was posted */
    int scheduled;             /* under mu: its task is posted, not run yet */
    int listed;                /* under mu: in io->jobs */
    ft_job *jprev, *jnext;     /* io->jobs, under mu */
    int64_t wake;              /* under mu: its next deadline, 0 = none */
    int close_req;             /* under mu: ft_job_close was called */
    int finish_deferred;       /* under mu: finished while its task was starting */
    int head_done;             /* engine: the head is in */
    ft_engine_task task;
    /* the body read so far, buf[bpos..blen); under bmu in FT_JOB_AHEAD */
    pthread_mutex_t bmu;
    char *buf;
    size_t bpos, blen, bcap, limit;
    int stalled;               /* under bmu: stopped at `limit` until taken from */
    int was_stalled;           /* engine only: it stopped at `limit` since its last read */
    int want_data;             /* under bmu: the caller waits for more */
    int finished;              /* under bmu: the engine is done with the exchange */
    /* completion queue link, under the queue's lock */
    int last;                  /* the last report: the engine is done with j */
    int in_cq;
    ft_job *cq_next;
};

ft_cq *ft_cq_new(char *err, size_t errcap);
void ft_cq_free(ft_cq *q);
int ft_cq_fd(const ft_cq *q);
/* Up to max jobs reported since the last take, last[i] set for a job's
 * last report (the caller may free it then, and not before). */
size_t ft_cq_take(ft_cq *q, ft_job **out, int *last, size_t max);
/* A collector woken by the fd clears it with this before it takes (job.c
 * says why the order matters). The fd can wake it with nothing to take. */
void ft_cq_clear(ft_cq *q);

/* limit: FT_JOB_AHEAD's read-ahead bound (bytes not yet taken); for
 * FT_JOB_FULL the most that is preallocated from a declared length. */
void ft_job_init(ft_job *j, ft_transport *t, ft_rt *rt, ft_cq *q, int mode, size_t limit);
/* Hand the exchange to an engine (a host name is looked up on a resolver
 * thread, resolve.c, so that the engine never waits for DNS). Reported at
 * least once: finished with rt->err_code set if it cannot start. */
void ft_job_submit(ft_transport *t, ft_job *j);
/* FT_JOB_AHEAD: copy up to n buffered bytes into dst. Returns the count;
 * *finished = the engine is done (no more bytes will come once the buffer
 * is empty; rt->err_code says whether it ended in an error). With nothing
 * buffered and more to come, the job is reported when data arrives. */
size_t ft_job_take(ft_job *j, char *dst, size_t n, int *finished);
size_t ft_job_buffered(ft_job *j);
/* FT_JOB_AHEAD: the caller is done with the body before EOF: the engine
 * closes it as ft_rt_close does (drain and pool, or close) and finishes. */
void ft_job_close(ft_transport *t, ft_job *j);
void ft_job_free(ft_job *j);
/* pool.c and conn.c: wake the job (a connection delivered, an interrupt) */
void ft_job_schedule_locked(ft_job *j);
/* watch.c: the job's connection has an event / its deadlines */
void ft_job_on_event(ft_transport *t, ft_io *io, ft_job *j);
int64_t ft_job_expire_locked(ft_io *io, int64_t now);
/* watch.c, after the engines stopped: end what they were running */
void ft_job_close_all(ft_transport *t, ft_io *io);
/* conn.c: what a job waits for: 1 = readable, 2 = writable (or'ed), and
 * its next deadline in *wake (0 = none); reading = 0 while it reads no
 * body (its read-ahead buffer is full): the read timeout does not run */
int ft_rt_wait_events(const ft_rt *rt, int reading, int64_t *wake);

/* ---- lookups (resolve.c) ----
 * A name is resolved on a resolver thread (a small process-wide pool) so
 * that no caller is stuck in getaddrinfo past its deadline or a cancel, and
 * no engine ever waits for DNS. ft_dns_start returns NULL when no thread
 * could start (then resolve in place); notify(arg), if given, runs on the
 * resolver thread when the lookup is done, unless it was released first;
 * ft_dns_wait waits until `until` (1 = done); ft_dns_take hands over the
 * addresses (0) or the error text (-1); ft_dns_release: the caller is done
 * with it (the lookup may still finish; it is freed then). */
typedef struct ft_dns ft_dns;
ft_dns *ft_dns_start(const char *host, int port, void (*notify)(void *), void *arg);
int ft_dns_wait(ft_dns *d, int64_t until);
int ft_dns_done(ft_dns *d);
int ft_dns_take(ft_dns *d, struct addrinfo **out, char *err, size_t errcap);
void ft_dns_release(ft_dns *d);
void ft_dns_after_fork_child(void);
int ft_host_is_numeric(const char *host);
/* job.c: a lookup's notify for a job */
void ft_job_wake(void *job);

/* ---- internals shared by conn.c, pool.c, dial.c, drain.c and watch.c ---- */
struct ft_hostpool {
    char *key;
    ft_hostpool *next;         /* hash chain */
    ft_conn *idle;             /* most recently returned first */
    int nidle;
    int nconns;                /* dialing + in use + idle + draining */
    ft_want *iq_head, *iq_tail;  /* requests waiting for any connection */
    ft_want *dq_head, *dq_tail;  /* ... and for a slot under MaxConnsPerHost */
    int nwait;
};

/* One engine thread as the transport sees it: the context of its callbacks
 * (watch.c) and the work assigned to it. */
struct ft_io {
    ft_transport *t;
    ft_engine *e;              /* set before its thread starts; NULL once freed */
    ft_conn *drains;           /* draining connections (drain.c), under mu */
    ft_dial *dials;            /* dials queued or in flight (dial.c), under mu */
    ft_job *jobs;              /* jobs it runs (job.c), under mu */
    int64_t jobs_wake;         /* under mu: no job's deadline is before this */
    /* The lazy idle watch (pool.c): connections pooled by a caller are
     * watched only once idle for FT_LAZY_WATCH_NS, so that one taken back
     * sooner costs no epoll_ctl; oldest first, under mu. */
    ft_conn *lazy_head, *lazy_tail;
    int lazy_armed;            /* under mu: its ticks sweep the list */
    int lazy_put;              /* under mu: a connection joined since the last sweep */
};

/* How long a pooled connection stays unwatched (see ft_io.lazy_head). */
#define FT_LAZY_WATCH_NS 5000000LL

struct ft_transport {
    pthread_mutex_t mu;
    ft_config cfg;
    ft_hostpool **hosts;
    size_t nhosts, hosts_cap;
    ft_conn *lru_head, *lru_tail;
    ft_conn **slots;
    uint32_t *slot_gen;
    uint32_t nslots, slots_cap;
    uint32_t *free_slots;
    uint32_t nfree_slots;
    char **free_bufs;
    int nfree_bufs;
    pthread_mutex_t spare_mu;  /* a leaf: guards the three below */
    char *spare_bodies[32];    /* jobs' body buffers kept for the next (job.c): */
    size_t spare_caps[32];     /* a fresh buffer per response costs page */
    int nspare_bodies;         /* faults and brk/madvise calls */
    ft_io *io;                 /* io_threads engines; io[0] also runs idle_conn_timeout */
    int nio;
    int closed;
    int close_idle_pending;    /* Go's closeIdle: set by close_idle, cleared by a request */
    int next_io;               /* round robin for new connections */
    int next_job_io;           /* round robin for new jobs */
    uint64_t use_seq;          /* source of ft_conn.use_id */
    pthread_cond_t park_cond;  /* with mu: an engine left a parked write */
    int64_t write_loops;       /* live write loops (atomic, no lock) */
    ft_stats st;
    pthread_mutex_t tls_mu;    /* guards the lazy creation of tls */
    ft_tls_ctx *tls;           /* created at the first https dial */
    char tls_err[256];         /* why it could not be created */
};

#define FT_BUF_SIZE 65536

/* pool.c (all take mu themselves unless named _locked) */
/* keep_io: a connection of that engine stays in its epoll set (a job on
 * that engine takes it); NULL: it leaves the idle watch */
ft_conn *ft_pool_take_idle(ft_transport *t, const char *key, ft_io *keep_io);
int ft_pool_queue(ft_transport *t, const char *key, ft_want *w, ft_conn **out, ft_io *keep_io);
int ft_pool_wait(ft_transport *t, ft_want *w, int64_t until);
void ft_pool_cancel_want(ft_transport *t, ft_want *w);
void ft_want_free(ft_want *w);
void ft_pool_dial_done(ft_transport *t, ft_dial *d, int ok);
void ft_pool_put(ft_transport *t, ft_conn *c);
void ft_conn_destroy(ft_transport *t, ft_conn *c);
void ft_conn_detach(ft_transport *t, ft_conn *c);   /* 101: off the books, socket kept */
void ft_conn_close_detached(ft_conn *c);
void ft_conn_destroy_list(ft_transport *t, ft_conn *list);   /* chained by lnext */
int ft_conn_ensure_buf(ft_transport *t, ft_conn *c);
void ft_pool_unlink_idle_locked(ft_transport *t, ft_conn *c);
void ft_conn_release_buf_locked(ft_transport *t, ft_conn *c);
void ft_conn_set_state_locked(ft_transport *t, ft_conn *c, int state);  /* FT_CS_* */
/* The lazy idle watch: watch io's connections idle for FT_LAZY_WATCH_NS
 * (those that cannot be watched go onto *dead); returns when to sweep
 * next, 0 = no more (under mu, on io's engine). */
int64_t ft_pool_sweep_lazy_locked(ft_io *io, int64_t now, ft_conn **dead);

/* idle_conn_timeout: unlink the idle connections whose time is up onto
 * *dead (by lnext); returns when the next one's is (0 = none). */
int64_t ft_pool_expire_idle_locked(ft_transport *t, int64_t now, ft_conn **dead);
ft_tls_ctx *ft_transport_tls(ft_transport *t, char *err, size_t errcap);

/* watch.c: the transport's side of its engines. ft_io_start starts the
 * io_threads engines with watch.c's callbacks; ft_io_stop joins them, closes
 * what they were draining and dialing, and frees them. The watch calls add,
 * change or remove c in its engine's epoll set, tagged with its slot and
 * generation: for reading (idle, draining) or for writing (connecting,
 * handshaking); 0 or -errno. */
int ft_io_start(ft_transport *t, char *err, size_t errcap);
void ft_io_stop(ft_transport *t);
int ft_conn_watch(ft_conn *c, int want_write);
int ft_conn_watch_events(ft_conn *c, uint32_t events);   /* EPOLL* bits; ADD or MOD */
int ft_conn_rewatch(ft_conn *c, int want_write);
void ft_conn_unwatch(ft_conn *c);

/* drain.c: the rest of a body closed early. ft_drain_readable discards what
 * is buffered and readable now, on whichever thread owns c: DONE (all *left
 * bytes gone, none beyond), AGAIN (the socket would block, *left bytes still
 * due), BROKEN (EOF, an error, or bytes beyond the body). ft_drain_start
 * hands c to its engine, which discards the rest before `deadline` and pools
 * it, or closes it: ft_drain_on_readable is its step, and
 * ft_drain_expire_locked unlinks the drains whose deadline passed onto *dead
 * (by lnext), returning the next deadline (0 = none). */
enum { FT_DRAIN_DONE = 0, FT_DRAIN_AGAIN, FT_DRAIN_BROKEN };
int ft_drain_readable(ft_conn *c, uint64_t *left);
void ft_drain_start(ft_transport *t, ft_conn *c, uint64_t left, int64_t deadline);
void ft_drain_on_readable(ft_transport *t, ft_conn *c);
int64_t ft_drain_expire_locked(ft_io *io, int64_t now, ft_conn **dead);

/* conn.c: the one place a connection's bytes go through (plain or TLS).
 * >0 bytes, 0 EOF, -1 with errno (EAGAIN: wait; c->want_write says for what),
 * other errors with text in ebuf. */
ssize_t ft_conn_recv(ft_conn *c, char *buf, size_t n, char *ebuf, size_t ecap);

/* dial.c. ft_dial_start_locked queues d on d->c's engine, which starts it at
 * its next turn; ft_dial_on_event advances it (engine thread);
 * ft_dial_expire_locked collects onto *late the started dials whose deadline
 * passed or that close_idle_connections aborted, returning the next deadline,
 * and ft_dial_fail_late fails them (engine thread). ft_dial_abort_orphans_locked
 * marks the dials nobody waits for; ft_dial_close_all ends the dials of a
 * stopped engine; ft_dial_free frees a finished one. */
void ft_dial_start_locked(ft_dial *d);
void ft_dial_on_event(ft_transport *t, ft_dial *d);
int64_t ft_dial_expire_locked(ft_io *io, int64_t now, ft_dial **late);
void ft_dial_fail_late(ft_transport *t, ft_dial *late);
void ft_dial_unlink_locked(ft_dial *d);
void ft_dial_abort_orphans_locked(ft_io *io);
void ft_dial_close_all(ft_transport *t, ft_io *io);
void ft_dial_free(ft_dial *d);
/* pool.c, when it makes a dial for a want with a hop: the dial's own copy
 * (0, or -1 out of memory). */
int ft_dial_set_hop(ft_dial *d, const ft_hop *hop);

#endif
