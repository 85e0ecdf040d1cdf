"""Per-origin request filters in allowedOrigins, with the vendor's syntax."""

from __future__ import annotations

import pytest

LIVE = "/cobrowse/rest/live"
FILTERS = (
    "http://a.test, http://b.test (*), http://c.test (sessions.get, health), "
    "http://d.test (sessions.*)"
)


@pytest.fixture
def client(make_client):
    return make_client(cross_origin={"allowedOrigins": FILTERS})


def request_for(client, operation, origin):
    headers = {"Origin": origin}
    if operation == "health":
        return client.simulate_get("/cobrowse/health", headers=headers)
    created = client.simulate_post(f"{LIVE}/sessions").json  # no Origin: server-to-server
    if operation == "sessions.create":
        return client.simulate_post(f"{LIVE}/sessions", headers=headers)
    if operation == "sessions.get":
        return client.simulate_get(f"{LIVE}/sessions/{created['sessionToken']}", headers=headers)
    if operation == "sessions.stop":
        return client.simulate_get(
            f"{LIVE}/users/{created['userToken']}/session/stop", headers=headers
        )
    if operation == "sessions.ping":
        return client.simulate_get(f"{LIVE}/users/{created['userToken']}/ping", headers=headers)
    return client.simulate_post(
        f"{LIVE}/users/{created['userToken']}/screen-capture",
        headers=headers,
        json={"screen-capture": "query"},
    )


OPERATIONS = [
    "sessions.create",
    "sessions.get",
    "sessions.stop",
    "sessions.ping",
    "sessions.screen-capture",
    "health",
]
ALLOWED = {
    "http://a.test": set(OPERATIONS),
    "http://b.test": set(OPERATIONS),
    "http://c.test": {"sessions.get", "health"},
    "http://d.test": set(OPERATIONS) - {"health"},
}


@pytest.mark.parametrize("origin", sorted(ALLOWED))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_filter_matrix(client, origin, operation):
    answer = request_for(client, operation, origin)
    if operation in ALLOWED[origin]:
        assert answer.status_code == 200, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == origin
    else:
        assert answer.status_code == 403
        assert answer.json["request"] == operation
        assert operation in answer.json["errorMessage"]
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_a_preflight_lists_only_the_methods_the_filter_allows(client):
    answer = client.simulate_options(
        f"{LIVE}/sessions",
        headers={"Origin": "http://c.test", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 403
