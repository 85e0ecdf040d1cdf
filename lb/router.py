"""The router: route each request, forward it over pooled connections, fail explicitly."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING

from cobrowse.config.settings import ClusterConfig
from cobrowse.sessions.ring import ClusterRing, ring_change_problems
from cobrowse.web.clientinfo import TrustedProxies
from lb.admin import answer_admin
from lb.backends import Backend, backends_for
from lb.exchange import Exchange
from lb.health import HealthChecker
from lb.http import Request, Response, json_error
from lb.observe import RouterObserver
from lb.routing import Route, RoutingTable, UnavailableError
from lb.upstream import UpstreamPool

if TYPE_CHECKING:
    from lb.client import ClientConnection

log = logging.getLogger("cobrowse.lb")


class Router:
    """Everything the router process holds: cluster, ring, node states, pools, counters."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.connections: set[ClientConnection] = set()
        self.stopping = False
        self.requests: Counter[tuple[str, str]] = Counter()  # (node, rule) -> count
        self.upstream_errors: Counter[tuple[str, str]] = Counter()  # (node, kind) -> count
        self.checker = HealthChecker(
            path=f"{config.context_path}/health",
            interval=config.router.check_interval,
            timeout=config.router.check_timeout,
        )
        self.backends: dict[str, Backend] = {}
        self.pools: dict[str, UpstreamPool] = {}
        self.ring: ClusterRing
        self.table: RoutingTable
        self.trusted = TrustedProxies(config.security.trusted_proxies)
        self.observer = RouterObserver(self, config)
        self.apply(config)

    # configuration
    def apply(self, config: ClusterConfig) -> None:
        """Adopt a cluster definition: keep the state of nodes that stay, check new ones."""
        old = self.backends
        fresh = backends_for(config.nodes, config.router)
        for name, backend in fresh.items():
            previous = old.get(name)
            if previous is not None and previous.spec.bind == backend.spec.bind:
                previous.spec = backend.spec  # same node: keep its health and its pool
                fresh[name] = previous
                continue
            if name in self.pools:  # a node that moved: a new address, pool and check
                self.checker.forget(name)
                self.pools.pop(name).close()
            self.pools[name] = UpstreamPool(
                backend.spec.host, backend.spec.port, config.router.connect_timeout
            )
        for name in set(old) - set(fresh):
            self.checker.forget(name)
            self.pools.pop(name).close()
        self.config, self.backends = config, fresh
        self.ring = ClusterRing(config.nodes)
        self.table = RoutingTable(config.context_path, self.ring, fresh)
        self.observer.reconfigure(config)

    def start_checks(self) -> None:
        for backend in self.backends.values():
            if backend.name not in self.checker.tasks:
                self.checker.watch(backend)

    def reload(self, config: ClusterConfig) -> list[str]:
        """Adopt a new cluster file unless it would re-map existing tokens; return problems."""
        problems = ring_change_problems(self.ring, ClusterRing(config.nodes))
        if problems:
            return problems
        self.apply(config)
        self.start_checks()
        return []

    # requests
    def dispatch(self, request: Request, client: ClientConnection) -> None:
        """Answer one request: the router's own endpoints, or forward it to its node."""
        target = request.target
        if target == b"/health" or target.startswith(b"/lb/"):
            client.respond(request, answer_admin(self, request))
            return
        try:
            route = self.table.route(request.method, target, request.cookie, request.sticky)
        except UnavailableError as error:
            client.respond(request, self.unavailable(error.node))
            return
        Exchange(self, client, request, route).start()

    def unavailable(self, node: str | None) -> Response:
        """Return the 503 answer naming the node that cannot serve (or none at all)."""
        retry = self.config.router.retry_after
        if node is None:
            return json_error(503, "No node is available to take this request.", retry_after=retry)
        return json_error(
            503,
            f"Node {node}, which hosts this session, is unavailable. Start a new session.",
            node=node,
            retry_after=retry,
        )

    def upstream_request(self, request: Request, route: Route, peer: str) -> bytes:
        """Return the bytes to send to the node: end-to-end headers plus X-Forwarded-*."""
        if self.trusted.contains(peer):
            # Behind a trusted proxy (HAProxy, say), keep its view of the client.
            forwarded_for = (
                request.forwarded_for + b", " + peer.encode()
                if request.forwarded_for
                else peer.encode()
            )
            proto = (request.forwarded_proto or b"http").split(b",")[0].strip()
        else:
            forwarded_for, proto = peer.encode(), b"http"  # a client cannot pick its address
        length = b""
        if request.body or request.method in (b"POST", b"PUT", b"PATCH"):
            length = b"Content-Length: %d\r\n" % len(request.body)
        return (
            b"%s %s HTTP/1.1\r\n%sX-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n"
            b"X-Forwarded-Host: %s\r\nX-Request-ID: %s\r\n%s\r\n%s"
            % (
                request.method,
                route.target,
                request.head,
                forwarded_for,
                proto,
                request.host,
                request.request_id,
                length,
                request.body,
            )
        )

    def observe(self, request: Request, status: int, peer: str) -> None:
        """Count and log one answered request."""
        self.observer.request_done(request, status, peer)

    def reap(self) -> None:
        """Enforce deadlines: slow or idle clients, and nodes past serverTimeout."""
        now = time.monotonic()
        self.observer.tick(now)
        for connection in [c for c in self.connections if c.deadline and c.deadline < now]:
            connection.expire()
        for pool in self.pools.values():
            pool.expire(now)
