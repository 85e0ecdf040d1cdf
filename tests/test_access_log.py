"""Access logs and request IDs: one safe line per request, IDs kept when sane."""

from __future__ import annotations

import json
import os
import random

import falcon.testing
import pytest

from cobrowse.observe.accesslog import AccessLog
from cobrowse.store.sqlite import SqliteSessionStore
from cobrowse.web.app import create_app

LIVE = "/cobrowse/rest/live"
HOSTILE = [
    'quote"d',
    "back\\slash",
    "new\nline",
    'forged","status":200,"x":"',
    "control\x00\x1b[31m\x7f",
    "\u2028unicode line separator",
]


@pytest.fixture
def logged(make_settings, clock, tmp_path):
    """A TestClient whose access log goes to a file; returns (client, read_lines, log)."""
    path = tmp_path / "access.log"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def build(text_format=False):
        settings = make_settings()
        log = AccessLog(text_format=text_format, descriptor=descriptor)
        app = create_app(
            settings,
            SqliteSessionStore.at(settings.database_path),
            clock=clock,
            random=random.Random(7),
            access_log=log,
        )

        def lines():
            log.flush()
            return path.read_text().splitlines()

        return falcon.testing.TestClient(app), lines

    yield build
    os.close(descriptor)


def test_one_json_line_per_request_with_the_fields(logged):
    client, lines = logged()
    created = client.simulate_post(f"{LIVE}/sessions", headers={"X-Request-ID": "abc-123"})
    client.simulate_get(f"{LIVE}/sessions/{created.json['sessionToken']}")  # 403: no origin
    entries = [json.loads(line) for line in lines()]
    assert len(entries) == 2
    first, second = entries
    assert list(first) == [
        "time",
        "method",
        "route",
        "status",
        "duration_ms",
        "client",
        "node",
        "request_id",
    ]
    assert first["route"] == "/cobrowse/rest/live/sessions"
    assert first["status"] == 200
    assert first["request_id"] == "abc-123"
    assert first["node"] == "node-1"
    assert second["route"] == "/cobrowse/rest/live/sessions/{session_token}"
    assert second["status"] == 403
    assert created.json["sessionToken"] not in "\n".join(lines())


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_cannot_break_or_forge_fields(logged, hostile):
    client, lines = logged()
    answer = client.simulate_get(
        "/cobrowse/health",
        headers={"X-Request-ID": hostile, "X-Forwarded-For": hostile},  # 127.0.0.1 is trusted
    )
    (line,) = lines()
    entry = json.loads(line)
    # logged as data, escaped (the first X-Forwarded-For entry, as the node reads it)
    assert entry["client"] == hostile.split(",")[0].strip()
    assert entry["status"] == 200
    assert entry["request_id"] != hostile  # not sane: replaced
    assert answer.headers["X-Request-ID"] == entry["request_id"]
    assert set(entry) == {
        "time",
        "method",
        "route",
        "status",
        "duration_ms",
        "client",
        "node",
        "request_id",
    }


def test_text_format_escapes_too(logged):
    client, lines = logged(text_format=True)
    client.simulate_get("/cobrowse/health", headers={"X-Forwarded-For": "a\nb c=1"})
    (line,) = lines()
    assert 'client="a\\nb c=1"' in line
    assert line.startswith("time=")


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("req-1", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("has space", False),
        ("under_score", False),
        ("", False),
    ],
)
def test_request_ids_are_kept_only_when_sane(client, incoming, kept):
    answer = client.simulate_get("/cobrowse/health", headers={"X-Request-ID": incoming})
    echoed = answer.headers["X-Request-ID"]
    assert (echoed == incoming) is kept
    assert 1 <= len(echoed) <= 255


def test_errors_carry_the_request_id_too(client):
    answer = client.simulate_get("/cobrowse/nowhere", headers={"X-Request-ID": "trace-me"})
    assert answer.status_code == 404
    assert answer.headers["X-Request-ID"] == "trace-me"
