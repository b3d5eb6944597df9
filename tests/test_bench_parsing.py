"""The benchmark suite's readers of wrk's and strace's output, on output
captured from both tools on a Debian machine (wrk 4.1.0, strace 6.1), and
how the suite reports a missing wrk or strace. No timing here: the runs
themselves are tested in test_cli.py."""

from __future__ import annotations

import json

import pytest

from fasttransport.bench import report, runner, syscalls, worker, wrk
from fasttransport.bench.scenarios import BY_NAME

#: wrk -t1 -c1 -d2s against the plain listener of bench.nginx.
WRK_SEQ = """\
Running 2s test @ http://127.0.0.1:47715/small
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.43ms    4.44ms  55.99ms   96.40%
    Req/Sec     3.73k     1.37k    5.75k    60.00%
  7431 requests in 2.01s, 1.61MB read
Requests/sec:   3703.77
Transfer/sec:    821.05KB
"""


#: wrk -t1 -c1 -d2s against its TLS listener.
WRK_TLS = """\
Running 2s test @ https://127.0.0.1:40787/small
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   647.31us    1.12ms   9.36ms   87.67%
    Req/Sec     4.86k   848.78     6.98k    71.43%
  10154 requests in 2.10s, 2.20MB read
Requests/sec:   4834.57
Transfer/sec:      1.05MB
"""


#: wrk -t2 -c32 -d2s --latency: the latency distribution lines too.
WRK_LATENCY = """\
Running 2s test @ http://127.0.0.1:47715/small
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.62ms    2.18ms  15.10ms   69.45%
    Req/Sec     4.31k   568.78     5.38k    57.50%
  Latency Distribution
     50%    3.30ms
     75%    4.82ms
     90%    6.64ms
     99%   10.46ms
  17322 requests in 2.03s, 3.75MB read
Requests/sec:   8542.67
Transfer/sec:      1.85MB
"""


#: wrk -t1 -c1 -d3s --latency -s delay.lua (delay() returning 150) against the
#: idle listener, which closes connections idle for 100 ms: socket errors.
WRK_SOCKET_ERRORS = """\
Running 3s test @ http://127.0.0.1:37869/small
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   407.33us  586.17us   3.02ms   92.31%
    Req/Sec    13.90      7.01    30.00     86.21%
  Latency Distribution
     50%  266.00us
     75%  306.00us
     90%  343.00us
     99%    3.02ms
  41 requests in 3.01s, 9.09KB read
  Socket errors: connect 0, read 5, write 0, timeout 0
Requests/sec:     13.61
Transfer/sec:      3.02KB
"""


#: wrk -t1 -c1 -d1s of a path nginx does not serve: every response a 404.
WRK_NOT_FOUND = """\
Running 1s test @ http://127.0.0.1:47715/nope
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms    1.93ms  11.38ms   84.89%
    Req/Sec     5.44k   504.41     6.15k    70.00%
  5507 requests in 1.02s, 1.54MB read
  Non-2xx or 3xx responses: 5507
Requests/sec:   5404.42
Transfer/sec:      1.52MB
"""


#: strace -f -c -o FILE wrk -t1 -c1 -d1s http://127.0.0.1:47715/small (1,492 requests).
STRACE_WRK = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.03    0.130055      130055         1           clock_nanosleep
 13.57    0.029392          19      1494           write
 10.99    0.023819          15      1501           read
  9.14    0.019810           6      2990           epoll_wait
  5.95    0.012893           4      2988           epoll_ctl
  0.29    0.000638         638         1           futex
  0.01    0.000027          27         1           madvise
  0.01    0.000022           2        10           close
  0.00    0.000005           1         5           rt_sigprocmask
  0.00    0.000000           0        40           mmap
  0.00    0.000000           0        11           mprotect
  0.00    0.000000           0         3           munmap
  0.00    0.000000           0         3           brk
  0.00    0.000000           0         4           rt_sigaction
  0.00    0.000000           0         2           pread64
  0.00    0.000000           0         1         1 access
  0.00    0.000000           0         2           socket
  0.00    0.000000           0         2         1 connect
  0.00    0.000000           0         1           setsockopt
  0.00    0.000000           0         1           execve
  0.00    0.000000           0         2           fcntl
  0.00    0.000000           0         1           arch_prctl
  0.00    0.000000           0         1           epoll_create
  0.00    0.000000           0         1           set_tid_address
  0.00    0.000000           0         8           openat
  0.00    0.000000           0         9           newfstatat
  0.00    0.000000           0         2           set_robust_list
  0.00    0.000000           0         1           prlimit64
  0.00    0.000000           0         3           getrandom
  0.00    0.000000           0         2           rseq
  0.00    0.000000           0         1           clone3
