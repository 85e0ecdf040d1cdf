"""Create, Get and Stop Session over a real SQLite store (TestClient, no server)."""

from __future__ import annotations

import asyncio
import re

import pytest

from cobrowse.sessions.ring import ClusterRing
from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"


def create(client, **kwargs):
    result = client.simulate_post(f"{LIVE}/sessions", **kwargs)
    assert result.status_code == 200, result.text
    return result


def test_create_returns_tokens_and_node_name(client):
    body = create(client).json
    # sessionServerUrl because node-1 has a serverUrl: browsers open the channel under it.
    assert set(body) == {"sessionToken", "sessionServerName", "userToken", "sessionServerUrl"}
    assert body["sessionServerUrl"] == "http://127.0.0.1:8700/node-1/cobrowse"
    assert re.fullmatch(r"[1-9][0-9]{8}", body["sessionToken"])
    assert re.fullmatch(r"[1-9][A-Za-z0-9_-]{22}", body["userToken"])
    assert body["sessionServerName"] == "node-1"


def test_tokens_are_owned_by_the_creating_node_on_the_ring(make_client, make_settings):
    for node in ("node-1", "node-2", "node-3"):
        client = make_client(node)
        ring = ClusterRing(make_settings(node).cluster.nodes)
        for _ in range(20):
            body = create(client).json
            assert ring.owner(body["sessionToken"]) == node
            assert ring.owner(body["userToken"]) == node


def test_create_sets_the_stickiness_cookie_and_header(client):
    result = create(client)
    cookie = result.cookies["gcbSessionServer"]
    assert cookie.value == "node-1"
    assert cookie.path == "/cobrowse"
    assert cookie.http_only
    assert not cookie.secure
    assert cookie.same_site == "Lax"
    assert result.headers["gcbSessionServer"] == "node-1"


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_proto", "secure"),
    [
        ("127.0.0.1", "https", True),  # trusted proxy says HTTPS
        ("127.0.0.1", "http", False),
        ("203.0.113.9", "https", False),  # an untrusted peer cannot claim HTTPS
    ],
)
def test_cookie_is_secure_and_samesite_none_over_https(
    client, remote_addr, forwarded_proto, secure
):
    result = create(client, remote_addr=remote_addr, headers={"X-Forwarded-Proto": forwarded_proto})
    cookie = result.cookies["gcbSessionServer"]
    assert cookie.secure is secure
    assert cookie.same_site == ("None" if secure else "Lax")


