"""A real 3-node cluster behind real open-source nginx (1.22) with the generated nginx.conf.

One cluster serves the whole module: the tests that drain or kill a node restore it.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import ClusterConfig
from cobrowse.ops.cluster import LocalCluster, Part, cluster_parts, health_status
from cobrowse.ops.lbconfig.nginx import render_nginx
from tests.helpers import children_of, wait_until, wait_until_responds, write_cluster
from tests.integration.lb_client import ORIGIN, create, create_on, get

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# fail_timeout = checkInterval x checkRise = 1 s: a dead node is left out for a second at a time.
PASSIVE = {"checkInterval": "0.5", "checkFall": "1", "checkRise": "2"}


@dataclass
class NginxCluster:
    """Three nodes and nginx in the router's place."""

    config: ClusterConfig
    parts: dict[str, Part]
    run_dir: Path

    @property
    def api(self) -> str:
        return f"{self.parts['nginx'].url}{self.config.context_path}/rest/live"

    def reconfigure(self, drained: frozenset[str] = frozenset()) -> None:
        """Write nginx.conf again and reload nginx; return once only new workers are left."""
        write_nginx_conf(self.config, self.run_dir, drained)
        master = self.parts["nginx"].pid
        old_workers = set(children_of(master))
        os.kill(master, signal.SIGHUP)
        # Until the old workers have exited, one of them may still take a request under the
        # old configuration.
        wait_until(
            lambda: bool(children_of(master)) and not old_workers & set(children_of(master)),
            15,
            "nginx's old workers replaced after the reload",
        )


def write_nginx_conf(config: ClusterConfig, run_dir: Path, drained: frozenset[str]) -> Path:
    path = run_dir / "nginx.conf"
    path.write_text(render_nginx(config, command="tests", run_dir=str(run_dir), drained=drained))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxCluster]:
    directory = tmp_path_factory.mktemp("nginx")
    config_path = write_cluster(directory, 3, workers=1, sections={"lb": PASSIVE})
    config = load_cluster(config_path)
    nodes = [
        part
        for part in cluster_parts(config, config_path, directory / "logs")
        if part.kind == "node"
    ]
    run_dir = directory / "nginx"
    run_dir.mkdir()
    conf = write_nginx_conf(config, run_dir, frozenset())
    host, _, port = config.router.bind.rpartition(":")
    url = f"http://{host}:{port}"
    prefixes = [f"{url}/{node.name}{config.context_path}/health" for node in config.nodes]
    nginx = Part(
        "nginx",
        "nginx",
        url,
        prefixes[0],
        [NGINX, "-p", str(run_dir), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        directory / "logs" / "nginx.log",
        ready=lambda: all(health_status(prefix) == 200 for prefix in prefixes),
    )
    local = LocalCluster([*nodes, nginx])
    local.start(deadline=40)
    try:
        yield NginxCluster(config, {part.name: part for part in local.parts}, run_dir)
    finally:
        local.stop()


def test_cookie_stickiness_keeps_every_session_on_its_creating_node(cluster):
    creators = []
    for _ in range(30):
        session = create(cluster.api)
        creator = session["sessionServerName"]
        creators.append(creator)
        got = get(
            cluster.api,
            session["sessionToken"],
            cookies={"gcbSessionServer": creator},
            allow_redirects=False,  # a 200 means the creating node answered directly
        )
        assert got.status_code == 200, got.text
        assert got.json()["sessionServerName"] == creator
    assert set(creators) == {"node-1", "node-2", "node-3"}


def test_url_prefixes_header_and_cookie_less_tokens(cluster):
    for node in ("node-1", "node-2", "node-3"):
        session = create_on(cluster.api, node)
        token = session["sessionToken"]
        server_url = cluster.config.node(node).server_url
        other = "node-3" if node != "node-3" else "node-1"
        by_prefix = requests.get(
            f"{server_url}/rest/live/sessions/{token}",
            headers=ORIGIN,
            cookies={"gcbSessionServer": other},  # the prefix wins
            allow_redirects=False,
            timeout=10,
        )
        assert by_prefix.status_code == 200, by_prefix.text
        assert by_prefix.json()["sessionServerUrl"] == server_url
        by_header = get(cluster.api, token, {"gcbSessionServer": node}, allow_redirects=False)
        assert by_header.status_code == 200, by_header.text
        by_cookie = get(
            cluster.api,
            token,
            {"gcbSessionServer": other},
            cookies={"gcbSessionServer": node},
            allow_redirects=False,
        )
        assert by_cookie.status_code == 200, by_cookie.text
        # No cookie, no header: nginx spreads it, and a node that does not host the token
        # redirects it to the owner's prefix.
        answers = [get(cluster.api, token) for _ in range(3)]
        assert all(answer.status_code == 200 for answer in answers)
        assert any(answer.history for answer in answers)


def test_a_node_drained_in_the_config_keeps_only_its_sticky_traffic(cluster):
    kept = create_on(cluster.api, "node-1")
    cluster.reconfigure(drained=frozenset({"node-1"}))
    try:
        # The reload is done once new workers answer: no create lands on node-1 any more.
        wait_until(
            lambda: all(create(cluster.api)["sessionServerName"] != "node-1" for _ in range(6)),
            10,
            "nginx reloaded with node-1 drained",
        )
        assert "node-1" not in {create(cluster.api)["sessionServerName"] for _ in range(20)}
        with_cookie = create(cluster.api, cookies={"gcbSessionServer": "node-1"})
        assert with_cookie["sessionServerName"] != "node-1"
        for _ in range(20):
            got = get(
                cluster.api,
                kept["sessionToken"],
                cookies={"gcbSessionServer": "node-1"},
                allow_redirects=False,
            )
            assert got.status_code == 200, got.text
            assert got.json()["sessionServerName"] == "node-1"
    finally:
        cluster.reconfigure()
    wait_until(
        lambda: "node-1" in {create(cluster.api)["sessionServerName"] for _ in range(6)},
        10,
        "node-1 takes new sessions again",
    )


def test_a_dead_node_is_passed_over_and_named(cluster):
    on_victim = create_on(cluster.api, "node-3")
    victim = cluster.parts["node-3"]
    victim.signal_group(signal.SIGKILL)
    victim.process.wait(5)
    try:
        # Passive health: the failed attempts move on to another node (proxy_next_upstream).
        for _ in range(15):
            assert create(cluster.api)["sessionServerName"] != "node-3"
        redispatched = create(cluster.api, cookies={"gcbSessionServer": "node-3"})
        assert redispatched["sessionServerName"] != "node-3"
        for cookies in ({"gcbSessionServer": "node-3"}, {}):
            gone = get(cluster.api, on_victim["sessionToken"], cookies=cookies)
            assert gone.status_code == 503, gone.text
            assert gone.json()["node"] == "node-3"
            assert int(gone.headers["Retry-After"]) > 0
    finally:
        victim.start()
        node = cluster.config.node("node-3")
        wait_until_responds(f"{node.base_url}{cluster.config.context_path}/health", 20)
    # nginx tries the node again after fail_timeout, with real traffic.
    wait_until(
        lambda: (
            get(
                cluster.api,
                on_victim["sessionToken"],
                cookies={"gcbSessionServer": "node-3"},
                allow_redirects=False,
            ).status_code
            == 200
        ),
        10,
        "node-3 answers through nginx again",
    )
