"""The router: route each request, forward it over pooled connections, fail explicitly."""

from __future__ import annotations

import logging
import time
from collections import Counter

from cobrowse.config.settings import ClusterConfig
from cobrowse.sessions.ring import ClusterRing, ring_change_problems
from cobrowse.web.clientinfo import TrustedProxies
from lb.admin import answer_admin
from lb.backends import Backend, State, backends_for
from lb.client import ClientConnection
from lb.exchange import Exchange
from lb.health import HealthChecker
from lb.http import Request
from lb.observe import RouterObserver
from lb.routing import RoutingTable, UnavailableError
from lb.state import RouterState
from lb.tunnel import Tunnel
from lb.upstream import UpstreamPool

log = logging.getLogger("cobrowse.lb")

TUNNEL_CHECKS_PER_TIMEOUT = 10  # idle tunnels are closed within a tenth of tunnelTimeout late
MAX_TUNNEL_CHECK_S = 1.0


class Router:
    """Everything the router process holds: its state (lb/state.py), checks and connections."""

    def __init__(self, config: ClusterConfig) -> None:
        self.connections: set[ClientConnection] = set()
        self.stopping = False
        self.checker = HealthChecker(
            path=f"{config.context_path}/health",
            interval=config.router.check_interval,
            timeout=config.router.check_timeout,
            on_change=self._state_changed,
        )
        trusted = TrustedProxies(config.security.trusted_proxies)
        requests: Counter[tuple[str, str]] = Counter()
        ring = ClusterRing(config.nodes)
        self.state = RouterState(
            config=config,
            ring=ring,
            table=RoutingTable(config.context_path, ring, {}, config.store.shared),
            trusted=trusted,
            observer=RouterObserver(config, trusted, requests),
            requests=requests,
        )
        self._next_tunnel_check = 0.0
        self.apply(config)

    # configuration
    def apply(self, config: ClusterConfig) -> None:
        """Adopt a cluster definition: keep the state of nodes that stay, check new ones.

        Tunnels to nodes that stay stay open; those to a removed or moved node are closed.
        """
        state = self.state
        old = state.backends
        fresh = backends_for(config.nodes, config.router)
        for name, backend in fresh.items():
            previous = old.get(name)
            if previous is not None and previous.spec.bind == backend.spec.bind:
                previous.spec = backend.spec  # same node: keep its health and its pool
                fresh[name] = previous
                continue
            if name in state.pools:  # a node that moved: a new address, pool and check
                self._drop(name)
            state.pools[name] = UpstreamPool(
                backend.spec.host, backend.spec.port, config.router.connect_timeout
            )
        for name in set(old) - set(fresh):
            self._drop(name)
        state.config, state.backends = config, fresh
        state.ring = ClusterRing(config.nodes)
        state.table = RoutingTable(config.context_path, state.ring, fresh, config.store.shared)
        state.observer.reconfigure(config)

    def _drop(self, name: str) -> None:
        self.checker.forget(name)
        self.state.pools.pop(name).close()
        closed = self.state.tunnels.close_node(name, "removed")
        if closed:
            log.warning("closed %d tunnel(s) of node %s, which the reload removed", closed, name)

    def _state_changed(self, backend: Backend) -> None:
        """A node that goes down loses its tunnels at once: clients reconnect, and get 503 (or,
        with the shared store, another node)."""
        if backend.state is State.DOWN:
            closed = self.state.tunnels.close_node(backend.name, "node_down")
            if closed:
                log.warning("closed %d tunnel(s) of node %s, which is down", closed, backend.name)

    def start_checks(self) -> None:
        for backend in self.state.backends.values():
            if backend.name not in self.checker.tasks:
                self.checker.watch(backend)

    def reload(self, config: ClusterConfig) -> list[str]:
        """Adopt a new cluster file unless it would re-map existing tokens; return problems."""
        problems = ring_change_problems(self.state.ring, ClusterRing(config.nodes))
        if problems:
            return problems
        self.apply(config)
        self.start_checks()
        return []

    # requests
    def dispatch(self, request: Request, client: ClientConnection) -> None:
        """Answer one request: the router's own endpoints, or forward it to its node."""
        state = self.state
        target = request.target
        if target == b"/health" or target.startswith(b"/lb/"):
            client.respond(request, answer_admin(state, request))
            return
        try:
            route = state.table.route(request.method, target, request.cookie, request.sticky)
        except UnavailableError as error:
            client.respond(request, state.unavailable(error.node))
            return
        if request.upgrade is None:
            Exchange(state, client, request, route).start()
        else:
            Tunnel(state, client, request, route).start()

    def observe(self, request: Request, status: int, peer: str) -> None:
        """Count and log one answered request."""
        self.state.observer.request_done(request, status, peer)

    def reap(self) -> None:
        """Enforce deadlines: slow or idle clients, nodes past serverTimeout, idle tunnels."""
        now = time.monotonic()
        state = self.state
        state.observer.tick(now)
        for connection in [c for c in self.connections if c.deadline and c.deadline < now]:
            connection.expire()
        for pool in state.pools.values():
            pool.expire(now)
        if now >= self._next_tunnel_check:
            timeout = state.config.router.tunnel_timeout
            self._next_tunnel_check = now + min(
                MAX_TUNNEL_CHECK_S, timeout / TUNNEL_CHECKS_PER_TIMEOUT
            )
            for tunnel in state.tunnels.every():
                tunnel.idle_check(now, timeout)
