"""Smoke test of an installed fasttransport: import it, then GET twice from a
local HTTP server on 127.0.0.1 over one kept-alive connection. Exits non-zero
with the reason on any failure. Run with the interpreter to check:

    python scripts/smoke.py
"""

import http.server
import sys
import threading

import fasttransport as ft

BODY = b"smoke test body\n" * 64


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("X-User-Agent", self.headers.get("User-Agent", ""))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/smoke"
    problems = []
    try:
        with ft.Client(timeout=10) as client:
            for _ in range(2):
                r = client.get(url)
                if r.status_code != 200 or r.content != BODY:
                    problems.append(f"status {r.status_code}, {len(r.content)} bytes")
            stats = client.transport.stats()
    finally:
        server.shutdown()
        server.server_close()
    agent = r.headers["X-User-Agent"]
    if agent != f"fasttransport/{ft.__version__}":
        problems.append(f"User-Agent {agent!r}")
    if stats.dials != 1:
        problems.append(f"{stats.dials} dials for two requests, expected 1")
    if problems:
        print(f"GET {url}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"smoke: fasttransport {ft.__version__} on Python {sys.version.split()[0]}: "
          f"2 GETs, 1 connection, {ft.__file__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
