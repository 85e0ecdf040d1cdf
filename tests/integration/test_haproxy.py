"""A real 3-node cluster behind the real HAProxy (2.6) with the generated haproxy.cfg.

One cluster serves the whole module: each test that drains or kills a node restores it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cobrowse.config.clusterfile import free_port
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import ClusterConfig
from cobrowse.ops.cluster import LocalCluster, Part, cluster_parts
from cobrowse.ops.lbconfig.haproxy_stats import server_states
from tests.helpers import children_of, wait_until, write_cluster
from tests.integration.lb_client import ORIGIN, create, create_on, get

CHECK = {"checkInterval": "0.5", "checkFall": "2", "checkRise": "2", "checkTimeout": "0.5"}


@dataclass
class HaproxyCluster:
    """Three nodes and HAProxy in the router's place."""

    config: ClusterConfig
    config_path: Path
    parts: dict[str, Part]
    socket: Path

    @property
    def api(self) -> str:
        return f"{self.parts['haproxy'].url}{self.config.context_path}/rest/live"

    def states(self) -> dict[str, str]:
        return {name: state.status for name, state in server_states(self.socket).items()}

    def wait_state(self, node: str, status: str, deadline: float) -> float:
        """Wait until HAProxy's stats show `status` for `node`; return the seconds it took."""
        start = time.monotonic()
        wait_until(lambda: self.states()[node] == status, deadline, f"HAProxy sees {node} {status}")
        return time.monotonic() - start

    def drain(self, node: str, undo: bool = False) -> None:
        subprocess.run(
            [sys.executable, "-m", "cobrowse.cli", "drain", node, "--config", str(self.config_path)]
            + (["--undo"] if undo else []),
            check=True,
            capture_output=True,
            timeout=30,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaproxyCluster]:
    directory = tmp_path_factory.mktemp("haproxy")
    config_path = write_cluster(
        directory,
        3,
        workers=1,
        sections={"lb": {**CHECK, "statsBind": f"127.0.0.1:{free_port()}"}},
    )
    config = load_cluster(config_path)
    parts = cluster_parts(config, config_path, directory / "logs", lb="haproxy")
    local = LocalCluster(parts)
    local.start(deadline=40)  # until HAProxy's own probes see every node up
    try:
        yield HaproxyCluster(
            config,
            config_path,
            {part.name: part for part in parts},
            directory / "logs" / "haproxy.sock",
        )
    finally:
        local.stop()


def test_haproxy_sees_every_node_up_through_its_own_probes(cluster):
    states = server_states(cluster.socket)
    assert sorted(states) == ["node-1", "node-2", "node-3"]
    assert all(state.up for state in states.values()), states
    page = requests.get(f"http://{cluster.config.router.stats_bind}/stats;csv", timeout=5)
    assert page.status_code == 200
    assert "all_nodes,node-1," in page.text
    assert requests.get(f"{cluster.parts['haproxy'].url}/health", timeout=5).status_code == 200


def test_cookie_stickiness_keeps_every_session_on_its_creating_node(cluster):
    creators = []
    for _ in range(50):
        session = create(cluster.api)
        creator = session["sessionServerName"]
        creators.append(creator)
        # No redirects followed: a 200 means the creating node answered directly.
        got = get(
            cluster.api,
            session["sessionToken"],
            cookies={"gcbSessionServer": creator},
            allow_redirects=False,
        )
        assert got.status_code == 200, got.text
        assert got.json()["sessionServerName"] == creator
    assert set(creators) == {"node-1", "node-2", "node-3"}


def test_a_token_without_cookie_is_redirected_to_its_node(cluster):
    sessions = [create(cluster.api) for _ in range(12)]
    redirected = 0
    for session in sessions:
        owner = session["sessionServerName"]
        got = get(cluster.api, session["sessionToken"])  # no cookie: HAProxy spreads it
        assert got.status_code == 200, got.text
        assert got.json()["sessionServerName"] == owner
        for hop in got.history:
            redirected += 1
            assert hop.status_code == 307
            assert hop.headers["Location"].startswith(cluster.config.node(owner).server_url)
        stopped = requests.get(
            f"{cluster.api}/users/{session['userToken']}/session/stop", timeout=10
        )
        assert stopped.status_code == 200, stopped.text
    assert redirected >= 4  # round-robin lands two in three on a node that does not own it


