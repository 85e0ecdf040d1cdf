"""Lifecycle rules on a real multi-worker node: timeout, CSRF pair, node-wide rate limit."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from cobrowse.config.loader import load_cluster
from tests.helpers import start_node, wait_until, write_cluster

ORIGIN = {"Origin": "http://localhost:8080"}


def node_url(config) -> str:
    return load_cluster(config).node("node-1").base_url + "/cobrowse/rest/live"


def test_timeout_and_csrf_across_workers_and_a_restart(tmp_path):
    config = write_cluster(
        tmp_path, nodes=1, workers=3, sections={"session": {"inactivityTimeout": "1.5"}}
    )
    api = node_url(config)
    node = start_node(config, "node-1", tmp_path)
    try:
        guarded = requests.post(f"{api}/sessions", headers={"X-Support-CSRFP": "true"}, timeout=5)
        token, user = guarded.headers["X-CSRF-Token"], guarded.json()["userToken"]
        # Fresh connections land on any of the three workers: each must enforce the pair.
        for _ in range(6):
            assert requests.get(f"{api}/users/{user}/ping", timeout=5).status_code == 403
            pinged = requests.get(
                f"{api}/users/{user}/ping", headers={"X-CSRF-Token": token}, timeout=5
            )
            assert pinged.status_code == 200

        idle = requests.post(f"{api}/sessions", timeout=5).json()
        kept = requests.post(f"{api}/sessions", timeout=5).json()
        created_at = time.time()
        while time.time() - created_at < 2.5:  # keep one alive past the timeout by pinging
            assert requests.get(f"{api}/users/{kept['userToken']}/ping", timeout=5).ok
            time.sleep(0.3)
        gone = requests.get(f"{api}/sessions/{idle['sessionToken']}", headers=ORIGIN, timeout=5)
        assert gone.status_code == 404
        assert requests.get(f"{api}/users/{idle['userToken']}/ping", timeout=5).status_code == 401
        alive = requests.get(f"{api}/sessions/{kept['sessionToken']}", headers=ORIGIN, timeout=5)
        assert alive.status_code == 200
        times = requests.get(f"{api}/users/{idle['userToken']}/session/stop", timeout=5).json()
        assert times["deactivationTime"] - times["activationTime"] == 1500
    finally:
        assert node.stop() == 0, node.tail()

    time.sleep(2)  # the node stays down longer than the timeout, then comes back
    node = start_node(config, "node-1", tmp_path)
    try:
        late = requests.get(f"{api}/users/{kept['userToken']}/session/stop", timeout=5).json()
        assert late["deactivationTime"] < created_at * 1000 + 4000  # last ping + 1.5 s, not now
    finally:
        assert node.stop() == 0, node.tail()


def test_the_rate_limit_is_not_multiplied_by_four_workers(tmp_path):
    config = write_cluster(
        tmp_path, nodes=1, workers=4, sections={"security": {"rateLimit.sessions.create": "10"}}
    )
    api = node_url(config)
    node = start_node(config, "node-1", tmp_path)
    try:

        def attempt(_: int) -> int:
            # A new connection each time, so that requests spread over the workers.
            return requests.post(f"{api}/sessions", timeout=10).status_code

        # Windows are fixed minutes: do not start in the last seconds of one.
        wait_until(lambda: time.time() % 60 < 55, 10, "not at the end of a minute")
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(attempt, range(40)))
    finally:
        assert node.stop() == 0, node.tail()
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