def test_create_exposes_the_header_to_allowed_origins(client):
    result = create(client, headers={"Origin": ALLOWED})
    assert "gcbSessionServer" in result.headers["Access-Control-Expose-Headers"]
    assert result.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_get_session_returns_public_data_with_server_url(client):
    created = create(client).json
    result = client.simulate_get(
        f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert result.status_code == 200
    assert result.json == {
        "sessionToken": created["sessionToken"],
        "sessionServerName": "node-1",
        "sessionServerUrl": "http://127.0.0.1:8700/node-1/cobrowse",
        "screenCapture": "disabled",
    }


def test_get_session_omits_server_url_when_the_node_has_none(make_client):
    client = make_client("node-3")
    created = create(client).json
    assert "sessionServerUrl" not in created
    result = client.simulate_get(
        f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert result.status_code == 200
    assert "sessionServerUrl" not in result.json
    assert "userToken" not in result.json


def test_unknown_session_is_404_json(client, make_settings):
    ring = ClusterRing(make_settings().cluster.nodes)
    token = next(
        f"1{number:08d}" for number in range(10**8) if ring.owner(f"1{number:08d}") == "node-1"
    )
    result = client.simulate_get(f"{LIVE}/sessions/{token}", headers={"Origin": ALLOWED})
    assert result.status_code == 404
    assert result.json["errorMessage"]
    assert result.json["request"] == "sessions.get"


def test_stop_returns_times_and_is_idempotent(client, clock):
    created = create(client).json
    clock.advance(30)
    first = client.simulate_get(f"{LIVE}/users/{created['userToken']}/session/stop")
    assert first.status_code == 200
    assert first.json["deactivationTime"] - first.json["activationTime"] == 30_000
    clock.advance(5)
    again = client.simulate_get(f"{LIVE}/users/{created['userToken']}/session/stop")
    assert again.json == first.json


def test_get_session_is_404_after_stop(client):
    created = create(client).json
    client.simulate_get(f"{LIVE}/users/{created['userToken']}/session/stop")
    result = client.simulate_get(
        f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert result.status_code == 404


def test_stop_of_unknown_user_token_is_404(client, make_settings):
    ring = ClusterRing(make_settings().cluster.nodes)
    token = next(
        candidate
        for candidate in (f"1{index:022d}" for index in range(10_000))
        if ring.owner(candidate) == "node-1"
    )
    result = client.simulate_get(f"{LIVE}/users/{token}/session/stop")
    assert result.status_code == 404
    assert result.json["request"] == "sessions.stop"


@pytest.mark.parametrize(
    "token", ["12345678", "1234567890", "12345678a", "..", "１２３４５６７８９"]
)
def test_what_cannot_be_a_session_token_is_400(client, token):
    result = client.simulate_get(f"{LIVE}/sessions/{token}", headers={"Origin": ALLOWED})
    assert result.status_code == 400
    assert result.json["request"] == "sessions.get"


# An agent types 9 digits: whatever they are, a wrong guess gets the one answer, 404. The ring
# epoch digit (the first) is not the agent's business: 0, or an epoch no ring has yet, too.
@pytest.mark.parametrize("token", ["000000001", "023456789", "999999999", "900000000"])
def test_any_nine_digits_without_a_live_session_are_404(client, token):
    result = client.simulate_get(f"{LIVE}/sessions/{token}", headers={"Origin": ALLOWED})
    assert result.status_code == 404, result.text
    assert result.json == {
        "errorMessage": "No live session has this sessionToken.",
        "request": "sessions.get",
    }


@pytest.mark.parametrize("path", ["%2e%2e%2f%2e%2e%2fhealth", "../../health", "1%00"])
def test_path_traversal_in_tokens_is_a_json_4xx(client, path):
    result = client.simulate_get(f"{LIVE}/sessions/{path}", headers={"Origin": ALLOWED})
    assert result.status_code in (400, 404)
    assert result.json["errorMessage"]


@pytest.mark.parametrize("token", ["1" + "a" * 64, "1" + "é" * 22, "a.b", "a%20b", "~"])
def test_what_cannot_be_a_user_token_is_400(client, token):
    result = client.simulate_get(f"{LIVE}/users/{token}/session/stop")
    assert result.status_code == 400
    assert result.json["request"] == "sessions.stop"


# Any URL-safe string up to 64 characters could be a userToken: a wrong one is 404 (the ring
# may first send it, 307, to the node that would own it; that node then answers 404).
@pytest.mark.parametrize(
    "token", ["short", "nosuchusertoken0000000000000", "0" + "a" * 22, "a" * 64, "-_-"]
)
@pytest.mark.parametrize("call", ["session/stop", "ping"])
def test_any_url_safe_user_token_that_is_not_live_is_404(client, token, call):
    result = client.simulate_get(f"{LIVE}/users/{token}/{call}")
    assert result.status_code == 404, result.text
    assert result.json["request"] == f"sessions.{call.split('/')[-1]}"


SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_token_of_another_node_redirects_to_its_server_url(make_client):
    other = create(make_client("node-2")).json
    client = make_client("node-1")
    result = client.simulate_get(
        f"{LIVE}/sessions/{other['sessionToken']}",
        query_string="x=1",
        headers={"Origin": ALLOWED},
    )
    assert result.status_code == 307
    assert result.headers["Location"] == (
        f"http://127.0.0.1:8700/node-2/cobrowse/rest/live/sessions/{other['sessionToken']}?x=1"
    )
    assert result.json["node"] == "node-2"


@SQLITE_ONLY
def test_a_session_stored_here_is_answered_here_whatever_the_ring_says(
    make_client, make_settings, clock
):
    """After a ring change that remapped a live token, serve the session rather than 307."""
    from cobrowse.store.sqlite import SqliteSessionStore

    client = make_client("node-1")
    other = create(make_client("node-2")).json  # a token that the ring maps to node-2
    moved = asyncio.run(
        SqliteSessionStore.at(make_settings("node-2").database_path).get_live(
            other["sessionToken"], clock.now_ms()
        )
    )
    asyncio.run(SqliteSessionStore.at(make_settings("node-1").database_path).create(moved))
    result = client.simulate_get(
        f"{LIVE}/sessions/{other['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert result.status_code == 200, result.text
    assert result.json["sessionServerName"] == "node-1"
    stopped = client.simulate_get(f"{LIVE}/users/{other['userToken']}/session/stop")
    assert stopped.status_code == 200, stopped.text


@SQLITE_ONLY
def test_token_of_a_node_without_server_url_is_421(make_client):
    other = create(make_client("node-3")).json
    result = make_client("node-1").simulate_get(f"{LIVE}/users/{other['userToken']}/session/stop")
    assert result.status_code == 421
    assert result.json["node"] == "node-3"


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_with_the_shared_store_any_node_serves_any_session(make_client):
    other = create(make_client("node-2")).json  # the ring says node-2
    client = make_client("node-1")
    result = client.simulate_get(
        f"{LIVE}/sessions/{other['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert result.status_code == 200, result.text
    assert result.json["sessionServerName"] == "node-1"  # the node that answers
    assert client.simulate_get(f"{LIVE}/users/{other['userToken']}/ping").status_code == 200
    stopped = client.simulate_get(f"{LIVE}/users/{other['userToken']}/session/stop")
    assert stopped.status_code == 200
    # A token that is not live anywhere: no node to send the client to, 404 at once.
    gone = client.simulate_get(
        f"{LIVE}/sessions/{other['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert gone.status_code == 404


def test_sessions_survive_a_new_app_on_the_same_database(make_client):
    created = create(make_client()).json
    restarted = make_client()  # a new app and connection on the same file, as after a restart
    result = restarted.simulate_get(
        f"{LIVE}/sessions/{created['sessionToken']}", headers={"Origin": ALLOWED}
    )
    assert result.status_code == 200


@pytest.mark.parametrize(
    "path", [f"{LIVE}/sessions/123456789%0A", f"{LIVE}/users/1{'a' * 22}%0A/session/stop"]
)
def test_tokens_with_a_trailing_newline_are_400(client, path):
    # `re.match` with `$` accepted them, and sent them on to the ring and the store.
    result = client.simulate_get(path, headers={"Origin": ALLOWED})
    assert result.status_code == 400
    assert result.json["errorMessage"].startswith("A ")