def test_url_prefix_beats_cookie_which_beats_header(cluster):
    session = create_on(cluster.api, "node-1")
    token = session["sessionToken"]
    server_url = get(cluster.api, token).json()["sessionServerUrl"]
    assert server_url == cluster.config.node("node-1").server_url

    by_prefix = requests.get(
        f"{server_url}/rest/live/sessions/{token}",
        headers=ORIGIN,
        cookies={"gcbSessionServer": "node-2"},
        allow_redirects=False,
        timeout=10,
    )
    assert by_prefix.status_code == 200, by_prefix.text
    by_cookie = get(
        cluster.api,
        token,
        cookies={"gcbSessionServer": "node-1"},
        headers={"gcbSessionServer": "node-2"},
        allow_redirects=False,
    )
    assert by_cookie.status_code == 200
    for cookies in ({}, {"gcbSessionServer": "garbage"}):
        # Browsers that block third-party cookies send the header back instead.
        for _ in range(3):
            by_header = get(
                cluster.api,
                token,
                cookies=cookies,
                headers={"gcbSessionServer": "node-1"},
                allow_redirects=False,
            )
            assert by_header.status_code == 200, by_header.text


def test_a_drained_node_takes_no_new_sessions_but_keeps_its_sticky_traffic(cluster):
    kept = create_on(cluster.api, "node-1")
    cluster.drain("node-1")
    try:
        cluster.wait_state("node-1", "NOLB", deadline=5)
        created = [create(cluster.api)["sessionServerName"] for _ in range(20)]
        assert "node-1" not in created
        # Not even a create that carries node-1's cookie or header.
        assert create(cluster.api, cookies={"gcbSessionServer": "node-1"})["sessionServerName"] != (
            "node-1"
        )
        assert create(cluster.api, headers={"gcbSessionServer": "node-1"})["sessionServerName"] != (
            "node-1"
        )
        for _ in range(20):
            got = get(
                cluster.api,
                kept["sessionToken"],
                cookies={"gcbSessionServer": "node-1"},
                allow_redirects=False,
            )
            assert got.status_code == 200, got.text
            assert got.json()["sessionServerName"] == "node-1"
        by_prefix = get(cluster.api, kept["sessionToken"])  # redirected to /node-1/...
        assert by_prefix.status_code == 200
    finally:
        cluster.drain("node-1", undo=True)
        cluster.wait_state("node-1", "UP", deadline=5)
    assert "node-1" in {create(cluster.api)["sessionServerName"] for _ in range(6)}


def test_a_killed_node_goes_down_within_inter_times_fall_and_comes_back(cluster):
    on_victim = [create_on(cluster.api, "node-2") for _ in range(3)]
    victim = cluster.parts["node-2"]
    victim.signal_group(signal.SIGKILL)
    victim.process.wait(5)
    killed_at = time.monotonic()
    try:
        # Creates keep succeeding while HAProxy finds out (a refused connection is redispatched).
        while cluster.states()["node-2"] != "DOWN":
            assert create(cluster.api)["sessionServerName"] != "node-2"
            assert time.monotonic() - killed_at < 5, "node-2 never marked DOWN"
        took = time.monotonic() - killed_at
        lb = cluster.config.router
        # inter x fall, plus the polling and scheduling of a busy 2-core machine.
        assert took <= lb.check_interval * lb.check_fall + 0.5, f"DOWN after {took:.2f}s"

        for _ in range(10):
            assert create(cluster.api)["sessionServerName"] != "node-2"
        redispatched = requests.post(
            f"{cluster.api}/sessions", cookies={"gcbSessionServer": "node-2"}, timeout=10
        )
        assert redispatched.status_code == 200
        assert redispatched.cookies["gcbSessionServer"] in ("node-1", "node-3")
        # A session of the dead node: a clear 503 naming it (through the redirect to its prefix).
        for cookies in ({"gcbSessionServer": "node-2"}, {}):
            gone = get(cluster.api, on_victim[0]["sessionToken"], cookies=cookies)
            assert gone.status_code == 503, gone.text
            assert gone.json()["node"] == "node-2"
            assert int(gone.headers["Retry-After"]) > 0
    finally:
        victim.start()
        cluster.wait_state("node-2", "UP", deadline=20)
    for session in on_victim:
        back = get(
            cluster.api,
            session["sessionToken"],
            cookies={"gcbSessionServer": "node-2"},
            allow_redirects=False,
        )
        assert back.status_code == 200, back.text
        assert back.json()["sessionServerName"] == "node-2"


