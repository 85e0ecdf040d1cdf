"""One request's trip to a node: pick a connection, send, retry what is safe, answer."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lb.http import Request, Response, json_error
from lb.routing import Route, Rule, UnavailableError
from lb.state import RouterState
from lb.upstream import UpstreamClosedError, UpstreamConnection, UpstreamPool, UpstreamTimeoutError

if TYPE_CHECKING:
    from lb.client import ClientConnection

log = logging.getLogger("cobrowse.lb")


class Exchange:
    """Forward one request, with the only retries that cannot duplicate work.

    - A connection that cannot be opened: nothing was sent. A create goes to another node
      (`option redispatch`), and so does anything else with the shared store (any node serves
      any session); otherwise it gets 503 naming the node.
    - A pooled connection that the node had closed while idle (no byte of answer): the request
      was not processed; it is sent once more on a fresh connection.
    - Anything after that is the node failing mid-request: 502, or 504 after serverTimeout.
    """

    __slots__ = (
        "client",
        "fresh_retry",
        "payload",
        "request",
        "reused",
        "route",
        "state",
        "tried",
    )

    def __init__(
        self, state: RouterState, client: ClientConnection, request: Request, route: Route
    ) -> None:
        self.state = state
        self.client = client
        self.request = request
        self.route = route
        self.payload = state.upstream_request(request, route, client.peer)
        self.tried: set[str] = set()
        self.reused = False
        self.fresh_retry = False

    def start(self) -> None:
        self._try(self.route)

    def _try(self, route: Route) -> None:
        self.route = route
        name = route.backend.name
        self.request.node, self.request.rule = name, route.rule.value
        self.tried.add(name)
        self.state.requests[(name, route.rule.value)] += 1
        pool = self.state.pools[name]
        connection = pool.take_idle()
        if connection is None:
            self.reused = False
            asyncio.get_running_loop().create_task(self._connect(pool))
        else:
            self.reused = True
            self._send(connection)

    async def _connect(self, pool: UpstreamPool) -> None:
        try:
            connection = await pool.connect()
        except (OSError, TimeoutError) as error:
            self._connect_failed(str(error) or type(error).__name__)
            return
        self._send(connection)

    def _send(self, connection: UpstreamConnection) -> None:
        connection.send(
            self.payload,
            self.request.method == b"HEAD",
            self._outcome,
            self.state.config.router.server_timeout,
        )

    def _outcome(
        self, connection: UpstreamConnection, response: Response | None, error: Exception | None
    ) -> None:
        node = self.route.backend.name
        if response is not None:
            self.state.pools[node].release(connection, response.keep_alive)
            self.client.respond(self.request, response)
            return
        connection.close()
        unprocessed = isinstance(error, UpstreamClosedError) and not error.got_bytes
        if unprocessed and self.reused and not self.fresh_retry:
            # The node closed this idle connection just as we used it; nothing was processed.
            self.fresh_retry = True
            self.reused = False
            asyncio.get_running_loop().create_task(self._connect(self.state.pools[node]))
            return
        if isinstance(error, UpstreamTimeoutError):
            self.state.upstream_errors[(node, "timeout")] += 1
            self.client.respond(
                self.request, json_error(504, f"Node {node} did not answer in time.", node=node)
            )
            return
        self.state.upstream_errors[(node, "reset")] += 1
        log.warning("node %s failed mid-request: %s", node, error)
        self.client.respond(
            self.request, json_error(502, f"Node {node} failed while answering.", node=node)
        )

    def _connect_failed(self, detail: str) -> None:
        node = self.route.backend.name
        self.state.upstream_errors[(node, "connect")] += 1
        log.warning("cannot connect to node %s: %s", node, detail)
        table = self.state.table
        if table.is_create(self.request.method, self.route.target):
            choose, rule = table.spread_excluding, self.route.rule
        elif table.shared:
            # Nothing was sent, and any node serves any session: another node that is up.
            choose, rule = table.failover, Rule.FAILOVER
        else:
            self.client.respond(self.request, self.state.unavailable(node))
            return
        try:  # a request that reached no node is safe to send to another one
            backend = choose(self.tried)
        except UnavailableError:
            named = node if rule is Rule.FAILOVER else None  # a create names no node
            self.client.respond(self.request, self.state.unavailable(named))
            return
        self._try(Route(backend, rule, self.route.target))
