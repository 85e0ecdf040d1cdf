"""Every close code of REALTIME.md provoked, and the handshake's own refusals."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from tests.integration.realtime_client import (
    LiveSession,
    Peer,
    connect_pair,
    refused_status,
)

HELLO_TIMEOUT_S = 1.5
LIVE_SECTIONS = {
    "realtime": {
        "maxMessageSize": "65536",
        "maxFramesPerSecond": "20",
        "helloTimeout": str(HELLO_TIMEOUT_S),
    },
}


def test_a_frame_over_max_message_size_closes_with_1009(live_node):
    customer, agent, _ = connect_pair(LiveSession.create(live_node.base))
    customer.send({"type": "events", "cseq": 2, "data": ["x" * 70_000]})
    assert customer.close_code() == 1009
    agent.close()


def test_a_flood_of_frames_closes_with_1008(live_node):
    session = LiveSession.create(live_node.base)
    customer = Peer.open(live_node.base, session.user_token)
    customer.hello()
    with contextlib.suppress(ConnectionClosed):  # it may close while we still send
        for cseq in range(1, 200):
            customer.send({"type": "events", "cseq": cseq, "data": []})
    assert customer.close_code() == 1008


@pytest.mark.parametrize(
    "first", ["not json", "[1, 2]", '{"no": "type"}', '{"type": "events", "cseq": 1, "data": []}']
)
def test_anything_but_a_hello_first_closes_with_4400(live_node, first):
    session = LiveSession.create(live_node.base)
    customer = Peer.open(live_node.base, session.user_token)
    customer.socket.send(first)
    assert customer.close_code() == 4400


def test_a_missing_or_wrong_csrf_token_closes_with_4401(live_node):
    answer = requests.post(
        f"{live_node.base}/rest/live/sessions", headers={"X-Support-CSRFP": "true"}, timeout=5
    )
    token, csrf = answer.json()["userToken"], answer.headers["X-CSRF-Token"]
    for given in (None, "wrong"):
        customer = Peer.open(live_node.base, token)
        fields = {} if given is None else {"csrfToken": given}
        customer.send({"type": "hello", "lastSeq": 0, **fields})
        assert customer.close_code() == 4401
    customer = Peer.open(live_node.base, token)
    assert customer.hello(csrfToken=csrf)["role"] == "customer"
    customer.close()


@pytest.mark.parametrize("token", ["1" + "A" * 22, "nosuchtoken", "0" * 64])
def test_an_unknown_user_token_closes_with_4404(live_node, token):
    peer = Peer.open(live_node.base, token)
    peer.send({"type": "hello", "lastSeq": 0})
    assert peer.close_code() == 4404


def test_no_hello_in_time_closes_with_4408(live_node):
    session = LiveSession.create(live_node.base)
    started = time.monotonic()
    customer = Peer.open(live_node.base, session.user_token)
    assert customer.close_code(timeout=HELLO_TIMEOUT_S + 5) == 4408
    assert HELLO_TIMEOUT_S - 0.2 <= time.monotonic() - started <= HELLO_TIMEOUT_S + 2


def test_a_channel_of_an_ended_session_gets_ended_then_4410(live_node):
    session = LiveSession.create(live_node.base)
    session.stop()
    customer = Peer.open(live_node.base, session.user_token)
    customer.send({"type": "hello", "lastSeq": 0})
    ended = customer.next()
    assert (ended["type"], ended["reason"]) == ("ended", "stop")
    assert customer.close_code() == 4410


@pytest.mark.parametrize("origin", ["http://evil.test", "null", "http://localhost:8080.evil.test"])
def test_a_handshake_from_a_refused_origin_is_403_json_and_nothing_is_accepted(live_node, origin):
    session = LiveSession.create(live_node.base)
    status, body = refused_status(live_node.base, session.user_token, origin)
    assert status == 403
    assert body["request"] == "sessions.channel"
    assert "allowedOrigins" in body["errorMessage"]


def test_a_websocket_elsewhere_is_404_json(live_node):
    url = live_node.base + "/rest/live/sessions/123456789/channel"
    answer = requests.get(
        url,
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
        timeout=5,
    )
    assert answer.status_code == 404
    assert json.loads(answer.content)["errorMessage"]
