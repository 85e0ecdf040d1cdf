"""WebSockets through the real router, to a real WebSocket echo server (tests/ws_echo_upstream.py).

The router carries the handshake to the node, forwards its 101, then splices bytes both ways:
echo through the node prefix and through the token route, a 1 MiB message each way, idle
tunnels closed after tunnelTimeout, tunnels closed when their node goes down but kept while it
drains, closed at the drain deadline on SIGTERM, kept across a reload, and counted.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from cobrowse.config.clusterfile import GeneratedNode, free_port
from lb.server import DRAIN_DEADLINE_S
from tests.helpers import COBROWSE, Process, wait_until, wait_until_responds, write_cluster
from tests.integration.test_node_metrics import sample
from tests.ws_echo_upstream import WsEchoUpstream

CHECK_INTERVAL, CHECK_FALL = 0.2, 2
TUNNEL_TIMEOUT = 1.0
TOKEN = "1TunnelTestToken"  # epoch digit 1: the one-node ring maps it to `echo`
CHANNEL = f"/cobrowse/rest/live/users/{TOKEN}/channel"


@dataclass
class TunnelRouter:
    """A router whose only node is the WebSocket echo server."""

    echo: WsEchoUpstream
    router: Process
    config: Path
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str = f"/echo{CHANNEL}", **options: object) -> ClientConnection:
        options = {"open_timeout": 5, "close_timeout": 2, "ping_interval": None, **options}
        return connect(f"ws://127.0.0.1:{self.port}{path}", **options)  # type: ignore[arg-type]

    def node(self) -> dict:
        (node,) = requests.get(f"{self.base}/lb/status", timeout=5).json()["nodes"]
        return node

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(f"{self.base}/lb/metrics", timeout=5).text
        return sample(text, name, **labels)

    def wait_state(self, state: str, deadline: float = 5.0) -> None:
        wait_until(lambda: self.node()["state"] == state, deadline, f"router sees echo {state}")

    def log_entries(self) -> list[dict]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"time":')]


def start_router(directory: Path, echo: WsEchoUpstream, **lb: str) -> TunnelRouter:
    port = free_port()
    config = write_cluster(
        directory,
        [GeneratedNode("echo", echo.port)],
        router_port=port,
        sections={
            "lb": {
                "tunnelTimeout": str(TUNNEL_TIMEOUT),
                "checkInterval": str(CHECK_INTERVAL),
                "checkFall": str(CHECK_FALL),
                "checkRise": "1",
                "checkTimeout": "0.5",
                **lb,
            }
        },
    )
    log = directory / "router.log"
    router = Process([COBROWSE, "router", "--config", str(config)], log)
    try:
        wait_until_responds(f"http://127.0.0.1:{port}/health", deadline=15)
    except TimeoutError:
        router.stop()
        raise
    return TunnelRouter(echo, router, config, port, log)


@pytest.fixture(scope="module")
def tunnels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TunnelRouter]:
    directory = tmp_path_factory.mktemp("tunnels")
    echo = WsEchoUpstream(free_port(), directory / "echo.log")
    try:
        running = start_router(directory, echo)
        try:
            yield running
        finally:
            running.router.stop()
    finally:
        echo.stop()


def echoes(ws: ClientConnection, message: str | bytes = "ping?") -> bool:
    ws.send(message)
    return ws.recv(timeout=5) == message


def closed_within(ws: ClientConnection, seconds: float) -> float:
    """Wait until the router closes `ws`; return how long it took, fail after `seconds`."""
    start = time.monotonic()
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=seconds)
    return time.monotonic() - start


def test_echo_through_the_node_prefix_and_the_token_route(tunnels):
    with tunnels.ws(f"/echo{CHANNEL}?x=1") as by_prefix, tunnels.ws(CHANNEL) as by_token:
        for ws in (by_prefix, by_token):
            assert echoes(ws, "hello")
            assert echoes(ws, b"\x00\xffbinary")
            assert ws.response is not None
            assert ws.response.headers["X-Request-ID"]
        by_prefix.send("__request__")
        seen = json.loads(by_prefix.recv(timeout=5))
        assert seen["path"] == CHANNEL  # the prefix is removed, as for any request
        assert seen["query"] == "x=1"
        headers = {name: value for name, value in seen["headers"]}
        assert headers["upgrade"].lower() == "websocket"
        assert headers["connection"].lower() == "upgrade"
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-request-id"] == by_prefix.response.headers["X-Request-ID"]
    assert tunnels.metric("cobrowse_lb_requests_total", node="echo", rule="url") >= 1
    assert tunnels.metric("cobrowse_lb_requests_total", node="echo", rule="token") >= 1

    def logged() -> list[dict]:
        entries = tunnels.log_entries()
        closes = [e for e in entries if e.get("event") == "tunnel_closed"]
        return entries if len(closes) >= 2 else []

    entries = wait_until(logged, 5, "the tunnels' close lines")
    assert TOKEN not in tunnels.log.read_text()  # routes are templates, never tokens
    handshakes = [e for e in entries if e.get("status") == 101]
    assert {e["route"] for e in handshakes} >= {
        "/{node}/cobrowse/rest/live/users/{userToken}/channel",
        "/cobrowse/rest/live/users/{userToken}/channel",
    }
    close = next(e for e in entries if e.get("event") == "tunnel_closed")
    assert close["bytes_from_client"] > 0
    assert close["bytes_from_node"] > 0
    assert close["reason"] in ("client", "node")
    assert close["duration_ms"] > 0


def test_a_mebibyte_each_way(tunnels):
    big = bytes(range(256)) * 4096
    with tunnels.ws(max_size=2**21) as ws:
        assert echoes(ws, big)
        text = "é" * (2**19)  # 1 MiB of UTF-8
        assert echoes(ws, text)


def test_counts_go_up_and_back_down_in_status_and_metrics(tunnels):
    opened = tunnels.metric("cobrowse_lb_tunnels_opened_total", node="echo")
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(tunnels.ws()) for _ in range(3)]
        assert all(echoes(ws) for ws in sockets)
        assert tunnels.node()["tunnels"] == 3
        assert tunnels.metric("cobrowse_lb_tunnels", node="echo") == 3
        assert tunnels.metric("cobrowse_lb_tunnels_opened_total", node="echo") == opened + 3
        page = requests.get(f"{tunnels.base}/lb/status", headers={"Accept": "text/html"}, timeout=5)
        assert "<th>tunnels</th>" in page.text
    wait_until(lambda: tunnels.node()["tunnels"] == 0, 5, "tunnels back to 0")
    assert tunnels.metric("cobrowse_lb_tunnels", node="echo") == 0


def test_an_idle_tunnel_is_closed_while_a_pinged_one_stays_open(tunnels):
    with tunnels.ws() as idle, tunnels.ws() as pinged:
        assert echoes(idle)
        assert echoes(pinged)
        before = tunnels.metric("cobrowse_lb_tunnels_closed_total", node="echo", reason="idle")
        start = time.monotonic()
        while time.monotonic() - start < TUNNEL_TIMEOUT * 2.5:
            assert pinged.ping().wait(2), "no pong through the tunnel"
            time.sleep(TUNNEL_TIMEOUT / 4)
        assert echoes(pinged)
        closed_within(idle, 1)  # closed around TUNNEL_TIMEOUT after its last byte
        after = tunnels.metric("cobrowse_lb_tunnels_closed_total", node="echo", reason="idle")
        assert after == before + 1


def test_non_101_answers_and_other_upgrades(tunnels):
    with pytest.raises(InvalidStatus) as refused:
        tunnels.ws("/echo/cobrowse/refuse/channel")
    assert refused.value.response.status_code == 403  # the node's answer, forwarded
    for request in (
        b"GET /echo/x HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"POST /echo/x HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 0\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", tunnels.port), timeout=5) as raw:
            raw.sendall(request)
            assert raw.recv(4096).startswith(b"HTTP/1.1 400")
    assert tunnels.node()["tunnels"] == 0


def test_a_draining_node_keeps_its_tunnels(tunnels):
    with tunnels.ws() as ws:
        assert echoes(ws)
        tunnels.echo.set_health(404)
        try:
            tunnels.wait_state("draining")
            time.sleep(CHECK_INTERVAL * 3)
            assert echoes(ws)
            with tunnels.ws() as sticky:  # its URL prefix still reaches it
                assert echoes(sticky)
        finally:
            tunnels.echo.set_health(200)
            tunnels.wait_state("up")


def test_a_node_marked_down_loses_its_tunnels_and_handshakes_get_503(tunnels):
    with tunnels.ws() as ws:
        assert echoes(ws)
        marked_down = time.monotonic()
        tunnels.echo.set_health(503)
        try:
            closed_within(ws, CHECK_INTERVAL * CHECK_FALL + 3)
            took = time.monotonic() - marked_down
            assert took <= CHECK_INTERVAL * CHECK_FALL + 1, took
            for path in (f"/echo{CHANNEL}", CHANNEL):
                with pytest.raises(InvalidStatus) as refused:
                    tunnels.ws(path)
                answer = refused.value.response
                assert answer.status_code == 503
                assert json.loads(answer.body)["node"] == "echo"
            reason = {"node": "echo", "reason": "node_down"}
            assert tunnels.metric("cobrowse_lb_tunnels_closed_total", **reason) >= 1
        finally:
            tunnels.echo.set_health(200)
            tunnels.wait_state("up")
    with tunnels.ws() as again:
        assert echoes(again)


def test_a_reload_keeps_the_tunnels_of_nodes_that_stay(tunnels):
    with tunnels.ws() as ws:
        assert echoes(ws)
        text = tunnels.config.read_text()
        # A node added in a new ring epoch: allowed, and it must not disturb echo's tunnels.
        added = f"\n[node:later]\nbind = 127.0.0.1:{free_port()}\nringEpoch = 1\n"
        tunnels.config.write_text(text + added)
        try:
            tunnels.router.signal(signal.SIGHUP)
            wait_until(
                lambda: (
                    len(requests.get(f"{tunnels.base}/lb/status", timeout=5).json()["nodes"]) == 2
                ),
                5,
                "the reload",
            )
            assert echoes(ws)
        finally:
            tunnels.config.write_text(text)
            tunnels.router.signal(signal.SIGHUP)
            wait_until(lambda: tunnels.node()["name"] == "echo", 5, "the reload back")
        assert echoes(ws)


def test_a_handshake_to_a_node_that_refuses_connections_gets_503(tmp_path):
    # No echo server on the node's port, and checks so slow that the node is still "up": the
    # router learns it from the refused connection itself.
    dead = GeneratedNode("echo", free_port())
    port = free_port()
    config = write_cluster(
        tmp_path, [dead], router_port=port, sections={"lb": {"checkInterval": "60"}}
    )
    router = Process([COBROWSE, "router", "--config", str(config)], tmp_path / "router.log")
    try:
        wait_until_responds(f"http://127.0.0.1:{port}/health", deadline=15)
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}/echo{CHANNEL}", open_timeout=5)
        assert refused.value.response.status_code == 503
        assert json.loads(refused.value.response.body)["node"] == "echo"
        metrics = requests.get(f"http://127.0.0.1:{port}/lb/metrics", timeout=5).text
        assert sample(metrics, "cobrowse_lb_upstream_errors_total", kind="connect") == 1
    finally:
        router.stop()


def test_sigterm_closes_tunnels_at_the_drain_deadline(tmp_path):
    echo = WsEchoUpstream(free_port(), tmp_path / "echo.log")
    try:
        running = start_router(tmp_path, echo, tunnelTimeout="60")
        try:
            with running.ws() as ws:
                assert echoes(ws)
                stopped = time.monotonic()
                running.router.signal(signal.SIGTERM)
                wait_until(lambda: not _accepts(running.port), 3, "the router stops accepting")
                assert echoes(ws)  # an open tunnel outlives the listener
                closed_within(ws, DRAIN_DEADLINE_S + 3)
                took = time.monotonic() - stopped
                assert DRAIN_DEADLINE_S - 0.5 <= took <= DRAIN_DEADLINE_S + 2, took
            assert running.router.popen.wait(5) == 0
            assert any(e.get("reason") == "stopping" for e in running.log_entries())
        finally:
            running.router.stop()
    finally:
        echo.stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