------ ----------- ----------- --------- --------- ----------------
100.00    0.216661          23      9092         2 total
"""


#: strace -f -c -o FILE of a bench worker: fasttransport, 50 warm-up + 100 requests.
STRACE_FT_100 = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 47.81    0.011983         386        31           epoll_wait
 10.57    0.002650           1      1426        76 newfstatat
  9.17    0.002298           7       299       149 recvfrom
  7.13    0.001787          11       150           sendmsg
  5.51    0.001380           3       394           read
  3.92    0.000982          17        56           getdents64
  3.55    0.000890           2       319        52 openat
  2.16    0.000542           1       273           close
  1.99    0.000498          35        14           munmap
  1.80    0.000450           1       340         1 lseek
  1.77    0.000444           2       214           mmap
  1.32    0.000330           1       173       173 ioctl
  1.06    0.000265           3        67           rt_sigaction
  0.86    0.000215           7        30         2 futex
  0.41    0.000102           2        46           brk
  0.35    0.000087           1        48           mprotect
  0.14    0.000035           7         5         2 readlink
  0.10    0.000025           3         7           fcntl
  0.09    0.000023           4         5           write
  0.05    0.000013           6         2           setsockopt
  0.04    0.000010          10         1           poll
  0.04    0.000010           1         7           rt_sigprocmask
  0.04    0.000010          10         1           sysinfo
  0.04    0.000009           9         1           madvise
  0.04    0.000009           1         5           epoll_ctl
  0.02    0.000006           6         1           getsockopt
  0.02    0.000006           3         2           getcwd
  0.02    0.000005           2         2           getrusage
  0.00    0.000001           0         2           gettid
  0.00    0.000000           0         4           pread64
  0.00    0.000000           0         2         2 access
  0.00    0.000000           0         3           socket
  0.00    0.000000           0         2         2 connect
  0.00    0.000000           0         1           sendto
  0.00    0.000000           0         2           recvmsg
  0.00    0.000000           0         1           bind
  0.00    0.000000           0         1           getsockname
  0.00    0.000000           0         2           execve
  0.00    0.000000           0         2           arch_prctl
  0.00    0.000000           0         2           set_tid_address
  0.00    0.000000           0         3           set_robust_list
  0.00    0.000000           0         1           eventfd2
  0.00    0.000000           0         2           epoll_create1
  0.00    0.000000           0         2           prlimit64
  0.00    0.000000           0         4           getrandom
  0.00    0.000000           0         3           rseq
  0.00    0.000000           0         1           clone3
------ ----------- ----------- --------- --------- ----------------
100.00    0.025065           6      3959       459 total
"""


