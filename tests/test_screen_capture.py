"""Screen-capture control: start/stop/pause/resume/query, 409 for impossible transitions."""

from __future__ import annotations

import pytest

from cobrowse.sessions.screencapture import TRANSITIONS
from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"


def capture(client, user_token, action, **kwargs):
    return client.simulate_post(
        f"{LIVE}/users/{user_token}/screen-capture", json={"screen-capture": action}, **kwargs
    )


def reach(client, user_token, state):
    path = {"disabled": [], "enabled": ["start"], "paused": ["start", "pause"]}[state]
    for action in path:
        assert capture(client, user_token, action).status_code == 200


@pytest.mark.parametrize("state", ["disabled", "enabled", "paused"])
@pytest.mark.parametrize("action", ["start", "stop", "pause", "resume", "query"])
def test_transition_table(client, state, action):
    user = client.simulate_post(f"{LIVE}/sessions").json["userToken"]
    reach(client, user, state)
    answer = capture(client, user, action)
    expected = TRANSITIONS.get((state, action))
    if expected is None:
        assert answer.status_code == 409
        assert answer.json["screen-capture"] == state
        assert answer.json["request"] == "sessions.screen-capture"
    else:
        assert answer.status_code == 200
        assert answer.json == {"screen-capture": expected}


def test_resume_when_disabled_is_409(client):
    user = client.simulate_post(f"{LIVE}/sessions").json["userToken"]
    assert capture(client, user, "resume").status_code == 409
    assert capture(client, user, "query").json == {"screen-capture": "disabled"}


def test_get_session_shows_the_state_and_it_survives_a_restart(make_client):
    created = make_client().simulate_post(f"{LIVE}/sessions").json
    capture(make_client(), created["userToken"], "start")
    restarted = make_client()
    got = restarted.simulate_get(
        f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert got.json["screenCapture"] == "enabled"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"screen-capture": "explode"}', "application/json"),
        (b"{}", "application/json"),
        (b"", "application/json"),
        (b"start", "text/plain"),
    ],
)
def test_bad_bodies_are_4xx(client, body, content_type):
    user = client.simulate_post(f"{LIVE}/sessions").json["userToken"]
    answer = client.simulate_post(
        f"{LIVE}/users/{user}/screen-capture", body=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code in (400, 415)
    assert answer.json["request"] == "sessions.screen-capture"


def test_it_counts_as_controller_activity(client, clock):
    created = client.simulate_post(f"{LIVE}/sessions").json
    clock.advance(50)
    capture(client, created["userToken"], "query")
    clock.advance(50)
    got = client.simulate_get(
        f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert got.status_code == 200


def test_a_session_that_ended_has_no_screen_capture(client):
    created = client.simulate_post(f"{LIVE}/sessions").json
    client.simulate_get(f"{LIVE}/users/{created['userToken']}/session/stop")
    assert capture(client, created["userToken"], "start").status_code == 404


def test_cors_controlled(client):
    user = client.simulate_post(f"{LIVE}/sessions").json["userToken"]
    assert capture(client, user, "query", headers={"Origin": "http://evil.test"}).status_code == 403
    allowed = capture(client, user, "query", headers={"Origin": ALLOWED})
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
