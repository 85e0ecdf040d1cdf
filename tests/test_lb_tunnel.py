"""The router's WebSocket pieces without sockets: handshake detection, splicing, flow control."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cobrowse.config.loader import load_cluster
from lb.client import ClientConnection
from lb.http import Request
from lb.observe import route_template
from lb.router import Router
from lb.routing import Route, Rule
from lb.tunnel import HandshakeUpstream, Tunnel
from tests.helpers import write_cluster

HANDSHAKE = (
    b"GET /node-1/cobrowse/rest/live/users/1tok/channel HTTP/1.1\r\nHost: lb\r\n"
    b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@dataclass
class FakeTransport:
    """What the tunnel and the client connection use of an asyncio transport."""

    written: list[bytes] = field(default_factory=list)
    paused: bool = False
    closed: bool = False
    aborted: bool = False
    eof: bool = False
    buffered: int = 0
    protocol: object = None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol


class RecordingRouter(Router):
    """A router that records what it would dispatch instead of forwarding it."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.dispatched: list[Request] = []

    def dispatch(self, request: Request, client: ClientConnection) -> None:
        self.dispatched.append(request)


@pytest.fixture
def router(tmp_path) -> RecordingRouter:
    config = write_cluster(tmp_path, 2, sections={"logging": {"level": "WARNING"}})
    return RecordingRouter(load_cluster(config))


def client_of(router: Router) -> tuple[ClientConnection, FakeTransport]:
    client = ClientConnection(router)
    transport = FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    return client, transport


def test_a_websocket_handshake_is_dispatched_and_reading_stops(router):
    client, transport = client_of(router)
    client.data_received(HANDSHAKE + b"\x81\x00early")
    (request,) = router.dispatched
    assert request.upgrade == b"websocket"
    assert not request.keep_alive  # any answer but a 101 closes the connection
    assert transport.paused
    assert client.take_early() == b"\x81\x00early"
    sent = router.state.upstream_request(
        request, Route(router.state.backends["node-1"], Rule.URL, b"/x"), "127.0.0.1"
    )
    assert b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" in sent
    assert b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" in sent
    assert b"keep-alive" not in sent.lower()


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 0\r\n\r\n",
    ],
)
def test_other_upgrades_are_refused_with_400(router, head):
    client, transport = client_of(router)
    client.data_received(head)
    assert not router.dispatched
    assert transport.written[0].startswith(b"HTTP/1.1 400")
    assert transport.closed


def test_an_upgrade_field_without_connection_upgrade_is_a_plain_request(router):
    client, transport = client_of(router)
    client.data_received(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    (request,) = router.dispatched
    assert request.upgrade is None
    assert request.keep_alive
    assert not transport.paused


def open_tunnel(router: Router) -> tuple[Tunnel, FakeTransport, FakeTransport]:
    client, client_transport = client_of(router)
    client.data_received(HANDSHAKE)
    request = router.dispatched[-1]
    route = Route(router.state.backends["node-1"], Rule.URL, b"/x")
    tunnel = Tunnel(router.state, client, request, route)
    request.node, request.rule = "node-1", "url"
    handshake = HandshakeUpstream(tunnel)
    node_transport = FakeTransport()
    handshake.connection_made(node_transport)  # type: ignore[arg-type]
    handshake.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Request-ID: theirs\r\n\r\n"
        b"\x81\x02hi"
    )
    return tunnel, client_transport, node_transport


def test_a_101_is_forwarded_with_its_upgrade_fields_then_bytes_flow_both_ways(router):
    tunnel, client_transport, node_transport = open_tunnel(router)
    head = client_transport.written[-2]
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Upgrade: websocket\r\nConnection: Upgrade\r\n" in head
    assert b"theirs" not in head
    assert client_transport.written[-1] == b"\x81\x02hi"  # what came with the 101
    assert not client_transport.paused
    assert not router.connections  # handed over: no longer an HTTP connection
    assert router.state.tunnels.count("node-1") == 1
    assert client_transport.protocol is tunnel.from_client
    assert node_transport.protocol is tunnel.from_node
    assert tunnel.from_client is not None
    tunnel.from_client.data_received(b"\x81\x83abc")
    assert node_transport.written[-1] == b"\x81\x83abc"


