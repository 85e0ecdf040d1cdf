"""Run the router: listen, check the nodes, reload on SIGHUP, stop gracefully on SIGTERM.

On SIGTERM the router stops accepting, lets the requests in progress finish, and keeps open
WebSocket tunnels until DRAIN_DEADLINE_S, when it closes the ones that are left (clients
reconnect elsewhere: through another router, or to this one restarted).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from cobrowse.config.loader import ConfigError, load_cluster
from cobrowse.config.settings import split_bind
from lb.client import ClientConnection
from lb.router import Router

log = logging.getLogger("cobrowse.lb")

DRAIN_DEADLINE_S = 10.0  # for requests in progress and WebSocket tunnels
REAP_INTERVAL_S = 0.1  # deadline precision: far finer than any timeout one would configure


async def serve(config_path: Path, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    config = load_cluster(config_path)
    router = Router(config)
    loop = asyncio.get_running_loop()
    host, port = split_bind(config.router.bind)
    server = await loop.create_server(
        lambda: ClientConnection(router), host, port, reuse_address=True, backlog=2048
    )
    router.start_checks()
    reaper = loop.create_task(_reap_forever(router))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(router, config_path))
    log.info("router listening on %s for %d node(s)", config.router.bind, len(config.nodes))
    if ready is not None:
        ready.set()
    await stop.wait()

    tunnels = router.state.tunnels
    log.info(
        "router stopping: finishing requests in progress; %d tunnel(s) open until %gs from now",
        tunnels.total(),
        DRAIN_DEADLINE_S,
    )
    router.stopping = True
    server.close()
    for connection in list(router.connections):
        connection.shutdown_when_idle()
    deadline = loop.time() + DRAIN_DEADLINE_S
    while (router.connections or tunnels.total()) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    closed = tunnels.close_all("stopping")
    if closed:
        log.info("closed %d tunnel(s) at the drain deadline", closed)
        await asyncio.sleep(0)  # let the resets go out
    reaper.cancel()
    router.checker.stop()
    for pool in router.state.pools.values():
        pool.close()
    if router.state.observer.access_log is not None:
        router.state.observer.access_log.flush()  # the last lines, before the process exits
    log.info("router stopped")


async def _reap_forever(router: Router) -> None:
    while True:
        await asyncio.sleep(REAP_INTERVAL_S)
        router.reap()


def _reload(router: Router, config_path: Path) -> None:
    try:
        config = load_cluster(config_path)
    except ConfigError as error:
        log.error("reload refused, cluster file invalid:\n%s", error)
        return
    problems = router.reload(config)
    if problems:
        log.error("reload refused, it would strand live sessions:\n%s", "\n".join(problems))
        return
    log.info("reloaded %s: %d node(s)", config_path, len(config.nodes))


def run_router(config_path: Path) -> None:
    """Run the router process (blocks)."""
    import uvloop

    uvloop.run(serve(config_path))