#: The same worker making 1,100 requests after the same warm-up.
STRACE_FT_1100 = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 64.46    0.069021         389       177           epoll_wait
 14.61    0.015641           6      2303      1151 recvfrom
 10.49    0.011229           9      1150           sendmsg
  3.34    0.003580           2      1426        76 newfstatat
  1.36    0.001452           3       398           read
  1.19    0.001274           3       319        52 openat
  1.13    0.001210           5       214           mmap
  1.02    0.001092          19        56           getdents64
  0.64    0.000681           2       273           close
  0.44    0.000467           1       340         1 lseek
  0.27    0.000293           6        48           mprotect
  0.27    0.000285           1       173       173 ioctl
  0.24    0.000256           5        46           brk
  0.20    0.000211           3        67           rt_sigaction
  0.15    0.000158           3        48         1 futex
  0.08    0.000087           6        14           munmap
  0.03    0.000032           3         9           write
  0.03    0.000027           5         5         2 readlink
  0.02    0.000024           3         7           fcntl
  0.01    0.000016          16         1           sysinfo
  0.01    0.000013           3         4           getrandom
  0.01    0.000009           4         2           getcwd
  0.00    0.000004           4         1           madvise
  0.00    0.000004           2         2           gettid
  0.00    0.000004           2         2           prlimit64
  0.00    0.000003           1         2           getrusage
  0.00    0.000001           0         7           rt_sigprocmask
  0.00    0.000000           0         1           poll
  0.00    0.000000           0         4           pread64
  0.00    0.000000           0         2         2 access
  0.00    0.000000           0         3           socket
  0.00    0.000000           0         2         2 connect
  0.00    0.000000           0         1           sendto
  0.00    0.000000           0         2           recvmsg
  0.00    0.000000           0         1           bind
  0.00    0.000000           0         1           getsockname
  0.00    0.000000           0         2           setsockopt
  0.00    0.000000           0         1           getsockopt
  0.00    0.000000           0         2           execve
  0.00    0.000000           0         2           arch_prctl
  0.00    0.000000           0         2           set_tid_address
  0.00    0.000000           0         5           epoll_ctl
  0.00    0.000000           0         3           set_robust_list
  0.00    0.000000           0         1           eventfd2
  0.00    0.000000           0         2           epoll_create1
  0.00    0.000000           0         3           rseq
  0.00    0.000000           0         1           clone3
