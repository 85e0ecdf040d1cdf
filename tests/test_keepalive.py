"""Keepalive: /ping resets the inactivity timer; a session ends by itself at last activity +
inactivityTimeout, and answers as the polling API does afterwards."""

from __future__ import annotations

from tests.conftest import ALLOWED

LIVE = "/cobrowse/rest/live"


def create(client):
    return client.simulate_post(f"{LIVE}/sessions").json


def get(client, session):
    return client.simulate_get(
        f"{LIVE}/sessions/{session['sessionToken']}", headers={"Origin": ALLOWED}
    )


def ping(client, session, **kwargs):
    return client.simulate_get(f"{LIVE}/users/{session['userToken']}/ping", **kwargs)


def stop(client, session):
    return client.simulate_get(f"{LIVE}/users/{session['userToken']}/session/stop")


def test_ping_keeps_a_session_alive(client, clock):
    session = create(client)
    for _ in range(5):
        clock.advance(50)
        assert ping(client, session).status_code == 200
    assert get(client, session).status_code == 200


def test_without_activity_a_session_ends_at_last_activity_plus_timeout(client, clock):
    session = create(client)
    clock.advance(30)
    ping(client, session)
    last_activity = clock.now_ms()
    clock.advance(59.999)
    assert get(client, session).status_code == 200
    clock.advance(0.001)
    assert get(client, session).status_code == 404
    clock.advance(500)  # whenever the sweep or the stop comes, the recorded time is the deadline
    times = stop(client, session).json
    assert times["deactivationTime"] == last_activity + 60_000
    assert stop(client, session).json == times


def test_ping_after_the_timeout_is_401(client, clock):
    session = create(client)
    clock.advance(61)
    answer = ping(client, session)
    assert answer.status_code == 401
    assert answer.json["request"] == "sessions.ping"
    assert "WWW-Authenticate" in answer.headers
    assert ping(client, session).status_code == 401


def test_ping_after_stop_is_401_and_unknown_is_404(client):
    session = create(client)
    stop(client, session)
    assert ping(client, session).status_code == 401
    other = {
        "userToken": session["userToken"][:-1] + ("A" if session["userToken"][-1] != "A" else "B")
    }
    assert ping(client, other).status_code in (404, 307, 421)


def test_the_timeout_is_configurable(make_client, clock):
    client = make_client(session={"inactivityTimeout": "5"})
    session = create(client)
    clock.advance(5)
    assert get(client, session).status_code == 404


def test_a_node_down_longer_than_the_timeout_comes_back_with_sessions_ended(make_client, clock):
    first = make_client()
    session = create(first)
    started = clock.now_ms()
    clock.advance(3600)  # the node is down for an hour
    restarted = make_client()
    restarted.simulate_get("/cobrowse/health")  # a sweep runs on the first probe
    assert get(restarted, session).status_code == 404
    assert stop(restarted, session).json == {
        "activationTime": started,
        "deactivationTime": started + 60_000,
    }


def test_ping_preflight(client):
    session = create(client)
    answer = client.simulate_options(
        f"{LIVE}/users/{session['userToken']}/ping",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"},
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Methods"] == "GET"
