"""The floor of the realtime benchmark: the least a WebSocket relay can do, in one process.

    python -m benchmarks.relay_floor --port 8900

A customer's channel is `ws://host:port/pair/{id}/customer`, its agent's `/pair/{id}/agent`.
It speaks just enough of REALTIME.md for `benchmarks.realtime` to drive it like a node:
`hello` -> `welcome`; a customer's `events` frame is parsed, forwarded to the paired agent as
`{"type":"events","seq":S,"from":"customer","cseq":N,"data":[...]}` (data re-encoded once with
orjson, as the node does), then acknowledged with `{"type":"ack","cseq":N}`. No auth, no store,
no consent, no log, no second worker: what it costs is the `websockets` library, JSON and
the event loop. Events sent before the agent connects wait in memory for it. `GET /health`
answers 200 (for the benchmark's readiness check).

It negotiates permessage-deflate as the node does (both default to it, as browsers offer it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson
import uvloop
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

MAX_MESSAGE = 1_048_576  # as the node's default [realtime] maxMessageSize


@dataclass
class Pair:
    """A customer and its agent: the agent's connection once it is there, the session's seq."""

    agent: ServerConnection | None = None
    seq: int = 0
    waiting: list[bytes] = field(default_factory=list)  # forwarded before the agent came
    agent_here: asyncio.Event = field(default_factory=asyncio.Event)


class Relay:
    def __init__(self) -> None:
        self.pairs: dict[str, Pair] = {}

    def health(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if not request.path.startswith("/pair/"):
            return connection.respond(HTTPStatus.NOT_FOUND, "no WebSocket here\n")
        return None

    async def handle(self, connection: ServerConnection) -> None:
        parts = (connection.request.path if connection.request else "").split("/")
        if len(parts) != 4 or parts[3] not in ("customer", "agent"):
            await connection.close(4404, "unknown pair")
            return
        pair_id, role = parts[2], parts[3]
        pair = self.pairs.setdefault(pair_id, Pair())
        with contextlib.suppress(ConnectionClosed):
            hello = orjson.loads(await connection.recv(decode=False))
            if not isinstance(hello, dict) or hello.get("type") != "hello":
                await connection.close(4400, "the first frame must be hello")
                return
            await connection.send(
                b'{"type":"welcome","role":"%s","userId":"%s","seq":%d}'
                % (role.encode(), role.encode(), pair.seq),
                text=True,
            )
            if role == "agent":
                await self.agent(pair, connection)
            else:
                await self.customer(pair, connection)
        if role == "agent" and pair.agent is connection:
            pair.agent = None
            pair.agent_here.clear()

    async def agent(self, pair: Pair, connection: ServerConnection) -> None:
        pair.agent = connection
        for frame in pair.waiting:
            await connection.send(frame, text=True)
        pair.waiting.clear()
        pair.agent_here.set()
        async for _ in connection:  # pointers and the like: dropped
            pass

    async def customer(self, pair: Pair, connection: ServerConnection) -> None:
        async for message in connection:
            frame = orjson.loads(message)
            if not isinstance(frame, dict) or frame.get("type") != "events":
                continue
            cseq = int(frame["cseq"])
            pair.seq += 1
            forward = b'{"type":"events","seq":%d,"from":"customer","cseq":%d,"data":%s}' % (
                pair.seq,
                cseq,
                orjson.dumps(frame.get("data")),
            )
            agent = pair.agent
            if agent is None:
                pair.waiting.append(forward)
            else:
                with contextlib.suppress(ConnectionClosed):  # the agent left: the customer stays
                    await agent.send(forward, text=True)
            await connection.send(b'{"type":"ack","cseq":%d}' % cseq, text=True)


async def run(host: str, port: int) -> None:
    relay = Relay()
    server: Server
    async with serve(
        relay.handle,
        host,
        port,
        process_request=relay.health,
        max_size=MAX_MESSAGE,
        server_header=None,
    ) as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
