"""The ``fasttransport`` command, run as a separate process against loopback servers.

Each test runs ``python -m fasttransport ...`` (one also runs the installed
console script) and checks what a user sees: the bytes on stdout, the files
written, stderr, and curl's exit codes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from servers import CLOSE, body_bytes, free_port, http_handler

CLI = [sys.executable, "-m", "fasttransport"]


def run(*args: str, timeout: float = 60, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """Run the command; stdout and stderr as bytes."""
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )


# ---------------------------------------------------------------------------
# get: output


def test_get_writes_the_body_to_stdout(http_server):
    r = run("get", http_server.url("/bytes/100000"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == body_bytes(100000)
    assert r.stderr == b""


def test_get_chunked_body(http_server):
    r = run("get", http_server.url("/chunked/5000?chunk=333"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == body_bytes(5000)


def test_output_file(http_server, tmp_path: Path):
    target = tmp_path / "out.bin"
    r = run("get", "-o", str(target), http_server.url("/bytes/300000"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    assert target.read_bytes() == body_bytes(300000)


def test_output_file_with_forced_progress_bar(http_server, tmp_path: Path):
    target = tmp_path / "out.bin"
    r = run("get", "-#", "-o", str(target), http_server.url("/bytes/2000000"))
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == body_bytes(2000000)
    try:
        import rich  # noqa: F401
    except ImportError:
        assert b"fasttransport[cli]" in r.stderr  # works, without a bar, and says why
    else:
        assert b"MB" in r.stderr or b"kB" in r.stderr  # rich's download column


def test_silent_hides_the_progress_bar(http_server, tmp_path: Path):
    target = tmp_path / "out.bin"
    r = run("get", "-s", "-#", "-o", str(target), http_server.url("/bytes/1000"))
    assert r.returncode == 0
    assert r.stderr == b""
    assert target.read_bytes() == body_bytes(1000)


def test_include_writes_the_head_first(http_server):
    r = run("get", "-i", http_server.url("/"))
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 5" in head
    assert body == b"hello"


# ---------------------------------------------------------------------------
# get: the request


def echo(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    doc["headers"] = {name.lower(): value for name, value in doc["headers"]}
    return doc


def test_method_headers_and_form_data(http_server):
    doc = echo(run("get", "-X", "PUT", "-H", "X-One: 1", "-H", "X-Two:  two ",
                   "-d", "a=1", "-d", "b=2", http_server.url("/echo")))
    assert doc["method"] == "PUT"
    assert doc["headers"]["x-one"] == "1"
    assert doc["headers"]["x-two"] == "two"
    assert doc["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert doc["body"] == "a=1&b=2"


def test_data_means_post(http_server):
    doc = echo(run("get", "-d", "x", http_server.url("/echo")))
    assert doc["method"] == "POST"
    assert doc["headers"]["content-length"] == "1"


def test_json_body(http_server):
    doc = echo(run("get", "--json", '{"k": [1, 2]}', http_server.url("/echo")))
    assert doc["method"] == "POST"
    assert doc["headers"]["content-type"] == "application/json"
    assert doc["headers"]["accept"] == "application/json"
    assert json.loads(doc["body"]) == {"k": [1, 2]}


def test_data_from_file_and_stdin(http_server, tmp_path: Path):
    path = tmp_path / "body.txt"
    path.write_bytes(b"line1\nline2\n")
    assert echo(run("get", "-d", f"@{path}", http_server.url("/echo")))["body"] == "line1line2"
    doc = echo(run("get", "--data-binary", f"@{path}", http_server.url("/echo")))
    assert doc["body"] == "line1\nline2\n"
    doc = echo(run("get", "--data-binary", "@-", http_server.url("/echo"), stdin=b"from stdin"))
    assert doc["body"] == "from stdin"


def test_user_agent(http_server):
    assert echo(run("get", http_server.url("/echo")))["headers"]["user-agent"].startswith(
        "fasttransport/"
    )
    assert echo(run("get", "-A", "me/1", http_server.url("/echo")))["headers"]["user-agent"] == (
        "me/1"
    )


def test_insecure_is_accepted(http_server):
    r = run("get", "-k", http_server.url("/"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello"


def test_insecure_turns_off_verification_for_https(ca, scripted_server):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    server = scripted_server(http_handler, name="https", ssl_context=ctx)
    url = server.url("/bytes/3000")
    refused = run("get", url)   # the test CA is in no trust store
    assert refused.returncode == 35, refused.stderr
    assert refused.stderr.startswith(b'fasttransport: (35) Get "' + url.encode() + b'": ')
    r = run("get", "-k", "-v", url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == body_bytes(3000)
    err = r.stderr.decode()
    assert "* -k: the server's certificate and host name are not verified\n" in err
    assert "not implemented" not in err


def test_help_makes_no_stale_https_claim():
    r = run("get", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.decode().split())   # argparse wraps lines
    assert "not implemented" not in text
    assert "HTTPS is not" not in text
    assert "-k, --insecure HTTPS: do not verify the server's certificate or host name" in text
    assert "without a scheme, http:// is assumed" in text
    assert "63 body larger than --max-filesize" in text


# ---------------------------------------------------------------------------
# get: redirects


def test_redirects_followed_only_with_location(http_server):
    url = http_server.url("/status/302?location=/bytes/10")
    r = run("get", url)
    assert r.returncode == 0
    assert r.stdout == b"status 302"
    r = run("get", "-L", url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == body_bytes(10)


def test_too_many_redirects_is_47(http_server):
    # One redirect to /status/301 (which has no Location: a final response),
    # but only one request is allowed.
    target = "/status/301?location=" + quote(http_server.url("/status/301"), safe="")
    r = run("get", "-L", "--max-redirs", "1", http_server.url(target))
    assert r.returncode == 47, r.stderr
    assert b"(47)" in r.stderr
    assert b"stopped after 1 redirects" in r.stderr
    r = run("get", "-L", "--max-redirs", "2", http_server.url(target))
    assert (r.returncode, r.stdout) == (0, b"status 301")


# ---------------------------------------------------------------------------
# get: failures and exit codes


def test_fail_on_404_is_22_and_writes_nothing(http_server):
    r = run("get", "--fail", http_server.url("/status/404"))
    assert r.returncode == 22
    assert r.stdout == b""
    assert r.stderr == b"fasttransport: (22) The requested URL returned error: 404\n"


def test_404_without_fail_is_0(http_server):
    r = run("get", http_server.url("/status/404"))
    assert r.returncode == 0
    assert r.stdout == b"status 404"


def test_connection_refused_is_7():
    url = f"http://127.0.0.1:{free_port()}/"
    r = run("get", url)
    assert r.returncode == 7
    assert r.stdout == b""
    assert r.stderr.startswith(b"fasttransport: (7) Get \"" + url.encode() + b"\"")
    assert b"refused" in r.stderr.lower()


def test_silent_hides_errors_unless_show_error():
    url = f"http://127.0.0.1:{free_port()}/"
    r = run("get", "-s", url)
    assert (r.returncode, r.stderr) == (7, b"")
    r = run("get", "-sS", url)
    assert r.returncode == 7
    assert b"(7)" in r.stderr


def test_unresolvable_host_is_6():
    r = run("get", "--timeout", "20", "http://no-such-host.invalid/")
    assert r.returncode == 6, r.stderr
    assert b"(6)" in r.stderr
    assert b"lookup no-such-host.invalid" in r.stderr


def test_timeout_is_28(http_server):
    t0 = time.monotonic()
    r = run("get", "--timeout", "0.5", http_server.url("/slow?delay=10"))
    assert r.returncode == 28, r.stderr
    assert b"(28)" in r.stderr
    assert time.monotonic() - t0 < 8


def test_truncated_body_is_56(scripted_server):
    server = scripted_server([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..", CLOSE])
    r = run("get", server.url("/"))
    assert r.returncode == 56, r.stderr
    assert b"(56)" in r.stderr


def test_cannot_write_output_is_23(http_server, tmp_path: Path):
    r = run("get", "-o", str(tmp_path / "missing-dir" / "f"), http_server.url("/"))
    assert r.returncode == 23
    assert b"(23)" in r.stderr


def test_missing_data_file_is_26(http_server, tmp_path: Path):
    r = run("get", "-d", f"@{tmp_path / 'nope'}", http_server.url("/echo"))
    assert r.returncode == 26
    assert b"(26)" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["get"],  # no URL
        ["get", "--no-such-option", "http://127.0.0.1/"],
        ["get", "-H", "no colon", "http://127.0.0.1:1/"],
        ["frobnicate"],
    ],
)
def test_usage_errors_are_2(args):
    r = run(*args)
    assert r.returncode == 2
    assert r.stdout == b""
    assert r.stderr


# ---------------------------------------------------------------------------
# get: URLs


def test_unsupported_protocol_is_1(http_server):
    url = f"ftp://127.0.0.1:{http_server.address[1]}/x"
    r = run("get", url)
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == (b'fasttransport: (1) Get "' + url.encode()
                        + b'": unsupported protocol scheme "ftp"\n')
    assert http_server.request_count == 0   # refused before connecting


def test_redirect_to_an_unsupported_protocol_is_1(http_server):
    target = "/status/302?location=" + quote("ftp://127.0.0.1/file", safe="")
    r = run("get", "-L", http_server.url(target))
    assert r.returncode == 1, r.stderr
    assert r.stderr == (b'fasttransport: (1) Get "ftp://127.0.0.1/file": '
                        b'unsupported protocol scheme "ftp"\n')
    assert http_server.request_count == 1


def test_url_without_scheme_means_http(http_server):
    port = http_server.address[1]
    r = run("get", "-v", f"127.0.0.1:{port}/bytes/10")
    assert r.returncode == 0, r.stderr
    assert r.stdout == body_bytes(10)
    assert f"> Host: 127.0.0.1:{port}\n" in r.stderr.decode()
    doc = echo(run("get", "-d", "x", f"127.0.0.1:{port}/echo?q=1"))
    assert (doc["method"], doc["target"]) == ("POST", "/echo?q=1")
    assert http_server.request_count == 2
    # a bare host name: http://NAME/ (looked up, so it fails here, with the URL curl uses)
    r = run("get", "--timeout", "20", "no-such-host.invalid")
    assert r.returncode == 6, r.stderr
    assert r.stderr.startswith(b'fasttransport: (6) Get "http://no-such-host.invalid": ')


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",            # no closing bracket
        "http://[::1/x",
        "http://127.0.0.1:99999/",  # port out of range
        "http://127.0.0.1:8x/",     # port not a number
        "127.0.0.1:99999/x",      # the same without a scheme
        "http:///path",           # no host
        "http://bad url/",        # a space in the host
        "http://",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
def test_malformed_url_is_3_with_gos_prefix(url, method):
    r = run("get", "-v", "-X", method, url)
    assert (r.returncode, r.stdout) == (3, b"")
    shown = url if "://" in url else "http://" + url
    op = method.capitalize()   # Go's Op: Get, Post, Head
    prefix = f'fasttransport: (3) {op} "{shown}": '.encode()
    assert r.stderr.startswith(prefix), r.stderr
    cause = r.stderr[len(prefix):]
    assert cause.endswith(b"\n") and cause.count(b"\n") == 1   # one line, no traceback
    assert cause.strip() and not cause.startswith(b"parse ")   # the cause, once
    assert b"> " not in r.stderr   # refused before a request head is shown


def test_malformed_url_causes_in_gos_words():
    r = run("get", "http:///path")
    assert r.stderr == b'fasttransport: (3) Get "http:///path": http: no Host in request URL\n'
    r = run("get", "-X", "PUT", "http://bad url/")
    assert r.stderr == (b'fasttransport: (3) Put "http://bad url/": '
                        b'invalid character " " in host name\n')
    r = run("get", "http://127.0.0.1/a\nb")   # shown escaped, as Go's %q shows it
    assert r.stderr == (b'fasttransport: (3) Get "http://127.0.0.1/a\\nb": '
                        b"net/url: invalid control character in URL\n")


def test_invalid_method_and_header_name_are_2(http_server):
    url = http_server.url("/")
    r = run("get", "-X", "BAD METHOD", url)
    assert r.returncode == 2
    assert r.stderr == b'fasttransport: (2) net/http: invalid method "BAD METHOD"\n'
    r = run("get", "-H", "Bad Name: x", url)
    assert r.returncode == 2
    assert r.stderr == (b'fasttransport: (2) Get "' + url.encode()
                        + b'": net/http: invalid header field name "Bad Name"\n')
    assert http_server.request_count == 0


# ---------------------------------------------------------------------------
# get -v


def test_verbose_shows_heads_reuse_and_timings(http_server):
    r = run("get", "-v", "-H", "X-Hello: yes", http_server.url("/bytes/1000"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == body_bytes(1000)
    err = r.stderr.decode()
    port = http_server.address[1]
    assert "> GET /bytes/1000 HTTP/1.1\n" in err
    assert f"> Host: 127.0.0.1:{port}\n" in err
    assert "> X-Hello: yes\n" in err
    assert "< HTTP/1.1 200 OK\n" in err
    assert "< Content-Length: 1000\n" in err
    assert "* connection: 1 new connection\n" in err
    assert "* time: response head " in err
    assert "1,000 bytes" in err
    assert "* Transport.stats(): open=1 idle=1 " in err


def test_verbose_redirect_shows_reuse(http_server):
    r = run("get", "-v", "-L", http_server.url("/status/302?location=/"))
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "< HTTP/1.1 302 Found\n" in err
    assert "* redirect to /\n" in err
    assert "* connection: 1 new connection, 1 reuse\n" in err


# ---------------------------------------------------------------------------
# other commands


def test_console_script(http_server):
    script = Path(sys.executable).with_name("fasttransport")
    if not script.exists():
        script_path = shutil.which("fasttransport")
        if script_path is None:
            pytest.skip("the fasttransport console script is not installed")
        script = Path(script_path)
    r = subprocess.run([str(script), "get", http_server.url("/")], capture_output=True,
                       timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, b"hello")


def _demo_server_pid(line: bytes) -> int:
    m = re.search(rb"keep-alive server in its own process \(pid (\d+)\) at http://127\.0\.0\.1:\d+",
                  line)
    assert m, line
    return int(m.group(1))


def _process_gone(pid: int, timeout: float = 10.0) -> bool:
    """pid has exited (gone, or a zombie nobody reaped yet) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state in (b"Z", b"X"):
            return True
        time.sleep(0.05)
    return False


