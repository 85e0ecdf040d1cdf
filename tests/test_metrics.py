"""Node metrics: sessions created/stopped/live, HTTP requests by route template, no tokens."""

from __future__ import annotations

import pytest

from tests.conftest import ALLOWED
from tests.integration.test_node_metrics import sample

LIVE = "/cobrowse/rest/live"


def metrics(client) -> str:
    answer = client.simulate_get("/cobrowse/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return answer.text


def test_session_counters_and_live_gauge(make_client, clock):
    client = make_client(session={"purgeInterval": "1"})
    sessions = [client.simulate_post(f"{LIVE}/sessions").json for _ in range(5)]
    client.simulate_get(f"{LIVE}/users/{sessions[0]['userToken']}/session/stop")
    client.simulate_get(f"{LIVE}/users/{sessions[0]['userToken']}/session/stop")  # repeat: once
    text = metrics(client)
    assert sample(text, "cobrowse_sessions_created_total") == 5
    assert sample(text, "cobrowse_sessions_stopped_total", reason="stop") == 1
    assert sample(text, "cobrowse_sessions_live") == 4
    clock.advance(61)
    client.simulate_get("/cobrowse/health")  # the sweep ends the four idle sessions
    text = metrics(client)
    assert sample(text, "cobrowse_sessions_stopped_total", reason="timeout") == 4
    assert sample(text, "cobrowse_sessions_live") == 0


def test_requests_are_labelled_by_route_template_not_token(client):
    created = client.simulate_post(f"{LIVE}/sessions").json
    for _ in range(3):
        client.simulate_get(
            f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
        )
    client.simulate_get("/cobrowse/nowhere")
    client.simulate_request("BREW", f"{LIVE}/sessions")
    text = metrics(client)
    route = "/cobrowse/rest/live/sessions/{session_token}"
    assert (
        sample(text, "cobrowse_http_requests_total", route=route, method="GET", status="200") == 3
    )
    assert sample(text, "cobrowse_http_request_duration_seconds_count", route=route) == 3
    assert sample(text, "cobrowse_http_requests_total", route="unmatched", status="404") == 1
    assert sample(text, "cobrowse_http_requests_total", method="OTHER") == 1
    assert created["sessionToken"] not in text
    assert created["userToken"] not in text


@pytest.mark.parametrize("enabled", ["false"])
def test_metrics_can_be_switched_off(make_client, enabled):
    client = make_client(metrics={"enabled": enabled})
    assert client.simulate_get("/cobrowse/metrics").status_code == 404
    assert client.simulate_post(f"{LIVE}/sessions").status_code == 200


def test_a_batched_histogram_adds_up_as_each_observation_would():
    from prometheus_client import CollectorRegistry, Histogram

    from cobrowse.observe.metrics import LATENCY_BUCKETS, BatchedHistogram

    values = [0.0001, 0.0005, 0.0007, 0.003, 0.03, 0.3, 2.0, 9.0, 0.0025]
    registry = CollectorRegistry()
    each = Histogram("each", "observed one by one", buckets=LATENCY_BUCKETS, registry=registry)
    batched_target = Histogram("batched", "flushed", buckets=LATENCY_BUCKETS, registry=registry)
    batch = BatchedHistogram(LATENCY_BUCKETS)
    for value in values:
        each.observe(value)
        batch.observe(value)
    batch.flush_into(batched_target)
    batch.flush_into(batched_target)  # a second flush adds nothing

    def samples(name: str) -> dict:
        return {
            (sample.name.removeprefix(name), tuple(sorted(sample.labels.items()))): sample.value
            for metric in registry.collect()
            if metric.name == name
            for sample in metric.samples
            if not sample.name.endswith("_created")
        }

    assert samples("each") == samples("batched")
