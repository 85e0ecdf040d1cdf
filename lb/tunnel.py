"""WebSocket tunnels: the handshake goes to the node, then bytes are spliced both ways.

The handshake is routed like any request (`lb/routing.py`) and sent on a fresh connection to the
node, never a pooled one. When the node answers `101 Switching Protocols`, the router forwards
the 101 and from then on copies bytes between the two connections without parsing them. Any
other answer is forwarded as a normal response, and the client's connection is closed.

Flow control is the transports' own: when one side's write buffer passes its high-water mark
(`pause_writing`), the router stops reading the other side until it drains (`resume_writing`).
A slow reader slows its own tunnel only, and a tunnel holds at most its two write buffers.

A tunnel ends when either side closes it (a half-close is passed on, and the tunnel ends when
both sides have closed), after `[lb] tunnelTimeout` seconds without a byte either way, when the
health checks take its node down, when a reload removes its node, or at the router's drain
deadline (`lb/state.py` TunnelBook lists the reasons).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

import httptools

from lb.http import HeaderBlock, Request, Response, json_error
from lb.routing import Route, Rule, UnavailableError
from lb.state import RouterState

if TYPE_CHECKING:
    from lb.client import ClientConnection

log = logging.getLogger("cobrowse.lb")

# Closed by the router rather than by either side: both connections are reset at once, since
# waiting for buffered bytes to reach a dead node or a client that stopped reading could hang.
FORCED = frozenset({"idle", "node_down", "removed", "stopping"})
FLUSH_GRACE_S = 5.0  # after one side closed: how long the other side's pending bytes may take


class Tunnel:
    """One WebSocket: its handshake, then two spliced connections (client <-> node)."""

    __slots__ = (
        "client",
        "closed",
        "connecting",
        "from_client",
        "from_node",
        "handshake",
        "node",
        "opened_at",
        "request",
        "route",
        "seen",
        "seen_at",
        "state",
        "timer",
    )

    def __init__(
        self, state: RouterState, client: ClientConnection, request: Request, route: Route
    ) -> None:
        self.state = state
        self.client = client
        self.request = request
        self.route = route
        self.node = route.backend.name
        self.handshake: HandshakeUpstream | None = None
        self.from_client: TunnelEnd | None = None  # the client connection's protocol, once open
        self.from_node: TunnelEnd | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.closed = False
        self.opened_at = 0.0
        self.seen = 0  # bytes moved at the last idle check, and when they last changed
        self.seen_at = 0.0

    # the handshake
    def start(self) -> None:
        rule = self.route.rule.value
        self.request.node, self.request.rule = self.node, rule
        self.state.requests[(self.node, rule)] += 1
        self.client.on_lost = self._client_left
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        settings = self.state.config.router
        loop = asyncio.get_running_loop()
        preferred = self.node
        tried: set[str] = set()
        while True:
            spec = self.route.backend.spec
            tried.add(self.node)
            try:
                async with asyncio.timeout(settings.connect_timeout):
                    transport, handshake = await loop.create_connection(
                        lambda: HandshakeUpstream(self), spec.host, spec.port
                    )
                break
            except (OSError, TimeoutError) as error:
                self.state.upstream_errors[(self.node, "connect")] += 1
                detail = str(error) or type(error).__name__
                log.warning("cannot connect to node %s: %s", self.node, detail)
                if self.closed or not self._fail_over(tried):
                    self._answer(self.state.unavailable(preferred))
                    return
        self.connecting = None
        if self.closed:  # the client left meanwhile
            transport.close()
            return
        self.handshake = handshake
        transport.write(self.state.upstream_request(self.request, self.route, self.client.peer))
        self.timer = loop.call_later(settings.server_timeout, self._too_slow)

    def _fail_over(self, tried: set[str]) -> bool:
        """With the shared store, move a handshake that reached no node to another node that
        is up (nothing was sent); return False when there is none, or no shared store."""
        table = self.state.table
        if not table.shared:
            return False
        try:
            backend = table.failover(tried)
        except UnavailableError:
            return False
        self.route = Route(backend, Rule.FAILOVER, self.route.target)
        self.node = backend.name
        self.request.node, self.request.rule = self.node, Rule.FAILOVER.value
        self.state.requests[(self.node, Rule.FAILOVER.value)] += 1
        return True

    def _client_left(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.handshake is not None:
            self.handshake.close()

    def _too_slow(self) -> None:
        self.timer = None
        self.state.upstream_errors[(self.node, "timeout")] += 1
        if self.handshake is not None:
            self.handshake.close()
        node = self.node
        self._answer(json_error(504, f"Node {node} did not answer in time.", node=node))

    def answered(self, response: Response) -> None:
        """The node refused the upgrade (its connection is closed): the answer goes to the
        client, whose connection is then closed too."""
        self._answer(response)

    def failed(self, detail: str) -> None:
        """The node failed during the handshake (reset, or not HTTP): 502 naming it."""
        self.state.upstream_errors[(self.node, "reset")] += 1
        log.warning("node %s failed during a WebSocket handshake: %s", self.node, detail)
        node = self.node
        self._answer(json_error(502, f"Node {node} failed while answering.", node=node))

    def _answer(self, response: Response) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop_timer()
        self.client.on_lost = None
        self.client.respond(self.request, response)

    def upgraded(self, handshake: HandshakeUpstream, rest: bytes) -> None:
        """The node answered 101: forward it, then splice the two connections."""
        self._stop_timer()
        node_transport = handshake.transport
        if self.closed or node_transport is None:
            handshake.close()
            return
        head = b"HTTP/1.1 101 %s\r\n%sX-Request-ID: %s\r\n\r\n" % (
            handshake.reason or b"Switching Protocols",
            b"".join(handshake.lines),
            self.request.request_id,
        )
        client_transport = self.client.switch(self.request, head)
        if client_transport is None:
            self.closed = True
            handshake.close()
            return
        self.from_client = TunnelEnd(self, client_transport, node_transport)
        self.from_node = TunnelEnd(self, node_transport, client_transport)
        client_transport.set_protocol(self.from_client)
        node_transport.set_protocol(self.from_node)
        self.opened_at = self.seen_at = time.monotonic()
        self.state.tunnels.add(self)
        early = self.client.take_early()
        if early:
            self.from_client.data_received(early)
        if rest:
            self.from_node.data_received(rest)
        if not client_transport.is_closing():
            client_transport.resume_reading()  # paused when the handshake was read

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # the open tunnel
    def half_closed(self, end: TunnelEnd) -> None:
        """One side sent its FIN: pass it on; both sides done ends the tunnel."""
        other = self.from_node if end is self.from_client else self.from_client
        if other is not None and other.eof:
            self.close(self._side(other))  # the side that closed first
            return
        if end.peer.can_write_eof() and not end.peer.is_closing():
            end.peer.write_eof()

    def idle_check(self, now: float, timeout: float) -> None:
        """Close the tunnel when no byte moved either way for `timeout` seconds."""
        if self.from_client is None or self.from_node is None:
            return
        moved = self.from_client.received + self.from_node.received
        if moved != self.seen:
            self.seen, self.seen_at = moved, now
        elif now - self.seen_at > timeout:
            self.close("idle")

    def close(self, reason: str) -> None:
        """End an open tunnel: both connections closed, counted and logged once."""
        if self.closed or self.from_client is None or self.from_node is None:
            return
        self.closed = True
        for end in (self.from_client, self.from_node):
            if reason in FORCED:
                end.transport.abort()
            else:
                _close_flushing(end.transport)
        self.state.tunnels.remove(self, reason)
        self.state.observer.tunnel_closed(
            self.request,
            self.client.peer,
            time.monotonic() - self.opened_at,
            from_client=self.from_client.received,
            from_node=self.from_node.received,
            reason=reason,
        )

    def _side(self, end: TunnelEnd) -> str:
        return "client" if end is self.from_client else "node"

    def lost(self, end: TunnelEnd) -> None:
        self.close(self._side(end))


def _close_flushing(transport: asyncio.Transport) -> None:
    """Close after pending bytes are written, but reset if they cannot leave in time."""
    if transport.is_closing():
        return
    pending = transport.get_write_buffer_size()
    transport.close()
    if pending:
        asyncio.get_running_loop().call_later(FLUSH_GRACE_S, transport.abort)


class TunnelEnd(asyncio.Protocol):
    """One side of an open tunnel: what it reads is written to the other side."""

    __slots__ = ("eof", "peer", "received", "transport", "tunnel")

    def __init__(
        self, tunnel: Tunnel, transport: asyncio.Transport, peer: asyncio.Transport
    ) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.peer = peer
        self.received = 0
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.peer.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        self.tunnel.half_closed(self)
        return True  # keep the other direction open until that side closes too

    def pause_writing(self) -> None:
        # This side's buffer is full: stop reading what would be written to it.
        if not self.peer.is_closing():
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if not self.peer.is_closing():
            self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.lost(self)


class HandshakeUpstream(asyncio.Protocol):
    """The node's side of a handshake: read its answer, a 101 or anything else."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done = False
        self.reason = b""
        self.lines: list[bytes] = []  # every header field, hop-by-hop included (for a 101)
        self.headers = HeaderBlock()  # the end-to-end ones (for any other answer)
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.done = True
            if self.parser.get_status_code() == 101:
                self.tunnel.upgraded(self, data[upgrade.args[0] :])
            else:
                self.close()
                self.tunnel.failed("an upgrade without 101")
        except httptools.HttpParserError as error:
            self.close()
            self.tunnel.failed(f"bad response from the node: {error}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.done = True
            self.tunnel.failed("the node closed the connection before answering")

    def close(self) -> None:
        self.done = True
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.reason = b""
        self.lines = []
        self.headers = HeaderBlock()
        self.body = []

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"x-request-id":  # the router sends its own (the same ID) to the client
            return
        self.lines.append(b"%s: %s\r\n" % (name, value))
        self.headers.add(lower, name, value)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 or self.done:  # a 101 goes on as an upgrade; other 1xx are skipped
            return
        self.close()
        self.tunnel.answered(
            Response(status, self.reason, self.headers.render(), b"".join(self.body), False)
        )