def test_demo_compares_client_cpu_against_a_server_process():
    r = run("demo", "-n", "3", "--bench", "60", timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    # the lesson, as before
    assert "3 bodies left open (references kept)" in out
    assert "references dropped: 3 ResourceWarnings" in out
    assert "Transport.close()" in out
    # the CPU comparison: fasttransport, http.client (the baseline), pycurl when installed
    assert "The server has\nits own process, so time.process_time() here counts the " \
           "client's CPU alone:" in out
    cpu_line = r"^  {name} +\d+\.\d µs CPU/request \({ratio}× http\.client\) +[\d,]+ req/s wall$"
    assert re.search(cpu_line.format(name="fasttransport", ratio=r"\d+\.\d\d"), out, re.M), out
    assert re.search(cpu_line.format(name=r"http\.client", ratio=r"1\.00"), out, re.M), out
    if importlib.util.find_spec("pycurl") is not None:
        assert re.search(cpu_line.format(name="pycurl", ratio=r"\d+\.\d\d"), out, re.M), out
    else:
        assert "  pycurl         not installed" in out
    assert _process_gone(_demo_server_pid(r.stdout))


def _demo_in_its_cpu_loop() -> tuple:
    """A demo process with an endless CPU comparison, once it is running it,
    and its server's pid. The demo leads a process group of its own, as a
    command started from a terminal does."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([*CLI, "demo", "-n", "2", "--bench", "100000000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        server_pid = _demo_server_pid(p.stdout.readline())
        with open(f"/proc/{server_pid}/cmdline", "rb") as f:
            assert b"fasttransport._demo_server" in f.read()
        while b"Client CPU per request" not in p.stdout.readline():
            assert p.poll() is None, p.stderr.read()
    except BaseException:
        p.kill()
        p.communicate()
        raise
    return p, server_pid


def test_demo_ctrl_c_stops_its_server():
    p, server_pid = _demo_in_its_cpu_loop()
    try:
        time.sleep(0.3)   # in the request loop
        os.killpg(p.pid, signal.SIGINT)   # Ctrl-C: the whole group, the server too
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 130, err
    assert err == b"fasttransport demo: interrupted\n"   # and no traceback from the server
    assert _process_gone(server_pid, timeout=1.0)   # stopped before the demo exited


def test_demo_killed_outright_still_ends_its_server():
    p, server_pid = _demo_in_its_cpu_loop()
    p.kill()   # SIGKILL: no cleanup code runs; the server sees its stdin close
    p.communicate(timeout=30)
    assert _process_gone(server_pid)


def test_bench_parser_quick_writes_results(tmp_path: Path):
    out = tmp_path / "results"
    r = run("bench", "--quick", "--scenarios", "parser", "--n", "parser=2000", "--out",
            str(out), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "parser.json").read_text())
    rows = {s["client"]: s for s in data["summary"]}
    assert rows["fasttransport C (bench_parse)"]["ns_per_head"] > 0
    assert rows["fasttransport parse_response_head"]["ns_per_head"] > 0
    assert set(rows) == set(data["runs"])
    table = (out / "parser.md").read_text()
    assert "| fasttransport C (bench_parse) " in table
    assert "ns/head" in table
    assert (out / "bench.json").exists() and (out / "bench.md").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert b"no charts" in r.stdout
    else:
        assert (out / "parser.png").stat().st_size > 1000


def test_bench_seq_against_nginx(tmp_path: Path):
    from fasttransport.bench.nginx import find_nginx

    if find_nginx() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    out = tmp_path / "results"
    r = run("bench", "--quick", "--scenarios", "seq", "--clients", "fasttransport,http.client",
            "--n", "seq=300", "--reps", "2", "--no-charts", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "seq.json").read_text())
    rows = {s["client"]: s for s in data["summary"]}
    assert set(rows) == {"fasttransport", "http.client"}
    for row in rows.values():
        assert row["runs"] == 2
        assert row["errors_total"] == 0
        assert row["requests_total"] == 600
        assert row["cpu_us_per_req"] > 0
    assert "CPU × fasttransport" in (out / "seq.md").read_text()


def test_bench_wrk_row_and_syscalls_per_request(tmp_path: Path):
    from fasttransport.bench.nginx import find_nginx

    missing = [tool for tool, found in (("nginx-light", find_nginx()),
                                        ("wrk", shutil.which("wrk")),
                                        ("strace", shutil.which("strace"))) if not found]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (apt-get install ...)")
    out = tmp_path / "results"
    r = run("bench", "--quick", "--syscalls", "--scenarios", "seq", "--clients",
            "fasttransport,wrk", "--n", "seq=300", "--time-limit", "1", "--no-charts",
            "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "seq.json").read_text())
    rows = {s["client"]: s for s in data["summary"]}
    assert set(rows) == {"fasttransport", "wrk"}
    ran = rows["wrk"]
    assert ran["errors_total"] == 0 and ran["requests_total"] > 0
    assert ran["cpu_us_per_req"] > 0 and ran["req_per_s"] > 0
    assert data["runs"]["wrk"][0]["command"].startswith("wrk -t1 -c1 -d1s http://127.0.0.1:")
    counted = data["syscalls"]["rows"]
    for row in ("fasttransport", "wrk"):
        # At least a send and a receive per request, from the difference of two runs.
        assert counted[row]["per_req"] >= 2, counted[row]
        assert rows[row]["syscalls_per_req"] == counted[row]["per_req"]
    table = (out / "seq.md").read_text()
    assert "| wrk " in table and "(C load generator, not a Python client)" in table
    assert "| client | syscalls/req | most frequent, per request |" in table


def test_bench_unknown_scenario_is_a_usage_error(tmp_path: Path):
    r = run("bench", "--scenarios", "nope", "--out", str(tmp_path))
    assert r.returncode == 2
    assert b"unknown scenarios: nope" in r.stderr
    assert not os.listdir(tmp_path)


def test_max_filesize_is_63(http_server):
    r = run("get", "--max-filesize", "1000", http_server.url("/bytes/5000"))
    assert r.returncode == 63
    assert "response body too large (max_body_size=1000)" in r.stderr.decode()
    ok = run("get", "--max-filesize", "5000", http_server.url("/bytes/5000"))
    assert ok.returncode == 0 and len(ok.stdout) == 5000
