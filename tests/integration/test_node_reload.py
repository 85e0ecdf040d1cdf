"""SIGHUP to a real node: new workers take the re-read cluster file, unless it is unsafe."""

from __future__ import annotations

import signal

import requests

from cobrowse.config.loader import load_cluster
from tests.helpers import children_of, start_node, wait_until, write_cluster

OLD_ORIGIN = "http://localhost:8080"
NEW_ORIGIN = "http://agents.example.test"


def reload_and_wait_for_new_workers(node, workers: int) -> None:
    """SIGHUP the master; return once every worker is one born after the signal."""
    before = set(children_of(node.pid))
    node.signal(signal.SIGHUP)
    wait_until(
        lambda: (
            len(set(children_of(node.pid)) - before) >= workers
            and not set(children_of(node.pid)) & before
        ),
        30,
        "every worker replaced after SIGHUP",
    )


def get_status(api: str, token: str, origin: str) -> int:
    answer = requests.get(f"{api}/sessions/{token}", headers={"Origin": origin}, timeout=5)
    return answer.status_code


def test_reload_adopts_new_origins_and_refuses_a_ring_change(tmp_path):
    config = write_cluster(
        tmp_path, nodes=1, workers=2, sections={"cross-origin": {"allowedOrigins": OLD_ORIGIN}}
    )
    api = load_cluster(config).node("node-1").base_url + "/cobrowse/rest/live"
    node = start_node(config, "node-1", tmp_path)
    try:
        token = requests.post(f"{api}/sessions", timeout=5).json()["sessionToken"]
        assert get_status(api, token, NEW_ORIGIN) == 403

        original = config.read_text()
        config.write_text(original.replace(OLD_ORIGIN, f"{OLD_ORIGIN}, {NEW_ORIGIN}"))
        reload_and_wait_for_new_workers(node, workers=2)
        # Every worker now runs the new settings, and the session made before is still there.
        assert [get_status(api, token, NEW_ORIGIN) for _ in range(6)] == [200] * 6

        # A weight change would re-map tokens already issued: refused, the settings stay.
        config.write_text(original.replace("workers = 2", "workers = 2\nweight = 3"))
        reload_and_wait_for_new_workers(node, workers=2)
        wait_until(lambda: "reload refused" in node.tail(200), 10, "the refusal is logged")
        assert [get_status(api, token, NEW_ORIGIN) for _ in range(6)] == [200] * 6
        assert "node-1 changes vnodes/weight" in node.tail(200)
    finally:
        assert node.stop() == 0
