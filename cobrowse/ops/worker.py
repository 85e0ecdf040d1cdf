"""The node's Gunicorn worker: Uvicorn (uvloop, httptools) serving the ASGI app.

`NodeWorker` is `uvicorn_worker.UvicornWorker` with the node's protocol (`NodeHttpProtocol`:
JSON refusals, request limits and deadline), WebSockets by `websockets` (sans-I/O), lifespan
events, and neither proxy headers nor access log in Uvicorn: the app resolves X-Forwarded-* from
`[security] trustedProxies` itself (cobrowse.web.clientinfo) and writes its own access log.

The app tells the worker its limits through its `server_options` attribute (a `ServerOptions`,
defined with the settings in cobrowse.config.settings, which the app builds it from, and
re-exported here), read once Gunicorn has loaded the app in the worker; an app without one gets
the defaults. An app
with a coroutine method `before_shutdown()` is told when the worker starts shutting down, before
Uvicorn closes connections (the realtime channel closes its WebSockets with 1001 there).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import sys
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from cobrowse.config.settings import ServerOptions
from cobrowse.ops.http_protocol import NodeHttpProtocol
from cobrowse.ops.ws_protocol import NodeWebSocketProtocol

__all__ = ["NodeServer", "NodeWorker", "ServerOptions", "apply_server_options"]

log = logging.getLogger("cobrowse.node")


def apply_server_options(config: Config, options: ServerOptions | None) -> ServerOptions:
    """Set `options` (or the defaults) on a Uvicorn config that has not been loaded yet.

    The WebSocket options and the graceful timeout are Uvicorn's own; the request limits and
    deadline are read by `NodeHttpProtocol` from `config.cobrowse_options`.
    """
    if options is None:
        options = ServerOptions()
    config.ws_max_size = options.ws_max_size
    config.ws_ping_interval = options.ws_ping_interval
    config.ws_ping_timeout = options.ws_ping_timeout
    config.ws_per_message_deflate = options.ws_compression != "off"
    # Annotated `int | None` in Uvicorn, but only ever passed to asyncio.wait_for.
    config.timeout_graceful_shutdown = options.graceful_timeout  # type: ignore[assignment]
    config.cobrowse_options = options  # type: ignore[attr-defined]
    return options


class NodeServer(Server):
    """Uvicorn's server, telling the app before it starts closing connections."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        hook = getattr(app, "before_shutdown", None)
        if hook is not None and inspect.iscoroutinefunction(hook):
            try:
                await asyncio.wait_for(hook(), timeout=self.config.timeout_graceful_shutdown)
            except TimeoutError:
                log.error("The app's before_shutdown() did not finish in time")
            except Exception:
                log.exception("The app's before_shutdown() failed")
        await super().shutdown(sockets=sockets)


class NodeWorker(UvicornWorker):  # type: ignore[misc]
    """Gunicorn worker running `NodeServer` with the node's protocol and options."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": NodeHttpProtocol,
        "ws": NodeWebSocketProtocol,
        "lifespan": "on",
        # The app resolves the client address and scheme from trusted proxies itself.
        "proxy_headers": False,
        # The app writes its own JSON access log.
        "access_log": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Uvicorn logs every WebSocket handshake at INFO with its path, which holds a token:
        # only its warnings and errors reach the node's log.
        logging.getLogger("uvicorn.error").setLevel(
            max(logging.WARNING, logging.getLogger("uvicorn.error").level)
        )

    async def _serve(self) -> None:
        # uvicorn_worker's _serve, with the app's options applied and NodeServer.
        self.config.app = self.wsgi
        options = getattr(self.wsgi, "server_options", None)
        if options is not None and not isinstance(options, ServerOptions):
            log.warning("Ignoring the app's server_options: not a ServerOptions: %r", options)
            options = None
        apply_server_options(self.config, options)
        server = NodeServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
