"""Observability through the real router: request IDs end to end, metrics, logs, status page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import requests

from tests.helpers import REPO, RunningCluster, wait_until
from tests.integration.test_node_metrics import sample

ORIGIN = {"Origin": "http://localhost:8080"}
ARTIFACTS = os.environ.get("COBROWSE_TEST_ARTIFACTS", str(REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with RunningCluster(tmp_path_factory.mktemp("observed"), nodes=2) as running:
        yield running


def json_lines(path) -> list[dict]:
    entries = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))  # every line must parse: nothing broken
    return entries


def test_a_request_is_followed_from_router_to_node_by_its_id(cluster):
    created = requests.post(
        f"{cluster.api}/sessions", headers={"X-Request-ID": "follow-me-1"}, timeout=5
    )
    assert created.headers["X-Request-ID"] == "follow-me-1"
    node = created.json()["sessionServerName"]
    logs = cluster.directory / "logs"

    def logged_in(name: str) -> dict | None:
        return next(
            (e for e in json_lines(logs / f"{name}.log") if e.get("request_id") == "follow-me-1"),
            None,
        )

    router_entry = wait_until(lambda: logged_in("router"), 5, "router access log line")
    node_entry = wait_until(lambda: logged_in(node), 5, "node access log line")
    assert router_entry["node"] == node
    assert router_entry["rule"] == "spread"
    assert router_entry["route"] == "/cobrowse/rest/live/sessions"
    assert router_entry["status"] == node_entry["status"] == 200
    assert node_entry["route"] == "/cobrowse/rest/live/sessions"


@pytest.mark.parametrize("hostile", ['x"y', "a b", "line\nbreak", "z" * 300])
def test_an_insane_request_id_is_replaced_and_still_followed(cluster, hostile):
    answer = requests.get(
        f"{cluster.router_url}/cobrowse/health",
        headers={"X-Request-ID": hostile.replace("\n", " ")},
        timeout=5,
    )
    made = answer.headers["X-Request-ID"]
    assert made != hostile
    assert 1 <= len(made) <= 255


def test_hostile_forwarded_for_cannot_forge_log_fields(cluster):
    forged = 'evil", "status": 999, "node": "nobody'
    requests.get(
        f"{cluster.router_url}/health",
        headers={"X-Forwarded-For": forged, "X-Request-ID": "forge-1"},
        timeout=5,
    )
    entry = wait_until(
        lambda: next(
            (
                e
                for e in json_lines(cluster.directory / "logs" / "router.log")
                if e.get("request_id") == "forge-1"
            ),
            None,
        ),
        5,
        "router line",
    )
    assert entry["status"] == 200
    assert entry["client"] == forged.split(",", maxsplit=1)[0]


def test_router_metrics_count_routes_by_rule_without_tokens(cluster):
    before = requests.get(f"{cluster.router_url}/lb/metrics", timeout=5).text
    sessions = [requests.post(f"{cluster.api}/sessions", timeout=5).json() for _ in range(10)]
    for session in sessions:
        requests.get(f"{cluster.api}/sessions/{session['sessionToken']}", headers=ORIGIN, timeout=5)
    text = requests.get(f"{cluster.router_url}/lb/metrics", timeout=5).text
    spread = sample(text, "cobrowse_lb_requests_total", rule="spread") - sample(
        before, "cobrowse_lb_requests_total", rule="spread"
    )
    token = sample(text, "cobrowse_lb_requests_total", rule="token") - sample(
        before, "cobrowse_lb_requests_total", rule="token"
    )
    assert (spread, token) == (10, 10)
    assert sample(text, "cobrowse_lb_node_up", node="node-1") == 1
    assert sample(text, "cobrowse_lb_request_duration_seconds_count") >= 20
    for session in sessions:
        assert session["sessionToken"] not in text


def test_status_page_in_headless_chromium(cluster, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by scripts/test"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = f"{cluster.router_url}/lb/status"
    wait_until(
        lambda: all(n["liveSessions"] is not None for n in cluster.status()["nodes"]),
        5,
        "live counts",
    )
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for node in ("node-1", "node-2"):
        assert node in dom
    assert dom.count('data-state="up"') == 2
    os.makedirs(ARTIFACTS, exist_ok=True)
    screenshot = os.path.join(ARTIFACTS, "lb-status-page.png")
    subprocess.run(
        [chromium, *flags, f"--screenshot={screenshot}", "--window-size=1100,420", url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert os.path.getsize(screenshot) > 1000
    assert requests.get(url, timeout=5).headers["Content-Type"].startswith("application/json")


def test_the_router_serves_its_own_contract_and_answers_by_it(cluster):
    import jsonschema_rs

    document = requests.get(f"{cluster.router_url}/lb/openapi.json", timeout=5).json()
    assert set(document["paths"]) == {"/health", "/lb/status", "/lb/openapi.json", "/lb/metrics"}
    schemas = document["components"]["schemas"]
    status_schema = {**schemas["RouterStatus"], "$defs": schemas}
    status_schema = json.loads(
        json.dumps(status_schema).replace("#/components/schemas/", "#/$defs/")
    )
    jsonschema_rs.validate(status_schema, cluster.status())
    # The node's own document no longer promises the router's endpoints.
    node_document = requests.get(f"{cluster.router_url}/cobrowse/openapi.json", timeout=5).json()
    assert "/lb/status" not in node_document["paths"]
