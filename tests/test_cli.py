"""The ``fasttransport`` command, run as a separate process against loopback servers.

Each test runs ``python -m fasttransport ...`` (one also runs the installed
console script) and checks what a user sees: the bytes on stdout, the files
written, stderr, and curl's exit codes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from servers import CLOSE, body_bytes, free_port

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


def test_malformed_url_is_3():
    r = run("get", "ftp://127.0.0.1/")
    assert r.returncode == 3
    assert b"(3)" in r.stderr


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


def test_demo_still_runs():
    r = run("demo", "-n", "3", "--bench", "50", timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"Transport.close()" in r.stdout
    assert b"req/s" in r.stdout


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
