"""A real `cobrowse node` under Gunicorn with several workers, on a free loopback port."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cobrowse.config.loader import load_cluster
from tests.helpers import children_of, start_node, write_cluster

ORIGIN = {"Origin": "http://localhost:8080"}


@pytest.fixture
def cluster_file(tmp_path):
    return write_cluster(tmp_path, nodes=1, workers=4)


def base(cluster_file) -> str:
    return load_cluster(cluster_file).node("node-1").base_url + "/cobrowse"


def test_create_get_stop_and_persistence_across_restart(cluster_file, tmp_path):
    url = base(cluster_file)
    node = start_node(cluster_file, "node-1", tmp_path)
    try:
        created = requests.post(f"{url}/rest/live/sessions", timeout=5)
        assert created.status_code == 200
        assert created.cookies["gcbSessionServer"] == "node-1"
        body = created.json()
        kept = requests.post(f"{url}/rest/live/sessions", timeout=5).json()
        got = requests.get(
            f"{url}/rest/live/sessions/{body['sessionToken']}", headers=ORIGIN, timeout=5
        )
        assert got.json()["sessionServerName"] == "node-1"
        stopped = requests.get(f"{url}/rest/live/users/{body['userToken']}/session/stop", timeout=5)
        assert stopped.status_code == 200
        gone = requests.get(
            f"{url}/rest/live/sessions/{body['sessionToken']}", headers=ORIGIN, timeout=5
        )
        assert gone.status_code == 404
    finally:
        assert node.stop() == 0, node.tail()

    node = start_node(cluster_file, "node-1", tmp_path)
    try:
        again = requests.get(
            f"{url}/rest/live/sessions/{kept['sessionToken']}", headers=ORIGIN, timeout=5
        )
        assert again.status_code == 200
        restop = requests.get(f"{url}/rest/live/users/{body['userToken']}/session/stop", timeout=5)
        assert restop.json() == stopped.json()
        assert requests.get(f"{url}/rest/live/users/{kept['userToken']}/session/stop", timeout=5).ok
    finally:
        assert node.stop() == 0, node.tail()


def test_tokens_stay_unique_when_four_workers_create_thousands_at_once(cluster_file, tmp_path):
    url = base(cluster_file)
    node = start_node(cluster_file, "node-1", tmp_path)
    total = 3000
    try:

        def create_many(count: int) -> list[str]:
            with requests.Session() as session:
                return [
                    session.post(f"{url}/rest/live/sessions", timeout=10).json()["sessionToken"]
                    for _ in range(count)
                ]

        with ThreadPoolExecutor(max_workers=12) as pool:
            batches = list(pool.map(create_many, [total // 12] * 12))
        tokens = [token for batch in batches for token in batch]
        assert len(children_of(node.pid)) == 4  # the creates really ran on four processes
    finally:
        assert node.stop() == 0, node.tail()
    assert len(tokens) == total
    assert len(set(tokens)) == total
    database = load_cluster(cluster_file).node_settings("node-1").database_path
    rows = (
        sqlite3.connect(database)
        .execute("SELECT count(*), count(DISTINCT session_token) FROM sessions")
        .fetchone()
    )
    assert rows == (total, total)
