"""Metrics are exact across Gunicorn workers: N requests on a 4-worker node read as N."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import requests

from cobrowse.config.loader import load_cluster
from tests.helpers import start_node, wait_until, write_cluster


def sample(text: str, name: str, **labels: str) -> float:
    """Return the sum of the samples of `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total


def test_counts_are_exact_across_four_workers(tmp_path):
    config = write_cluster(tmp_path, nodes=1, workers=4)
    base = load_cluster(config).node("node-1").base_url + "/cobrowse"
    node = start_node(config, "node-1", tmp_path)
    total = 400
    route = "/cobrowse/rest/live/sessions"
    try:

        def create(_: int) -> dict:
            # A new connection per request: the creates spread over the four workers.
            return requests.post(f"{base}/rest/live/sessions", timeout=10).json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            sessions = list(pool.map(create, range(total)))
        for session in sessions[:50]:
            requests.get(f"{base}/rest/live/users/{session['userToken']}/session/stop", timeout=5)
        # Each worker adds its request counts to the shared files once a second.
        text = wait_until(
            lambda: (
                (scraped := requests.get(f"{base}/metrics", timeout=5).text)
                and sample(scraped, "cobrowse_http_requests_total", route=route, method="POST")
                >= total
                and scraped
            ),
            5,
            "every worker's request counts in the metrics",
        )
    finally:
        assert node.stop() == 0, node.tail()
    assert (
        sample(text, "cobrowse_http_requests_total", route=route, method="POST", status="200")
        == total
    )
    assert sample(text, "cobrowse_sessions_created_total") == total
    assert sample(text, "cobrowse_sessions_stopped_total", reason="stop") == 50
    assert sample(text, "cobrowse_sessions_live") == total - 50
    assert sample(text, "cobrowse_http_request_duration_seconds_count", route=route) == total
    for session in sessions:  # no token ever becomes a label
        assert session["sessionToken"] not in text
        assert session["userToken"] not in text