def test_the_cluster_command_runs_haproxy_in_the_routers_place(tmp_path):
    # Every port from free_port(): fixed offsets could meet a client's ephemeral port.
    config_path = write_cluster(
        tmp_path, 2, workers=1, sections={"lb": {"statsBind": f"127.0.0.1:{free_port()}"}}
    )
    lb_url = f"http://{load_cluster(config_path).router.bind}"
    output_path = tmp_path / "output.txt"
    with output_path.open("wb") as output_file:
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cobrowse.cli",
                "cluster",
                "--lb",
                "haproxy",
                "--config",
                str(config_path),
                "--data-dir",
                str(tmp_path),
                "--no-demo",
            ],
            stdout=output_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "cluster URL" in output_path.read_text() or command.poll() is not None,
            40,
            "cluster table printed",
        )
        assert command.poll() is None, output_path.read_text()
        states = server_states(tmp_path / "logs" / "haproxy.sock")
        assert sorted(states) == ["node-1", "node-2"]
        assert all(state.up for state in states.values())
        created = requests.post(f"{lb_url}/cobrowse/rest/live/sessions", timeout=10)
        assert created.status_code == 200
        started = children_of(command.pid)
        assert len(started) == 3  # two nodes and HAProxy
        descendants = started + [pid for parent in started for pid in children_of(parent)]
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait(30)
    output = output_path.read_text()
    assert command.returncode == 0, output
    assert "haproxy" in output
    time.sleep(0.2)
    alive = [pid for pid in descendants if os.path.exists(f"/proc/{pid}")]
    assert alive == [], f"left behind: {alive}"


def test_a_request_id_is_followed_from_haproxy_to_the_node(cluster):
    created = requests.post(
        f"{cluster.api}/sessions", headers={"X-Request-ID": "via-haproxy-7"}, timeout=5
    )
    assert created.headers["X-Request-ID"] == "via-haproxy-7"
    node_log = cluster.parts[created.json()["sessionServerName"]].log_path
    haproxy_log = cluster.parts["haproxy"].log_path
    wait_until(lambda: "via-haproxy-7" in node_log.read_text(), 5, "the node logged the ID")
    wait_until(
        lambda: "request_id=via-haproxy-7" in haproxy_log.read_text(), 5, "HAProxy logged it"
    )
    replaced = requests.get(
        f"{cluster.parts['haproxy'].url}/cobrowse/health",
        headers={"X-Request-ID": "bad id!"},
        timeout=5,
    )
    assert replaced.headers["X-Request-ID"] != "bad id!"
    assert replaced.headers["X-Request-ID"].replace("-", "").isalnum()


def test_haproxy_serves_its_prometheus_metrics_on_the_stats_frontend(cluster):
    stats = cluster.config.router.stats_bind
    text = requests.get(f"http://{stats}/metrics", timeout=5).text
    assert "haproxy_server_status" in text
    for node in ("node-1", "node-2", "node-3"):
        assert f'server="{node}"' in text
