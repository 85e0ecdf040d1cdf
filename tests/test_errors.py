"""Every error is JSON in one shape, with the right status, and never a stack trace."""

from __future__ import annotations

import logging

import falcon.testing
import pytest

from cobrowse.store.sqlite import SqliteSessionStore
from cobrowse.web.app import create_app

LIVE = "/cobrowse/rest/live"


def test_unknown_route_is_404_json(client):
    result = client.simulate_get("/cobrowse/nothing-here")
    assert result.status_code == 404
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.json["errorMessage"]


def test_wrong_method_is_405_with_allow(client):
    result = client.simulate_delete(f"{LIVE}/sessions")
    assert result.status_code == 405
    assert "POST" in result.headers["Allow"]
    assert result.json["errorMessage"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[" * 5000, "application/json", 400),  # was a RecursionError: 500
        (b'{"a": ' * 5000, "application/json", 400),
        (b"hello", "text/plain", 415),
        (b"{}", "application/json", 200),
        (b"", None, 200),
    ],
)
def test_create_body_validation(client, body, content_type, status):
    headers = {"Content-Type": content_type} if content_type else {}
    result = client.simulate_post(f"{LIVE}/sessions", body=body, headers=headers)
    assert result.status_code == status
    if status != 200:
        assert result.json["request"] == "sessions.create"


def test_oversized_body_is_413(make_client):
    client = make_client(security={"maxBodySize": "100"})
    result = client.simulate_post(
        f"{LIVE}/sessions",
        body=b"{" + b" " * 200 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert result.status_code == 413
    assert "100" in result.json["errorMessage"]


class ExplodingStore(SqliteSessionStore):
    async def get_live(self, session_token, now_ms):
        raise RuntimeError("secret internal detail")


def test_unexpected_errors_are_500_json_without_details(make_settings, caplog):
    settings = make_settings()
    client = falcon.testing.TestClient(
        create_app(settings, ExplodingStore.at(settings.database_path))
    )
    token = client.simulate_post(f"{LIVE}/sessions").json["sessionToken"]
    with caplog.at_level(logging.ERROR, logger="cobrowse.errors"):
        result = client.simulate_get(
            f"{LIVE}/sessions/{token}", headers={"Origin": "http://localhost:8080"}
        )
    assert result.status_code == 500
    assert result.json == {"errorMessage": "Internal server error."}
    assert "secret" not in result.text
    assert "Traceback" not in result.text
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1
