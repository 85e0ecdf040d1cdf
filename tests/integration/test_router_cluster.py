"""A real 3-node cluster behind the real router: stickiness, failure, recovery, ring change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from cobrowse.config.clusterfile import free_port
from tests.helpers import (
    RunningCluster,
    children_of,
    free_port_block,
    start_cluster_command,
    wait_until,
    wait_until_responds,
)

ORIGIN = {"Origin": "http://localhost:8080"}


def create(api: str) -> dict:
    response = requests.post(f"{api}/sessions", timeout=10)  # no cookie jar: a fresh client
    assert response.status_code == 200, response.text
    assert response.cookies["gcbSessionServer"] == response.json()["sessionServerName"]
    return response.json()


def test_agents_without_cookie_reach_the_creating_node(tmp_path):
    with RunningCluster(tmp_path) as cluster:
        sessions = [create(cluster.api) for _ in range(100)]
        assert {s["sessionServerName"] for s in sessions} == {"node-1", "node-2", "node-3"}
        for session in sessions:
            got = requests.get(
                f"{cluster.api}/sessions/{session['sessionToken']}", headers=ORIGIN, timeout=5
            )
            assert got.status_code == 200
            assert got.json()["sessionServerName"] == session["sessionServerName"]
        for session in sessions:
            stopped = requests.get(
                f"{cluster.api}/users/{session['userToken']}/session/stop", timeout=5
            )
            assert stopped.status_code == 200
            assert stopped.json()["deactivationTime"] >= stopped.json()["activationTime"]
        routed = cluster.status()["nodes"]
        assert sum(node["requests"] for node in routed) == 300


def test_a_killed_node_goes_down_fast_and_comes_back_with_its_sessions(tmp_path):
    with RunningCluster(tmp_path) as cluster:
        sessions = [create(cluster.api) for _ in range(30)]
        victim = cluster.parts["node-2"]
        on_victim = [s for s in sessions if s["sessionServerName"] == "node-2"]
        assert on_victim

        victim.signal_group(signal.SIGKILL)
        victim.process.wait(5)
        took = cluster.wait_states({"node-2": "down"}, deadline=5)
        assert took <= 3.0, f"marked down after {took:.1f}s"

        for _ in range(30):  # after detection: zero failed creates, none on the dead node
            assert create(cluster.api)["sessionServerName"] != "node-2"
        for session in on_victim:
            gone = requests.get(
                f"{cluster.api}/sessions/{session['sessionToken']}", headers=ORIGIN, timeout=5
            )
            assert gone.status_code == 503
            assert gone.json()["node"] == "node-2"
            assert int(gone.headers["Retry-After"]) > 0

        victim.start()
        cluster.wait_states({"node-2": "up"}, deadline=20)
        for session in on_victim:
            back = requests.get(
                f"{cluster.api}/sessions/{session['sessionToken']}", headers=ORIGIN, timeout=5
            )
            assert back.status_code == 200
            assert back.json()["sessionServerName"] == "node-2"


def test_adding_a_node_strands_no_session(tmp_path):
    with RunningCluster(tmp_path) as cluster:
        before = [create(cluster.api) for _ in range(60)]
        node_port = free_port()
        with cluster.config_path.open("a") as config:
            config.write(
                f"\n[node:node-4]\nbind = 127.0.0.1:{node_port}\nringEpoch = 1\n"
                f"dataDir = {tmp_path / 'data' / 'node-4'}\n"
                f"serverUrl = {cluster.router_url}/node-4/cobrowse\n"
            )
        node4 = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cobrowse.cli",
                "node",
                "--config",
                str(cluster.config_path),
                "--name",
                "node-4",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until_responds(f"http://127.0.0.1:{node_port}/cobrowse/health", deadline=20)
            cluster.parts["router"].signal_group(signal.SIGHUP)
            cluster.wait_states({"node-4": "up"}, deadline=10)

            for session in before:
                got = requests.get(
                    f"{cluster.api}/sessions/{session['sessionToken']}", headers=ORIGIN, timeout=5
                )
                assert got.json()["sessionServerName"] == session["sessionServerName"]
                stop = requests.get(
                    f"{cluster.api}/users/{session['userToken']}/session/stop", timeout=5
                )
                assert stop.status_code == 200
            after = [create(cluster.api) for _ in range(40)]
            assert any(s["sessionServerName"] == "node-4" for s in after)
            new_token = next(s for s in after if s["sessionServerName"] == "node-4")
            assert new_token["sessionToken"].startswith("2")
            got = requests.get(
                f"{cluster.api}/sessions/{new_token['sessionToken']}", headers=ORIGIN, timeout=5
            )
            assert got.json()["sessionServerName"] == "node-4"
        finally:
            os.killpg(node4.pid, signal.SIGTERM)
            node4.wait(20)


def test_a_reload_that_would_remap_tokens_is_refused(tmp_path):
    with RunningCluster(tmp_path) as cluster:
        with cluster.config_path.open("a") as config:  # ringEpoch 0: would move old tokens
            config.write(f"\n[node:node-9]\nbind = 127.0.0.1:{free_port()}\n")
        cluster.parts["router"].signal_group(signal.SIGHUP)
        wait_until(
            lambda: "reload refused" in (tmp_path / "logs" / "router.log").read_text(),
            5,
            "refusal logged",
        )
        assert "node-9" not in cluster.states()


def test_the_cluster_command_stops_every_process_it_started(tmp_path):
    port = free_port_block(3)  # the router, then the nodes on the next ports
    demo_port = free_port()
    output_path = tmp_path / "output.txt"
    command = start_cluster_command(
        output_path,
        *("--nodes", "2", "--port", str(port), "--data-dir", str(tmp_path)),
        *("--demo-port", str(demo_port)),
    )
    try:
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        # The demo site, with the script tag pointing at the cluster, and the agent console.
        demo = requests.get(f"http://127.0.0.1:{demo_port}/", timeout=5)
        assert f'data-cluster-url="http://127.0.0.1:{port}/cobrowse"' in demo.text
        console = requests.get(f"http://127.0.0.1:{port}/cobrowse/agent/", timeout=5)
        assert console.status_code == 200
        started = children_of(command.pid)
        assert len(started) == 4  # two nodes, the router and the demo site
        descendants = started + [pid for parent in started for pid in children_of(parent)]
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait(30)
    output = output_path.read_text()
    assert command.returncode == 0, output
    assert "node-1" in output
    assert f"http://localhost:{demo_port}/" in output
    assert f"http://127.0.0.1:{port}/cobrowse/agent/" in output
    time.sleep(0.2)
    alive = [pid for pid in descendants if os.path.exists(f"/proc/{pid}")]
    assert alive == [], f"left behind: {alive}"


def test_a_drained_node_takes_no_new_sessions_but_keeps_its_sticky_traffic(tmp_path):
    with RunningCluster(tmp_path) as cluster:
        sessions = [create(cluster.api) for _ in range(12)]
        kept = next(s for s in sessions if s["sessionServerName"] == "node-1")
        drain = [
            sys.executable,
            "-m",
            "cobrowse.cli",
            "drain",
            "node-1",
            "--config",
            str(cluster.config_path),
        ]
        subprocess.run(drain, check=True, capture_output=True, timeout=30)
        cluster.wait_states({"node-1": "draining"}, deadline=3)

        created = [create(cluster.api)["sessionServerName"] for _ in range(20)]
        assert "node-1" not in created
        for _ in range(20):
            got = requests.get(
                f"{cluster.api}/sessions/{kept['sessionToken']}",
                headers=ORIGIN,
                cookies={"gcbSessionServer": "node-1"},
                timeout=5,
            )
            assert got.json()["sessionServerName"] == "node-1"

        subprocess.run([*drain, "--undo"], check=True, capture_output=True, timeout=30)
        cluster.wait_states({"node-1": "up"}, deadline=5)
        assert "node-1" in {create(cluster.api)["sessionServerName"] for _ in range(9)}
