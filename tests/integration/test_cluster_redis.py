"""`cobrowse cluster --store redis`: a local Redis started with the cluster, stopped after it."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time

import requests

from tests.helpers import children_of, free_port_block, start_cluster_command

ORIGIN = {"Origin": "http://localhost:8080"}


def test_the_cluster_command_runs_its_own_redis_and_any_node_serves_any_session(tmp_path):
    port = free_port_block(5)  # the router, 2 nodes, HAProxy's stats page, then Redis
    redis_port = port + 4
    output_path = tmp_path / "output.txt"
    command = start_cluster_command(
        output_path,
        *("--nodes", "2", "--port", str(port), "--data-dir", str(tmp_path)),
        *("--no-demo", "--store", "redis"),
    )
    try:
        table = output_path.read_text()
        redis_row = next(line for line in table.splitlines() if line.startswith("redis "))
        assert f"redis://127.0.0.1:{redis_port}/0" in redis_row
        assert redis_row.rstrip().endswith("up")
        generated = configparser.ConfigParser()
        generated.read(tmp_path / "cluster.ini")
        assert dict(generated["store"]) == {
            "backend": "redis",
            "url": f"redis://127.0.0.1:{redis_port}/0",
        }
        # Created on one node, found on the other directly: one store, no 307.
        created = requests.post(f"http://127.0.0.1:{port}/cobrowse/rest/live/sessions", timeout=5)
        assert created.status_code == 200, created.text
        session = created.json()
        other = 2 if session["sessionServerName"] == "node-1" else 1
        got = requests.get(
            f"http://127.0.0.1:{port + other}/cobrowse/rest/live/sessions/"
            f"{session['sessionToken']}",
            headers=ORIGIN,
            allow_redirects=False,
            timeout=5,
        )
        assert got.status_code == 200, got.text
        started = children_of(command.pid)
        assert len(started) == 4  # Redis, two nodes and the router
        descendants = started + [pid for parent in started for pid in children_of(parent)]
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait(30)
    output = output_path.read_text()
    assert command.returncode == 0, output
    time.sleep(0.2)
    alive = [pid for pid in descendants if os.path.exists(f"/proc/{pid}")]
    assert alive == [], f"left behind: {alive}"
    # Its data: the append-only file, in the cluster's data directory.
    assert any((tmp_path / "redis").rglob("*.aof")), list((tmp_path / "redis").rglob("*"))


def test_store_redis_with_a_given_cluster_file_is_refused(tmp_path):
    config = tmp_path / "cluster.ini"
    config.write_text("[node:node-1]\nbind = 127.0.0.1:1\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cobrowse.cli",
            "cluster",
            "--config",
            str(config),
            "--store",
            "redis",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "set [store] in the file" in done.stderr
