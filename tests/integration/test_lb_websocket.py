"""WebSockets through the real HAProxy (2.6) and nginx (1.22) with their generated configurations.

One WebSocket echo server (tests/ws_echo_upstream.py) is the only node behind both. Timeouts
are short: a request may take serverTimeout = 1 s, the nodes would ping every second, and a
tunnel may stay silent for tunnelTimeout = 3 s. A tunnel idle for 2 s must stay open: the load
balancers apply tunnelTimeout to tunnels, not the timeouts of plain requests.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from cobrowse.config.clusterfile import GeneratedNode, free_port
from cobrowse.config.loader import load_cluster
from cobrowse.ops.cluster import LocalCluster, Part, haproxy_part
from cobrowse.ops.lbconfig.haproxy_stats import server_states
from cobrowse.ops.lbconfig.nginx import render_nginx
from tests.helpers import wait_until, write_cluster
from tests.ws_echo_upstream import WsEchoUpstream

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SECTIONS = {
    "lb": {
        "serverTimeout": "1",
        "clientTimeout": "1",
        "tunnelTimeout": "3",
        "checkInterval": "0.5",
        "checkFall": "2",
        "checkRise": "1",
        "checkTimeout": "0.5",
    },
    "realtime": {"pingInterval": "1", "pingTimeout": "1"},
}
IDLE_S = 2.0  # longer than pingInterval and serverTimeout, shorter than tunnelTimeout
CHANNEL = "/cobrowse/rest/live/users/1LbToken/channel"


@dataclass
class Balancer:
    name: str
    port: int
    cluster: LocalCluster
    socket: Path | None = None  # HAProxy's stats socket

    def ws(self, path: str) -> ClientConnection:
        return connect(
            f"ws://127.0.0.1:{self.port}{path}",
            open_timeout=5,
            close_timeout=2,
            ping_interval=None,  # the client sends nothing by itself: idle means idle
        )


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WsEchoUpstream]:
    upstream = WsEchoUpstream(free_port(), tmp_path_factory.mktemp("echo") / "echo.log")
    try:
        yield upstream
    finally:
        upstream.stop()


def _config(directory: Path, echo: WsEchoUpstream, **lb: str) -> tuple[Path, int]:
    port = free_port()
    sections = {**SECTIONS, "lb": {**SECTIONS["lb"], **lb}}
    path = write_cluster(
        directory, [GeneratedNode("echo", echo.port)], router_port=port, sections=sections
    )
    return path, port


@pytest.fixture(scope="module")
def haproxy(echo, tmp_path_factory) -> Iterator[Balancer]:
    directory = tmp_path_factory.mktemp("haproxy-ws")
    path, port = _config(directory, echo, statsBind=f"127.0.0.1:{free_port()}")
    part = haproxy_part(load_cluster(path), f"http://127.0.0.1:{port}", directory / "logs")
    cluster = LocalCluster([part])
    cluster.start(deadline=20)  # until HAProxy's own probes find the echo node up
    try:
        yield Balancer("haproxy", port, cluster, directory / "logs" / "haproxy.sock")
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def nginx(echo, tmp_path_factory) -> Iterator[Balancer]:
    directory = tmp_path_factory.mktemp("nginx-ws")
    path, port = _config(directory, echo)
    run_dir = directory / "nginx"
    run_dir.mkdir()
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx(load_cluster(path), command="tests", run_dir=str(run_dir)))
    url = f"http://127.0.0.1:{port}"
    part = Part(
        "nginx",
        "nginx",
        url,
        f"{url}/echo/cobrowse/health",
        [NGINX, "-p", str(run_dir), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        directory / "logs" / "nginx.log",
    )
    cluster = LocalCluster([part])
    cluster.start(deadline=20)
    try:
        yield Balancer("nginx", port, cluster)
    finally:
        cluster.stop()


def echoes(ws: ClientConnection, message: str | bytes) -> bool:
    ws.send(message)
    return ws.recv(timeout=5) == message


def check_echo_and_idle(balancer: Balancer, path: str) -> None:
    with balancer.ws(path) as ws:
        assert echoes(ws, "hello")
        assert echoes(ws, b"\x00\x01binary")
        ws.send("__request__")
        seen = json.loads(ws.recv(timeout=5))
        assert seen["path"] == CHANNEL  # a node prefix is removed, as for any request
        time.sleep(IDLE_S)
        assert echoes(ws, "still there"), f"{balancer.name} closed an idle tunnel too early"


def test_haproxy_carries_a_websocket_under_the_node_prefix(haproxy):
    check_echo_and_idle(haproxy, f"/echo{CHANNEL}")


def test_haproxy_closes_the_tunnels_of_a_node_marked_down(haproxy, echo):
    assert haproxy.socket is not None
    socket = haproxy.socket
    with haproxy.ws(f"/echo{CHANNEL}") as ws:
        assert echoes(ws, "before")
        echo.set_health(503)
        try:
            start = time.monotonic()
            with pytest.raises(ConnectionClosed):  # on-marked-down shutdown-sessions
                ws.recv(timeout=5)
            assert time.monotonic() - start <= 0.5 * 2 + 1.5
        finally:
            echo.set_health(200)
            wait_until(lambda: server_states(socket)["echo"].up, 10, "HAProxy sees echo up")


def test_nginx_carries_a_websocket_under_the_node_prefix_and_without(nginx):
    check_echo_and_idle(nginx, f"/echo{CHANNEL}")
    check_echo_and_idle(nginx, CHANNEL)  # rules 2 to 4: spread to the only node
