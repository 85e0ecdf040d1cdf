"""`/health`: 200 ready with an empty body, 404 draining, 503 not ready."""

from __future__ import annotations

import asyncio

import falcon.testing

from cobrowse.store import StoreUnavailableError
from cobrowse.store.sqlite import SqliteSessionStore
from cobrowse.web.app import create_app

HEALTH = "/cobrowse/health"


def test_ready_is_200_with_empty_body(client):
    for method in ("GET", "HEAD"):
        result = client.simulate_request(method, HEALTH)
        assert result.status_code == 200
        assert result.content == b""


def test_draining_is_404_and_stopping_is_503(make_settings):
    settings = make_settings()
    store = SqliteSessionStore.at(settings.database_path)
    client = falcon.testing.TestClient(create_app(settings, store))
    asyncio.run(store.set_node_state(draining=True))
    assert client.simulate_get(HEALTH).status_code == 404
    asyncio.run(store.set_node_state(stopping=True))
    assert client.simulate_get(HEALTH).status_code == 503
    asyncio.run(store.set_node_state(draining=False, stopping=False))
    assert client.simulate_get(HEALTH).status_code == 200


class BrokenStore(SqliteSessionStore):
    async def node_state(self):
        raise StoreUnavailableError("disk on fire")


def test_unusable_store_is_503(make_settings):
    settings = make_settings()
    client = falcon.testing.TestClient(create_app(settings, BrokenStore.at(settings.database_path)))
    result = client.simulate_get(HEALTH)
    assert result.status_code == 503
    assert "disk" not in result.text


def test_health_is_not_under_rest_live_and_needs_no_origin(client):
    assert client.simulate_get("/cobrowse/rest/live/health").status_code == 404
    assert client.simulate_get(HEALTH).status_code == 200  # load balancers send no Origin


def test_health_is_cors_controlled_for_browsers(client):
    allowed = client.simulate_get(HEALTH, headers={"Origin": "http://localhost:8080"})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    refused = client.simulate_get(HEALTH, headers={"Origin": "http://evil.test"})
    assert refused.status_code == 403
    assert refused.json["request"] == "health"


class ReadOnlyStore(SqliteSessionStore):
    async def check_writable(self):
        raise StoreUnavailableError("attempt to write a readonly database")


def test_a_store_that_takes_no_writes_is_503(make_settings):
    settings = make_settings()
    client = falcon.testing.TestClient(
        create_app(settings, ReadOnlyStore.at(settings.database_path))
    )
    result = client.simulate_get(HEALTH)
    assert result.status_code == 503
    assert "writes" in result.json["errorMessage"]


def test_health_reports_live_sessions(client):
    client.simulate_post("/cobrowse/rest/live/sessions")
    assert client.simulate_get(HEALTH).headers["X-Cobrowse-Live-Sessions"] == "1"
