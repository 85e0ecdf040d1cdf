"""Attached data over the channel, and what the node records: logs without secrets, metrics."""

from __future__ import annotations

import json

import requests

from tests.helpers import wait_until
from tests.integration.realtime_client import LiveSession, connect_pair, incremental

LIVE_SECTIONS = {
    "security": {
        "rateLimit.sessions.join": "0",
        "userData.readAllowed": "plan, note",
        "userData.writeAllowed": "note, secret",
    }
}


def test_attached_data_agents_read_only_readable_keys_and_the_customer_writes_writable_ones(
    live_node,
):
    session = LiveSession.create(live_node.base, userData={"plan": "gold", "secret": "s3"})
    customer, agent, _ = connect_pair(session)
    welcome = next(frame for frame in agent.received if frame["type"] == "welcome")
    assert welcome["userData"] == {"plan": "gold"}
    customer_welcome = next(frame for frame in customer.received if frame["type"] == "welcome")
    assert customer_welcome["userData"] == {"plan": "gold", "secret": "s3"}

    customer.send({"type": "userData", "userData": {"note": "called twice", "secret": "s4"}})
    update = agent.expect("userData")
    assert update["userData"] == {"note": "called twice"}  # `secret` is writable, not readable
    customer.send({"type": "userData", "userData": {"plan": "platinum"}})
    refused = customer.expect("error", request="userData")
    assert "'plan'" in refused["errorMessage"]
    customer.close()
    agent.close()


def test_channels_are_logged_without_tokens_or_bodies_and_counted(live_node):
    session = LiveSession.create(live_node.base)
    customer, agent, joined = connect_pair(session)
    secret_text = "my card is 4111 1111 1111 1111"
    customer.send({"type": "events", "cseq": 2, "data": [*incremental(2), secret_text]})
    customer.expect("ack", cseq=2)
    agent.expect("events", cseq=2)
    customer.close()
    agent.close()
    log_path = live_node.directory / "node-1.log"

    def closes() -> list[dict]:
        lines = [
            json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
        ]
        return [line for line in lines if line.get("websocket", {}).get("event") == "close"]

    wait_until(lambda: len(closes()) >= 2, 5, "the close lines of both channels")
    text = log_path.read_text()
    for secret in (session.user_token, joined["userToken"], session.session_token, secret_text):
        assert secret not in text
    close = closes()[-1]
    assert close["route"] == "/cobrowse/rest/live/users/{userToken}/channel"
    assert close["websocket"]["in"] >= 1
    assert close["status"] == 101

    # Each worker adds its message counts to the shared metric files once a second (a scrape,
    # at once for the worker that answers it): the customer's and the agent's workers may differ.
    counted = (
        'cobrowse_realtime_messages_total{direction="in",type="events"}',
        'cobrowse_realtime_messages_total{direction="out",type="events"}',
    )
    metrics = wait_until(
        lambda: (
            (text := requests.get(f"{live_node.base}/metrics", timeout=5).text)
            and all(line in text for line in counted)
            and text
        ),
        5,
        "the message counts of both directions in the metrics",
    )
    assert "cobrowse_realtime_delivery_lag_seconds_bucket" in metrics
    assert "cobrowse_realtime_channels" in metrics
    assert session.user_token not in metrics
