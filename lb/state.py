"""What the router knows, in one object that its parts share without importing the router.

`lb/router.py` builds a `RouterState` and keeps it current across reloads; the proxy
(`client.py`, `exchange.py`, `tunnel.py`) counts into it, and the router's own endpoints
(`admin.py`, `metrics.py`, `statuspage.py`) read it. Nothing here imports `lb.router`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from cobrowse.config.settings import ClusterConfig
from cobrowse.sessions.ring import ClusterRing
from cobrowse.web.clientinfo import TrustedProxies
from lb.backends import Backend
from lb.http import Request, Response, json_error
from lb.observe import RouterObserver
from lb.routing import Route, RoutingTable
from lb.upstream import UpstreamPool

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


class OpenTunnel(Protocol):
    """What the tunnel book needs of a tunnel (`lb/tunnel.py`)."""

    node: str

    def close(self, reason: str) -> None: ...

    def idle_check(self, now: float, timeout: float) -> None: ...


class TunnelBook:
    """The open WebSocket tunnels of each node, and how many were opened and closed (by reason).

    Reasons: `client` or `node` (that side closed), `idle` (no byte either way for
    `[lb] tunnelTimeout`), `node_down` (the health checks took the node down), `removed` (a
    reload removed or moved the node), `stopping` (the router's drain deadline passed).
    """

    def __init__(self) -> None:
        self.open: dict[str, set[OpenTunnel]] = {}
        self.opened: Counter[str] = Counter()
        self.closed: Counter[tuple[str, str]] = Counter()

    def add(self, tunnel: OpenTunnel) -> None:
        self.open.setdefault(tunnel.node, set()).add(tunnel)
        self.opened[tunnel.node] += 1

    def remove(self, tunnel: OpenTunnel, reason: str) -> None:
        tunnels = self.open.get(tunnel.node)
        if tunnels is not None and tunnel in tunnels:
            tunnels.remove(tunnel)
            self.closed[(tunnel.node, reason)] += 1

    def count(self, node: str) -> int:
        return len(self.open.get(node, ()))

    def total(self) -> int:
        return sum(len(tunnels) for tunnels in self.open.values())

    def every(self) -> list[OpenTunnel]:
        return [tunnel for tunnels in self.open.values() for tunnel in tunnels]

    def close_node(self, node: str, reason: str) -> int:
        """Close every tunnel to `node`; return how many there were."""
        tunnels = list(self.open.get(node, ()))
        for tunnel in tunnels:
            tunnel.close(reason)
        return len(tunnels)

    def close_all(self, reason: str) -> int:
        tunnels = self.every()
        for tunnel in tunnels:
            tunnel.close(reason)
        return len(tunnels)


@dataclass(eq=False, slots=True)
class RouterState:
    """The cluster as the router sees it, its connection pools and its counters."""

    config: ClusterConfig
    ring: ClusterRing
    table: RoutingTable
    trusted: TrustedProxies
    observer: RouterObserver
    requests: Counter[tuple[str, str]]  # (node, rule) -> count
    backends: dict[str, Backend] = field(default_factory=dict)
    pools: dict[str, UpstreamPool] = field(default_factory=dict)
    upstream_errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (node, kind)
    tunnels: TunnelBook = field(default_factory=TunnelBook)

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
        """Return the bytes to send to the node: end-to-end headers plus X-Forwarded-*.

        A WebSocket handshake also carries `Connection: Upgrade` and its `Upgrade` field, the
        only hop-by-hop fields the router ever forwards.
        """
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
        extra = b""
        if request.body or request.method in _BODY_METHODS:
            extra = b"Content-Length: %d\r\n" % len(request.body)
        if request.upgrade is not None:
            extra += b"Connection: Upgrade\r\nUpgrade: %s\r\n" % request.upgrade
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
                extra,
                request.body,
            )
        )
