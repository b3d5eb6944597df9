"""A keep-alive HTTP/1.1 server in its own process (asyncio, one thread), for
tests that count this process's threads and file descriptors: an in-process
server's own threads and sockets would blur those counts.

Run: ``python loopback_server.py`` prints the port on stdout, then serves
until stdin closes. Every request gets ``200`` with a body of N bytes for
``/bytes/N`` (default 2).
"""

from __future__ import annotations

import asyncio
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            target = line.split(" ")[1] if " " in line else "/"
            n = 2
            if target.startswith("/bytes/"):
                n = int(target[len("/bytes/"):])
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"x" * n)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    # serve until the parent closes our stdin
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