------ ----------- ----------- --------- --------- ----------------
100.00    0.107074          15      7135      1460 total
"""


# ---------------------------------------------------------------------------
# wrk's report


def test_wrk_sequential_report():
    r = wrk.parse(WRK_SEQ)
    assert (r.requests, r.seconds, r.threads, r.connections) == (7431, 2.01, 1, 1)
    assert r.bytes_read == pytest.approx(1.61 * (1 << 20))
    assert r.errors == 0 and r.error_text() == ""
    assert r.req_per_s == pytest.approx(7431 / 2.01)


def test_wrk_tls_report():
    r = wrk.parse(WRK_TLS)
    assert (r.requests, r.seconds, r.errors) == (10154, 2.10, 0)


def test_wrk_report_with_latency_distribution():
    r = wrk.parse(WRK_LATENCY)
    assert (r.requests, r.seconds, r.threads, r.connections) == (17322, 2.03, 2, 32)
    assert r.bytes_read == pytest.approx(3.75 * (1 << 20))


def test_wrk_socket_errors_count_as_errors():
    r = wrk.parse(WRK_SOCKET_ERRORS)
    assert (r.requests, r.seconds) == (41, 3.01)
    assert r.bytes_read == pytest.approx(9.09 * 1024)
    assert r.socket_errors == {"connect": 0, "read": 5, "write": 0, "timeout": 0}
    assert r.errors == 5
    assert r.error_text() == "socket errors: connect 0, read 5, write 0, timeout 0"


def test_wrk_error_statuses_count_as_errors():
    r = wrk.parse(WRK_NOT_FOUND)
    assert (r.requests, r.bad_status, r.errors) == (5507, 5507, 5507)
    assert r.error_text() == "5507 responses with status 400 or more"


@pytest.mark.parametrize("amount, seconds", [("850.12ms", 0.85012), ("1.00m", 60.0),
                                             ("2.01s", 2.01)])
def test_wrk_run_time_units(amount: str, seconds: float):
    text = WRK_SEQ.replace("in 2.01s,", f"in {amount},")
    assert wrk.parse(text).seconds == pytest.approx(seconds)


def test_wrk_output_without_a_count_is_an_error():
    text = "unable to connect to 127.0.0.1:1 Connection refused\n"
    with pytest.raises(ValueError, match="no 'N requests in T' line.*Connection refused"):
        wrk.parse(text)


def test_wrk_command_line():
    assert wrk.command("/usr/bin/wrk", "http://h/small", 32, 3) == [
        "/usr/bin/wrk", "-t1", "-c32", "-d3s", "http://h/small"]
    assert wrk.command("wrk", "https://h/", 1, 0)[3] == "-d1s"  # whole seconds, at least 1


def test_wrk_runs_about_as_long_as_the_other_rows():
    runs = {
        "fasttransport": [{"wall_s": 2.2}, {"wall_s": 2.4}],
        "requests": [{"wall_s": 14.0}],
        "httpx": [{"status": "not installed", "error": "No module named 'httpx'"}],
        "wrk": [{"wall_s": 19.0}],
    }
    assert runner.wrk_seconds(runs, 20.0) == 2  # median of 2.2, 2.4, 14.0
    runs["urllib3"] = [{"wall_s": 6.0}]
    assert runner.wrk_seconds(runs, 20.0) == 4  # median of 2.2, 2.4, 6.0, 14.0 = 4.2
    assert runner.wrk_seconds(runs, 3.0) == 3  # never past the time limit
    assert runner.wrk_seconds({"wrk": []}, 2.5) == 3  # nothing to go by: the limit
    assert runner.wrk_seconds({"a": [{"wall_s": 0.2}]}, 20.0) == 1


# ---------------------------------------------------------------------------
# strace -c


def test_strace_summary_of_wrk():
    c = syscalls.parse(STRACE_WRK)
    assert c.total == 9092
    assert (c.calls["write"], c.calls["read"], c.calls["epoll_wait"]) == (1494, 1501, 2990)
    assert c.errors["connect"] == 1 and c.errors["access"] == 1
    assert c.errors["write"] == 0  # blank errors column
    assert "total" not in c.calls


def test_strace_summary_of_a_python_worker():
    c = syscalls.parse(STRACE_FT_1100)
    assert c.total == 7135
    assert (c.calls["recvfrom"], c.errors["recvfrom"]) == (2303, 1151)
    assert c.errors["ioctl"] == 173
    assert sum(c.errors.values()) == 1460


def test_calls_per_request_cancel_start_up():
    per = syscalls.per_request(syscalls.parse(STRACE_FT_100), syscalls.parse(STRACE_FT_1100),
                               1000)
    assert per.total == pytest.approx((7135 - 3959) / 1000)
    by_name = {name: (n, failed) for name, n, failed in per.calls}
    assert by_name["recvfrom"] == pytest.approx((2.004, 1.002))
    assert by_name["sendmsg"] == pytest.approx((1.0, 0.0))
    assert "newfstatat" not in by_name  # imports: the same in both runs
    assert "futex" not in by_name  # 0.018 per request: below what is shown
    assert [name for name, _, _ in per.calls] == ["recvfrom", "sendmsg", "epoll_wait"]
    assert per.describe() == "3.2: recvfrom 2.0 (1.0 failed), sendmsg 1.0, epoll_wait 0.1"
    data = per.as_json()
    assert data["per_req"] == pytest.approx(3.176)
    assert data["failed"] == {"recvfrom": pytest.approx(1.002)}
    json.dumps(data)


def test_calls_per_request_of_wrk_between_two_runs():
    short = syscalls.parse(STRACE_WRK)
    # A longer run: the same start-up, 1,000 more requests of read + write +
    # 2 epoll_wait + 2 epoll_ctl each.
    longer = STRACE_WRK
    for before, after in ((1494, 2494), (1501, 2501), (2990, 4990), (2988, 4988),
                          (9092, 15092)):
        longer = longer.replace(f" {before} ", f" {after} ", 1)
    counts = syscalls.parse(longer)
    assert (counts.calls["write"], counts.calls["epoll_ctl"], counts.total) == (2494, 4988,
                                                                               15092)
    per = syscalls.per_request(short, counts, 1000)
    assert per.describe() == "6.0: epoll_ctl 2.0, epoll_wait 2.0, read 1.0, write 1.0"


def test_breakdown_sums_what_it_leaves_out():
    small = syscalls.Counts({"a": 0, "b": 0, "c": 0}, {})
    large = syscalls.Counts({"a": 300, "b": 200, "c": 100}, {"a": 100})
    per = syscalls.per_request(small, large, 100)
    assert per.breakdown(top=1) == "a 3.0 (1.0 failed), others 3.0"


def test_strace_tables_of_two_personalities_add_up():
    table = (
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 90.00    0.000900           9       100           read\n"
        " 10.00    0.000100           1       100        50 recvfrom\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.001000           5       200        50 total\n"
    )
    text = table + "System call usage summary for 32 bit mode:\n" + table
    c = syscalls.parse(text)
    assert c.calls == {"read": 200, "recvfrom": 200}
    assert c.errors == {"read": 0, "recvfrom": 100}


def test_strace_output_without_a_table_is_an_error():
    with pytest.raises(ValueError, match="no strace -c summary"):
        syscalls.parse("strace: ptrace(PTRACE_TRACEME, ...): Operation not permitted\n")
    with pytest.raises(ValueError, match="its total says"):
        syscalls.parse(STRACE_WRK.replace("9092", "9093"))
    with pytest.raises(ValueError, match="no more requests"):
        syscalls.per_request(syscalls.parse(STRACE_WRK), syscalls.parse(STRACE_WRK), 0)


# ---------------------------------------------------------------------------
# a missing wrk or strace


def test_missing_wrk_is_not_available(monkeypatch, capsys):
    monkeypatch.setattr(wrk, "find", lambda: None)
    spec = {"kind": "wrk", "client": "wrk", "url": "http://127.0.0.1:9/small",
            "concurrency": 1, "seconds": 1, "expect": 5}
    assert worker.main([json.dumps(spec)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == {"status": "not available",
                      "error": "wrk not installed (apt-get install wrk)", "client": "wrk"}
    summary = report.summarise("wrk", [result])
    table = report.markdown(BY_NAME["seq"], [summary], {"how": "how"})
    assert ("| wrk (C load generator, not a Python client) | not available: wrk not "
            "installed (apt-get install wrk) |") in table


def _suite(*argv: str) -> runner.Suite:
    args = runner.build_parser("out", None).parse_args(list(argv))
    args.counts = {}
    return runner.Suite(args, [BY_NAME["seq"]], ["fasttransport", "wrk"])


def test_missing_strace_skips_the_count_and_says_so(monkeypatch):
    monkeypatch.setattr(syscalls, "find", lambda: None)
    suite = _suite()
    counted = suite.count_syscalls(BY_NAME["seq"], ["fasttransport"], {"fasttransport": [{}]})
    assert counted == {"skipped": "strace not installed (apt-get install strace)"}
    assert report.syscall_lines(counted) == [
        "System calls per request: not counted: strace not installed (apt-get install "
        "strace)."]


def test_syscalls_are_counted_under_quick_only_when_asked(monkeypatch):
    monkeypatch.setattr(syscalls, "find", lambda: "/usr/bin/strace")
    assert _suite("--quick").syscalls_skipped() == "not under `--quick` (add `--syscalls`)"
    assert _suite("--quick", "--syscalls").syscalls_skipped() == ""
    assert _suite().syscalls_skipped() == ""
    assert _suite("--no-syscalls").syscalls_skipped() == "`--no-syscalls`"


def test_syscall_table():
    per = syscalls.per_request(syscalls.parse(STRACE_FT_100), syscalls.parse(STRACE_FT_1100),
                               1000)
    counted = {"requests": [200, 1200], "wrk_seconds": [1, 3],
               "rows": {"fasttransport": per.as_json(),
                        "wrk": {"error": "traced wrk exit 1: unable to connect"}}}
    lines = report.syscall_lines(counted)
    assert "(calls of a run of 1,200 requests − calls of a run of 200) / 1,000" in lines[0]
    assert lines[-2] == ("| fasttransport | 3.2 | recvfrom 2.0 (1.0 failed), sendmsg 1.0, "
                         "epoll_wait 0.1 |")
    assert lines[-1] == ("| wrk (C load generator, not a Python client) | — | not counted: "
                         "traced wrk exit 1: unable to connect |")
