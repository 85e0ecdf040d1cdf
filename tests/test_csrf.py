"""The CSRF header pair: X-Support-CSRFP on create, X-CSRF-Token on every later Controller call."""

from __future__ import annotations

import pytest

from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"
CALLS = [
    ("GET", "session/stop", None),
    ("GET", "ping", None),
    ("POST", "screen-capture", {"screen-capture": "query"}),
]


def create(client, support: str | None = "true"):
    headers = {"Origin": ALLOWED}
    if support is not None:
        headers["X-Support-CSRFP"] = support
    result = client.simulate_post(f"{LIVE}/sessions", headers=headers)
    return result


def call(client, user_token, method, path, body, *, token=None):
    headers = {"X-CSRF-Token": token} if token is not None else {}
    return client.simulate_request(
        method, f"{LIVE}/users/{user_token}/{path}", headers=headers, json=body
    )


def test_create_with_support_gets_an_exposed_token(client):
    result = create(client)
    token = result.headers["X-CSRF-Token"]
    assert len(token) >= 22
    assert "X-CSRF-Token" in result.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
def test_controller_calls_need_the_same_token(client, method, path, body):
    created = create(client)
    user, token = created.json["userToken"], created.headers["X-CSRF-Token"]
    missing = call(client, user, method, path, body)
    assert missing.status_code == 403
    assert missing.json["errorMessage"]
    assert call(client, user, method, path, body, token="x" + token[1:]).status_code == 403
    assert call(client, user, method, path, body, token=token).status_code == 200


def test_a_token_belongs_to_its_session_only(client):
    first, second = create(client), create(client)
    assert first.headers["X-CSRF-Token"] != second.headers["X-CSRF-Token"]
    answer = call(
        client,
        second.json["userToken"],
        "GET",
        "session/stop",
        None,
        token=first.headers["X-CSRF-Token"],
    )
    assert answer.status_code == 403


@pytest.mark.parametrize("support", [None, "false", "yes"])
def test_sessions_without_the_header_are_unaffected(client, support):
    created = create(client, support)
    assert "X-CSRF-Token" not in created.headers
    for method, path, body in reversed(CALLS):  # stop last: it ends the session
        assert call(client, created.json["userToken"], method, path, body).status_code == 200
