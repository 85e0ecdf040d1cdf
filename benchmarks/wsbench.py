"""The two ends of `scripts/bench router --websocket`: a fast echo server and a load generator.

    python -m benchmarks.wsbench echo --port P
    python -m benchmarks.wsbench load --url ws://HOST:PORT/PATH --clients 16 --duration 5

The echo server is a `websockets` asyncio server on uvloop (no compression, no pings) that
answers `GET .../health` with 200, so that the router's health checks find it up. The load
generator must cost far less per message than what it measures: it speaks raw frames from
asyncio protocols (one pre-masked binary frame per message, echoes counted by length), with
`--clients` connections each sending its next message when the last one came back. It prints
one JSON line: messages, seconds, p50/p99 round trip in ms, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import time
from http import HTTPStatus
from urllib.parse import urlsplit

WARMUP_S = 0.5


async def serve_echo(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request, Response

    async def echo(websocket: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # load clients just hang up
            async for message in websocket:
                await websocket.send(message)

    def health(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0].endswith("/health"):
            return connection.respond(HTTPStatus.OK, "")
        return None

    async with serve(
        echo,
        "127.0.0.1",
        port,
        process_request=health,
        compression=None,
        ping_interval=None,
        server_header=None,
        max_size=2**20,
        backlog=1024,
    ):
        await asyncio.Future()


class EchoClient(asyncio.Protocol):
    """One connection: the handshake by hand, then one message in flight at a time."""

    def __init__(self, host: str, path: str, frame: bytes, echo_size: int, run: Run) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.frame = frame
        self.echo_size = echo_size
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending = 0
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.open.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end == -1:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(self.head[:200].decode("latin-1")))
                return
            data = self.head[end + 4 :]
            self.open.set_result(None)
        self.pending -= len(data)
        if self.pending <= 0 and self.sent_at:
            self.run.record(time.perf_counter() - self.sent_at)
            self.send()

    def send(self) -> None:
        if self.run.stopping or self.transport is None:
            self.sent_at = 0.0
            return
        self.pending = self.echo_size
        self.sent_at = time.perf_counter()
        self.transport.write(self.frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        elif not self.run.stopping:
            self.run.errors += 1


class Run:
    """Round trips of every client, after the warm-up."""

    def __init__(self) -> None:
        self.stopping = False
        self.measuring = False
        self.times: list[float] = []
        self.errors = 0

    def record(self, seconds: float) -> None:
        if self.measuring:
            self.times.append(seconds)


def frame_for(size: int) -> bytes:
    """Return one masked binary frame of `size` bytes (client frames must be masked)."""
    payload = os.urandom(size)
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 65536:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return b"\x82" + length + mask + masked


def echo_size(size: int) -> int:
    """Return the length of the server's (unmasked) frame echoing `size` bytes."""
    return 2 + size + (0 if size < 126 else 2 if size < 65536 else 8)


async def load(url: str, clients: int, duration: float, size: int) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    run = Run()
    frame = frame_for(size)
    connections = []
    for _ in range(clients):
        _, client = await loop.create_connection(
            lambda: EchoClient(f"{host}:{port}", path, frame, echo_size(size), run), host, port
        )
        connections.append(client)
    await asyncio.wait_for(asyncio.gather(*(client.open for client in connections)), 10)
    for client in connections:
        client.send()
    await asyncio.sleep(WARMUP_S)
    run.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    run.measuring = False
    seconds = time.perf_counter() - started
    run.stopping = True
    for client in connections:
        if client.transport is not None:
            client.transport.close()
    times = sorted(run.times) or [0.0]
    return {
        "messages": len(run.times),
        "seconds": seconds,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "errors": run.errors,
    }


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="serve the echo server")
    echo.add_argument("--port", type=int, required=True)
    run = commands.add_parser("load", help="measure echo round trips through a URL")
    run.add_argument("--url", required=True)
    run.add_argument("--clients", type=int, default=16)
    run.add_argument("--duration", type=float, default=5.0)
    run.add_argument("--size", type=int, default=64, help="bytes per message")
    args = parser.parse_args(argv)
    if args.command == "echo":
        uvloop.run(serve_echo(args.port))
        return 0
    result = uvloop.run(load(args.url, args.clients, args.duration, args.size))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
