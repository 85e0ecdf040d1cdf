"""Join Session (REALTIME.md): an agent joins by the 9-digit code, under CORS and a rate limit."""

from __future__ import annotations

import pytest

from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"
ORIGIN = {"Origin": ALLOWED}


def create(client, **body):
    result = client.simulate_post(f"{LIVE}/sessions", json=body or None)
    assert result.status_code == 200, result.text
    return result.json


def join(client, token, name="Ann", headers=ORIGIN):
    return client.simulate_post(
        f"{LIVE}/sessions/{token}/join", json={"name": name}, headers=headers
    )


def test_join_answers_the_agents_tokens(client):
    created = create(client)
    result = join(client, created["sessionToken"])
    assert result.status_code == 200, result.text
    body = result.json
    assert set(body) == {
        "userToken",
        "userId",
        "sessionToken",
        "sessionServerName",
        "sessionServerUrl",
        "userData",
    }
    assert body["sessionToken"] == created["sessionToken"]
    assert body["userToken"] != created["userToken"]
    assert body["sessionServerUrl"] == "http://127.0.0.1:8700/node-1/cobrowse"
    assert result.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_the_agents_token_is_owned_by_the_node_on_the_ring(client, make_settings):
    from cobrowse.sessions.ring import ClusterRing

    ring = ClusterRing(make_settings().cluster.nodes)
    body = join(client, create(client)["sessionToken"]).json
    assert ring.owner(body["userToken"]) == "node-1"


@pytest.mark.parametrize("token", ["000000001", "999999999"])
def test_an_unknown_code_is_404(client, token):
    result = join(client, token)
    assert result.status_code == 404
    assert result.json["request"] == "sessions.join"


def test_an_ended_session_is_404(client):
    created = create(client)
    client.simulate_get(f"{LIVE}/users/{created['userToken']}/session/stop")
    assert join(client, created["sessionToken"]).status_code == 404


@pytest.mark.parametrize("token", ["12345678", "12345678x"])
def test_what_cannot_be_a_code_is_400(client, token):
    assert join(client, token).status_code == 400


def test_a_name_over_64_characters_is_400(client):
    result = join(client, create(client)["sessionToken"], name="n" * 65)
    assert result.status_code == 400
    assert result.json["request"] == "sessions.join"


def test_join_needs_an_allowed_origin(client):
    token = create(client)["sessionToken"]
    assert join(client, token, headers={}).status_code == 403
    assert join(client, token, headers={"Origin": "http://evil.test"}).status_code == 403


def test_a_second_agent_is_409_with_max_agents_1(client):
    token = create(client)["sessionToken"]
    assert join(client, token).status_code == 200
    result = join(client, token, name="Bob")
    assert result.status_code == 409
    assert "maxAgents" in result.json["errorMessage"]


def test_max_agents_is_an_option(make_client):
    client = make_client(session={"maxAgents": "3"})
    token = create(client)["sessionToken"]
    assert [join(client, token).status_code for _ in range(4)] == [200, 200, 200, 409]


def test_an_agent_that_went_away_frees_its_place_after_agent_timeout(make_client, clock):
    client = make_client(session={"agentTimeout": "60", "inactivityTimeout": "600"})
    token = create(client)["sessionToken"]
    assert join(client, token).status_code == 200
    clock.advance(59)
    assert join(client, token).status_code == 409
    clock.advance(2)  # it never opened its channel: no heartbeat kept its place
    assert join(client, token).status_code == 200


def test_guessing_codes_is_rate_limited_by_default(client):
    # rateLimit is 0 (unlimited) in this cluster file, yet joining is limited: 10 a minute.
    statuses = [join(client, f"{number:09d}").status_code for number in range(12)]
    assert statuses == [404] * 10 + [429, 429]


def test_the_join_limit_is_an_option(make_client):
    client = make_client(security={"rateLimit.sessions.join": "2"})
    statuses = [join(client, f"{number:09d}").status_code for number in range(3)]
    assert statuses == [404, 404, 429]


@pytest.mark.parametrize(
    ("readable", "expected"),
    [("", {}), ("plan", {"plan": "gold"}), ("*", {"plan": "gold", "phone": "555"})],
)
def test_agents_see_only_readable_attached_data(make_client, readable, expected):
    client = make_client(security={"userData.readAllowed": readable})
    created = create(client, userData={"plan": "gold", "phone": "555"})
    assert join(client, created["sessionToken"]).json["userData"] == expected


@pytest.mark.parametrize(
    "user_data",
    [["a"], {"k": 1}, {"k": "v" * 1025}, {"": "v"}, {f"k{i}": "v" for i in range(33)}],
)
def test_malformed_attached_data_is_400(client, user_data):
    result = client.simulate_post(f"{LIVE}/sessions", json={"userData": user_data})
    assert result.status_code == 400
    assert result.json["request"] == "sessions.create"
