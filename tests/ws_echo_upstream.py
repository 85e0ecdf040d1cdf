"""A real WebSocket echo server with a node's health endpoint: the far side of tunnel tests.

An ASGI app served by Uvicorn in its own process (`WsEchoUpstream`), as the nodes are:
- `GET <anything>/health` answers the status set through `GET /control/health?status=404`
  (200 at first), with an empty body, as a node's health does;
- a WebSocket handshake whose path contains `refuse` is refused (Uvicorn answers 403);
- any other WebSocket echoes every message, text or binary; the text message `__request__` is
  answered with a JSON report of the handshake (path, query string, headers);
- any other HTTP request gets a JSON report of itself.

The server never pings (`--ws-ping-interval` an hour), so an idle tunnel really is idle.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.helpers import Process, wait_until_responds

Scope = dict[str, Any]
Message = dict[str, Any]
HEALTH = {"status": 200}


def _report(scope: Scope) -> bytes:
    return json.dumps(
        {
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        }
    ).encode()


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "http":
        await _http(scope, send)
        return
    if "refuse" in scope["path"]:
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "__request__":
            await send({"type": "websocket.send", "text": _report(scope).decode()})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def _http(scope: Scope, send: Callable[[Message], Awaitable[None]]) -> None:
    path = scope["path"]
    status, body = 200, b""
    if path == "/control/health":
        wanted = parse_qs(scope["query_string"].decode()).get("status", ["200"])[0]
        HEALTH["status"] = int(wanted)
    elif path.endswith("/health"):
        status = HEALTH["status"]
    else:
        body = _report(scope)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WsEchoUpstream:
    """The echo app under Uvicorn on a loopback port; always `stop()` it."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = Process(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.ws_echo_upstream:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ws",
                "websockets-sansio",
                "--ws-ping-interval",
                "3600",
                "--ws-per-message-deflate",
                "false",
                "--lifespan",
                "off",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            log_path,
        )
        try:
            wait_until_responds(f"{self.url}/cobrowse/health", deadline=15)
        except TimeoutError:
            self.process.stop()
            raise

    def set_health(self, status: int) -> None:
        """Make `/health` answer `status` from now on."""
        import requests

        answer = requests.get(f"{self.url}/control/health", params={"status": status}, timeout=5)
        answer.raise_for_status()

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()