def test_a_full_write_buffer_pauses_reading_the_other_side(router):
    tunnel, client_transport, node_transport = open_tunnel(router)
    assert tunnel.from_client is not None
    assert tunnel.from_node is not None
    tunnel.from_client.pause_writing()  # the client reads slowly
    assert node_transport.paused
    tunnel.from_client.resume_writing()
    assert not node_transport.paused
    tunnel.from_node.pause_writing()  # the node reads slowly
    assert client_transport.paused


def test_an_idle_tunnel_is_closed_and_counted(router):
    tunnel, client_transport, node_transport = open_tunnel(router)
    assert tunnel.from_client is not None
    tunnel.idle_check(now=tunnel.seen_at + 5, timeout=10)  # bytes moved since: reset
    tunnel.from_client.data_received(b"x")
    tunnel.idle_check(now=tunnel.seen_at + 1, timeout=10)
    assert not tunnel.closed
    tunnel.idle_check(now=tunnel.seen_at + 11, timeout=10)
    assert tunnel.closed
    assert client_transport.aborted
    assert node_transport.aborted
    assert router.state.tunnels.count("node-1") == 0
    assert router.state.tunnels.closed[("node-1", "idle")] == 1


def test_a_half_close_is_passed_on_and_both_end_the_tunnel(router):
    tunnel, client_transport, node_transport = open_tunnel(router)
    assert tunnel.from_client is not None
    assert tunnel.from_node is not None
    assert tunnel.from_node.eof_received() is True
    assert client_transport.eof
    assert not tunnel.closed
    tunnel.from_client.eof_received()
    assert tunnel.closed
    assert client_transport.closed
    assert node_transport.closed
    assert router.state.tunnels.closed[("node-1", "node")] == 1


def test_a_node_going_down_closes_its_tunnels_only(router):
    tunnel, _, _ = open_tunnel(router)
    backend = router.state.backends["node-2"]
    backend.up = False
    router._state_changed(backend)
    assert not tunnel.closed
    backend = router.state.backends["node-1"]
    backend.draining = True
    router._state_changed(backend)
    assert not tunnel.closed  # draining keeps them
    backend.up = False
    router._state_changed(backend)
    assert tunnel.closed
    assert router.state.tunnels.closed[("node-1", "node_down")] == 1


def test_a_refused_handshake_answer_is_forwarded_and_closes(router):
    client, client_transport = client_of(router)
    client.data_received(HANDSHAKE)
    request = router.dispatched[-1]
    tunnel = Tunnel(
        router.state, client, request, Route(router.state.backends["node-1"], Rule.URL, b"/x")
    )
    handshake = HandshakeUpstream(tunnel)
    node_transport = FakeTransport()
    handshake.connection_made(node_transport)  # type: ignore[arg-type]
    handshake.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
    answer = client_transport.written[-1]
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(b"\r\n\r\nnope")
    assert b"Connection: close\r\n" in answer
    assert client_transport.closed
    assert node_transport.closed
    assert router.state.tunnels.total() == 0


@pytest.mark.parametrize(
    ("target", "template"),
    [
        (
            b"/cobrowse/rest/live/users/1secret/channel",
            "/cobrowse/rest/live/users/{userToken}/channel",
        ),
        (
            b"/node-1/cobrowse/rest/live/users/1secret/channel?x=1",
            "/{node}/cobrowse/rest/live/users/{userToken}/channel",
        ),
    ],
)
def test_channel_routes_are_templates(target, template):
    assert route_template(target, b"/cobrowse", frozenset({b"node-1"})) == template
