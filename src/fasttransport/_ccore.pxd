# Declarations of csrc/core.h (the native transport). No code here.
from libc.stdint cimport int64_t, uint64_t
from fasttransport._cparser cimport ft_header, ft_framing

cdef extern from "tls.h" nogil:
    ctypedef struct ft_tls_config:
        int verify
        const char *ca_file
        const char *ca_dir
        const char *cert_file
        const char *key_file

cdef extern from "core.h" nogil:
    ctypedef struct ft_config:
        int max_idle_conns
        int max_idle_conns_per_host
        int max_conns_per_host
        int64_t idle_conn_timeout
        int disable_keep_alives
        int64_t dial_timeout
        int64_t response_header_timeout
        size_t max_response_header_bytes
        size_t drain_limit
        int64_t expect_continue_timeout
        int io_threads
        int64_t tls_handshake_timeout
        ft_tls_config tls

    ctypedef struct ft_stats:
        int64_t open_conns, idle_conns, active_conns, draining_conns, dialing_conns
        int64_t read_loops, write_loops
        int64_t dials, dial_errors, reused_conns, requests, closed_conns
        int64_t idle_closed_by_peer, idle_timeouts, drained_conns
        int64_t io_threads
        int64_t waiting_requests
        int64_t tls_handshakes, tls_resumed

    enum:
        FT_INTR_NONE
        FT_INTR_CANCEL
        FT_INTR_CLOSE
        FT_R_DONE
        FT_R_FAIL
        FT_R_AGAIN
        FT_R_NEED_BODY
        FT_E_NONE
        FT_E_CONNECT
        FT_E_CONNECT_TIMEOUT
        FT_E_PROTOCOL
        FT_E_HEADER_TIMEOUT
        FT_E_READ_TIMEOUT
        FT_E_CANCELLED
        FT_E_CLOSED
        FT_E_NOMEM
        FT_E_POOL_TIMEOUT
        FT_E_TLS
        FT_E_BODY
        FT_E_TOO_LARGE
        FT_E_WRITE_TIMEOUT

    ctypedef struct ft_transport:
        pass

    enum:
        FT_SOCKS_NONE
        FT_SOCKS4
        FT_SOCKS4A
        FT_SOCKS5
        FT_SOCKS5H

    ctypedef struct ft_hop:
        int socks
        const char *socks_host
        int socks_port
        const char *socks_user
        const char *socks_pass
        const char *proxy_host
        int proxy_port
        int proxy_tls
        const char *proxy_key

    ctypedef struct ft_rt:
        const char *key
        const char *host
        int port
        const char *head
        size_t head_len
        const char *body
        size_t body_len
        int body_more
        int expect_continue
        int is_head
        int tls
        const char *tls_host
        const char *tunnel
        const char *tunnel_auth
        ft_hop hop
        int req_close
        int64_t deadline
        int64_t connect_to, pool_to, read_to, write_to
        uint64_t max_body
        int body_fd
        int body_file
        uint64_t file_off, file_left, file_len
        size_t nwritten
        int status, vmajor, vminor
        unsigned int reason_off, reason_len
        ft_framing framing
        int reuse_ok
        int conn_reused
        int got_response_bytes
        int upgraded
        char *head_copy
        size_t head_copy_len
        ft_header *hdrs
        size_t nhdrs
        char *trailer
        ft_header *thdrs
        size_t nthdrs
        int err_code
        char err[512]

    ft_transport *ft_transport_new(const ft_config *cfg, char *err, size_t errcap)
    void ft_transport_close(ft_transport *t)
    void ft_transport_free(ft_transport *t)
    void ft_transport_abandon(ft_transport *t)
    void ft_dns_after_fork_child()
    void ft_transport_close_idle(ft_transport *t)
    void ft_transport_stats(ft_transport *t, ft_stats *out)
    ctypedef struct ft_host_stat:
        char key[256]
        int conns, idle, waiting
    size_t ft_transport_hosts(ft_transport *t, ft_host_stat *out, size_t cap)

    void ft_rt_init(ft_rt *rt)
    int ft_rt_run(ft_transport *t, ft_rt *rt, int slice_ms)
    ssize_t ft_rt_read(ft_transport *t, ft_rt *rt, char *dst, size_t n, int slice_ms)
    void ft_rt_read_begins(ft_rt *rt)
    void ft_rt_set_body(ft_rt *rt, const char *seg, size_t len, int more)
    void ft_rt_wait_body(ft_rt *rt)
    ssize_t ft_rt_write(ft_transport *t, ft_rt *rt, const char *src, size_t n, int slice_ms)
    int ft_rt_writing(const ft_rt *rt)
    void ft_rt_interrupt(ft_transport *t, ft_rt *rt, int why)
    void ft_rt_park(ft_transport *t, ft_rt *rt)
    void ft_rt_close(ft_transport *t, ft_rt *rt)
    void ft_rt_abort(ft_transport *t, ft_rt *rt, int code, const char *msg)
    void ft_rt_free(ft_rt *rt)
    int ft_rt_at_eof(const ft_rt *rt)

cdef extern from "core.h" nogil:
    ctypedef struct ft_job:
        void *user
    ctypedef struct ft_cq:
        pass
    enum:
        FT_JOB_FULL
        FT_JOB_HEAD
        FT_JOB_AHEAD
    ft_cq *ft_cq_new(char *err, size_t errcap)
    void ft_cq_free(ft_cq *q)
    int ft_cq_fd(const ft_cq *q)
    size_t ft_cq_take(ft_cq *q, ft_job **out, int *last, size_t max)
    void ft_cq_clear(ft_cq *q)
    void ft_job_init(ft_job *j, ft_transport *t, ft_rt *rt, ft_cq *q, int mode, size_t limit)
    void ft_job_submit(ft_transport *t, ft_job *j)
    size_t ft_job_take(ft_job *j, char *dst, size_t n, int *finished)
    size_t ft_job_buffered(ft_job *j)
    void ft_job_close(ft_transport *t, ft_job *j)
    void ft_job_free(ft_job *j)

cdef extern from "sock.h" nogil:
    int64_t ft_now_ns()
